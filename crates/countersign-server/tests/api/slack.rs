//! Approving from Slack through the real server, with a fake Slack (its Web API and the
//! response URLs) on loopback: a linked reviewer in the right group decides; anyone else —
//! unlinked, outside the approver groups, the agent's owner, a second approval, another
//! workspace — gets an ephemeral refusal and nothing changes; forged, stale and unsigned
//! requests are refused before they are read.

use countersign_core::Name;
use countersign_server::slack::signature::sign;
use countersign_store::Actor;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::fixture::{Options, Server, code, large_refund, spawn_with};
use super::notify::notifications;
use super::receivers::{Behaviour, Got, Receiver};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

struct Slack {
    server: Server,
    fake: Receiver,
}

impl Slack {
    async fn start() -> Slack {
        let fake = Receiver::start(Behaviour::Ok).await;
        let toml = format!(
            "public_url = \"https://countersign.example.com\"\n[slack]\nsigning_secret = \"{SIGNING_SECRET}\"\nbot_token = \"xoxb-test\"\napi_base_url = \"{}/api\"\nteam_id = \"T0TEAM\"\n",
            fake.base
        );
        let server = spawn_with(Options {
            notify: Some(notifications(&toml)),
            ..Options::default()
        })
        .await;
        for (user, name) in [
            ("U0RITA", "rita"),
            ("U0SAM", "sam"),
            ("U0SALLY", "sally"),
            ("U0OLIVIA", "olivia"),
        ] {
            server
                .store
                .link_slack(
                    user.into(),
                    Name::parse(name).unwrap(),
                    Actor::named("cli"),
                    chrono::Utc::now(),
                )
                .await
                .unwrap();
        }
        Slack { server, fake }
    }

