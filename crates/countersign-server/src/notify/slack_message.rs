//! The Slack message of an event: Block Kit for an incoming webhook, rendered from the
//! event's payload when it is sent (so "time left" is counted then). Pending, reminded and
//! escalated actions get buttons; a click comes back, signed by Slack, to the interactivity
//! endpoint, which applies exactly the API's rules to the person linked to the clicking
//! Slack user. The "Open in Countersign" button is a link to the action's page, where the
//! reviewer signs in: no link decides anything by itself.
//!
//! Everything an agent wrote (arguments, reasoning, context) is escaped for Slack's mrkdwn:
//! an agent must not be able to post `<!channel>` or a disguised link through Countersign.

use chrono::{DateTime, Utc};
use countersign_core::notify::time_left;
use serde_json::{Value, json};

/// `action_id`s of the buttons, as the interactivity endpoint reads them.
pub const APPROVE: &str = "countersign_approve";
pub const REJECT: &str = "countersign_reject";
pub const MODIFY: &str = "countersign_modify";
pub const OPEN: &str = "countersign_open";

/// Escapes text for Slack (`&`, `<`, `>`), and cuts it to `max` characters.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn field(title: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{title}*\n{value}")})
}

/// The message for an event payload.
pub fn message(payload: &Value, now: DateTime<Utc>) -> Value {
    let data = &payload["data"];
    if data["event"] == "graduation_regressed" {
        return regression_message(data);
    }
    let action = &data["action"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let event = text(&data["event"]);
    let open = matches!(event.as_str(), "pending" | "reminder" | "escalated");
    let id = text(&action["id"]);
    let rule = match action["rule"].as_str() {
        Some(rule) => format!("{} (rule “{}”)", text(&action["tier"]), escape(rule, 100)),
        None => format!("{} (policy default)", text(&action["tier"])),
    };
    let mut fields = vec![
        field(
            "Action",
            &format!("`{}`", escape(&text(&action["action"]), 200)),
        ),
        field("Agent", &escape(&text(&action["agent"]), 200)),
        field("Tier", &rule),
    ];
    if open {
        let left = action["deadline"]
            .as_str()
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
            .map(|d| time_left(d.with_timezone(&Utc), now))
            .unwrap_or_else(|| "no deadline".to_owned());
        fields.push(field("Time left", &left));
    } else {
        fields.push(field("Status", &text(&action["status"])));
    }
    let headline = escape(&text(&data["text"]), 500);
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*")}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
            "*Arguments*\n```{}```", escape(&text(&data["args_summary"]), 300)
        )}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
            "*Why it needs a person*\n{}", escape(&text(&action["reason"]), 500)
        )}}),
    ];
    if let Some(reasoning) = action["reasoning"].as_str() {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "*The agent's reasoning*\n{}", escape(reasoning, 800)
            )}}),
        );
    }
    if action["context"].as_object().is_some_and(|c| !c.is_empty()) {
        blocks.push(
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "Context: {}", escape(&text(&data["context_summary"]), 300)
            )}]}),
        );
    }
    if !open {
        blocks.push(
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text":
            escape(&text(&data["status_detail"]), 500)}]}),
        );
    }
    let mut buttons = Vec::new();
    if open {
        buttons.push(
            json!({"type": "button", "action_id": APPROVE, "style": "primary",
            "text": {"type": "plain_text", "text": "Approve"}, "value": id}),
        );
        buttons.push(
            json!({"type": "button", "action_id": REJECT, "style": "danger",
            "text": {"type": "plain_text", "text": "Reject…"}, "value": id}),
        );
        buttons.push(json!({"type": "button", "action_id": MODIFY,
            "text": {"type": "plain_text", "text": "Modify…"}, "value": id}));
    }
    if let Some(url) = data["url"].as_str() {
        buttons.push(json!({"type": "button", "action_id": OPEN,
            "text": {"type": "plain_text", "text": "Open in Countersign"}, "url": url}));
    }
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "block_id": "countersign", "elements": buttons}));
    }
    json!({"text": text(&data["text"]), "blocks": blocks})
}

/// A graduated rule regressed: the evidence and the revert's diff; no buttons but the link
/// (nobody decides a regression here: an operator deploys the reverted policy).
fn regression_message(data: &Value) -> Value {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let headline = escape(&text(&data["text"]), 500);
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(":warning: *{headline}*")}}),
        json!({"type": "section", "fields": [
            field("Rule", &escape(&text(&data["rule"]), 200)),
            field("Action", &format!("`{}`", escape(&text(&data["action"]), 200))),
        ]}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
            "*Evidence*\n{}\n{}", escape(&text(&data["evidence_text"]), 500),
            escape(&text(&data["summary"]), 500)
        )}}),
    ];
    let revert = &data["revert"];
    let diff = match revert["diff"].as_str() {
        Some(diff) => format!("```{}```", escape(diff, 2500)),
        None => format!(
            "the revert could not be drafted: {}",
            escape(revert["error"].as_str().unwrap_or("unknown"), 300)
        ),
    };
    blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
        "*The revert ({} → {}), ready to apply* (`countersign policy suggest` writes it)\n{diff}",
        escape(&text(&revert["from"]), 50),
        escape(&text(&revert["to"]), 50),
    )}}));
    if let Some(url) = data["url"].as_str() {
        blocks.push(
            json!({"type": "actions", "block_id": "countersign", "elements": [
                {"type": "button", "action_id": OPEN,
                 "text": {"type": "plain_text", "text": "Open in Countersign"}, "url": url}
            ]}),
        );
    }
    json!({"text": text(&data["text"]), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_cannot_post_mentions_or_links() {
        assert_eq!(
            escape("<!channel> see <https://evil|here> & pay", 100),
            "&lt;!channel&gt; see &lt;https://evil|here&gt; &amp; pay"
        );
        assert_eq!(escape("abcdef", 3), "abc…");
    }
}
