//! The story's people chapter: web logins are identities like tokens (one spelling, one
//! kind, the login's groups are the person's), sessions start, are found by their secret,
//! are touched and end (sign-out, password change, disabling), and disabling a person
//! revokes their tokens; then the reviewer UI's reads: the filtered queue both ways, counts
//! per tier, the last approved action like another, and filtered windows of the log.

use chrono::TimeDelta;
use countersign_core::Tier;
use countersign_core::identity::IdentityError;
use countersign_core::lifecycle::Verdict;
use countersign_core::name::Name;
use serde_json::json;

use super::{glob, new_action, policy, reviewer, t0, verdict};
use crate::{
    AuditFilter, LastApproved, NewSession, NewToken, NewUser, PendingQuery, Role, Store,
    StoreError, people_kind,
};

fn person(name: &str, groups: &[&str]) -> NewUser {
    NewUser {
        name: Name::parse(name).unwrap(),
        groups: groups.iter().map(|g| Name::parse(g).unwrap()).collect(),
        admin: false,
        password_hash: format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$hash-of-{name}"),
        created_by: reviewer("ada", &[]),
        at: t0(),
    }
}

/// Runs after the identity chapter: `support-bot` is an agent owned by `olivia`.
pub(super) async fn people(store: &dyn Store) {
    let uma = store
        .create_user(person("Uma", &["Support-Leads"]))
        .await
        .unwrap();
    assert_eq!((uma.name.as_str(), uma.disabled), ("uma", false));
    assert_eq!(uma.groups, vec![Name::from("support-leads")]);
    assert_eq!(store.user("UMA").await.unwrap(), Some(uma.clone()));
    assert!(matches!(
        store.create_user(person("uma", &[])).await,
        Err(StoreError::UserExists(_))
    ));
    // One identity, one kind: no login under an agent's name or a reserved one, and no
    // agent token under a person's login.
    assert!(matches!(
        store.create_user(person("support-bot", &[])).await,
        Err(StoreError::Identity(IdentityError::NameIsAgent { .. }))
    ));
    assert!(matches!(
        store.create_user(person("system", &[])).await,
        Err(StoreError::Identity(IdentityError::Reserved { .. }))
    ));
    let agent_named_uma = NewToken {
        name: "uma".into(),
        role: Role::Agent,
        groups: vec![],
        owner: None,
        created_by: reviewer("ada", &[]),
        at: t0(),
    };
    assert!(matches!(
        store.create_token(agent_named_uma).await,
        Err(StoreError::Identity(IdentityError::NameIsPerson(_)))
    ));
    // Her reviewer token acts with her login's groups.
    let token = store
        .create_token(NewToken {
            name: "uma".into(),
            role: Role::Reviewer,
            groups: vec!["sales".into()],
            owner: None,
            created_by: reviewer("ada", &[]),
            at: t0(),
        })
        .await
        .unwrap();
    let found = store.authenticate(&token.secret).await.unwrap().unwrap();
    assert_eq!(found.groups, uma.groups);

    // Sessions: found by their secret only, touched, re-authenticated, ended.
    let started = store
        .start_session(NewSession {
            name: "uma".into(),
            at: t0(),
            address: Some("127.0.0.1".into()),
        })
        .await
        .unwrap();
    let signed_in = store.signed_in(&started.secret).await.unwrap().unwrap();
    assert_eq!(
        (signed_in.session, signed_in.user),
        (started.session.clone(), uma.clone())
    );
    assert_eq!(store.signed_in("not-a-secret").await.unwrap(), None);
    let later = t0() + TimeDelta::minutes(10);
    let touched = store
        .touch_session(started.session.id.clone(), later, false)
        .await
        .unwrap();
    assert_eq!(
        (touched.last_seen_at, touched.authenticated_at),
        (later, t0())
    );
    let reauthenticated = store
        .touch_session(started.session.id.clone(), later, true)
        .await
        .unwrap();
    assert_eq!(reauthenticated.authenticated_at, later);
    let ended = store
        .end_session(started.session.id.clone(), later)
        .await
        .unwrap();
    assert!(ended.ended);
    assert!(
        store
            .signed_in(&started.secret)
            .await
            .unwrap()
            .unwrap()
            .session
            .ended
    );
    assert!(matches!(
        store
            .touch_session(started.session.id.clone(), later, false)
            .await,
        Err(StoreError::SessionEnded(_))
    ));

    // A new password ends every session.
    let second = store
        .start_session(NewSession {
            name: "uma".into(),
            at: later,
            address: None,
        })
        .await
        .unwrap();
    let changed = store
        .change_password(
            "uma".into(),
            "$argon2id$new".into(),
            reviewer("uma", &[]),
            later,
        )
        .await
        .unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(
        store
            .signed_in(&second.secret)
            .await
            .unwrap()
            .unwrap()
            .session
            .ended
    );

    // Disabling ends sessions, revokes the person's tokens (and says so to listeners), and
    // refuses new sessions.
    let third = store
        .start_session(NewSession {
            name: "uma".into(),
            at: later,
            address: None,
        })
        .await
        .unwrap();
    let mut revocations = store.subscribe_revocations();
    let disabled = store
        .disable_user("uma".into(), reviewer("ada", &[]), later)
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert_eq!(revocations.try_recv().unwrap(), token.token.id);
    assert!(
        store
            .signed_in(&third.secret)
            .await
            .unwrap()
            .unwrap()
            .session
            .ended
    );
    assert_eq!(store.authenticate(&token.secret).await.unwrap(), None);
    assert!(matches!(
        store
            .start_session(NewSession {
                name: "uma".into(),
                at: later,
                address: None,
            })
            .await,
        Err(StoreError::UserDisabled(_))
    ));
    assert!(matches!(
        store
            .disable_user("nobody".into(), reviewer("ada", &[]), later)
            .await,
        Err(StoreError::UserNotFound(_))
    ));
    assert_eq!(
        store
            .users()
            .await
            .unwrap()
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["uma"]
    );
    // Each change is in the log, by whom it was done.
    let window = store
        .audit_window(AuditFilter {
            actor: Some("ada".into()),
            limit: 3,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(window.entries[0].kind, people_kind::USER_DISABLED);
    assert!(window.entries.iter().all(|e| e.actor == "ada"));
    assert!(window.entries.windows(2).all(|w| w[0].seq > w[1].seq));
    let mine = store
        .audit_window(AuditFilter {
            actor: Some("UMA".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = mine.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            people_kind::SIGNED_IN,
            people_kind::PASSWORD_CHANGED,
            people_kind::SIGNED_IN,
            people_kind::SIGNED_OUT,
            people_kind::SIGNED_IN,
        ]
    );
}

/// The reviewer UI's reads, on actions of their own agent and name.
pub(super) async fn reviewer_reads(store: &dyn Store) {
    let p = policy();
    let before = store.pending_counts().await.unwrap();
    let mut ids = Vec::new();
    // `ui-bot`'s actions: three `approve` (the default tier), one `confirm`.
    for (minutes, action) in [
        (4, "ui.thing"),
        (1, "ui.thing"),
        (3, "account.close"),
        (2, "ui.thing"),
    ] {
        let record = store
            .submit(new_action(
                &p,
                "ui-bot",
                action,
                json!({"n": minutes}),
                t0() + TimeDelta::minutes(minutes),
            ))
            .await
            .unwrap()
            .record;
        ids.push((minutes, record.id));
    }
    ids.sort();
    let ordered: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
    let counts = store.pending_counts().await.unwrap();
    assert_eq!(
        (
            counts.approve - before.approve,
            counts.confirm - before.confirm
        ),
        (3, 1)
    );
    assert_eq!(counts.total() - before.total(), 4);

    let by_agent = |tier: Option<Tier>, limit| PendingQuery {
        agent: Some("ui-bot".into()),
        tier,
        limit,
        ..PendingQuery::default()
    };
    let all = store.pending(by_agent(None, 10)).await.unwrap();
    let got: Vec<&str> = all.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((got, all.more), (ordered.clone(), false));
    let confirm = store
        .pending(by_agent(Some(Tier::Confirm), 10))
        .await
        .unwrap();
    assert_eq!(confirm.items.len(), 1);
    assert_eq!(confirm.items[0].id, ordered[2]);
    let named = store
        .pending(PendingQuery {
            action: Some(glob("ui.*")),
            agent: Some("ui-bot".into()),
            ..PendingQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(named.items.len(), 3);
    // Walking from the third: forwards the fourth, backwards the first two, in queue order.
    let third = &all.items[2];
    let position = crate::QueuePosition {
        deadline: third.gate.deadline.unwrap(),
        id: third.id.clone(),
    };
    assert_eq!(
        crate::QueuePosition::decode(&position.encode()),
        Some(position.clone())
    );
    let next = store
        .pending(PendingQuery {
            from: Some(position.clone()),
            ..by_agent(None, 1)
        })
        .await
        .unwrap();
    assert_eq!((next.items[0].id.as_str(), next.more), (ordered[3], false));
    let previous = store
        .pending(PendingQuery {
            from: Some(position),
            backwards: true,
            ..by_agent(None, 1)
        })
        .await
        .unwrap();
    assert_eq!(
        (previous.items[0].id.as_str(), previous.more),
        (ordered[1], true)
    );

    // The last approved action like another: none, then the newest approved one.
    let first = &all.items[0];
    let like_first = |except: &'static str| LastApproved {
        agent: &first.gate.agent,
        action: &first.gate.action,
        except,
    };
    assert_eq!(store.last_approved(like_first("")).await.unwrap(), None);
    for id in [ordered[0], ordered[1]] {
        store
            .decide(
                id.to_owned(),
                reviewer("sam", &[]),
                verdict(Verdict::Approve),
                t0(),
            )
            .await
            .unwrap();
    }
    let last = store.last_approved(like_first("")).await.unwrap().unwrap();
    assert_eq!(last.id, ordered[1].max(ordered[0]));

    // The log filtered by action, newest first; a scan window that ends before the start
    // says where to go on.
    let trail = store
        .audit_window(AuditFilter {
            action_id: Some(ordered[0].to_owned()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(trail.entries.len() >= 2);
    assert!(trail.entries.iter().all(|e| e.action_id == ordered[0]));
    let narrow = store
        .audit_window(AuditFilter {
            scan: 2,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(narrow.entries.len(), 2);
    assert_eq!(narrow.next_before, Some(trail.total - 1));
    assert_eq!(narrow.entries[0].seq, narrow.total);
}
