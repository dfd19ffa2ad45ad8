//! Which policy changes the evidence supports.
//!
//! - **Relax** `approve` → `logged` (with a review sample) for a rule and action type when
//!   the 95% Wilson upper bound of the error rate (rejected + modified of decided) is under
//!   the target over at least the minimum number of decisions in the window.
//! - **Narrow** the relaxation with `when = "args.K < X"` when the errors cluster: X is the
//!   smallest value of a numeric argument K among the corrected actions, and the actions
//!   below it alone clear the same bar (the split is clean: none of them was corrected).
//! - **Tighten** `logged` → `approve` when the 95% Wilson lower bound of the post-hoc flag
//!   rate is over the target over at least the minimum number of reviews: the evidence says
//!   the agent gets it wrong too often for review after the fact. For a graduated rule
//!   (`logged` with a review sample) this is a regression.
//!
//! `confirm` rules never graduate, and neither does an action any `deny` rule names.

use serde_json::{Map, Value};

use super::evidence::{Evidence, GroupKey, percent};
use crate::policy::{Policy, Rule};
use crate::tier::Tier;

/// The bars evidence must clear (configurable in the server config and on the CLI).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Relax when the error rate's upper bound is under this; tighten when the flag rate's
    /// lower bound is over it.
    pub target: f64,
    /// The fewest decisions in the window that can justify a relaxation.
    pub min_decisions: u64,
    /// The fewest post-hoc reviews in the window that can justify a tightening.
    pub min_reviews: u64,
    /// The review sample a relaxed rule gets.
    pub review_sample: f64,
    /// The window, in days, that evidence is counted in.
    pub window_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            target: 0.05,
            min_decisions: 50,
            min_reviews: 20,
            review_sample: 0.1,
            window_days: 30,
        }
    }
}

crate::vocabulary! {
    /// What a proposal does.
    pub enum ProposalKind {
        /// `approve` → `logged` for the rule and action type.
        Relax = "relax",
        /// `approve` → `logged` for the part of it below a value of an argument.
        Narrow = "narrow",
        /// `logged` → `approve`.
        Tighten = "tighten",
    }
}

/// A numeric argument below which the corrected actions never fell.
#[derive(Clone, Debug, PartialEq)]
pub struct Narrowing {
    /// The argument's name (a CEL identifier).
    pub arg: String,
    /// The smallest value among corrected actions, as it is written in the condition.
    pub below: Value,
}

impl Narrowing {
    /// `args.amount < 500`.
    pub fn condition(&self) -> String {
        format!("args.{} < {}", self.arg, self.below)
    }

    pub fn below_f64(&self) -> f64 {
        self.below.as_f64().unwrap_or(f64::NAN)
    }
}

/// One proposed change with the evidence for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub kind: ProposalKind,
    pub key: GroupKey,
    /// The whole group's evidence.
    pub evidence: Evidence,
    /// For [`ProposalKind::Narrow`]: the argument bound and the evidence below it.
    pub narrowing: Option<(Narrowing, Evidence)>,
    pub from: Tier,
    pub to: Tier,
    /// The review sample of a relaxed rule.
    pub review_sample: Option<f64>,
    /// Why, in one sentence.
    pub reason: String,
}

/// What the evidence supports, before narrowing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Suggestions {
    pub proposals: Vec<Proposal>,
    /// Groups that could be relaxed if their errors cluster: the caller looks at their
    /// corrected actions' arguments ([`narrowings`]) and the evidence below each bound
    /// ([`narrowed`]).
    pub narrowable: Vec<Evidence>,
}

/// A graduated rule (tier `logged` with a review sample) whose flag rate crossed the target.
pub type Regression = Proposal;

/// The proposals the evidence supports against `policy`.
pub fn suggest(policy: &Policy, evidence: &[Evidence], thresholds: &Thresholds) -> Suggestions {
    let mut out = Suggestions::default();
    for group in evidence {
        let Some(tier) = current_tier(policy, &group.key) else {
            continue;
        };
        if tier == Tier::Approve && may_graduate(policy, group) {
            if group.decisions() < thresholds.min_decisions {
                continue;
            }
            if group.error_upper() < thresholds.target {
                out.proposals.push(Proposal {
                    kind: ProposalKind::Relax,
                    key: group.key.clone(),
                    evidence: group.clone(),
                    narrowing: None,
                    from: Tier::Approve,
                    to: Tier::Logged,
                    review_sample: Some(thresholds.review_sample),
                    reason: format!(
                        "{}: the error rate is at most {} (95% upper bound) over {} decisions, under the target {}",
                        describe(&group.key),
                        percent(group.error_upper()),
                        group.decisions(),
                        percent(thresholds.target),
                    ),
                });
            } else if group.errors() > 0 {
                out.narrowable.push(group.clone());
            }
        } else if tier == Tier::Logged
            && let Some(proposal) = tightening(group, thresholds)
        {
            out.proposals.push(proposal);
        }
    }
    out
}

