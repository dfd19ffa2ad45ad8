//! The story's chapters beside the lifecycle: tokens, post-hoc review, idempotency and the
//! audit chain.

use countersign_core::action::AgentName;
use countersign_core::lifecycle::{ReviewError, Verdict};
use countersign_core::{Status, Tier};
use serde_json::{Value, json};

use super::lifecycle::submit_pending;
use super::{new_action, policy, reviewer, t0, verdict};
use crate::{
    ACTOR_TOKEN_FIELD, Actor, CLI_ACTOR, CheckpointClaim, CheckpointOutcome, Idempotency,
    NewAuditEntry, NewCheckpoint, NewReview, NewToken, ReviewQuery, ReviewState, ReviewVerdict,
    Role, Store, StoreError, kind, request_hash,
};

pub(super) async fn tokens(store: &dyn Store) {
    let created = store
        .create_token(NewToken {
            name: "support-bot".into(),
            role: Role::Agent,
            groups: vec![],
            owner: Some("olivia".into()),
            created_by: Actor::named(CLI_ACTOR),
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
            created_by: reviewer("ada", &[]),
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(store.tokens().await.unwrap().len(), 2);
    let revoked = store
        .revoke_token(other.token.id.clone(), reviewer("ada", &[]), t0())
        .await
        .unwrap();
    assert!(revoked.revoked);
    assert_eq!(store.authenticate(&other.secret).await.unwrap(), None);
    assert!(matches!(
        store
            .revoke_token("nope".into(), reviewer("ada", &[]), t0())
            .await,
        Err(StoreError::TokenNotFound(_))
    ));
}

pub(super) async fn post_hoc_review(store: &dyn Store) {
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
        (sampled.gate.tier, sampled.gate.status),
        (Tier::Logged, Status::Allowed)
    );
    assert_eq!(sampled.gate.review, ReviewState::Open);
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
        &reviewed.gate.review,
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
        Err(StoreError::Review(ReviewError::AlreadyReviewed))
    ));
    let not_sampled = submit_pending(store, "email.send", json!({})).await;
    assert!(matches!(
        store
            .review(not_sampled, reviewer("sam", &[]), again, t0())
            .await,
        Err(StoreError::Review(ReviewError::NotSampled))
    ));
}

pub(super) async fn idempotency(store: &dyn Store) {
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
    other_agent.token_id = Some("token-of-other-bot".into());
    let separate = store.submit(other_agent).await.unwrap();
    assert!(!separate.replayed);
    assert_ne!(separate.record.id, first.record.id);
}

pub(super) async fn audit(store: &dyn Store) {
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
    let entries = store.audit(0, 1000, 0).await.unwrap();
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
    // The token next to the name: on every entry by a token-bearing actor, on none by
    // `system` or `cli`.
    for entry in &entries {
        let token = entry.body_json()[ACTOR_TOKEN_FIELD]
            .as_str()
            .map(str::to_owned);
        let expected = match entry.actor.as_str() {
            "system" | "cli" => None,
            name => Some(format!("token-of-{name}")),
        };
        assert_eq!(token, expected, "{entry:?}");
    }
    let tail = store.audit(custom.seq - 2, 1000, 0).await.unwrap();
    assert_eq!(tail.len(), 2);
    // A page stops once it holds more than its byte bound (and always holds one entry).
    let small = store.audit(0, 1000, 1).await.unwrap();
    assert_eq!(small, entries[..1]);
    let bound = entries[0].stored_bytes() + entries[1].stored_bytes();
    let two = store.audit(0, 1000, bound).await.unwrap();
    assert_eq!(two.len(), 3, "the entry that crosses the bound is the last");
    let report = store.verify_audit().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.entries, custom.seq);
    assert_eq!(report.head, custom.hash);
    // Every action of the story was re-derived from its entries, and agrees.
    assert!(report.actions >= 10, "{report:?}");
    assert_eq!(report.state_mismatch_count, 0, "{report:?}");
    let stats = store.commit_stats();
    assert!(stats.commits >= 1 && stats.commands >= stats.commits);
}

pub(super) async fn checkpoints(store: &dyn Store) {
    let head = store.audit_head().await.unwrap();
    let last = store.audit(head.size - 1, 1, 0).await.unwrap();
    assert_eq!(last[0].seq, head.size);
    assert_eq!(last[0].hash, countersign_core::audit::hex(&head.hash));
    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    let new = NewCheckpoint {
        size: head.size,
        hash: head.hash,
        note: "a signed note".into(),
        at: t0(),
    };
    let (stored, created) = store.add_checkpoint(new.clone()).await.unwrap();
    assert!(created);
    assert_eq!((stored.size, &stored.note), (head.size, &new.note));
    let (_, again) = store.add_checkpoint(new.clone()).await.unwrap();
    assert!(!again, "the same checkpoint is kept once");
    assert_eq!(store.latest_checkpoint().await.unwrap(), Some(stored));
    // A head the log does not hold is never kept: another hash, an entry it lacks, an
    // empty log's.
    for (size, hash) in [
        (head.size, [9; 32]),
        (head.size + 5, head.hash),
        (0, [0; 32]),
    ] {
        let wrong = NewCheckpoint {
            size,
            hash,
            ..new.clone()
        };
        assert!(matches!(
            store.add_checkpoint(wrong).await,
            Err(StoreError::CheckpointMismatch(_))
        ));
    }
    // Verifying against checkpoints: extended, rewritten, cut from the end.
    let claim = |size, hash| CheckpointClaim {
        source: format!("checkpoint {size}"),
        size,
        hash,
    };
    let report = store
        .verify_audit_against(vec![claim(head.size, head.hash)])
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    let report = store
        .verify_audit_against(vec![
            claim(head.size + 3, [1; 32]),
            claim(head.size, head.hash),
            claim(1, [0; 32]),
        ])
        .await
        .unwrap();
    let outcomes: Vec<_> = report.checkpoints.iter().map(|c| &c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            &CheckpointOutcome::Rewritten,
            &CheckpointOutcome::Extended,
            &CheckpointOutcome::Truncated { entries: head.size },
        ]
    );
    assert!(!report.ok());
    assert_eq!(report.first_bad_seq(), Some(head.size + 1));
}
