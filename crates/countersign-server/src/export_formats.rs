//! The lines of `GET /v1/export`: one training or evaluation case as JSON, in the shape
//! the consumer reads. The case (its label, the reviewer and their words, the accepted
//! arguments) is `countersign_core::learning`'s; only the spelling is decided here.
//!
//! - `jsonl`: everything about the case, for whoever builds their own prompts.
//! - `openai-chat`: OpenAI's chat fine-tuning format: `messages` (system, user, assistant)
//!   and `tools`. The assistant turn is the call a person accepted (the reviewer's
//!   arguments, for a modification) or, for a rejected or flagged action, a refusal in the
//!   reviewer's words. Function names allow only `[A-Za-z0-9_-]{1,64}`, so an action name's
//!   other characters become `_`; the original name is in the tool's description.
//! - `preference`: one pair per line in the conversational shape preference-tuning
//!   libraries (TRL's DPO trainer, for one) read: `prompt` (system and user turns),
//!   `chosen` (what a person accepted, or the refusal) and `rejected` (what the agent
//!   proposed).
//! - `eval`: a test case for the agent's evaluation suite: the situation, the call it
//!   proposed, and what a person expects instead — a call, or "must not" with the reason.
//!
//! Expired actions have no judgment to learn from: only `jsonl` carries them (the route
//! refuses them for the other formats).

use countersign_core::learning::{Case, Label};
use countersign_store::{ActionRecord, ReviewState};
use serde_json::{Map, Value, json};

use crate::stats_params::ExportFormat;
use crate::views::DecisionView;

/// One line for `record`'s `case`, or `None` when the format has nothing to say about it
/// (an expired action outside `jsonl`, a modification that changed nothing).
pub fn line(format: ExportFormat, record: &ActionRecord, case: &Case<'_>) -> Option<Value> {
    match format {
        ExportFormat::Jsonl => Some(jsonl(record, case)),
        _ if !case.label.is_judgment() => None,
        ExportFormat::OpenaiChat => Some(json!({
            "messages": [system(record), user(record), accepted(record, case)],
            "tools": [tool(record)],
        })),
        ExportFormat::Preference => {
            let chosen = accepted(record, case);
            let rejected = proposed_call(record, case.proposed_args);
            (chosen != rejected).then(|| {
                json!({
                    "prompt": [system(record), user(record)],
                    "chosen": [chosen],
                    "rejected": [rejected],
                })
            })
        }
        ExportFormat::Eval => Some(eval(record, case)),
    }
}

fn jsonl(record: &ActionRecord, case: &Case<'_>) -> Value {
    let gate = &record.gate;
    json!({
        "id": record.id,
        "label": case.label.as_str(),
        "action": gate.action.as_str(),
        "agent": gate.agent.as_str(),
        "rule": record.rule,
        "tier": gate.tier.as_str(),
        "classification_reason": record.reason,
        "created_at": record.created_at,
        "decided_at": gate.decided_at,
        "reasoning": record.reasoning,
        "context": record.context,
        "confidence": record.confidence,
        "proposed_args": case.proposed_args,
        "accepted_args": case.accepted_args,
        "judged_by": case.judged_by.map(|n| n.as_str()),
        "reviewer_reason": case.reason,
        "decisions": gate.decisions.iter().map(DecisionView::from).collect::<Vec<_>>(),
        "post_hoc_review": match &gate.review {
            ReviewState::Reviewed(r) => json!({
                "reviewer": r.reviewer.as_str(),
                "verdict": r.verdict.as_str(),
                "note": r.note,
                "at": r.at,
            }),
            _ => Value::Null,
        },
    })
}

/// An action name as a function name: `[A-Za-z0-9_-]`, at most 64 characters.
pub fn function_name(action: &str) -> String {
    action
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

fn system(record: &ActionRecord) -> Value {
    json!({
        "role": "system",
        "content": format!(
            "You are the agent {:?}. You act by calling tools; a person reviews risky calls before they run.",
            record.gate.agent.as_str()
        ),
    })
}

/// The situation the agent saw, as far as it told Countersign: its context and its own
/// account of why it wanted to act.
fn user(record: &ActionRecord) -> Value {
    let context = if record.context.is_empty() {
        "(none given)".to_owned()
    } else {
        Value::Object(record.context.clone()).to_string()
    };
    let mut content = format!("Context: {context}");
    if let Some(reasoning) = &record.reasoning {
        content.push_str(&format!("\nTask: {reasoning}"));
    }
    json!({"role": "user", "content": content})
}

fn tool(record: &ActionRecord) -> Value {
    let action = record.gate.action.as_str();
    json!({
        "type": "function",
        "function": {
            "name": function_name(action),
            "description": format!("The action {action}"),
            "parameters": {"type": "object"},
        },
    })
}

/// The assistant turn calling the action with `args`.
fn proposed_call(record: &ActionRecord, args: &Map<String, Value>) -> Value {
    json!({
        "role": "assistant",
        "tool_calls": [{
            "id": format!("call_{}", record.id),
            "type": "function",
            "function": {
                "name": function_name(record.gate.action.as_str()),
                "arguments": Value::Object(args.clone()).to_string(),
            },
        }],
    })
}

/// The assistant turn a person accepted: the corrected call, or a refusal.
fn accepted(record: &ActionRecord, case: &Case<'_>) -> Value {
    match case.accepted_args {
        Some(args) => proposed_call(record, args),
        None => json!({"role": "assistant", "content": refusal(record, case)}),
    }
}

fn refusal(record: &ActionRecord, case: &Case<'_>) -> String {
    let action = record.gate.action.as_str();
    match case.reason {
        Some(reason) => format!("I should not call {action} here: {reason}"),
        None => format!("I should not call {action} here."),
    }
}

fn eval(record: &ActionRecord, case: &Case<'_>) -> Value {
    let action = record.gate.action.as_str();
    let expected = match (case.label, case.accepted_args) {
        (Label::Modified, Some(args)) => json!({
            "kind": "call",
            "action": action,
            "args": args,
            "reason": case.reason,
        }),
        _ => json!({
            "kind": "must_not",
            "action": action,
            "reason": case.reason,
        }),
    };
    json!({
        "id": record.id,
        "label": case.label.as_str(),
        "situation": {
            "agent": record.gate.agent.as_str(),
            "reasoning": record.reasoning,
            "context": record.context,
        },
        "proposed": {"action": action, "args": case.proposed_args},
        "expected": expected,
        "judged_by": case.judged_by.map(|n| n.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_fit_the_chat_format() {
        let cases = [
            ("refund.create", "refund_create"),
            ("github:issues/create", "github_issues_create"),
            ("a-b_c", "a-b_c"),
        ];
        for (action, name) in cases {
            assert_eq!(function_name(action), name);
        }
        assert_eq!(function_name(&"x".repeat(200)).len(), 64);
    }
}
