//! The story's grants chapter: a grant is stored with its giver's groups and audited; a
//! submission that names it as a candidate uses it only while it is live, and twenty
//! submissions racing for five uses get exactly five; revoking is immediate and idempotent;
//! expiry is exact; every use is an audit entry naming the grant, and the log verifies. The
//! approval metrics count a grant's uses as `granted` (and `allowed`), each exactly once.

use std::sync::Arc;

use chrono::TimeDelta;
use countersign_core::Status;
use countersign_core::grant::Grant;
use serde_json::json;

use super::{glob, new_action, policy, reviewer, t0};
use crate::{GrantQuery, NewAction, NewGrant, Store, StoreError, grant_kind};

fn refund_grant(uses: Option<u32>) -> NewGrant {
    NewGrant {
        agent: "support-bot".into(),
        actions: glob("refund.create"),
        condition: Some("args.amount <= 500".to_owned()),
        expires_at: t0() + TimeDelta::hours(1),
        max_uses: uses,
        reason: Some("duplicate charges".to_owned()),
        granted_by: reviewer("rita", &["support-leads"]),
        at: t0(),
    }
}

/// A large refund by `support-bot`, classified with the story's grants in `grants`.
fn granted_refund(grants: &[Arc<Grant>], amount: u64, minutes: i64) -> NewAction {
    let at = t0() + TimeDelta::minutes(minutes);
    let plain = new_action(
        &policy(),
        "support-bot",
        "refund.create",
        json!({"amount": amount}),
        at,
    );
    let mut new = NewAction::classify_granted(
        &policy(),
        plain.proposal.clone(),
        plain.owner.clone(),
        grants,
        at,
    );
    new.token_id = plain.token_id;
    new
}

