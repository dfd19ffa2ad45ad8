//! The steps of the SLA ladder: what [`super::due`] answers and [`crate::lifecycle::Gate::apply`]
//! applies. A vocabulary with no logic of the ladder, so that the lifecycle can name the
//! steps without depending on the ladder that reads its gates.

use chrono::{DateTime, Utc};

use crate::name::Name;
use crate::tier::Status;

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
