//! `countersign grant create|list|revoke`: grants, through the server with a reviewer's
//! token (a grant records who gave it, with the groups their token carries).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::json;

use countersign_server::grant_views::{CreatedGrantView, GrantBody, GrantList, GrantView};

use crate::client::{Client, ServerArgs, block_on};
use crate::output::{self, table};

#[derive(Subcommand)]
pub enum GrantCommand {
    /// Let an agent run actions matching a pattern without asking, until a time, for at most
    /// a number of uses. Only for actions the policy puts in `approve` that you could approve
    /// yourself; never for the agent's owner, never `confirm` or `deny`.
    Create(CreateArgs),
    /// List grants, newest first.
    List(ListArgs),
    /// Revoke a grant: from the next submission on it covers nothing.
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// The agent it lets act.
    #[arg(long)]
    agent: String,
    /// A pattern of action names, e.g. `refund.create` or `refund.*`.
    #[arg(long)]
    actions: String,
    /// A CEL condition the request must also meet, e.g. `args.amount <= 50`.
    #[arg(long)]
    when: Option<String>,
    /// How long it runs: `30m`, `1h`, `7d` (at most `30d`).
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// At most this many uses (default: until it expires).
    #[arg(long)]
    uses: Option<u32>,
    /// Why, for the audit log and the other reviewers.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the grant as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only this agent's.
    #[arg(long)]
    agent: Option<String>,
    /// Only those that can still be used.
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// The grant's id, as `grant list` shows it.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the revoked grant as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: GrantCommand) -> anyhow::Result<ExitCode> {
    match command {
        GrantCommand::Create(args) => create(args),
        GrantCommand::List(args) => list(args),
        GrantCommand::Revoke(args) => revoke(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let body = GrantBody {
        agent: args.agent,
        actions: args.actions,
        when: args.when,
        duration: args.duration,
        max_uses: args.uses,
        reason: args.reason,
    };
    let created: CreatedGrantView = block_on(client.post(&["v1", "grants"], &body))??;
    if args.json {
        output::print_json(&created)?;
        return Ok(ExitCode::SUCCESS);
    }
    let grant = &created.grant;
    println!(
        "granted {} to {}: {}{} without asking until {}{}",
        grant.id,
        grant.agent,
        grant.actions,
        grant
            .when
            .as_deref()
            .map(|w| format!(" when {w}"))
            .unwrap_or_default(),
        rfc3339(grant.expires_at),
        grant
            .max_uses
            .map(|n| format!(", at most {n} times"))
            .unwrap_or_default(),
    );
    println!("covers: {}", created.covers.join(", "));
    for excluded in &created.excluded {
        println!("never covers {}: {}", excluded.rule, excluded.why);
    }
    Ok(ExitCode::SUCCESS)
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let mut query = Vec::new();
    if let Some(agent) = &args.agent {
        query.push(("agent", agent.as_str()));
    }
    if args.live {
        query.push(("live", "true"));
    }
    let list: GrantList = block_on(client.get(&["v1", "grants"], &query))??;
    if args.json {
        output::print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 7]> = list.items.iter().map(row).collect();
    table(
        &mut std::io::stdout().lock(),
        ["ID", "AGENT", "ACTIONS", "WHEN", "UNTIL", "USES", "STATE"],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn row(grant: &GrantView) -> [String; 7] {
    [
        grant.id.clone(),
        grant.agent.clone(),
        grant.actions.clone(),
        grant.when.clone().unwrap_or_else(|| "-".to_owned()),
        rfc3339(grant.expires_at),
        match grant.max_uses {
            Some(max) => format!("{}/{max}", grant.uses),
            None => grant.uses.to_string(),
        },
        if grant.revoked_at.is_some() {
            format!("revoked by {}", grant.revoked_by.as_deref().unwrap_or("?"))
        } else if grant.live {
            "live".to_owned()
        } else {
            "ended".to_owned()
        },
    ]
}

fn revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let grant: GrantView =
        block_on(client.post(&["v1", "grants", &args.id, "revoke"], &json!({})))??;
    if args.json {
        output::print_json(&grant)?;
    } else {
        println!(
            "revoked {} ({} for {})",
            grant.id, grant.actions, grant.agent
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
