//! `[defaults]` and each `[[rules]]` entry, read into [`Defaults`] and [`Rule`] with the
//! spans that later checks point at.

use std::ops::Range;

use toml::de::DeTable;

use super::condition::compile_condition;
use super::fields::Fields;
use super::{DEFAULT_KEYS, DefaultSpans, RULE_KEYS, RuleSpans, unknown_keys};
use crate::action::{ACTION_NAME_CHARS, AGENT_NAME_CHARS, is_action_name_char, is_agent_name_char};
use crate::glob::Glob;
use crate::policy::diagnostic::Reporter;
use crate::policy::{Defaults, Rule};
use crate::tier::Tier;

pub(super) fn parse_defaults(
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
    defaults.remind_at = fields.remind_at(report).unwrap_or_default();
    (defaults, spans)
}

pub(super) fn parse_rule(
    report: &mut Reporter<'_>,
    source: &str,
    table: &DeTable<'_>,
    span: Range<usize>,
    had_syntax_errors: bool,
) -> Option<(Rule, RuleSpans)> {
    let header = header_span(source, span.clone());
    let line = report.index().position(header.start).0;
    let entry = Entry {
        table,
        header: header.clone(),
        line,
        had_syntax_errors,
    };
    let (name, fields) = entry.name(report);
    let tier = entry.tier(report, &fields, &name);
    let actions = entry.actions(report, &fields);
    let agents = entry.agents(report, &fields);
    let when = entry.when(report, source, &fields);
    let ok =
        name.is_some() && tier.is_some() && actions.is_some() && agents.is_some() && when.is_some();

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
    let remind_at = fields.remind_at(report);

    let (name, name_span) = name?;
    let tier_unknown = tier.is_none();
    let (tier, tier_span) = tier.unwrap_or((Tier::Approve, header.clone()));
    let (actions, action_spans) = actions.unwrap_or_default();
    let rule = Rule {
        name,
        description,
        line,
        actions,
        agents: agents.unwrap_or_default(),
        when: when.flatten(),
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
        remind_at,
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

/// One `[[rules]]` entry being read. Each part returns `None` when it is broken (the
/// problem is reported), so that the policy is refused while later parts are still checked.
struct Entry<'t, 'i> {
    table: &'t DeTable<'i>,
    header: Range<usize>,
    line: usize,
    had_syntax_errors: bool,
}

type Named = Option<(String, Range<usize>)>;

impl<'t, 'i> Entry<'t, 'i> {
    /// The rule's name, and typed access to its keys (whose messages name the rule).
    fn name(&self, report: &mut Reporter<'_>) -> (Named, Fields<'t, 'i>) {
        let provisional = Fields {
            table: self.table,
            place: format!("in the rule at line {}", self.line),
        };
        let name = provisional.string(report, "name");
        let place = match &name {
            Some((n, _)) => format!("in rule {n:?}"),
            None => provisional.place.clone(),
        };
        unknown_keys(report, self.table, RULE_KEYS, &place);
        let fields = Fields {
            table: self.table,
            place,
        };
        let name = match name {
            Some((n, span)) if !n.trim().is_empty() => Some((n, span)),
            Some((_, span)) => {
                report.error("empty-name", span, "a rule's `name` must not be empty");
                None
            }
            None => {
                if self.table.get("name").is_none() && !self.had_syntax_errors {
                    report.error_with_help(
                        "missing-name",
                        self.header.clone(),
                        format!("the rule at line {} has no `name`", self.line),
                        "every rule needs a unique name: reviewers and the audit log show it",
                    );
                }
                None
            }
        };
        (name, fields)
    }

    fn tier(
        &self,
        report: &mut Reporter<'_>,
        fields: &Fields<'_, '_>,
        name: &Named,
    ) -> Option<(Tier, Range<usize>)> {
        let tier = fields.tier(report, "tier");
        if tier.is_none() && self.table.get("tier").is_none() && !self.had_syntax_errors {
            report.error(
                "missing-tier",
                self.header.clone(),
                format!(
                    "{} has no `tier` (one of auto, logged, approve, confirm, deny)",
                    describe_rule(name, self.line)
                ),
            );
        }
        tier
    }

    /// The action patterns and where each is written (absent: every action).
    fn actions(
        &self,
        report: &mut Reporter<'_>,
        fields: &Fields<'_, '_>,
    ) -> Option<(Vec<Glob>, Vec<Range<usize>>)> {
        let list = match fields.strings(report, "actions") {
            None if self.table.get("actions").is_none() => {
                let any =
                    Glob::parse("*", is_action_name_char, ACTION_NAME_CHARS).expect("* is valid");
                return Some((vec![any], vec![self.header.clone()]));
            }
            None => return None,
            Some(list) => list,
        };
        if list.is_empty() {
            let span = self
                .table
                .get("actions")
                .map_or(self.header.clone(), |v| v.span());
            report.error(
                "empty-actions",
                span,
                format!("`actions` {} is empty, so the rule matches nothing; leave it out to match every action", fields.place),
            );
            return None;
        }
        let mut ok = true;
        let mut actions = Vec::new();
        let mut spans = Vec::new();
        for (pattern, span) in list {
            match Glob::parse(&pattern, is_action_name_char, ACTION_NAME_CHARS) {
                Ok(glob) => {
                    actions.push(glob);
                    spans.push(span);
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
        ok.then_some((actions, spans))
    }

    /// The agent patterns (empty: any agent).
    fn agents(&self, report: &mut Reporter<'_>, fields: &Fields<'_, '_>) -> Option<Vec<Glob>> {
        let Some(list) = fields.strings(report, "agents") else {
            return self.table.get("agents").is_none().then(Vec::new);
        };
        let mut ok = true;
        if list.is_empty() {
            let span = self
                .table
                .get("agents")
                .map_or(self.header.clone(), |v| v.span());
            report.error(
                "empty-agents",
                span,
                format!("`agents` {} is empty, so the rule matches nothing; leave it out to match every agent", fields.place),
            );
            ok = false;
        }
        let mut agents = Vec::new();
        for (pattern, span) in list {
            // Agent names are folded to lowercase (they are identities), so are patterns.
            match Glob::parse(
                &pattern.to_ascii_lowercase(),
                is_agent_name_char,
                AGENT_NAME_CHARS,
            ) {
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
        ok.then_some(agents)
    }

    /// The `when` condition: `Some(None)` when there is none.
    fn when(
        &self,
        report: &mut Reporter<'_>,
        source: &str,
        fields: &Fields<'_, '_>,
    ) -> Option<Option<crate::policy::condition::Condition>> {
        match fields.string(report, "when") {
            None => self.table.get("when").is_none().then_some(None),
            Some((text, span)) => {
                compile_condition(report, source, &text, span, &fields.place).map(Some)
            }
        }
    }
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
