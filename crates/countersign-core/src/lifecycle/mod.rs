//! The approval lifecycle, whole: what a new action's state is, who may change it and how,
//! and the state after each change. A backend loads a [`Gate`], asks this module whether an
//! event may happen ([`decide`], [`cancel`], [`report_outcome`], [`review`],
//! [`crate::sla::due`]), applies the [`Transition`] it gets with [`Gate::apply`], and stores
//! the result; it never computes a status, a deadline or a quorum itself, so a second
//! backend cannot get a transition wrong.
//!
//! - `decide.rs`: reviewers' verdicts (access rules, quorum, modify, confirm, deadline);
//! - `after.rs`: the agent's cancellation and outcome, and the post-hoc review.

mod after;
mod decide;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use after::{ReviewError, StateError, answers_for, cancel, report_outcome, review};
pub use decide::{
    DecideError, Decided, DecisionRequest, Reclassified, RefusalKind, Reviewer, decide,
};

use crate::action::ActionName;
use crate::approvers::Approvers;
use crate::duration::ReviewDuration;
use crate::name::Name;
use crate::policy::{OnTimeout, ReviewSettings};
use crate::sla::remind::{self, RemindAt};
use crate::sla::step::SlaStep;
use crate::tier::{Status, Tier};

crate::vocabulary! {
    /// A reviewer's verdict.
    pub enum Verdict {
        Approve = "approve",
        Reject = "reject",
        /// Approve different arguments than the agent proposed.
        Modify = "modify",
    }
}

crate::vocabulary! {
    /// A post-hoc reviewer's verdict on an action that ran.
    pub enum ReviewVerdict {
        /// It was right to let it through.
        Ok = "ok",
        /// The policy let through something it should not have.
        Flag = "flag",
    }
}

crate::vocabulary! {
    /// What the agent reports after running an action.
    pub enum OutcomeStatus {
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

/// One recorded decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub reviewer: Name,
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
    pub escalate_to: Vec<Name>,
    pub escalation_sla: ReviewDuration,
    /// When each stage (the review SLA, then the escalation SLA) reminds its approvers.
    pub remind_at: Vec<RemindAt>,
}

/// Whether an allowed `logged` action is in the post-hoc review queue.
#[derive(Clone, Debug, PartialEq)]
pub enum ReviewState {
    /// Not drawn into the sample (or not a `logged` action).
    NotSampled,
    /// Sampled, waiting for a reviewer.
    Open,
    Reviewed(Review),
}

/// A post-hoc review of an allowed `logged` action.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub reviewer: Name,
    pub verdict: ReviewVerdict,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// What the agent reported after running the action.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: OutcomeStatus,
    pub detail: Option<Value>,
    pub reported_by: Name,
    pub at: DateTime<Utc>,
}

/// An action's lifecycle: everything about it that changes after submission, and what the
/// rules of change depend on.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub action: ActionName,
    /// The agent (token name) that submitted the action.
    pub agent: Name,
    /// The person responsible for that agent, who may never decide on its actions.
    pub owner: Option<Name>,
    pub tier: Tier,
    pub status: Status,
    /// Who may decide (before escalation).
    pub approvers: Approvers,
    /// Groups added when the SLA escalated.
    pub escalated_to: Vec<Name>,
    pub approvals_required: u32,
    pub decisions: Vec<Decision>,
    /// The arguments the agent may run with (a reviewer's after a `modify`).
    pub args: Map<String, Value>,
    /// The agent's arguments, once a `modify` replaced them.
    pub original_args: Option<Map<String, Value>>,
    pub deadline: Option<DateTime<Utc>>,
    /// The reminders of the current stage not sent (or skipped) yet, ascending; empty once
    /// the action is no longer pending.
    pub reminders: Vec<DateTime<Utc>>,
    /// How many reminders the SLA ladder sent for this action (skipped ones not counted):
    /// the approval metrics count an action reminded at least once as `reminded`.
    pub reminded: u32,
    pub timeout: Option<TimeoutPlan>,
    pub escalated: bool,
    /// When the SLA escalated the action (`None` before, and for actions escalated by
    /// versions that did not record it).
    pub escalated_at: Option<DateTime<Utc>>,
    /// When the action reached a final status.
    pub decided_at: Option<DateTime<Utc>>,
    pub review: ReviewState,
    pub outcome: Option<Outcome>,
}

