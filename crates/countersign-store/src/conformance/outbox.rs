//! The outbox and the SLA ladder's reminders: events are written with the change that
//! causes them (and not at all when the change is refused), deliveries wait in lanes, each
//! try is recorded, a delivery that used up its tries is failed, audited and retryable, and
//! the log still verifies with reminders and deliveries in it. Then Slack links.

use std::sync::Arc;

use chrono::TimeDelta;
use countersign_core::lifecycle::{DecideError, Verdict};
use countersign_core::{Policy, Status};
use serde_json::{Value, json};

use super::{new_action, reviewer, t0, verdict};
use crate::{
    Actor, Attempt, CLI_ACTOR, DeliveryQuery, DeliveryStatus, Destination, Event, EventKind,
    EventRouter, NewToken, RegressionEvent, Role, Routed, Store, StoreError, Tried, kind,
    outbox_kind,
};

const POLICY: &str = r#"
version = 1
[defaults]
tier = "approve"
sla = "30m"
remind_at = ["50%", "90%"]
"#;

/// Sends every event to the target `hook`, and final events with a callback to the agent.
struct Router;

impl EventRouter for Router {
    fn route(&self, event: &Event<'_>) -> Option<Routed> {
        let mut destinations = Vec::new();
        if event.kind != EventKind::Cancelled {
            destinations.push(Destination {
                target: "hook".into(),
                lane: "hook".into(),
                url: None,
            });
        }
        if let Some(url) = event.callback_url {
            destinations.push(Destination {
                target: "callback".into(),
                lane: "callback https://agents.internal".into(),
                url: Some(url.to_owned()),
            });
        }
        Some(Routed {
            body: json!({"type": event.kind.as_str(), "action": event.record.id, "status": event.record.gate.status.as_str()}).to_string(),
            destinations,
        })
    }

    fn route_regression(&self, event: &RegressionEvent<'_>) -> Option<Routed> {
        Some(Routed {
            body: json!({"type": "graduation_regressed", "rule": event.regression.rule})
                .to_string(),
            destinations: vec![Destination {
                target: "hook".into(),
                lane: "hook".into(),
                url: None,
            }],
        })
    }
}

