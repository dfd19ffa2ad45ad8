//! How values read on a page: arguments as a folded tree (nested objects closed past the
//! first level, long strings behind "show all"), differences between two argument sets as
//! rows of paths, and times as "12 min left".

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Strings longer than this are shown cut, with the rest behind a disclosure.
const LONG_STRING: usize = 160;
/// Arguments larger than this (as JSON) are flagged as hard to review.
pub const LARGE_ARGS_BYTES: usize = 8 * 1024;
/// Object levels shown open; deeper ones start folded.
const OPEN_DEPTH: usize = 1;

/// One line of an argument tree.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgLine {
    Open {
        key: String,
        summary: String,
        open: bool,
    },
    Close,
    Value {
        key: String,
        text: String,
        class: &'static str,
    },
    Long {
        key: String,
        preview: String,
        full: String,
        chars: usize,
    },
}

#[derive(Template)]
#[template(path = "args.html")]
struct ArgsTree<'a> {
    lines: &'a [ArgLine],
}

/// The tree of `map` as HTML (escaped by the template).
pub fn args_html(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return "<p class=\"muted\">No arguments.</p>".to_owned();
    }
    let mut lines = Vec::new();
    for (key, value) in map {
        push_lines(&mut lines, key.clone(), value, 0);
    }
    ArgsTree { lines: &lines }.render().unwrap_or_default()
}

fn push_lines(lines: &mut Vec<ArgLine>, key: String, value: &Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            lines.push(ArgLine::Open {
                key,
                summary: format!("{{{} field{}}}", map.len(), plural(map.len())),
                open: depth < OPEN_DEPTH,
            });
            for (k, v) in map {
                push_lines(lines, k.clone(), v, depth + 1);
            }
            lines.push(ArgLine::Close);
        }
        Value::Array(items) if !items.is_empty() => {
            lines.push(ArgLine::Open {
                key,
                summary: format!("[{} item{}]", items.len(), plural(items.len())),
                open: depth < OPEN_DEPTH && items.len() <= 20,
            });
            for (i, v) in items.iter().enumerate() {
                push_lines(lines, i.to_string(), v, depth + 1);
            }
            lines.push(ArgLine::Close);
        }
        Value::String(s) if s.chars().count() > LONG_STRING => {
            let preview: String = s.chars().take(LONG_STRING).collect();
            lines.push(ArgLine::Long {
                key,
                preview: format!("{preview}…"),
                full: s.clone(),
                chars: s.chars().count(),
            });
        }
        other => lines.push(ArgLine::Value {
            key,
            text: scalar(other),
            class: match other {
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                Value::Null => "null",
                _ => "empty",
            },
        }),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A warning for arguments too large to review comfortably, or nothing.
pub fn size_warning(map: &Map<String, Value>) -> String {
    let bytes = serde_json::to_string(map).map_or(0, |s| s.len());
    if bytes > LARGE_ARGS_BYTES {
        format!(
            "Hard to review: these arguments are {} KiB of JSON. Look at every part before approving, or reject and ask for something smaller.",
            bytes.div_ceil(1024)
        )
    } else {
        String::new()
    }
}

/// One difference between two argument sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `amount`, `customer.tier`, `items[2]`.
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// `added`, `removed` or `changed`.
    pub kind: &'static str,
}

/// The differences from `before` to `after`, by path, in key order: objects are compared
/// key by key, everything else as a whole.
pub fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_maps("", before, after, &mut changes);
    changes
}

fn diff_maps(
    prefix: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    out: &mut Vec<Change>,
) {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (before.get(key), after.get(key)) {
            (Some(Value::Object(b)), Some(Value::Object(a))) => diff_maps(&path, b, a, out),
            (Some(b), Some(a)) if b == a => {}
            (b, a) => out.push(Change {
                path,
                kind: match (b, a) {
                    (None, _) => "added",
                    (_, None) => "removed",
                    _ => "changed",
                },
                before: b.map(compact),
                after: a.map(compact),
            }),
        }
    }
}

/// A value as compact JSON, cut to a readable length.
fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(299).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffTable<'a> {
    changes: &'a [Change],
    before_label: &'a str,
    after_label: &'a str,
}

/// The differences as an HTML table.
pub fn diff_html(changes: &[Change], before_label: &str, after_label: &str) -> String {
    DiffTable {
        changes,
        before_label,
        after_label,
    }
    .render()
    .unwrap_or_default()
}

/// "12 min left", "2 h 5 min left", "overdue by 3 min".
pub fn time_left(deadline: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(deadline) = deadline else {
        return String::new();
    };
    let seconds = (deadline - now).num_seconds();
    let span = duration_words(seconds.unsigned_abs());
    if seconds >= 0 {
        format!("{span} left")
    } else {
        format!("overdue by {span}")
    }
}

pub fn duration_words(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} d {} h", seconds / 86400, seconds % 86400 / 3600),
    }
}

/// "3 min ago", for past times.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0).unsigned_abs();
    format!("{} ago", duration_words(seconds))
}

/// A time as people read it in a list (UTC, to the second).
pub fn clock(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time for `<time datetime>` and the page's countdowns.
pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn differences_by_path() {
        let changes = diff(
            &map(
                json!({"amount": 2500, "order": "A-1", "customer": {"id": "c_9", "tier": "gold"}, "gone": true}),
            ),
            &map(
                json!({"amount": 250, "order": "A-1", "customer": {"id": "c_9", "tier": "silver"}, "note": "x"}),
            ),
        );
        let rows: Vec<(&str, Option<&str>, Option<&str>, &str)> = changes
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.before.as_deref(),
                    c.after.as_deref(),
                    c.kind,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("amount", Some("2500"), Some("250"), "changed"),
                (
                    "customer.tier",
                    Some("\"gold\""),
                    Some("\"silver\""),
                    "changed"
                ),
                ("gone", Some("true"), None, "removed"),
                ("note", None, Some("\"x\""), "added"),
            ]
        );
        assert!(diff(&map(json!({"a": [1, 2]})), &map(json!({"a": [1, 2]}))).is_empty());
    }

    #[test]
    fn trees_escape_and_fold() {
        let long = "x".repeat(500);
        let html = args_html(&map(
            json!({"to": "<script>alert(1)</script>", "body": long, "deep": {"a": {"b": 1}}}),
        ));
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains("show all 500 characters"), "{html}");
        // The first level is open, deeper levels folded.
        assert_eq!(
            html.matches("<details class=\"node\" open>").count(),
            1,
            "{html}"
        );
        assert_eq!(
            html.matches("<details class=\"node\">").count(),
            1,
            "{html}"
        );
    }

    #[test]
    fn times_in_words() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let cases = [
            (30, "30 s left"),
            (600, "10 min left"),
            (7500, "2 h 5 min left"),
            (-180, "overdue by 3 min"),
            (90000, "1 d 1 h left"),
        ];
        for (offset, expected) in cases {
            assert_eq!(
                time_left(Some(now + chrono::TimeDelta::seconds(offset)), now),
                expected
            );
        }
        assert_eq!(time_left(None, now), "");
    }
}
