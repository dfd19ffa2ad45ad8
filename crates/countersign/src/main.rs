//! The `countersign` binary: parses the command line once and hands each subcommand to the
//! module that does it. Glue only; the domain lives in the library crates.

mod policy_cmd;

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
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
