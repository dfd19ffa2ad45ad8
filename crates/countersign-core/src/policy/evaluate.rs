//! Classifying a request: the fast path that runs on every agent action.
//!
//! Rules whose action patterns are all literal names are found through a hash index; only
//! rules with wildcard patterns are scanned. Candidates are visited in file order, so the
//! first match wins exactly as if every rule had been tried. A condition of a common shape
//! is answered natively on the request's JSON where that cannot differ from CEL (see
//! [`super::native`]); otherwise it binds only the CEL variables it reads (see
//! [`super::condition`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::condition::Bindings;
use super::{Policy, Rule};
use crate::action::ProposedAction;
use crate::tier::Tier;

/// Where a request's candidate rules are found.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Rules all of whose action patterns are literal, by action name (indices ascending).
    literal: HashMap<String, Vec<usize>>,
    /// Rules with at least one wildcard action pattern (indices ascending).
    wildcard: Vec<usize>,
}

impl Index {
    pub fn build(rules: &[Rule]) -> Index {
        let mut index = Index::default();
        for (i, rule) in rules.iter().enumerate() {
            let literals: Option<Vec<&str>> = rule.actions.iter().map(|g| g.literal()).collect();
            match literals {
                Some(names) => {
                    for name in names {
                        let bucket = index.literal.entry(name.to_owned()).or_default();
                        if bucket.last() != Some(&i) {
                            bucket.push(i);
                        }
                    }
                }
                None => index.wildcard.push(i),
            }
        }
        index
    }

    /// The rules that may match `action`, in file order.
    fn candidates<'a>(&'a self, action: &str) -> impl Iterator<Item = usize> + 'a {
        let literal = self.literal.get(action).map_or(&[][..], Vec::as_slice);
        Merge {
            a: literal,
            b: &self.wildcard,
        }
    }
}

/// Merges two ascending index lists.
struct Merge<'a> {
    a: &'a [usize],
    b: &'a [usize],
}

impl Iterator for Merge<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let (list, other) = if take_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        let item = list[0];
        *list = &list[1..];
        if other.first() == Some(&item) {
            *other = &other[1..];
        }
        Some(item)
    }
}

/// A rule's condition could not be evaluated for this request.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluationFailure {
    pub rule: usize,
    pub error: String,
}

/// Confidence below the effective minimum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowConfidence {
    pub confidence: f64,
    pub minimum: f64,
    /// Whether the minimum is the deciding rule's own (else the policy default's).
    pub from_rule: bool,
}

/// The verdict of the policy on one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub tier: Tier,
    /// The rule reported as deciding: the matching rule, or the rule whose failed condition
    /// raised the tier the most. `None`: `[defaults]`. Review settings come from every
    /// candidate, not from this rule alone (see [`Policy::review_settings`]).
    pub rule: Option<usize>,
    /// The first rule whose `actions`, `agents` and `when` all matched.
    pub matched: Option<usize>,
    /// The condition that failed to evaluate on the way and raised the tier the most, if
    /// any (the first of those that raised it equally).
    pub failure: Option<EvaluationFailure>,
    /// Every rule whose condition failed to evaluate, in file order: each might have
    /// matched, so each is a candidate whose review settings must hold.
    pub failed: Vec<usize>,
    pub low_confidence: Option<LowConfidence>,
}

/// The result of trying one rule on a request.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Try {
    Matched,
    NotMatched,
    Failed(String),
}

/// Folds rule outcomes, in file order, into a classification. Shared by the fast engine,
/// the naive baseline and `explain`, so that they differ only in how they try rules.
pub(super) struct Fold {
    matched: Option<usize>,
    failure: Option<EvaluationFailure>,
    failed: Vec<usize>,
    /// The strictest tier that a failed condition could have led to.
    floor: Option<(Tier, usize)>,
}

impl Fold {
    pub fn new() -> Fold {
        Fold {
            matched: None,
            failure: None,
            failed: Vec::new(),
            floor: None,
        }
    }

    /// Records rule `index`'s outcome; `true` when the walk is over.
    pub fn step(&mut self, policy: &Policy, index: usize, outcome: Try) -> bool {
        match outcome {
            Try::Matched => {
                self.matched = Some(index);
                true
            }
            Try::NotMatched => false,
            Try::Failed(error) => {
                // The rule might have matched: the result must be at least as strict as if it
                // had, and at least `approve`; later rules still run in case they are stricter.
                // The failure reported is the one that set the floor: the strictest, first
                // among equals.
                self.failed.push(index);
                let tier = policy.rules[index].tier.max(Tier::Approve);
                if self.floor.is_none_or(|(t, _)| tier > t) {
                    self.floor = Some((tier, index));
                    self.failure = Some(EvaluationFailure { rule: index, error });
                }
                false
            }
        }
    }

