//! The review SLA ladder: what happens to a pending action whose deadline has passed.
//! Never approves unless the policy explicitly allowed it, and never a `confirm`.

use chrono::{DateTime, Utc};

use crate::lifecycle::Gate;
use crate::policy::OnTimeout;
use crate::tier::{Status, Tier};

/// The step the SLA takes.
#[derive(Clone, Debug, PartialEq)]
pub enum SlaStep {
    /// Add the escalation groups as approvers and move the deadline.
    Escalate {
        groups: Vec<crate::name::Name>,
        deadline: DateTime<Utc>,
    },
    /// The action expires: the agent may not run it.
    Expire,
    /// Approved by the system (the rule said `allow_auto_approve = true`).
    AutoApprove,
}

impl SlaStep {
    pub fn status(&self) -> Status {
        match self {
            SlaStep::Escalate { .. } => Status::Pending,
            SlaStep::Expire => Status::Expired,
            SlaStep::AutoApprove => Status::Approved,
        }
    }
}

/// The step due for `gate` at `now`, if any: one step per call. Escalation gives the added
/// groups their full `escalation_sla` from `now` — if the server was down when the deadline
/// passed, nobody could have answered in the meantime — and the next step after it is
/// expiry.
pub fn due(gate: &Gate, now: DateTime<Utc>) -> Option<SlaStep> {
    if gate.status != Status::Pending {
        return None;
    }
    let deadline = gate.deadline?;
    if now < deadline {
        return None;
    }
    let Some(plan) = &gate.timeout else {
        return Some(SlaStep::Expire);
    };
    Some(match plan.on_timeout {
        OnTimeout::Escalate if !gate.escalated && !plan.escalate_to.is_empty() => {
            SlaStep::Escalate {
                groups: plan.escalate_to.clone(),
                deadline: now + plan.escalation_sla.as_chrono(),
            }
        }
        OnTimeout::Approve if gate.tier != Tier::Confirm && !gate.escalated => SlaStep::AutoApprove,
        _ => SlaStep::Expire,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::ReviewDuration;
    use crate::lifecycle::TimeoutPlan;
    use chrono::TimeDelta;

    fn gate(tier: Tier, on_timeout: OnTimeout) -> Gate {
        Gate {
            action: crate::ActionName::parse("refund.create").unwrap(),
            agent: n("bot"),
            owner: None,
            tier,
            status: Status::Pending,
            approvers: crate::Approvers::Groups(vec![n("leads")]),
            escalated_to: vec![],
            approvals_required: 1,
            decisions: vec![],
            args: Default::default(),
            original_args: None,
            deadline: Some(DateTime::from_timestamp(1_000_000, 0).unwrap()),
            timeout: Some(TimeoutPlan {
                on_timeout,
                escalate_to: vec![n("finance")],
                escalation_sla: ReviewDuration::from_seconds(3600).unwrap(),
            }),
            escalated: false,
            decided_at: None,
            review: crate::lifecycle::ReviewState::NotSampled,
            outcome: None,
        }
    }

    fn n(name: &str) -> crate::Name {
        crate::Name::parse(name).unwrap()
    }

    #[test]
    fn ladder() {
        let before = DateTime::from_timestamp(999_999, 0).unwrap();
        let after = DateTime::from_timestamp(1_000_000, 0).unwrap();
        assert_eq!(due(&gate(Tier::Approve, OnTimeout::Reject), before), None);
        assert_eq!(
            due(&gate(Tier::Approve, OnTimeout::Reject), after),
            Some(SlaStep::Expire)
        );

        let mut g = gate(Tier::Approve, OnTimeout::Escalate);
        let step = due(&g, after).unwrap();
        assert_eq!(
            step,
            SlaStep::Escalate {
                groups: vec![n("finance")],
                deadline: after + TimeDelta::hours(1)
            }
        );
        g.escalated = true;
        g.deadline = Some(after + TimeDelta::hours(1));
        assert_eq!(due(&g, after), None);
        assert_eq!(due(&g, after + TimeDelta::hours(1)), Some(SlaStep::Expire));
    }

    #[test]
    fn never_approves_confirm() {
        let after = DateTime::from_timestamp(2_000_000, 0).unwrap();
        assert_eq!(
            due(&gate(Tier::Confirm, OnTimeout::Approve), after),
            Some(SlaStep::Expire)
        );
        assert_eq!(
            due(&gate(Tier::Approve, OnTimeout::Approve), after),
            Some(SlaStep::AutoApprove)
        );
    }
}
