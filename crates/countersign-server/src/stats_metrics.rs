//! The approval metrics at `/metrics`, from the store's all-time sums, so that they survive
//! restarts: actions by outcome, review latency as a histogram, SLA steps, post-hoc reviews,
//! verdicts, pending actions by tier.
//!
//! Label cardinality is bounded: action names come from agents, and a noisy one must not
//! blow up the scrape. The first `metrics_max_actions` action names seen (by the day of
//! their first action, then by name) keep a label of their own and every later one is
//! counted as `action="other"`; rules likewise. First seen rather than busiest, so that a
//! name never moves between its own series and `other`: counters only grow.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use countersign_core::stats::{ActionTally, Histogram};
use countersign_core::tier::Tier;
use countersign_store::{StatsTotals, TierCounts};

/// The label of groups past the cap.
pub const OTHER: &str = "other";
/// The `rule` label of actions the policy's `[defaults]` classified.
pub const DEFAULTS_RULE: &str = "[defaults]";

/// The review latency histogram's upper bounds in seconds: each a boundary of the kept
/// buckets (two significant digits), so each count is exact.
const LATENCY_BOUNDS: [u64; 13] = [
    1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 18000, 36000,
];

/// The names that keep a label of their own: the first `cap` by `(first day, name)`.
pub fn labelled<'a>(
    first_seen: impl Iterator<Item = (&'a str, i64)>,
    cap: usize,
) -> HashSet<String> {
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for (name, day) in first_seen {
        let entry = first.entry(name).or_insert(day);
        *entry = (*entry).min(day);
    }
    let mut order: Vec<(i64, &str)> = first.into_iter().map(|(n, d)| (d, n)).collect();
    order.sort();
    order
        .into_iter()
        .take(cap)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// A label value, escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Appends the approval metrics to `out`.
pub fn render(
    out: &mut String,
    totals: &StatsTotals,
    pending: &TierCounts,
    max_actions: usize,
    max_rules: usize,
) {
    let actions = labelled(
        totals
            .actions
            .iter()
            .map(|k| (k.key.action.as_str(), k.first_day)),
        max_actions,
    );
    let rules = labelled(
        totals
            .actions
            .iter()
            .map(|k| (k.key.rule.as_deref().unwrap_or(DEFAULTS_RULE), k.first_day)),
        max_rules,
    );
    let action_label = |name: &str| {
        if actions.contains(name) {
            name.to_owned()
        } else {
            OTHER.to_owned()
        }
    };
    let rule_label = |rule: Option<&str>| {
        let rule = rule.unwrap_or(DEFAULTS_RULE);
        if rules.contains(rule) {
            rule.to_owned()
        } else {
            OTHER.to_owned()
        }
    };
    // Sums by (action, rule, tier) labels, and by tier.
    let mut by_labels: BTreeMap<(String, String, Tier), ActionTally> = BTreeMap::new();
    let mut latency_by_tier: BTreeMap<Tier, Histogram> = BTreeMap::new();
    for kept in &totals.actions {
        let key = (
            action_label(kept.key.action.as_str()),
            rule_label(kept.key.rule.as_deref()),
            kept.key.tier,
        );
        by_labels.entry(key).or_default().add(&kept.tally);
        latency_by_tier
            .entry(kept.key.tier)
            .or_default()
            .add(&kept.tally.latency);
    }

    header(
        out,
        "countersign_actions_total",
        "counter",
        "Actions by how they ended (approved: by people, unmodified; auto_approved: by the SLA as the rule allows; granted: allowed without asking by a reviewer's grant), by action, rule and tier. Kept in the database: survives restarts.",
    );
    for ((action, rule, tier), tally) in &by_labels {
        let c = &tally.counts;
        for (outcome, value) in [
            ("allowed", c.allowed - c.granted),
            ("granted", c.granted),
            ("denied", c.denied),
            ("approved", c.approved - c.modified - c.auto_approved),
            ("modified", c.modified),
            ("rejected", c.rejected),
            ("expired", c.expired),
            ("cancelled", c.cancelled),
            ("auto_approved", c.auto_approved),
        ] {
            if value != 0 {
                let _ = writeln!(
                    out,
                    "countersign_actions_total{{action=\"{}\",rule=\"{}\",tier=\"{tier}\",outcome=\"{outcome}\"}} {value}",
                    escape(action),
                    escape(rule),
                );
            }
        }
    }
    header(
        out,
        "countersign_sla_total",
        "counter",
        "Actions the review SLA reminded, escalated, expired or approved, by action and tier.",
    );
    let mut sla: BTreeMap<(String, Tier), [i64; 4]> = BTreeMap::new();
    let mut reviews: BTreeMap<(String, String), [i64; 2]> = BTreeMap::new();
    for ((action, rule, tier), tally) in &by_labels {
        let c = &tally.counts;
        let steps = sla.entry((action.clone(), *tier)).or_default();
        for (sum, value) in
            steps
                .iter_mut()
                .zip([c.reminded, c.escalated, c.expired, c.auto_approved])
        {
            *sum += value;
        }
        let post_hoc = reviews.entry((action.clone(), rule.clone())).or_default();
        post_hoc[0] += c.reviewed - c.flagged;
        post_hoc[1] += c.flagged;
    }
    for ((action, tier), steps) in &sla {
        for (step, value) in ["reminded", "escalated", "expired", "auto_approved"]
            .iter()
            .zip(steps)
        {
            if *value != 0 {
                let _ = writeln!(
                    out,
                    "countersign_sla_total{{action=\"{}\",tier=\"{tier}\",step=\"{step}\"}} {value}",
                    escape(action)
                );
            }
        }
    }
    header(
        out,
        "countersign_posthoc_reviews_total",
        "counter",
        "Post-hoc reviews of actions that ran, by verdict (flag: the policy let through what it should not have), action and rule.",
    );
    for ((action, rule), [ok, flag]) in &reviews {
        for (verdict, value) in [("ok", ok), ("flag", flag)] {
            if *value != 0 {
                let _ = writeln!(
                    out,
                    "countersign_posthoc_reviews_total{{action=\"{}\",rule=\"{}\",verdict=\"{verdict}\"}} {value}",
                    escape(action),
                    escape(rule)
                );
            }
        }
    }
    header(
        out,
        "countersign_review_latency_seconds",
        "histogram",
        "From submission to the verdict that decided it, for actions people decided, by tier (the sum adds each bucket's lower bound: within 10% below).",
    );
    for (tier, histogram) in &latency_by_tier {
        if histogram.is_empty() {
            continue;
        }
        for bound in LATENCY_BOUNDS {
            let _ = writeln!(
                out,
                "countersign_review_latency_seconds_bucket{{tier=\"{tier}\",le=\"{bound}\"}} {}",
                histogram.count_below(bound * 1000)
            );
        }
        let sum: u64 = histogram
            .iter()
            .map(|(bucket, count)| Histogram::floor(bucket).saturating_mul(count.max(0) as u64))
            .sum();
        let _ = writeln!(
            out,
            "countersign_review_latency_seconds_bucket{{tier=\"{tier}\",le=\"+Inf\"}} {count}\n\
             countersign_review_latency_seconds_sum{{tier=\"{tier}\"}} {}\n\
             countersign_review_latency_seconds_count{{tier=\"{tier}\"}} {count}",
            sum as f64 / 1000.0,
            count = histogram.count(),
        );
    }
    header(
        out,
        "countersign_decisions_total",
        "counter",
        "Reviewers' verdicts, by verdict and tier (every verdict, also approvals a confirm action still needed a second one after). Kept in the database: survives restarts.",
    );
    let mut verdicts: BTreeMap<(Tier, &str), i64> = BTreeMap::new();
    for (key, tally) in &totals.reviewers {
        *verdicts
            .entry((key.tier, key.verdict.as_str()))
            .or_default() += tally.decisions;
    }
    for ((tier, verdict), value) in &verdicts {
        let _ = writeln!(
            out,
            "countersign_decisions_total{{tier=\"{tier}\",verdict=\"{verdict}\"}} {value}"
        );
    }
    header(
        out,
        "countersign_actions_pending",
        "gauge",
        "Actions waiting for people now, by tier.",
    );
    for (tier, value) in [
        ("approve", pending.approve),
        ("confirm", pending.confirm),
        ("other", pending.other),
    ] {
        let _ = writeln!(
            out,
            "countersign_actions_pending{{tier=\"{tier}\"}} {value}"
        );
    }
    header(
        out,
        "countersign_metric_labels_capped",
        "gauge",
        "Action names and rules counted under \"other\" because the label caps (metrics_max_actions, metrics_max_rules) were reached.",
    );
    let names: BTreeSet<&str> = totals
        .actions
        .iter()
        .map(|k| k.key.action.as_str())
        .collect();
    let rule_names: BTreeSet<&str> = totals
        .actions
        .iter()
        .map(|k| k.key.rule.as_deref().unwrap_or(DEFAULTS_RULE))
        .collect();
    let _ = writeln!(
        out,
        "countersign_metric_labels_capped{{label=\"action\"}} {}\ncountersign_metric_labels_capped{{label=\"rule\"}} {}",
        names.len() - actions.len(),
        rule_names.len() - rules.len(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_names_seen_keep_their_labels() {
        // (name, first day): the cap keeps the earliest, ties by name, the rest are other.
        let seen = [("b", 3), ("a", 3), ("c", 1), ("d", 9), ("a", 7)];
        let mut kept: Vec<String> = labelled(seen.into_iter(), 2).into_iter().collect();
        kept.sort();
        assert_eq!(kept, ["a", "c"]);
        assert_eq!(labelled(seen.into_iter(), 10).len(), 4);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a "b" \c"#), r#"a \"b\" \\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
