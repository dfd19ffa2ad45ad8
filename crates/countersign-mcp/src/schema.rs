//! Checks a reviewer's modified arguments against the tool's `inputSchema` before they are
//! forwarded. A subset of JSON Schema 2020-12: the keywords MCP tool schemas use in practice.
//! A schema with a constraining keyword outside the subset (`$ref`, `pattern`, `if`...) is
//! refused rather than half-checked: arguments a person typed must not reach a tool on the
//! strength of a check that skipped part of the schema.

use serde_json::{Map, Value};

/// Keywords that only describe (2020-12 annotations, and `format`, which 2020-12 treats as an
/// annotation by default): they constrain nothing and are skipped.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentMediaType",
    "contentEncoding",
];

/// Checks `value` against `schema`; the error says where and what was expected.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "arguments")
}

fn check(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{at}: the schema allows nothing here")),
        Value::Object(schema) => schema,
        other => return Err(format!("{at}: the tool's schema is not a schema: {other}")),
    };
    for (keyword, rule) in schema {
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        match keyword.as_str() {
            "type" => check_type(rule, value, at)?,
            "enum" => {
                let options = rule.as_array().ok_or(format!("{at}: enum is not a list"))?;
                if !options.iter().any(|o| same(o, value)) {
                    return Err(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "const" if !same(rule, value) => {
                return Err(format!("{at}: must be {rule}, found {value}"));
            }
            "const" => {}
            "properties"
            | "required"
            | "additionalProperties"
            | "minProperties"
            | "maxProperties" => {
                if let Value::Object(object) = value {
                    check_object(keyword, rule, schema, object, at)?;
                }
            }
            "items" | "minItems" | "maxItems" | "uniqueItems" => {
                if let Value::Array(items) = value {
                    check_array(keyword, rule, items, at)?;
                }
            }
            "minLength" | "maxLength" => {
                if let Value::String(text) = value {
                    let length = text.chars().count() as f64;
                    let bound = number(rule, keyword, at)?;
                    if (keyword == "minLength" && length < bound)
                        || (keyword == "maxLength" && length > bound)
                    {
                        return Err(format!("{at}: length {length} breaks {keyword} {bound}"));
                    }
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf" => {
                if let Some(n) = value.as_f64() {
                    check_number(keyword, number(rule, keyword, at)?, n, at)?;
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                let branches = rule
                    .as_array()
                    .ok_or(format!("{at}: {keyword} is not a list"))?;
                let passed = branches
                    .iter()
                    .filter(|b| check(b, value, at).is_ok())
                    .count();
                let ok = match keyword.as_str() {
                    "allOf" => passed == branches.len(),
                    "anyOf" => passed > 0,
                    _ => passed == 1,
                };
                if !ok {
                    return Err(format!("{at}: {value} does not satisfy {keyword} {rule}"));
                }
            }
            other => {
                return Err(format!(
                    "{at}: the tool's schema uses {other:?}, which this proxy cannot check"
                ));
            }
        }
    }
    Ok(())
}

fn check_type(rule: &Value, value: &Value, at: &str) -> Result<(), String> {
    let names: Vec<&str> = match rule {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => return Err(format!("{at}: type is neither a name nor a list")),
    };
    let fits = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        _ => false,
    };
    if names.iter().any(|n| fits(n)) {
        Ok(())
    } else {
        Err(format!(
            "{at}: expected {}, found {value}",
            names.join(" or ")
        ))
    }
}

fn check_object(
    keyword: &str,
    rule: &Value,
    schema: &Map<String, Value>,
    object: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    match keyword {
        "properties" => {
            let properties = rule
                .as_object()
                .ok_or(format!("{at}: properties is not an object"))?;
            for (name, property) in properties {
                if let Some(v) = object.get(name) {
                    check(property, v, &format!("{at}.{name}"))?;
                }
            }
        }
        "required" => {
            for name in rule
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    return Err(format!("{at}: {name:?} is required"));
                }
            }
        }
        "additionalProperties" => {
            let known = schema.get("properties").and_then(Value::as_object);
            for (name, v) in object {
                if known.is_some_and(|k| k.contains_key(name)) {
                    continue;
                }
                check(rule, v, &format!("{at}.{name}"))
                    .map_err(|_| format!("{at}: {name:?} is not a property this tool takes"))?;
            }
        }
        _ => {
            let bound = number(rule, keyword, at)?;
            let count = object.len() as f64;
            if (keyword == "minProperties" && count < bound)
                || (keyword == "maxProperties" && count > bound)
            {
                return Err(format!("{at}: {count} properties break {keyword} {bound}"));
            }
        }
    }
    Ok(())
}

fn check_array(keyword: &str, rule: &Value, items: &[Value], at: &str) -> Result<(), String> {
    match keyword {
        "items" => {
            for (index, item) in items.iter().enumerate() {
                check(rule, item, &format!("{at}[{index}]"))?;
            }
        }
        "uniqueItems" => {
            if rule.as_bool() == Some(true) {
                for (i, a) in items.iter().enumerate() {
                    if items[..i].iter().any(|b| same(a, b)) {
                        return Err(format!("{at}: items must be unique, {a} repeats"));
                    }
                }
            }
        }
        _ => {
            let bound = number(rule, keyword, at)?;
            let count = items.len() as f64;
            if (keyword == "minItems" && count < bound) || (keyword == "maxItems" && count > bound)
            {
                return Err(format!("{at}: {count} items break {keyword} {bound}"));
            }
        }
    }
    Ok(())
}

fn check_number(keyword: &str, bound: f64, n: f64, at: &str) -> Result<(), String> {
    let ok = match keyword {
        "minimum" => n >= bound,
        "maximum" => n <= bound,
        "exclusiveMinimum" => n > bound,
        "exclusiveMaximum" => n < bound,
        _ => bound > 0.0 && (n / bound).fract() == 0.0,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {n} breaks {keyword} {bound}"))
    }
}

fn number(rule: &Value, keyword: &str, at: &str) -> Result<f64, String> {
    rule.as_f64().ok_or(format!(
        "{at}: {keyword} is not a number in the tool's schema"
    ))
}

/// JSON equality where `1` and `1.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cases() {
        let schema = json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "description": "where"},
                "mode": {"enum": ["a", "b"]},
                "count": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            },
            "required": ["path"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        });
        let cases = [
            (json!({"path": "x"}), "ok"),
            (
                json!({"path": "x", "count": 3, "tags": ["a"], "mode": "b"}),
                "ok",
            ),
            (json!({}), r#"arguments: "path" is required"#),
            (
                json!({"path": ""}),
                "arguments.path: length 0 breaks minLength 1",
            ),
            (
                json!({"path": 1}),
                "arguments.path: expected string, found 1",
            ),
            (
                json!({"path": "x", "mode": "c"}),
                r#"arguments.mode: "c" is not one of ["a","b"]"#,
            ),
            (
                json!({"path": "x", "count": 10}),
                "arguments.count: 10 breaks exclusiveMaximum 10",
            ),
            (
                json!({"path": "x", "count": 1.5}),
                "arguments.count: expected integer, found 1.5",
            ),
            (
                json!({"path": "x", "tags": [1]}),
                "arguments.tags[0]: expected string, found 1",
            ),
            (
                json!({"path": "x", "tags": ["a", "b", "c"]}),
                "arguments.tags: 3 items break maxItems 2",
            ),
            (
                json!({"path": "x", "other": 1}),
                r#"arguments: "other" is not a property this tool takes"#,
            ),
        ];
        for (value, expected) in cases {
            let got = match validate(&schema, &value) {
                Ok(()) => "ok".to_owned(),
                Err(e) => e,
            };
            assert_eq!(got, expected, "for {value}");
        }
        let unsupported =
            json!({"type": "object", "properties": {"p": {"type": "string", "pattern": "^a"}}});
        assert_eq!(
            validate(&unsupported, &json!({"p": "a"})).unwrap_err(),
            r#"arguments.p: the tool's schema uses "pattern", which this proxy cannot check"#
        );
    }
}
