//! Approval metrics and training data through the real server: a history with every ending
//! seeded on a virtual clock, its figures computed by hand, the same after a restart; who
//! sees whose fatigue figures; `/metrics` with its label cap; the export's formats checked
//! line by line, its filters and who may export.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::stats::StatsSettings;
use countersign_server::ManualClock;
use countersign_server::stats_config::StatsConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{Options, Server, SseReader, expect, large_refund, ok, spawn_with};

fn start() -> DateTime<Utc> {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

fn thresholds() -> StatsConfig {
    let mut config = StatsConfig::default();
    let settings: &mut StatsSettings = &mut config.settings;
    settings.high_rejection_rate = 0.15;
    settings.high_modification_rate = 0.25;
    settings.signal_min_actions = 5;
    settings.fatigue.rubber_stamp_min_decisions = 3;
    config
}

async fn server_at(clock: Arc<ManualClock>, dir: Option<Arc<tempfile::TempDir>>) -> Server {
    spawn_with(Options {
        clock,
        dir,
        stats: Some(thresholds()),
        ..Options::default()
    })
    .await
}

/// `GET /v1/stats` with `query` pairs as `token`.
async fn stats(server: &Server, token: &str, query: &[(&str, &str)]) -> Value {
    ok(server
        .send("GET", server.url(&["v1", "stats"], query), token, None)
        .await)
}

fn approve() -> Value {
    json!({"verdict": "approve"})
}

/// Waits for an action's next status event after the virtual clock moved past a deadline.
async fn next_status(server: &Server, id: &str, clock: &ManualClock, by: TimeDelta) -> Value {
    let mut events = server.events(id, &server.lead).await;
    let mut sse = SseReader::default();
    sse.next(&mut events).await.unwrap();
    clock.advance(by);
    server.state.nudge_sla();
    tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the SLA worker acts once the virtual deadline passed")
        .unwrap()
}

/// The history the figures below are computed from, one action after another on the
/// virtual clock: the ids of the modified, rejected, expired and flagged actions.
async fn seed(server: &Server, clock: &ManualClock) -> [String; 4] {
    let (rita, sam) = (&server.lead, &server.lead2);
    let wait = |seconds| clock.advance(TimeDelta::seconds(seconds));
    let a1 = server.submit_id(large_refund()).await;
    wait(30);
    ok(server.decide(&a1, rita, approve()).await);
    let a2 = server.submit_id(large_refund()).await;
    wait(2);
    ok(server.decide(&a2, rita, approve()).await);
    let modified = server.submit_id(large_refund()).await;
    wait(90);
    let modify = json!({"verdict": "modify", "args": {"amount": 2000}, "reason": "the fee stays"});
    ok(server.decide(&modified, sam, modify).await);
    let rejected = server.submit_id(large_refund()).await;
    wait(600);
    let reject = json!({"verdict": "reject", "reason": "refunded by the bank already"});
    ok(server.decide(&rejected, sam, reject).await);
    // 15 minutes, then escalated to finance for an hour, then expired: nobody decided.
    let expired = server.submit_id(large_refund()).await;
    let escalated = next_status(server, &expired, clock, TimeDelta::minutes(16)).await;
    assert_eq!(escalated["status"], "pending");
    let ended = next_status(server, &expired, clock, TimeDelta::hours(1)).await;
    assert_eq!(ended["status"], "expired");
    let cancelled = server.submit_id(large_refund()).await;
    ok(server.cancel(&cancelled, &server.agent).await);
    server.submit_id(large_refund()).await;
    let closure = server.submit_id(json!({"action": "account.close"})).await;
    let confirm = json!({"verdict": "approve", "confirm": "account.close"});
    wait(4);
    ok(server.decide(&closure, rita, confirm.clone()).await);
    wait(56);
    ok(server.decide(&closure, sam, confirm).await);
    let flagged = server
        .submit_id(json!({"action": "refund.create", "args": {"amount": 50}, "reasoning": "a late parcel"}))
        .await;
    let fine = server
        .submit_id(json!({"action": "refund.create", "args": {"amount": 60}}))
        .await;
    let flag = json!({"verdict": "flag", "note": "sent to a new card"});
    ok(server.review(&flagged, sam, flag).await);
    ok(server.review(&fine, rita, json!({"verdict": "ok"})).await);
    server.submit(json!({"action": "db.drop"})).await;
    server.submit(json!({"action": "order.get"})).await;
    [modified, rejected, expired, flagged]
}

/// The counts of a figures object, in a fixed order: total allowed denied pending approved
/// modified rejected expired cancelled.
fn counts(figures: &Value) -> [i64; 9] {
    [
        "total",
        "allowed",
        "denied",
        "pending",
        "approved",
        "modified",
        "rejected",
        "expired",
        "cancelled",
    ]
    .map(|key| figures[key].as_i64().unwrap_or(-1))
}

#[tokio::test]
async fn statistics_of_a_seeded_history_by_hand_and_after_a_restart() {
    let clock = Arc::new(ManualClock::new(start()));
    let server = server_at(clock.clone(), None).await;
    seed(&server, &clock).await;
    let admin = server.admin.clone();

    let by_action = stats(&server, &admin, &[]).await;
    let overall = &by_action["overall"];
    assert_eq!(counts(overall), [12, 3, 1, 1, 4, 1, 1, 1, 1]);
    // 4 approved + 1 rejected + 1 expired reached a human-gated end.
    assert_eq!(overall["approval_rate"], json!(4.0 / 6.0));
    assert_eq!(overall["rejection_rate"], json!(1.0 / 6.0));
    assert_eq!(overall["modification_rate"], json!(1.0 / 6.0));
    assert_eq!(overall["timeout_rate"], json!(1.0 / 6.0));
    // Decided by people after 30, 2, 90 and 600 s, and (the second confirmation) 60 s.
    assert_eq!(
        overall["review_latency_seconds"],
        json!({"p50": 60.0, "p90": 600.0, "p99": 600.0})
    );
    assert_eq!(
        overall["sla"],
        json!({"reminded": 0, "escalated": 1, "expired": 1, "auto_approved": 0})
    );
    assert_eq!(overall["post_hoc"], json!({"reviewed": 2, "flagged": 1}));
    let keys: Vec<(&str, i64)> = by_action["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap(), g["total"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("account.close", 1),
            ("db.drop", 1),
            ("order.get", 1),
            ("refund.create", 9)
        ]
    );
    // refund.create: 5 human-gated ends, 1 rejected (20% >= 15%), 1 modified (20% < 25%).
    let signals: Vec<(&str, &str)> = by_action["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["action"].as_str().unwrap(), s["signal"].as_str().unwrap()))
        .collect();
    assert_eq!(signals, [("refund.create", "high_rejection_rate")]);

    let by_rule = stats(&server, &admin, &[("group_by", "rule")]).await;
    let rules: Vec<(&str, [i64; 9])> = by_rule["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap(), counts(g)))
        .collect();
    assert_eq!(
        rules,
        [
            ("account closure", [1, 0, 0, 0, 1, 0, 0, 0, 0]),
            ("forbidden", [1, 0, 1, 0, 0, 0, 0, 0, 0]),
            ("large refunds", [7, 0, 0, 1, 3, 1, 1, 1, 1]),
            ("reads", [1, 1, 0, 0, 0, 0, 0, 0, 0]),
            ("small refunds", [2, 2, 0, 0, 0, 0, 0, 0, 0]),
        ]
    );
    let by_tier = stats(&server, &admin, &[("group_by", "tier")]).await;
    assert_eq!(by_tier["groups"].as_array().unwrap().len(), 5);
    let by_agent = stats(&server, &admin, &[("group_by", "agent")]).await;
    assert_eq!(by_agent["groups"][0]["key"], "support-bot");

    // Reviewers: rita approved after 30, 2 and 4 s (2 of 3 under 5 s): a rubber stamp at
    // these thresholds; sam modified, rejected and approved after 90, 600 and 60 s.
    let by_reviewer = stats(&server, &admin, &[("group_by", "reviewer")]).await;
    let [rita, sam] = &by_reviewer["groups"].as_array().unwrap()[..] else {
        panic!("{by_reviewer}")
    };
    assert_eq!(rita["key"], "rita");
    assert_eq!(counts(rita), [3, 0, 0, 0, 3, 0, 0, 0, 0]);
    let fatigue = &rita["fatigue"];
    assert_eq!(
        fatigue["time_to_decision_seconds"],
        json!({"p10": 2.0, "p50": 4.0})
    );
    assert_eq!(
        (&fatigue["high_risk_approvals"], &fatigue["fast_approvals"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(fatigue["rubber_stamp"], true);
    assert_eq!(
        fatigue["warning"],
        "rita approved 100% of 3 decisions on approve and confirm actions, 67% of those approvals in under 5 s: approvals this fast may not have been read"
    );
    assert_eq!(counts(sam), [3, 0, 0, 0, 2, 1, 1, 0, 0]);
    assert_eq!(sam["fatigue"]["rubber_stamp"], false);
    assert_eq!(sam["fatigue"]["time_to_decision_seconds"]["p50"], 90.0);
    // A reviewer sees their own fatigue figures, not their colleagues'.
    let own = stats(&server, &server.lead2, &[("group_by", "reviewer")]).await;
    let keys: Vec<&Value> = own["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["key"])
        .collect();
    assert_eq!(keys, [&json!("sam")]);
    assert_eq!(own["overall"], by_reviewer["overall"]);
    // Agents see no statistics.
    let answer = server
        .send(
            "GET",
            server.url(&["v1", "stats"], &[]),
            &server.agent,
            None,
        )
        .await;
    expect(answer, StatusCode::FORBIDDEN, "wrong_role");

    // Windows: submitted at T+30 s and T+32 s; then everything from T+5 min on.
    let t = |seconds: i64| (start() + TimeDelta::seconds(seconds)).to_rfc3339();
    let window = stats(&server, &admin, &[("since", &t(30)), ("until", &t(122))]).await;
    assert_eq!(counts(&window["overall"]), [2, 0, 0, 0, 2, 1, 0, 0, 0]);
    assert_eq!(window["since"], json!(start() + TimeDelta::seconds(30)));
    let later = stats(&server, &admin, &[("since", &t(300))]).await;
    assert_eq!(later["overall"]["total"], 12 - 4);

    // The same figures after a restart (kept in the database, not in memory).
    let everything: Vec<Value> = every_grouping(&server, &admin).await;
    let dir = server.stop().await;
    let server = server_at(clock.clone(), Some(dir)).await;
    assert_eq!(every_grouping(&server, &server.admin).await, everything);
}

/// Every grouping's answer.
async fn every_grouping(server: &Server, token: &str) -> Vec<Value> {
    let mut answers = Vec::new();
    for group_by in ["action", "agent", "rule", "reviewer", "tier"] {
        answers.push(stats(server, token, &[("group_by", group_by)]).await);
    }
    answers
}

/// The lines of `/metrics` that start with `prefix`.
async fn metric_lines(server: &Server, prefix: &str) -> Vec<String> {
    let (_, body) = server.get("/metrics", "").await;
    body.as_str()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn metrics_from_the_kept_sums_with_a_label_cap() {
    let clock = Arc::new(ManualClock::new(start()));
    let mut config = thresholds();
    config.max_action_labels = 2;
    let server = spawn_with(Options {
        clock: clock.clone(),
        stats: Some(config),
        ..Options::default()
    })
    .await;
    seed(&server, &clock).await;
    let outcomes = metric_lines(
        &server,
        "countersign_actions_total{action=\"refund.create\"",
    )
    .await;
    assert_eq!(
        outcomes,
        Vec::<String>::new(),
        "refund.create was seen after the first two names"
    );
    // account.close and db.drop: the first two names (same day, by name); the rest `other`.
    let lines = metric_lines(&server, "countersign_actions_total").await;
    let mut names: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split("action=\"").nth(1)?.split('"').next())
        .collect();
    names.dedup();
    names.sort();
    names.dedup();
    assert_eq!(names, ["account.close", "db.drop", "other"]);
    let expect_line = |line: &str| {
        assert!(lines.iter().any(|l| l == line), "{line} in {lines:#?}");
    };
    expect_line(
        r#"countersign_actions_total{action="other",rule="large refunds",tier="approve",outcome="approved"} 2"#,
    );
    expect_line(
        r#"countersign_actions_total{action="other",rule="large refunds",tier="approve",outcome="modified"} 1"#,
    );
    expect_line(
        r#"countersign_actions_total{action="other",rule="large refunds",tier="approve",outcome="rejected"} 1"#,
    );
    expect_line(
        r#"countersign_actions_total{action="other",rule="large refunds",tier="approve",outcome="expired"} 1"#,
    );
    expect_line(
        r#"countersign_actions_total{action="account.close",rule="account closure",tier="confirm",outcome="approved"} 1"#,
    );
    assert_eq!(
        metric_lines(
            &server,
            "countersign_metric_labels_capped{label=\"action\"}"
        )
        .await,
        [r#"countersign_metric_labels_capped{label="action"} 2"#]
    );
    // Latency on the approve tier: 2, 30, 90 and 600 s (each bucket counts those below).
    let buckets = metric_lines(
        &server,
        "countersign_review_latency_seconds_bucket{tier=\"approve\"",
    )
    .await;
    let count = |le: &str| {
        buckets
            .iter()
            .find(|l| l.contains(&format!("le=\"{le}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        [
            count("5"),
            count("60"),
            count("120"),
            count("1800"),
            count("+Inf")
        ],
        ["1", "2", "3", "4", "4"]
    );
    assert_eq!(
        metric_lines(&server, "countersign_actions_pending{tier=\"approve\"}").await,
        [r#"countersign_actions_pending{tier="approve"} 1"#]
    );
    assert_eq!(
        metric_lines(
            &server,
            "countersign_sla_total{action=\"other\",tier=\"approve\",step=\"escalated\"}"
        )
        .await
        .len(),
        1
    );
    assert_eq!(
        metric_lines(&server, "countersign_posthoc_reviews_total{action=\"other\",rule=\"small refunds\",verdict=\"flag\"} 1").await.len(),
        1
    );
    assert_eq!(
        metric_lines(
            &server,
            "countersign_decisions_total{tier=\"confirm\",verdict=\"approve\"} 2"
        )
        .await
        .len(),
        1
    );
    // Across a restart: the same counters.
    let before = metric_lines(&server, "countersign_actions_total").await;
    let dir = server.stop().await;
    let mut config = thresholds();
    config.max_action_labels = 2;
    let server = spawn_with(Options {
        clock,
        dir: Some(dir),
        stats: Some(config),
        ..Options::default()
    })
    .await;
    assert_eq!(
        metric_lines(&server, "countersign_actions_total").await,
        before
    );
}

/// `GET /v1/export` with `query` as `token`: the status, the content type and the lines,
/// each parsed.
async fn export(
    server: &Server,
    token: &str,
    query: &[(&str, &str)],
) -> (StatusCode, String, Vec<Value>) {
    let response = server
        .client
        .get(server.url(&["v1", "export"], query))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (status, content_type, lines)
}

#[tokio::test]
async fn export_formats_line_by_line() {
    let clock = Arc::new(ManualClock::new(start()));
    let server = server_at(clock.clone(), None).await;
    let [modified, rejected, expired, flagged] = seed(&server, &clock).await;
    let admin = server.admin.clone();

    // jsonl: every judgment, oldest first, with its context and words; expired only asked.
    let (status, content_type, lines) = export(&server, &admin, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/x-ndjson");
    let labels: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), l["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        labels,
        [
            (modified.as_str(), "modified"),
            (rejected.as_str(), "rejected"),
            (flagged.as_str(), "flagged")
        ]
    );
    let [m, r, f] = &lines[..] else {
        unreachable!()
    };
    assert_eq!(m["proposed_args"], json!({"amount": 2500}));
    assert_eq!(m["accepted_args"], json!({"amount": 2000}));
    assert_eq!(
        (&m["judged_by"], &m["reviewer_reason"]),
        (&json!("sam"), &json!("the fee stays"))
    );
    assert_eq!(m["reasoning"], "charged twice");
    assert_eq!(r["reviewer_reason"], "refunded by the bank already");
    assert_eq!(r["accepted_args"], Value::Null);
    assert_eq!(f["reviewer_reason"], "sent to a new card");
    assert_eq!(f["post_hoc_review"]["verdict"], "flag");
    let (_, _, only_expired) = export(&server, &admin, &[("verdict", "expired")]).await;
    assert_eq!(only_expired.len(), 1);
    assert_eq!(
        (&only_expired[0]["id"], &only_expired[0]["label"]),
        (&json!(expired), &json!("expired"))
    );
    assert_eq!(only_expired[0]["judged_by"], Value::Null);

    // openai-chat: system, user, assistant in that order; the assistant turn is the call a
    // person accepted (a tool call with the reviewer's arguments) or the refusal.
    let (_, _, chats) = export(&server, &admin, &[("format", "openai-chat")]).await;
    assert_eq!(chats.len(), 3);
    for chat in &chats {
        let roles: Vec<&str> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant"], "{chat}");
        assert_eq!(chat["tools"][0]["function"]["name"], "refund_create");
    }
    let call = &chats[0]["messages"][2]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "refund_create");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"amount": 2000}));
    assert!(
        chats[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("charged twice")
    );
    assert_eq!(
        chats[1]["messages"][2]["content"],
        "I should not call refund.create here: refunded by the bank already"
    );

    // preference: the same prompt, both answers, and they differ.
    let (_, _, pairs) = export(&server, &admin, &[("format", "preference")]).await;
    assert_eq!(pairs.len(), 3);
    for pair in &pairs {
        assert_eq!(pair["prompt"].as_array().unwrap().len(), 2, "{pair}");
        let (chosen, rejected) = (&pair["chosen"], &pair["rejected"]);
        assert!(chosen.as_array().is_some_and(|c| c.len() == 1), "{pair}");
        assert!(rejected.as_array().is_some_and(|r| r.len() == 1), "{pair}");
        assert_ne!(chosen, rejected, "{pair}");
        assert_eq!(chosen[0]["role"], "assistant");
    }
    let proposed = &pairs[0]["rejected"][0]["tool_calls"][0]["function"]["arguments"];
    assert_eq!(proposed, &json!(json!({"amount": 2500}).to_string()));

    // eval: the situation, the proposed call, and what a person expects instead.
    let (_, _, cases) = export(&server, &admin, &[("format", "eval")]).await;
    let expected: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| {
            (
                c["label"].as_str().unwrap(),
                c["expected"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        expected,
        [
            ("modified", "call"),
            ("rejected", "must_not"),
            ("flagged", "must_not")
        ]
    );
    assert_eq!(cases[0]["expected"]["args"], json!({"amount": 2000}));
    assert_eq!(
        cases[1]["expected"]["reason"],
        "refunded by the bank already"
    );
    assert_eq!(
        cases[0]["proposed"],
        json!({"action": "refund.create", "args": {"amount": 2500}})
    );

    // Filters: a rule, a label, a window, an action pattern.
    let rule = [("rule", "large refunds")];
    let (_, _, by_rule) = export(&server, &admin, &rule).await;
    assert_eq!(by_rule.len(), 2);
    let (_, _, none) = export(&server, &admin, &[("action", "account.*")]).await;
    assert!(none.is_empty());
    let until = (start() + TimeDelta::seconds(60)).to_rfc3339();
    let (_, _, early) = export(&server, &admin, &[("until", &until)]).await;
    assert_eq!(
        early.len(),
        1,
        "only the modified one was submitted in the first minute"
    );

    // Only admins export.
    for token in [&server.lead, &server.agent] {
        let (status, _, _) = export(&server, token, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
