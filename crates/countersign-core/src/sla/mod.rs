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

pub(crate) mod remind;
pub(crate) mod step;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

pub use remind::{RemindAt, RemindAtError, moments as reminder_moments};
pub use step::SlaStep;

use crate::lifecycle::Gate;
use crate::policy::OnTimeout;
use crate::tier::{Status, Tier};

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
