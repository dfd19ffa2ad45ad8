//! Claude Code's `PreToolUse` hook protocol: the hook input (JSON on stdin) parsed into a
//! `ToolUse`, and a `Verdict` written as the documented decision JSON
//! (`hookSpecificOutput.permissionDecision` allow / deny / ask). Claude Code treats a hook
//! that exits with any code but 0 and 2 as a non-blocking error and runs the tool: so every
//! failure here is a `deny` on stdout (exit 0), or exit 2 when not even that can be said.

use serde_json::{Map, Value, json};

use crate::claude::{ToolUse, Verdict};

/// Parses the hook's stdin; the error says what is wrong with it.
pub fn parse_input(text: &str) -> Result<ToolUse, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the hook input is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or("the hook input must be a JSON object")?;
    match object.get("hook_event_name").and_then(Value::as_str) {
        Some("PreToolUse") => {}
        Some(other) => {
            return Err(format!(
                "this hook answers PreToolUse events; it was called for {other:?} (check the hook's event in settings.json)"
            ));
        }
        None => return Err("the hook input has no \"hook_event_name\"".into()),
    }
    let tool_name = match object.get("tool_name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(other) => {
            return Err(format!(
                "\"tool_name\" must be a non-empty string, found {other}"
            ));
        }
        None => return Err("the hook input has no \"tool_name\"".into()),
    };
    let input = match object.get("tool_input") {
        Some(Value::Object(input)) => input.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(other) => return Err(format!("\"tool_input\" must be an object, found {other}")),
    };
    let text_field = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(ToolUse {
        tool_name,
        input,
        tool_use_id: text_field("tool_use_id"),
        session_id: text_field("session_id"),
        cwd: text_field("cwd"),
    })
}

/// The hook's stdout for a verdict.
pub fn output(verdict: &Verdict) -> Value {
    let (decision, reason, updated) = match verdict {
        Verdict::Allow {
            input,
            modified,
            reason,
        } => ("allow", reason.clone(), modified.then(|| input.clone())),
        Verdict::Deny(reason) => ("deny", reason.clone(), None),
        Verdict::Pending(reason) => ("ask", reason.clone(), None),
    };
    let mut specific = json!({
        "hookEventName": "PreToolUse",
        "permissionDecision": decision,
        "permissionDecisionReason": reason,
    });
    if let Some(input) = updated {
        specific["updatedInput"] = Value::Object(input);
    }
    json!({ "hookSpecificOutput": specific })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let cases = [
            (
                "",
                "the hook input is not JSON: EOF while parsing a value at line 1 column 0",
            ),
            ("[]", "the hook input must be a JSON object"),
            ("{}", "the hook input has no \"hook_event_name\""),
            (
                r#"{"hook_event_name":"PostToolUse"}"#,
                "this hook answers PreToolUse events; it was called for \"PostToolUse\" (check the hook's event in settings.json)",
            ),
            (
                r#"{"hook_event_name":"PreToolUse"}"#,
                "the hook input has no \"tool_name\"",
            ),
            (
                r#"{"hook_event_name":"PreToolUse","tool_name":3}"#,
                "\"tool_name\" must be a non-empty string, found 3",
            ),
            (
                r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":"ls"}"#,
                "\"tool_input\" must be an object, found \"ls\"",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_input(input).unwrap_err(), expected, "for {input:?}");
        }
        let ok = parse_input(r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"t1"}"#).unwrap();
        assert_eq!(ok.tool_name, "Bash");
        assert_eq!(ok.tool_use_id.as_deref(), Some("t1"));
    }

    #[test]
    fn outputs() {
        let mut input = Map::new();
        input.insert("command".into(), json!("ls -la"));
        expect_test::expect![[r#"{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"allow","permissionDecisionReason":"ok","updatedInput":{"command":"ls -la"}}}"#]]
            .assert_eq(&output(&Verdict::Allow { input, modified: true, reason: "ok".into() }).to_string());
        expect_test::expect![[r#"{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"ask","permissionDecisionReason":"later"}}"#]]
            .assert_eq(&output(&Verdict::Pending("later".into())).to_string());
    }
}
