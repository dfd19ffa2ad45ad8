//! Typed access to the keys of one TOML table, reporting a wrong type, a bad value or an
//! unknown name with its position.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::duration::ReviewDuration;
use crate::policy::diagnostic::{Reporter, did_you_mean};
use crate::policy::{OnTimeout, Severity};
use crate::sla::remind::RemindAt;
use crate::tier::Tier;

/// Typed access to the keys of one table, reporting wrong types.
pub(super) struct Fields<'t, 'i> {
    pub table: &'t DeTable<'i>,
    pub place: String,
}

impl<'t, 'i> Fields<'t, 'i> {
    pub fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    pub fn wrong_type(
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

    pub fn string(&self, report: &mut Reporter<'_>, key: &str) -> Option<(String, Range<usize>)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            _ => {
                self.wrong_type(report, key, value, "a string");
                None
            }
        }
    }

    pub fn bool(&self, report: &mut Reporter<'_>, key: &str) -> Option<bool> {
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
    pub fn strings(
        &self,
        report: &mut Reporter<'_>,
        key: &str,
    ) -> Option<Vec<(String, Range<usize>)>> {
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
    pub fn fraction(&self, report: &mut Reporter<'_>, key: &str) -> Option<f64> {
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

    pub fn positive_integer(
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

    pub fn tier(&self, report: &mut Reporter<'_>, key: &str) -> Option<(Tier, Range<usize>)> {
        let (text, span) = self.string(report, key)?;
        match text.parse::<Tier>() {
            Ok(tier) => Some((tier, span)),
            Err(e) => {
                let names: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
                let help = did_you_mean(&text, &names).map(|s| format!("did you mean \"{s}\"?"));
                report.push(
                    Severity::Error,
                    "unknown-tier",
                    span,
                    format!("`{key}` {}: {e}", self.place),
                    help,
                );
                None
            }
        }
    }

    pub fn on_timeout(&self, report: &mut Reporter<'_>) -> Option<(OnTimeout, Range<usize>)> {
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

    pub fn duration(&self, report: &mut Reporter<'_>, key: &str) -> Option<ReviewDuration> {
        let (text, span) = self.string(report, key)?;
        match text.parse::<ReviewDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                report.error("bad-duration", span, format!("`{key}` {}: {e}", self.place));
                None
            }
        }
    }

    /// `remind_at`: percentages of a stage or durations before its deadline.
    pub fn remind_at(&self, report: &mut Reporter<'_>) -> Option<Vec<RemindAt>> {
        let mut out = Vec::new();
        for (text, span) in self.strings(report, "remind_at")? {
            match text.parse::<RemindAt>() {
                Ok(point) => out.push(point),
                Err(e) => report.error(
                    "bad-reminder",
                    span,
                    format!("`remind_at` {}: {e}", self.place),
                ),
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    /// Approver group names.
    /// Group names, folded to lowercase like every name (`Finance` is `finance`).
    pub fn groups(&self, report: &mut Reporter<'_>, key: &str) -> Vec<crate::name::Name> {
        let mut out = Vec::new();
        for (group, span) in self.strings(report, key).unwrap_or_default() {
            match crate::name::Name::parse(&group) {
                Ok(name) => {
                    if !out.contains(&name) {
                        out.push(name);
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

pub(super) fn raw_value(value: &Spanned<DeValue<'_>>) -> String {
    match value.get_ref() {
        DeValue::Float(f) => f.as_str().to_owned(),
        DeValue::Integer(i) => i.as_str().to_owned(),
        other => other.type_str().to_owned(),
    }
}