/// The regressions among graduated rules: `logged` rules with a review sample whose flag
/// rate's lower bound crossed the target.
pub fn regressions(
    policy: &Policy,
    evidence: &[Evidence],
    thresholds: &Thresholds,
) -> Vec<Regression> {
    evidence
        .iter()
        .filter(|group| {
            rule_of(policy, &group.key).is_some_and(|rule| {
                rule.tier == Tier::Logged && rule.review_sample.is_some_and(|s| s > 0.0)
            })
        })
        .filter_map(|group| tightening(group, thresholds))
        .collect()
}

fn tightening(group: &Evidence, thresholds: &Thresholds) -> Option<Proposal> {
    (group.reviewed >= thresholds.min_reviews && group.flag_lower() > thresholds.target).then(|| {
        Proposal {
            kind: ProposalKind::Tighten,
            key: group.key.clone(),
            evidence: group.clone(),
            narrowing: None,
            from: Tier::Logged,
            to: Tier::Approve,
            review_sample: None,
            reason: format!(
                "{}: {} of {} post-hoc reviews flagged; the flag rate is at least {} (95% lower bound), over the target {}",
                describe(&group.key),
                group.flagged,
                group.reviewed,
                percent(group.flag_lower()),
                percent(thresholds.target),
            ),
        }
    })
}

/// The numeric arguments every corrected action has, each with the smallest value among
/// them: the candidate bounds of a narrowed relaxation. `error_args` are the corrected
/// actions' arguments as the agent sent them.
pub fn narrowings(error_args: &[Map<String, Value>]) -> Vec<Narrowing> {
    let Some(first) = error_args.first() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, value) in first {
        if !is_identifier(name) || !value.is_number() {
            continue;
        }
        let mut smallest = value.clone();
        let mut everywhere = true;
        for args in &error_args[1..] {
            match args.get(name) {
                Some(v) if v.is_number() => {
                    if v.as_f64() < smallest.as_f64() {
                        smallest = v.clone();
                    }
                }
                _ => {
                    everywhere = false;
                    break;
                }
            }
        }
        if everywhere {
            found.push(Narrowing {
                arg: name.clone(),
                below: smallest,
            });
        }
    }
    found.sort_by(|a, b| a.arg.cmp(&b.arg));
    found
}

/// The narrowed relaxation of `group` below `narrowing`, if the evidence below the bound
/// (`below`: only actions whose argument is under it) clears the bar with no correction.
pub fn narrowed(
    group: &Evidence,
    narrowing: Narrowing,
    below: Evidence,
    thresholds: &Thresholds,
) -> Option<Proposal> {
    let clean = below.errors() == 0
        && below.decisions() >= thresholds.min_decisions
        && below.error_upper() < thresholds.target;
    clean.then(|| Proposal {
        kind: ProposalKind::Narrow,
        key: group.key.clone(),
        evidence: group.clone(),
        reason: format!(
            "{}: the {} corrected action(s) all had {} >= {}; below that, {} decisions and none corrected (error rate at most {}, under the target {})",
            describe(&group.key),
            group.errors(),
            narrowing.arg,
            narrowing.below,
            below.decisions(),
            percent(below.error_upper()),
            percent(thresholds.target),
        ),
        narrowing: Some((narrowing, below)),
        from: Tier::Approve,
        to: Tier::Logged,
        review_sample: Some(thresholds.review_sample),
    })
}

/// The tier the group's rule (or `[defaults]`) has in `policy`; `None` when the policy has
/// no rule of that name any more.
fn current_tier(policy: &Policy, key: &GroupKey) -> Option<Tier> {
    match &key.rule {
        None => Some(policy.defaults.tier),
        Some(_) => rule_of(policy, key).map(|rule| rule.tier),
    }
}

pub(super) fn rule_of<'p>(policy: &'p Policy, key: &GroupKey) -> Option<&'p Rule> {
    let name = key.rule.as_deref()?;
    policy.rules.iter().find(|rule| rule.name == name)
}

/// Never a `confirm` action, never one a `deny` rule names (whatever its condition).
fn may_graduate(policy: &Policy, group: &Evidence) -> bool {
    group.at_tier(Tier::Confirm) == 0
        && group.at_tier(Tier::Deny) == 0
        && !policy
            .rules
            .iter()
            .any(|rule| rule.tier == Tier::Deny && rule.matches_action(&group.key.action))
}

