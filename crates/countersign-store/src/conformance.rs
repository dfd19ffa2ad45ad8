//! The backend-independent story every store must pass. Public (behind the `conformance`
//! feature) so that each backend's tests run the very same story: a SQLite file today, a
//! PostgreSQL database next.

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::action::{ActionName, AgentName, ProposedAction};
use countersign_core::glob::Glob;
use countersign_core::lifecycle::{DecideError, DecisionRequest, Verdict};
use countersign_core::{Policy, Status, Tier};
use serde_json::{Map, Value, json};

use crate::{
    ActionQuery, Actor, Idempotency, NewAction, NewAuditEntry, NewOutcome, NewReview, NewToken,
    OutcomeStatus, QueueQuery, ReviewQuery, ReviewState, ReviewVerdict, Role, Store, StoreError,
    kind, request_hash,
};

/// The policy the story classifies with.
pub const STORY_POLICY: &str = r#"
version = 1

[defaults]
tier = "approve"
sla = "30m"

[[rules]]
name = "lookups"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 100"
tier = "logged"
review_sample = 1.0

[[rules]]
name = "large refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]
sla = "15m"
on_timeout = "escalate"
escalate_to = ["finance"]
escalation_sla = "1h"

[[rules]]
name = "closures"
actions = ["account.close"]
tier = "confirm"

[[rules]]
name = "drops"
actions = ["db.drop"]
tier = "deny"
"#;

/// The story's starting time.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap()
}

/// The story's policy, parsed.
pub fn policy() -> Policy {
    Policy::parse(STORY_POLICY).unwrap()
}

