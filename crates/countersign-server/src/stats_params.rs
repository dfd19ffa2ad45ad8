//! Query parameters of `/v1/stats` and `/v1/export`, parsed at the edge with the bounds the
//! document states: RFC 3339 times (strictly: what a JSON Schema `date-time` accepts), the
//! grouping, the export format, the list of labels and a rule name.

use std::fmt;

use chrono::{DateTime, Utc};
use countersign_core::learning::Label;
use countersign_core::stats::GroupBy;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

/// An RFC 3339 time with its offset, e.g. `2026-11-25T12:00:00Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` and `Z` in either case: RFC 3339's
/// grammar and no more (chrono alone would also take a space for the `T`).
fn rfc3339_shape(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

impl Timestamp {
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        if !rfc3339_shape(text) {
            return Err(format!(
                "expected an RFC 3339 time like 2026-11-25T12:00:00Z, found {text:?}"
            ));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| Timestamp(t.to_utc()))
            .map_err(|e| format!("{text:?} is not a valid time: {e}"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(D::Error::custom)
    }
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }
}

impl ToSchema for Timestamp {}

/// What statistics are grouped by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = GroupBy)]
pub enum GroupByView {
    #[default]
    Action,
    Agent,
    Rule,
    /// Each reviewer's own decisions, with their approval-fatigue figures.
    Reviewer,
    Tier,
}

impl From<GroupByView> for GroupBy {
    fn from(view: GroupByView) -> GroupBy {
        match view {
            GroupByView::Action => GroupBy::Action,
            GroupByView::Agent => GroupBy::Agent,
            GroupByView::Rule => GroupBy::Rule,
            GroupByView::Reviewer => GroupBy::Reviewer,
            GroupByView::Tier => GroupBy::Tier,
        }
    }
}

/// The shape of each exported line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = ExportFormat)]
pub enum ExportFormat {
    /// Everything about the case: context, reasoning, arguments, decisions, label.
    #[default]
    Jsonl,
    /// Chat fine-tuning (`messages` with system, user and assistant roles; the assistant
    /// turn is the accepted tool call, or the refusal).
    OpenaiChat,
    /// Preference pairs: one prompt, the `chosen` and the `rejected` answer.
    Preference,
    /// Evaluation cases: the situation, the proposed call, what a person expects instead.
    Eval,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::OpenaiChat => "openai-chat",
            ExportFormat::Preference => "preference",
            ExportFormat::Eval => "eval",
        }
    }
}

/// A comma-separated list of labels, e.g. `rejected,modified`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelList(pub Vec<Label>);

/// The pattern of [`LabelList`], from the labels themselves.
pub fn label_list_pattern() -> String {
    let one = format!("({})", Label::NAMES.join("|"));
    format!("^{one}(,{one})*$")
}

impl LabelList {
    pub fn parse(text: &str) -> Result<LabelList, String> {
        let mut labels = Vec::new();
        for part in text.split(',') {
            let label = part
                .parse::<Label>()
                .map_err(|e| format!("verdict {part:?}: {e}"))?;
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        Ok(LabelList(labels))
    }
}

impl<'de> Deserialize<'de> for LabelList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LabelList::parse(&text).map_err(D::Error::custom)
    }
}

impl PartialSchema for LabelList {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(label_list_pattern()))
            .into()
    }
}

impl ToSchema for LabelList {}

/// The longest rule name a filter takes.
pub const MAX_RULE_NAME: usize = 200;

/// A rule's name as the policy spells it (1 to 200 characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleName(pub String);

impl<'de> Deserialize<'de> for RuleName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let length = text.chars().count();
        if length == 0 || length > MAX_RULE_NAME {
            return Err(D::Error::custom(format!(
                "expected a rule name of 1 to {MAX_RULE_NAME} characters, found {length}"
            )));
        }
        Ok(RuleName(text))
    }
}

impl PartialSchema for RuleName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_RULE_NAME))
            .into()
    }
}

impl ToSchema for RuleName {}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_and_nothing_else() {
        // (text, parsed as UTC, or refused)
        let cases: &[(&str, Option<&str>)] = &[
            ("2026-11-25T12:00:00Z", Some("2026-11-25T12:00:00+00:00")),
            ("2026-11-25t12:00:00z", Some("2026-11-25T12:00:00+00:00")),
            (
                "2026-11-25T12:00:00.250+02:00",
                Some("2026-11-25T10:00:00.250+00:00"),
            ),
            ("2026-11-25 12:00:00Z", None),
            ("2026-11-25T12:00:00", None),
            ("2026-11-25", None),
            ("2026-02-30T12:00:00Z", None),
            ("2026-11-25T12:00:00.Z", None),
            ("2026-11-25T12:00:00+0200", None),
            ("yesterday", None),
        ];
        for (text, expected) in cases {
            let got = Timestamp::parse(text).ok().map(|t| t.0.to_rfc3339());
            assert_eq!(got.as_deref(), *expected, "{text}");
        }
    }

    #[test]
    fn label_lists() {
        assert_eq!(
            LabelList::parse("rejected,modified,rejected").unwrap().0,
            [Label::Rejected, Label::Modified]
        );
        assert_eq!(
            LabelList::parse("approved").unwrap_err(),
            r#"verdict "approved": expected one of "rejected", "modified", "flagged", "expired", found "approved""#
        );
        assert!(LabelList::parse("").is_err());
        assert!(LabelList::parse("rejected,").is_err());
        assert_eq!(
            label_list_pattern(),
            "^(rejected|modified|flagged|expired)(,(rejected|modified|flagged|expired))*$"
        );
    }
}
