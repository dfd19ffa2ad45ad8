//! `countersign token create`: directly on the database with `--db` (to bootstrap the first
//! admin token), otherwise through the server with an admin token. Prints the new token
//! alone on stdout.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::client::{Client, ServerArgs, block_on};
use crate::output;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only once).
    Create(CreateArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// agent, reviewer or admin.
    #[arg(long)]
    role: String,
    /// The identity the audit log records for this token.
    #[arg(long)]
    name: String,
    /// Groups, comma-separated (reviewers decide for the groups they are in).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// For agent tokens: the person responsible, who can never approve the agent's actions.
    #[arg(long)]
    owner: Option<String>,
    /// Work directly on this database instead of asking the server.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the token with its details as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create(args) = command;
    let body = countersign_server::views::TokenBody {
        role: args.role,
        name: args.name,
        groups: args.groups.into_iter().filter(|g| !g.is_empty()).collect(),
        owner: args.owner,
    };
    let created = match &args.db {
        Some(url) => block_on(create_directly(url, body))??,
        None => {
            let client = Client::new(&args.server)?;
            let request = json!({
                "role": body.role, "name": body.name, "groups": body.groups, "owner": body.owner,
            });
            block_on(client.post("/v1/tokens", &request))??
        }
    };
    if args.json {
        output::print_json(&created)?;
    } else {
        println!("{}", created["token"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_directly(
    url: &str,
    body: countersign_server::views::TokenBody,
) -> anyhow::Result<serde_json::Value> {
    let new_token = countersign_server::parse_new_token(body, "cli", chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let store = countersign_store::open(url).await?;
    let created = store.create_token(new_token).await?;
    let view = countersign_server::views::CreatedTokenView::new(created.secret, &created.token);
    Ok(serde_json::to_value(view)?)
}
