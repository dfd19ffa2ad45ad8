//! Reviewers' verdicts: who may decide, what a `modify` must satisfy, when a `confirm` is
//! confirmed, and that nothing is decided after the deadline.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Decision, Gate, Transition, Verdict, answers_for};
use crate::approvers::Approvers;
use crate::name::Name;
use crate::policy::{OnTimeout, ReviewSettings, strictest_timeout};
use crate::tier::{Status, Tier};

/// Who is deciding.
#[derive(Clone, Copy, Debug)]
pub struct Reviewer<'a> {
    pub name: &'a Name,
    pub groups: &'a [Name],
    /// Whether the person has the admin role (who alone decide an action whose candidate
    /// rules share no approver group).
    pub admin: bool,
}

/// How the policy in force classifies a `modify` verdict's arguments. The caller, who holds
/// the policy, classifies them like a submission (same action, agent, context, confidence
/// and hints); the action then needs the stricter of this and what it needed before.
#[derive(Clone, Debug, PartialEq)]
pub struct Reclassified {
    pub tier: Tier,
    /// The rule that decided (`None`: `[defaults]`).
    pub rule: Option<String>,
    pub reason: String,
    pub settings: ReviewSettings,
}

/// A verdict as a reviewer submits it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRequest {
    pub verdict: Verdict,
    pub args: Option<Map<String, Value>>,
    pub reason: Option<String>,
    /// The action name, re-typed (required on `confirm`-tier actions).
    pub confirm: Option<String>,
    /// With `modify`: the policy's classification of the new arguments. Required: a modify
    /// whose arguments were not classified is refused, never applied unchecked.
    pub reclassified: Option<Reclassified>,
}

/// An accepted decision, to apply with [`Gate::apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    /// With `modify`: the new arguments' classification, which the action must now satisfy
    /// too.
    pub reclassified: Option<Reclassified>,
}

/// Why a decision was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("the action is {0}, not pending: nothing is left to decide")]
    NotPending(Status),
    #[error(
        "{reviewer} owns the agent {agent:?} that submitted this action and may not decide on it"
    )]
    OwnAgent { reviewer: String, agent: String },
    #[error("only {groups} may decide on this action")]
    NotAnApprover { groups: String },
    #[error("{0} has already approved this action; another person must approve it")]
    AlreadyApproved(String),
    #[error(
        "this is a confirm-tier action: re-type the action name {expected:?} in \"confirm\" to approve it"
    )]
    ConfirmationMismatch { expected: String },
    #[error("a modify verdict needs \"args\": the arguments you approve instead")]
    ModifyWithoutArgs,
    #[error("\"args\" are only taken with a modify verdict")]
    ArgsWithoutModify,
    #[error(
        "the review deadline passed at {}: the action is expiring (or escalating) and takes no more decisions",
        deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    DeadlinePassed { deadline: DateTime<Utc> },
    #[error("the policy denies the modified arguments ({reason}); they can never be approved")]
    ModifiedArgsDenied { reason: String },
    #[error("the modified arguments were not classified by the policy, so they cannot be approved")]
    Unclassified,
}