pub(super) async fn outbox(store: &dyn Store) {
    let t = t0() + TimeDelta::days(10);
    // The earlier parts' pending actions end first, before events go anywhere.
    while !store.sweep_sla(t, 1000).await.unwrap().is_empty() {}
    store.set_router(Arc::new(Router));
    let signal = store.outbox_signal();
    signal.take_lanes();
    let policy = Policy::parse(POLICY).unwrap();
    let mut new = new_action(&policy, "support-bot", "email.send", json!({}), t);
    new.callback_url = Some("https://agents.internal/cb/1".into());
    let action = store.submit(new).await.unwrap().record;
    assert_eq!(action.gate.reminders.len(), 2);
    assert_eq!(action.gate.next_step_at(), Some(t + TimeDelta::minutes(15)));
    assert_eq!(
        signal.take_lanes().into_iter().collect::<Vec<_>>(),
        ["hook"]
    );

    let due = store
        .due_deliveries("hook".into(), t, 10, vec![])
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    let pending = &due[0];
    assert_eq!(pending.event_kind, EventKind::Pending);
    assert_eq!(pending.event_id, format!("msg_{}_1", action.id));
    let body: Value = serde_json::from_str(pending.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["action"], json!(action.id));
    // In flight deliveries are left out when asked.
    assert!(
        store
            .due_deliveries("hook".into(), t, 10, vec![pending.id])
            .await
            .unwrap()
            .is_empty()
    );

    // A refused decision writes no event.
    let approve_too_late = store
        .decide(
            action.id.clone(),
            reviewer("sally", &[]),
            verdict(Verdict::Approve),
            t + TimeDelta::hours(1),
        )
        .await;
    assert!(matches!(
        approve_too_late,
        Err(StoreError::Decide(DecideError::DeadlinePassed { .. }))
    ));
    let all = |status| DeliveryQuery {
        status,
        ..DeliveryQuery::default()
    };
    assert_eq!(store.deliveries(all(None)).await.unwrap().items.len(), 1);

    // Tries: a retry moves the next attempt, giving up fails the delivery and audits it.
    let retry_at = t + TimeDelta::seconds(5);
    store
        .finish_deliveries(
            vec![Tried {
                id: pending.id,
                attempt: Attempt::Retry {
                    error: "HTTP 503".into(),
                    at: retry_at,
                },
            }],
            t,
        )
        .await
        .unwrap();
    assert_eq!(
        store.lane_state("hook".into(), t).await.unwrap(),
        (true, Some(retry_at))
    );
    assert!(
        store
            .due_deliveries("hook".into(), t, 10, vec![])
            .await
            .unwrap()
            .is_empty()
    );
    store
        .finish_deliveries(
            vec![Tried {
                id: pending.id,
                attempt: Attempt::GaveUp {
                    error: "timed out after 10s".into(),
                },
            }],
            retry_at,
        )
        .await
        .unwrap();
    let failed = store
        .deliveries(all(Some(DeliveryStatus::Failed)))
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 1);
    assert_eq!(failed.items[0].attempts, 2);
    assert_eq!(
        failed.items[0].last_error.as_deref(),
        Some("timed out after 10s")
    );
    assert_eq!(
        store.lane_state("hook".into(), t).await.unwrap(),
        (false, None)
    );
    let head = store.audit_head().await.unwrap();
    let last = store.audit(head.size - 1, 1, 0).await.unwrap();
    assert_eq!(last[0].kind, outbox_kind::DELIVERY_FAILED);
    assert_eq!(last[0].action_id, action.id);

    let admin = reviewer("ada", &[]);
    let retried = store
        .retry_delivery(pending.id, admin.clone(), retry_at)
        .await
        .unwrap();
    assert_eq!(
        (retried.status, retried.attempts),
        (DeliveryStatus::Pending, 0)
    );
    assert!(signal.take_lanes().contains("hook"));
    assert!(matches!(
        store
            .retry_delivery(pending.id, admin.clone(), retry_at)
            .await,
        Err(StoreError::DeliveryNotFailed { .. })
    ));
    assert!(matches!(
        store.retry_delivery(999_999, admin.clone(), retry_at).await,
        Err(StoreError::DeliveryNotFound(999_999))
    ));
    store
        .finish_deliveries(
            vec![Tried {
                id: pending.id,
                attempt: Attempt::Delivered,
            }],
            retry_at,
        )
        .await
        .unwrap();
    // A late report about a finished delivery changes nothing.
    store
        .finish_deliveries(
            vec![Tried {
                id: pending.id,
                attempt: Attempt::GaveUp {
                    error: "late".into(),
                },
            }],
            retry_at,
        )
        .await
        .unwrap();
    let delivered = store
        .deliveries(all(Some(DeliveryStatus::Delivered)))
        .await
        .unwrap();
    assert_eq!(delivered.items[0].id, pending.id);
    assert_eq!(delivered.items[0].attempts, 1);

    // The reminders: each once, as its own event; then expiry reaches the callback too.
    let fifteen = t + TimeDelta::minutes(15);
    let swept = store.sweep_sla(fifteen, 10).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].gate.reminders, [t + TimeDelta::minutes(27)]);
    assert!(store.sweep_sla(fifteen, 10).await.unwrap().is_empty());
    let kinds = |page: crate::Page<crate::Delivery>| -> Vec<(String, EventKind)> {
        page.items
            .into_iter()
            .map(|d| (d.target, d.event_kind))
            .collect()
    };
    assert_eq!(
        kinds(
            store
                .deliveries(all(Some(DeliveryStatus::Pending)))
                .await
                .unwrap()
        ),
        [("hook".to_owned(), EventKind::Reminder)]
    );
    store
        .sweep_sla(t + TimeDelta::minutes(27), 10)
        .await
        .unwrap();
    let expired = store
        .sweep_sla(t + TimeDelta::minutes(30), 10)
        .await
        .unwrap();
    assert_eq!(expired[0].gate.status, Status::Expired);
    let pending_now = store
        .deliveries(all(Some(DeliveryStatus::Pending)))
        .await
        .unwrap();
    assert_eq!(
        kinds(pending_now.clone()),
        [
            ("callback".to_owned(), EventKind::Expired),
            ("hook".to_owned(), EventKind::Expired),
            ("hook".to_owned(), EventKind::Reminder),
            ("hook".to_owned(), EventKind::Reminder),
        ]
    );
    assert_eq!(
        pending_now.items[0].url.as_deref(),
        Some("https://agents.internal/cb/1")
    );
    let entries = store.audit(head.size, 100, 0).await.unwrap();
    let expiry = entries.iter().find(|e| e.kind == kind::EXPIRED).unwrap();
    assert_eq!(
        expiry.body_json()["detail"],
        json!("expired: no reviewer answered within 30m")
    );
    assert_eq!(
        entries.iter().filter(|e| e.kind == kind::REMINDED).count(),
        2
    );
    let mut lanes = store.pending_lanes().await.unwrap();
    lanes.sort();
    assert_eq!(lanes, ["callback https://agents.internal", "hook"]);

    // Cancellation: only the callback hears.
    let mut new = new_action(&policy, "support-bot", "email.send", json!({}), t);
    new.callback_url = Some("https://agents.internal/cb/2".into());
    let second = store.submit(new).await.unwrap().record;
    let agent = reviewer("support-bot", &[]);
    store
        .cancel(second.id.clone(), agent, t + TimeDelta::minutes(1))
        .await
        .unwrap();
    let newest = &store.deliveries(all(None)).await.unwrap().items[0];
    assert_eq!(
        (newest.target.as_str(), newest.event_kind),
        ("callback", EventKind::Cancelled)
    );

    slack_links(store).await;

    let report = store.verify_audit().await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.state_mismatch_count, 0, "{report:?}");
}