    pub fn finish(self, policy: &Policy, request: &ProposedAction) -> Classification {
        let base = self
            .matched
            .map_or(policy.defaults.tier, |i| policy.rules[i].tier);
        let (mut tier, rule) = match self.floor {
            Some((floor, failed)) if floor >= base => (floor, Some(failed)),
            _ => (base, self.matched),
        };
        let minimum = match rule.and_then(|i| policy.rules[i].min_confidence) {
            Some(m) => Some((m, true)),
            None => policy.defaults.min_confidence.map(|m| (m, false)),
        };
        let mut low_confidence = None;
        if let (Some(confidence), Some((minimum, from_rule))) = (request.confidence, minimum)
            && confidence.value() < minimum
            && tier != Tier::Deny
        {
            tier = tier.max(Tier::Approve);
            low_confidence = Some(LowConfidence {
                confidence: confidence.value(),
                minimum,
                from_rule,
            });
        }
        Classification {
            tier,
            rule,
            matched: self.matched,
            failure: self.failure,
            failed: self.failed,
            low_confidence,
        }
    }
}

impl Policy {
    /// Classifies `request` at time `now` (the CEL variable `now`).
    pub fn classify(&self, request: &ProposedAction, now: DateTime<Utc>) -> Classification {
        let mut fold = Fold::new();
        let mut bindings: Option<Bindings<'_>> = None;
        let action = request.action.as_str();
        for index in self.index.candidates(action) {
            let rule = &self.rules[index];
            if !rule.matches_action(action) || !rule.matches_agent(request.agent.as_str()) {
                continue;
            }
            let outcome = match &rule.when {
                None => Try::Matched,
                Some(condition) => match condition.evaluate_natively(request) {
                    Some(true) => Try::Matched,
                    Some(false) => Try::NotMatched,
                    None => {
                        let bindings = bindings.get_or_insert_with(|| Bindings::new(request, now));
                        bindings.bind(condition.uses());
                        match condition.evaluate(bindings) {
                            Ok(true) => Try::Matched,
                            Ok(false) => Try::NotMatched,
                            Err(e) => Try::Failed(e),
                        }
                    }
                },
            };
            if fold.step(self, index, outcome) {
                break;
            }
        }
        fold.finish(self, request)
    }

    /// The reviewer-facing sentence that says why `classification` came out as it did.
    pub fn reason(&self, classification: &Classification) -> String {
        let mut parts = Vec::new();
        if let Some(failure) = &classification.failure {
            parts.push(format!(
                "the condition of rule {:?} could not be evaluated ({}), so the action is treated as if that rule matched, and needs approval at least{}",
                self.rules[failure.rule].name,
                failure.error,
                if classification.failed.len() > 1 {
                    format!(
                        " ({} rules might have matched; the strictest review settings of them all apply)",
                        classification.failed.len()
                    )
                } else {
                    String::new()
                }
            ));
        }
        if let Some(low) = &classification.low_confidence {
            let whose = match classification.rule {
                Some(i) if low.from_rule => format!("rule {:?}", self.rules[i].name),
                _ => "policy default".to_owned(),
            };
            parts.push(format!(
                "confidence {} is below {} ({whose})",
                low.confidence, low.minimum
            ));
        }
        if parts.is_empty() {
            parts.push(match classification.matched {
                Some(i) => {
                    let rule = &self.rules[i];
                    match &rule.when {
                        Some(c) => format!("rule {:?} matched ({})", rule.name, c.source()),
                        None => format!("rule {:?} matched", rule.name),
                    }
                }
                None => format!(
                    "no rule matched; the policy default tier is {}",
                    self.defaults.tier
                ),
            });
        }
        parts.join("; ")
    }

    /// The name of the rule that applies, if any.
    pub fn rule_name(&self, classification: &Classification) -> Option<&str> {
        classification.rule.map(|i| self.rules[i].name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_ordered_and_deduplicated() {
        let merged: Vec<usize> = Merge {
            a: &[1, 4, 6],
            b: &[0, 4, 5, 9],
        }
        .collect();
        assert_eq!(merged, [0, 1, 4, 5, 6, 9]);
    }
}
