//! Notifications, the SLA ladder's messages and agent callbacks through the real server,
//! with real receivers on loopback: signatures, audiences, reminders, escalation and expiry
//! worded as such, retries de-duplicated on the event id, a hanging receiver that delays
//! nobody, failed deliveries listed and retried, and callbacks only where `callback_allow`
//! says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::Policy;
use countersign_server::config::{self, Overrides};
use countersign_server::notify::signature::WebhookKey;
use countersign_server::{ManualClock, Notifications, PolicySource};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::fixture::{Options, POLICY, Server, code, large_refund, scratch, spawn_with};
use super::receivers::{Behaviour, Got, Receiver};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const CALLBACK_SECRET: &str = "whsec_Y2FsbGJhY2stc2VjcmV0LWJ5dGVzLTAxMjM0NTY3";

/// Notifications from a config file's text, through the real config parser.
pub fn notifications(toml: &str) -> Notifications {
    let dir = scratch();
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, toml).unwrap();
    let config = config::resolve(
        Some(&path),
        Overrides::default(),
        Overrides::default(),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Notifications::new(&config.notify, config.public_url.as_deref(), &|name| {
        (name == "CALLBACK_SECRET").then(|| CALLBACK_SECRET.to_owned())
    })
    .unwrap()
}

/// A webhook target's lines for `url` with `extra` settings.
fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[notify]]\nkind = \"webhook\"\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}\n"
    )
}

/// Verifies a Standard Webhooks message as a receiver would.
fn verified(got: &Got, secret: &str) -> Value {
    let key = WebhookKey::parse(secret).unwrap();
    let timestamp: i64 = got.header("webhook-timestamp").parse().unwrap();
    assert!(
        (Utc::now().timestamp() - timestamp).abs() < 300,
        "a fresh timestamp"
    );
    assert!(
        key.verify(
            got.header("webhook-id"),
            timestamp,
            got.body.as_bytes(),
            got.header("webhook-signature"),
        ),
        "the signature verifies: {got:?}"
    );
    got.json()
}

