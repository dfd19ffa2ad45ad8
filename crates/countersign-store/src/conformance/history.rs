//! Graduation's view of the history: streamed submissions as the agent sent them, the
//! evidence per rule and action, narrowing reads, policy loads recorded once per change,
//! and regressions told once.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::graduation::{GroupKey, RealOutcome};
use countersign_core::lifecycle::Verdict;
use countersign_core::{Status, Tier};
use serde_json::json;

use super::{glob, new_action, object, policy, reviewer, t0, verdict};
use crate::{
    DeliveryQuery, EventKind, NO_ACTION, NewAction, NewGrant, NewRegression, NewReview, PolicyLoad,
    ReviewVerdict, Store, kind,
};

/// Far enough after the rest of the story that a window from here sees only this part.
fn start() -> DateTime<Utc> {
    t0() + TimeDelta::days(400)
}

fn key(rule: Option<&str>, action: &str) -> GroupKey {
    GroupKey {
        rule: rule.map(str::to_owned),
        action: action.to_owned(),
    }
}

/// Submits `history.write` (the defaults: `approve`) with `amount`, and has rita decide.
async fn decided(
    store: &dyn Store,
    amount: i64,
    how: Option<Verdict>,
    at: DateTime<Utc>,
) -> String {
    let submitted = store
        .submit(new_action(
            &policy(),
            "support-bot",
            "history.write",
            json!({"amount": amount}),
            at,
        ))
        .await
        .unwrap();
    let id = submitted.record.id.clone();
    let Some(how) = how else { return id };
    let mut request = verdict(how);
    if how == Verdict::Modify {
        let args = object(json!({"amount": amount - 1}));
        request.reclassified = Some(
            submitted
                .record
                .reclassify(&policy(), args.clone(), at)
                .unwrap(),
        );
        request.args = Some(args);
    }
    if how == Verdict::Reject {
        request.reason = Some("no".into());
    }
    store
        .decide(id.clone(), reviewer("rita", &[]), request, at)
        .await
        .unwrap();
    id
}

