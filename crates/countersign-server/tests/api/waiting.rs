//! Waiting for a decision: long-polls and event streams are woken by the change of their own
//! action, not by a timeout or by another action's change.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{Server, SseReader, large_refund, ok, spawn};

#[tokio::test]
async fn long_poll_and_events_wake_on_decision() {
    let server = Arc::new(spawn().await);
    let id = server.submit_id(large_refund()).await;

    // A wait that nothing ends returns the pending action when it runs out.
    let still = ok(server.wait(&id, &server.agent, 1).await);
    assert_eq!(still["status"], "pending");

    let mut events = server.events(&id, &server.agent).await;
    assert_eq!(events.status(), StatusCode::OK);
    let mut sse = SseReader::default();
    let first = sse.next(&mut events).await.expect("a first event");
    assert_eq!(
        first["status"], "pending",
        "the stream starts with the current state"
    );

    let waiter = tokio::spawn({
        let (server, id) = (server.clone(), id.clone());
        async move { server.wait(&id, &server.agent, 300).await }
    });
    let (_, decided) = server
        .decide(&id, &server.lead, json!({"verdict": "approve"}))
        .await;
    assert_eq!(decided["status"], "approved");

    let woken = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the long-poll is woken by the decision, not by its 300 s timeout")
        .unwrap();
    assert_eq!(ok(woken)["status"], "approved");
    let second = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the event stream is woken by the decision")
        .expect("a second event");
    assert_eq!(second["status"], "approved");
    assert_eq!(second["id"], id.as_str());
    let end = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends after a final status");
}

/// The `countersign_watched_actions` gauge.
async fn watched_actions(server: &Server) -> u64 {
    let (_, metrics) = server.get("/metrics", "").await;
    metrics
        .as_str()
        .expect("the metrics as text")
        .lines()
        .find_map(|l| l.strip_prefix("countersign_watched_actions "))
        .and_then(|v| v.parse().ok())
        .expect("the gauge is exported")
}

/// Polls the gauge until it reads `expected` (it follows requests the server is still
/// setting up or tearing down; nothing to be woken by, so a short sleep between reads).
pub async fn until_watched(server: &Server, expected: u64) {
    for _ in 0..600 {
        if watched_actions(server).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("watched actions never reached {expected}");
}

#[tokio::test]
async fn each_long_poll_wakes_for_its_own_action_only() {
    let server = Arc::new(spawn().await);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(server.submit_id(large_refund()).await);
    }
    let waiters: Vec<_> = ids
        .iter()
        .map(|id| {
            let (server, id) = (server.clone(), id.clone());
            tokio::spawn(async move { server.wait(&id, &server.agent, 300).await })
        })
        .collect();
    until_watched(&server, 5).await;
    let (_, decided) = server
        .decide(&ids[2], &server.lead, json!({"verdict": "approve"}))
        .await;
    assert_eq!(decided["status"], "approved");
    let mut waiters = waiters.into_iter().map(Some).collect::<Vec<_>>();
    let woken = tokio::time::timeout(Duration::from_secs(60), waiters[2].take().unwrap())
        .await
        .expect("woken by its own decision")
        .unwrap();
    assert_eq!(ok(woken)["status"], "approved");
    until_watched(&server, 4).await;
    // The others are still waiting: their actions are pending, and nothing woke them.
    for waiter in waiters.iter().flatten() {
        assert!(!waiter.is_finished());
    }
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 2) {
        ok(server.cancel(id, &server.agent).await);
        let woken = tokio::time::timeout(Duration::from_secs(60), waiters[i].take().unwrap())
            .await
            .expect("woken by the cancellation")
            .unwrap();
        assert_eq!(woken.1["status"], "cancelled");
    }
    until_watched(&server, 0).await;
}