/// What a new action's lifecycle starts from: the submission and its classification.
#[derive(Clone, Debug, PartialEq)]
pub struct NewGate<'a> {
    pub action: ActionName,
    pub agent: Name,
    pub owner: Option<Name>,
    pub args: Map<String, Value>,
    pub tier: Tier,
    pub settings: &'a ReviewSettings,
    pub at: DateTime<Utc>,
    /// A number in `[0, 1)` fixed for this action (derived from its id by the store): the
    /// action is sampled for post-hoc review when it falls below the review sample rate.
    pub sample_draw: f64,
    /// A live grant covers the action (see [`crate::grant`]): it is allowed without asking,
    /// whatever its tier says, and sampled for post-hoc review like a `logged` action.
    pub granted: bool,
}

/// A change to an action, checked by this module before it is applied.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// A reviewer's verdict (from [`decide`]).
    Decided(Decided),
    /// The SLA step that fell due (from [`crate::sla::due`]).
    Sla { step: SlaStep, at: DateTime<Utc> },
    /// The agent withdrew the action (from [`cancel`]).
    Cancelled { at: DateTime<Utc> },
    /// The agent reported what happened when it ran the action (from [`report_outcome`]).
    Outcome(Outcome),
    /// A post-hoc review (from [`review`]).
    Reviewed(Review),
}

/// What the first answer to a submission said, kept so that an idempotent replay answers
/// the same even after the action moved on.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstAnswer {
    pub status: Status,
    pub deadline: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    /// `None` in answers kept by versions that did not record them (and never changed them).
    pub tier: Option<Tier>,
    pub approvals_required: Option<u32>,
    pub approvers: Option<Approvers>,
}

impl Gate {
    /// A new action's lifecycle: allowed, denied or pending as its tier says; a pending
    /// action gets its approvers, quorum, deadline and timeout plan from `settings`; an
    /// allowed `logged` action is sampled for post-hoc review at the settings' rate.
    pub fn new(new: NewGate<'_>) -> Gate {
        let status = if new.granted {
            Status::Allowed
        } else {
            new.tier.initial_status()
        };
        let gated = status == Status::Pending;
        let settings = new.settings;
        let sampled = (new.tier == Tier::Logged || new.granted)
            && status == Status::Allowed
            && new.sample_draw < settings.review_sample;
        let deadline = gated.then(|| new.at + settings.sla.as_chrono());
        Gate {
            action: new.action,
            agent: new.agent,
            owner: new.owner,
            tier: new.tier,
            status,
            approvers: if gated {
                settings.approvers.clone()
            } else {
                Approvers::Anyone
            },
            escalated_to: Vec::new(),
            approvals_required: if gated {
                settings.approvals_required
            } else {
                0
            },
            decisions: Vec::new(),
            args: new.args,
            original_args: None,
            deadline,
            reminders: match deadline {
                Some(deadline) => remind::moments(&settings.remind_at, new.at, deadline),
                None => Vec::new(),
            },
            reminded: 0,
            timeout: gated.then(|| TimeoutPlan {
                on_timeout: settings.on_timeout,
                escalate_to: settings.escalate_to.clone(),
                escalation_sla: settings.escalation_sla,
                remind_at: settings.remind_at.clone(),
            }),
            escalated: false,
            escalated_at: None,
            decided_at: status.is_final().then_some(new.at),
            review: if sampled {
                ReviewState::Open
            } else {
                ReviewState::NotSampled
            },
            outcome: None,
        }
    }