/// Polls every future until all are done: the submissions reach the store together.
async fn join_all<T>(mut futures: Vec<crate::BoxFuture<'_, T>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in futures.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// The all-time counts of `support-bot`'s `refund.create` actions, as kept.
async fn granted_refunds(store: &dyn Store) -> countersign_core::stats::Counts {
    let mut counts = countersign_core::stats::Counts::default();
    for kept in store.stats_totals().await.unwrap().actions {
        if kept.key.agent.as_str() == "support-bot" && kept.key.action.as_str() == "refund.create" {
            counts.add(&kept.tally.counts);
        }
    }
    counts
}

pub(super) async fn grants(store: &dyn Store) {
    let start = store.audit_head().await.unwrap().size;
    let given = store.create_grant(refund_grant(Some(5))).await.unwrap();
    assert_eq!(
        (given.uses, given.granted_by.as_str(), given.revoked_at),
        (0, "rita", None)
    );
    assert_eq!(given.granted_by_groups, ["support-leads"]);
    assert_eq!(store.grant(&given.id).await.unwrap(), Some(given.clone()));
    let live = GrantQuery {
        agent: Some("support-bot".into()),
        live_at: Some(t0()),
    };
    assert_eq!(
        store.grants(live.clone()).await.unwrap(),
        vec![given.clone()]
    );
    let other = GrantQuery {
        agent: Some("other-bot".into()),
        live_at: None,
    };
    assert_eq!(store.grants(other).await.unwrap(), vec![]);
    let grant = Arc::new(given.to_grant().expect("the stored grant compiles"));

    // Outside the condition the grant is no candidate at all.
    let large = granted_refund(std::slice::from_ref(&grant), 900, 1);
    assert!(large.grants.is_empty());
    assert_eq!(
        store.submit(large).await.unwrap().record.gate.status,
        Status::Pending
    );

    // Twenty racing submissions for five uses: exactly five are allowed, and the approval
    // metrics count each once: five `granted` (also `allowed`), fifteen `pending`.
    let kept_before = granted_refunds(store).await;
    let racing = (0..20)
        .map(|i| store.submit(granted_refund(std::slice::from_ref(&grant), 200 + i, 2)))
        .collect();
    let answers = join_all(racing).await;
    let mut allowed = 0;
    for answer in answers {
        let record = answer.unwrap().record;
        match record.gate.status {
            Status::Allowed => {
                assert_eq!(record.grant.as_deref(), Some(given.id.as_str()));
                assert!(record.reason.contains(&given.id), "{}", record.reason);
                allowed += 1;
            }
            Status::Pending => assert_eq!(record.grant, None),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 5);
    let mut kept = granted_refunds(store).await;
    kept.subtract(&kept_before);
    assert_eq!(
        (
            kept.total,
            kept.allowed,
            kept.granted,
            kept.pending,
            kept.approved
        ),
        (20, 5, 5, 15, 0)
    );
    let used_up = store.grant(&given.id).await.unwrap().unwrap();
    assert_eq!(used_up.uses, 5);
    assert_eq!(
        store.grants(live.clone()).await.unwrap(),
        vec![],
        "used up: not live"
    );

    // Revoked: the next submission naming it is asked about; revoking again changes nothing.
    let second = store.create_grant(refund_grant(None)).await.unwrap();
    let second_grant = Arc::new(second.to_grant().unwrap());
    let used = store
        .submit(granted_refund(std::slice::from_ref(&second_grant), 300, 3))
        .await
        .unwrap();
    assert_eq!(used.record.gate.status, Status::Allowed);
    let revoker = reviewer("sally", &["sales"]);
    let revoked = store
        .revoke_grant(
            second.id.clone(),
            revoker.clone(),
            t0() + TimeDelta::minutes(4),
        )
        .await
        .unwrap();
    assert_eq!(
        revoked.revoked_by.as_ref().map(|n| n.as_str()),
        Some("sally")
    );
    let again = store
        .revoke_grant(
            second.id.clone(),
            reviewer("rita", &[]),
            t0() + TimeDelta::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(again, revoked);
    let after = store
        .submit(granted_refund(std::slice::from_ref(&second_grant), 300, 6))
        .await
        .unwrap();
    assert_eq!(
        (after.record.gate.status, after.record.grant),
        (Status::Pending, None),
        "the candidate list is stale, the store is not"
    );
    assert!(matches!(
        store.revoke_grant("nope".into(), revoker, t0()).await,
        Err(StoreError::GrantNotFound(_))
    ));

    // Expiry is exact: live until its last millisecond, not at it.
    let third = store.create_grant(refund_grant(None)).await.unwrap();
    let third_grant = Arc::new(third.to_grant().unwrap());
    let mut before_end = granted_refund(std::slice::from_ref(&third_grant), 300, 0);
    before_end.at = third.expires_at - TimeDelta::milliseconds(1);
    assert_eq!(
        store.submit(before_end).await.unwrap().record.gate.status,
        Status::Allowed
    );
    let mut at_end = granted_refund(std::slice::from_ref(&third_grant), 300, 0);
    at_end.at = third.expires_at;
    assert_eq!(
        store.submit(at_end).await.unwrap().record.gate.status,
        Status::Pending
    );

    // Created, revoked and each use: in the log, naming the grant; the log verifies.
    let mut entries = Vec::new();
    loop {
        let after = entries.last().map_or(start, |e: &crate::AuditEntry| e.seq);
        let page = store.audit(after, 1000, 0).await.unwrap();
        if page.is_empty() {
            break;
        }
        entries.extend(page);
    }
    let count = |kind: &str| entries.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count(grant_kind::GRANT_CREATED), 3);
    assert_eq!(count(grant_kind::GRANT_REVOKED), 1);
    assert_eq!(count(grant_kind::GRANT_USED), 5 + 1 + 1);
    assert!(
        entries
            .iter()
            .filter(|e| e.kind == grant_kind::GRANT_USED)
            .all(|e| e.body.contains("grant_id") && !e.action_id.is_empty())
    );
    let report = store.verify_audit().await.unwrap();
    assert!(report.ok(), "{report:?}");
}
