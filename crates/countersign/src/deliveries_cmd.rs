//! `countersign deliveries list|retry`: notification and callback deliveries through the
//! server, with an admin token — what failed for good, and putting it back in line.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use countersign_server::{DeliveryPage, DeliveryView};

use crate::client::{Client, ServerArgs, block_on};
use crate::output;

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest first (`--status failed`: those whose every try failed).
    List(ListArgs),
    /// Put a failed delivery back in line for a new round of tries.
    Retry(RetryArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// pending, delivered or failed.
    #[arg(long, value_parser = ["pending", "delivered", "failed"])]
    status: Option<String>,
    /// At most this many a page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Start after this page (the cursor a previous page printed).
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print JSON (`{"items": [...], "next_cursor": ...}`).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RetryArgs {
    /// The delivery's id, as `deliveries list` shows it.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the delivery as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DeliveriesCommand) -> anyhow::Result<ExitCode> {
    match command {
        DeliveriesCommand::List(args) => list(args),
        DeliveriesCommand::Retry(args) => retry(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let limit = args.limit.to_string();
    let mut query = vec![("limit", limit.as_str())];
    if let Some(status) = &args.status {
        query.push(("status", status));
    }
    if let Some(cursor) = &args.cursor {
        query.push(("cursor", cursor));
    }
    let page: DeliveryPage = block_on(client.get(&["v1", "deliveries"], &query))??;
    output::deliveries(&page, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn retry(args: RetryArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let delivery: DeliveryView = block_on(client.post(
        &["v1", "deliveries", &args.id, "retry"],
        &serde_json::json!({}),
    ))??;
    if args.json {
        output::print_json(&delivery)?;
    } else {
        println!(
            "delivery {} ({} to {}) is pending again",
            delivery.id, delivery.event, delivery.target
        );
    }
    Ok(ExitCode::SUCCESS)
}
