//! The approval lifecycle as pure functions: who may decide, what a verdict does, when
//! quorum is reached. The server loads a [`Gate`], asks [`decide`] or [`cancel`], and stores
//! the result; it never makes these decisions itself.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::policy::OnTimeout;
use crate::tier::{Status, Tier};

/// A reviewer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Approve,
    Reject,
    /// Approve different arguments than the agent proposed.
    Modify,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Modify => "modify",
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        [Verdict::Approve, Verdict::Reject, Verdict::Modify]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

/// One recorded decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub reviewer: String,
    pub verdict: Verdict,
    /// The arguments a `modify` approved.
    pub args: Option<Map<String, Value>>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// What happens when the review deadline passes.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeoutPlan {
    pub on_timeout: OnTimeout,
    pub escalate_to: Vec<String>,
    pub escalation_sla: crate::duration::ReviewDuration,
}

/// The part of an action record that its lifecycle depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub action: String,
    /// The name of the token that submitted the action.
    pub agent: String,
    /// The person responsible for that agent, who may never approve its actions.
    pub owner: Option<String>,
    pub tier: Tier,
    pub status: Status,
    /// Groups whose members may decide; empty means any reviewer.
    pub approvers: Vec<String>,
    /// Groups added when the SLA escalated.
    pub escalated_to: Vec<String>,
    pub approvals_required: u32,
    pub decisions: Vec<Decision>,
    pub args: Map<String, Value>,
    pub original_args: Option<Map<String, Value>>,
    pub deadline: Option<DateTime<Utc>>,
    pub timeout: Option<TimeoutPlan>,
    pub escalated: bool,
}

/// Who is deciding.
#[derive(Clone, Copy, Debug)]
pub struct Reviewer<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
}

/// A verdict as a reviewer submits it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRequest {
    pub verdict: Verdict,
    pub args: Option<Map<String, Value>>,
    pub reason: Option<String>,
    /// The action name, re-typed (required on `confirm`-tier actions).
    pub confirm: Option<String>,
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
    #[error("only members of {groups} may decide on this action")]
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
}