async fn slack_links(store: &dyn Store) {
    let t = t0();
    let admin = reviewer("ada", &[]);
    for (name, role, groups) in [
        ("paula", Role::Reviewer, vec!["finance".into()]),
        ("paula", Role::Admin, vec!["ops".into()]),
    ] {
        store
            .create_token(NewToken {
                name: name.into(),
                role,
                groups,
                owner: None,
                created_by: Actor::named(CLI_ACTOR),
                at: t,
            })
            .await
            .unwrap();
    }
    assert_eq!(store.slack_person("U0PAULA").await.unwrap(), None);
    let link = store
        .link_slack("U0PAULA".into(), "paula".into(), admin.clone(), t)
        .await
        .unwrap();
    assert_eq!(link.name.as_str(), "paula");
    let person = store.slack_person("U0PAULA").await.unwrap().unwrap();
    assert!(person.active && person.admin);
    assert_eq!(
        person.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        ["finance", "ops"]
    );
    // An agent's name is never a person's; reserved names are nobody's.
    assert!(matches!(
        store
            .link_slack("U0BOT".into(), "support-bot".into(), admin.clone(), t)
            .await,
        Err(StoreError::Identity(_))
    ));
    assert!(matches!(
        store
            .link_slack("U0SYS".into(), "system".into(), admin.clone(), t)
            .await,
        Err(StoreError::Identity(_))
    ));
    // Revoked tokens decide nothing: the link stays, the person is inactive.
    for token in store.tokens().await.unwrap() {
        if token.name.as_str() == "paula" {
            store
                .revoke_token(token.id, admin.clone(), t)
                .await
                .unwrap();
        }
    }
    let person = store.slack_person("U0PAULA").await.unwrap().unwrap();
    assert!(!person.active && !person.admin && person.groups.is_empty());
    assert_eq!(store.slack_links().await.unwrap().len(), 1);
    store
        .unlink_slack("U0PAULA".into(), admin.clone(), t)
        .await
        .unwrap();
    assert_eq!(store.slack_person("U0PAULA").await.unwrap(), None);
    assert!(matches!(
        store.unlink_slack("U0PAULA".into(), admin, t).await,
        Err(StoreError::SlackLinkNotFound(_))
    ));
}
