//! Grants: a reviewer lets an agent run matching actions without asking, for a while and a
//! number of uses. Attacked the way an agent's owner, an outsider, a careless reviewer and
//! twenty racing submissions would.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_server::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{Options, Server, expect, id, ok, spawn, spawn_with};

/// A refund the policy sends to `support-leads` for approval (confident enough not to be
/// raised).
fn refund(amount: u64) -> Value {
    json!({"action": "refund.create", "args": {"amount": amount}, "confidence": 0.95})
}

async fn give(server: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    server.call("POST", "/v1/grants", token, Some(body)).await
}

async fn give_ok(server: &Server, body: Value) -> Value {
    let (status, grant) = give(server, &server.lead, body).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    grant
}

fn refunds_grant(uses: Option<u32>) -> Value {
    let mut body = json!({
        "agent": "support-bot",
        "actions": "refund.create",
        "when": "args.amount <= 500",
        "duration": "1h",
        "reason": "duplicate charges after the order-sync outage",
    });
    if let Some(uses) = uses {
        body["max_uses"] = json!(uses);
    }
    body
}

async fn grant_state(server: &Server, grant_id: &str) -> Value {
    ok(server
        .get(&format!("/v1/grants/{grant_id}"), &server.lead)
        .await)
}

#[tokio::test]
async fn a_grant_lets_matching_actions_run_and_every_use_is_audited() {
    let server = spawn().await;
    let grant = give_ok(&server, refunds_grant(Some(3))).await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(grant["covers"], json!(["large refunds"]));
    assert_eq!(grant["live"], true);
    assert_eq!(grant["granted_by"], "rita");

    let allowed = server.submit(refund(300)).await;
    assert_eq!(allowed["status"], "allowed");
    assert_eq!(allowed["tier"], "approve", "the policy's tier stands");
    assert_eq!(allowed["rule"], "large refunds");
    assert_eq!(allowed["grant"], grant_id.as_str());
    let reason = allowed["reason"].as_str().unwrap();
    assert!(
        reason.contains(&grant_id) && reason.contains("rita"),
        "the reason says a grant, not a rule, allowed it: {reason}"
    );

    // Outside the grant's condition, another agent, a low confidence: asked as before.
    let too_large = server.submit(refund(600)).await;
    assert_eq!(
        (&too_large["status"], &too_large["grant"]),
        (&json!("pending"), &Value::Null)
    );
    let unsure = server
        .submit(json!({"action": "refund.create", "args": {"amount": 10_000}, "confidence": 0.2}))
        .await;
    assert_eq!(unsure["status"], "pending");
    let unsure_small = server
        .submit(json!({"action": "refund.create", "args": {"amount": 200}, "confidence": 0.2}))
        .await;
    assert_eq!(
        unsure_small["status"], "pending",
        "an action raised for low confidence is always looked at"
    );
    let (status, other) = server
        .call(
            "POST",
            "/v1/actions",
            &server.other_agent,
            Some(refund(300)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(other["status"], "pending", "a grant covers its agent only");

    assert_eq!(grant_state(&server, &grant_id).await["uses"], 1);

    // The audit log names the grant at its creation and at each use, and still verifies.
    let audit = ok(server.get("/v1/audit?limit=1000", &server.admin).await);
    let entries = audit["items"].as_array().unwrap();
    let created = entries
        .iter()
        .find(|e| e["kind"] == "grant_created")
        .expect("a grant_created entry");
    assert_eq!(created["actor"], "rita");
    let used: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "grant_used")
        .collect();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["action_id"], id(&allowed).as_str());
    assert!(
        used[0]["body"].to_string().contains(&grant_id),
        "{}",
        used[0]
    );
    let verified = ok(server.get("/v1/audit/verify", &server.admin).await);
    assert_eq!(verified["ok"], true, "{verified}");
}

