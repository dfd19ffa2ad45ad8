//! The approval lifecycle as pure functions: who may decide, what a verdict does, when
//! quorum is reached. The server loads a [`Gate`], asks [`decide`] or [`cancel`], and stores
//! the result; it never makes these decisions itself.
//!
//! People and agents are compared by name without regard to case ([`crate::name::same`]):
//! records written by earlier versions may spell one person two ways, and `Rita` approving
//! after `rita` is still one approval.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::approvers::Approvers;
use crate::name::same;
use crate::policy::{OnTimeout, ReviewSettings, strictest_timeout};
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
    /// Who may decide (before escalation).
    pub approvers: Approvers,
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

/// Why a post-hoc review was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("{reviewer} owns the agent {agent:?} that submitted this action and may not review it")]
    OwnAgent { reviewer: String, agent: String },
}

/// Separation of duties: does `person` answer for the actions of `agent` (owned by
/// `owner`), as its owner or as the agent itself? Such a person judges none of them:
/// neither before they run (decisions) nor after (post-hoc review). Names compare without
/// regard to case.
pub fn answers_for(agent: &str, owner: Option<&str>, person: &str) -> bool {
    same(agent, person) || owner.is_some_and(|owner| same(owner, person))
}

/// May `reviewer` give the post-hoc review of an allowed action of `agent` (owned by
/// `owner`)? Not its owner and not the agent: an "ok" from them would vouch for their own
/// agent, and a sampled action is reviewed to catch what the policy let through.
pub fn may_review(agent: &str, owner: Option<&str>, reviewer: &str) -> Result<(), ReviewError> {
    if answers_for(agent, owner, reviewer) {
        return Err(ReviewError::OwnAgent {
            reviewer: reviewer.to_owned(),
            agent: agent.to_owned(),
        });
    }
    Ok(())
}

/// The state after an accepted decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    /// The action's lifecycle after the decision (the decision appended; after a modify, the
    /// new arguments and the stricter requirements).
    pub gate: Gate,
    /// Set when the decision ended the review.
    pub decided_at: Option<DateTime<Utc>>,
}

impl Gate {
    /// Who may decide now (escalation adds groups).
    pub fn deciders(&self) -> Approvers {
        self.approvers.widened(&self.escalated_to)
    }

