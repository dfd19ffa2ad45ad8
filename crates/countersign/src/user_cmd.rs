//! `countersign user add|list|passwd|disable`: people who sign in to the web UI, managed
//! directly on the database (`--db`, as `token create --db` bootstraps the first admin).
//! A person's login and their reviewer tokens are one identity: same name, same groups.
//! Passwords are read from stdin (one line; `--password-stdin` for scripts, otherwise typed
//! at a prompt without echo) and stored only as Argon2id hashes.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use countersign_core::name::Name;
use countersign_server::web::NewPassword;
use countersign_store::{Actor, CLI_ACTOR, NewUser, User};
use serde_json::json;

use crate::client::block_on;
use crate::output;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a web login (reviewer, or admin with --admin).
    Add(AddArgs),
    /// List the people with a login.
    List(ListArgs),
    /// Set a new password (ends the person's sessions).
    Passwd(NameArgs),
    /// Disable a person: no sign-in, sessions ended, their tokens revoked.
    Disable(NameArgs),
}

#[derive(Args)]
pub struct Db {
    /// The database to work on, e.g. sqlite://countersign.db.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DB")]
    db: String,
}

#[derive(Args)]
pub struct AddArgs {
    /// The person's name: the identity the audit log records, the same as their tokens'.
    name: String,
    /// Groups, comma-separated (a person decides for the groups they are in).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// An administrator (sees the audit log; decides where no group is named).
    #[arg(long)]
    admin: bool,
    /// Read the password from stdin (one line) without a prompt.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    db: Db,
    /// Print the new user as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct NameArgs {
    name: String,
    /// Read the password from stdin (one line) without a prompt (`passwd`).
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
}

pub fn run(command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add(args) => add(args),
        UserCommand::List(args) => list(args),
        UserCommand::Passwd(args) => passwd(args),
        UserCommand::Disable(args) => disable(args),
    }
}

fn view(user: &User) -> serde_json::Value {
    json!({
        "name": user.name.as_str(),
        "groups": user.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "admin": user.admin,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "password_changed_at": user.password_changed_at,
    })
}

fn parse_name(text: &str) -> anyhow::Result<Name> {
    Name::parse(text).map_err(|e| anyhow!("invalid name {text:?}: {e}"))
}

/// Reads the new password: a prompt without echo on a terminal (typed twice), else one
/// line of stdin.
fn read_password(from_stdin: bool) -> anyhow::Result<NewPassword> {
    let stdin = std::io::stdin();
    let interactive = !from_stdin && stdin.is_terminal();
    let read_line = |prompt: &str| -> anyhow::Result<String> {
        if interactive {
            eprint!("{prompt}");
            std::io::stderr().flush()?;
            let _ = std::process::Command::new("stty").arg("-echo").status();
        }
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        if interactive {
            let _ = std::process::Command::new("stty").arg("echo").status();
            eprintln!();
        }
        read.context("cannot read the password from stdin")?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    };
    let password = read_line("Password: ")?;
    if interactive && read_line("Again: ")? != password {
        bail!("the two passwords differ");
    }
    NewPassword::parse(&password).map_err(|e| anyhow!("{e}"))
}

fn hash(password: &NewPassword) -> anyhow::Result<String> {
    password.hash().map_err(|e| anyhow!("{e}"))
}

fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    let name = parse_name(&args.name)?;
    let groups = args
        .groups
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| Name::parse(g).map_err(|e| anyhow!("invalid group {g:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let password = read_password(args.password_stdin)?;
    let new = NewUser {
        name,
        groups,
        admin: args.admin,
        password_hash: hash(&password)?,
        created_by: Actor::named(CLI_ACTOR),
        at: chrono::Utc::now(),
    };
    let user = block_on(async {
        let store = countersign_store::open_for_command(&args.db.db).await?;
        let created = store.create_user(new).await;
        store.close().await;
        anyhow::Ok(created?)
    })??;
    if args.json {
        output::print_json(&view(&user))?;
    } else {
        println!(
            "created {}{}; sign in at the server's address",
            user.name,
            if user.admin { " (admin)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let users = block_on(async {
        let store = countersign_store::open_existing(&args.db.db).await?;
        let users = store.users().await;
        store.close().await;
        anyhow::Ok(users?)
    })??;
    if args.json {
        let items: Vec<_> = users.iter().map(view).collect();
        return output::print_json(&json!({"items": items})).map(|()| ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = users
        .iter()
        .map(|u| {
            let groups: Vec<&str> = u.groups.iter().map(|g| g.as_str()).collect();
            [
                u.name.to_string(),
                if groups.is_empty() {
                    "-".into()
                } else {
                    groups.join(",")
                },
                if u.admin { "admin" } else { "reviewer" }.into(),
                if u.disabled { "disabled" } else { "active" }.into(),
            ]
        })
        .collect();
    output::table(
        &mut std::io::stdout().lock(),
        ["NAME", "GROUPS", "ROLE", "STATE"],
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn passwd(args: NameArgs) -> anyhow::Result<ExitCode> {
    let name = parse_name(&args.name)?;
    let password = read_password(args.password_stdin)?;
    let hash = hash(&password)?;
    let user = block_on(async {
        let store = countersign_store::open_existing(&args.db.db).await?;
        let changed = store
            .change_password(name, hash, Actor::named(CLI_ACTOR), chrono::Utc::now())
            .await;
        store.close().await;
        anyhow::Ok(changed?)
    })??;
    if args.json {
        output::print_json(&view(&user))?;
    } else {
        println!(
            "changed the password of {}; their sessions ended",
            user.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn disable(args: NameArgs) -> anyhow::Result<ExitCode> {
    let name = parse_name(&args.name)?;
    let user = block_on(async {
        let store = countersign_store::open_existing(&args.db.db).await?;
        let disabled = store
            .disable_user(name, Actor::named(CLI_ACTOR), chrono::Utc::now())
            .await;
        store.close().await;
        anyhow::Ok(disabled?)
    })??;
    if args.json {
        output::print_json(&view(&user))?;
    } else {
        println!("disabled {}: sessions ended, tokens revoked", user.name);
    }
    Ok(ExitCode::SUCCESS)
}
