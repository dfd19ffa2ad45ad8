//! Hardening: one person is one person (names compared without regard to case, one owner
//! per agent, separation of duties in post-hoc review, revocation ends open waits).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use countersign_store::Actor;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{Server, SseReader, code, large_refund, spawn};
use crate::waiting::until_watched;

/// Creates a token through the API as the admin.
async fn create_token(server: &Server, body: Value) -> (StatusCode, Value) {
    server
        .call("POST", "/v1/tokens", &server.admin, Some(body))
        .await
}

async fn created(server: &Server, body: Value) -> Value {
    let (status, token) = create_token(server, body).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    token
}

fn secret(token: &Value) -> &str {
    token["token"].as_str().unwrap()
}

fn id(action: &Value) -> String {
    action["id"].as_str().unwrap().to_owned()
}

/// The fixture's tokens by name (one each), for their ids.
async fn token_ids(server: &Server) -> HashMap<String, String> {
    let (status, list) = server.call("GET", "/v1/tokens", &server.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let field = |f: &str| t[f].as_str().unwrap().to_owned();
            (field("name"), field("id"))
        })
        .collect()
}

#[tokio::test]
async fn a_case_variant_of_the_owner_is_the_owner() {
    let server = spawn().await;
    // `Olivia` is `olivia`, who owns support-bot: a new token for her is hers.
    let olivia = created(
        &server,
        json!({"role": "reviewer", "name": "Olivia", "groups": ["Support-Leads"]}),
    )
    .await;
    assert_eq!(
        (&olivia["name"], &olivia["groups"]),
        (&json!("olivia"), &json!(["support-leads"]))
    );
    let pending = server.submit(large_refund()).await;
    let (status, body) = server
        .decide(
            &id(&pending),
            secret(&olivia),
            json!({"verdict": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "own_agent");
}

#[tokio::test]
async fn two_spellings_of_one_person_are_one_confirmer() {
    let server = spawn().await;
    let big_rita = created(
        &server,
        json!({"role": "reviewer", "name": "Rita", "groups": ["admins"]}),
    )
    .await;
    assert_eq!(big_rita["name"], "rita", "the canonical identity");
    let closure = server.submit(json!({"action": "account.close"})).await;
    let confirm = json!({"verdict": "approve", "confirm": "account.close"});
    let (status, body) = server
        .decide(&id(&closure), &server.lead, confirm.clone())
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("pending")),
        "{body}"
    );
    let (status, body) = server
        .decide(&id(&closure), secret(&big_rita), confirm.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "already_approved");
    let (status, body) = server.decide(&id(&closure), &server.lead2, confirm).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("approved")),
        "{body}"
    );
}

/// `(request, status, code)`: names a token may not take.
const REFUSED: &[(&str, u16, &str)] = &[
    (
        r#"{"role": "admin", "name": "system"}"#,
        422,
        "reserved_name",
    ),
    (
        r#"{"role": "reviewer", "name": "CLI"}"#,
        422,
        "reserved_name",
    ),
    (r#"{"role": "agent", "name": "Cli"}"#, 422, "reserved_name"),
    (
        r#"{"role": "agent", "name": "new-bot", "owner": "System"}"#,
        422,
        "reserved_name",
    ),
    (
        r#"{"role": "reviewer", "name": "tom", "owner": "olivia"}"#,
        422,
        "invalid_owner",
    ),
    (
        r#"{"role": "agent", "name": "new-bot", "owner": "New-Bot"}"#,
        422,
        "invalid_owner",
    ),
    (
        r#"{"role": "agent", "name": "support-bot", "owner": "mallory"}"#,
        409,
        "owner_conflict",
    ),
    (
        r#"{"role": "agent", "name": "Support-Bot", "owner": "Mallory"}"#,
        409,
        "owner_conflict",
    ),
    (
        r#"{"role": "reviewer", "name": "support-bot"}"#,
        409,
        "name_is_agent",
    ),
    (
        r#"{"role": "agent", "name": "new-bot", "owner": "other-bot"}"#,
        409,
        "name_is_agent",
    ),
    (
        r#"{"role": "agent", "name": "rita"}"#,
        409,
        "name_is_person",
    ),
    (
        r#"{"role": "agent", "name": "olivia", "owner": "sam"}"#,
        409,
        "name_is_person",
    ),
];

#[tokio::test]
async fn names_a_token_may_not_take() {
    // (Names an earlier version stored in another case: the store's tests, which can write
    // such rows.)
    let server = spawn().await;
    for (request, status, expected) in REFUSED {
        let body: Value = serde_json::from_str(request).unwrap();
        let (found, answer) = create_token(&server, body).await;
        assert_eq!(
            (found.as_u16(), code(&answer)),
            (*status, *expected),
            "{request}: {answer}"
        );
    }
    let (_, answer) = create_token(
        &server,
        json!({"role": "agent", "name": "support-bot", "owner": "mallory"}),
    )
    .await;
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"olivia\""),
        "the message names the owner: {message}"
    );
}

