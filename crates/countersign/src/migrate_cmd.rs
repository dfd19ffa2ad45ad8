//! `countersign migrate`: brings a database's schema up to date explicitly, for deployments
//! that start their instances with `database_migrate = false` (several instances, one
//! schema change at a time, by the operator).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub struct MigrateArgs {
    /// The database [default: $COUNTERSIGN_DB, else sqlite://countersign.db].
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .db
        .or_else(|| {
            std::env::var("COUNTERSIGN_DB")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| countersign_server::config::DEFAULT_DATABASE.to_owned());
    let shown = countersign_store::postgres::redact_url(&url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (applied, version) = runtime
        .block_on(countersign_store::migrate(&url))
        .with_context(|| format!("cannot migrate the database {shown}"))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"database": shown, "applied": applied, "version": version})
        );
    } else if applied.is_empty() {
        println!("{shown} is up to date (schema version {version})");
    } else {
        let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
        println!(
            "{shown}: applied schema version {} (now at {version})",
            list.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