pub(super) async fn history(store: &dyn Store) {
    let at = start();
    let mut approved = Vec::new();
    for amount in [10, 20, 30] {
        approved.push(decided(store, amount, Some(Verdict::Approve), at).await);
    }
    let rejected = decided(store, 900, Some(Verdict::Reject), at).await;
    let modified = decided(
        store,
        700,
        Some(Verdict::Modify),
        at + TimeDelta::seconds(1),
    )
    .await;
    let _pending = decided(store, 5, None, at).await;
    // A small refund: `logged`, sampled (review_sample 1.0), then flagged.
    let small = store
        .submit(new_action(
            &policy(),
            "support-bot",
            "refund.create",
            json!({"amount": 5}),
            at,
        ))
        .await
        .unwrap();
    assert_eq!(small.record.gate.tier, Tier::Logged);
    store
        .review(
            small.record.id.clone(),
            reviewer("rita", &[]),
            NewReview {
                verdict: ReviewVerdict::Flag,
                note: None,
            },
            at,
        )
        .await
        .unwrap();

    // A grant's use: `history.write` allowed without asking. It is a submission at its
    // recorded tier (`approve`), never a person's approval.
    let grant = store
        .create_grant(NewGrant {
            agent: "support-bot".into(),
            actions: glob("history.write"),
            condition: None,
            expires_at: at + TimeDelta::hours(1),
            max_uses: Some(1),
            reason: None,
            granted_by: reviewer("rita", &[]),
            at,
        })
        .await
        .unwrap();
    let grant = Arc::new(grant.to_grant().unwrap());
    let plain = new_action(
        &policy(),
        "support-bot",
        "history.write",
        json!({"amount": 15}),
        at,
    );
    let granted = store
        .submit(NewAction::classify_granted(
            &policy(),
            plain.proposal,
            plain.owner,
            &[grant],
            at,
        ))
        .await
        .unwrap()
        .record;
    assert!(granted.grant.is_some());
    assert_eq!(granted.gate.status, Status::Allowed);

    // Evidence, aggregated.
    let evidence = store.evidence(at).await.unwrap();
    let writes = evidence
        .iter()
        .find(|e| e.key == key(None, "history.write"))
        .unwrap();
    assert_eq!(writes.submitted, 7);
    assert_eq!(writes.at_tier(Tier::Approve), 7);
    assert_eq!(
        (writes.approved, writes.modified, writes.rejected),
        (3, 1, 1),
        "the grant's use is not a person's approval"
    );
    assert_eq!(writes.decisions(), 5);
    assert_eq!(writes.last_decided, Some(at + TimeDelta::seconds(1)));
    let refunds = evidence
        .iter()
        .find(|e| e.key == key(Some("small refunds"), "refund.create"))
        .unwrap();
    assert_eq!((refunds.reviewed, refunds.flagged), (1, 1));
    assert!(
        store
            .evidence(at + TimeDelta::days(1))
            .await
            .unwrap()
            .is_empty(),
        "the window leaves out what came before it"
    );

    // Narrowing: the corrected actions' arguments as the agent sent them, and the
    // evidence below a bound.
    let mut corrected = store
        .corrected_args(&key(None, "history.write"), at, 100)
        .await
        .unwrap();
    corrected.sort_by_key(|a| a["amount"].as_i64());
    assert_eq!(
        corrected,
        [
            object(json!({"amount": 700})),
            object(json!({"amount": 900}))
        ]
    );
    let below = store
        .evidence_below(&key(None, "history.write"), at, "amount", 700.0)
        .await
        .unwrap();
    assert_eq!(
        (below.decisions(), below.errors(), below.submitted),
        (3, 0, 5)
    );

    // The stream: every submission, with the agent's arguments and the real outcome.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let visited = store
        .scan_history(
            at,
            Box::new(move |recorded| {
                sink.lock().unwrap().push(recorded);
                true
            }),
        )
        .await
        .unwrap();
    assert_eq!(visited, 8);
    let seen = seen.lock().unwrap().clone();
    let find = |id: &str| seen.iter().find(|r| r.id == id).unwrap().clone();
    let modified = find(&modified);
    assert_eq!(modified.outcome, RealOutcome::Modified);
    assert_eq!(modified.request.args, object(json!({"amount": 700})));
    assert_eq!(find(&rejected).outcome, RealOutcome::Rejected);
    assert_eq!(find(&approved[0]).outcome, RealOutcome::Approved);
    assert_eq!(find(&granted.id).outcome, RealOutcome::Allowed);
    let small = find(&small.record.id);
    assert!(small.flagged && small.reviewed);
    assert_eq!(small.outcome, RealOutcome::of(Status::Allowed, false));
    let stopped = store.scan_history(at, Box::new(|_| false)).await.unwrap();
    assert_eq!(stopped, 1, "a visitor that says stop ends the scan");

    // Policy loads: an entry per change of hash, none for the same policy again.
    let load = |hash: &str, trigger: &str| PolicyLoad {
        hash: hash.into(),
        source: format!("# {hash}"),
        path: Some("policy.toml".into()),
        trigger: trigger.into(),
        actor: "system".into(),
        operator: None,
        at,
    };
    let first = store
        .record_policy_load(load("h1", "start"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, kind::POLICY_LOADED);
    assert_eq!(first.body_json()["previous_hash"], json!(null));
    assert!(
        store
            .record_policy_load(load("h1", "start"))
            .await
            .unwrap()
            .is_none()
    );
    let second = store
        .record_policy_load(load("h2", "sighup"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.body_json()["previous_hash"], json!("h1"));
    assert_eq!(second.body_json()["trigger"], json!("sighup"));

    // Regressions: told once, cleared when they stop holding, told again when they return.
    let regression = |hash: &str| NewRegression {
        rule: "small refunds".into(),
        action: "refund.create".into(),
        policy_hash: hash.into(),
        body: json!({"flagged": 1}),
    };
    // The outbox chapter's router is still installed: a regression is an event too, written
    // in the transaction that records it, so it goes out exactly when it is told.
    let regression_deliveries = async || {
        let page = store
            .deliveries(DeliveryQuery {
                limit: 1000,
                ..DeliveryQuery::default()
            })
            .await
            .unwrap();
        page.items
            .into_iter()
            .filter(|d| d.event_kind == EventKind::GraduationRegressed)
            .map(|d| (d.event_id, d.action_id, d.target))
            .collect::<Vec<_>>()
    };
    let signal = store.outbox_signal();
    signal.take_lanes();
    let fired = store
        .sync_regressions("h2".into(), vec![regression("h2")], at)
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].kind, kind::GRADUATION_REGRESSED);
    assert_eq!(
        signal.take_lanes().into_iter().collect::<Vec<_>>(),
        ["hook"]
    );
    assert!(
        store
            .sync_regressions("h2".into(), vec![regression("h2")], at)
            .await
            .unwrap()
            .is_empty()
    );
    let told = regression_deliveries().await;
    assert_eq!(told.len(), 1, "one event, one delivery: {told:?}");
    assert!(told[0].0.starts_with("msg_graduation_"), "{told:?}");
    assert_eq!(
        (told[0].1.as_str(), told[0].2.as_str()),
        (NO_ACTION, "hook")
    );
    let active = store.active_regressions().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].audit_seq, fired[0].seq);
    assert!(
        store
            .sync_regressions("h2".into(), Vec::new(), at)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.active_regressions().await.unwrap().is_empty());
    assert_eq!(
        store
            .sync_regressions("h2".into(), vec![regression("h2")], at)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another policy in force: the old alert clears, the new one is told.
    store
        .record_policy_load(load("h3", "sighup"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .sync_regressions("h3".into(), vec![regression("h3")], at)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.active_regressions().await.unwrap().len(), 1);
    // An instance still on h2 during a rolling deploy neither clears h3's alert nor tells
    // its own again.
    for holding in [vec![], vec![regression("h2")]] {
        assert!(
            store
                .sync_regressions("h2".into(), holding, at)
                .await
                .unwrap()
                .is_empty()
        );
        let active = store.active_regressions().await.unwrap();
        assert_eq!(
            active
                .iter()
                .map(|a| a.policy_hash.as_str())
                .collect::<Vec<_>>(),
            ["h3"]
        );
    }
    store
        .sync_regressions("h3".into(), Vec::new(), at)
        .await
        .unwrap();
    // Told three times (h2, h2 again after it cleared, h3): three events, three ids.
    let told = regression_deliveries().await;
    let ids: std::collections::BTreeSet<_> = told.iter().map(|t| t.0.clone()).collect();
    assert_eq!((told.len(), ids.len()), (3, 3), "{told:?}");

    let report = store.verify_audit().await.unwrap();
    assert!(report.ok(), "{report:?}");
}
