//! The story's identity chapter: one person is one person. New tokens take their name under
//! `countersign_core::identity`'s rules inside the write transaction, an agent's owner does
//! not review its actions, and revocations reach listeners.

use countersign_core::identity::IdentityError;
use countersign_core::lifecycle::ReviewError;
use countersign_core::name::Name;
use serde_json::json;

use super::{new_action, policy, reviewer, t0};
use crate::{
    ACTOR_TOKEN_FIELD, Actor, NewReview, NewToken, ReviewState, ReviewVerdict, Role, Store,
    StoreError, kind,
};

fn token(name: &str, role: Role, owner: Option<&str>) -> NewToken {
    NewToken {
        name: Name::parse(name).unwrap(),
        role,
        groups: vec![],
        owner: owner.map(|o| Name::parse(o).unwrap()),
        created_by: reviewer("ada", &[]),
        at: t0(),
    }
}

/// Runs after `records::tokens`: `support-bot` (owned by `olivia`) and a revoked `rita`.
pub(super) async fn identities(store: &dyn Store) {
    // Tokens of one agent share its owner: left out, it is inherited...
    let second = store
        .create_token(token("support-bot", Role::Agent, None))
        .await
        .unwrap();
    assert_eq!(second.token.owner.as_deref(), Some("olivia"));
    let audit = store.audit(0, 1000, 0).await.unwrap();
    let created = audit.last().unwrap();
    assert_eq!(
        (created.kind.as_str(), created.actor.as_str()),
        (kind::TOKEN_CREATED, "ada")
    );
    assert_eq!(created.body_json()["owner"], "olivia");
    assert_eq!(created.body_json()[ACTOR_TOKEN_FIELD], "token-of-ada");
    // ... and another is refused.
    assert!(matches!(
        store
            .create_token(token("support-bot", Role::Agent, Some("tom")))
            .await,
        Err(StoreError::Identity(IdentityError::OwnerConflict { existing, .. })) if existing == "olivia"
    ));
    // One spelling per identity: names are folded when parsed, so `Rita` is `rita`, and
    // another token for the same person.
    let again = store
        .create_token(token("Rita", Role::Reviewer, None))
        .await
        .expect("another token for the same person");
    assert_eq!(again.token.name, "rita");
    // One kind per name, and no reserved names.
    assert!(matches!(
        store
            .create_token(token("support-bot", Role::Reviewer, None))
            .await,
        Err(StoreError::Identity(IdentityError::NameIsAgent { .. }))
    ));
    assert!(matches!(
        store.create_token(token("olivia", Role::Agent, None)).await,
        Err(StoreError::Identity(IdentityError::NameIsPerson(_)))
    ));
    assert!(matches!(
        store.create_token(token("System", Role::Admin, None)).await,
        Err(StoreError::Identity(IdentityError::Reserved { .. }))
    ));
    // Two creations racing for one agent name with different owners: one wins.
    let (tom, una) = tokio::join!(
        store.create_token(token("twin-bot", Role::Agent, Some("tom"))),
        store.create_token(token("twin-bot", Role::Agent, Some("una"))),
    );
    assert!(
        tom.is_ok() != una.is_ok(),
        "exactly one owner for twin-bot: {tom:?} {una:?}"
    );

    // Revocations reach listeners after the commit; other processes' are found by asking.
    let mut revocations = store.subscribe_revocations();
    store
        .revoke_token(second.token.id.clone(), reviewer("ada", &[]), t0())
        .await
        .unwrap();
    assert_eq!(revocations.try_recv().unwrap(), second.token.id);
    let tokens = store.tokens().await.unwrap();
    let live = tokens.iter().find(|t| !t.revoked).unwrap().id.clone();
    let asked = [live, second.token.id.clone(), "no-such-token".to_owned()];
    assert_eq!(
        store.revoked_among(&asked).await.unwrap(),
        std::slice::from_ref(&second.token.id)
    );
}

/// Runs after `records::post_hoc_review` (which expects an empty review queue before it):
/// the agent's owner and the agent itself may not review its sampled actions, in any case.
pub(super) async fn review_separation(store: &dyn Store) {
    let sampled = store
        .submit(new_action(
            &policy(),
            "support-bot",
            "refund.create",
            json!({"amount": 30}),
            t0(),
        ))
        .await
        .unwrap()
        .record;
    assert_eq!(sampled.gate.review, ReviewState::Open);
    let ok = NewReview {
        verdict: ReviewVerdict::Ok,
        note: None,
    };
    for who in [
        reviewer("olivia", &[]),
        reviewer("Olivia", &[]),
        Actor::named("support-bot"),
    ] {
        assert!(
            matches!(
                store
                    .review(sampled.id.clone(), who.clone(), ok.clone(), t0())
                    .await,
                Err(StoreError::Review(ReviewError::OwnAgent { .. }))
            ),
            "{who:?}"
        );
    }
    let reviewed = store
        .review(sampled.id, reviewer("sam", &[]), ok, t0())
        .await
        .unwrap();
    assert!(matches!(reviewed.gate.review, ReviewState::Reviewed(r) if r.reviewer == "sam"));
}
