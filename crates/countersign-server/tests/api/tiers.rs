//! The life of an action in each tier: answered at once (`auto`, `deny`), allowed and
//! sampled for post-hoc review (`logged`), approved, rejected, modified or cancelled
//! (`approve`), and confirmed by two people who re-type the name (`confirm`).

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::Policy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{POLICY, expect, id, large_refund, ok, spawn};

#[tokio::test]
async fn auto_and_deny_tiers_answer_at_once() {
    let server = spawn().await;
    let auto = server.submit(json!({"action": "order.get"})).await;
    assert_eq!(auto["status"], "allowed");
    assert_eq!(auto["tier"], "auto");
    assert_eq!(auto["rule"], "reads");
    assert_eq!(auto["args"], json!({}));
    assert_eq!(
        auto["policy_hash"],
        Policy::parse(POLICY).unwrap().hash(),
        "each action records the policy version that classified it"
    );
    let denied = server.submit(json!({"action": "db.drop"})).await;
    assert_eq!(denied["status"], "denied");
    assert_eq!(denied["tier"], "deny");
    // The default tier for an action no rule names.
    let other = server.submit(json!({"action": "email.send"})).await;
    assert_eq!(other["status"], "pending");
    assert_eq!(other["rule"], Value::Null);
}

#[tokio::test]
async fn logged_tier_is_allowed_and_sampled_for_review() {
    let server = spawn().await;
    let logged = server
        .submit(json!({"action": "refund.create", "args": {"amount": 50}}))
        .await;
    assert_eq!(logged["status"], "allowed");
    assert_eq!(logged["tier"], "logged");
    assert_eq!(logged["review"], "open");
    let id = id(&logged);

    let queue = ok(server.get("/v1/reviews", &server.lead).await);
    assert_eq!(queue["items"][0]["id"], id);
    let (status, _) = server.get("/v1/reviews", &server.agent).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let flag = json!({"verdict": "flag", "note": "odd"});
    let reviewed = ok(server.review(&id, &server.lead, flag).await);
    assert_eq!(reviewed["review"], "flag");
    let again = server
        .review(&id, &server.lead, json!({"verdict": "ok"}))
        .await;
    expect(again, StatusCode::CONFLICT, "already_reviewed");
    let (_, queue) = server.get("/v1/reviews", &server.lead).await;
    assert_eq!(queue["items"], json!([]));
    let (_, done) = server.get("/v1/reviews?status=done", &server.lead).await;
    assert_eq!(done["items"][0]["id"], id);

    // An action that was not sampled is not reviewable.
    let auto = server.submit_id(json!({"action": "order.get"})).await;
    let answer = server
        .review(&auto, &server.lead, json!({"verdict": "ok"}))
        .await;
    expect(answer, StatusCode::CONFLICT, "not_in_review_queue");
}

#[tokio::test]
async fn approve_tier_full_lifecycle() {
    let server = spawn().await;
    let pending = server.submit(large_refund()).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["rule"], "large refunds");
    assert_eq!(pending["approvals_required"], 1);
    assert_eq!(pending["approvers"], json!(["support-leads"]));
    let created: DateTime<Utc> = pending["created_at"].as_str().unwrap().parse().unwrap();
    let deadline: DateTime<Utc> = pending["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - created, TimeDelta::minutes(15));
    let id = id(&pending);

    let queue = ok(server.get("/v1/actions", &server.lead).await);
    assert_eq!(queue["items"][0]["id"], id);

    let approve = json!({"verdict": "approve", "reason": "checked"});
    let approved = ok(server.decide(&id, &server.lead, approve).await);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decisions"][0]["reviewer"], "rita");
    assert!(approved["decided_at"].is_string());
    let (_, read_back) = server.show(&id, &server.lead).await;
    assert_eq!(
        read_back, approved,
        "a write answers what a later read shows"
    );

    let (_, queue) = server.get("/v1/actions", &server.lead).await;
    assert_eq!(queue["items"], json!([]));
    let (_, approved_list) = server
        .get("/v1/actions?status=approved", &server.lead)
        .await;
    assert_eq!(approved_list["items"][0]["id"], id);

    let succeeded = json!({"status": "succeeded", "detail": {"refund": "r_1"}});
    let done = ok(server.outcome(&id, &server.agent, succeeded).await);
    assert_eq!(done["outcome"]["status"], "succeeded");
    let again = server
        .outcome(&id, &server.agent, json!({"status": "failed"}))
        .await;
    expect(again, StatusCode::CONFLICT, "outcome_already_recorded");
}

#[tokio::test]
async fn reject_modify_and_cancel() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    let reject = json!({"verdict": "reject", "reason": "duplicate"});
    let (_, rejected) = server.decide(&id, &server.lead, reject).await;
    assert_eq!(rejected["status"], "rejected");
    let (status, body) = server
        .outcome(&id, &server.agent, json!({"status": "succeeded"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a rejected action may not run: {body}"
    );

    let id = server.submit_id(large_refund()).await;
    let modify = json!({"verdict": "modify", "args": {"amount": 100}});
    let modified = ok(server.decide(&id, &server.lead, modify).await);
    assert_eq!(modified["status"], "approved");
    assert_eq!(modified["args"], json!({"amount": 100}));
    assert_eq!(modified["original_args"], json!({"amount": 2500}));

    let id = server.submit_id(large_refund()).await;
    let (status, _) = server.cancel(&id, &server.lead).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "reviewers do not cancel");
    let (status, body) = server.cancel(&id, &server.other_agent).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another agent's action: {body}"
    );
    let cancelled = ok(server.cancel(&id, &server.agent).await);
    assert_eq!(cancelled["status"], "cancelled");
    let again = server.cancel(&id, &server.agent).await;
    expect(again, StatusCode::CONFLICT, "not_pending");
}

#[tokio::test]
async fn confirm_tier_needs_two_people_and_the_name() {
    let server = spawn().await;
    let pending = server
        .submit(json!({"action": "account.close", "args": {"customer": "c_9"}}))
        .await;
    assert_eq!(pending["tier"], "confirm");
    assert_eq!(pending["approvals_required"], 2);
    let id = id(&pending);

    let unconfirmed = json!({"verdict": "approve"});
    let misnamed = json!({"verdict": "approve", "confirm": "account.delete"});
    let confirm = json!({"verdict": "approve", "confirm": "account.close"});
    let answer = server.decide(&id, &server.lead, unconfirmed).await;
    expect(
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmation_mismatch",
    );
    let answer = server.decide(&id, &server.lead, misnamed).await;
    expect(
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmation_mismatch",
    );
    let first = ok(server.decide(&id, &server.lead, confirm.clone()).await);
    assert_eq!(first["status"], "pending");
    let answer = server.decide(&id, &server.lead, confirm.clone()).await;
    expect(answer, StatusCode::FORBIDDEN, "already_approved");
    let second = ok(server.decide(&id, &server.admin, confirm).await);
    assert_eq!(second["status"], "approved");
}