    /// Posts `payload` signed as Slack would, `age` seconds ago.
    async fn post(&self, payload: &Value, secret: &str, age: i64) -> (StatusCode, Value) {
        let body = format!(
            "payload={}",
            form_urlencoded::byte_serialize(payload.to_string().as_bytes()).collect::<String>()
        );
        let timestamp = (chrono::Utc::now().timestamp() - age).to_string();
        let answer = self
            .server
            .client
            .post(format!(
                "{}/v1/integrations/slack/interactions",
                self.server.base.as_str().trim_end_matches('/')
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", &timestamp)
            .header(
                "x-slack-signature",
                sign(secret, &timestamp, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    fn response_url(&self, n: u32) -> String {
        format!("{}/response/{n}", self.fake.base)
    }

    /// A click on a button of the message about `id`.
    fn click(&self, user: &str, button: &str, id: &str, n: u32) -> Value {
        json!({
            "type": "block_actions",
            "team": {"id": "T0TEAM"},
            "user": {"id": user},
            "trigger_id": format!("trigger-{n}"),
            "response_url": self.response_url(n),
            "actions": [{"action_id": format!("countersign_{button}"), "value": id}],
        })
    }

    /// The submission of the modal Countersign opened for `id`.
    fn submit_view(&self, user: &str, callback: &str, id: &str, n: u32, values: Value) -> Value {
        let mut state = serde_json::Map::new();
        for (block, value) in values.as_object().unwrap() {
            state.insert(
                block.clone(),
                json!({block.clone(): {"type": "plain_text_input", "value": value}}),
            );
        }
        json!({
            "type": "view_submission",
            "team": {"id": "T0TEAM"},
            "user": {"id": user},
            "view": {
                "callback_id": format!("countersign_{callback}"),
                "private_metadata": json!({"action": id, "response_url": self.response_url(n)}).to_string(),
                "state": {"values": state},
            },
        })
    }

    /// What Countersign sent to response URL `n`.
    async fn answer(&self, n: u32) -> Value {
        let path = format!("/response/{n}");
        let got = self
            .fake
            .until(&path, |got| got.iter().any(|g| g.path == path))
            .await;
        got.iter().find(|g| g.path == path).unwrap().json()
    }

    async fn status(&self, id: &str) -> Value {
        self.server
            .call("GET", &format!("/v1/actions/{id}"), &self.server.lead, None)
            .await
            .1
    }
}

fn refusal(answer: &Value) -> String {
    assert_eq!(answer["response_type"], "ephemeral", "{answer}");
    assert_eq!(answer["replace_original"], false, "{answer}");
    answer["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn requests_not_signed_by_slack_are_refused_before_anything_happens() {
    let slack = Slack::start().await;
    let id = slack.server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let click = slack.click("U0RITA", "approve", &id, 1);
    for (secret, age, what) in [
        ("another secret", 0, "signed with another secret"),
        (SIGNING_SECRET, 6 * 60, "six minutes old"),
        (SIGNING_SECRET, -6 * 60, "from the future"),
    ] {
        let (status, body) = slack.post(&click, secret, age).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{what}"
        );
    }
    let url = format!(
        "{}/v1/integrations/slack/interactions",
        slack.server.base.as_str().trim_end_matches('/')
    );
    let unsigned = slack
        .server
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("payload={click}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    // A replay of a signed body with its signature under a new timestamp does not verify.
    let body = "payload=%7B%7D";
    let old = (chrono::Utc::now().timestamp() - 10).to_string();
    let resigned = slack
        .server
        .client
        .post(&url)
        .header(
            "x-slack-request-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header(
            "x-slack-signature",
            sign(SIGNING_SECRET, &old, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resigned.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(slack.status(&id).await["status"], "pending");
    // Signed but not an interaction: a precise 400.
    let (status, body) = slack.post(&json!("not an object"), SIGNING_SECRET, 0).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_payload")
    );
    // A server without [slack] verifies nothing: 401 too.
    let plain = spawn_with(Options::default()).await;
    let answer = plain
        .client
        .post(format!(
            "{}/v1/integrations/slack/interactions",
            plain.base.as_str().trim_end_matches('/')
        ))
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_linked_people_who_may_decide_decide_from_slack() {
    let slack = Slack::start().await;
    let id = slack.server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // (who, why they are refused) — each gets an ephemeral refusal; nothing changes.
    let refused = [
        ("U0NOBODY", "is not linked to a Countersign reviewer"),
        ("U0SALLY", "only members of support-leads may decide"),
        ("U0OLIVIA", "olivia owns"),
    ];
    for (n, (user, why)) in (1..).zip(refused) {
        let (status, _) = slack
            .post(&slack.click(user, "approve", &id, n), SIGNING_SECRET, 0)
            .await;
        assert_eq!(status, StatusCode::OK);
        let text = refusal(&slack.answer(n).await);
        assert!(
            text.contains(why) && text.contains("nothing was changed"),
            "{user}: {text}"
        );
    }
    // Reject asks the unauthorised for nothing: refused before any form opens.
    let (status, _) = slack
        .post(&slack.click("U0SALLY", "reject", &id, 4), SIGNING_SECRET, 0)
        .await;
    assert_eq!(status, StatusCode::OK);
    refusal(&slack.answer(4).await);
    // Another workspace's click is refused, whoever it names.
    let mut foreign = slack.click("U0RITA", "approve", &id, 5);
    foreign["team"]["id"] = json!("T0OTHER");
    slack.post(&foreign, SIGNING_SECRET, 0).await;
    assert!(refusal(&slack.answer(5).await).contains("one Slack workspace"));
    assert!(
        slack
            .fake
            .got()
            .iter()
            .all(|g| !g.path.ends_with("views.open")),
        "no form was opened for anyone refused"
    );
    let action = slack.status(&id).await;
    assert_eq!(
        (
            action["status"].as_str(),
            action["decisions"].as_array().unwrap().len()
        ),
        (Some("pending"), 0)
    );

    // Rita, linked and in support-leads, approves: the message becomes the outcome.
    slack
        .post(&slack.click("U0RITA", "approve", &id, 6), SIGNING_SECRET, 0)
        .await;
    let answer = slack.answer(6).await;
    assert_eq!(answer["replace_original"], true, "{answer}");
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.starts_with("refund.create by support-bot: approved by rita at "),
        "{text}"
    );
    assert_eq!(slack.status(&id).await["status"], "approved");

    // The audit entry records the channel, the workspace and the Slack user.
    let (_, audit) = slack
        .server
        .call("GET", "/v1/audit?limit=1000", &slack.server.admin, None)
        .await;
    let decided = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "decided" && e["action_id"] == json!(id))
        .unwrap()
        .clone();
    assert_eq!(decided["actor"], "rita");
    assert_eq!(decided["body"]["channel"], "slack");
    assert_eq!(decided["body"]["actor_token_id"], "slack:T0TEAM:U0RITA");

    // Too late for anyone now.
    slack
        .post(&slack.click("U0SAM", "approve", &id, 7), SIGNING_SECRET, 0)
        .await;
    assert!(refusal(&slack.answer(7).await).contains("not pending"));
}

#[tokio::test]
async fn reject_asks_for_a_reason_in_a_form() {
    let slack = Slack::start().await;
    let id = slack.server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    slack
        .post(&slack.click("U0RITA", "reject", &id, 1), SIGNING_SECRET, 0)
        .await;
    let opened = slack
        .fake
        .until("views.open", |got| {
            got.iter().any(|g| g.path == "/api/views.open")
        })
        .await;
    let call: &Got = opened.iter().find(|g| g.path == "/api/views.open").unwrap();
    assert_eq!(call.header("authorization"), "Bearer xoxb-test");
    let view = &call.json()["view"];
    assert_eq!(call.json()["trigger_id"], "trigger-1");
    assert_eq!(view["callback_id"], "countersign_reject");
    assert_eq!(
        slack.status(&id).await["status"],
        "pending",
        "opening the form decides nothing"
    );

    // No reason: the form says so, and nothing changes.
    let (status, answer) = slack
        .post(
            &slack.submit_view("U0RITA", "reject", &id, 2, json!({"reason": "  "})),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert!(
        answer["errors"]["reason"]
            .as_str()
            .unwrap()
            .contains("needs a reason")
    );
    // Sally cannot submit a form she was never shown either.
    let (_, answer) = slack
        .post(
            &slack.submit_view("U0SALLY", "reject", &id, 3, json!({"reason": "no"})),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert_eq!(slack.status(&id).await["status"], "pending");

    let (_, answer) = slack
        .post(
            &slack.submit_view(
                "U0RITA",
                "reject",
                &id,
                4,
                json!({"reason": "duplicate of A-1"}),
            ),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}));
    let action = slack.status(&id).await;
    assert_eq!(action["status"], "rejected");
    assert_eq!(action["decisions"][0]["reason"], "duplicate of A-1");
    let outcome = slack.answer(4).await;
    assert!(
        outcome["text"]
            .as_str()
            .unwrap()
            .ends_with(": duplicate of A-1"),
        "{outcome}"
    );
}

#[tokio::test]
async fn confirm_needs_the_name_retyped_and_two_people_from_slack_too() {
    let slack = Slack::start().await;
    let id = slack
        .server
        .submit(json!({"action": "account.close", "args": {"account": "c_9"}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    slack
        .post(&slack.click("U0RITA", "approve", &id, 1), SIGNING_SECRET, 0)
        .await;
    let opened = slack
        .fake
        .until("views.open", |got| {
            got.iter().any(|g| g.path == "/api/views.open")
        })
        .await;
    assert_eq!(
        opened
            .iter()
            .find(|g| g.path == "/api/views.open")
            .unwrap()
            .json()["view"]["callback_id"],
        "countersign_confirm"
    );
    let (_, answer) = slack
        .post(
            &slack.submit_view(
                "U0RITA",
                "confirm",
                &id,
                2,
                json!({"confirm": "account.open"}),
            ),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert_eq!(slack.status(&id).await["decisions"], json!([]));

    let (_, answer) = slack
        .post(
            &slack.submit_view(
                "U0RITA",
                "confirm",
                &id,
                3,
                json!({"confirm": "account.close"}),
            ),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}));
    let text = refusal(&slack.answer(3).await);
    assert!(
        text.contains("your approve is recorded") && text.contains("1 of 2 approvals (rita)"),
        "{text}"
    );
    // The same person cannot give the second approval.
    let (_, answer) = slack
        .post(
            &slack.submit_view(
                "U0RITA",
                "confirm",
                &id,
                4,
                json!({"confirm": "account.close"}),
            ),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert!(
        answer["errors"]["confirm"]
            .as_str()
            .unwrap()
            .contains("already approved"),
        "{answer}"
    );
    let (_, answer) = slack
        .post(
            &slack.submit_view(
                "U0SAM",
                "confirm",
                &id,
                5,
                json!({"confirm": "account.close"}),
            ),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}));
    assert_eq!(slack.status(&id).await["status"], "approved");
}

#[tokio::test]
async fn modify_from_slack_is_reclassified_like_the_api_does() {
    let slack = Slack::start().await;
    let id = slack.server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    slack
        .post(&slack.click("U0RITA", "modify", &id, 1), SIGNING_SECRET, 0)
        .await;
    let opened = slack
        .fake
        .until("views.open", |got| {
            got.iter().any(|g| g.path == "/api/views.open")
        })
        .await;
    let view = opened
        .iter()
        .find(|g| g.path == "/api/views.open")
        .unwrap()
        .json()["view"]
        .clone();
    assert!(
        view.to_string().contains("2500"),
        "the form holds the current arguments: {view}"
    );
    for (n, args, expected) in [
        (2, "not json", "one JSON object"),
        (3, "[1, 2]", "one JSON object"),
    ] {
        let (_, answer) = slack
            .post(
                &slack.submit_view("U0RITA", "modify", &id, n, json!({"args": args})),
                SIGNING_SECRET,
                0,
            )
            .await;
        assert!(
            answer["errors"]["args"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{answer}"
        );
    }
    let (_, answer) = slack
        .post(
            &slack.submit_view(
                "U0RITA",
                "modify",
                &id,
                4,
                json!({"args": "{\"amount\": 2000}"}),
            ),
            SIGNING_SECRET,
            0,
        )
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}), "{answer}");
    let action = slack.status(&id).await;
    assert_eq!(action["status"], "approved");
    assert_eq!(action["args"], json!({"amount": 2000}));
    assert_eq!(action["original_args"], json!({"amount": 2500}));
}

#[tokio::test]
async fn without_a_bot_token_forms_become_a_link_to_the_action() {
    let fake = Receiver::start(Behaviour::Ok).await;
    let toml = format!(
        "public_url = \"https://countersign.example.com/\"\n[slack]\nsigning_secret = \"{SIGNING_SECRET}\"\napi_base_url = \"{}/api\"\n",
        fake.base
    );
    let server = spawn_with(Options {
        notify: Some(notifications(&toml)),
        ..Options::default()
    })
    .await;
    server
        .store
        .link_slack(
            "U0RITA".into(),
            Name::parse("rita").unwrap(),
            Actor::named("cli"),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let slack = Slack { server, fake };
    let id = slack.server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut click = slack.click("U0RITA", "reject", &id, 1);
    click["team"]["id"] = json!("T0ANY");
    slack.post(&click, SIGNING_SECRET, 0).await;
    let text = refusal(&slack.answer(1).await);
    assert!(
        text.contains("rejecting it needs a reason")
            && text.contains(&format!("https://countersign.example.com/actions/{id}")),
        "{text}"
    );
    assert_eq!(slack.status(&id).await["status"], "pending");
}
