//! From policy text to a [`Policy`], reporting every problem with its line and column.
//!
//! The TOML is parsed into a spanned tree (recovering from syntax errors so that later ones
//! are found too) and walked by hand rather than through serde: serde stops at the first
//! problem and cannot tell where an unknown key was. Cross-rule checks live in
//! [`super::lint`].

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::condition::{Condition, ConditionError, Variable};
use super::diagnostic::{Reporter, did_you_mean};
use super::{Checked, Defaults, OnTimeout, Policy, Rule, lint};
use crate::action::{ACTION_NAME_CHARS, AGENT_NAME_CHARS, is_action_name_char, is_agent_name_char};
use crate::duration::ReviewDuration;
use crate::glob::Glob;
use crate::tier::Tier;

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
];

/// Where the parts of a rule are written, for the cross-rule checks.
pub(super) struct RuleSpans {
    pub header: Range<usize>,
    pub name: Range<usize>,
    pub tier: Range<usize>,
    pub actions: Vec<Range<usize>>,
    pub on_timeout: Option<Range<usize>>,
    /// The rule had errors of its own: it is linted against the others (names, timeouts)
    /// but never trusted to shadow them.
    pub broken: bool,
    /// Its tier was missing or invalid (a placeholder stands in).
    pub tier_unknown: bool,
}

/// The same for `[defaults]`.
#[derive(Default)]
pub(super) struct DefaultSpans {
    pub table: Range<usize>,
    pub tier: Option<Range<usize>>,
    pub on_timeout: Option<Range<usize>>,
    /// Whether `[defaults]` sets `on_timeout` itself.
    pub on_timeout_set: bool,
}

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

/// Typed access to the keys of one table, reporting wrong types.
struct Fields<'t, 'i> {
    table: &'t DeTable<'i>,
    place: String,
}

impl<'t, 'i> Fields<'t, 'i> {
    fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn wrong_type(
        &self,
        report: &mut Reporter<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        expected: &str,
    ) {
        report.error(
            "wrong-type",
            value.span(),
            format!(
                "`{key}` {} must be {expected}, found {}",
                self.place,
                value.get_ref().type_str()
            ),
        );
    }

    fn string(&self, report: &mut Reporter<'_>, key: &str) -> Option<(String, Range<usize>)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            _ => {
                self.wrong_type(report, key, value, "a string");
                None
            }
        }
    }

    fn bool(&self, report: &mut Reporter<'_>, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(report, key, value, "true or false");
                None
            }
        }
    }

    /// A list of strings, each with its span.
    fn strings(&self, report: &mut Reporter<'_>, key: &str) -> Option<Vec<(String, Range<usize>)>> {
        let value = self.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                report,
                key,
                value,
                "an array of strings, like [\"a\", \"b\"]",
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                other => report.error(
                    "wrong-type",
                    item.span(),
                    format!(
                        "every entry of `{key}` {} must be a string, found {}",
                        self.place,
                        other.type_str()
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A number in `0..=1` (integers `0` and `1` included).
    fn fraction(&self, report: &mut Reporter<'_>, key: &str) -> Option<f64> {
        let value = self.get(key)?;
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|i| i as f64),
            _ => {
                self.wrong_type(report, key, value, "a number from 0 to 1");
                return None;
            }
        };
        match number {
            Some(n) if (0.0..=1.0).contains(&n) => Some(n),
            _ => {
                report.error(
                    "out-of-range",
                    value.span(),
                    format!(
                        "`{key}` {} must be from 0 to 1, found {}",
                        self.place,
                        raw_value(value)
                    ),
                );
                None
            }
        }
    }

    fn positive_integer(
        &self,
        report: &mut Reporter<'_>,
        key: &str,
    ) -> Option<(u32, Range<usize>)> {
        let value = self.get(key)?;
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(report, key, value, "a whole number");
            return None;
        };
        match i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .and_then(|n| u32::try_from(n).ok())
        {
            Some(n) if (1..=100).contains(&n) => Some((n, value.span())),
            _ => {
                report.error(
                    "out-of-range",
                    value.span(),
                    format!(
                        "`{key}` {} must be from 1 to 100, found {}",
                        self.place,
                        raw_value(value)
                    ),
                );
                None
            }
        }
    }

    fn tier(&self, report: &mut Reporter<'_>, key: &str) -> Option<(Tier, Range<usize>)> {
        let (text, span) = self.string(report, key)?;
        match text.parse::<Tier>() {
            Ok(tier) => Some((tier, span)),
            Err(e) => {
                let names: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
                let help = did_you_mean(&text, &names).map(|s| format!("did you mean \"{s}\"?"));
                report.push(
                    super::Severity::Error,
                    "unknown-tier",
                    span,
                    format!("`{key}` {}: {e}", self.place),
                    help,
                );
                None
            }
        }
    }

    fn on_timeout(&self, report: &mut Reporter<'_>) -> Option<(OnTimeout, Range<usize>)> {
        let (text, span) = self.string(report, "on_timeout")?;
        match text.parse::<OnTimeout>() {
            Ok(t) => Some((t, span)),
            Err(e) => {
                report.error(
                    "unknown-on-timeout",
                    span,
                    format!("`on_timeout` {}: {e}", self.place),
                );
                None
            }
        }
    }

    fn duration(&self, report: &mut Reporter<'_>, key: &str) -> Option<ReviewDuration> {
        let (text, span) = self.string(report, key)?;
        match text.parse::<ReviewDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                report.error("bad-duration", span, format!("`{key}` {}: {e}", self.place));
                None
            }
        }
    }

    /// Approver group names.
    fn groups(&self, report: &mut Reporter<'_>, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (group, span) in self.strings(report, key).unwrap_or_default() {
            match crate::action::AgentName::parse(&group) {
                Ok(_) => {
                    if !out.contains(&group) {
                        out.push(group);
                    }
                }
                Err(e) => report.error(
                    "bad-group",
                    span,
                    format!("group name {group:?} in `{key}` {}: {e}", self.place),
                ),
            }
        }
        out
    }
}

