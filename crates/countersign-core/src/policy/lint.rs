//! Checks that need more than one key at a time: unsafe timeouts, settings without effect,
//! duplicate names, and rules that can never match because an earlier rule always takes
//! their actions first.

use super::diagnostic::Reporter;
use super::parse::spans::{DefaultSpans, RuleSpans};
use super::{Defaults, OnTimeout, Rule};
use crate::tier::Tier;

pub(super) fn check_defaults(report: &mut Reporter<'_>, defaults: &Defaults, spans: &DefaultSpans) {
    let at = spans.on_timeout.clone().unwrap_or(spans.table.clone());
    if defaults.on_timeout == OnTimeout::Approve {
        if !defaults.allow_auto_approve {
            report.error_with_help(
                "unsafe-on-timeout",
                at.clone(),
                "`on_timeout = \"approve\"` in [defaults] would approve unanswered actions on its own",
                "add `allow_auto_approve = true` to [defaults] if that is really wanted, or use \"reject\" or \"escalate\"",
            );
        }
        if defaults.tier == Tier::Confirm {
            report.error(
                "unsafe-on-timeout",
                at.clone(),
                "the default tier is `confirm`, which is never approved on timeout; use \"reject\" or \"escalate\"",
            );
        }
    }
    if matches!(defaults.tier, Tier::Auto | Tier::Logged) {
        report.warning(
            "permissive-default",
            spans.tier.clone().unwrap_or(spans.table.clone()),
            format!(
                "the default tier is `{}`: every action that no rule names runs without review, including actions nobody has thought of yet; `approve` is the safe default",
                defaults.tier
            ),
        );
    }
    if defaults.on_timeout == OnTimeout::Escalate && defaults.escalate_to.is_empty() {
        report.error(
            "escalate-without-groups",
            at,
            "`on_timeout = \"escalate\"` in [defaults] needs `escalate_to` (the groups to escalate to)",
        );
    }
}

pub(super) fn check_rules(
    report: &mut Reporter<'_>,
    defaults: &Defaults,
    default_spans: &DefaultSpans,
    rules: &[Rule],
    spans: &[RuleSpans],
) {
    for (j, (rule, span)) in rules.iter().zip(spans).enumerate() {
        if let Some(first) = rules[..j].iter().find(|earlier| earlier.name == rule.name) {
            report.error_with_help(
                "duplicate-rule-name",
                span.name.clone(),
                format!("rule name {:?} is used twice", rule.name),
                format!(
                    "first used by the rule at line {}; names must be unique",
                    first.line
                ),
            );
        }
        if !span.tier_unknown {
            check_timeout(report, defaults, default_spans, rule, span);
            check_raised_timeout(report, defaults, rule, span);
            check_effects(report, rule, span);
        }
        check_shadowing(report, &rules[..j], &spans[..j], rule, span);
    }
}

fn check_timeout(
    report: &mut Reporter<'_>,
    defaults: &Defaults,
    default_spans: &DefaultSpans,
    rule: &Rule,
    span: &RuleSpans,
) {
    let (on_timeout, inherited) = match rule.on_timeout {
        Some(t) => (t, false),
        None => (defaults.on_timeout, true),
    };
    if !rule.tier.is_human_gated() {
        return;
    }
    let at = span.on_timeout.clone().unwrap_or(span.tier.clone());
    match on_timeout {
        OnTimeout::Approve if rule.tier == Tier::Confirm => report.error(
            "unsafe-on-timeout",
            at,
            format!(
                "rule {:?} has tier `confirm`, which is never approved on timeout{}; use \"reject\" or \"escalate\"",
                rule.name,
                if inherited { " (it inherits `on_timeout = \"approve\"` from [defaults])" } else { "" }
            ),
        ),
        OnTimeout::Approve if !inherited && !rule.allow_auto_approve => report.error_with_help(
            "unsafe-on-timeout",
            at,
            format!("`on_timeout = \"approve\"` in rule {:?} would approve unanswered actions on its own", rule.name),
            "add `allow_auto_approve = true` to the same rule if that is really wanted, or use \"reject\" or \"escalate\"",
        ),
        OnTimeout::Escalate if rule.escalate_to.is_empty() && defaults.escalate_to.is_empty() => {
            report.error(
                "escalate-without-groups",
                at,
                format!(
                    "rule {:?} escalates on timeout but names no `escalate_to` groups (nor does [defaults])",
                    rule.name
                ),
            )
        }
        _ => {}
    }
    let _ = default_spans;
}

