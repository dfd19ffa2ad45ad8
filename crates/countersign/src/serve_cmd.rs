//! `countersign serve`: resolves the configuration (flags over environment over file),
//! opens the store, loads the policy and runs the server until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use countersign_server::config::{self, Overrides};
use countersign_server::{AppState, Checkpoints, PolicySource, SystemClock, checkpoint_key};

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML config file (SPEC section 5).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on [default: 127.0.0.1:7878].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The database [default: sqlite://countersign.db].
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// The policy file [default: the built-in policy].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let flags = Overrides {
        listen: args.listen,
        database: args.db,
        policy: args.policy,
    };
    let env = Overrides::from_env(|name| std::env::var(name).ok());
    let descriptors = raise_descriptor_limit();
    let config = config::resolve(args.config.as_deref(), env, flags, descriptors)?;
    tracing::info!(
        max_connections = config.limits.max_connections,
        open_files = descriptors.map_or("unknown".to_owned(), |d| d.to_string()),
        "connection cap"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: countersign_server::ServerConfig) -> anyhow::Result<()> {
    let policy = match &config.policy {
        Some(path) => PolicySource::load(path)?,
        None => PolicySource::builtin(),
    };
    tracing::info!(hash = %policy.current().hash(),
        file = %config.policy.as_ref().map_or("built-in".into(), |p| p.display().to_string()),
        "policy loaded");
    let options = countersign_store::SqliteOptions {
        check_integrity: config.integrity_check,
        ..countersign_store::SqliteOptions::default()
    };
    let settings = &config.database_settings;
    let postgres = countersign_store::PostgresOptions {
        pool_size: settings.pool_size,
        statement_timeout: settings.statement_timeout,
        acquire_timeout: settings.statement_timeout,
        migrate: settings.migrate,
        ..countersign_store::PostgresOptions::default()
    };
    let shown = countersign_store::postgres::redact_url(&config.database);
    let store = countersign_store::open_configured(&config.database, options, postgres)
        .await
        .with_context(|| format!("cannot open the database {shown}"))?;
    let key = checkpoint_key::load_or_create(&config.checkpoints.key)?;
    let verifier = key.signer.verifier().encode();
    if key.created {
        tracing::info!(file = %config.checkpoints.key.display(), key = %verifier,
            "created the audit checkpoint key; keep the verifier key with your published checkpoints");
    } else {
        tracing::info!(key = %verifier, "audit checkpoint key loaded");
    }
    let mut state = AppState::new(
        store,
        Arc::new(policy),
        Arc::new(SystemClock),
        config.limits,
    )
    .with_checkpoints(Checkpoints::from_config(key.signer, &config.checkpoints))
    .with_web_settings(config.web)
    .with_graduation(config.graduation)
    .with_stats_config(config.stats);
    if !config.metrics_public {
        state = state.with_private_metrics();
    }
    if config.notify.sends_anything() || config.notify.slack.is_some() {
        let notifications = countersign_server::Notifications::new(
            &config.notify,
            config.public_url.as_deref(),
            &|name| std::env::var(name).ok(),
        )
        .map_err(|e| anyhow::anyhow!("invalid notification settings: {e}"))?;
        tracing::info!(
            targets = config.notify.targets.len(),
            callbacks = !config.notify.callbacks.allow.is_empty(),
            slack = config.notify.slack.is_some(),
            "notifications configured"
        );
        state = state.with_notifications(notifications);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %shown, "countersign is serving");
    countersign_server::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Raises the open-file soft limit to the hard limit (the soft default, often 1024, is a
/// relic of `select()`, which this server does not use) and returns the limit in force, which
/// the connection cap must stay below. `None` where the platform has no such limit.
fn raise_descriptor_limit() -> Option<u64> {
    if !rlimit::Resource::NOFILE.is_supported() {
        return None;
    }
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        // Refused (a hard limit above what the kernel allows, say): keep the current one.
        Err(_) => rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft),
    }
}

/// Logs to stderr; `RUST_LOG` picks the level (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
