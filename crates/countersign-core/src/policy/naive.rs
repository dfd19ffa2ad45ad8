//! The baseline the fast engine is measured and tested against: every rule compiled into
//! one CEL program (action and agent globs as CEL too) and tried in file order against a
//! context with every variable bound. Slow on purpose; its only virtue is being obviously
//! right.

use chrono::{DateTime, Utc};

use super::condition::{Bindings, Condition, Variables};
use super::evaluate::{Fold, Try};
use super::{Classification, Policy};
use crate::action::ProposedAction;
use crate::glob::Glob;

/// A policy with one whole-rule CEL program per rule.
pub struct NaivePolicy<'p> {
    policy: &'p Policy,
    programs: Vec<Condition>,
}

impl<'p> NaivePolicy<'p> {
    pub fn new(policy: &'p Policy) -> NaivePolicy<'p> {
        let programs = policy
            .rules
            .iter()
            .map(|rule| {
                let mut parts = vec![any_of("action", &rule.actions)];
                if !rule.agents.is_empty() {
                    parts.push(any_of("agent", &rule.agents));
                }
                if let Some(when) = &rule.when {
                    parts.push(format!("({})", when.source()));
                }
                let source = parts.join(" && ");
                Condition::compile(&source).expect("a checked rule compiles to valid CEL")
            })
            .collect();
        NaivePolicy { policy, programs }
    }

    pub fn classify(&self, request: &ProposedAction, now: DateTime<Utc>) -> Classification {
        let mut bindings = Bindings::new(request, now);
        bindings.bind(Variables::ALL);
        let mut fold = Fold::new();
        for (index, program) in self.programs.iter().enumerate() {
            let outcome = match program.evaluate(&bindings) {
                Ok(true) => Try::Matched,
                Ok(false) => Try::NotMatched,
                Err(e) => Try::Failed(e),
            };
            if fold.step(self.policy, index, outcome) {
                break;
            }
        }
        fold.finish(self.policy, request)
    }
}

fn any_of(variable: &str, globs: &[Glob]) -> String {
    let alternatives: Vec<String> = globs
        .iter()
        .map(|g| match g.literal() {
            Some(name) => format!("{variable} == '{name}'"),
            None if g.matches_everything() => "true".to_owned(),
            None => format!("{variable}.matches('^{}$')", glob_regex(g.as_str())),
        })
        .collect();
    format!("({})", alternatives.join(" || "))
}

/// Name characters are never regex-special except `.`, which becomes a class.
fn glob_regex(glob: &str) -> String {
    glob.chars()
        .map(|c| match c {
            '*' => ".*".to_owned(),
            '?' => ".".to_owned(),
            '.' => "[.]".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
