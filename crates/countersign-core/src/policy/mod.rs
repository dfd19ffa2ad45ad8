//! The policy: TOML rules that sort a proposed action into a tier (SPEC section 2).
//!
//! A policy is parsed and checked once ([`check`], [`Policy::parse`]), then evaluated on
//! every request ([`Policy::classify`]). Loading reports every problem at once with its line
//! and column; evaluation never fails — a condition that cannot be evaluated raises the tier
//! instead of relaxing it.

mod cases;
mod condition;
mod default;
mod diagnostic;
mod evaluate;
mod explain;
mod lint;
mod naive;
mod names;
mod native;
mod parse;
mod settings;

use std::fmt;

pub use cases::{CaseFailure, CaseReport, run_cases};
pub use condition::{Condition, ConditionError, Variable, Variables};
pub use default::DEFAULT_POLICY;
pub use diagnostic::{Diagnostic, Severity};
pub use evaluate::{Classification, EvaluationFailure, LowConfidence};
pub use explain::{Explanation, RuleOutcome, RuleTrace};
pub use naive::NaivePolicy;
pub use settings::ReviewSettings;
pub(crate) use settings::strictest_timeout;

use crate::duration::ReviewDuration;
use crate::glob::Glob;
use crate::name::Name;
use crate::sla::remind::RemindAt;
use crate::tier::Tier;

crate::vocabulary! {
    /// What happens when a review SLA passes unanswered.
    pub enum OnTimeout {
        /// The action expires (the agent may not run it). The default.
        Reject = "reject",
        /// Add the `escalate_to` groups as approvers and start `escalation_sla`; when that
        /// passes too, the action expires.
        Escalate = "escalate",
        /// Approve by itself. Only with `allow_auto_approve = true`, never for `confirm`.
        Approve = "approve",
    }
}

/// The `[defaults]` table: what applies when no rule matches, and what rules inherit.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    pub tier: Tier,
    pub min_confidence: Option<f64>,
    pub sla: ReviewDuration,
    pub on_timeout: OnTimeout,
    pub allow_auto_approve: bool,
    pub approvers: Vec<Name>,
    pub escalate_to: Vec<Name>,
    pub escalation_sla: Option<ReviewDuration>,
    pub review_sample: f64,
    /// When to remind approvers before each deadline (empty: never).
    pub remind_at: Vec<RemindAt>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            tier: Tier::Approve,
            min_confidence: None,
            sla: ReviewDuration::from_seconds(30 * 60).expect("30m is a valid duration"),
            on_timeout: OnTimeout::Reject,
            allow_auto_approve: false,
            approvers: Vec::new(),
            escalate_to: Vec::new(),
            escalation_sla: None,
            review_sample: 0.0,
            remind_at: Vec::new(),
        }
    }
}

/// One `[[rules]]` entry.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// A note for reviewers, shown with the action.
    pub description: Option<String>,
    /// 1-based line of the rule's `[[rules]]` header.
    pub line: usize,
    pub actions: Vec<Glob>,
    /// Empty means any agent.
    pub agents: Vec<Glob>,
    pub when: Option<Condition>,
    pub tier: Tier,
    pub approvers: Vec<Name>,
    pub approvals: Option<u32>,
    pub min_confidence: Option<f64>,
    pub sla: Option<ReviewDuration>,
    pub on_timeout: Option<OnTimeout>,
    pub allow_auto_approve: bool,
    pub escalate_to: Vec<Name>,
    pub escalation_sla: Option<ReviewDuration>,
    pub review_sample: Option<f64>,
    /// `None`: the defaults' reminders.
    pub remind_at: Option<Vec<RemindAt>>,
}

impl Rule {
    pub fn matches_action(&self, action: &str) -> bool {
        self.actions.iter().any(|g| g.matches(action))
    }

    pub fn matches_agent(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|g| g.matches(agent))
    }
}

/// A loaded, checked policy, ready to classify requests.
#[derive(Debug)]
pub struct Policy {
    pub defaults: Defaults,
    pub rules: Vec<Rule>,
    /// SHA-256 of the source text, hex: which policy version classified an action.
    hash: String,
    /// The text it was parsed from: what graduation proposals edit.
    source: String,
    index: evaluate::Index,
}

/// The result of checking a policy file: the policy if there were no errors, and every
/// problem found (warnings included) in source order.
#[derive(Debug)]
pub struct Checked {
    pub policy: Option<Policy>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and checks `source`, reporting every problem at once.
pub fn check(source: &str) -> Checked {
    parse::parse(source)
}

/// Loading refused: the errors (and any warnings) found.
#[derive(Debug)]
pub struct PolicyErrors {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors: Vec<_> = self.diagnostics.iter().filter(|d| d.is_error()).collect();
        write!(f, "{} error(s) in policy", errors.len())?;
        for d in errors {
            write!(f, "; {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl Policy {
    /// Parses `source`; any error refuses the whole policy.
    pub fn parse(source: &str) -> Result<Policy, PolicyErrors> {
        let checked = check(source);
        checked.policy.ok_or(PolicyErrors {
            diagnostics: checked.diagnostics,
        })
    }

    /// The built-in policy used when none is configured (SPEC section 4).
    pub fn builtin() -> Policy {
        Policy::parse(DEFAULT_POLICY).expect("the built-in policy is valid")
    }

    pub(crate) fn new(defaults: Defaults, rules: Vec<Rule>, source: &str) -> Policy {
        let index = evaluate::Index::build(&rules);
        Policy {
            defaults,
            rules,
            hash: crate::audit::sha256_hex(source.as_bytes()),
            source: source.to_owned(),
            index,
        }
    }

    /// SHA-256 of the policy text, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The text the policy was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules[index]
    }
}
