//! How one proxy gates one upstream server: the name actions are filed under, whether its
//! tool annotations are trusted, and how long a call may be held before the client is told
//! to retry.

use std::time::Duration;

/// The settings of one gate, parsed once from the command line.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// The upstream server's name (`--name`): actions are `<prefix>.<tool>`.
    pub server: String,
    /// `mcp.<server>` unless configured.
    pub action_prefix: String,
    /// Whether the server's tool annotations become `hints` (otherwise MCP's pessimistic
    /// defaults are sent, so that a server's claims never relax the policy).
    pub trusted: bool,
    /// How long a held call waits before the "pending, retry" answer; `None`: by client.
    pub hold: Option<Duration>,
    /// How often a held call sends a progress notification (when the client gave a token).
    pub progress_every: Duration,
}

/// Claude Code resets its idle watchdog on every progress notification and gives stdio
/// servers about 30 minutes of idleness (research mcp.md §4): with a progress token, hold a
/// call for 20 minutes.
const CLAUDE_CODE_HOLD: Duration = Duration::from_secs(20 * 60);
/// Everyone else: below the 60 s that the TypeScript SDK, Claude Desktop and the Inspector
/// give a request by default, so that the client hears "pending, retry" instead of timing out
/// (a timeout cancels the call, which withdraws the approval).
const DEFAULT_HOLD: Duration = Duration::from_secs(50);

impl GateConfig {
    /// Checks the server name: it becomes part of action names (letters, digits, `_`, `-`).
    pub fn new(server: &str, action_prefix: Option<&str>) -> Result<GateConfig, String> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        };
        if !valid(server) {
            return Err(format!(
                "--name {server:?} must be 1 to 100 letters, digits, '_' or '-' (it becomes part of action names)"
            ));
        }
        let action_prefix = match action_prefix {
            None => format!("mcp.{server}"),
            Some(prefix) if !prefix.is_empty() && crate::gate::is_action_name(prefix) => {
                prefix.to_owned()
            }
            Some(prefix) => {
                return Err(format!(
                    "--action-prefix {prefix:?} must be letters, digits and ._-:/"
                ));
            }
        };
        Ok(GateConfig {
            server: server.to_owned(),
            action_prefix,
            trusted: false,
            hold: None,
            progress_every: Duration::from_secs(10),
        })
    }

    /// How long to hold a call of this client before answering "pending, retry".
    pub fn hold_for(&self, client_name: Option<&str>, has_progress_token: bool) -> Duration {
        if let Some(hold) = self.hold {
            return hold;
        }
        match client_name {
            Some("claude-code") if has_progress_token => CLAUDE_CODE_HOLD,
            _ => DEFAULT_HOLD,
        }
    }
}
