//! The MCP gating proxy. `countersign mcp` stands between an MCP client and an MCP server:
//! frames are relayed as they are, except that every `tools/call` becomes a Countersign
//! action (`mcp.<server>.<tool>`), classified by the policy in force, held while a person
//! decides, and run (with the approved, possibly modified, arguments) at most once; tools the
//! policy denies are left out of `tools/list`. Also here: the Claude Code `PreToolUse` hook
//! and the permission-prompt tool, which put a coding agent's own tools behind the same policy.
//!
//! Layout: `jsonrpc` (frames), `gateway` (the Countersign API client), `gate` and `hold` (what
//! happens to a call), `answer` (the words the model reads), `tools` (the catalog, hints), `schema`
//! (checking modified arguments), `call_key` (identical calls, idempotency keys), `stdio`,
//! `http`, `sse` and `mcp_param` (transports), `hook` and `permission` (Claude Code).

pub mod answer;
pub mod call_key;
pub mod claude;
pub mod config;
pub mod gate;
pub mod gateway;
mod hold;
pub mod hook;
pub mod http;
pub mod jsonrpc;
pub mod mcp_param;
pub mod permission;
pub mod schema;
pub mod sse;
pub mod stdio;
pub mod tools;
