//! A canonical JSON encoding (object keys sorted at every level) and the request hash built
//! on it, so that idempotency does not depend on how a client ordered its keys.

use serde_json::Value;

/// The hex SHA-256 of `body` in canonical form: the `body_hash` of an [`crate::Idempotency`].
pub fn request_hash(body: &Value) -> String {
    let mut text = String::new();
    write_canonical(body, &mut text);
    countersign_core::audit::sha256_hex(text.as_bytes())
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":null}}"#).unwrap();
        let b = json!({"a": {"x": null, "y": [1, 2]}, "b": 1});
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&json!({"b": 2})));
    }
}
