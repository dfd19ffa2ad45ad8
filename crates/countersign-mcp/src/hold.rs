//! Holding a call while a person decides: progress notifications on the client's token,
//! the client's wait budget, the client's own user asked with a form where it can be, and
//! the client's cancellation, raced against the gateway's long-poll.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::gate::{Gate, Notify, ToolCall, cancelled};
use crate::gateway::{Action, GatewayError};

/// How a hold ended.
pub(crate) enum Held {
    Decided(Action, u64),
    StillPending(Action, u64),
    Failed(GatewayError),
    Withdrawn(String),
}

impl Gate {
    pub(crate) async fn hold(
        &self,
        call: &ToolCall,
        action_name: &str,
        action: Action,
        budget: Duration,
        notify: &impl Notify,
        cancel: &mut watch::Receiver<bool>,
    ) -> Held {
        notify.holding();
        let start = Instant::now();
        let mut sent = 0;
        let send_progress = |sent: &mut u64| {
            if let Some(token) = &call.progress_token {
                *sent += 1;
                notify.notify(json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {
                        "progressToken": token,
                        "progress": *sent,
                        "message": format!(
                            "Waiting for a person to approve {action_name} (Countersign action {}; countersign approve {})",
                            action.id, action.id
                        ),
                    }
                }));
            }
        };
        send_progress(&mut sent);
        // The client's user may answer in the client, if a user token is configured and the
        // client can show a form; reviewers elsewhere may answer first.
        let ask = self.user.as_ref().map(|_| {
            notify.elicit(json!({
                "message": format!(
                    "Allow {action_name} with {}? (Countersign action {})",
                    Value::Object(call.arguments.clone()),
                    action.id
                ),
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "decision": {"type": "string", "enum": ["approve", "reject"],
                                     "description": "approve runs the tool; reject tells the agent why not"},
                        "reason": {"type": "string", "description": "why (the agent sees it on a rejection)"}
                    },
                    "required": ["decision"]
                }
            }))
        });
        let mut ask = std::pin::pin!(async move {
            match ask {
                Some(ask) => ask.await,
                None => std::future::pending().await,
            }
        });
        let mut asked = false;
        loop {
            let remaining = budget.saturating_sub(start.elapsed());
            let seconds = remaining.min(self.config.progress_every).as_secs();
            if seconds == 0 {
                return Held::StillPending(action, start.elapsed().as_secs());
            }
            tokio::select! {
                answer = self.gateway.wait(&action.id, seconds) => match answer {
                    Ok(now) if now.status != "pending" => return Held::Decided(now, sent),
                    Ok(_) => send_progress(&mut sent),
                    Err(e) => return Held::Failed(e),
                },
                () = cancelled(cancel) => return Held::Withdrawn(action.id.clone()),
                reply = &mut ask, if !asked => {
                    asked = true;
                    self.answer_in_client(&action.id, reply).await;
                }
            }
        }
    }

    /// Files the user's answer to the form as that user's decision. Only an explicit choice
    /// decides: "decline" and "cancel" leave the call to other reviewers (some clients
    /// decline every form unseen: research mcp.md §1.7). A decision the policy does not let
    /// this user make is refused by the gateway and changes nothing.
    async fn answer_in_client(&self, id: &str, reply: Option<Value>) {
        tracing::debug!(action = %id, ?reply, "the client's user answered");
        let (Some(user), Some(reply)) = (&self.user, reply) else {
            return;
        };
        if reply["action"] != "accept" {
            return;
        }
        let reason = reply["content"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty());
        let body = match reply["content"]["decision"].as_str() {
            Some("approve") => json!({"verdict": "approve", "reason": reason}),
            Some("reject") => json!({
                "verdict": "reject",
                "reason": reason.unwrap_or("rejected in the MCP client"),
            }),
            _ => return,
        };
        if let Err(e) = user.decide(id, &body).await {
            tracing::warn!(action = %id, error = %e, "the answer given in the client was not accepted");
        }
    }
}
