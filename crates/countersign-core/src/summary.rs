//! One-line summaries of an action's arguments, for queues where a reviewer scans many
//! actions at once (`countersign queue`, the web UI's queue): `amount=2500 order="A-1"`.
//! Nested values are shown by shape (`items=[3]`, `customer={…}`) and the line is cut, with
//! an ellipsis, at a width the caller chooses.

use serde_json::{Map, Value};

/// `key=value` pairs by key, at most `width` characters.
pub fn args_summary(args: &Map<String, Value>, width: usize) -> String {
    if args.is_empty() {
        return "(no arguments)".to_owned();
    }
    let mut line = String::new();
    for (key, value) in args {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(key);
        line.push('=');
        line.push_str(&scalar(value));
        if line.chars().count() > width {
            break;
        }
    }
    cut(&line, width)
}

/// A value as it reads on one line: scalars in full (strings quoted, control characters
/// escaped), lists by length, objects by their first keys.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", cut(s, 40)),
        Value::Array(items) => format!("[{}]", items.len()),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(_) => "{…}".to_owned(),
        other => other.to_string(),
    }
}

/// `text` cut to `width` characters, the last one an ellipsis when anything was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries() {
        let cases: &[(Value, usize, &str)] = &[
            (json!({}), 40, "(no arguments)"),
            (
                json!({"amount": 2500, "order": "A-1"}),
                40,
                r#"amount=2500 order="A-1""#,
            ),
            (
                json!({"items": [1, 2, 3], "customer": {"id": 9}, "meta": {}}),
                40,
                "customer={…} items=[3] meta={}",
            ),
            (json!({"note": "two\nlines"}), 40, r#"note="two\nlines""#),
            (json!({"amount": 2500, "order": "A-1"}), 12, "amount=2500…"),
            (json!({"flag": true, "n": null}), 40, "flag=true n=null"),
        ];
        for (args, width, expected) in cases {
            let args = args.as_object().unwrap();
            assert_eq!(args_summary(args, *width), *expected, "{args:?}");
        }
        let long = json!({"text": "x".repeat(100)});
        let line = args_summary(long.as_object().unwrap(), 30);
        assert_eq!(line.chars().count(), 30);
        assert!(line.ends_with('…'));
    }
}