#[tokio::test]
async fn twenty_racing_submissions_get_exactly_the_uses_granted() {
    let server = Arc::new(spawn().await);
    let grant = give_ok(&server, refunds_grant(Some(5))).await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let server = server.clone();
        tasks.push(tokio::spawn(
            async move { server.submit(refund(200 + i)).await },
        ));
    }
    let mut allowed = 0;
    for task in tasks {
        let action = task.await.unwrap();
        match action["status"].as_str().unwrap() {
            "allowed" => {
                assert_eq!(action["grant"], grant_id.as_str());
                allowed += 1;
            }
            "pending" => assert_eq!(action["grant"], Value::Null),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 5, "5 uses granted, 5 allowed");
    let state = grant_state(&server, &grant_id).await;
    assert_eq!((&state["uses"], &state["live"]), (&json!(5), &json!(false)));
    // Used up: the next one is asked about.
    assert_eq!(server.submit(refund(200)).await["status"], "pending");
}

#[tokio::test]
async fn the_owner_outsiders_and_agents_may_not_grant() {
    let server = spawn().await;
    let body = refunds_grant(None);
    let answer = give(&server, &server.owner, body.clone()).await;
    expect(answer, StatusCode::FORBIDDEN, "owner_may_not_grant");
    let answer = give(&server, &server.sales, body.clone()).await;
    let refused = expect(answer, StatusCode::FORBIDDEN, "not_an_approver");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("large refunds")
    );
    let answer = give(&server, &server.agent, body.clone()).await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");
    // An agent cannot grant itself anything, even with an admin-looking body.
    let mut self_grant = body.clone();
    self_grant["agent"] = json!("other-bot");
    let answer = give(&server, &server.other_agent, self_grant).await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");
    // Nothing was given: the agent is still asked.
    assert_eq!(server.submit(refund(300)).await["status"], "pending");
    let list = ok(server.get("/v1/grants", &server.lead).await);
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn confirm_and_deny_are_never_granted() {
    let server = spawn().await;
    let answer = give(
        &server,
        &server.lead,
        json!({"agent": "support-bot", "actions": "account.close", "duration": "1h"}),
    )
    .await;
    expect(answer, StatusCode::UNPROCESSABLE_ENTITY, "nothing_to_grant");
    let answer = give(
        &server,
        &server.lead,
        json!({"agent": "support-bot", "actions": "db.*", "duration": "1h"}),
    )
    .await;
    // `db.*` reaches the reads (`db.get`), the deny rule and the defaults (any reviewer
    // approves): the grant is given for the defaults only.
    let (status, grant) = answer;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert_eq!(grant["covers"], json!(["defaults"]));
    assert_eq!(
        grant["excluded"],
        json!([
            {"rule": "reads", "why": "auto: runs without a grant"},
            {"rule": "forbidden", "why": "deny: never granted"},
        ])
    );

    // Everything, by someone who may approve every rule.
    let everything = give_ok(
        &server,
        json!({"agent": "support-bot", "actions": "*", "duration": "1h"}),
    )
    .await;
    let excluded: Vec<&str> = everything["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert!(excluded.contains(&"account closure") && excluded.contains(&"forbidden"));
    let closure = server
        .submit(json!({"action": "account.close", "args": {"account": "acme"}}))
        .await;
    assert_eq!(
        (&closure["status"], &closure["grant"]),
        (&json!("pending"), &Value::Null)
    );
    let drop = server.submit(json!({"action": "db.drop"})).await;
    assert_eq!(drop["status"], "denied");
    let email = server.submit(json!({"action": "email.send"})).await;
    assert_eq!(
        email["status"], "allowed",
        "the defaults' approve tier is granted"
    );
}

#[tokio::test]
async fn a_revoked_grant_covers_nothing_from_the_next_submission() {
    let server = spawn().await;
    let grant = give_ok(&server, refunds_grant(None)).await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(server.submit(refund(300)).await["status"], "allowed");

    let revoke = format!("/v1/grants/{grant_id}/revoke");
    let answer = server.call("POST", &revoke, &server.agent, None).await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");
    // Any reviewer may take autonomy away, not only the giver.
    let revoked = ok(server.call("POST", &revoke, &server.sales, None).await);
    assert_eq!(
        (&revoked["live"], &revoked["revoked_by"]),
        (&json!(false), &json!("sally"))
    );
    assert_eq!(server.submit(refund(300)).await["status"], "pending");
    let again = ok(server.call("POST", &revoke, &server.lead, None).await);
    assert_eq!(
        again["revoked_by"], "sally",
        "revoking twice changes nothing"
    );
    let answer = server
        .call("POST", "/v1/grants/nope/revoke", &server.lead, None)
        .await;
    expect(answer, StatusCode::NOT_FOUND, "not_found");
    let audit = ok(server.get("/v1/audit?limit=1000", &server.admin).await);
    let revocations = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "grant_revoked")
        .count();
    assert_eq!(revocations, 1);
}

