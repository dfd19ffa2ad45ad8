//! Access rules, one case each: who may submit, read, list, decide, cancel, read the audit
//! log and manage tokens, and what everyone else is answered.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{expect, large_refund, ok, spawn};

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let server = spawn().await;
    for (token, what) in [("", "no token"), ("cs_not-a-real-token", "unknown token")] {
        let (status, body) = server.get("/v1/actions", token).await;
        assert_eq!(
            (status, crate::fixture::code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{what}"
        );
    }
    let response = server
        .client
        .get(server.url(&["v1", "actions"], &[]))
        .header("authorization", format!("Basic {}", server.lead))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "not a bearer token"
    );
}

#[tokio::test]
async fn agents_cannot_decide() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    let answer = server
        .decide(&id, &server.agent, json!({"verdict": "approve"}))
        .await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");
}

#[tokio::test]
async fn reviewers_cannot_submit() {
    let server = spawn().await;
    let submit = json!({"action": "order.get"});
    let answer = server
        .call("POST", "/v1/actions", &server.lead, Some(submit))
        .await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");
}

#[tokio::test]
async fn agents_cannot_list_the_queue() {
    let server = spawn().await;
    let answer = server.get("/v1/actions", &server.agent).await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");
}

#[tokio::test]
async fn agents_read_only_their_own_actions() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    ok(server.show(&id, &server.agent).await);
    ok(server.show(&id, &server.lead).await);
    let answer = server.show(&id, &server.other_agent).await;
    expect(answer, StatusCode::NOT_FOUND, "not_found");
    let events = server.events(&id, &server.other_agent).await;
    assert_eq!(events.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reviewers_outside_the_approver_groups_cannot_decide() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    let answer = server
        .decide(&id, &server.sales, json!({"verdict": "approve"}))
        .await;
    expect(answer, StatusCode::FORBIDDEN, "not_an_approver");
}

#[tokio::test]
async fn owners_never_decide_on_their_agents_actions() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    for verdict in ["approve", "reject"] {
        let answer = server
            .decide(&id, &server.owner, json!({"verdict": verdict}))
            .await;
        expect(answer, StatusCode::FORBIDDEN, "own_agent");
    }
}

#[tokio::test]
async fn no_one_approves_twice() {
    let server = spawn().await;
    let id = server.submit_id(json!({"action": "account.close"})).await;
    let approve = json!({"verdict": "approve", "confirm": "account.close"});
    ok(server.decide(&id, &server.lead, approve.clone()).await);
    let answer = server.decide(&id, &server.lead, approve).await;
    expect(answer, StatusCode::FORBIDDEN, "already_approved");
}

#[tokio::test]
async fn decisions_on_finished_actions_conflict() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    ok(server
        .decide(&id, &server.lead, json!({"verdict": "reject"}))
        .await);
    let answer = server
        .decide(&id, &server.lead2, json!({"verdict": "approve"}))
        .await;
    expect(answer, StatusCode::CONFLICT, "not_pending");
}

#[tokio::test]
async fn only_admins_read_the_audit_log_and_create_tokens() {
    let server = spawn().await;
    for path in ["/v1/audit", "/v1/audit/verify"] {
        expect(
            server.get(path, &server.lead).await,
            StatusCode::FORBIDDEN,
            "wrong_role",
        );
    }
    let token = json!({"role": "agent", "name": "new-bot"});
    let (status, _) = server
        .call("POST", "/v1/tokens", &server.lead, Some(token.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = server
        .call("POST", "/v1/tokens", &server.admin, Some(token))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap();
    let submit = json!({"action": "order.get"});
    let (status, body) = server
        .call("POST", "/v1/actions", secret, Some(submit))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["agent"], "new-bot");
}

#[tokio::test]
async fn admins_list_and_revoke_tokens_and_a_revoked_token_stops_at_once() {
    let server = spawn().await;
    let (status, _) = server.get("/v1/tokens", &server.lead).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let list = ok(server.get("/v1/tokens", &server.admin).await);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 8, "{list}");
    assert!(
        !list.to_string().contains(&server.agent),
        "secrets are never listed"
    );
    let bot = items.iter().find(|t| t["name"] == "support-bot").unwrap();
    assert_eq!(bot["role"], "agent");
    assert_eq!(bot["owner"], "olivia");
    assert_eq!(bot["revoked"], false);
    let revoke = server.url(
        &["v1", "tokens", bot["id"].as_str().unwrap(), "revoke"],
        &[],
    );

    let (status, _) = server
        .send("POST", revoke.clone(), &server.lead, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let revoked = ok(server
        .send("POST", revoke.clone(), &server.admin, None)
        .await);
    assert_eq!(revoked["revoked"], true);
    let submit = json!({"action": "order.get"});
    let (status, body) = server
        .call("POST", "/v1/actions", &server.agent, Some(submit))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Again: the same answer, and one audit entry only.
    let again = ok(server.send("POST", revoke, &server.admin, None).await);
    assert_eq!(again["revoked"], true);
    let (status, missing) = server
        .call("POST", "/v1/tokens/nope/revoke", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (_, audit) = server.get("/v1/audit?limit=1000", &server.admin).await;
    let revocations: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "token_revoked")
        .collect();
    assert_eq!(revocations.len(), 1, "{audit}");
    assert_eq!(revocations[0]["actor"], "ada");
}
