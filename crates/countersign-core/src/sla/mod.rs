//! The review SLA ladder: what happens to a pending action as time passes. Reminders before
//! each deadline, then at the deadline escalation, expiry or (only where the policy
//! explicitly allowed it) approval. Never approves unless the policy said so, and never a
//! `confirm`.
//!
//! [`due`] is a pure function of the action and the time: the server's scheduler asks it
//! what to do at the earliest [`Gate::next_step_at`], applies the step it answers through
//! [`Gate::apply`] in the store's write transaction, and stores the action with its
//! remaining steps. A step therefore happens once whatever the restarts, and one that fell
//! due while the server was down is taken once at start, or skipped when it has gone stale
//! (see [`due`]).

mod remind;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

pub use remind::{RemindAt, RemindAtError, moments as reminder_moments};

use crate::lifecycle::Gate;
use crate::name::Name;
use crate::policy::OnTimeout;
use crate::tier::{Status, Tier};

/// The step the SLA takes.
#[derive(Clone, Debug, PartialEq)]
pub enum SlaStep {
    /// Remind the current approvers of the deadline (the reminder due at `moment`);
    /// reminders due before it (`skipped`) are not sent, so a late start sends one, not a
    /// burst.
    Remind {
        moment: DateTime<Utc>,
        skipped: Vec<DateTime<Utc>>,
    },
    /// Every due reminder has gone stale: drop them without sending.
    SkipReminders { skipped: Vec<DateTime<Utc>> },
    /// Add the escalation groups as approvers, move the deadline, and plan the reminders of
    /// the new stage.
    Escalate {
        groups: Vec<Name>,
        deadline: DateTime<Utc>,
        reminders: Vec<DateTime<Utc>>,
    },
    /// The action expires: nobody answered in time, and the agent may not run it.
    Expire,
    /// Approved by the system (the rule said `allow_auto_approve = true`).
    AutoApprove,
}

impl SlaStep {
    pub fn status(&self) -> Status {
        match self {
            SlaStep::Remind { .. } | SlaStep::SkipReminders { .. } | SlaStep::Escalate { .. } => {
                Status::Pending
            }
            SlaStep::Expire => Status::Expired,
            SlaStep::AutoApprove => Status::Approved,
        }
    }

    /// Whether this is a step of the deadline itself (not a reminder).
    pub fn is_deadline_step(&self) -> bool {
        matches!(
            self,
            SlaStep::Escalate { .. } | SlaStep::Expire | SlaStep::AutoApprove
        )
    }
}

/// The step due for `gate` at `now`, if any: one step per call.
///
/// - At or after the deadline: the deadline's step. Escalation gives the added groups their
///   full `escalation_sla` from `now` — if the server was down when the deadline passed,
///   nobody could have answered in the meantime — and the next deadline step after it is
///   expiry. Reminders still pending are dropped with it.
/// - Before it, when reminders are due: the latest of them, unless it is stale — late by
///   more than half the time from its moment to the next step (the next reminder or the
///   deadline). A stale reminder would reach people closer to the next one than to its
///   own moment; the next one is the better message. Earlier due reminders are skipped
///   either way.
pub fn due(gate: &Gate, now: DateTime<Utc>) -> Option<SlaStep> {
    if gate.status != Status::Pending {
        return None;
    }
    let deadline = gate.deadline?;
    if now >= deadline {
        return Some(deadline_step(gate, now));
    }
    let due_count = gate.reminders.iter().take_while(|m| **m <= now).count();
    if due_count == 0 {
        return None;
    }
    let mut skipped = gate.reminders[..due_count].to_vec();
    let moment = skipped.pop()?;
    let next = gate.reminders.get(due_count).copied().unwrap_or(deadline);
    if now - moment > (next - moment) / 2 {
        skipped.push(moment);
        return Some(SlaStep::SkipReminders { skipped });
    }
    Some(SlaStep::Remind { moment, skipped })
}

fn deadline_step(gate: &Gate, now: DateTime<Utc>) -> SlaStep {
    let Some(plan) = &gate.timeout else {
        return SlaStep::Expire;
    };
    match plan.on_timeout {
        OnTimeout::Escalate if !gate.escalated && !plan.escalate_to.is_empty() => {
            let deadline = now + plan.escalation_sla.as_chrono();
            SlaStep::Escalate {
                groups: plan.escalate_to.clone(),
                deadline,
                reminders: reminder_moments(&plan.remind_at, now, deadline),
            }
        }
        OnTimeout::Approve if gate.tier != Tier::Confirm && !gate.escalated => SlaStep::AutoApprove,
        _ => SlaStep::Expire,
    }
}
