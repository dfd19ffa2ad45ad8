//! `countersign audit verify`: checks the audit hash chain, through the server (admin token)
//! or directly on the database with `--db`. Exits 1 when the chain is broken.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{Client, DbOrServer, block_on};
use crate::output;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; name the first changed, removed or reordered entry.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: DbOrServer,
    #[arg(long)]
    json: bool,
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify(args) = command;
    let report = match &args.target.db {
        Some(url) => block_on(verify_directly(url))??,
        None => {
            let client = Client::new(&args.target.server)?;
            block_on(client.get(&["v1", "audit", "verify"], &[]))??
        }
    };
    let ok = report["ok"] == true;
    if args.json {
        output::print_json(&report)?;
    } else if ok {
        println!(
            "ok: {} entries, head {}",
            report["entries"],
            report["head"].as_str().unwrap_or("?")
        );
    }
    if ok {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: the audit chain is broken at entry {}: {} ({} entries before it verified)",
        report["first_bad_seq"],
        report["message"].as_str().unwrap_or("unknown problem"),
        report["entries"]
    );
    Ok(ExitCode::from(1))
}

async fn verify_directly(url: &str) -> anyhow::Result<Value> {
    // Read-only: verifying evidence never writes to it, and a missing file is an error.
    let report = countersign_store::verify_database(url).await?;
    Ok(serde_json::to_value(
        countersign_server::views::VerifyView::from(&report),
    )?)
}