fn raw_value(value: &Spanned<DeValue<'_>>) -> String {
    match value.get_ref() {
        DeValue::Float(f) => f.as_str().to_owned(),
        DeValue::Integer(i) => i.as_str().to_owned(),
        other => other.type_str().to_owned(),
    }
}

fn parse_defaults(
    report: &mut Reporter<'_>,
    _source: &str,
    table: &DeTable<'_>,
    span: Range<usize>,
) -> (Defaults, DefaultSpans) {
    unknown_keys(report, table, DEFAULT_KEYS, "in [defaults]");
    let fields = Fields {
        table,
        place: "in [defaults]".to_owned(),
    };
    let mut defaults = Defaults::default();
    let mut spans = DefaultSpans {
        table: span,
        ..DefaultSpans::default()
    };
    if let Some((tier, tier_span)) = fields.tier(report, "tier") {
        defaults.tier = tier;
        spans.tier = Some(tier_span);
    }
    defaults.min_confidence = fields.fraction(report, "min_confidence");
    if let Some(sla) = fields.duration(report, "sla") {
        defaults.sla = sla;
    }
    if let Some((on_timeout, on_timeout_span)) = fields.on_timeout(report) {
        defaults.on_timeout = on_timeout;
        spans.on_timeout = Some(on_timeout_span);
        spans.on_timeout_set = true;
    }
    defaults.allow_auto_approve = fields.bool(report, "allow_auto_approve").unwrap_or(false);
    defaults.approvers = fields.groups(report, "approvers");
    defaults.escalate_to = fields.groups(report, "escalate_to");
    defaults.escalation_sla = fields.duration(report, "escalation_sla");
    defaults.review_sample = fields.fraction(report, "review_sample").unwrap_or(0.0);
    (defaults, spans)
}