#[tokio::test]
async fn a_grant_expires_on_its_own() {
    let start: DateTime<Utc> = "2026-11-30T09:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let server = spawn_with(Options {
        clock: clock.clone(),
        ..Options::default()
    })
    .await;
    let grant = give_ok(&server, refunds_grant(None)).await;
    assert_eq!(grant["expires_at"], "2026-11-30T10:00:00Z");
    clock.advance(TimeDelta::minutes(59));
    assert_eq!(server.submit(refund(300)).await["status"], "allowed");
    clock.advance(TimeDelta::minutes(1));
    assert_eq!(server.submit(refund(300)).await["status"], "pending");
    let live = ok(server.get("/v1/grants?live=true", &server.lead).await);
    assert_eq!(live["items"], json!([]));
    let all = ok(server.get("/v1/grants", &server.lead).await);
    assert_eq!(all["items"][0]["live"], false);
}

#[tokio::test]
async fn agents_see_only_their_own_grants() {
    let server = spawn().await;
    let grant = give_ok(&server, refunds_grant(None)).await;
    let grant_id = grant["id"].as_str().unwrap();
    let mine = ok(server.get("/v1/grants", &server.agent).await);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let theirs = ok(server
        .get("/v1/grants?agent=support-bot", &server.other_agent)
        .await);
    assert_eq!(theirs["items"], json!([]), "the agent filter is forced");
    let answer = server
        .get(&format!("/v1/grants/{grant_id}"), &server.other_agent)
        .await;
    expect(answer, StatusCode::NOT_FOUND, "not_found");
    let answer = server.get("/v1/grants", "").await;
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_grants_are_refused_with_a_reason() {
    let server = spawn().await;
    let with = |field: &str, value: Value| {
        let mut body = refunds_grant(Some(2));
        body[field] = value;
        body
    };
    let cases = [
        (with("duration", json!("0h")), "invalid_duration"),
        (with("duration", json!("31d")), "invalid_duration"),
        (with("duration", json!("an hour")), "invalid_duration"),
        (with("max_uses", json!(0)), "invalid_max_uses"),
        (with("when", json!("args.amount <=")), "invalid_condition"),
        (with("when", json!("argz.amount < 5")), "invalid_condition"),
        (with("when", json!("x".repeat(5000))), "invalid_condition"),
        (with("actions", json!("refund create")), "invalid_actions"),
        (with("agent", json!("nobody")), "unknown_agent"),
        (with("agent", json!("no body")), "invalid_agent_name"),
        (with("reason", json!("r".repeat(5000))), "reason_too_long"),
    ];
    for (body, code) in cases {
        let answer = give(&server, &server.lead, body.clone()).await;
        expect(answer, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let answer = give(&server, &server.lead, with("max_uses", json!(-1))).await;
    assert!(answer.0.is_client_error(), "{answer:?}");
    let answer = give(&server, &server.lead, with("surprise", json!(true))).await;
    assert!(answer.0.is_client_error(), "{answer:?}");
    let answer = give(&server, &server.lead, json!({"agent": "support-bot"})).await;
    assert!(answer.0.is_client_error(), "{answer:?}");
    let list = ok(server.get("/v1/grants", &server.lead).await);
    assert_eq!(list["items"], json!([]), "nothing was stored");
    let answer = server.get("/v1/grants?live=maybe", &server.lead).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{answer:?}");
}

#[tokio::test]
async fn an_agent_holds_a_bounded_number_of_live_grants() {
    let server = spawn().await;
    for _ in 0..countersign_server::grants::MAX_LIVE_GRANTS_PER_AGENT {
        give_ok(&server, refunds_grant(Some(1))).await;
    }
    let answer = give(&server, &server.lead, refunds_grant(Some(1))).await;
    expect(answer, StatusCode::CONFLICT, "too_many_grants");
    // Using one up frees a place.
    assert_eq!(server.submit(refund(300)).await["status"], "allowed");
    give_ok(&server, refunds_grant(Some(1))).await;
}
