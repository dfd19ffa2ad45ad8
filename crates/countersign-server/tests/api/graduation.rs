//! Earned autonomy through the real server: a candidate policy replayed over a seeded
//! history with known outcomes (counts exact, every mistake it would let through listed),
//! graduation suggestions exactly when the evidence crosses the bar and never for
//! `confirm`, regressions told once, policy loads in the audit log, and the bad input and
//! access rules of the new endpoints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_core::name::Name;
use countersign_core::{ActionName, AgentName, Policy, ProposedAction, Tier};
use countersign_store::{Actor, NewAction, NewReview, ReviewVerdict, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fixture::{POLICY, Server, code, expect, ok, spawn};

fn lead() -> Actor {
    Actor {
        name: Name::parse("lena").unwrap(),
        groups: vec![Name::parse("support-leads").unwrap()],
        token_id: None,
        admin: false,
    }
}

/// Stores a submission classified by the fixture's policy, as the server would.
async fn submit(_store: &dyn Store, action: &str, args: Value, at: DateTime<Utc>) -> NewAction {
    let mut proposal = ProposedAction::new(
        ActionName::parse(action).unwrap(),
        AgentName::parse("support-bot").unwrap(),
    );
    proposal.args = args.as_object().unwrap().clone();
    NewAction::classify(&Policy::parse(POLICY).unwrap(), proposal, at)
}

/// Submits and (unless `how` is `None`) decides; the action's id.
async fn seed(store: &dyn Store, action: &str, args: Value, how: Option<Verdict>) -> String {
    let now = Utc::now();
    let new = submit(store, action, args, now).await;
    let record = store.submit(new).await.unwrap().record;
    let Some(how) = how else { return record.id };
    let mut request = DecisionRequest {
        verdict: how,
        args: None,
        reason: (how == Verdict::Reject).then(|| "no".to_owned()),
        confirm: None,
        reclassified: None,
    };
    if how == Verdict::Modify {
        let mut args = record.gate.args.clone();
        args.insert("note".into(), json!("changed"));
        let policy = Policy::parse(POLICY).unwrap();
        request.reclassified = Some(record.reclassify(&policy, args.clone(), now).unwrap());
        request.args = Some(args);
    }
    store
        .decide(record.id.clone(), lead(), request, now)
        .await
        .unwrap();
    record.id
}

/// The fixture's policy with large refunds relaxed to `logged`.
fn relaxed_candidate() -> String {
    POLICY.replacen(
        "name = \"large refunds\"\nactions = [\"refund.create\"]\ntier = \"approve\"",
        "name = \"large refunds\"\nactions = [\"refund.create\"]\ntier = \"logged\"",
        1,
    )
}

async fn replay(server: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    server
        .call("POST", "/v1/policy/replay", token, Some(body))
        .await
}

#[tokio::test]
async fn replay_counts_exactly_and_lists_every_mistake_let_through() {
    let server = spawn().await;
    let store = server.store.as_ref();
    let big = json!({"amount": 500});
    let mut mistakes = Vec::new();
    for _ in 0..6 {
        seed(store, "refund.create", big.clone(), Some(Verdict::Approve)).await;
    }
    for _ in 0..2 {
        mistakes.push(seed(store, "refund.create", big.clone(), Some(Verdict::Reject)).await);
    }
    mistakes.push(seed(store, "refund.create", big.clone(), Some(Verdict::Modify)).await);
    seed(store, "refund.create", big.clone(), None).await;
    for _ in 0..5 {
        seed(store, "email.send", json!({}), Some(Verdict::Approve)).await;
    }
    mistakes.sort();
    assert!(relaxed_candidate().contains("tier = \"logged\"\napprovers"));

    let report = ok(replay(
        &server,
        &server.admin,
        json!({"policy": relaxed_candidate()}),
    )
    .await);
    assert_eq!(report["complete"], json!(true));
    assert_eq!(report["total"], json!(15));
    assert_eq!(report["unchanged"], json!(5));
    assert_eq!(report["relaxed"], json!(10));
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{report}");
    let change = &changes[0];
    assert_eq!(
        (&change["action"], &change["from"], &change["to"]),
        (&json!("refund.create"), &json!("approve"), &json!("logged"))
    );
    assert_eq!(change["from_rule"], json!("large refunds"));
    let outcomes = &change["outcomes"];
    assert_eq!(
        [
            &outcomes["total"],
            &outcomes["approved"],
            &outcomes["rejected"],
            &outcomes["modified"],
            &outcomes["pending"]
        ],
        [&json!(10), &json!(6), &json!(2), &json!(1), &json!(1)]
    );
    let listed: Vec<String> = report["let_through"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, mistakes);
    assert_eq!(report["let_through_total"], json!(3));

    // The policy in force did not change.
    let now = seed(store, "refund.create", big.clone(), None).await;
    let shown = ok(server.show(&now, &server.lead).await);
    assert_eq!(shown["tier"], json!("approve"));
}

#[tokio::test]
async fn replay_is_for_admins_and_refuses_bad_input() {
    let server = spawn().await;
    let body = json!({"policy": POLICY});
    expect(
        replay(&server, &server.lead, body.clone()).await,
        StatusCode::FORBIDDEN,
        "wrong_role",
    );
    expect(
        replay(&server, &server.agent, body.clone()).await,
        StatusCode::FORBIDDEN,
        "wrong_role",
    );
    expect(
        replay(&server, "", body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    let broken = "version = 1\n[defaults]\ntier = \"aprove\"\n";
    let refused = expect(
        replay(&server, &server.admin, json!({"policy": broken})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_policy",
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 3, column"), "{message}");
    for since in ["30x", "0d", "", "99999999999d"] {
        expect(
            replay(
                &server,
                &server.admin,
                json!({"policy": POLICY, "since": since}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_since",
        );
    }
    expect(
        replay(
            &server,
            &server.admin,
            json!({"policy": POLICY, "extra": 1}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        code(
            &replay(
                &server,
                &server.admin,
                json!({"policy": POLICY, "extra": 1}),
            )
            .await
            .1,
        ),
    );
    let huge = "#".repeat(2 * 1024 * 1024);
    let (status, _) = replay(&server, &server.admin, json!({"policy": huge})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // An empty history replays to nothing, quickly.
    let empty = ok(replay(
        &server,
        &server.admin,
        json!({"policy": POLICY, "since": "1d"}),
    )
    .await);
    assert_eq!(empty["total"], json!(0));
}

#[tokio::test]
async fn a_slow_candidate_is_stopped_by_the_time_limit() {
    use countersign_server::{GraduationSettings, PolicySource};
    use std::sync::Arc;
    let settings = GraduationSettings {
        replay_time_limit: Duration::from_millis(1),
        ..GraduationSettings::default()
    };
    let dir = crate::fixture::scratch();
    let store = countersign_store::open(dir.path().join("countersign.db").to_str().unwrap())
        .await
        .unwrap();
    for _ in 0..400 {
        let new = submit(store.as_ref(), "email.send", json!({"n": 1}), Utc::now()).await;
        store.submit(new).await.unwrap();
    }
    let server = crate::fixture::spawn_with(crate::fixture::Options {
        dir: Some(dir),
        store: Some(store),
        policy: Some(Arc::new(PolicySource::fixed(
            Policy::parse(POLICY).unwrap(),
        ))),
        graduation: Some(settings),
        ..crate::fixture::Options::default()
    })
    .await;
    // A condition that costs real work on every request.
    let slow = format!(
        "{POLICY}\n[[rules]]\nname = \"slow\"\nactions = [\"*\"]\nwhen = \"{}.all(x, {}.all(y, x + y >= 0))\"\ntier = \"approve\"\n",
        list(200),
        list(200)
    );
    let report = ok(replay(&server, &server.admin, json!({"policy": slow})).await);
    assert_eq!(report["complete"], json!(false), "{}", report["total"]);
    assert!(report["total"].as_u64().unwrap() < 400);
}

fn list(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

#[tokio::test]
async fn suggestions_appear_when_the_evidence_clears_the_bar_and_never_for_confirm() {
    let server = spawn().await;
    let store = server.store.as_ref();
    // 72 clean decisions: the error rate's upper bound is 5.07%, over the 5% target.
    for _ in 0..72 {
        seed(
            store,
            "email.send",
            json!({"to": "a@example.com"}),
            Some(Verdict::Approve),
        )
        .await;
    }
    let graduation = ok(server.get("/v1/graduation", &server.lead).await);
    assert_eq!(graduation["proposals"], json!([]), "{graduation}");
    let evidence = graduation["evidence"].as_array().unwrap();
    let mail = evidence
        .iter()
        .find(|e| e["action"] == json!("email.send"))
        .unwrap();
    assert_eq!(mail["decisions"], json!(72));
    assert!(mail["error_upper_bound"].as_f64().unwrap() > 0.05);
    // One more: the bar is cleared.
    seed(
        store,
        "email.send",
        json!({"to": "a@example.com"}),
        Some(Verdict::Approve),
    )
    .await;
    // Confirm actions never graduate, however clean.
    for _ in 0..5 {
        let new = submit(store, "account.close", json!({}), Utc::now()).await;
        assert_eq!(new.tier, Tier::Confirm);
        store.submit(new).await.unwrap();
    }
    let graduation = ok(server.get("/v1/graduation", &server.lead).await);
    let proposals = graduation["proposals"].as_array().unwrap();
    assert_eq!(proposals.len(), 1, "{graduation}");
    let proposal = &proposals[0];
    assert_eq!(proposal["kind"], json!("relax"));
    assert_eq!(proposal["action"], json!("email.send"));
    assert_eq!(proposal["rule"], json!(null));
    let diff = proposal["diff"].as_str().unwrap();
    assert!(diff.contains("+actions = [\"email.send\"]"), "{diff}");
    assert!(diff.contains("+tier = \"logged\""), "{diff}");
    assert!(diff.contains("+# relaxed approve -> logged"), "{diff}");
    let replayed = &proposal["replay"];
    assert_eq!(replayed["total"], json!(73));
    assert_eq!(replayed["relaxed"], json!(73));
    assert_eq!(replayed["let_through_total"], json!(0));
    // Agents may not read it.
    expect(
        server.get("/v1/graduation", &server.agent).await,
        StatusCode::FORBIDDEN,
        "wrong_role",
    );
}

#[tokio::test]
async fn a_regression_is_told_once_and_shows_in_metrics_and_the_log() {
    let server = spawn().await;
    let store = server.store.as_ref();
    let mut events = server.state.subscribe_graduation();
    // Small refunds are `logged` with every one sampled: 20 reviewed, 8 flagged.
    for i in 0..20 {
        let new = submit(store, "refund.create", json!({"amount": 10}), Utc::now()).await;
        assert_eq!(new.tier, Tier::Logged);
        let id = store.submit(new).await.unwrap().record.id;
        let verdict = if i < 8 {
            ReviewVerdict::Flag
        } else {
            ReviewVerdict::Ok
        };
        store
            .review(
                id,
                lead(),
                NewReview {
                    verdict,
                    note: Some("x".into()),
                },
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let fired = countersign_server::graduation_watch::check(&server.state)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].rule, "small refunds");
    let again = countersign_server::graduation_watch::check(&server.state)
        .await
        .unwrap();
    assert!(again.is_empty(), "told once");
    let event = events.recv().await.unwrap();
    assert_eq!(event.action, "refund.create");
    let diff = event.body["revert"]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-tier = \"logged\"") && diff.contains("+tier = \"approve\""),
        "{diff}"
    );
    assert!(events.try_recv().is_err(), "one event");

    let graduation = ok(server.get("/v1/graduation", &server.lead).await);
    assert_eq!(graduation["regressions"].as_array().unwrap().len(), 1);
    let tighten = graduation["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == json!("tighten"))
        .unwrap();
    assert_eq!(tighten["rule"], json!("small refunds"));
    let metrics = server.get("/metrics", "").await.1;
    assert!(metrics.as_str().unwrap().contains(
        "countersign_graduation_regressed{rule=\"small refunds\",action=\"refund.create\"} 1"
    ));
    let audit = ok(server.get("/v1/audit?limit=1000", &server.admin).await);
    let kinds: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "graduation_regressed")
            .count(),
        1
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "policy_loaded").count(),
        1,
        "{kinds:?}"
    );
    let verify = ok(server.get("/v1/audit/verify", &server.admin).await);
    assert_eq!(verify["ok"], json!(true), "{verify}");

    // Recovery: enough clean reviews bring the lower bound under the target; the alert
    // clears, so a later regression is told again.
    for _ in 0..400 {
        let new = submit(store, "refund.create", json!({"amount": 10}), Utc::now()).await;
        let id = store.submit(new).await.unwrap().record.id;
        store
            .review(
                id,
                lead(),
                NewReview {
                    verdict: ReviewVerdict::Ok,
                    note: None,
                },
                Utc::now(),
            )
            .await
            .unwrap();
    }
    assert!(
        countersign_server::graduation_watch::check(&server.state)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.active_regressions().await.unwrap().is_empty());
}

#[tokio::test]
async fn each_policy_put_in_force_is_an_audit_entry_once() {
    use countersign_server::PolicySource;
    use std::sync::Arc;
    let dir = crate::fixture::scratch();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let source = Arc::new(PolicySource::load(&path).unwrap());
    let server = crate::fixture::spawn_with(crate::fixture::Options {
        dir: Some(dir),
        policy: Some(source.clone()),
        ..crate::fixture::Options::default()
    })
    .await;
    let first = policy_loads(&server, 1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["actor"], json!("system"));
    assert_eq!(first[0]["body"]["trigger"], json!("start"));
    // The same text again changes nothing; another text is recorded with its predecessor.
    source.reload().unwrap();
    let relaxed = POLICY.replace("name = \"reads\"", "name = \"lookups\"");
    std::fs::write(source.path().unwrap(), &relaxed).unwrap();
    source.reload().unwrap();
    let both = policy_loads(&server, 2).await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[1]["body"]["previous_hash"], first[0]["body"]["hash"]);
    assert_eq!(both[1]["body"]["trigger"], json!("reload"));
    let verify = ok(server.get("/v1/audit/verify", &server.admin).await);
    assert_eq!(verify["ok"], json!(true));
}

/// The `policy_loaded` entries, once there are at least `n` (the audit task writes them
/// soon after the load), or what there is after four seconds.
async fn policy_loads(server: &Server, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..200 {
        let audit = ok(server.get("/v1/audit?limit=1000", &server.admin).await);
        found = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == json!("policy_loaded"))
            .cloned()
            .collect();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    found
}