fn kinds(got: &[Got]) -> Vec<String> {
    got.iter().map(Got::kind).collect()
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_ladder_is_told_to_the_right_people_and_expiry_never_reads_as_rejection() {
    let leads = Receiver::start(Behaviour::Ok).await;
    let finance = Receiver::start(Behaviour::Ok).await;
    let slack = Receiver::start(Behaviour::Ok).await;
    let toml = format!(
        "public_url = \"https://countersign.example.com\"\n{}{}[[notify]]\nkind = \"slack\"\nurl = \"{}/services/T/B/X\"\nevents = [\"pending\"]\n",
        webhook(
            "leads",
            &format!("{}/hook", leads.base),
            "groups = [\"support-leads\"]"
        ),
        webhook(
            "finance",
            &format!("{}/hook", finance.base),
            "groups = [\"finance\"]\nactions = [\"refund.*\"]"
        ),
        slack.base,
    );
    let policy = POLICY.replace(
        "escalation_sla = \"1h\"",
        "escalation_sla = \"1h\"\nremind_at = [\"50%\"]",
    );
    let start: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let server = spawn_with(Options {
        clock: clock.clone(),
        policy: Some(Arc::new(PolicySource::fixed(
            Policy::parse(&policy).unwrap(),
        ))),
        notify: Some(notifications(&toml)),
        ..Options::default()
    })
    .await;
    let action = server.submit(large_refund()).await;
    let id = id_of(&action);

    let got = leads.until_kind("action.pending", 1).await;
    let pending = verified(&got[0], SECRET);
    assert_eq!(got[0].header("webhook-id"), format!("msg_{id}_1"));
    assert_eq!(pending["data"]["action"]["id"], json!(id));
    assert_eq!(pending["data"]["action"]["rule"], "large refunds");
    assert_eq!(pending["data"]["action"]["reasoning"], "charged twice");
    assert_eq!(pending["data"]["args_summary"], "amount=2500");
    assert_eq!(
        pending["data"]["url"],
        format!("https://countersign.example.com/actions/{id}")
    );
    assert_eq!(
        pending["data"]["text"],
        "refund.create by support-bot waits for members of support-leads; deadline 12:15 UTC"
    );

    // Slack: Block Kit with the essentials and the buttons; the link only opens the page.
    let message = slack.until("the Slack message", |g| !g.is_empty()).await[0].json();
    let blocks = message["blocks"].to_string();
    for expected in [
        "refund.create",
        "support-bot",
        "amount=2500",
        "15m left",
        "Approve",
        "Reject…",
        "Open in Countersign",
    ] {
        assert!(blocks.contains(expected), "{expected} in {blocks}");
    }

    // Reminder at 50% of the 15 minutes, to the current approvers only.
    clock.advance(TimeDelta::seconds(7 * 60 + 31));
    server.state.nudge_sla();
    let got = leads.until_kind("action.reminder", 1).await;
    let reminder = verified(got.last().unwrap(), SECRET);
    assert!(
        reminder["data"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Reminder: refund.create by support-bot"),
        "{reminder}"
    );

    // Escalation: finance hears from now on.
    clock.advance(TimeDelta::minutes(8));
    server.state.nudge_sla();
    finance.until_kind("action.escalated", 1).await;
    leads.until_kind("action.escalated", 1).await;

    clock.advance(TimeDelta::hours(1));
    server.state.nudge_sla();
    let got = finance.until_kind("action.expired", 1).await;
    let expired = verified(got.last().unwrap(), SECRET);
    let detail = "expired: no reviewer answered within 15m31s (escalated to finance at 12:15 UTC, then 1h more)";
    assert_eq!(expired["data"]["status_detail"], detail);
    assert_eq!(expired["data"]["action"]["status"], "expired");
    assert_eq!(expired["data"]["action"]["decisions"], json!([]));
    assert!(!expired.to_string().contains("reject"), "{expired}");
    leads.until_kind("action.expired", 1).await;

    // Each heard exactly its own: finance nothing before the escalation (nor the
    // reminder of the first stage, which was not theirs).
    assert_eq!(
        kinds(&leads.got()),
        [
            "action.pending",
            "action.reminder",
            "action.escalated",
            "action.expired"
        ]
    );
    assert_eq!(
        kinds(&finance.got()),
        ["action.escalated", "action.expired"]
    );
    assert_eq!(
        slack.got().len(),
        1,
        "the Slack target subscribed to pending only"
    );

    // The API, and the audit log, say the same.
    let (_, shown) = server
        .call("GET", &format!("/v1/actions/{id}"), &server.lead, None)
        .await;
    assert_eq!(shown["status_detail"], detail);
    let (_, audit) = server
        .call("GET", "/v1/audit?limit=1000", &server.admin, None)
        .await;
    let entries: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action_id"] == json!(id))
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "classified",
            "reminded",
            "escalated",
            "expired"
        ]
    );
    assert_eq!(entries[4]["body"]["detail"], detail);
    assert_eq!(entries[4]["actor"], "system");
    let (_, verify) = server
        .call("GET", "/v1/audit/verify", &server.admin, None)
        .await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn a_receiver_that_fails_then_recovers_gets_each_event_once_after_deduplication() {
    let flaky = Receiver::start(Behaviour::FailFirst(503, 7)).await;
    let toml = webhook(
        "flaky",
        &format!("{}/hook", flaky.base),
        "retry_backoff = \"10ms\"\nretry_backoff_max = \"50ms\"\nconcurrency = 2",
    );
    let server = spawn_with(Options {
        notify: Some(notifications(&toml)),
        ..Options::default()
    })
    .await;
    let mut ids = BTreeSet::new();
    for n in 0..5 {
        let action = server
            .submit(json!({"action": "email.send", "args": {"n": n}}))
            .await;
        ids.insert(format!("msg_{}_1", id_of(&action)));
    }
    let got = flaky
        .until("every event accepted once", |got| {
            got.iter().filter(|g| g.answered == 200).count() >= 5
        })
        .await;
    // De-duplicated on webhook-id, as receivers do: each event once.
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for g in got.iter().filter(|g| g.answered == 200) {
        verified(g, SECRET);
        *accepted
            .entry(g.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), ids);
    // Every try of one event carries the same id and the same body.
    for id in &ids {
        let bodies: BTreeSet<&str> = got
            .iter()
            .filter(|g| g.header("webhook-id") == id)
            .map(|g| g.body.as_str())
            .collect();
        assert_eq!(bodies.len(), 1);
    }
    assert_eq!(got.iter().filter(|g| g.answered == 503).count(), 7);
    // The store agrees: all delivered, the failed tries counted.
    let page = until_deliveries(&server, "delivered", 5).await;
    let attempts: u32 = page
        .iter()
        .map(|d| d["attempts"].as_u64().unwrap() as u32)
        .sum();
    assert_eq!(attempts, 12);
}

/// Waits (woken by nothing but the tries themselves, so polling the API) for `count`
/// deliveries in `status`.
async fn until_deliveries(server: &Server, status: &str, count: usize) -> Vec<Value> {
    for _ in 0..600 {
        let (code, page) = server
            .call(
                "GET",
                &format!("/v1/deliveries?status={status}&limit=1000"),
                &server.admin,
                None,
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items.len() >= count {
            return items;
        }
        // A delivery is recorded by the server's dispatcher, not announced: look again
        // shortly (100 ms steps, a minute at most).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("fewer than {count} {status} deliveries after a minute");
}

#[tokio::test]
async fn a_hanging_receiver_delays_neither_the_api_nor_other_receivers_and_fails_visibly() {
    let hanging = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Ok).await;
    let toml = format!(
        "{}{}",
        webhook(
            "hanging",
            &format!("{}/hook", hanging.base),
            "timeout = \"300ms\"\nmax_attempts = 2\nretry_backoff = \"10ms\"\nconcurrency = 2"
        ),
        webhook("healthy", &format!("{}/hook", healthy.base), ""),
    );
    let server = spawn_with(Options {
        notify: Some(notifications(&toml)),
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let action = server
            .submit(json!({"action": "email.send", "args": {"n": n}}))
            .await;
        ids.push(id_of(&action));
    }
    // The healthy receiver gets all twenty while the other lane is stuck behind its two
    // hanging slots.
    healthy.until_kind("action.pending", 20).await;
    let failed = until_deliveries(&server, "failed", 20).await;
    assert!(failed.iter().all(|d| d["target"] == "hanging"));
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(
        failed[0]["last_error"],
        "no answer within 300ms (try 2 of 2)"
    );
    // Visible everywhere: the audit log and the metrics.
    let (_, audit) = server
        .call("GET", "/v1/audit?limit=1000", &server.admin, None)
        .await;
    let audited = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "delivery_failed")
        .count();
    assert_eq!(audited, 20);
    let metrics = server
        .client
        .get(format!(
            "{}/metrics",
            server.base.as_str().trim_end_matches('/')
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("countersign_deliveries_total{result=\"failed\"} 20"),
        "{metrics}"
    );

    // A failed delivery goes back in line once; only failed ones may.
    let delivery = failed[0]["id"].as_str().unwrap().to_owned();
    let retry = format!("/v1/deliveries/{delivery}/retry");
    let (status, body) = server.call("POST", &retry, &server.lead, None).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "wrong_role"));
    let (status, body) = server.call("POST", &retry, &server.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );
    let (status, body) = server.call("POST", &retry, &server.admin, None).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "not_failed"));
    for (path, expected) in [
        ("/v1/deliveries/999999/retry", StatusCode::NOT_FOUND),
        ("/v1/deliveries/not-a-number/retry", StatusCode::NOT_FOUND),
    ] {
        let (status, _) = server.call("POST", path, &server.admin, None).await;
        assert_eq!(status, expected, "{path}");
    }
    for (query, expected) in [
        ("?status=lost", StatusCode::BAD_REQUEST),
        ("?limit=0", StatusCode::BAD_REQUEST),
        ("?cursor=abc", StatusCode::BAD_REQUEST),
        ("?cursor=99999999999999999999", StatusCode::BAD_REQUEST),
        ("?bogus=1", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = server
            .call(
                "GET",
                &format!("/v1/deliveries{query}"),
                &server.admin,
                None,
            )
            .await;
        assert_eq!(status, expected, "{query}: {body}");
    }
    let (status, _) = server
        .call("GET", "/v1/deliveries", &server.agent, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn callbacks_carry_the_final_status_signed_and_only_where_allowed() {
    let agent = Receiver::start(Behaviour::Ok).await;
    let port = agent.base.rsplit(':').next().unwrap().to_owned();
    let toml = format!(
        "callback_allow = [\"http://127.0.0.1:{port}/cb/*\"]\ncallback_secret_env = \"CALLBACK_SECRET\"\n"
    );
    let policy = format!(
        "{POLICY}\n[[rules]]\nname = \"quick\"\nactions = [\"quick.thing\"]\ntier = \"approve\"\nsla = \"1s\"\n"
    );
    let server = spawn_with(Options {
        policy: Some(Arc::new(PolicySource::fixed(
            Policy::parse(&policy).unwrap(),
        ))),
        notify: Some(notifications(&toml)),
        ..Options::default()
    })
    .await;
    let callback = |n: u32| format!("{}/cb/{n}", agent.base);

    // Rejected by a person: who and why.
    let mut body = large_refund();
    body["callback_url"] = json!(callback(1));
    let rejected = id_of(&server.submit(body).await);
    let (status, _) = server
        .decide(
            &rejected,
            &server.lead,
            json!({"verdict": "reject", "reason": "not eligible"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let got = agent.until_kind("action.decided", 1).await;
    let decided = verified(&got[0], CALLBACK_SECRET);
    assert_eq!(got[0].path, "/cb/1");
    assert_eq!(decided["data"]["action"]["status"], "rejected");
    let detail = decided["data"]["status_detail"].as_str().unwrap();
    assert!(
        detail.starts_with("rejected by rita at ") && detail.ends_with(": not eligible"),
        "{detail}"
    );

    // Nobody answered: expired, said as such.
    let quick = id_of(
        &server
            .submit(json!({"action": "quick.thing", "callback_url": callback(2)}))
            .await,
    );
    let got = agent.until_kind("action.expired", 1).await;
    let expired = verified(
        got.iter().find(|g| g.kind() == "action.expired").unwrap(),
        CALLBACK_SECRET,
    );
    assert_eq!(expired["data"]["action"]["id"], json!(quick));
    assert_eq!(expired["data"]["action"]["status"], "expired");
    assert_eq!(
        expired["data"]["status_detail"],
        "expired: no reviewer answered within 1s"
    );

    // Withdrawn by the agent.
    let cancelled = id_of(
        &server
            .submit(json!({"action": "email.send", "callback_url": callback(3)}))
            .await,
    );
    server
        .call(
            "POST",
            &format!("/v1/actions/{cancelled}/cancel"),
            &server.agent,
            None,
        )
        .await;
    agent.until_kind("action.cancelled", 1).await;
    // Allowed and denied actions have no callback: their answer was final at once.
    server
        .submit(json!({"action": "order.get", "callback_url": callback(4)}))
        .await;
    assert!(agent.got().iter().all(|g| g.path != "/cb/4"));

    // Anything outside the allow-list is refused at submission, before anything is stored.
    #[rustfmt::skip]
    let refused = [
        format!("http://127.0.0.1:{port}/elsewhere"),
        format!("http://127.0.0.1:{}/cb/x", port.parse::<u16>().unwrap() + 1),
        format!("http://localhost:{port}/cb/x"),
        format!("https://127.0.0.1:{port}/cb/x"),
        format!("http://user:pass@127.0.0.1:{port}/cb/x"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/cb/x".to_owned(),
        "file:///etc/passwd".to_owned(),
        "not a url".to_owned(),
    ];
    for url in refused {
        let (status, body) = server
            .call(
                "POST",
                "/v1/actions",
                &server.agent,
                Some(json!({"action": "email.send", "callback_url": url})),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "callback_not_allowed"),
            "{url}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("callback"),
            "{body}"
        );
    }
    // The same address spelled as a number is the same address.
    server
        .submit(json!({"action": "email.send", "callback_url": format!("http://2130706433:{port}/cb/5")}))
        .await;
}

#[tokio::test]
async fn a_server_without_callback_allow_takes_no_callback_url() {
    let server = spawn_with(Options::default()).await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/actions",
            &server.agent,
            Some(json!({"action": "email.send", "callback_url": "http://127.0.0.1:9/cb"})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "callback_not_allowed")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no callback_allow"),
        "{body}"
    );
}

/// Seams between notifications and the other features: the approval metrics count the
/// reminders the ladder sent, and a graduated rule's regression is an event targets hear.
mod seams {
    use countersign_core::name::Name;
    use countersign_core::{ActionName, AgentName, ProposedAction, Tier};
    use countersign_store::{Actor, NewAction, NewReview, ReviewVerdict};

    use super::super::fixture::ok;
    use super::*;

    #[tokio::test]
    async fn a_reminder_sent_on_the_virtual_clock_counts_as_reminded_in_stats() {
        let leads = Receiver::start(Behaviour::Ok).await;
        let toml = webhook(
            "leads",
            &format!("{}/hook", leads.base),
            "events = [\"reminder\"]",
        );
        let policy = POLICY.replace(
            "escalation_sla = \"1h\"",
            "escalation_sla = \"1h\"\nremind_at = [\"50%\"]",
        );
        let start: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let server = spawn_with(Options {
            clock: clock.clone(),
            policy: Some(Arc::new(PolicySource::fixed(
                Policy::parse(&policy).unwrap(),
            ))),
            notify: Some(notifications(&toml)),
            ..Options::default()
        })
        .await;
        let reminded = |stats: &Value| stats["overall"]["sla"]["reminded"].clone();
        let stats_now = async || {
            ok(server
                .send(
                    "GET",
                    server.url(&["v1", "stats"], &[]),
                    &server.admin,
                    None,
                )
                .await)
        };
        let id = id_of(&server.submit(large_refund()).await);
        assert_eq!(reminded(&stats_now().await), json!(0));
        clock.advance(TimeDelta::seconds(7 * 60 + 31));
        server.state.nudge_sla();
        // The reminder's delivery was written in the transaction that sent it, which also
        // counted it: once the receiver has it, the figures do too.
        leads.until_kind("action.reminder", 1).await;
        let stats = stats_now().await;
        assert_eq!(reminded(&stats), json!(1), "{stats}");
        let by_action = ok(server
            .send(
                "GET",
                server.url(&["v1", "stats"], &[("group_by", "action")]),
                &server.lead,
                None,
            )
            .await);
        let refunds = by_action["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == "refund.create")
            .unwrap();
        assert_eq!(refunds["sla"]["reminded"], json!(1), "{by_action}");
        let action = ok(server.get(&format!("/v1/actions/{id}"), &server.lead).await);
        assert_eq!(action["status"], "pending");
        let verify = ok(server.get("/v1/audit/verify", &server.admin).await);
        assert_eq!(verify["ok"], json!(true), "{verify}");
    }

    fn lead() -> Actor {
        Actor {
            name: Name::parse("lena").unwrap(),
            groups: vec![Name::parse("support-leads").unwrap()],
            token_id: None,
            admin: false,
        }
    }

    /// 20 small refunds (`logged`, every one sampled), 8 of them flagged.
    async fn flagged_history(server: &Server) {
        let store = server.store.as_ref();
        for i in 0..20 {
            let mut proposal = ProposedAction::new(
                ActionName::parse("refund.create").unwrap(),
                AgentName::parse("support-bot").unwrap(),
            );
            proposal.args = json!({"amount": 10}).as_object().unwrap().clone();
            let new = NewAction::classify(&Policy::parse(POLICY).unwrap(), proposal, Utc::now());
            assert_eq!(new.tier, Tier::Logged);
            let id = store.submit(new).await.unwrap().record.id;
            let verdict = if i < 8 {
                ReviewVerdict::Flag
            } else {
                ReviewVerdict::Ok
            };
            let review = NewReview {
                verdict,
                note: Some("x".into()),
            };
            store.review(id, lead(), review, Utc::now()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_regression_reaches_a_webhook_once_with_its_evidence_and_revert() {
        let hook = Receiver::start(Behaviour::Ok).await;
        let other = Receiver::start(Behaviour::Ok).await;
        let toml = format!(
            "public_url = \"https://countersign.example.com\"\n{}{}",
            webhook(
                "leads",
                &format!("{}/hook", hook.base),
                "events = [\"graduation_regressed\"]\nactions = [\"refund.*\"]"
            ),
            // Follows other actions only: does not hear this regression.
            webhook(
                "tickets",
                &format!("{}/hook", other.base),
                "events = [\"graduation_regressed\"]\nactions = [\"ticket.*\"]"
            ),
        );
        let server = spawn_with(Options {
            notify: Some(notifications(&toml)),
            ..Options::default()
        })
        .await;
        flagged_history(&server).await;
        let fired = countersign_server::graduation_watch::check(&server.state)
            .await
            .unwrap();
        assert_eq!(fired.len(), 1);
        // Checked again (a restart, another instance): not told again.
        let again = countersign_server::graduation_watch::check(&server.state)
            .await
            .unwrap();
        assert!(again.is_empty());

        let got = hook.until_kind("graduation.regressed", 1).await;
        let event = verified(&got[0], SECRET);
        assert!(
            got[0].header("webhook-id").starts_with("msg_graduation_"),
            "{got:?}"
        );
        let data = &event["data"];
        assert_eq!(data["event"], "graduation_regressed");
        assert_eq!(data["rule"], "small refunds");
        assert_eq!(data["action"], "refund.create");
        assert_eq!(data["evidence"]["reviewed"], json!(20));
        assert_eq!(data["evidence"]["flagged"], json!(8));
        assert_eq!(data["url"], "https://countersign.example.com/");
        let text = data["evidence_text"].as_str().unwrap();
        assert!(
            text.starts_with("8 of 20 reviewed actions flagged (40%"),
            "{text}"
        );
        assert_eq!(
            data["text"],
            "Graduated rule “small refunds” regressed for refund.create: post-hoc reviewers flagged too many of its actions; the revert (logged → approve) is ready"
        );
        let diff = data["revert"]["diff"].as_str().unwrap();
        assert!(
            diff.contains("-tier = \"logged\"") && diff.contains("+tier = \"approve\""),
            "{diff}"
        );

        // Exactly one delivery of it exists, to `leads`, and it was delivered.
        let deliveries = ok(server.get("/v1/deliveries?limit=1000", &server.admin).await);
        let regressions: Vec<&Value> = deliveries["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["event"] == "graduation_regressed")
            .collect();
        assert_eq!(regressions.len(), 1, "{deliveries}");
        assert_eq!(regressions[0]["target"], "leads");
        assert_eq!(regressions[0]["action_id"], "");
        assert_eq!(hook.got().len(), 1, "one message");
        assert!(other.got().is_empty());

        // The warning in the figures, next to the per-action signals.
        let stats = ok(server.get("/v1/stats", &server.lead).await);
        let warnings = stats["regressions"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{stats}");
        assert_eq!(warnings[0]["rule"], "small refunds");
        assert_eq!(warnings[0]["flagged"], json!(8));
        let message = warnings[0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("graduated rule “small refunds” regressed for refund.create")
                && message.ends_with("`countersign policy suggest` shows it"),
            "{message}"
        );
    }
}
