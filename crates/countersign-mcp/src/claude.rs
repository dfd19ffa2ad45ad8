//! A coding agent's own tool use (Claude Code's Bash, Edit, Write, and MCP tools as it names
//! them) as a Countersign action `claude-code.<tool>`: submit, wait within a budget, and say
//! allow (with the approved, possibly modified, input), deny (with why), or still pending.
//! Shared by the `PreToolUse` hook and the permission-prompt tool.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::gate::is_action_name;
use crate::gateway::{Action, Gateway, GatewayError};

/// One tool use Claude Code asks about.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUse {
    pub tool_name: String,
    pub input: Map<String, Value>,
    pub tool_use_id: Option<String>,
    pub session_id: Option<String>,
    pub cwd: Option<String>,
}

/// What the gateway said, within the budget.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Run it, with this input (the reviewer's, after a modify).
    Allow {
        input: Map<String, Value>,
        modified: bool,
        reason: String,
    },
    /// Do not run it; the reason is for the model (and the user).
    Deny(String),
    /// Nobody decided within the budget; the action was withdrawn.
    Pending(String),
}

impl ToolUse {
    pub fn action_name(&self) -> Result<String, String> {
        let name = format!("claude-code.{}", self.tool_name);
        if is_action_name(&name) {
            Ok(name)
        } else {
            Err(format!(
                "tool name {:?} cannot be part of a Countersign action name (letters, digits and ._-:/)",
                self.tool_name
            ))
        }
    }

    fn body(&self, action: &str) -> Value {
        let mut context = Map::new();
        for (key, value) in [
            ("session_id", &self.session_id),
            ("cwd", &self.cwd),
            ("tool_use_id", &self.tool_use_id),
        ] {
            if let Some(value) = value {
                context.insert(key.into(), json!(value));
            }
        }
        let mut body = json!({
            "action": action,
            "args": self.input,
            "reasoning": format!("Claude Code wants to use its {} tool", self.tool_name),
            "context": {"claude_code": context},
        });
        // Claude Code asks once per tool use; a key makes a repeated question the same action.
        if let Some(id) = &self.tool_use_id {
            let key: String = format!("claude-code:{id}")
                .chars()
                .filter(|c| (' '..='~').contains(c))
                .take(255)
                .collect();
            body["idempotency_key"] = json!(key);
        }
        body
    }
}

/// Submits the tool use and waits up to `budget` for a decision; `on_wait` is called each
/// time a wait of `every` passes without one (the permission-prompt tool sends progress).
pub async fn decide(
    gateway: &Gateway,
    tool_use: &ToolUse,
    budget: Duration,
    every: Duration,
    mut on_wait: impl FnMut(&Action),
) -> Verdict {
    let action_name = match tool_use.action_name() {
        Ok(name) => name,
        Err(e) => return Verdict::Deny(format!("Countersign: {e}")),
    };
    let unreachable = |e: GatewayError| {
        Verdict::Deny(format!(
            "Countersign could not decide on {action_name}, so it is not allowed: {e}"
        ))
    };
    let mut action = match gateway.submit(&tool_use.body(&action_name)).await {
        Ok(submitted) if submitted.replayed => match gateway.wait(&submitted.action.id, 0).await {
            Ok(action) => action,
            Err(e) => return unreachable(e),
        },
        Ok(submitted) => submitted.action,
        Err(e) => return unreachable(e),
    };
    let start = Instant::now();
    while action.status == "pending" {
        let seconds = budget.saturating_sub(start.elapsed()).min(every).as_secs();
        if seconds == 0 {
            // Claude Code now asks its user instead: the action is withdrawn so that no
            // reviewer approves, later, a call that was settled elsewhere.
            if let Err(e) = gateway.cancel(&action.id).await {
                tracing::warn!(action = %action.id, error = %e, "could not withdraw the action");
            }
            return Verdict::Pending(format!(
                "Countersign action {} ({action_name}) had no decision after {} s; it was withdrawn",
                action.id,
                start.elapsed().as_secs()
            ));
        }
        action = match gateway.wait(&action.id, seconds).await {
            Ok(action) => action,
            Err(e) => return unreachable(e),
        };
        if action.status == "pending" {
            on_wait(&action);
        }
    }
    verdict(&action_name, tool_use, &action)
}

fn verdict(action_name: &str, tool_use: &ToolUse, action: &Action) -> Verdict {
    match action.status.as_str() {
        "allowed" | "approved" => Verdict::Allow {
            modified: action.args != tool_use.input,
            input: action.args.clone(),
            reason: format!(
                "Countersign {} {action_name} (action {}, {})",
                action.status, action.id, action.reason
            ),
        },
        _ => {
            let refused = crate::answer::refused(action_name, action);
            Verdict::Deny(
                refused["content"][0]["text"]
                    .as_str()
                    .unwrap_or("Not run.")
                    .to_owned(),
            )
        }
    }
}
