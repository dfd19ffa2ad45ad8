//! `countersign audit verify` and `audit checkpoint`: verify the log (the hash chain, that
//! it still extends the checkpoints kept outside the database, and every action's state
//! against its entries) and print or sign checkpoints — through the server (admin token)
//! or directly on the database file with `--db`. Verification exits 1 when anything is
//! wrong, with every problem on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use countersign_core::audit::checkpoint;
use countersign_core::audit::note::{NoteSigner, NoteVerifier};
use countersign_server::audit_views::{CheckpointView, VerifyRequest, VerifyView};
use countersign_server::checkpoints::stored_claim;
use countersign_server::config::DEFAULT_CHECKPOINT_KEY;
use countersign_server::{Checkpoints, Publish};
use countersign_store::CheckpointClaim;
use serde_json::json;

use crate::client::{Client, DbOrServer, block_on};
use crate::output;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the log: the hash chain, that it still extends the given (or latest stored)
    /// checkpoints, and every action's stored state against its entries.
    Verify(VerifyArgs),
    /// Print the latest signed checkpoint of the audit chain, or sign one now (--sign).
    Checkpoint(CheckpointArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: DbOrServer,
    /// Checkpoints kept outside the database (one signed note, or a publish file of many):
    /// the log must still extend every one of them.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The key that signed the checkpoints: a verifier key NAME+HASH+BASE64, or a key file
    /// [default: the server's key; with --db, ./countersign-checkpoint.key if present].
    #[arg(long, value_name = "VKEY|FILE")]
    key: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    target: DbOrServer,
    /// Sign the current head now (with --db: with the key file given by --key).
    #[arg(long)]
    sign: bool,
    /// With --db --sign: the signing key file [default: ./countersign-checkpoint.key].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => verify(args),
        AuditCommand::Checkpoint(args) => checkpoint_cmd(args),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let checkpoint_text = args
        .checkpoint
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the checkpoint file {}", path.display()))
        })
        .transpose()?;
    let key = args.key.as_deref().map(verifier_from_arg).transpose()?;
    let report: VerifyView = match &args.target.db {
        Some(url) => {
            let key = match key {
                Some(key) => Some(key),
                None => default_verifier()?,
            };
            block_on(verify_directly(
                url,
                checkpoint_text.as_deref(),
                args.checkpoint.as_deref(),
                key.as_ref(),
            ))??
        }
        None => {
            let client = Client::new(&args.target.server)?;
            match checkpoint_text {
                Some(checkpoint) => {
                    let body = VerifyRequest {
                        checkpoint,
                        key: key.as_ref().map(NoteVerifier::encode),
                    };
                    block_on(client.post(&["v1", "audit", "verify"], &body))??
                }
                None => block_on(client.get(&["v1", "audit", "verify"], &[]))??,
            }
        }
    };
    if args.json {
        output::print_json(&report)?;
    } else if report.ok {
        let checked = report.checkpoints.len();
        println!(
            "ok: {} entries, head {}; {} actions agree with their log; extends {} checkpoint{}",
            report.entries,
            report.head,
            report.actions,
            checked,
            if checked == 1 { "" } else { "s" }
        );
    }
    if report.ok {
        return Ok(ExitCode::SUCCESS);
    }
    if report.problems.is_empty() {
        eprintln!(
            "error: the audit log does not verify: {}",
            serde_json::to_string(&report)?
        );
    }
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    Ok(ExitCode::from(1))
}

/// `--key`: a verifier key, or a file holding one or a signing key.
fn verifier_from_arg(arg: &str) -> anyhow::Result<NoteVerifier> {
    if let Ok(key) = NoteVerifier::parse(arg) {
        return Ok(key);
    }
    let path = Path::new(arg);
    if !path.is_file() {
        // Not a file: say why it is not a key.
        let error = NoteVerifier::parse(arg).err().map(|e| e.to_string());
        bail!(
            "--key: {} (and no file {arg:?} exists)",
            error.unwrap_or_default()
        );
    }
    verifier_from_file(path)
}

