//! `policy explain`: which tier a request gets, which rule decided it, and what every rule
//! before it made of the request.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::condition::Bindings;
use super::evaluate::{Fold, Try};
use super::{Classification, Policy};
use crate::action::ProposedAction;

/// What one rule made of the request.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleOutcome {
    ActionNotMatched,
    AgentNotMatched,
    ConditionFalse,
    ConditionFailed(String),
    Matched,
    /// An earlier rule matched first.
    NotReached,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleTrace {
    pub rule: usize,
    pub outcome: RuleOutcome,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub classification: Classification,
    pub trace: Vec<RuleTrace>,
}

impl Policy {
    /// Classifies `request` like [`Policy::classify`], recording every rule's outcome.
    pub fn explain(&self, request: &ProposedAction, now: DateTime<Utc>) -> Explanation {
        let mut bindings = Bindings::new(request, now);
        let mut fold = Fold::new();
        let mut trace = Vec::with_capacity(self.rules.len());
        let mut done = false;
        for (index, rule) in self.rules.iter().enumerate() {
            if done {
                trace.push(RuleTrace {
                    rule: index,
                    outcome: RuleOutcome::NotReached,
                });
                continue;
            }
            let (outcome, attempt) = if !rule.matches_action(request.action.as_str()) {
                (RuleOutcome::ActionNotMatched, Try::NotMatched)
            } else if !rule.matches_agent(request.agent.as_str()) {
                (RuleOutcome::AgentNotMatched, Try::NotMatched)
            } else {
                match &rule.when {
                    None => (RuleOutcome::Matched, Try::Matched),
                    Some(condition) => {
                        bindings.bind(condition.uses());
                        match condition.evaluate(&bindings) {
                            Ok(true) => (RuleOutcome::Matched, Try::Matched),
                            Ok(false) => (RuleOutcome::ConditionFalse, Try::NotMatched),
                            Err(e) => (RuleOutcome::ConditionFailed(e.clone()), Try::Failed(e)),
                        }
                    }
                }
            };
            done = fold.step(self, index, attempt);
            trace.push(RuleTrace {
                rule: index,
                outcome,
            });
        }
        Explanation {
            classification: fold.finish(self, request),
            trace,
        }
    }

    /// Why rule `trace.rule` did or did not match, in words.
    pub fn describe_outcome(&self, trace: &RuleTrace, request: &ProposedAction) -> String {
        let rule = &self.rules[trace.rule];
        let patterns = |globs: &[crate::glob::Glob]| -> String {
            globs
                .iter()
                .map(|g| format!("{:?}", g.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &trace.outcome {
            RuleOutcome::ActionNotMatched => format!(
                "action {:?} matches none of [{}]",
                request.action.as_str(),
                patterns(&rule.actions)
            ),
            RuleOutcome::AgentNotMatched => format!(
                "agent {:?} matches none of [{}]",
                request.agent.as_str(),
                patterns(&rule.agents)
            ),
            RuleOutcome::ConditionFalse => format!(
                "`when` is false: {}",
                rule.when.as_ref().map_or("", |c| c.source())
            ),
            RuleOutcome::ConditionFailed(e) => format!("`when` could not be evaluated: {e}"),
            RuleOutcome::Matched => match &rule.when {
                Some(c) => format!("matched (`when` is true: {})", c.source()),
                None => "matched".to_owned(),
            },
            RuleOutcome::NotReached => "not reached: an earlier rule decided".to_owned(),
        }
    }

    /// A human-readable report of `explanation`.
    pub fn render_explanation(
        &self,
        explanation: &Explanation,
        request: &ProposedAction,
    ) -> String {
        let c = &explanation.classification;
        let mut out = String::new();
        let _ = writeln!(out, "tier:   {}", c.tier);
        let _ = writeln!(
            out,
            "rule:   {}",
            self.rule_name(c)
                .map_or("(none: [defaults])".to_owned(), |n| format!("{n:?}"))
        );
        let _ = writeln!(out, "reason: {}", self.reason(c));
        if c.tier.is_human_gated() {
            let settings = self.review_settings(c);
            let _ = writeln!(
                out,
                "review: {} approval(s) from {}; SLA {}, then {}",
                settings.approvals_required, settings.approvers, settings.sla, settings.on_timeout
            );
        }
        if !explanation.trace.is_empty() {
            let _ = writeln!(out, "\nrules:");
            for step in &explanation.trace {
                let rule = &self.rules[step.rule];
                let mark = match step.outcome {
                    RuleOutcome::Matched => "✓",
                    RuleOutcome::ConditionFailed(_) => "!",
                    RuleOutcome::NotReached => "·",
                    _ => "✗",
                };
                let _ = writeln!(
                    out,
                    "  {mark} {:?} (line {}): {}",
                    rule.name,
                    rule.line,
                    self.describe_outcome(step, request)
                );
            }
        }
        out
    }
}
