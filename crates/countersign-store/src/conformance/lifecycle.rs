//! The story's action lifecycle chapters: tiers, the queue, decisions, cancellation,
//! outcomes and the SLA ladder.

use chrono::TimeDelta;
use countersign_core::lifecycle::{DecideError, StateError, Verdict};
use countersign_core::{Approvers, Status, Tier};
use serde_json::{Value, json};

use super::{agent, glob, new_action, object, policy, reviewer, t0, verdict};
use crate::{ActionQuery, NewOutcome, OutcomeStatus, QueueQuery, ReviewState, Store, StoreError};

pub(super) async fn tiers(store: &dyn Store) {
    let p = policy();
    let auto = store
        .submit(new_action(
            &p,
            "support-bot",
            "order.get",
            json!({"id": 1}),
            t0(),
        ))
        .await
        .unwrap();
    assert!(!auto.replayed);
    let r = &auto.record;
    assert_eq!((r.gate.tier, r.gate.status), (Tier::Auto, Status::Allowed));
    assert_eq!(r.rule.as_deref(), Some("lookups"));
    assert_eq!(r.gate.deadline, None);
    assert_eq!(r.gate.decided_at, Some(t0()));
    assert_eq!(r.policy_hash, p.hash());
    assert_eq!(r.gate.review, ReviewState::NotSampled);
    assert_eq!(r.version, 1);
    assert_eq!(store.action(&r.id).await.unwrap().as_ref(), Some(r));

    let denied = store
        .submit(new_action(&p, "support-bot", "db.drop", json!({}), t0()))
        .await
        .unwrap();
    assert_eq!(denied.record.gate.status, Status::Denied);

    let pending = store
        .submit(new_action(
            &p,
            "support-bot",
            "refund.create",
            json!({"amount": 2500}),
            t0(),
        ))
        .await
        .unwrap()
        .record;
    assert_eq!(pending.gate.status, Status::Pending);
    assert_eq!(
        pending.gate.approvers,
        Approvers::Groups(vec!["support-leads".into()])
    );
    assert_eq!(pending.gate.approvals_required, 1);
    assert_eq!(pending.gate.deadline, Some(t0() + TimeDelta::minutes(15)));
    assert_eq!(pending.gate.decided_at, None);
    assert_eq!(pending.gate.owner.as_deref(), Some("olivia"));
    assert_eq!(store.action(&pending.id).await.unwrap(), Some(pending));
    assert_eq!(store.action("no-such-id").await.unwrap(), None);
}

