//! `countersign token create|list|revoke`: directly on the database with `--db` (to
//! bootstrap the first admin token, or to revoke one when no admin token is at hand),
//! otherwise through the server with an admin token. `create` prints the new token alone on
//! stdout.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use countersign_server::views::{CreatedTokenView, TokenBody, TokenList, TokenView};
use countersign_store::{Actor, CLI_ACTOR, NewToken};

use crate::client::{Client, DbOrServer, block_on};
use crate::output;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only once).
    Create(CreateArgs),
    /// List the tokens (never their secrets).
    List(ListArgs),
    /// Revoke a token by its id: it stops working at once.
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: DbOrServer,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// The token's id, as `token list` shows it (not the secret).
    id: String,
    #[command(flatten)]
    target: DbOrServer,
    /// Print the revoked token as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    /// agent, reviewer or admin.
    #[arg(long)]
    role: String,
    /// The identity the audit log records for this token. Stored in lowercase (names compare
    /// without regard to case); `system` and `cli` are reserved.
    #[arg(long)]
    name: String,
    /// Groups, comma-separated (reviewers decide for the groups they are in).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// For agent tokens: the person responsible, who can never approve or review the agent's
    /// actions. Left out for an agent that already has an owner, the token gets that owner.
    #[arg(long)]
    owner: Option<String>,
    #[command(flatten)]
    target: DbOrServer,
    /// Print the token with its details as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create(args) => create(args),
        TokenCommand::List(args) => list(args),
        TokenCommand::Revoke(args) => revoke(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let list = match &args.target.db {
        Some(url) => block_on(async {
            let store = countersign_store::open_existing(url).await?;
            let tokens = store.tokens().await;
            store.close().await;
            let items: Vec<TokenView> = tokens?.iter().map(TokenView::from).collect();
            anyhow::Ok(TokenList { items })
        })??,
        None => block_on(Client::new(&args.target.server)?.get(&["v1", "tokens"], &[]))??,
    };
    output::tokens(&list, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let token: TokenView = match &args.target.db {
        Some(url) => block_on(async {
            let store = countersign_store::open_existing(url).await?;
            let token = store
                .revoke_token(args.id.clone(), Actor::named(CLI_ACTOR), chrono::Utc::now())
                .await;
            store.close().await;
            anyhow::Ok(TokenView::from(&token?))
        })??,
        None => {
            let client = Client::new(&args.target.server)?;
            block_on(client.post(&["v1", "tokens", &args.id, "revoke"], &json!({})))??
        }
    };
    if args.json {
        output::print_json(&token)?;
    } else {
        println!("revoked {} ({})", token.id, token.name);
    }
    Ok(ExitCode::SUCCESS)
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    // `--groups a,,b` and `--groups ''` name no empty group: the delimiter's leftovers.
    let groups: Vec<String> = args.groups.into_iter().filter(|g| !g.is_empty()).collect();
    let created: CreatedTokenView = match &args.target.db {
        Some(url) => {
            let new_token = NewToken::parse(
                &args.role,
                &args.name,
                &groups,
                args.owner.as_deref(),
                Actor::named(CLI_ACTOR),
                chrono::Utc::now(),
            )?;
            block_on(create_directly(url, new_token))??
        }
        None => {
            let client = Client::new(&args.target.server)?;
            let body = TokenBody {
                role: args.role,
                name: args.name,
                groups,
                owner: args.owner,
            };
            block_on(client.post(&["v1", "tokens"], &body))??
        }
    };
    if args.json {
        output::print_json(&created)?;
    } else {
        println!("{}", created.token);
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_directly(url: &str, new_token: NewToken) -> anyhow::Result<CreatedTokenView> {
    let store = countersign_store::open_for_command(url).await?;
    let created = store.create_token(new_token).await;
    store.close().await;
    let created = created?;
    Ok(CreatedTokenView::new(created.secret, &created.token))
}