    /// Applies a transition this module allowed. The one place where status, arguments,
    /// requirements, deadlines, reviews and outcomes change.
    pub fn apply(&mut self, transition: &Transition) {
        match transition {
            Transition::Decided(decided) => self.apply_decision(decided),
            Transition::Sla { step, at } => {
                match step {
                    SlaStep::Remind { moment, .. } => {
                        self.reminders.retain(|m| m > moment);
                        self.reminded += 1;
                    }
                    SlaStep::SkipReminders { skipped } => {
                        self.reminders.retain(|m| !skipped.contains(m));
                    }
                    SlaStep::Escalate {
                        groups,
                        deadline,
                        reminders,
                    } => {
                        for group in groups {
                            if !self.escalated_to.contains(group) {
                                self.escalated_to.push(group.clone());
                            }
                        }
                        self.escalated = true;
                        self.escalated_at = Some(*at);
                        self.deadline = Some(*deadline);
                        self.reminders = reminders.clone();
                    }
                    SlaStep::Expire | SlaStep::AutoApprove => {}
                }
                self.status = step.status();
                if self.status.is_final() {
                    self.decided_at = Some(*at);
                    self.reminders.clear();
                }
            }
            Transition::Cancelled { at } => {
                self.status = Status::Cancelled;
                self.decided_at = Some(*at);
                self.reminders.clear();
            }
            Transition::Outcome(outcome) => self.outcome = Some(outcome.clone()),
            Transition::Reviewed(review) => self.review = ReviewState::Reviewed(review.clone()),
        }
    }

    fn apply_decision(&mut self, decided: &Decided) {
        let decision = &decided.decision;
        if let Some(reclassified) = &decided.reclassified {
            self.tighten(reclassified);
        }
        if let Some(new_args) = &decision.args {
            if self.original_args.is_none() {
                self.original_args = Some(std::mem::take(&mut self.args));
            }
            self.args = new_args.clone();
        }
        self.decisions.push(decision.clone());
        self.status = match decision.verdict {
            Verdict::Reject => Status::Rejected,
            _ if self.counting_approvers().len() as u32 >= self.approvals_required.max(1) => {
                Status::Approved
            }
            _ => Status::Pending,
        };
        if self.status.is_final() {
            self.decided_at = Some(decision.at);
            self.reminders.clear();
        }
    }

    /// When the SLA ladder next has something to do for this action: its next reminder or
    /// its deadline; `None` once it is no longer pending.
    pub fn next_step_at(&self) -> Option<DateTime<Utc>> {
        if self.status != Status::Pending {
            return None;
        }
        match (self.reminders.first(), self.deadline) {
            (Some(reminder), Some(deadline)) => Some((*reminder).min(deadline)),
            (reminder, deadline) => reminder.copied().or(deadline),
        }
    }

    /// The action as the first answer to its submission showed it: what an idempotent
    /// replay answers, whatever happened since.
    pub fn as_first_answered(&self, first: &FirstAnswer) -> Gate {
        let mut gate = self.clone();
        gate.status = first.status;
        gate.deadline = first.deadline;
        gate.decided_at = first.decided_at;
        if let Some(tier) = first.tier {
            gate.tier = tier;
        }
        if let Some(approvals) = first.approvals_required {
            gate.approvals_required = approvals;
        }
        if let Some(approvers) = &first.approvers {
            gate.approvers = approvers.clone();
        }
        if let Some(original) = gate.original_args.take() {
            gate.args = original;
        }
        gate.decisions.clear();
        gate.escalated = false;
        gate.escalated_at = None;
        gate.reminded = 0;
        gate.escalated_to.clear();
        gate.outcome = None;
        if gate.review != ReviewState::NotSampled {
            gate.review = ReviewState::Open;
        }
        gate
    }

    /// What the first answer to the submission that created this gate says.
    pub fn first_answer(&self) -> FirstAnswer {
        FirstAnswer {
            status: self.status,
            deadline: self.deadline,
            decided_at: self.decided_at,
            tier: Some(self.tier),
            approvals_required: Some(self.approvals_required),
            approvers: Some(self.approvers.clone()),
        }
    }
}
