//! `Mcp-Param-{Name}` headers (protocol 2026-07-28, SEP-2243): a tool may mark arguments
//! with `x-mcp-header` in its `inputSchema`, and every `tools/call` over HTTP mirrors them in
//! headers that intermediaries route on (a server refuses a mismatch with -32020). When a
//! reviewer changes the arguments, the gate recomputes them from the arguments that run.

use base64::Engine as _;
use serde_json::{Map, Value};

/// The headers for `args` under `schema`: (header name, value), for each annotated property
/// whose argument is present and not null.
pub fn headers(schema: &Value, args: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut headers = Vec::new();
    for (property, declaration) in properties {
        let Some(name) = declaration.get("x-mcp-header").and_then(Value::as_str) else {
            continue;
        };
        let value = match args.get(property) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => encode(text),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            // Only primitives may be mirrored; anything else is the server's to refuse.
            Some(other) => encode(&other.to_string()),
        };
        headers.push((format!("mcp-param-{}", name.to_ascii_lowercase()), value));
    }
    headers
}

/// A value as a header field: as is when it is plain visible ASCII without surrounding
/// spaces, otherwise the base64 sentinel.
fn encode(text: &str) -> String {
    let plain = !text.is_empty()
        && text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !text.starts_with(' ')
        && !text.ends_with(' ');
    if plain {
        text.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotated_arguments_become_headers() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "note": {"type": "string", "x-mcp-header": "Note"},
            "absent": {"type": "string", "x-mcp-header": "Absent"},
            "plain": {"type": "string"}
        }});
        let args = json!({"region": "eu-west-1", "count": 3, "note": "café ", "plain": "x"});
        let got = headers(&schema, args.as_object().unwrap());
        assert_eq!(
            got,
            [
                ("mcp-param-count".to_owned(), "3".to_owned()),
                (
                    "mcp-param-note".to_owned(),
                    "=?base64?Y2Fmw6kg?=".to_owned()
                ),
                ("mcp-param-region".to_owned(), "eu-west-1".to_owned()),
            ]
        );
    }
}
