//! What Countersign shows in Slack in answer to a click: ephemeral refusals, the message
//! that replaces the original once an action is decided, and the modals that ask for a
//! reason, a confirmation or new arguments.

use countersign_core::notify::status_detail;
use countersign_store::ActionRecord;
use serde_json::{Value, json};

use super::Metadata;
use crate::notify::Notifications;
use crate::notify::slack_message::escape;

pub const REJECT_VIEW: &str = "countersign_reject";
pub const CONFIRM_VIEW: &str = "countersign_confirm";
pub const MODIFY_VIEW: &str = "countersign_modify";

/// A message only the clicking user sees; the original stays as it is.
pub fn refusal(text: &str) -> Value {
    json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": format!("Countersign: {text}"),
    })
}

/// Replaces the original message: the action and how it ended ("approved by rita at 12:04
/// UTC"), without buttons.
pub fn outcome(record: &ActionRecord, notifications: &Notifications) -> Value {
    let gate = &record.gate;
    let headline = format!(
        "{} by {}: {}",
        gate.action,
        gate.agent,
        status_detail(gate, record.created_at)
    );
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("*{}*", escape(&headline, 600))}})];
    if let Some(url) = notifications.action_url(&record.id) {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("<{url}|Open in Countersign>")}]}));
    }
    json!({"replace_original": true, "text": headline, "blocks": blocks})
}

/// A modal submission's answer that shows `text` under the input `block`.
pub fn errors(block: &str, text: &str) -> Value {
    json!({"response_action": "errors", "errors": {block: text}})
}

fn summary(record: &ActionRecord) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
        "`{}` by {}\n```{}```",
        escape(record.gate.action.as_str(), 200),
        escape(record.gate.agent.as_str(), 200),
        escape(&countersign_core::summary::args_summary(&record.gate.args, 200), 300),
    )}})
}

fn input(
    block: &str,
    label: &str,
    multiline: bool,
    initial: Option<&str>,
    optional: bool,
) -> Value {
    let mut element =
        json!({"type": "plain_text_input", "action_id": block, "multiline": multiline});
    if let Some(initial) = initial {
        element["initial_value"] = json!(initial);
    }
    json!({"type": "input", "block_id": block, "optional": optional,
        "label": {"type": "plain_text", "text": label}, "element": element})
}

fn modal(
    callback_id: &str,
    title: &str,
    submit: &str,
    metadata: &Metadata,
    blocks: Vec<Value>,
) -> Value {
    json!({
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": serde_json::to_string(metadata).unwrap_or_default(),
        "blocks": blocks,
    })
}

pub fn reject_modal(record: &ActionRecord, metadata: &Metadata) -> Value {
    modal(
        REJECT_VIEW,
        "Reject",
        "Reject",
        metadata,
        vec![
            summary(record),
            input("reason", "Why? The agent reads this.", true, None, false),
        ],
    )
}

pub fn confirm_modal(record: &ActionRecord, metadata: &Metadata) -> Value {
    modal(
        CONFIRM_VIEW,
        "Confirm approval",
        "Approve",
        metadata,
        vec![
            summary(record),
            input(
                "confirm",
                &format!(
                    "This cannot be undone. Type {} to confirm",
                    record.gate.action
                ),
                false,
                None,
                false,
            ),
            input("reason", "Comment (optional)", true, None, true),
        ],
    )
}

pub fn modify_modal(record: &ActionRecord, metadata: &Metadata) -> Value {
    let args = serde_json::to_string_pretty(&record.gate.args).unwrap_or_else(|_| "{}".into());
    let mut blocks = vec![
        summary(record),
        input(
            "args",
            "Approve these arguments instead (JSON)",
            true,
            Some(&args),
            false,
        ),
        input("reason", "Comment (optional)", true, None, true),
    ];
    if record.gate.tier == countersign_core::Tier::Confirm {
        blocks.push(input(
            "confirm",
            &format!("Type {} to confirm", record.gate.action),
            false,
            None,
            false,
        ));
    }
    modal(
        MODIFY_VIEW,
        "Modify and approve",
        "Approve",
        metadata,
        blocks,
    )
}
