//! Time, restarts and the documents: the SLA ladder on a virtual clock, deadlines that
//! passed while the server was down, the audit log, policy hot reload, health, metrics and
//! the OpenAPI document (its values, links and descriptions).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_server::{ManualClock, PolicySource};
use reqwest::StatusCode;
use serde_json::json;

use crate::fixture::{
    Options, POLICY, SseReader, expect, large_refund, ok, scratch, spawn, spawn_with,
};

#[tokio::test]
async fn sla_escalates_then_expires_on_a_virtual_clock() {
    let start: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let server = spawn_with(Options {
        clock: clock.clone(),
        ..Options::default()
    })
    .await;
    let id = server.submit_id(large_refund()).await;
    let answer = server
        .decide(&id, &server.finance, json!({"verdict": "approve"}))
        .await;
    expect(answer, StatusCode::FORBIDDEN, "not_an_approver");

    let mut events = server.events(&id, &server.lead).await;
    let mut sse = SseReader::default();
    assert_eq!(sse.next(&mut events).await.unwrap()["status"], "pending");

    clock.advance(TimeDelta::minutes(16));
    server.state.nudge_sla();
    let escalated = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the SLA worker escalates once the virtual deadline passed")
        .unwrap();
    assert_eq!(escalated["status"], "pending");
    assert!(
        escalated["approvers"]
            .as_array()
            .unwrap()
            .contains(&json!("finance")),
        "{escalated}"
    );
    let deadline: DateTime<Utc> = escalated["deadline"].as_str().unwrap().parse().unwrap();
    // The added groups get their full window from when the escalation happened.
    assert_eq!(
        deadline,
        start + TimeDelta::minutes(16) + TimeDelta::hours(1)
    );

    clock.advance(TimeDelta::hours(1));
    server.state.nudge_sla();
    let expired = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the SLA worker expires after the escalation window")
        .unwrap();
    assert_eq!(expired["status"], "expired");
}

#[tokio::test]
async fn deadlines_passed_while_down_are_acted_on_at_start() {
    let start: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let server = spawn_with(Options {
        clock: Arc::new(ManualClock::new(start)),
        ..Options::default()
    })
    .await;
    let id = server.submit_id(json!({"action": "email.send"})).await;
    let agent = server.agent.clone();
    let dir = server.stop().await;

    let later = start + TimeDelta::hours(3);
    let server = spawn_with(Options {
        clock: Arc::new(ManualClock::new(later)),
        dir: Some(dir),
        ..Options::default()
    })
    .await;
    let body = ok(server.wait(&id, &agent, 120).await);
    assert_eq!(body["status"], "expired", "{body}");
}

#[tokio::test]
async fn audit_log_records_and_verifies() {
    let server = spawn().await;
    let id = server.submit_id(large_refund()).await;
    ok(server
        .decide(&id, &server.lead, json!({"verdict": "approve"}))
        .await);
    let audit = ok(server.get("/v1/audit?limit=1000", &server.admin).await);
    let kinds: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action_id"] == id.as_str())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"submitted"), "{kinds:?}");
    assert!(kinds.contains(&"decided"), "{kinds:?}");
    let verify = ok(server.get("/v1/audit/verify", &server.admin).await);
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_u64().unwrap() >= 2);
    assert_eq!(verify["head"].as_str().unwrap().len(), 64);
    let _ = &server.store;
}