fn verifier_from_file(path: &Path) -> anyhow::Result<NoteVerifier> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    if text.trim_start().starts_with("PRIVATE+KEY+") {
        return NoteSigner::parse(&text)
            .map(|signer| signer.verifier())
            .with_context(|| format!("the key file {} is not a signing key", path.display()));
    }
    NoteVerifier::parse(&text)
        .with_context(|| format!("the key file {} is not a verifier key", path.display()))
}

/// The server's default key file in the working directory, if there is one.
fn default_verifier() -> anyhow::Result<Option<NoteVerifier>> {
    let path = Path::new(DEFAULT_CHECKPOINT_KEY);
    if !path.is_file() {
        return Ok(None);
    }
    verifier_from_file(path).map(Some)
}

async fn verify_directly(
    url: &str,
    checkpoint_text: Option<&str>,
    checkpoint_path: Option<&Path>,
    key: Option<&NoteVerifier>,
) -> anyhow::Result<VerifyView> {
    let mut claims = Vec::new();
    if let Some(text) = checkpoint_text {
        let key = key.ok_or_else(|| {
            anyhow!(
                "no key to check the checkpoint's signature: pass --key with the verifier key (`countersign audit checkpoint --json` shows it) or the key file"
            )
        })?;
        let shown = checkpoint_path.map_or("-".into(), |p| p.display().to_string());
        let found = checkpoint::open_all(text, key)
            .with_context(|| format!("the checkpoint file {shown} cannot be used"))?;
        let count = found.len();
        claims.extend(found.into_iter().map(|filed| CheckpointClaim {
            source: if count == 1 {
                format!("the checkpoint in {shown}")
            } else {
                format!("checkpoint {} of {count} in {shown}", filed.index)
            },
            size: filed.checkpoint.size,
            hash: filed.checkpoint.hash,
        }));
    }
    // Read-only: verifying evidence never writes to it, and a missing file is an error.
    let mut unverified = Vec::new();
    if let Some(key) = key
        && let Some(latest) = countersign_store::latest_checkpoint_in_database(url).await?
    {
        match stored_claim(&latest, key) {
            Ok(claim) => claims.push(claim),
            Err(failed) => unverified.push(failed),
        }
    }
    let report = countersign_store::verify_database(url, claims).await?;
    Ok(VerifyView::new(&report, unverified))
}

fn checkpoint_cmd(args: CheckpointArgs) -> anyhow::Result<ExitCode> {
    let view: CheckpointView = match (&args.target.db, args.sign) {
        (Some(url), false) => {
            if args.key.is_some() {
                bail!("--key is only used with --sign");
            }
            let latest = block_on(countersign_store::latest_checkpoint_in_database(url))??
                .ok_or_else(|| anyhow!("no checkpoint was signed in {url} yet"))?;
            let key = default_verifier().ok().flatten().map(|k| k.encode());
            CheckpointView::new(&latest, key)
        }
        (Some(url), true) => {
            let path = args
                .key
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT_KEY));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the key file {}", path.display()))?;
            let signer = NoteSigner::parse(&text)
                .with_context(|| format!("the key file {} is not a signing key", path.display()))?;
            block_on(sign_directly(url, signer))??
        }
        (None, sign) => {
            if args.key.is_some() {
                bail!("--key is only used with --db --sign: the server signs with its own key");
            }
            let client = Client::new(&args.target.server)?;
            if sign {
                block_on(client.post(&["v1", "audit", "checkpoints"], &json!({})))??
            } else {
                block_on(client.get(&["v1", "audit", "checkpoint"], &[]))??
            }
        }
    };
    if args.json {
        output::print_json(&view)?;
    } else {
        // The note alone, so that `countersign audit checkpoint > cp.txt` keeps it whole.
        print!("{}", view.note);
    }
    Ok(ExitCode::SUCCESS)
}

async fn sign_directly(url: &str, signer: NoteSigner) -> anyhow::Result<CheckpointView> {
    let store = countersign_store::open_existing(url).await?;
    let key = signer.verifier().encode();
    let checkpoints = Checkpoints::start(
        signer,
        std::time::Duration::from_secs(60),
        Publish::default(),
    );
    let signed = checkpoints.sign_head(&*store, chrono::Utc::now()).await;
    store.close().await;
    let (stored, _) =
        signed?.ok_or_else(|| anyhow!("the audit log is empty: nothing to sign yet"))?;
    Ok(CheckpointView::new(&stored, Some(key)))
}