#[tokio::test]
async fn an_agent_name_has_one_owner() {
    let server = spawn().await;
    // A second support-bot token without an owner is support-bot's: owned by olivia.
    let second = created(&server, json!({"role": "agent", "name": "support-bot"})).await;
    assert_eq!(second["owner"], "olivia");
    let (status, pending) = server
        .call("POST", "/v1/actions", secret(&second), Some(large_refund()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pending}");
    let (status, body) = server
        .decide(&id(&pending), &server.owner, json!({"verdict": "approve"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "own_agent");
    // Naming the same owner in another case is naming the same owner.
    let third = created(
        &server,
        json!({"role": "agent", "name": "Support-Bot", "owner": "OLIVIA"}),
    )
    .await;
    assert_eq!(
        (&third["name"], &third["owner"]),
        (&json!("support-bot"), &json!("olivia"))
    );
}

#[tokio::test]
async fn the_owner_may_not_review_its_agents_sampled_actions() {
    let server = spawn().await;
    let logged = server
        .submit(json!({"action": "refund.create", "args": {"amount": 50}}))
        .await;
    assert_eq!(logged["review"], "open");
    let path = format!("/v1/actions/{}/review", id(&logged));
    for verdict in ["ok", "flag"] {
        let (status, body) = server
            .call(
                "POST",
                &path,
                &server.owner,
                Some(json!({"verdict": verdict})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{verdict}: {body}");
        assert_eq!(code(&body), "own_agent");
    }
    let (status, body) = server
        .call("POST", &path, &server.lead, Some(json!({"verdict": "ok"})))
        .await;
    assert_eq!(
        (status, &body["review"]),
        (StatusCode::OK, &json!("ok")),
        "{body}"
    );
}

#[tokio::test]
async fn the_audit_log_records_the_token_next_to_the_name() {
    let server = spawn().await;
    let pending = server.submit(large_refund()).await;
    server
        .decide(&id(&pending), &server.lead, json!({"verdict": "approve"}))
        .await;
    let (status, _) = server
        .call(
            "POST",
            &format!("/v1/actions/{}/outcome", id(&pending)),
            &server.agent,
            Some(json!({"status": "succeeded"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cancelled = server.submit(json!({"action": "email.send"})).await;
    let (status, _) = server
        .call(
            "POST",
            &format!("/v1/actions/{}/cancel", id(&cancelled)),
            &server.agent,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let logged = server
        .submit(json!({"action": "refund.create", "args": {"amount": 5}}))
        .await;
    let (status, _) = server
        .call(
            "POST",
            &format!("/v1/actions/{}/review", id(&logged)),
            &server.lead,
            Some(json!({"verdict": "ok"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let temp = created(&server, json!({"role": "agent", "name": "temp-bot"})).await;
    let (status, _) = server
        .call(
            "POST",
            &format!("/v1/tokens/{}/revoke", temp["id"].as_str().unwrap()),
            &server.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let ids = token_ids(&server).await;
    let (status, audit) = server
        .call("GET", "/v1/audit?limit=1000", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut by_kind: HashMap<String, usize> = HashMap::new();
    for entry in audit["items"].as_array().unwrap() {
        let actor = entry["actor"].as_str().unwrap();
        let token = entry["body"]["actor_token_id"].as_str();
        // The fixture's tokens were made on the store by "test", which presents no token.
        let expected = match actor {
            "system" | "cli" | "test" => None,
            name => Some(ids[name].as_str()),
        };
        assert_eq!(token, expected, "{entry}");
        if token.is_some() {
            *by_kind
                .entry(entry["kind"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for kind in [
        "submitted",
        "decided",
        "outcome",
        "cancelled",
        "reviewed",
        "token_created",
        "token_revoked",
    ] {
        assert!(
            by_kind.contains_key(kind),
            "a {kind} entry with its token: {by_kind:?}"
        );
    }
}

/// Three pending actions: one watched by an event stream and one by a long-poll, both
/// opened with the agent's token, and one long-polled by the lead.
struct OpenWaits {
    events: reqwest::Response,
    sse: SseReader,
    long_poll: tokio::task::JoinHandle<(StatusCode, Value)>,
    lead_poll: tokio::task::JoinHandle<(StatusCode, Value)>,
    lead_polled: String,
}

async fn open_waits(server: &Arc<Server>) -> OpenWaits {
    let streamed = id(&server.submit(large_refund()).await);
    let polled = id(&server.submit(large_refund()).await);
    let lead_polled = id(&server.submit(large_refund()).await);
    let mut events = server.events(&streamed, &server.agent).await;
    assert_eq!(events.status(), StatusCode::OK);
    let mut sse = SseReader::default();
    assert_eq!(sse.next(&mut events).await.unwrap()["status"], "pending");
    let poll = |token: &str, action: &str| {
        let (server, token) = (server.clone(), token.to_owned());
        let action = action.to_owned();
        tokio::spawn(async move { server.wait(&action, &token, 300).await })
    };
    let long_poll = poll(&server.agent, &polled);
    let lead_poll = poll(&server.lead, &lead_polled);
    // A wait watches its token before its action: with all three actions watched, all
    // three waits are open.
    until_watched(server, 3).await;
    OpenWaits {
        events,
        sse,
        long_poll,
        lead_poll,
        lead_polled,
    }
}

/// Both of the agent's waits end within `bound`; the lead's stays open.
async fn assert_agent_waits_end(server: &Server, mut waits: OpenWaits, bound: Duration) {
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(bound, waits.long_poll)
        .await
        .expect("the revoked token's long-poll ends, not its 300 s wait")
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    let end = tokio::time::timeout(bound, waits.sse.next(&mut waits.events))
        .await
        .expect("the revoked token's event stream ends");
    assert!(end.is_none(), "no further event: {end:?}");
    assert!(started.elapsed() <= bound);
    // Only the revoked token's waits end: the lead still waits, until a decision.
    assert!(!waits.lead_poll.is_finished());
    server
        .decide(
            &waits.lead_polled,
            &server.lead2,
            json!({"verdict": "reject"}),
        )
        .await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), waits.lead_poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("rejected"))
    );
}

async fn agent_token_id(server: &Server) -> String {
    token_ids(server).await["support-bot"].clone()
}

#[tokio::test]
async fn revoking_a_token_ends_its_open_waits_at_once() {
    let server = Arc::new(spawn().await);
    // Only the revocation itself can end the waits: no check for other processes'
    // revocations runs during this test.
    server
        .state
        .set_revocation_check_interval(Duration::from_secs(3600));
    let waits = open_waits(&server).await;
    let revoke = format!("/v1/tokens/{}/revoke", agent_token_id(&server).await);
    let (status, body) = server.call("POST", &revoke, &server.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_agent_waits_end(&server, waits, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_token_revoked_by_another_process_ends_its_waits_within_the_bound() {
    let server = Arc::new(spawn().await);
    let waits = open_waits(&server).await;
    let token_id = agent_token_id(&server).await;
    // `countersign token revoke --db`: another store on the same file, whose revocation
    // this server hears nothing of.
    let path = server.dir.path().join("countersign.db");
    let other = countersign_store::open(path.to_str().unwrap())
        .await
        .unwrap();
    other
        .revoke_token(token_id, Actor::named("cli"), chrono::Utc::now())
        .await
        .unwrap();
    other.close().await;
    // The check runs every second; the rest is slack for a loaded machine.
    assert_agent_waits_end(&server, waits, Duration::from_secs(5)).await;
}