fn parse_rule(
    report: &mut Reporter<'_>,
    source: &str,
    table: &DeTable<'_>,
    span: Range<usize>,
    had_syntax_errors: bool,
) -> Option<(Rule, RuleSpans)> {
    let header = header_span(source, span.clone());
    let line = report.index().position(header.start).0;
    let provisional = Fields {
        table,
        place: format!("in the rule at line {line}"),
    };
    let name = provisional.string(report, "name");
    let place = match &name {
        Some((n, _)) => format!("in rule {n:?}"),
        None => provisional.place.clone(),
    };
    unknown_keys(report, table, RULE_KEYS, &place);
    let fields = Fields { table, place };
    let mut ok = true;

    let name = match name {
        Some((n, span)) if !n.trim().is_empty() => Some((n, span)),
        Some((_, span)) => {
            report.error("empty-name", span, "a rule's `name` must not be empty");
            None
        }
        None => {
            if table.get("name").is_none() && !had_syntax_errors {
                report.error_with_help(
                    "missing-name",
                    header.clone(),
                    format!("the rule at line {line} has no `name`"),
                    "every rule needs a unique name: reviewers and the audit log show it",
                );
            }
            None
        }
    };
    ok &= name.is_some();

    let tier = fields.tier(report, "tier");
    if tier.is_none() && table.get("tier").is_none() && !had_syntax_errors {
        report.error(
            "missing-tier",
            header.clone(),
            format!(
                "{} has no `tier` (one of auto, logged, approve, confirm, deny)",
                describe_rule(&name, line)
            ),
        );
    }
    ok &= tier.is_some();

    let mut actions = Vec::new();
    let mut action_spans = Vec::new();
    match fields.strings(report, "actions") {
        None if table.get("actions").is_none() => {
            actions.push(
                Glob::parse("*", is_action_name_char, ACTION_NAME_CHARS).expect("* is valid"),
            );
            action_spans.push(header.clone());
        }
        None => ok = false,
        Some(list) if list.is_empty() => {
            let span = table.get("actions").map_or(header.clone(), |v| v.span());
            report.error(
                "empty-actions",
                span,
                format!("`actions` {} is empty, so the rule matches nothing; leave it out to match every action", fields.place),
            );
            ok = false;
        }
        Some(list) => {
            for (pattern, span) in list {
                match Glob::parse(&pattern, is_action_name_char, ACTION_NAME_CHARS) {
                    Ok(glob) => {
                        actions.push(glob);
                        action_spans.push(span);
                    }
                    Err(e) => {
                        report.error(
                            "bad-glob",
                            span,
                            format!("action pattern {pattern:?} {}: {e}", fields.place),
                        );
                        ok = false;
                    }
                }
            }
        }
    }

    let mut agents = Vec::new();
    if let Some(list) = fields.strings(report, "agents") {
        if list.is_empty() {
            let span = table.get("agents").map_or(header.clone(), |v| v.span());
            report.error(
                "empty-agents",
                span,
                format!("`agents` {} is empty, so the rule matches nothing; leave it out to match every agent", fields.place),
            );
            ok = false;
        }
        for (pattern, span) in list {
            match Glob::parse(&pattern, is_agent_name_char, AGENT_NAME_CHARS) {
                Ok(glob) => agents.push(glob),
                Err(e) => {
                    report.error(
                        "bad-glob",
                        span,
                        format!("agent pattern {pattern:?} {}: {e}", fields.place),
                    );
                    ok = false;
                }
            }
        }
    } else if table.get("agents").is_some() {
        ok = false;
    }

    let when = match fields.string(report, "when") {
        None => {
            ok &= table.get("when").is_none();
            None
        }
        Some((text, span)) => match compile_condition(report, source, &text, span, &fields.place) {
            Some(c) => Some(c),
            None => {
                ok = false;
                None
            }
        },
    };

    let description = fields.string(report, "description").map(|(d, _)| d);
    let approvers = fields.groups(report, "approvers");
    let approvals = fields.positive_integer(report, "approvals");
    let min_confidence = fields.fraction(report, "min_confidence");
    let sla = fields.duration(report, "sla");
    let on_timeout = fields.on_timeout(report);
    let allow_auto_approve = fields.bool(report, "allow_auto_approve").unwrap_or(false);
    let escalate_to = fields.groups(report, "escalate_to");
    let escalation_sla = fields.duration(report, "escalation_sla");
    let review_sample = fields.fraction(report, "review_sample");

    let (name, name_span) = name?;
    let tier_unknown = tier.is_none();
    let (tier, tier_span) = tier.unwrap_or((Tier::Approve, header.clone()));
    let rule = Rule {
        name,
        description,
        line,
        actions,
        agents,
        when,
        tier,
        approvers,
        approvals: approvals.map(|(n, _)| n),
        min_confidence,
        sla,
        on_timeout: on_timeout.as_ref().map(|(t, _)| *t),
        allow_auto_approve,
        escalate_to,
        escalation_sla,
        review_sample,
    };
    let spans = RuleSpans {
        header,
        name: name_span,
        tier: tier_span,
        actions: action_spans,
        on_timeout: on_timeout.map(|(_, s)| s),
        broken: !ok,
        tier_unknown,
    };
    Some((rule, spans))
}

