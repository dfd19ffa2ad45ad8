//! The `countersign` binary: parses the command line once and hands each subcommand to the
//! module that does it. Glue only; the domain lives in the library crates.

mod action_cmd;
mod audit_cmd;
mod client;
mod deliveries_cmd;
mod export_cmd;
mod graduation_cmd;
mod grant_cmd;
mod hook_cmd;
mod mcp_cmd;
mod migrate_cmd;
mod output;
mod policy_cmd;
mod serve_cmd;
mod stats_cmd;
mod token_cmd;
mod user_cmd;
mod user_link_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Countersign: a human-in-the-loop gateway for AI agents.
#[derive(Parser)]
#[command(name = "countersign", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check, explain and test policy files.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Run the Countersign server.
    Serve(serve_cmd::ServeArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token_cmd::TokenCommand),
    /// Submit a proposed action (as an agent).
    Submit(action_cmd::SubmitArgs),
    /// Show one action.
    Show(action_cmd::ShowArgs),
    /// List the pending actions, oldest deadline first.
    Queue(action_cmd::QueueArgs),
    /// Approve a pending action.
    Approve(action_cmd::ApproveArgs),
    /// Reject a pending action.
    Reject(action_cmd::RejectArgs),
    /// Approve a pending action with different arguments.
    Modify(action_cmd::ModifyArgs),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Notification and callback deliveries: list them, retry failed ones.
    #[command(subcommand)]
    Deliveries(deliveries_cmd::DeliveriesCommand),
    /// Let an agent run matching actions without asking, for a while: grants.
    #[command(subcommand)]
    Grant(grant_cmd::GrantCommand),
    /// Manage the people who sign in to the web UI.
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// Approval metrics: rates, review latency, SLA outcomes, signals, reviewers' fatigue.
    Stats(stats_cmd::StatsArgs),
    /// Rejected, modified and flagged actions as training and evaluation data (admins).
    Export(export_cmd::ExportArgs),
    /// Gate an MCP server's tool calls (the MCP gating proxy).
    Mcp(mcp_cmd::McpArgs),
    /// Hooks for coding agents' own tools.
    #[command(subcommand)]
    Hook(hook_cmd::HookCommand),
    /// Bring the database's schema up to date (SQLite or PostgreSQL).
    Migrate(migrate_cmd::MigrateArgs),
}

fn main() -> ExitCode {
    // Usage errors exit 1, not clap's 2: for `submit --wait` and `show --wait`, 2 means "the
    // action may not run", and a typo must never read as a verdict.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Policy(command) => policy_cmd::run(command),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Token(command) => token_cmd::run(command),
        Command::Submit(args) => action_cmd::submit(args),
        Command::Show(args) => action_cmd::show(args),
        Command::Queue(args) => action_cmd::queue(args),
        Command::Approve(args) => action_cmd::approve(args),
        Command::Reject(args) => action_cmd::reject(args),
        Command::Modify(args) => action_cmd::modify(args),
        Command::Audit(command) => audit_cmd::run(command),
        Command::Deliveries(command) => deliveries_cmd::run(command),
        Command::User(command) => user_cmd::run(command),
        Command::Stats(args) => stats_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Grant(command) => grant_cmd::run(command),
        Command::Mcp(args) => mcp_cmd::run(args),
        Command::Hook(command) => hook_cmd::run(command),
        Command::Migrate(args) => migrate_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
