//! Idempotent submissions: a repeated key with the same body answers the first action, with
//! another body `422`, and concurrent duplicates become one action.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{expect, id, spawn};

#[tokio::test]
async fn idempotent_replays_and_mismatches() {
    let server = spawn().await;
    let body = json!({"action": "refund.create", "args": {"amount": 2500}, "idempotency_key": "run-77/step-4"});
    let first = server.submit(body.clone()).await;
    let (status, replay) = server
        .call("POST", "/v1/actions", &server.agent, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        replay, first,
        "a replay is the first answer, timestamps included"
    );

    // The header is the same key; key order in the body does not matter.
    let response = server
        .client
        .post(server.url(&["v1", "actions"], &[]))
        .bearer_auth(&server.agent)
        .header("Idempotency-Key", "run-77/step-4")
        .body(r#"{"args": {"amount": 2500}, "action": "refund.create"}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["id"],
        first["id"]
    );

    let other_body = json!({"action": "refund.create", "args": {"amount": 9999}, "idempotency_key": "run-77/step-4"});
    let answer = server
        .call("POST", "/v1/actions", &server.agent, Some(other_body))
        .await;
    expect(
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_mismatch",
    );
}

#[tokio::test]
async fn the_header_and_the_body_name_one_key() {
    let server = spawn().await;
    let response = server
        .client
        .post(server.url(&["v1", "actions"], &[]))
        .bearer_auth(&server.agent)
        .header("Idempotency-Key", "run-1")
        .json(&json!({"action": "refund.create", "idempotency_key": "run-2"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap();
    expect(
        (status, body),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_idempotency_key",
    );
}

#[tokio::test]
async fn concurrent_duplicates_resolve_to_one_action() {
    let server = Arc::new(spawn().await);
    let body =
        json!({"action": "refund.create", "args": {"amount": 7}, "idempotency_key": "burst"});
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let server = server.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            server
                .call("POST", "/v1/actions", &server.agent, Some(body))
                .await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let (status, value) = task.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {value}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.push(id(&value));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one action for one key");
    assert_eq!(created, 1, "exactly one answer says created");
}