/// A classified submission of `action` by `agent` with `args`, at `at`.
pub fn new_action(
    policy: &Policy,
    agent: &str,
    action: &str,
    args: Value,
    at: DateTime<Utc>,
) -> NewAction {
    let mut proposal = ProposedAction::new(
        ActionName::parse(action).unwrap(),
        AgentName::parse(agent).unwrap(),
    );
    proposal.args = object(args);
    let mut new = NewAction::classify(policy, proposal, at);
    new.owner = Some("olivia".into());
    new
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn reviewer(name: &str, groups: &[&str]) -> Actor {
    Actor {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn verdict(verdict: Verdict) -> DecisionRequest {
    DecisionRequest {
        verdict,
        args: None,
        reason: None,
        confirm: None,
    }
}

fn glob(pattern: &str) -> Glob {
    Glob::parse(
        pattern,
        countersign_core::action::is_action_name_char,
        countersign_core::action::ACTION_NAME_CHARS,
    )
    .unwrap()
}

/// Runs the story against `store`, which must be empty. Panics (as tests do) on the first
/// deviation.
pub async fn story(store: &dyn Store) {
    tokens(store).await;
    tiers(store).await;
    queue(store).await;
    decisions(store).await;
    confirm_and_modify(store).await;
    cancel_and_outcome(store).await;
    sla_ladder(store).await;
    post_hoc_review(store).await;
    idempotency(store).await;
    audit(store).await;
}

async fn tokens(store: &dyn Store) {
    let created = store
        .create_token(NewToken {
            name: "support-bot".into(),
            role: Role::Agent,
            groups: vec![],
            owner: Some("olivia".into()),
            created_by: "cli".into(),
            at: t0(),
        })
        .await
        .unwrap();
    assert!(created.secret.starts_with("cs_"));
    let found = store.authenticate(&created.secret).await.unwrap().unwrap();
    assert_eq!(found, created.token);
    assert_eq!(found.owner.as_deref(), Some("olivia"));
    assert_eq!(store.authenticate("cs_nope").await.unwrap(), None);
    let other = store
        .create_token(NewToken {
            name: "rita".into(),
            role: Role::Reviewer,
            groups: vec!["support-leads".into()],
            owner: None,
            created_by: "admin".into(),
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(store.tokens().await.unwrap().len(), 2);
    let revoked = store
        .revoke_token(other.token.id.clone(), "admin".into(), t0())
        .await
        .unwrap();
    assert!(revoked.revoked);
    assert_eq!(store.authenticate(&other.secret).await.unwrap(), None);
    assert!(matches!(
        store
            .revoke_token("nope".into(), "admin".into(), t0())
            .await,
        Err(StoreError::TokenNotFound(_))
    ));
}

async fn tiers(store: &dyn Store) {
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
    assert_eq!((r.tier, r.status), (Tier::Auto, Status::Allowed));
    assert_eq!(r.rule.as_deref(), Some("lookups"));
    assert_eq!(r.deadline, None);
    assert_eq!(r.decided_at, Some(t0()));
    assert_eq!(r.policy_hash, p.hash());
    assert_eq!(r.review, ReviewState::NotSampled);
    assert_eq!(r.version, 1);
    assert_eq!(store.action(&r.id).await.unwrap().as_ref(), Some(r));

    let denied = store
        .submit(new_action(&p, "support-bot", "db.drop", json!({}), t0()))
        .await
        .unwrap();
    assert_eq!(denied.record.status, Status::Denied);

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
    assert_eq!(pending.status, Status::Pending);
    assert_eq!(pending.approvers, ["support-leads"]);
    assert_eq!(pending.approvals_required, 1);
    assert_eq!(pending.deadline, Some(t0() + TimeDelta::minutes(15)));
    assert_eq!(pending.decided_at, None);
    assert_eq!(pending.owner.as_deref(), Some("olivia"));
    assert_eq!(store.action(&pending.id).await.unwrap(), Some(pending));
    assert_eq!(store.action("no-such-id").await.unwrap(), None);
}

async fn queue(store: &dyn Store) {
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
        })
        .await
        .unwrap();
    let second = store
        .queue(QueueQuery {
            action: Some(glob("queue.*")),
            limit: 2,
            cursor: first.next_cursor.clone(),
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
    assert!(all.items.iter().all(|r| r.status == Status::Pending));
    assert!(all.items.windows(2).all(|w| w[0].deadline <= w[1].deadline));
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
}

async fn submit_pending(store: &dyn Store, action: &str, args: Value) -> String {
    store
        .submit(new_action(&policy(), "support-bot", action, args, t0()))
        .await
        .unwrap()
        .record
        .id
}

async fn decisions(store: &dyn Store) {
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
    assert_eq!(approved.status, Status::Approved);
    assert_eq!(approved.decisions.len(), 1);
    assert_eq!(approved.decided_at, Some(t0() + TimeDelta::minutes(1)));
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
    assert_eq!(change.status, Status::Approved);
}

async fn confirm_and_modify(store: &dyn Store) {
    let id = submit_pending(store, "account.close", json!({"account": "c_9"})).await;
    let mut confirm = verdict(Verdict::Approve);
    confirm.confirm = Some("account.close".into());
    let first = store
        .decide(id.clone(), reviewer("rita", &[]), confirm.clone(), t0())
        .await
        .unwrap();
    assert_eq!(first.status, Status::Pending);
    assert_eq!(first.approvals_required, 2);
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
    assert_eq!(second.status, Status::Approved);

    let id = submit_pending(store, "email.send", json!({"to": "a@example.com"})).await;
    let mut modify = verdict(Verdict::Modify);
    modify.args = Some(object(json!({"to": "b@example.com"})));
    let modified = store
        .decide(id.clone(), reviewer("rita", &[]), modify, t0())
        .await
        .unwrap();
    assert_eq!(modified.status, Status::Approved);
    assert_eq!(modified.args["to"], "b@example.com");
    assert_eq!(
        modified.original_args.as_ref().unwrap()["to"],
        "a@example.com"
    );
    assert_eq!(store.action(&id).await.unwrap().unwrap(), modified);
}

async fn cancel_and_outcome(store: &dyn Store) {
    let id = submit_pending(store, "email.send", json!({})).await;
    let cancelled = store
        .cancel(id.clone(), "support-bot".into(), t0())
        .await
        .unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(matches!(
        store.cancel(id.clone(), "support-bot".into(), t0()).await,
        Err(StoreError::State(_))
    ));
    assert!(matches!(
        store
            .record_outcome(
                id,
                "support-bot".into(),
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
        .record_outcome(id.clone(), "support-bot".into(), outcome.clone(), t0())
        .await
        .unwrap();
    let recorded = done.outcome.unwrap();
    assert_eq!(recorded.status, OutcomeStatus::Failed);
    assert_eq!(recorded.reported_by, "support-bot");
    assert!(matches!(
        store
            .record_outcome(id, "support-bot".into(), outcome, t0())
            .await,
        Err(StoreError::OutcomeAlreadyRecorded)
    ));
}

async fn sla_ladder(store: &dyn Store) {
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
    assert_eq!(escalated.status, Status::Pending);
    assert!(escalated.escalated);
    assert_eq!(escalated.escalated_to, ["finance"]);
    assert_eq!(escalated.deadline, Some(at + TimeDelta::hours(1)));
    // Finance may now decide; it has not yet.
    let later = early + TimeDelta::hours(2);
    let swept = store.sweep_sla(later, 100).await.unwrap();
    let mut swept_ids: Vec<&str> = swept.iter().map(|r| r.id.as_str()).collect();
    swept_ids.sort();
    let mut expected = vec![escalating.id.as_str(), expiring.id.as_str()];
    expected.sort();
    assert_eq!(swept_ids, expected);
    assert!(swept.iter().all(|r| r.status == Status::Expired));
    assert!(swept.iter().all(|r| r.decided_at == Some(later)));
    assert!(store.due_deadlines(later, 100).await.unwrap().is_empty());
}

async fn post_hoc_review(store: &dyn Store) {
    let p = policy();
    let sampled = store
        .submit(new_action(
            &p,
            "support-bot",
            "refund.create",
            json!({"amount": 20}),
            t0(),
        ))
        .await
        .unwrap()
        .record;
    assert_eq!(
        (sampled.tier, sampled.status),
        (Tier::Logged, Status::Allowed)
    );
    assert_eq!(sampled.review, ReviewState::Open);
    let open = store.reviews(ReviewQuery::default()).await.unwrap();
    assert_eq!(
        open.items.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&sampled.id]
    );
    let reviewed = store
        .review(
            sampled.id.clone(),
            reviewer("rita", &[]),
            NewReview {
                verdict: ReviewVerdict::Flag,
                note: Some("refund to a new card".into()),
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(
        &reviewed.review,
        ReviewState::Reviewed(r) if r.verdict == ReviewVerdict::Flag && r.reviewer == "rita"
    ));
    assert!(
        store
            .reviews(ReviewQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let done = store
        .reviews(ReviewQuery {
            reviewed: true,
            ..ReviewQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(done.items, [reviewed]);
    let again = NewReview {
        verdict: ReviewVerdict::Ok,
        note: None,
    };
    assert!(matches!(
        store
            .review(
                sampled.id.clone(),
                reviewer("sam", &[]),
                again.clone(),
                t0()
            )
            .await,
        Err(StoreError::AlreadyReviewed)
    ));
    let not_sampled = submit_pending(store, "email.send", json!({})).await;
    assert!(matches!(
        store
            .review(not_sampled, reviewer("sam", &[]), again, t0())
            .await,
        Err(StoreError::NotInReviewQueue)
    ));
}

async fn idempotency(store: &dyn Store) {
    let p = policy();
    let body = json!({"action": "email.send", "args": {"to": "x"}});
    let keyed = |body: &Value| {
        let mut new = new_action(&p, "support-bot", "email.send", json!({"to": "x"}), t0());
        new.idempotency = Some(Idempotency {
            key: "run-77/step-4".into(),
            body_hash: request_hash(body),
        });
        new
    };
    let first = store.submit(keyed(&body)).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(
        first.record.idempotency_key.as_deref(),
        Some("run-77/step-4")
    );
    // The action moves on; a replay still answers what the first answer said.
    store
        .decide(
            first.record.id.clone(),
            reviewer("rita", &[]),
            verdict(Verdict::Reject),
            t0(),
        )
        .await
        .unwrap();
    let again = store.submit(keyed(&body)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.record, first.record);
    let looked_up = store
        .replay("support-bot", keyed(&body).idempotency.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(looked_up.record, first.record);
    let other_body = json!({"action": "email.send", "args": {"to": "y"}});
    assert!(matches!(
        store.submit(keyed(&other_body)).await,
        Err(StoreError::IdempotencyMismatch { .. })
    ));
    // Keys are per agent.
    let mut other_agent = keyed(&body);
    other_agent.proposal.agent = AgentName::parse("other-bot").unwrap();
    let separate = store.submit(other_agent).await.unwrap();
    assert!(!separate.replayed);
    assert_ne!(separate.record.id, first.record.id);
}

async fn audit(store: &dyn Store) {
    let custom = store
        .append_audit(NewAuditEntry {
            kind: "policy_loaded".into(),
            actor: "system".into(),
            action_id: None,
            body: json!({"hash": "abc"}),
            at: t0(),
        })
        .await
        .unwrap();
    let entries = store.audit(0, 1000).await.unwrap();
    assert_eq!(entries.last(), Some(&custom));
    assert!(entries.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert!(entries.windows(2).all(|w| w[1].prev == w[0].hash));
    assert_eq!(entries[0].seq, 1);
    for expected in [
        kind::TOKEN_CREATED,
        kind::TOKEN_REVOKED,
        kind::SUBMITTED,
        kind::CLASSIFIED,
        kind::DECIDED,
        kind::ESCALATED,
        kind::EXPIRED,
        kind::CANCELLED,
        kind::OUTCOME,
        kind::REVIEWED,
    ] {
        assert!(
            entries.iter().any(|e| e.kind == expected),
            "no {expected} entry"
        );
    }
    let tail = store.audit(custom.seq - 2, 1000).await.unwrap();
    assert_eq!(tail.len(), 2);
    let report = store.verify_audit().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.entries, custom.seq);
    assert_eq!(report.head, custom.hash);
    let stats = store.commit_stats();
    assert!(stats.commits >= 1 && stats.commands >= stats.commits);
}
