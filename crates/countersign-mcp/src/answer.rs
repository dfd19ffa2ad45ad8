//! What the gate tells the model when it does not run a tool, in words: each answer is an
//! `isError` tool result (MCP: execution errors go to the model so that it can correct
//! itself; protocol errors often do not reach it), saying which of the outcomes happened
//! and what to do about it.

use serde_json::{Map, Value, json};

use crate::gateway::{Action, GatewayError};

/// A tool result with one text block, marked as an error.
pub fn error_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// The call is waiting for a person and the client cannot wait longer.
pub fn pending(action_name: &str, action: &Action, waited_seconds: u64) -> Value {
    error_result(format!(
        "Not run yet: {action_name} is waiting for approval by a person (Countersign action {id}, \
         waited {waited_seconds} s). Retry the identical call (same tool, same arguments) \
         later: it re-attaches to the same approval and runs once it is approved. Do not change \
         the arguments unless you mean to ask for a new approval.",
        id = action.id
    ))
}

/// The action ended without running: rejected by a person, expired, denied or withdrawn.
pub fn refused(action_name: &str, action: &Action) -> Value {
    let text = match action.status.as_str() {
        "rejected" => {
            let decision = action
                .decisions
                .iter()
                .rev()
                .find(|d| d.verdict == "reject");
            let who = decision.map_or("a reviewer", |d| d.reviewer.as_str());
            let why = decision
                .and_then(|d| d.reason.as_deref())
                .unwrap_or("no reason given");
            format!(
                "Not run: {who} rejected {action_name} (Countersign action {id}). Reason: \
                 {why}. Do not retry the same call unchanged; address the reason or ask the user.",
                id = action.id
            )
        }
        "expired" => format!(
            "Not run: {action_name} expired unanswered — no one approved it before its review \
             deadline (Countersign action {id}). Retrying asks for approval again.",
            id = action.id
        ),
        "denied" => format!(
            "Not run: the policy denies {action_name} (Countersign action {id}): {reason}. Do \
             not retry; this call is not allowed.",
            id = action.id,
            reason = action.reason
        ),
        "cancelled" => format!(
            "Not run: {action_name} was withdrawn before anyone decided (Countersign action {id}).",
            id = action.id
        ),
        other => format!(
            "Not run: {action_name} is {other} (Countersign action {id}).",
            id = action.id
        ),
    };
    error_result(text)
}

/// Countersign could not be asked, or answered something unusable: the tool is not run.
pub fn gateway_failed(action_name: &str, error: &GatewayError) -> Value {
    error_result(format!(
        "Not run: {action_name} needs Countersign's approval and Countersign could not give an \
         answer ({error}). Nothing was executed; try again once the gateway is back."
    ))
}

/// The reviewer's changed arguments do not fit the tool.
pub fn bad_modification(action_name: &str, action: &Action, problem: &str) -> Value {
    error_result(format!(
        "Not run: a reviewer approved {action_name} with changed arguments (Countersign action \
         {id}), but they do not fit the tool's input schema: {problem}. Nothing was executed.",
        id = action.id
    ))
}

/// Tells the model, after a result, that the call ran with the reviewer's arguments.
pub fn modified_note(action: &Action) -> Value {
    let who = action
        .decisions
        .iter()
        .rev()
        .find(|d| d.verdict == "modify")
        .map_or("a reviewer", |d| d.reviewer.as_str());
    json!({
        "type": "text",
        "text": format!(
            "Note: {who} changed the arguments before approving (Countersign action {id}); the \
             tool ran with {args} instead of {original}.",
            id = action.id,
            args = Value::Object(action.args.clone()),
            original = action
                .original_args
                .clone()
                .map_or(Value::Null, Value::Object),
        )
    })
}

/// Appends `block` to a result's `content` (creating it if absent), leaving
/// `structuredContent` and everything else as the server sent them.
pub fn append_content(result: &mut Map<String, Value>, block: Value) {
    match result.get_mut("content") {
        Some(Value::Array(content)) => content.push(block),
        _ => {
            result.insert("content".into(), json!([block]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Decision;

    fn action(status: &str) -> Action {
        Action {
            id: "a1".into(),
            status: status.into(),
            tier: "approve".into(),
            rule: None,
            reason: "rule \"no deletes\"".into(),
            args: Map::new(),
            original_args: None,
            decisions: vec![Decision {
                reviewer: "rita".into(),
                verdict: "reject".into(),
                reason: Some("wrong customer".into()),
            }],
            outcome: None,
        }
    }

    #[test]
    fn texts() {
        let text = |v: Value| v["content"][0]["text"].as_str().unwrap().to_owned();
        expect_test::expect![[r#"Not run: rita rejected mcp.files.delete (Countersign action a1). Reason: wrong customer. Do not retry the same call unchanged; address the reason or ask the user."#]]
            .assert_eq(&text(refused("mcp.files.delete", &action("rejected"))));
        expect_test::expect![[r#"Not run: mcp.files.delete expired unanswered — no one approved it before its review deadline (Countersign action a1). Retrying asks for approval again."#]]
            .assert_eq(&text(refused("mcp.files.delete", &action("expired"))));
        expect_test::expect![[r#"Not run yet: mcp.files.delete is waiting for approval by a person (Countersign action a1, waited 3 s). Retry the identical call (same tool, same arguments) later: it re-attaches to the same approval and runs once it is approved. Do not change the arguments unless you mean to ask for a new approval."#]]
            .assert_eq(&text(pending("mcp.files.delete", &action("pending"), 3)));
    }
}
