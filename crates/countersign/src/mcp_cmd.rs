//! `countersign mcp`: the MCP gating proxy (glue; the proxy is the `countersign-mcp` crate).
//! `--name NAME -- COMMAND...` wraps a stdio server; `--upstream URL --listen ADDR` fronts a
//! Streamable HTTP server; `--permission-prompt` serves Claude Code's permission-prompt tool.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use countersign_mcp::config::GateConfig;
use countersign_mcp::gate::Gate;
use countersign_mcp::gateway::{Gateway, GatewayConfig};

use crate::client::ServerArgs;

#[derive(Args)]
pub struct McpArgs {
    /// The upstream server's name: its tools become actions `mcp.NAME.TOOL`.
    #[arg(long, required_unless_present = "permission_prompt")]
    name: Option<String>,
    /// Trust the server's tool annotations (readOnlyHint...) as policy hints. Without it,
    /// hints are MCP's pessimistic defaults whatever the server claims.
    #[arg(long)]
    trusted: bool,
    /// Hold a pending call this long before answering "pending approval, retry the identical
    /// call" (default: 50 s; 20 min for Claude Code, which resets its timeout on progress).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    hold: Option<u64>,
    /// Send a progress notification this often while a call is held.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    progress_every: u64,
    /// A reviewer token of the person at the client: when the client can show forms
    /// (elicitation), a held call asks them too, and their answer counts as their decision
    /// (if the policy lets them decide). Other reviewers can still answer first. Stdio only.
    #[arg(
        long,
        env = "COUNTERSIGN_USER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "upstream"
    )]
    user_token: Option<String>,
    /// File actions as PREFIX.TOOL instead of mcp.NAME.TOOL.
    #[arg(long, value_name = "PREFIX")]
    action_prefix: Option<String>,
    /// Gate a Streamable HTTP server at this URL instead of a command (with --listen).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "command",
        requires = "listen"
    )]
    upstream: Option<String>,
    /// Where the HTTP proxy listens, like 127.0.0.1:3002 (keep it on loopback: whoever
    /// reaches it acts as the agent; port 0 picks a free port, printed on stderr).
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    listen: Option<std::net::SocketAddr>,
    /// Serve Claude Code's permission-prompt tool (`--permission-prompt-tool
    /// mcp__countersign__approve`) instead of proxying a server.
    #[arg(long, conflicts_with_all = ["command", "name", "upstream"])]
    permission_prompt: bool,
    #[command(flatten)]
    server: ServerArgs,
    /// The MCP server to run and gate, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let gateway = GatewayConfig::parse(&args.server.server, args.server.token.as_deref())
        .map_err(|e| anyhow!(e))?;
    let gateway = Gateway::new(gateway).map_err(|e| anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.permission_prompt {
        let hold = Duration::from_secs(args.hold.unwrap_or(20 * 60));
        let every = Duration::from_secs(args.progress_every);
        runtime
            .block_on(countersign_mcp::permission::serve(gateway, hold, every))
            .context("the permission-prompt server failed")?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.name.as_deref().unwrap_or_default();
    let mut config =
        GateConfig::new(name, args.action_prefix.as_deref()).map_err(|e| anyhow!(e))?;
    config.trusted = args.trusted;
    config.hold = args.hold.map(Duration::from_secs);
    config.progress_every = Duration::from_secs(args.progress_every);
    if let (Some(upstream), Some(listen)) = (&args.upstream, args.listen) {
        let upstream = reqwest::Url::parse(upstream)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                anyhow!(
                    "--upstream {upstream:?} is not an http(s) URL, like http://127.0.0.1:3001/mcp"
                )
            })?;
        let gate = Arc::new(Gate::new(config, gateway));
        return runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr()?;
            eprintln!(
                "countersign mcp: gating {upstream} at http://{address}{}",
                upstream.path()
            );
            countersign_mcp::http::serve(gate, upstream, listener)
                .await
                .context("the MCP HTTP proxy failed")?;
            Ok(ExitCode::SUCCESS)
        });
    }
    if args.command.is_empty() {
        bail!(
            "no server to gate: put its command after --, like `countersign mcp --name files -- npx @modelcontextprotocol/server-filesystem /tmp`"
        );
    }
    let mut gate = Gate::new(config, gateway);
    if let Some(token) = args.user_token.as_deref().filter(|t| !t.is_empty()) {
        let user =
            GatewayConfig::parse(&args.server.server, Some(token)).map_err(|e| anyhow!(e))?;
        gate.user = Some(Gateway::new(user).map_err(|e| anyhow!(e))?);
    }
    let gate = Arc::new(gate);
    let status = runtime
        .block_on(countersign_mcp::stdio::run(gate, &args.command))
        .context("the MCP proxy failed")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Logs to stderr only: stdout carries MCP frames. `RUST_LOG` picks the level (default
/// `warn`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
