//! The regression watcher: a graduated rule (tier `logged` with a review sample) whose
//! post-hoc flag rate crossed the target is announced to reviewers — once per regression,
//! as the audit entry `graduation_regressed` and the [`GraduationRegressed`] event — with
//! its evidence and the revert ready to apply (the `logged` → `approve` diff). It looks
//! every `check_interval`, and soon after each post-hoc review.
//!
//! **Telling people.** The `graduation_regressed` notification (webhooks, Slack, e-mail)
//! is written to the durable outbox by `Store::sync_regressions` inside the transaction
//! that records the regression (the router's `route_regression` picks the targets), so it
//! is sent once across restarts and across several servers on one database. In-process
//! listeners may also subscribe with [`AppState::subscribe_graduation`]: each regression
//! is published once per process, after the commit of its audit entry; the event carries
//! the entry's sequence number.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::Policy;
use countersign_core::graduation::{self, Regression};
use countersign_store::{AuditEntry, NewRegression, StoreError};
use serde_json::{Value, json};

use crate::state::{AppState, Stopping};

/// A graduated rule regressed: the event a notifier subscribes to
/// ([`AppState::subscribe_graduation`]). `body` is the audit entry's body: the evidence
/// (`reviewed`, `flagged`, `flag_rate`, `flag_lower_bound`, `target`...) and the revert
/// proposal (`revert.diff`).
#[derive(Clone, Debug, PartialEq)]
pub struct GraduationRegressed {
    pub rule: String,
    pub action: String,
    pub policy_hash: String,
    /// The `graduation_regressed` audit entry's sequence number.
    pub audit_seq: u64,
    pub at: DateTime<Utc>,
    pub body: Value,
}

/// The event type's name, as notifiers and the audit log spell it.
pub const GRADUATION_REGRESSED: &str = countersign_store::kind::GRADUATION_REGRESSED;

/// The shortest pause between two looks that reviews asked for.
const MIN_GAP: Duration = Duration::from_secs(2);
/// Pause after a store failure before trying again.
const RETRY: Duration = Duration::from_secs(5);

pub(crate) async fn run(state: AppState, mut stopping: Stopping) {
    loop {
        let pause = match check(&state).await {
            Ok(_) => state.graduation_settings().check_interval,
            Err(error) => {
                tracing::error!(%error, "graduation regression check failed; retrying");
                RETRY
            }
        };
        tokio::select! {
            () = stopping.wait() => return,
            () = tokio::time::sleep(pause) => {}
            () = state.graduation_wake().notified() => {
                tokio::select! {
                    () = stopping.wait() => return,
                    () = tokio::time::sleep(MIN_GAP) => {}
                }
            }
        }
    }
}

/// Looks for regressions now: announces the new ones (returned), clears those that no
/// longer hold.
pub async fn check(state: &AppState) -> Result<Vec<GraduationRegressed>, StoreError> {
    let policy = state.policy().current();
    let settings = state.graduation_settings();
    let now = state.clock().now();
    let evidence = state.store().evidence(settings.since(now)).await?;
    let regressions = graduation::regressions(&policy, &evidence, &settings.thresholds);
    let holding = regressions
        .iter()
        .filter_map(|r| {
            Some(NewRegression {
                rule: r.key.rule.clone()?,
                action: r.key.action.clone(),
                policy_hash: policy.hash().to_owned(),
                body: regression_body(&policy, r, &settings.thresholds, now),
            })
        })
        .collect();
    let fired = state
        .store()
        .sync_regressions(policy.hash().to_owned(), holding, now)
        .await?;
    let events: Vec<GraduationRegressed> = fired.iter().map(event).collect();
    for event in &events {
        tracing::warn!(rule = %event.rule, action = %event.action, seq = event.audit_seq,
            "a graduated rule regressed: its post-hoc flag rate crossed the target; `countersign policy suggest` shows the revert");
        state.publish_graduation(Arc::new(event.clone()));
    }
    Ok(events)
}

fn event(entry: &AuditEntry) -> GraduationRegressed {
    let body = entry.body_json();
    let text = |key: &str| body[key].as_str().unwrap_or_default().to_owned();
    GraduationRegressed {
        rule: text("rule"),
        action: text("action"),
        policy_hash: text("policy_hash"),
        audit_seq: entry.seq,
        at: entry.at,
        body,
    }
}

/// The evidence and the revert, as the audit entry, the event and the UI show them.
pub fn regression_body(
    policy: &Policy,
    regression: &Regression,
    thresholds: &graduation::Thresholds,
    now: DateTime<Utc>,
) -> Value {
    let evidence = &regression.evidence;
    let revert = graduation::plan(policy.source(), policy, regression, now).map(|edits| {
        graduation::unified_diff(policy.source(), &edits, "policy", "policy (reverted)")
    });
    json!({
        "rule": regression.key.rule,
        "action": regression.key.action,
        "policy_hash": policy.hash(),
        "reviewed": evidence.reviewed,
        "flagged": evidence.flagged,
        "flag_rate": evidence.flag_rate(),
        "flag_lower_bound": evidence.flag_lower(),
        "target": thresholds.target,
        "min_reviews": thresholds.min_reviews,
        "window_days": thresholds.window_days,
        "summary": regression.reason,
        "revert": {
            "from": regression.from.as_str(),
            "to": regression.to.as_str(),
            "diff": revert.as_ref().ok(),
            "error": revert.as_ref().err().map(ToString::to_string),
        },
    })
}