impl DecideError {
    /// The HTTP-independent class of the refusal: conflict, forbidden or invalid.
    pub fn kind(&self) -> RefusalKind {
        match self {
            DecideError::NotPending(_) => RefusalKind::Conflict,
            DecideError::OwnAgent { .. }
            | DecideError::NotAnApprover { .. }
            | DecideError::AlreadyApproved(_) => RefusalKind::Forbidden,
            DecideError::ConfirmationMismatch { .. }
            | DecideError::ModifyWithoutArgs
            | DecideError::ArgsWithoutModify => RefusalKind::Invalid,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    Conflict,
    Forbidden,
    Invalid,
}

/// The state after an accepted decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    pub status: Status,
    pub args: Map<String, Value>,
    pub original_args: Option<Map<String, Value>>,
    /// Set when the decision ended the review.
    pub decided_at: Option<DateTime<Utc>>,
}

impl Gate {
    /// The groups allowed to decide now (escalation adds groups).
    pub fn deciding_groups(&self) -> Vec<String> {
        let mut groups = self.approvers.clone();
        if !groups.is_empty() {
            for g in &self.escalated_to {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        groups
    }

    /// The distinct people whose approvals count: approvals and modifies since the last
    /// modify (a modify replaces the arguments that earlier approvals were about).
    pub fn counting_approvers(&self) -> Vec<&str> {
        let start = self
            .decisions
            .iter()
            .rposition(|d| d.verdict == Verdict::Modify)
            .unwrap_or(0);
        let mut people: Vec<&str> = Vec::new();
        for d in &self.decisions[start..] {
            if matches!(d.verdict, Verdict::Approve | Verdict::Modify)
                && !people.contains(&d.reviewer.as_str())
            {
                people.push(&d.reviewer);
            }
        }
        people
    }

    /// May `reviewer` decide on this action at all (before looking at the verdict)?
    pub fn may_decide(&self, reviewer: &Reviewer<'_>) -> Result<(), DecideError> {
        if self.status != Status::Pending {
            return Err(DecideError::NotPending(self.status));
        }
        if self.owner.as_deref() == Some(reviewer.name) || self.agent == reviewer.name {
            return Err(DecideError::OwnAgent {
                reviewer: reviewer.name.to_owned(),
                agent: self.agent.clone(),
            });
        }
        let groups = self.deciding_groups();
        if !groups.is_empty() && !groups.iter().any(|g| reviewer.groups.contains(g)) {
            return Err(DecideError::NotAnApprover {
                groups: groups.join(", "),
            });
        }
        Ok(())
    }
}

/// Applies `request` by `reviewer` to `gate` at `now`.
pub fn decide(
    gate: &Gate,
    reviewer: &Reviewer<'_>,
    request: DecisionRequest,
    now: DateTime<Utc>,
) -> Result<Decided, DecideError> {
    gate.may_decide(reviewer)?;
    match (request.verdict, &request.args) {
        (Verdict::Modify, None) => return Err(DecideError::ModifyWithoutArgs),
        (Verdict::Approve | Verdict::Reject, Some(_)) => {
            return Err(DecideError::ArgsWithoutModify);
        }
        _ => {}
    }
    let approving = request.verdict != Verdict::Reject;
    if approving && gate.counting_approvers().contains(&reviewer.name) {
        return Err(DecideError::AlreadyApproved(reviewer.name.to_owned()));
    }
    if approving
        && gate.tier == Tier::Confirm
        && request.confirm.as_deref() != Some(gate.action.as_str())
    {
        return Err(DecideError::ConfirmationMismatch {
            expected: gate.action.clone(),
        });
    }
    let decision = Decision {
        reviewer: reviewer.name.to_owned(),
        verdict: request.verdict,
        args: request.args.clone(),
        reason: request.reason,
        at: now,
    };
    let mut args = gate.args.clone();
    let mut original_args = gate.original_args.clone();
    if let Some(new_args) = request.args {
        if original_args.is_none() {
            original_args = Some(std::mem::take(&mut args));
        }
        args = new_args;
    }
    let mut next = gate.clone();
    next.decisions.push(decision.clone());
    let status = match request.verdict {
        Verdict::Reject => Status::Rejected,
        _ if next.counting_approvers().len() as u32 >= gate.approvals_required.max(1) => {
            Status::Approved
        }
        _ => Status::Pending,
    };
    Ok(Decided {
        decision,
        status,
        args,
        original_args,
        decided_at: status.is_final().then_some(now),
    })
}

/// Why a cancellation or outcome was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the action is {0}; only pending actions can be cancelled")]
    NotCancellable(Status),
    #[error("the action is {0}; an outcome can only be reported for allowed or approved actions")]
    MayNotRun(Status),
}

/// The agent withdraws a pending action.
pub fn cancel(gate: &Gate) -> Result<Status, StateError> {
    match gate.status {
        Status::Pending => Ok(Status::Cancelled),
        other => Err(StateError::NotCancellable(other)),
    }
}

/// The agent reports what happened when it ran the action.
pub fn check_outcome(status: Status) -> Result<(), StateError> {
    if status.may_run() {
        Ok(())
    } else {
        Err(StateError::MayNotRun(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gate(tier: Tier, approvers: &[&str], required: u32) -> Gate {
        Gate {
            action: "refund.create".into(),
            agent: "support-bot".into(),
            owner: Some("olivia".into()),
            tier,
            status: Status::Pending,
            approvers: approvers.iter().map(|s| s.to_string()).collect(),
            escalated_to: vec![],
            approvals_required: required,
            decisions: vec![],
            args: json!({"amount": 2500}).as_object().unwrap().clone(),
            original_args: None,
            deadline: None,
            timeout: None,
            escalated: false,
        }
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn request(verdict: Verdict) -> DecisionRequest {
        DecisionRequest {
            verdict,
            args: None,
            reason: None,
            confirm: None,
        }
    }

    fn apply(
        gate: &mut Gate,
        who: &str,
        in_groups: &[&str],
        req: DecisionRequest,
    ) -> Result<Status, DecideError> {
        let g = groups(in_groups);
        let decided = decide(
            gate,
            &Reviewer {
                name: who,
                groups: &g,
            },
            req,
            Utc::now(),
        )?;
        gate.decisions.push(decided.decision);
        gate.status = decided.status;
        gate.args = decided.args;
        gate.original_args = decided.original_args;
        Ok(decided.status)
    }

    #[test]
    fn single_approval() {
        let mut g = gate(Tier::Approve, &[], 1);
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Approve)),
            Ok(Status::Approved)
        );
        assert_eq!(
            apply(&mut g, "sam", &[], request(Verdict::Approve)),
            Err(DecideError::NotPending(Status::Approved))
        );
    }

    #[test]
    fn rejection_ends_it() {
        let mut g = gate(Tier::Approve, &[], 2);
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Approve)),
            Ok(Status::Pending)
        );
        assert_eq!(
            apply(&mut g, "sam", &[], request(Verdict::Reject)),
            Ok(Status::Rejected)
        );
    }

