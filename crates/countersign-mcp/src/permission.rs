//! Claude Code's permission-prompt tool (`claude -p --permission-prompt-tool
//! mcp__countersign__approve`), served as a minimal stdio MCP server with one tool,
//! `approve`. Claude Code calls it with `{tool_name, input, tool_use_id}` when a tool needs
//! permission, and reads the text of the result as `{"behavior": "allow", "updatedInput":
//! ...}` or `{"behavior": "deny", "message": ...}`. Anything that goes wrong is a deny.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::claude::{ToolUse, Verdict, decide};
use crate::gateway::Gateway;
use crate::jsonrpc::{Frame, INVALID_PARAMS, Kind, error_response, result_response};

/// Protocol revisions this server speaks (all legacy-era: Claude Code initializes).
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const METHOD_NOT_FOUND: i64 = -32601;

/// Serves until stdin closes.
pub async fn serve(gateway: Gateway, hold: Duration, every: Duration) -> std::io::Result<()> {
    let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
                || stdout.flush().await.is_err()
            {
                return;
            }
        }
    });
    let gateway = Arc::new(gateway);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let frame = match Frame::parse(&line) {
            Ok(frame) => frame,
            Err((error, id)) => {
                let _ = out.send(
                    error_response(&id.unwrap_or(Value::Null), error.code(), &error.to_string())
                        .to_string(),
                );
                continue;
            }
        };
        let Kind::Request { id, method } = &frame.kind else {
            continue;
        };
        let answer = match method.as_str() {
            "initialize" => {
                let asked = frame.value["params"]["protocolVersion"].as_str();
                let version = asked
                    .filter(|v| VERSIONS.contains(v))
                    .unwrap_or(VERSIONS[0]);
                result_response(
                    id,
                    json!({
                        "protocolVersion": version,
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "countersign", "version": env!("CARGO_PKG_VERSION")},
                        "instructions": "approve: asks Countersign whether Claude Code may use a tool",
                    }),
                )
            }
            "ping" => result_response(id, json!({})),
            "tools/list" => result_response(id, json!({"tools": [tool()]})),
            "tools/call" => {
                let (id, params) = (id.clone(), frame.params().cloned());
                let (gateway, out) = (gateway.clone(), out.clone());
                tokio::spawn(async move {
                    let answer = call(&gateway, &id, params, hold, every, &out).await;
                    let _ = out.send(answer.to_string());
                });
                continue;
            }
            other => error_response(id, METHOD_NOT_FOUND, &format!("unknown method {other:?}")),
        };
        let _ = out.send(answer.to_string());
    }
    drop(out);
    let _ = writer.await;
    Ok(())
}

fn tool() -> Value {
    json!({
        "name": "approve",
        "description": "Asks Countersign (a human-in-the-loop gateway) whether Claude Code may use a tool, and waits for a person when the policy says so.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "tool_name": {"type": "string"},
                "input": {"type": "object"},
                "tool_use_id": {"type": "string"}
            },
            "required": ["tool_name", "input"]
        },
        "annotations": {"readOnlyHint": false, "destructiveHint": false, "openWorldHint": false}
    })
}

async fn call(
    gateway: &Gateway,
    id: &Value,
    params: Option<Map<String, Value>>,
    hold: Duration,
    every: Duration,
    out: &mpsc::UnboundedSender<String>,
) -> Value {
    let params = params.unwrap_or_default();
    if params.get("name").and_then(Value::as_str) != Some("approve") {
        return error_response(
            id,
            INVALID_PARAMS,
            &format!(
                "Unknown tool: {}",
                params.get("name").unwrap_or(&Value::Null)
            ),
        );
    }
    let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
    let tool_use = match parse_arguments(&arguments) {
        Ok(tool_use) => tool_use,
        Err(message) => return result_response(id, deny(&message)),
    };
    let token = params
        .get("_meta")
        .and_then(|m| m.get("progressToken"))
        .cloned();
    let mut sent = 0u64;
    let verdict = decide(gateway, &tool_use, hold, every, |action| {
        if let Some(token) = &token {
            sent += 1;
            let _ = out.send(
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                    "progressToken": token, "progress": sent,
                    "message": format!("Waiting for a person to approve {} (Countersign action {})", tool_use.tool_name, action.id),
                }})
                .to_string(),
            );
        }
    })
    .await;
    let text = match verdict {
        Verdict::Allow { input, .. } => json!({"behavior": "allow", "updatedInput": input}),
        Verdict::Deny(message) | Verdict::Pending(message) => {
            json!({"behavior": "deny", "message": message})
        }
    };
    result_response(
        id,
        json!({"content": [{"type": "text", "text": text.to_string()}]}),
    )
}

/// The tool's arguments: `tool_name`, `input` (an object) and optionally `tool_use_id`.
pub fn parse_arguments(arguments: &Value) -> Result<ToolUse, String> {
    let tool_name = arguments
        .get("tool_name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("approve needs \"tool_name\", a non-empty string")?;
    let input = match arguments.get("input") {
        Some(Value::Object(input)) => input.clone(),
        _ => return Err("approve needs \"input\", an object".into()),
    };
    Ok(ToolUse {
        tool_name: tool_name.to_owned(),
        input,
        tool_use_id: arguments
            .get("tool_use_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        session_id: None,
        cwd: None,
    })
}

fn deny(message: &str) -> Value {
    let text = json!({"behavior": "deny", "message": format!("Countersign: {message}")});
    json!({"content": [{"type": "text", "text": text.to_string()}]})
}
