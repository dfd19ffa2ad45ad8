//! JSON-RPC 2.0 frames as the relay sees them: each frame is kept as the text it arrived as
//! (forwarded byte for byte), and classified just enough to know whether the gate owns it.

use serde_json::{Map, Value, json};

/// Standard JSON-RPC error codes the gate answers with.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// One frame: its text, its parsed value, and what kind of message it is.
#[derive(Clone, Debug)]
pub struct Frame {
    pub text: String,
    pub value: Value,
    pub kind: Kind,
}

/// What a frame is, by the JSON-RPC rules.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// A request: it has a method and an id, and wants one answer.
    Request { id: Value, method: String },
    /// A notification: a method and no id.
    Notification { method: String },
    /// An answer (`result` or `error`) to the request with this id.
    Response { id: Value },
}

/// Why a line is not a frame the relay can pass on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("JSON-RPC batches were removed in protocol 2025-06-18; send one message a line")]
    Batch,
    #[error("{0}")]
    Invalid(String),
}

impl FrameError {
    /// The JSON-RPC code for answering a request that carried this error.
    pub fn code(&self) -> i64 {
        match self {
            FrameError::NotJson(_) => PARSE_ERROR,
            FrameError::Batch | FrameError::Invalid(_) => INVALID_REQUEST,
        }
    }
}

impl Frame {
    /// Parses one line (or HTTP body) of JSON-RPC. A frame whose `id` is null, a bool, an
    /// object or an array, or that is neither request, notification nor response, is
    /// refused: it cannot be routed, and the relay never guesses.
    pub fn parse(text: &str) -> Result<Frame, (FrameError, Option<Value>)> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| (FrameError::NotJson(e.to_string()), None))?;
        let kind = classify(&value)?;
        Ok(Frame {
            text: text.to_owned(),
            value,
            kind,
        })
    }

    /// The frame built from a value (for frames the gate writes itself).
    pub fn from_value(value: Value) -> Frame {
        let text = value.to_string();
        let kind = classify(&value).unwrap_or(Kind::Notification {
            method: String::new(),
        });
        Frame { text, value, kind }
    }

    /// `params`, when it is an object.
    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.value.get("params").and_then(Value::as_object)
    }
}

fn classify(value: &Value) -> Result<Kind, (FrameError, Option<Value>)> {
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => return Err((FrameError::Batch, None)),
        other => {
            return Err((
                FrameError::Invalid(format!("a JSON-RPC message is an object, found {other}")),
                None,
            ));
        }
    };
    let id = object.get("id").cloned();
    let invalid = |message: String| Err((FrameError::Invalid(message), id.clone()));
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid("\"jsonrpc\" must be \"2.0\"".into());
    }
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return invalid(format!("\"id\" must be a string or an integer, found {id}"));
    }
    match (object.get("method"), id.clone()) {
        (Some(Value::String(method)), Some(id)) => Ok(Kind::Request {
            id,
            method: method.clone(),
        }),
        (Some(Value::String(method)), None) => Ok(Kind::Notification {
            method: method.clone(),
        }),
        (Some(other), _) => invalid(format!("\"method\" must be a string, found {other}")),
        (None, Some(id)) => {
            if object.contains_key("result") == object.contains_key("error") {
                return invalid(
                    "a response carries exactly one of \"result\" and \"error\"".into(),
                );
            }
            Ok(Kind::Response { id })
        }
        (None, None) => invalid("a message needs a \"method\" or an \"id\"".into()),
    }
}

/// A JSON-RPC error answer.
pub fn error_response(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A JSON-RPC result answer.
pub fn result_response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A map key for an id: `1` and `"1"` are different ids.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: &str) {
        let got = match Frame::parse(line) {
            Ok(frame) => format!("{:?}", frame.kind),
            Err((error, id)) => format!("error {}: {error} (id {id:?})", error.code()),
        };
        assert_eq!(got, expected, "for {line}");
    }

    #[test]
    fn frames() {
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"Request { id: Number(1), method: "tools/list" }"#,
        );
        check(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"Notification { method: "notifications/initialized" }"#,
        );
        check(
            r#"{"jsonrpc":"2.0","id":"a","result":{}}"#,
            r#"Response { id: String("a") }"#,
        );
        check(
            "nope",
            "error -32700: not JSON: expected ident at line 1 column 2 (id None)",
        );
        check(
            "[]",
            "error -32600: JSON-RPC batches were removed in protocol 2025-06-18; send one message a line (id None)",
        );
        check(
            "3",
            "error -32600: a JSON-RPC message is an object, found 3 (id None)",
        );
        check(
            r#"{"id":1,"method":"x"}"#,
            r#"error -32600: "jsonrpc" must be "2.0" (id Some(Number(1)))"#,
        );
        check(
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            r#"error -32600: "id" must be a string or an integer, found null (id Some(Null))"#,
        );
        check(
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"error -32600: "id" must be a string or an integer, found 1.5 (id Some(Number(1.5)))"#,
        );
        check(
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"error -32600: "method" must be a string, found 7 (id Some(Number(1)))"#,
        );
        check(
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"error -32600: a response carries exactly one of "result" and "error" (id Some(Number(1)))"#,
        );
        check(
            r#"{"jsonrpc":"2.0"}"#,
            r#"error -32600: a message needs a "method" or an "id" (id None)"#,
        );
    }
}
