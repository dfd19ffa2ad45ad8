//! `countersign user link NAME --slack U0123`, `user unlink --slack U0123` and `user
//! links`: which Slack account acts as which person when they click Approve in Slack.
//! Directly on the database (`--db`), like `user add`. A person is their name: the same
//! identity as their reviewer tokens, whose groups decide what the person may approve
//! (from Slack as from anywhere else).
//!
//! Kept apart from the other `user` subcommands (`user_cmd.rs`), which manage web logins.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Args;
use countersign_server::slack::{parse_person, parse_slack_user};
use countersign_store::{Actor, CLI_ACTOR, SlackLink};
use serde_json::json;

use crate::client::block_on;
use crate::output;

#[derive(Args)]
pub struct Db {
    /// The database to work on, e.g. sqlite://countersign.db.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DB")]
    db: String,
}

#[derive(Args)]
pub struct LinkArgs {
    /// The person's name (the name of their reviewer tokens).
    name: String,
    /// Their Slack member id, e.g. U0123ABCD (in Slack: profile → ⋮ → Copy member ID).
    #[arg(long, value_name = "ID")]
    slack: String,
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UnlinkArgs {
    /// The Slack member id to unlink.
    #[arg(long, value_name = "ID")]
    slack: String,
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct LinksArgs {
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
}

fn view(link: &SlackLink) -> serde_json::Value {
    json!({
        "name": link.name.as_str(),
        "slack": link.slack_user,
        "linked_at": link.linked_at,
    })
}

async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn countersign_store::Store>> {
    countersign_store::open_existing(url)
        .await
        .with_context(|| format!("cannot open the database {url}"))
}

pub fn link(args: LinkArgs) -> anyhow::Result<ExitCode> {
    let name = parse_person(&args.name).map_err(|e| anyhow!(e))?;
    let slack = parse_slack_user(&args.slack).map_err(|e| anyhow!("--slack: {e}"))?;
    let link = block_on(async {
        let store = open(&args.db.db).await?;
        let link = store
            .link_slack(slack, name, Actor::named(CLI_ACTOR), chrono::Utc::now())
            .await;
        store.close().await;
        anyhow::Ok(link?)
    })??;
    if args.json {
        output::print_json(&view(&link))?;
    } else {
        println!(
            "Slack user {} now acts as {} (with the groups of {}'s reviewer tokens)",
            link.slack_user, link.name, link.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn unlink(args: UnlinkArgs) -> anyhow::Result<ExitCode> {
    let slack = parse_slack_user(&args.slack).map_err(|e| anyhow!("--slack: {e}"))?;
    let link = block_on(async {
        let store = open(&args.db.db).await?;
        let link = store
            .unlink_slack(slack, Actor::named(CLI_ACTOR), chrono::Utc::now())
            .await;
        store.close().await;
        anyhow::Ok(link?)
    })??;
    if args.json {
        output::print_json(&view(&link))?;
    } else {
        println!(
            "Slack user {} is no longer linked to {}",
            link.slack_user, link.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn links(args: LinksArgs) -> anyhow::Result<ExitCode> {
    let links = block_on(async {
        let store = open(&args.db.db).await?;
        let links = store.slack_links().await;
        store.close().await;
        anyhow::Ok(links?)
    })??;
    if args.json {
        output::print_json(&json!({"items": links.iter().map(view).collect::<Vec<_>>()}))?;
    } else if links.is_empty() {
        println!("no Slack users are linked");
    } else {
        for link in &links {
            println!("{:<24} {}", link.slack_user, link.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
