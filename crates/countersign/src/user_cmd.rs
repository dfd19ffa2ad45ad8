//! `countersign user add|list|passwd|disable`: people who sign in to the web UI, managed
//! through the server with an admin token, or directly on the database with `--db` (as
//! `token create --db` bootstraps the first admin).
//! A person's login and their reviewer tokens are one identity: same name, same groups.
//! Passwords are read from stdin (one line; `--password-stdin` for scripts, otherwise typed
//! at a prompt without echo) and stored only as Argon2id hashes.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use countersign_core::name::Name;
use countersign_server::web::NewPassword;
use countersign_store::{Actor, CLI_ACTOR, NewUser};
use serde_json::json;

use countersign_server::user_views::{PasswordBody, UserBody, UserList, UserView};

use crate::client::{Client, ServerArgs, block_on};
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
    /// Work directly on this database (e.g. sqlite://countersign.db) instead of asking the
    /// server.
    #[arg(long, value_name = "URL", env = "COUNTERSIGN_DB")]
    db: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `direct` on the database when `--db` names one, else `remote` with a client.
fn on<T>(
    db: &Db,
    direct: impl AsyncFnOnce(&str) -> anyhow::Result<T>,
    remote: impl AsyncFnOnce(Client) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    match &db.db {
        Some(url) => block_on(direct(url))?,
        None => {
            let client = Client::new(&db.server)?;
            block_on(remote(client))?
        }
    }
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
    let user: UserView = on(
        &args.db,
        async |url| {
            let new = NewUser {
                name: name.clone(),
                groups: groups.clone(),
                admin: args.admin,
                password_hash: hash(&password)?,
                created_by: Actor::named(CLI_ACTOR),
                at: chrono::Utc::now(),
            };
            let store = countersign_store::open_for_command(url).await?;
            let created = store.create_user(new).await;
            store.close().await;
            Ok(UserView::from(&created?))
        },
        async |client| {
            let body = UserBody {
                name: name.to_string(),
                groups: groups.iter().map(ToString::to_string).collect(),
                admin: args.admin,
                password: password.expose().to_owned(),
            };
            client.post(&["v1", "users"], &body).await
        },
    )?;
    if args.json {
        output::print_json(&user)?;
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
    let list: UserList = on(
        &args.db,
        async |url| {
            let store = countersign_store::open_existing(url).await?;
            let users = store.users().await;
            store.close().await;
            Ok(UserList {
                items: users?.iter().map(UserView::from).collect(),
            })
        },
        async |client| client.get(&["v1", "users"], &[]).await,
    )?;
    let users = &list.items;
    if args.json {
        return output::print_json(&list).map(|()| ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = users
        .iter()
        .map(|u| {
            let groups = &u.groups;
            [
                u.name.clone(),
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
    let user: UserView = on(
        &args.db,
        async |url| {
            let hash = hash(&password)?;
            let store = countersign_store::open_existing(url).await?;
            let changed = store
                .change_password(
                    name.clone(),
                    hash,
                    Actor::named(CLI_ACTOR),
                    chrono::Utc::now(),
                )
                .await;
            store.close().await;
            Ok(UserView::from(&changed?))
        },
        async |client| {
            let body = PasswordBody {
                password: password.expose().to_owned(),
            };
            client
                .post(&["v1", "users", name.as_str(), "password"], &body)
                .await
        },
    )?;
    if args.json {
        output::print_json(&user)?;
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
    let user: UserView = on(
        &args.db,
        async |url| {
            let store = countersign_store::open_existing(url).await?;
            let disabled = store
                .disable_user(name.clone(), Actor::named(CLI_ACTOR), chrono::Utc::now())
                .await;
            store.close().await;
            Ok(UserView::from(&disabled?))
        },
        async |client| {
            client
                .post(&["v1", "users", name.as_str(), "disable"], &json!({}))
                .await
        },
    )?;
    if args.json {
        output::print_json(&user)?;
    } else {
        println!("disabled {}: sessions ended, tokens revoked", user.name);
    }
    Ok(ExitCode::SUCCESS)
}
