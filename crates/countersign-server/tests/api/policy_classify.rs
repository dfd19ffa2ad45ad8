//! `POST /v1/policy/classify`: what the policy in force would answer to hypothetical
//! submissions, in order, with nothing stored; and the cap on how many at once.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{code, spawn};

#[tokio::test]
async fn hypothetical_actions_are_classified_and_nothing_is_stored() {
    let server = spawn().await;
    let body = json!({"actions": [
        {"action": "order.get"},
        {"action": "db.drop", "hints": {"destructive": true}},
        {"action": "email.send", "args": {"to": "x@example.com"}},
    ]});
    let (status, answer) = server
        .call("POST", "/v1/policy/classify", &server.agent, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let summary: Vec<(Value, Value)> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["tier"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (json!("auto"), json!("allowed")),
            (json!("deny"), json!("denied")),
            (json!("approve"), json!("pending")),
        ]
    );
    assert_eq!(answer["results"][1]["rule"], "forbidden");
    let (_, queue) = server
        .call("GET", "/v1/actions?status=pending", &server.lead, None)
        .await;
    assert_eq!(queue["items"], json!([]), "nothing was submitted");
}

#[tokio::test]
async fn at_most_a_thousand_at_once() {
    let server = spawn().await;
    let actions = vec![json!({"action": "order.get"}); 1001];
    let (status, answer) = server
        .call(
            "POST",
            "/v1/policy/classify",
            &server.agent,
            Some(json!({"actions": actions})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&answer), "too_many_actions");
}