/// `on_timeout = "approve"` never applies to an action that low confidence raised: such an
/// action expires instead. Say so where an author may expect otherwise.
fn check_raised_timeout(
    report: &mut Reporter<'_>,
    defaults: &Defaults,
    rule: &Rule,
    span: &RuleSpans,
) {
    let (on_timeout, allowed) = match rule.on_timeout {
        Some(own) => (own, rule.allow_auto_approve),
        None => (defaults.on_timeout, defaults.allow_auto_approve),
    };
    let Some(minimum) = rule.min_confidence.or(defaults.min_confidence) else {
        return;
    };
    if on_timeout != OnTimeout::Approve
        || !allowed
        || matches!(rule.tier, Tier::Confirm | Tier::Deny)
    {
        return;
    }
    report.warning(
        "approve-on-timeout-not-for-raised",
        span.on_timeout.clone().unwrap_or(span.tier.clone()),
        format!(
            "rule {:?} approves on timeout, but an action whose confidence is below {minimum} is raised for review and is never approved on timeout: it expires unanswered instead",
            rule.name
        ),
    );
}

fn check_effects(report: &mut Reporter<'_>, rule: &Rule, span: &RuleSpans) {
    if let Some(approvals) = rule.approvals
        && rule.tier == Tier::Confirm
        && approvals < 2
    {
        report.error(
                "confirm-needs-two",
                span.tier.clone(),
                format!(
                    "rule {:?} has tier `confirm`, which needs at least 2 approvals from different people, but `approvals = {approvals}`",
                    rule.name
                ),
            );
    }
    if rule.review_sample.is_some_and(|s| s > 0.0) && rule.tier != Tier::Logged {
        report.warning(
            "no-effect",
            span.tier.clone(),
            format!(
                "rule {:?} sets `review_sample`, but only `logged` actions are sampled for review; its tier is `{}`",
                rule.name, rule.tier
            ),
        );
    }
    if !rule.tier.is_human_gated()
        && rule.tier != Tier::Deny
        && (rule.approvals.is_some() || rule.sla.is_some() || rule.on_timeout.is_some())
        && rule.min_confidence.is_none()
    {
        report.warning(
            "no-effect",
            span.tier.clone(),
            format!(
                "rule {:?} sets review settings (approvals, sla or on_timeout), but its tier `{}` is not reviewed and it has no `min_confidence` that could escalate it",
                rule.name, rule.tier
            ),
        );
    }
}

/// Does `earlier` match every request that `rule` could match, unconditionally?
fn always_takes(earlier: &Rule, rule: &Rule, pattern: &crate::glob::Glob) -> bool {
    let unconditional = earlier.when.as_ref().is_none_or(|c| c.is_always_true());
    let agents_covered = earlier.agents.is_empty()
        || (!rule.agents.is_empty()
            && rule
                .agents
                .iter()
                .all(|a| earlier.agents.iter().any(|e| e.covers(a))));
    unconditional && agents_covered && earlier.actions.iter().any(|e| e.covers(pattern))
}

fn check_shadowing(
    report: &mut Reporter<'_>,
    earlier: &[Rule],
    earlier_spans: &[RuleSpans],
    rule: &Rule,
    span: &RuleSpans,
) {
    if span.broken || rule.actions.is_empty() {
        return;
    }
    let blockers: Vec<Option<&Rule>> = rule
        .actions
        .iter()
        .map(|pattern| {
            earlier
                .iter()
                .zip(earlier_spans)
                .find(|(e, s)| !s.broken && always_takes(e, rule, pattern))
                .map(|(e, _)| e)
        })
        .collect();
    if blockers.iter().all(Option::is_some) {
        let first = blockers[0].expect("checked above");
        report.error_with_help(
            "unreachable-rule",
            span.header.clone(),
            format!(
                "rule {:?} can never match: rule {:?} (line {}) comes first and matches every action it could",
                rule.name, first.name, first.line
            ),
            "move the more specific rule above the general one, or narrow the earlier rule with `actions`, `agents` or `when`",
        );
        return;
    }
    for ((pattern, blocker), at) in rule.actions.iter().zip(&blockers).zip(&span.actions) {
        if let Some(blocker) = blocker {
            report.warning(
                "unreachable-pattern",
                at.clone(),
                format!(
                    "action pattern {:?} of rule {:?} never matches here: rule {:?} (line {}) takes every such action first",
                    pattern.as_str(),
                    rule.name,
                    blocker.name,
                    blocker.line
                ),
            );
        }
    }
}