pub(super) async fn queue(store: &dyn Store) {
    let p = policy();
    let mut ids = Vec::new();
    // Submitted out of deadline order; the queue must put them in order.
    for minutes in [3, 1, 2] {
        let at = t0() + TimeDelta::minutes(minutes);
        let record = store
            .submit(new_action(
                &p,
                "queue-bot",
                "queue.item",
                json!({"n": minutes}),
                at,
            ))
            .await
            .unwrap()
            .record;
        ids.push((minutes, record.id));
    }
    ids.sort();
    let expected: Vec<String> = ids.into_iter().map(|(_, id)| id).collect();
    let first = store
        .queue(QueueQuery {
            action: Some(glob("queue.*")),
            limit: 2,
            cursor: None,
            ..QueueQuery::default()
        })
        .await
        .unwrap();
    let second = store
        .queue(QueueQuery {
            action: Some(glob("queue.*")),
            limit: 2,
            cursor: first.next_cursor.clone(),
            ..QueueQuery::default()
        })
        .await
        .unwrap();
    assert!(first.next_cursor.is_some());
    assert_eq!(second.next_cursor, None);
    let got: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(got, expected);
    // A literal name filters the same way.
    let literal = store
        .queue(QueueQuery {
            action: Some(glob("queue.item")),
            limit: 10,
            cursor: None,
            ..QueueQuery::default()
        })
        .await
        .unwrap();
    let got: Vec<String> = literal.items.iter().map(|r| r.id.clone()).collect();
    assert_eq!(got, expected);
    assert!(matches!(
        store
            .queue(QueueQuery {
                cursor: Some("garbage".into()),
                ..QueueQuery::default()
            })
            .await,
        Err(StoreError::BadCursor(_))
    ));
    // The whole queue holds only pending actions, oldest deadline first.
    let all = store.queue(QueueQuery::default()).await.unwrap();
    assert!(all.items.iter().all(|r| r.gate.status == Status::Pending));
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].gate.deadline <= w[1].gate.deadline)
    );
    // The agent's own listing, newest first.
    let own = store
        .actions(ActionQuery {
            agent: Some("queue-bot".into()),
            ..ActionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(own.items.len(), 3);
    assert!(own.items.windows(2).all(|w| w[0].id > w[1].id));
    // A page ends once it holds more than its byte bound, with a cursor to the rest: one
    // action is more than 10 bytes, so each page holds exactly one.
    let mut cursor = None;
    let mut walked = Vec::new();
    loop {
        let page = store
            .queue(QueueQuery {
                action: Some(glob("queue.*")),
                limit: 1000,
                cursor: cursor.take(),
                max_bytes: 10,
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "{walked:?}");
        walked.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, expected);
    for max_bytes in [10, 1 << 20] {
        let own = store
            .actions(ActionQuery {
                agent: Some("queue-bot".into()),
                max_bytes,
                ..ActionQuery::default()
            })
            .await
            .unwrap();
        let expected_items = if max_bytes == 10 { 1 } else { 3 };
        assert_eq!(own.items.len(), expected_items);
        assert_eq!(own.next_cursor.is_some(), max_bytes == 10);
    }
}

pub(super) async fn submit_pending(store: &dyn Store, action: &str, args: Value) -> String {
    store
        .submit(new_action(&policy(), "support-bot", action, args, t0()))
        .await
        .unwrap()
        .record
        .id
}

pub(super) async fn decisions(store: &dyn Store) {
    let id = submit_pending(store, "refund.create", json!({"amount": 500})).await;
    let mut changes = store.subscribe();
    let refusal = |r: Result<_, StoreError>| match r {
        Err(StoreError::Decide(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let e = refusal(
        store
            .decide(
                id.clone(),
                reviewer("sam", &["sales"]),
                verdict(Verdict::Approve),
                t0(),
            )
            .await,
    );
    assert!(matches!(e, DecideError::NotAnApprover { .. }));
    let e = refusal(
        store
            .decide(
                id.clone(),
                reviewer("olivia", &["support-leads"]),
                verdict(Verdict::Approve),
                t0(),
            )
            .await,
    );
    assert!(matches!(e, DecideError::OwnAgent { .. }));
    let approved = store
        .decide(
            id.clone(),
            reviewer("rita", &["support-leads"]),
            verdict(Verdict::Approve),
            t0() + TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(approved.gate.status, Status::Approved);
    assert_eq!(approved.gate.decisions.len(), 1);
    assert_eq!(approved.gate.decided_at, Some(t0() + TimeDelta::minutes(1)));
    assert_eq!(approved.version, 2);
    assert_eq!(store.action(&id).await.unwrap().as_ref(), Some(&approved));
    let e = refusal(
        store
            .decide(
                id.clone(),
                reviewer("ron", &["support-leads"]),
                verdict(Verdict::Reject),
                t0(),
            )
            .await,
    );
    assert_eq!(e, DecideError::NotPending(Status::Approved));
    assert!(matches!(
        store
            .decide(
                "nope".into(),
                reviewer("rita", &[]),
                verdict(Verdict::Approve),
                t0()
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Subscribers hear about the committed change (refusals change nothing).
    let change = changes.recv().await.unwrap();
    assert_eq!(change.id, id);
    assert_eq!(change.gate.status, Status::Approved);
}

pub(super) async fn confirm_and_modify(store: &dyn Store) {
    let id = submit_pending(store, "account.close", json!({"account": "c_9"})).await;
    let mut confirm = verdict(Verdict::Approve);
    confirm.confirm = Some("account.close".into());
    let first = store
        .decide(id.clone(), reviewer("rita", &[]), confirm.clone(), t0())
        .await
        .unwrap();
    assert_eq!(first.gate.status, Status::Pending);
    assert_eq!(first.gate.approvals_required, 2);
    assert!(matches!(
        store
            .decide(id.clone(), reviewer("rita", &[]), confirm.clone(), t0())
            .await,
        Err(StoreError::Decide(DecideError::AlreadyApproved(_)))
    ));
    let second = store
        .decide(id.clone(), reviewer("sam", &[]), confirm, t0())
        .await
        .unwrap();
    assert_eq!(second.gate.status, Status::Approved);

    let id = submit_pending(store, "email.send", json!({"to": "a@example.com"})).await;
    let mut modify = verdict(Verdict::Modify);
    let new_args = object(json!({"to": "b@example.com"}));
    modify.args = Some(new_args.clone());
    assert!(
        matches!(
            store
                .decide(id.clone(), reviewer("rita", &[]), modify.clone(), t0())
                .await,
            Err(StoreError::Decide(DecideError::Unclassified))
        ),
        "a modify whose arguments the policy did not see is refused"
    );
    let record = store.action(&id).await.unwrap().unwrap();
    modify.reclassified = Some(record.reclassify(&policy(), new_args, t0()).unwrap());
    let modified = store
        .decide(id.clone(), reviewer("rita", &[]), modify, t0())
        .await
        .unwrap();
    assert_eq!(modified.gate.status, Status::Approved);
    assert_eq!(modified.gate.args["to"], "b@example.com");
    assert_eq!(
        modified.gate.original_args.as_ref().unwrap()["to"],
        "a@example.com"
    );
    assert_eq!(store.action(&id).await.unwrap().unwrap(), modified);
}

pub(super) async fn cancel_and_outcome(store: &dyn Store) {
    let id = submit_pending(store, "email.send", json!({})).await;
    let cancelled = store.cancel(id.clone(), agent(), t0()).await.unwrap();
    assert_eq!(cancelled.gate.status, Status::Cancelled);
    assert!(matches!(
        store.cancel(id.clone(), agent(), t0()).await,
        Err(StoreError::State(_))
    ));
    assert!(matches!(
        store
            .record_outcome(
                id,
                agent(),
                NewOutcome {
                    status: OutcomeStatus::Succeeded,
                    detail: None
                },
                t0()
            )
            .await,
        Err(StoreError::State(_))
    ));

    let id = store
        .submit(new_action(
            &policy(),
            "support-bot",
            "order.get",
            json!({}),
            t0(),
        ))
        .await
        .unwrap()
        .record
        .id;
    let outcome = NewOutcome {
        status: OutcomeStatus::Failed,
        detail: Some(json!({"error": "timeout"})),
    };
    let done = store
        .record_outcome(id.clone(), agent(), outcome.clone(), t0())
        .await
        .unwrap();
    let recorded = done.gate.outcome.unwrap();
    assert_eq!(recorded.status, OutcomeStatus::Failed);
    assert_eq!(recorded.reported_by, "support-bot");
    assert!(matches!(
        store.record_outcome(id, agent(), outcome, t0()).await,
        Err(StoreError::State(StateError::OutcomeAlreadyReported))
    ));
}

pub(super) async fn sla_ladder(store: &dyn Store) {
    // Far in the past relative to everything else, so these come first in the queue.
    let early = t0() - TimeDelta::days(1);
    let p = policy();
    let escalating = store
        .submit(new_action(
            &p,
            "support-bot",
            "refund.create",
            json!({"amount": 900}),
            early,
        ))
        .await
        .unwrap()
        .record;
    let expiring = store
        .submit(new_action(
            &p,
            "support-bot",
            "email.send",
            json!({}),
            early,
        ))
        .await
        .unwrap()
        .record;
    assert_eq!(
        store.next_deadline().await.unwrap(),
        Some(early + TimeDelta::minutes(15))
    );
    let at = early + TimeDelta::minutes(15);
    let due = store.due_deadlines(at, 100).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [escalating.id.as_str()]
    );
    assert_eq!(
        store.apply_sla(expiring.id.clone(), at).await.unwrap(),
        None
    );
    let escalated = store
        .apply_sla(escalating.id.clone(), at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(escalated.gate.status, Status::Pending);
    assert!(escalated.gate.escalated);
    assert_eq!(escalated.gate.escalated_to, ["finance"]);
    assert_eq!(escalated.gate.deadline, Some(at + TimeDelta::hours(1)));
    // Finance may now decide; it has not yet.
    let later = early + TimeDelta::hours(2);
    let swept = store.sweep_sla(later, 100).await.unwrap();
    let mut swept_ids: Vec<&str> = swept.iter().map(|r| r.id.as_str()).collect();
    swept_ids.sort();
    let mut expected = vec![escalating.id.as_str(), expiring.id.as_str()];
    expected.sort();
    assert_eq!(swept_ids, expected);
    assert!(swept.iter().all(|r| r.gate.status == Status::Expired));
    assert!(swept.iter().all(|r| r.gate.decided_at == Some(later)));
    assert!(store.due_deadlines(later, 100).await.unwrap().is_empty());

    // A decision after the deadline is refused even before the SLA step ran; a due
    // escalation is applied first, and the escalation group may then decide.
    let past_due = store
        .submit(new_action(
            &p,
            "support-bot",
            "email.send",
            json!({}),
            early,
        ))
        .await
        .unwrap()
        .record;
    let after_deadline = early + TimeDelta::minutes(31);
    assert!(matches!(
        store
            .decide(
                past_due.id.clone(),
                reviewer("rita", &[]),
                verdict(Verdict::Approve),
                after_deadline
            )
            .await,
        Err(StoreError::Decide(DecideError::DeadlinePassed { .. }))
    ));
    assert_eq!(
        store
            .action(&past_due.id)
            .await
            .unwrap()
            .unwrap()
            .gate
            .status,
        Status::Pending,
        "the refusal changes nothing; the SLA worker expires it"
    );
    let due_escalation = store
        .submit(new_action(
            &p,
            "support-bot",
            "refund.create",
            json!({"amount": 700}),
            early,
        ))
        .await
        .unwrap()
        .record;
    let approved = store
        .decide(
            due_escalation.id.clone(),
            reviewer("fin", &["finance"]),
            verdict(Verdict::Approve),
            early + TimeDelta::minutes(16),
        )
        .await
        .unwrap();
    assert_eq!(approved.gate.status, Status::Approved);
    assert!(approved.gate.escalated);
}
