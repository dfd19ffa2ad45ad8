//! `policy test`: a team's table of cases (a request and the tier and rule it should get),
//! run against a policy so that policy changes are reviewed like code.
//!
//! ```toml
//! [[cases]]
//! name = "big refunds need a lead"
//! action = "refund.create"
//! agent = "support-bot"
//! args = { amount = 2500 }
//! confidence = 0.95
//! tier = "approve"
//! rule = "large refunds"      # "[defaults]" when no rule should match
//! ```

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::Policy;
use super::diagnostic::{Diagnostic, Reporter};
use crate::action::{ActionName, AgentName, Confidence, Hints, ProposedAction};
use crate::tier::Tier;

/// The name `rule` takes in a case when no rule should match.
pub const DEFAULTS_RULE: &str = "[defaults]";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    cases: Vec<Spanned<Case>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: Option<String>,
    action: Spanned<String>,
    agent: Option<Spanned<String>>,
    #[serde(default)]
    args: Option<Spanned<Value>>,
    #[serde(default)]
    context: Option<Spanned<Value>>,
    confidence: Option<Spanned<f64>>,
    #[serde(default)]
    hints: Hints,
    /// When the request happens, for conditions on `now`.
    now: Option<Spanned<String>>,
    tier: Spanned<String>,
    rule: Option<String>,
    /// Text the reason must contain.
    reason_contains: Option<String>,
}

/// One case that did not come out as expected.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseFailure {
    pub name: String,
    pub line: usize,
    /// `(field, expected, actual)`.
    pub differences: Vec<(&'static str, String, String)>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CaseReport {
    pub total: usize,
    pub failures: Vec<CaseFailure>,
}

impl CaseReport {
    pub fn passed(&self) -> usize {
        self.total - self.failures.len()
    }

    /// A diff-style report naming the cases file `path`.
    pub fn render(&self, path: &str) -> String {
        let mut out = String::new();
        for failure in &self.failures {
            let _ = writeln!(out, "FAIL {:?} ({path}:{})", failure.name, failure.line);
            for (field, expected, actual) in &failure.differences {
                let pad = " ".repeat(field.len());
                let _ = writeln!(out, "    {field}: - {expected}");
                let _ = writeln!(out, "    {pad}  + {actual}");
            }
            let _ = writeln!(out, "    reason: {}", failure.reason);
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed",
            self.passed(),
            self.failures.len()
        );
        out
    }
}

/// Runs the cases in `source` against `policy`. `now` is used for cases that do not set
/// their own. Malformed cases files give diagnostics instead of a report.
pub fn run_cases(
    policy: &Policy,
    source: &str,
    now: DateTime<Utc>,
) -> Result<CaseReport, Vec<Diagnostic>> {
    let mut report = Reporter::new(source);
    let file: CasesFile = match toml::from_str(source) {
        Ok(file) => file,
        Err(e) => {
            report.error(
                "cases-syntax",
                e.span().unwrap_or(0..0),
                e.message().trim().to_owned(),
            );
            return Err(report.finish());
        }
    };
    let mut requests = Vec::new();
    for (number, case) in file.cases.iter().enumerate() {
        let line = report.index().position(case.span().start).0;
        if let Some(request) = build_request(&mut report, case.get_ref(), now) {
            let case = case.get_ref();
            let name = case
                .name
                .clone()
                .unwrap_or_else(|| format!("case {} (line {line})", number + 1));
            requests.push((name, line, case, request));
        }
    }
    if report.has_errors() {
        return Err(report.finish());
    }
    let mut failures = Vec::new();
    for (name, line, case, (request, at)) in &requests {
        let classification = policy.classify(request, *at);
        let rule = policy.rule_name(&classification).unwrap_or(DEFAULTS_RULE);
        let reason = policy.reason(&classification);
        let mut differences = Vec::new();
        let expected_tier = case.tier.get_ref();
        if expected_tier != classification.tier.as_str() {
            differences.push((
                "tier",
                expected_tier.clone(),
                classification.tier.to_string(),
            ));
        }
        if let Some(expected_rule) = &case.rule
            && expected_rule != rule
        {
            differences.push(("rule", format!("{expected_rule:?}"), format!("{rule:?}")));
        }
        if let Some(fragment) = &case.reason_contains
            && !reason.contains(fragment.as_str())
        {
            differences.push((
                "reason",
                format!("contains {fragment:?}"),
                format!("{reason:?}"),
            ));
        }
        if !differences.is_empty() {
            failures.push(CaseFailure {
                name: name.clone(),
                line: *line,
                differences,
                reason,
            });
        }
    }
    Ok(CaseReport {
        total: requests.len(),
        failures,
    })
}

fn build_request(
    report: &mut Reporter<'_>,
    case: &Case,
    now: DateTime<Utc>,
) -> Option<(ProposedAction, DateTime<Utc>)> {
    let mut ok = true;
    let action = ActionName::parse(case.action.get_ref())
        .map_err(|e| {
            report.error(
                "bad-action",
                case.action.span(),
                format!("action name: {e}"),
            )
        })
        .ok();
    let agent = match &case.agent {
        None => AgentName::parse("agent").ok(),
        Some(agent) => AgentName::parse(agent.get_ref())
            .map_err(|e| report.error("bad-agent", agent.span(), format!("agent name: {e}")))
            .ok(),
    };
    if let Err(e) = case.tier.get_ref().parse::<Tier>() {
        report.error("unknown-tier", case.tier.span(), format!("`tier`: {e}"));
        ok = false;
    }
    let mut object = |value: &Option<Spanned<Value>>, key: &str| -> Map<String, Value> {
        match value.as_ref().map(|v| (v.get_ref(), v.span())) {
            None => Map::new(),
            Some((Value::Object(map), _)) => map.clone(),
            Some((_, span)) => {
                report.error(
                    "wrong-type",
                    span,
                    format!("`{key}` must be a table, like {{ amount = 5 }}"),
                );
                ok = false;
                Map::new()
            }
        }
    };
    let args = object(&case.args, "args");
    let context = object(&case.context, "context");
    let confidence = match &case.confidence {
        None => None,
        Some(c) => match Confidence::new(*c.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                report.error("out-of-range", c.span(), e.to_string());
                ok = false;
                None
            }
        },
    };
    let at = match &case.now {
        None => now,
        Some(text) => match DateTime::parse_from_rfc3339(text.get_ref()) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                report.error(
                    "bad-time",
                    text.span(),
                    format!("`now` must be an RFC 3339 time like \"2026-11-25T12:00:00Z\": {e}"),
                );
                ok = false;
                now
            }
        },
    };
    let (action, agent) = (action?, agent?);
    ok.then(|| {
        let mut request = ProposedAction::new(action, agent);
        request.args = args;
        request.context = context;
        request.confidence = confidence;
        request.hints = case.hints;
        (request, at)
    })
}