    /// Requires at least what `reclassified` asks for too: the stricter tier, the approvers
    /// both admit, the most approvals, and a timeout step that is never looser.
    fn tighten(&mut self, reclassified: &Reclassified) {
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
    /// modify (a modify replaces the arguments that earlier approvals were about). People
    /// are told apart without regard to case: `rita` and `Rita` are one approval.
    pub fn counting_approvers(&self) -> Vec<&str> {
        let start = self
            .decisions
            .iter()
            .rposition(|d| d.verdict == Verdict::Modify)
            .unwrap_or(0);
        let mut people: Vec<&str> = Vec::new();
        for d in &self.decisions[start..] {
            if matches!(d.verdict, Verdict::Approve | Verdict::Modify)
                && !people.iter().any(|p| same(p, &d.reviewer))
            {
                people.push(&d.reviewer);
            }
        }
        people
    }

    /// Has `person` given one of the approvals that count?
    pub fn approved_by(&self, person: &str) -> bool {
        self.counting_approvers().iter().any(|p| same(p, person))
    }

    /// May `reviewer` decide on this action at all (before looking at the verdict)?
    pub fn may_decide(&self, reviewer: &Reviewer<'_>) -> Result<(), DecideError> {
        if self.status != Status::Pending {
            return Err(DecideError::NotPending(self.status));
        }
        if answers_for(&self.agent, self.owner.as_deref(), reviewer.name) {
            return Err(DecideError::OwnAgent {
                reviewer: reviewer.name.to_owned(),
                agent: self.agent.clone(),
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

/// Applies `request` by `reviewer` to `gate` at `now`.
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
) -> Result<Decided, DecideError> {
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
    let mut next = gate.clone();
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
        next.tighten(reclassified);
        next.may_decide(reviewer)?;
    }
    let approving = request.verdict != Verdict::Reject;
    if approving && gate.approved_by(reviewer.name) {
        return Err(DecideError::AlreadyApproved(reviewer.name.to_owned()));
    }
    if approving
        && next.tier == Tier::Confirm
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
    if let Some(new_args) = request.args {
        if next.original_args.is_none() {
            next.original_args = Some(std::mem::take(&mut next.args));
        }
        next.args = new_args;
    }
    next.decisions.push(decision.clone());
    next.status = match request.verdict {
        Verdict::Reject => Status::Rejected,
        _ if next.counting_approvers().len() as u32 >= next.approvals_required.max(1) => {
            Status::Approved
        }
        _ => Status::Pending,
    };
    Ok(Decided {
        decision,
        decided_at: next.status.is_final().then_some(now),
        gate: next,
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
    use crate::duration::ReviewDuration;
    use serde_json::json;

    fn gate(tier: Tier, approvers: &[&str], required: u32) -> Gate {
        Gate {
            action: "refund.create".into(),
            agent: "support-bot".into(),
            owner: Some("olivia".into()),
            tier,
            status: Status::Pending,
            approvers: Approvers::from_groups(groups(approvers)),
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
            reclassified: None,
        }
    }

    /// What the policy says of modified arguments: `tier`, decided by members of
    /// `approvers`, `approvals` of them.
    fn classified(tier: Tier, approvers: &[&str], approvals: u32) -> Reclassified {
        Reclassified {
            tier,
            rule: Some("some rule".into()),
            reason: format!("rule \"some rule\" matched ({tier})"),
            settings: ReviewSettings {
                approvers: Approvers::from_groups(groups(approvers)),
                approvals_required: approvals,
                sla: ReviewDuration::from_seconds(1800).unwrap(),
                on_timeout: OnTimeout::Reject,
                escalate_to: vec![],
                escalation_sla: ReviewDuration::from_seconds(1800).unwrap(),
                review_sample: 0.0,
            },
        }
    }

    fn modify(args: Value, reclassified: Reclassified) -> DecisionRequest {
        DecisionRequest {
            args: Some(args.as_object().unwrap().clone()),
            reclassified: Some(reclassified),
            ..request(Verdict::Modify)
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
                admin: who == "ada",
            },
            req,
            Utc::now(),
        )?;
        *gate = decided.gate;
        Ok(gate.status)
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

    fn refusal_code(error: &DecideError) -> &'static str {
        match error {
            DecideError::NotPending(_) => "not_pending",
            DecideError::OwnAgent { .. } => "own_agent",
            DecideError::NotAnApprover { .. } => "not_an_approver",
            DecideError::AlreadyApproved(_) => "already_approved",
            DecideError::ConfirmationMismatch { .. } => "confirmation_mismatch",
            DecideError::ModifyWithoutArgs => "modify_without_args",
            DecideError::ArgsWithoutModify => "args_without_modify",
            DecideError::DeadlinePassed { .. } => "expired",
            DecideError::ModifiedArgsDenied { .. } => "modified_args_denied",
            DecideError::Unclassified => "unclassified_args",
        }
    }

    type Access = (
        &'static str,
        Option<&'static str>,
        &'static [&'static str],
        &'static str,
        &'static [&'static str],
        Result<Status, &'static str>,
    );

    /// `(agent, owner, approved before, reviewer, reviewer's groups, expected)` on an action
    /// that needs two approvals from `support-leads`. Names as an earlier version may have
    /// stored them, in any case: the rules hold regardless.
    const ACCESS: &[Access] = &[
        (
            "support-bot",
            Some("olivia"),
            &[],
            "rita",
            &["support-leads"],
            Ok(Status::Pending),
        ),
        (
            "support-bot",
            Some("olivia"),
            &[],
            "olivia",
            &["support-leads"],
            Err("own_agent"),
        ),
        (
            "support-bot",
            Some("olivia"),
            &[],
            "Olivia",
            &["support-leads"],
            Err("own_agent"),
        ),
        (
            "support-bot",
            Some("Olivia"),
            &[],
            "olivia",
            &["support-leads"],
            Err("own_agent"),
        ),
        (
            "support-bot",
            None,
            &[],
            "support-bot",
            &["support-leads"],
            Err("own_agent"),
        ),
        (
            "Support-Bot",
            None,
            &[],
            "support-bot",
            &["support-leads"],
            Err("own_agent"),
        ),
        (
            "support-bot",
            None,
            &[],
            "olivia",
            &["support-leads"],
            Ok(Status::Pending),
        ),
        (
            "support-bot",
            Some("olivia"),
            &["rita"],
            "rita",
            &["support-leads"],
            Err("already_approved"),
        ),
        (
            "support-bot",
            Some("olivia"),
            &["rita"],
            "Rita",
            &["support-leads"],
            Err("already_approved"),
        ),
        (
            "support-bot",
            Some("olivia"),
            &["RITA"],
            "rita",
            &["support-leads"],
            Err("already_approved"),
        ),
        (
            "support-bot",
            Some("olivia"),
            &["rita"],
            "sam",
            &["support-leads"],
            Ok(Status::Approved),
        ),
        (
            "support-bot",
            Some("olivia"),
            &[],
            "rita",
            &["sales"],
            Err("not_an_approver"),
        ),
        (
            "support-bot",
            Some("olivia"),
            &[],
            "rita",
            &["Support-Leads"],
            Ok(Status::Pending),
        ),
    ];

    #[test]
    fn access_rules_as_a_table() {
        for (agent, owner, before, reviewer, in_groups, expected) in ACCESS {
            let mut g = gate(Tier::Approve, &["support-leads"], 2);
            g.agent = agent.to_string();
            g.owner = owner.map(str::to_owned);
            for earlier in *before {
                apply(
                    &mut g,
                    earlier,
                    &["support-leads"],
                    request(Verdict::Approve),
                )
                .unwrap();
            }
            let found = apply(&mut g, reviewer, in_groups, request(Verdict::Approve));
            let found = found.as_ref().map_err(refusal_code).copied();
            assert_eq!(
                found, *expected,
                "{reviewer} in {in_groups:?} on {agent}'s action (owner {owner:?}), after {before:?}"
            );
        }
    }

    #[test]
    fn two_spellings_are_one_confirmer() {
        let mut g = gate(Tier::Confirm, &[], 2);
        let mut confirm = request(Verdict::Approve);
        confirm.confirm = Some("refund.create".into());
        assert_eq!(
            apply(&mut g, "rita", &[], confirm.clone()),
            Ok(Status::Pending)
        );
        assert_eq!(
            apply(&mut g, "Rita", &[], confirm.clone()),
            Err(DecideError::AlreadyApproved("Rita".into()))
        );
        assert_eq!(g.counting_approvers(), ["rita"]);
        assert_eq!(apply(&mut g, "sam", &[], confirm), Ok(Status::Approved));
    }

    /// `(agent, owner, reviewer, may review)`: post-hoc review has the decisions' separation
    /// of duties.
    const REVIEW: &[(&str, Option<&str>, &str, bool)] = &[
        ("support-bot", Some("olivia"), "rita", true),
        ("support-bot", Some("olivia"), "olivia", false),
        ("support-bot", Some("olivia"), "OLIVIA", false),
        ("support-bot", Some("Olivia"), "olivia", false),
        ("support-bot", None, "olivia", true),
        ("support-bot", None, "support-bot", false),
        ("ada", None, "Ada", false),
    ];

    #[test]
    fn who_may_review() {
        for (agent, owner, reviewer, allowed) in REVIEW {
            let found = may_review(agent, *owner, reviewer);
            assert_eq!(
                found.is_ok(),
                *allowed,
                "{reviewer} on {agent} (owner {owner:?})"
            );
            assert_eq!(answers_for(agent, *owner, reviewer), !allowed);
        }
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
        let modify = modify(json!({"amount": 100}), classified(Tier::Approve, &[], 1));
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
        assert_eq!(
            apply(&mut g, "rita", &[], modify.clone()),
            Err(DecideError::Unclassified),
            "unclassified arguments are never approved"
        );
        modify.reclassified = Some(classified(Tier::Auto, &[], 0));
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

    #[test]
    fn decisions_after_the_deadline_are_refused() {
        let mut g = gate(Tier::Approve, &[], 1);
        let deadline = Utc::now() - chrono::TimeDelta::seconds(1);
        g.deadline = Some(deadline);
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Approve)),
            Err(DecideError::DeadlinePassed { deadline })
        );
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Reject)),
            Err(DecideError::DeadlinePassed { deadline })
        );
        g.deadline = Some(Utc::now() + chrono::TimeDelta::minutes(1));
        assert_eq!(
            apply(&mut g, "rita", &[], request(Verdict::Approve)),
            Ok(Status::Approved)
        );
    }

    /// A modify is an approval of the new arguments under the stricter of the two
    /// classifications: one case a line (start: `approve` by `leads`, one approval).
    #[test]
    fn modify_needs_the_stricter_classification() {
        let big = json!({"amount": 10_000_000, "to": "attacker"});
        let confirm_named = |mut r: DecisionRequest| {
            r.confirm = Some("refund.create".into());
            r
        };
        type Case = (
            &'static str,
            &'static [&'static str],
            DecisionRequest,
            Result<Status, DecideError>,
        );
        let cases: Vec<Case> = vec![
            (
                "rita",
                &["leads"],
                modify(big.clone(), classified(Tier::Deny, &[], 0)),
                Err(DecideError::ModifiedArgsDenied {
                    reason: "rule \"some rule\" matched (deny)".into(),
                }),
            ),
            (
                "rita",
                &["leads"],
                modify(big.clone(), classified(Tier::Approve, &["finance"], 1)),
                Err(DecideError::NotAnApprover {
                    groups: "admins only".into(),
                }),
            ),
            (
                "ada",
                &["leads"],
                modify(big.clone(), classified(Tier::Approve, &["finance"], 1)),
                Ok(Status::Approved),
            ),
            (
                "rita",
                &["leads"],
                modify(
                    big.clone(),
                    classified(Tier::Approve, &["leads", "finance"], 1),
                ),
                Ok(Status::Approved),
            ),
            (
                "rita",
                &["leads"],
                modify(big.clone(), classified(Tier::Confirm, &[], 2)),
                Err(DecideError::ConfirmationMismatch {
                    expected: "refund.create".into(),
                }),
            ),
            (
                "rita",
                &["leads"],
                confirm_named(modify(big.clone(), classified(Tier::Confirm, &[], 2))),
                Ok(Status::Pending),
            ),
            (
                "rita",
                &["leads"],
                modify(big.clone(), classified(Tier::Approve, &[], 3)),
                Ok(Status::Pending),
            ),
            (
                "rita",
                &["leads"],
                modify(big.clone(), classified(Tier::Auto, &["finance"], 0)),
                Ok(Status::Approved),
            ),
        ];
        for (who, in_groups, request, expected) in cases {
            let mut g = gate(Tier::Approve, &["leads"], 1);
            let described = format!("{who} {in_groups:?} {:?}", request.reclassified);
            assert_eq!(
                apply(&mut g, who, in_groups, request),
                expected,
                "{described}"
            );
        }
    }

    #[test]
    fn a_modify_into_confirm_needs_a_second_person() {
        let mut g = gate(Tier::Approve, &[], 1);
        let mut request = modify(json!({"amount": 1}), classified(Tier::Confirm, &[], 2));
        request.confirm = Some("refund.create".into());
        assert_eq!(apply(&mut g, "rita", &[], request), Ok(Status::Pending));
        assert_eq!((g.tier, g.approvals_required), (Tier::Confirm, 2));
        let approve = request_confirmed(Verdict::Approve);
        assert_eq!(
            apply(&mut g, "rita", &[], approve.clone()),
            Err(DecideError::AlreadyApproved("rita".into()))
        );
        assert_eq!(apply(&mut g, "sam", &[], approve), Ok(Status::Approved));
    }

    fn request_confirmed(verdict: Verdict) -> DecisionRequest {
        DecisionRequest {
            confirm: Some("refund.create".into()),
            ..request(verdict)
        }
    }
}