#[tokio::test]
async fn policy_reload_keeps_the_old_policy_when_the_new_one_is_bad() {
    let dir = scratch();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let source = PolicySource::load(&path).unwrap();
    let first = source.current().hash().to_owned();

    std::fs::write(
        &path,
        POLICY.replace("tier = \"deny\"", "tier = \"approve\""),
    )
    .unwrap();
    assert!(source.reload().unwrap());
    let second = source.current().hash().to_owned();
    assert_ne!(first, second);

    std::fs::write(&path, "version = 1\n[defaults]\ntier = \"sometimes\"\n").unwrap();
    let error = source.reload().unwrap_err().to_string();
    assert!(
        error.contains("policy.toml:3:"),
        "diagnostics with line and column: {error}"
    );
    assert_eq!(
        source.current().hash(),
        second,
        "the old policy stays in force"
    );
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let server = spawn().await;
    server.submit(json!({"action": "order.get"})).await;
    ok(server.get("/healthz", "").await);
    let metrics = ok(server.get("/metrics", "").await);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("countersign_actions_submitted_total{tier=\"auto\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE countersign_store_commits_total counter"));

    let doc = ok(server.get("/v1/openapi.json", "").await);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/actions",
        "/v1/actions/{id}",
        "/v1/actions/{id}/events",
        "/v1/actions/{id}/decisions",
        "/v1/actions/{id}/cancel",
        "/v1/actions/{id}/outcome",
        "/v1/reviews",
        "/v1/actions/{id}/review",
        "/v1/audit",
        "/v1/audit/verify",
        "/healthz",
        "/metrics",
        "/v1/tokens",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    // OpenAPI 3.1 requires a description on every response object and unique operation ids.
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let operation_id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(operation_id.to_owned()),
                "{method} {path}: operationId {operation_id:?} is used twice"
            );
            for (status, response) in operation["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    assert!(doc["components"]["schemas"]["ActionView"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // A store that can no longer take writes makes the server unhealthy, and writes answer
    // 503, never a 2xx.
    server.store.close().await;
    expect(
        server.get("/healthz", "").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    let (status, _) = server
        .call(
            "POST",
            "/v1/actions",
            &server.agent,
            Some(json!({"action": "order.get"})),
        )
        .await;
    assert!(
        status.is_server_error() || status == StatusCode::UNAUTHORIZED,
        "{status}"
    );
}

/// What the server enforces, the document states: closed vocabularies list their values,
/// bounded parameters their bounds, cursors their pattern, and an action's answers link
/// to what can be done with it (the fuzzer's stateful phase follows them).
#[tokio::test]
async fn the_openapi_document_states_what_the_server_enforces() {
    let server = spawn().await;
    let doc = ok(server.get("/v1/openapi.json", "").await);
    let schemas = &doc["components"]["schemas"];
    #[rustfmt::skip]
    let vocabularies = [
        ("Status", json!(["allowed", "denied", "pending", "approved", "rejected", "expired", "cancelled"])),
        ("Tier", json!(["auto", "logged", "approve", "confirm", "deny"])),
        ("Verdict", json!(["approve", "reject", "modify"])),
        ("Role", json!(["agent", "reviewer", "admin"])),
        ("ReviewState", json!(["open", "ok", "flag"])),
        ("ReviewVerdict", json!(["ok", "flag"])),
        ("OutcomeStatus", json!(["succeeded", "failed"])),
    ];
    for (name, values) in vocabularies {
        assert_eq!(schemas[name]["enum"], values, "{name}");
    }
    let action = &schemas["ActionView"]["properties"];
    assert_eq!(action["status"]["$ref"], "#/components/schemas/Status");
    assert_eq!(action["tier"]["$ref"], "#/components/schemas/Tier");

    let parameter = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has {name}"))["schema"]
            .clone()
    };
    #[rustfmt::skip]
    let bounds = [
        ("/v1/actions/{id}", "wait", 0, 3600),
        ("/v1/actions", "limit", 1, 1000),
        ("/v1/reviews", "limit", 1, 1000),
        ("/v1/audit", "limit", 1, 1000),
        ("/v1/audit", "after", 0, i64::MAX),
    ];
    for (path, name, minimum, maximum) in bounds {
        let schema = parameter(path, "get", name);
        assert_eq!(
            (&schema["minimum"], &schema["maximum"]),
            (&json!(minimum), &json!(maximum)),
            "{path} {name}"
        );
    }
    for path in ["/v1/actions", "/v1/reviews"] {
        let cursor = parameter(path, "get", "cursor");
        assert_eq!(
            cursor["pattern"],
            countersign_store::CURSOR_PATTERN,
            "{path}"
        );
    }
    assert_eq!(
        parameter("/v1/actions", "get", "status")["enum"],
        schemas["Status"]["enum"]
    );

    let links = &doc["paths"]["/v1/actions"]["post"]["responses"]["201"]["links"];
    for (link, operation) in [
        ("show", "show_action"),
        ("decide", "decide_action"),
        ("cancel", "cancel_action"),
        ("report_outcome", "report_outcome"),
        ("review", "review_action"),
    ] {
        assert_eq!(links[link]["operationId"], operation, "{links}");
        assert_eq!(links[link]["parameters"]["id"], "$response.body#/id");
    }
    // Every link names an operation the document has.
    let operations: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(operations.contains(&target), "{target}");
                }
            }
        }
    }
}