fn describe_rule(name: &Option<(String, Range<usize>)>, line: usize) -> String {
    match name {
        Some((n, _)) => format!("rule {n:?}"),
        None => format!("the rule at line {line}"),
    }
}

/// The span of a `[[rules]]` header: the entry's span is the header itself for `[[rules]]`
/// tables; for anything else (an inline table) look back for the header line.
fn header_span(source: &str, span: Range<usize>) -> Range<usize> {
    if source
        .get(span.clone())
        .is_some_and(|s| s.starts_with("[["))
    {
        return span;
    }
    let before = &source[..span.start.min(source.len())];
    match before.rfind("[[") {
        Some(start) if source[start..].starts_with("[[") => {
            let end = source[start..]
                .find(']')
                .map_or(start + 2, |e| start + e + 2);
            start..end.min(source.len())
        }
        _ => span.start..span.start,
    }
}

fn compile_condition(
    report: &mut Reporter<'_>,
    source: &str,
    text: &str,
    span: Range<usize>,
    place: &str,
) -> Option<Condition> {
    if text.trim().is_empty() {
        report.error(
            "empty-when",
            span,
            format!("`when` {place} is empty; leave it out to match always"),
        );
        return None;
    }
    let errors = match Condition::compile(text) {
        Ok(condition) => return Some(condition),
        Err(errors) => errors,
    };
    let literal = StringLiteral::locate(source, span.clone(), text);
    for error in errors {
        match error {
            ConditionError::Syntax {
                message,
                line,
                column,
            } => {
                let at = literal.offset_of(text, line, column);
                report.error(
                    "cel-syntax",
                    at..at + 1,
                    format!("syntax error in `when` {place}: {message}"),
                );
            }
            ConditionError::UnknownVariable { name } => {
                let at = literal.offset_of_word(text, &name);
                let help = match did_you_mean(&name, &Variable::NAMES) {
                    Some(s) => format!(
                        "did you mean `{s}`? The variables are: {}",
                        Variable::NAMES.join(", ")
                    ),
                    None => format!("the variables are: {}", Variable::NAMES.join(", ")),
                };
                report.error_with_help(
                    "cel-unknown-variable",
                    at..at + name.len(),
                    format!("`when` {place} uses `{name}`, which is not a variable"),
                    help,
                );
            }
        }
    }
    None
}

/// Maps positions inside a string value back to the file, when the string was written
/// without escapes (then the text in the file is the value itself). Otherwise positions
/// point at the start of the string.
struct StringLiteral {
    start: usize,
    /// Byte offset in the file where the value's text begins, when it is verbatim.
    verbatim_at: Option<usize>,
}

impl StringLiteral {
    fn locate(source: &str, span: Range<usize>, value: &str) -> StringLiteral {
        let raw = source.get(span.clone()).unwrap_or("");
        let verbatim_at = ["\"\"\"\n", "'''\n", "\"\"\"", "'''", "\"", "'"]
            .iter()
            .find(|quote| raw.starts_with(**quote))
            .and_then(|quote| {
                let body = &raw[quote.len()..];
                body.starts_with(value).then_some(span.start + quote.len())
            });
        StringLiteral {
            start: span.start,
            verbatim_at,
        }
    }

    fn offset_of(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(base) = self.verbatim_at else {
            return self.start;
        };
        let line_start: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let in_line = text[line_start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(text.len() - line_start, |(i, _)| i);
        base + line_start + in_line
    }

    fn offset_of_word(&self, text: &str, word: &str) -> usize {
        let Some(base) = self.verbatim_at else {
            return self.start;
        };
        let bytes = text.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let found = text.match_indices(word).find(|(i, _)| {
            let before_ok = *i == 0 || (!is_ident(bytes[i - 1]) && bytes[i - 1] != b'.');
            let after = i + word.len();
            let after_ok = after >= bytes.len() || !is_ident(bytes[after]);
            before_ok && after_ok
        });
        found.map_or(self.start, |(i, _)| base + i)
    }
}
