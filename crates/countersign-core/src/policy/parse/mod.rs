//! From policy text to a [`Policy`], reporting every problem with its line and column.
//!
//! The TOML is parsed into a spanned tree (recovering from syntax errors so that later ones
//! are found too) and walked by hand rather than through serde: serde stops at the first
//! problem and cannot tell where an unknown key was. Cross-rule checks live in
//! [`super::lint`]. One file a concern: this one walks the file's top level; `fields` reads
//! typed values out of a table; `rule` reads `[defaults]` and each `[[rules]]` entry;
//! `condition` compiles `when` and maps CEL's positions back into the file.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

mod condition;
mod fields;
mod rule;
pub(super) mod spans;

use super::diagnostic::{Reporter, did_you_mean};
use super::{Checked, Defaults, Policy, lint};
use rule::{parse_defaults, parse_rule};
pub(super) use spans::{DefaultSpans, RuleSpans};

const TOP_KEYS: &[&str] = &["version", "defaults", "rules"];
const DEFAULT_KEYS: &[&str] = &[
    "tier",
    "min_confidence",
    "sla",
    "on_timeout",
    "allow_auto_approve",
    "approvers",
    "escalate_to",
    "escalation_sla",
    "review_sample",
    "remind_at",
];
const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "actions",
    "agents",
    "when",
    "tier",
    "approvers",
    "approvals",
    "min_confidence",
    "sla",
    "on_timeout",
    "allow_auto_approve",
    "escalate_to",
    "escalation_sla",
    "review_sample",
    "remind_at",
];

pub(super) fn parse(source: &str) -> Checked {
    let mut report = Reporter::new(source);
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    let had_syntax_errors = !syntax_errors.is_empty();
    for error in syntax_errors {
        let span = error.span().unwrap_or(0..0);
        report.error("toml-syntax", span, first_line(error.message()));
    }
    let root_span = root.span();
    let root = root.into_inner();

    unknown_keys(&mut report, &root, TOP_KEYS, "at the top level");

    match root.get("version") {
        // Required, so that an empty or half-written file (an editor truncating before it
        // rewrites) is never loaded as a policy with no rules: every `deny` gone at once.
        None => {
            if !had_syntax_errors {
                let message = if source.trim().is_empty() {
                    "the policy file is empty; a policy starts with `version = 1`"
                } else {
                    "the policy does not say `version = 1`; add it as the first line"
                };
                report.error("missing-version", root_span.start..root_span.start, message);
            }
        }
        Some(v) => match v.get_ref() {
            DeValue::Integer(i) if i.as_str() == "1" && i.radix() == 10 => {}
            _ => report.error(
                "unsupported-version",
                v.span(),
                format!(
                    "unsupported policy version {}: this Countersign reads version 1",
                    raw(source, v.span())
                ),
            ),
        },
    }

    let (defaults, default_spans) = match root.get("defaults") {
        None => (Defaults::default(), DefaultSpans::default()),
        Some(value) => match value.get_ref() {
            DeValue::Table(table) => parse_defaults(&mut report, source, table, value.span()),
            _ => {
                report.error(
                    "wrong-type",
                    value.span(),
                    format!(
                        "`defaults` must be a table (`[defaults]`), found {}",
                        value.get_ref().type_str()
                    ),
                );
                (Defaults::default(), DefaultSpans::default())
            }
        },
    };

    let mut rules = Vec::new();
    let mut rule_spans = Vec::new();
    let mut complete = true;
    if let Some(value) = root.get("rules") {
        match value.get_ref() {
            DeValue::Array(items) => {
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(table) => {
                            if let Some((rule, spans)) = parse_rule(
                                &mut report,
                                source,
                                table,
                                item.span(),
                                had_syntax_errors,
                            ) {
                                complete &= !spans.broken;
                                rules.push(rule);
                                rule_spans.push(spans);
                            }
                        }
                        other => report.error(
                            "wrong-type",
                            item.span(),
                            format!(
                                "each entry of `rules` must be a table (`[[rules]]`), found {}",
                                other.type_str()
                            ),
                        ),
                    }
                }
            }
            other => report.error(
                "wrong-type",
                value.span(),
                format!(
                    "`rules` must be an array of tables (`[[rules]]`), found {}",
                    other.type_str()
                ),
            ),
        }
    }

    lint::check_defaults(&mut report, &defaults, &default_spans);
    lint::check_rules(&mut report, &defaults, &default_spans, &rules, &rule_spans);

    let policy = (complete && !report.has_errors()).then(|| Policy::new(defaults, rules, source));
    Checked {
        policy,
        diagnostics: report.finish(),
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

fn raw(source: &str, span: Range<usize>) -> &str {
    source.get(span).unwrap_or("?")
}

fn unknown_keys(report: &mut Reporter<'_>, table: &DeTable<'_>, allowed: &[&str], place: &str) {
    for (key, _) in table.iter() {
        let name: &str = key.get_ref();
        if allowed.contains(&name) {
            continue;
        }
        let message = format!("unknown key `{name}` {place}");
        match did_you_mean(name, allowed) {
            Some(suggestion) => report.error_with_help(
                "unknown-key",
                key.span(),
                message,
                format!("did you mean `{suggestion}`?"),
            ),
            None => report.error_with_help(
                "unknown-key",
                key.span(),
                message,
                format!("expected one of: {}", allowed.join(", ")),
            ),
        }
    }
}