fn describe(key: &GroupKey) -> String {
    match &key.rule {
        Some(rule) => format!("rule {rule:?}, action {}", key.action),
        None => format!("[defaults], action {}", key.action),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = r#"version = 1
[defaults]
tier = "approve"
[[rules]]
name = "refunds"
actions = ["refund.create"]
tier = "approve"
[[rules]]
name = "closures"
actions = ["account.close"]
tier = "confirm"
[[rules]]
name = "no drops"
actions = ["db.*"]
when = "args.table == 'users'"
tier = "deny"
[[rules]]
name = "db writes"
actions = ["db.write"]
tier = "approve"
"#;

    fn group(rule: &str, action: &str, tier: Tier, approved: u64, rejected: u64) -> Evidence {
        let mut e = Evidence::new(GroupKey {
            rule: Some(rule.to_owned()),
            action: action.to_owned(),
        });
        e.add_tier(tier, approved + rejected);
        e.approved = approved;
        e.rejected = rejected;
        e
    }

    fn kinds(policy: &Policy, evidence: &[Evidence], t: &Thresholds) -> Vec<ProposalKind> {
        suggest(policy, evidence, t)
            .proposals
            .iter()
            .map(|p| p.kind)
            .collect()
    }

    #[test]
    fn relaxes_exactly_when_the_bound_is_crossed() {
        let policy = Policy::parse(POLICY).unwrap();
        let t = Thresholds::default();
        // 0 of n corrected: the upper bound z²/(n+z²) is under 5% from n = 73.
        let short = group("refunds", "refund.create", Tier::Approve, 72, 0);
        assert!(kinds(&policy, &[short], &t).is_empty());
        let enough = group("refunds", "refund.create", Tier::Approve, 73, 0);
        assert_eq!(kinds(&policy, &[enough], &t), [ProposalKind::Relax]);
    }

    #[test]
    fn relaxes_exactly_at_the_minimum_number_of_decisions() {
        let policy = Policy::parse(POLICY).unwrap();
        let t = Thresholds {
            target: 0.1,
            ..Thresholds::default()
        };
        let short = group("refunds", "refund.create", Tier::Approve, 49, 0);
        assert!(kinds(&policy, &[short], &t).is_empty());
        let enough = group("refunds", "refund.create", Tier::Approve, 50, 0);
        assert_eq!(kinds(&policy, &[enough], &t), [ProposalKind::Relax]);
    }

    #[test]
    fn never_confirm_nor_what_a_deny_rule_names() {
        let policy = Policy::parse(POLICY).unwrap();
        let t = Thresholds::default();
        let confirm = group("closures", "account.close", Tier::Confirm, 10_000, 0);
        let denied = group("db writes", "db.write", Tier::Approve, 10_000, 0);
        assert!(kinds(&policy, &[confirm, denied], &t).is_empty());
    }

    #[test]
    fn errors_make_a_group_narrowable_not_relaxed() {
        let policy = Policy::parse(POLICY).unwrap();
        let found = suggest(
            &policy,
            &[group("refunds", "refund.create", Tier::Approve, 200, 5)],
            &Thresholds::default(),
        );
        assert!(found.proposals.is_empty());
        assert_eq!(found.narrowable.len(), 1);
    }

    #[test]
    fn narrowing_bounds_come_from_numeric_arguments_every_error_has() {
        let errors: Vec<Map<String, Value>> = [
            json!({"amount": 700, "currency": "EUR", "note": 1}),
            json!({"amount": 500.5, "currency": "EUR"}),
            json!({"amount": 900, "currency": "EUR", "note": 2}),
        ]
        .iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let found = narrowings(&errors);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].condition(), "args.amount < 500.5");
    }

    #[test]
    fn a_narrowed_relaxation_needs_clean_evidence_below_the_bound() {
        let whole = group("refunds", "refund.create", Tier::Approve, 200, 5);
        let bound = Narrowing {
            arg: "amount".into(),
            below: json!(500),
        };
        let t = Thresholds::default();
        let below = group("refunds", "refund.create", Tier::Approve, 150, 0);
        assert!(narrowed(&whole, bound.clone(), below, &t).is_some());
        let dirty = group("refunds", "refund.create", Tier::Approve, 150, 1);
        assert!(narrowed(&whole, bound.clone(), dirty, &t).is_none());
        let thin = group("refunds", "refund.create", Tier::Approve, 40, 0);
        assert!(narrowed(&whole, bound, thin, &t).is_none());
    }
}
