//! `countersign hook claude-code`: Claude Code's `PreToolUse` hook (glue; the protocol is in
//! `countersign_mcp::hook`). Reads the hook input on stdin, asks Countersign, prints the
//! decision JSON. It never exits with a code Claude Code reads as "run the tool anyway":
//! failures are a `deny` (exit 0), or exit 2 (blocking) when the input cannot be read.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use countersign_mcp::claude::{Verdict, decide};
use countersign_mcp::gateway::{Gateway, GatewayConfig};
use countersign_mcp::hook;

use crate::client::ServerArgs;

#[derive(Subcommand)]
pub enum HookCommand {
    /// Claude Code's PreToolUse hook: hook JSON on stdin, the decision JSON on stdout.
    ClaudeCode(ClaudeCodeArgs),
}

#[derive(Args)]
pub struct ClaudeCodeArgs {
    /// Wait this long for a person before answering `ask` (Claude Code then asks its user).
    /// Keep it below the hook's `timeout` in settings.json (default 60 s).
    #[arg(long, value_name = "SECONDS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    wait: u64,
    #[command(flatten)]
    server: ServerArgs,
}

/// Claude Code reads exit code 2 as "block the tool, and tell the model stderr".
const BLOCK: u8 = 2;

pub fn run(command: HookCommand) -> anyhow::Result<ExitCode> {
    let HookCommand::ClaudeCode(args) = command;
    // A panic would exit 101, which Claude Code reads as a non-blocking error: block instead.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("countersign hook failed, so the tool is blocked: {info}");
        std::process::exit(i32::from(BLOCK));
    }));
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("countersign hook: cannot read the hook input, so the tool is blocked: {e}");
        return Ok(ExitCode::from(BLOCK));
    }
    let tool_use = match hook::parse_input(&text) {
        Ok(tool_use) => tool_use,
        Err(e) => {
            eprintln!("countersign hook: {e}; the tool is blocked");
            return Ok(ExitCode::from(BLOCK));
        }
    };
    let verdict = match GatewayConfig::parse(&args.server.server, args.server.token.as_deref())
        .and_then(|config| Gateway::new(config).map_err(|e| e.to_string()))
    {
        Err(e) => Verdict::Deny(format!("Countersign is not configured for this hook: {e}")),
        Ok(gateway) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let budget = Duration::from_secs(args.wait);
            runtime.block_on(decide(&gateway, &tool_use, budget, budget, |_| {}))
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", hook::output(&verdict)).is_err() || stdout.flush().is_err() {
        return Ok(ExitCode::from(BLOCK));
    }
    Ok(ExitCode::SUCCESS)
}