    #[test]
    fn access_rules() {
        let mut g = gate(Tier::Approve, &["support-leads"], 2);
        assert!(matches!(
            apply(
                &mut g,
                "olivia",
                &["support-leads"],
                request(Verdict::Approve)
            ),
            Err(DecideError::OwnAgent { .. })
        ));
        assert!(matches!(
            apply(&mut g, "rita", &["sales"], request(Verdict::Approve)),
            Err(DecideError::NotAnApprover { .. })
        ));
        assert_eq!(
            apply(
                &mut g,
                "rita",
                &["support-leads"],
                request(Verdict::Approve)
            ),
            Ok(Status::Pending)
        );
        assert_eq!(
            apply(
                &mut g,
                "rita",
                &["support-leads"],
                request(Verdict::Approve)
            ),
            Err(DecideError::AlreadyApproved("rita".into()))
        );
        // Owners may not reject either: they may not decide at all.
        assert!(matches!(
            apply(
                &mut g,
                "olivia",
                &["support-leads"],
                request(Verdict::Reject)
            ),
            Err(DecideError::OwnAgent { .. })
        ));
    }

    #[test]
    fn escalation_adds_groups() {
        let mut g = gate(Tier::Approve, &["support-leads"], 1);
        g.escalated_to = groups(&["finance"]);
        assert_eq!(
            apply(&mut g, "fin", &["finance"], request(Verdict::Approve)),
            Ok(Status::Approved)
        );
    }

    #[test]
    fn confirm_needs_two_people_and_the_name() {
        let mut g = gate(Tier::Confirm, &[], 2);
        let mut approve = request(Verdict::Approve);
        assert!(matches!(
            apply(&mut g, "rita", &[], approve.clone()),
            Err(DecideError::ConfirmationMismatch { .. })
        ));
        approve.confirm = Some("refund.delete".into());
        assert!(apply(&mut g, "rita", &[], approve.clone()).is_err());
        approve.confirm = Some("refund.create".into());
        assert_eq!(
            apply(&mut g, "rita", &[], approve.clone()),
            Ok(Status::Pending)
        );
        assert_eq!(
            apply(&mut g, "rita", &[], approve.clone()),
            Err(DecideError::AlreadyApproved("rita".into()))
        );
        assert_eq!(apply(&mut g, "sam", &[], approve), Ok(Status::Approved));
    }

    #[test]
    fn modify_replaces_args_and_resets_approvals() {
        let mut g = gate(Tier::Approve, &[], 2);
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Approve)),
            Ok(Status::Pending)
        );
        let mut modify = request(Verdict::Modify);
        modify.args = Some(json!({"amount": 100}).as_object().unwrap().clone());
        assert_eq!(
            apply(&mut g, "sam", &[], modify),
            Ok(Status::Pending),
            "rita's approval no longer counts"
        );
        assert_eq!(g.args["amount"], json!(100));
        assert_eq!(g.original_args.as_ref().unwrap()["amount"], json!(2500));
        assert_eq!(g.counting_approvers(), ["sam"]);
        // Rita approved the old arguments; she may approve the new ones.
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Approve)),
            Ok(Status::Approved)
        );
    }

    #[test]
    fn modify_alone_approves_with_quorum_one() {
        let mut g = gate(Tier::Approve, &[], 1);
        let mut modify = request(Verdict::Modify);
        assert_eq!(
            apply(&mut g, "rita", &[], modify.clone()),
            Err(DecideError::ModifyWithoutArgs)
        );
        modify.args = Some(Map::new());
        assert_eq!(apply(&mut g, "rita", &[], modify), Ok(Status::Approved));
        let mut approve_with_args = request(Verdict::Approve);
        approve_with_args.args = Some(Map::new());
        let mut g = gate(Tier::Approve, &[], 1);
        assert_eq!(
            apply(&mut g, "rita", &[], approve_with_args),
            Err(DecideError::ArgsWithoutModify)
        );
    }

    #[test]
    fn cancel_and_outcome() {
        let mut g = gate(Tier::Approve, &[], 1);
        assert_eq!(cancel(&g), Ok(Status::Cancelled));
        g.status = Status::Approved;
        assert!(cancel(&g).is_err());
        assert!(check_outcome(Status::Approved).is_ok());
        assert!(check_outcome(Status::Rejected).is_err());
    }
}