impl DecideError {
    /// The HTTP-independent class of the refusal: conflict, forbidden or invalid.
    pub fn kind(&self) -> RefusalKind {
        match self {
            DecideError::NotPending(_) | DecideError::DeadlinePassed { .. } => {
                RefusalKind::Conflict
            }
            DecideError::OwnAgent { .. }
            | DecideError::NotAnApprover { .. }
            | DecideError::AlreadyApproved(_) => RefusalKind::Forbidden,
            DecideError::ConfirmationMismatch { .. }
            | DecideError::ModifyWithoutArgs
            | DecideError::ArgsWithoutModify
            | DecideError::ModifiedArgsDenied { .. }
            | DecideError::Unclassified => RefusalKind::Invalid,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    Conflict,
    Forbidden,
    Invalid,
}

impl Gate {
    /// Who may decide now (escalation adds groups).
    pub fn deciders(&self) -> Approvers {
        self.approvers.widened(&self.escalated_to)
    }

    /// Requires at least what `reclassified` asks for too: the stricter tier, the approvers
    /// both admit, the most approvals, and a timeout step that is never looser.
    pub(super) fn tighten(&mut self, reclassified: &Reclassified) {
        let settings = &reclassified.settings;
        self.tier = self.tier.max(reclassified.tier);
        if reclassified.tier.is_human_gated() {
            self.approvers = self.approvers.strictest(&settings.approvers);
            self.approvals_required = self.approvals_required.max(settings.approvals_required);
        }
        self.approvals_required = self.approvals_required.max(self.tier.default_approvals());
        if let Some(plan) = &mut self.timeout {
            let (on_timeout, escalate_to) = strictest_timeout(
                (plan.on_timeout, &plan.escalate_to),
                (settings.on_timeout, &settings.escalate_to),
            );
            plan.on_timeout = on_timeout;
            plan.escalate_to = escalate_to;
            plan.escalation_sla = plan.escalation_sla.min(settings.escalation_sla);
        }
        if self.tier == Tier::Confirm
            && let Some(plan) = &mut self.timeout
            && plan.on_timeout == OnTimeout::Approve
        {
            plan.on_timeout = OnTimeout::Reject;
        }
    }

    /// The distinct people whose approvals count: approvals and modifies since the last
    /// modify (a modify replaces the arguments that earlier approvals were about).
    pub fn counting_approvers(&self) -> Vec<&Name> {
        let start = self
            .decisions
            .iter()
            .rposition(|d| d.verdict == Verdict::Modify)
            .unwrap_or(0);
        let mut people: Vec<&Name> = Vec::new();
        for d in &self.decisions[start..] {
            if matches!(d.verdict, Verdict::Approve | Verdict::Modify)
                && !people.contains(&&d.reviewer)
            {
                people.push(&d.reviewer);
            }
        }
        people
    }

    /// Has `person` given one of the approvals that count?
    pub fn approved_by(&self, person: &Name) -> bool {
        self.counting_approvers().contains(&person)
    }

    /// May `reviewer` decide on this action at all (before looking at the verdict)?
    pub fn may_decide(&self, reviewer: &Reviewer<'_>) -> Result<(), DecideError> {
        if self.status != Status::Pending {
            return Err(DecideError::NotPending(self.status));
        }
        if answers_for(&self.agent, self.owner.as_ref(), reviewer.name) {
            return Err(DecideError::OwnAgent {
                reviewer: reviewer.name.to_string(),
                agent: self.agent.to_string(),
            });
        }
        let deciders = self.deciders();
        if !deciders.admits(reviewer.groups, reviewer.admin) {
            return Err(DecideError::NotAnApprover {
                groups: deciders.to_string(),
            });
        }
        Ok(())
    }
}

/// Checks `request` by `reviewer` on `gate` at `now`; the transition to apply if it may
/// happen.
///
/// A decision after the deadline is refused even when the SLA worker has not acted yet (the
/// caller applies a due escalation first, which moves the deadline). A `modify` is checked
/// against the stricter of the action's requirements and the policy's classification of
/// the new arguments: denied arguments are refused, and the reviewer must be one who may
/// approve them, with the name re-typed if they make the action `confirm`.
pub fn decide(
    gate: &Gate,
    reviewer: &Reviewer<'_>,
    request: DecisionRequest,
    now: DateTime<Utc>,
) -> Result<Transition, DecideError> {
    gate.may_decide(reviewer)?;
    if let Some(deadline) = gate.deadline
        && now >= deadline
    {
        return Err(DecideError::DeadlinePassed { deadline });
    }
    match (request.verdict, &request.args) {
        (Verdict::Modify, None) => return Err(DecideError::ModifyWithoutArgs),
        (Verdict::Approve | Verdict::Reject, Some(_)) => {
            return Err(DecideError::ArgsWithoutModify);
        }
        _ => {}
    }
    let mut required = gate.clone();
    if request.verdict == Verdict::Modify {
        let reclassified = request
            .reclassified
            .as_ref()
            .ok_or(DecideError::Unclassified)?;
        if reclassified.tier == Tier::Deny {
            return Err(DecideError::ModifiedArgsDenied {
                reason: reclassified.reason.clone(),
            });
        }
        required.tighten(reclassified);
        required.may_decide(reviewer)?;
    }
    let approving = request.verdict != Verdict::Reject;
    if approving && gate.approved_by(reviewer.name) {
        return Err(DecideError::AlreadyApproved(reviewer.name.to_string()));
    }
    if approving
        && required.tier == Tier::Confirm
        && request.confirm.as_deref() != Some(gate.action.as_str())
    {
        return Err(DecideError::ConfirmationMismatch {
            expected: gate.action.to_string(),
        });
    }
    Ok(Transition::Decided(Decided {
        decision: Decision {
            reviewer: reviewer.name.clone(),
            verdict: request.verdict,
            args: request.args,
            reason: request.reason,
            at: now,
        },
        reclassified: if request.verdict == Verdict::Modify {
            request.reclassified
        } else {
            None
        },
    }))
}
