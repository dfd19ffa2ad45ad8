//! Server configuration (SPEC section 5): a TOML file, overridden by environment variables,
//! overridden by command-line flags. Parsed once into [`ServerConfig`]; a bad file is
//! refused with the line and column of the problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countersign_core::duration::ReviewDuration;

use serde::Deserialize;

pub use crate::limits::Limits;
use crate::limits::connection_cap;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://countersign.db";
/// The default checkpoint signing key file, beside the default database.
pub const DEFAULT_CHECKPOINT_KEY: &str = "countersign-checkpoint.key";
/// How often the audit chain's head is signed by default (when it moved).
pub const DEFAULT_CHECKPOINT_INTERVAL: &str = "1m";

/// Everything `serve` needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database: String,
    /// `None`: the built-in default policy.
    pub policy: Option<PathBuf>,
    pub public_url: Option<String>,
    pub limits: Limits,
    /// Whether `/metrics` answers without a token.
    pub metrics_public: bool,
    /// Signed checkpoints of the audit chain.
    pub checkpoints: CheckpointConfig,
    /// Run SQLite's `quick_check` on the database at start and refuse a damaged file.
    pub integrity_check: bool,
    /// The web UI's sessions: cookie security, idle and absolute expiry, re-authentication.
    pub web: crate::web::WebSettings,
    /// Thresholds of the statistics' signals and fatigue figures, `/metrics` label caps.
    pub stats: crate::stats_config::StatsConfig,
    /// Connections to PostgreSQL (unused with SQLite).
    pub database_settings: DatabaseSettings,
}

/// How `serve` uses a PostgreSQL database: the file's `database_pool_size`,
/// `database_statement_timeout` and `database_migrate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The most connections this instance opens.
    pub pool_size: usize,
    /// The longest a statement may run (and a request wait for a connection).
    pub statement_timeout: Duration,
    /// Migrate the schema at start; off: refuse to start on an older schema, for
    /// deployments that migrate explicitly (`countersign migrate`).
    pub migrate: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            migrate: true,
        }
    }
}

/// Where the checkpoint key lives, how often checkpoints are signed, and where each new one
/// is published (outside the database, so that it outlives tampering with it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The Ed25519 signing key (C2SP `PRIVATE+KEY+...` text), created at first start.
    pub key: PathBuf,
    /// How often the head is signed when it moved.
    pub interval: Duration,
    /// A file each new checkpoint is appended to.
    pub publish_file: Option<PathBuf>,
    /// A URL each new checkpoint is POSTed to (`text/plain`, the signed note).
    pub webhook: Option<String>,
}

/// Settings from one layer (environment or flags); `None` leaves the layer below in force.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub policy: Option<PathBuf>,
}

impl Overrides {
    /// The `COUNTERSIGN_*` variables, read through `var` so tests need not touch the
    /// process environment.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Overrides {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        Overrides {
            listen: get("COUNTERSIGN_LISTEN"),
            database: get("COUNTERSIGN_DB"),
            policy: get("COUNTERSIGN_POLICY").map(PathBuf::from),
        }
    }
}

/// The config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database: Option<String>,
    policy: Option<PathBuf>,
    public_url: Option<String>,
    max_body_bytes: Option<usize>,
    max_args_bytes: Option<usize>,
    max_wait_seconds: Option<u64>,
    max_reasoning_bytes: Option<usize>,
    max_context_bytes: Option<usize>,
    max_page_bytes: Option<usize>,
    max_waits_per_token: Option<usize>,
    max_connections: Option<usize>,
    header_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    metrics_public: Option<bool>,
    checkpoint_key: Option<PathBuf>,
    checkpoint_interval: Option<String>,
    checkpoint_file: Option<PathBuf>,
    checkpoint_webhook: Option<String>,
    integrity_check: Option<bool>,
    database_pool_size: Option<usize>,
    database_statement_timeout: Option<String>,
    database_migrate: Option<bool>,
    session_idle_timeout: Option<String>,
    session_max_age: Option<String>,
    reauth_window: Option<String>,
    /// `[stats]`: signal and fatigue thresholds, `/metrics` label caps.
    #[serde(default)]
    stats: crate::stats_config::StatsFile,
    /// Reviewer notifications; accepted so that SPEC-shaped files load, not acted on yet.
    #[serde(default)]
    notify: Vec<toml::Table>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("invalid config file {path}:\n{error}")]
    Parse {
        path: String,
        error: toml::de::Error,
    },
    #[error("invalid listen address {0:?}: expected host:port, e.g. 127.0.0.1:7878")]
    Listen(String),
    #[error("invalid {name}: {message}")]
    Value { name: &'static str, message: String },
}

/// Resolves the configuration: `file` (path of the optional config file), then `env`,
/// then `flags`. `descriptors` is the process's open-file limit, which the connection cap
/// must stay below (`None`: unknown).
pub fn resolve(
    file: Option<&Path>,
    env: Overrides,
    flags: Overrides,
    descriptors: Option<u64>,
) -> Result<ServerConfig, ConfigError> {
    let (file_config, base_dir) = match file {
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: shown.clone(),
                error,
            })?;
            let parsed =
                parse_file(&text).map_err(|error| ConfigError::Parse { path: shown, error })?;
            (parsed, path.parent().map(Path::to_path_buf))
        }
        None => (FileConfig::default(), None),
    };
    if !file_config.notify.is_empty() {
        tracing::warn!(
            count = file_config.notify.len(),
            "[[notify]] entries are accepted but notifications are not sent by this version"
        );
    }
    let limits = limits(&file_config, descriptors)?;
    let web = web_settings(&file_config)?;
    let stats = file_config
        .stats
        .resolve()
        .map_err(|(name, message)| ConfigError::Value { name, message })?;
    let database_settings = database_settings(&file_config)?;
    // Paths in the file are relative to the file, as users of config files expect.
    let relative = |p: PathBuf| match &base_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    let file_policy = file_config.policy.map(relative);
    let checkpoints = CheckpointConfig {
        key: file_config
            .checkpoint_key
            .map(relative)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CHECKPOINT_KEY)),
        interval: checkpoint_interval(file_config.checkpoint_interval.as_deref())?,
        publish_file: file_config.checkpoint_file.map(relative),
        webhook: file_config
            .checkpoint_webhook
            .map(|url| {
                if url.starts_with("http://") || url.starts_with("https://") {
                    Ok(url)
                } else {
                    Err(ConfigError::Value {
                        name: "checkpoint_webhook",
                        message: format!("expected an http:// or https:// URL, found {url:?}"),
                    })
                }
            })
            .transpose()?,
    };
    let listen = flags
        .listen
        .or(env.listen)
        .or(file_config.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen.parse().map_err(|_| ConfigError::Listen(listen))?;
    let database = flags
        .database
        .or(env.database)
        .or(file_config.database)
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    Ok(ServerConfig {
        web,
        stats,
        database_settings,
        listen,
        database,
        policy: flags.policy.or(env.policy).or(file_policy),
        public_url: file_config.public_url,
        limits,
        metrics_public: file_config.metrics_public.unwrap_or(true),
        checkpoints,
        integrity_check: file_config.integrity_check.unwrap_or(true),
    })
}

/// The limits the file sets, over the defaults, each checked.
fn limits(file: &FileConfig, descriptors: Option<u64>) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let seconds = |value: Option<u64>, default: std::time::Duration| {
        value.map_or(default, std::time::Duration::from_secs)
    };
    let limits = Limits {
        max_body_bytes: file.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        max_args_bytes: file.max_args_bytes.unwrap_or(defaults.max_args_bytes),
        max_reasoning_bytes: file
            .max_reasoning_bytes
            .unwrap_or(defaults.max_reasoning_bytes),
        max_context_bytes: file.max_context_bytes.unwrap_or(defaults.max_context_bytes),
        max_page_bytes: file.max_page_bytes.unwrap_or(defaults.max_page_bytes),
        max_wait_seconds: file.max_wait_seconds.unwrap_or(defaults.max_wait_seconds),
        max_waits_per_token: file
            .max_waits_per_token
            .unwrap_or(defaults.max_waits_per_token),
        max_connections: connection_cap(file.max_connections, descriptors).map_err(|message| {
            ConfigError::Value {
                name: "max_connections",
                message,
            }
        })?,
        header_timeout: seconds(file.header_timeout_seconds, defaults.header_timeout),
        body_timeout: seconds(file.body_timeout_seconds, defaults.body_timeout),
        idle_timeout: seconds(file.idle_timeout_seconds, defaults.idle_timeout),
    };
    let at_least = [
        ("max_body_bytes", limits.max_body_bytes as u64, 1024),
        ("max_args_bytes", limits.max_args_bytes as u64, 2),
        ("max_reasoning_bytes", limits.max_reasoning_bytes as u64, 1),
        ("max_context_bytes", limits.max_context_bytes as u64, 2),
        ("max_page_bytes", limits.max_page_bytes as u64, 1),
        ("max_waits_per_token", limits.max_waits_per_token as u64, 1),
        ("header_timeout_seconds", limits.header_timeout.as_secs(), 1),
        ("body_timeout_seconds", limits.body_timeout.as_secs(), 1),
        ("idle_timeout_seconds", limits.idle_timeout.as_secs(), 1),
    ];
    for (name, value, minimum) in at_least {
        if value < minimum {
            return Err(ConfigError::Value {
                name,
                message: format!("expected at least {minimum}, found {value}"),
            });
        }
    }
    // The API refuses a longer `?wait=` than the protocol's bound, so a larger setting
    // could never be asked for: a mistake to say so, not to accept.
    let longest = crate::params::MAX_WAIT_SECONDS;
    if limits.max_wait_seconds > longest {
        return Err(ConfigError::Value {
            name: "max_wait_seconds",
            message: format!(
                "expected at most {longest} (the longest wait the API takes), found {}",
                limits.max_wait_seconds
            ),
        });
    }
    Ok(limits)
}

/// The web UI's session settings: durations from the file over the defaults; cookies are
/// `Secure` when `public_url` is https.
fn web_settings(file: &FileConfig) -> Result<crate::web::WebSettings, ConfigError> {
    let defaults = crate::web::WebSettings::default();
    let duration =
        |name: &'static str, text: &Option<String>, default: chrono::TimeDelta| match text {
            None => Ok(default),
            Some(text) => text
                .parse::<ReviewDuration>()
                .map(|d| d.as_chrono())
                .map_err(|error| ConfigError::Value {
                    name,
                    message: format!("{error}"),
                }),
        };
    Ok(crate::web::WebSettings {
        secure_cookies: file
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://")),
        idle_timeout: duration(
            "session_idle_timeout",
            &file.session_idle_timeout,
            defaults.idle_timeout,
        )?,
        max_age: duration("session_max_age", &file.session_max_age, defaults.max_age)?,
        reauth_window: duration("reauth_window", &file.reauth_window, defaults.reauth_window)?,
    })
}

fn database_settings(file: &FileConfig) -> Result<DatabaseSettings, ConfigError> {
    let defaults = DatabaseSettings::default();
    let pool_size = file.database_pool_size.unwrap_or(defaults.pool_size);
    if !(1..=1000).contains(&pool_size) {
        return Err(ConfigError::Value {
            name: "database_pool_size",
            message: format!("expected 1 to 1000 connections, found {pool_size}"),
        });
    }
    let statement_timeout = match &file.database_statement_timeout {
        None => defaults.statement_timeout,
        Some(text) => {
            let duration: ReviewDuration = text.parse().map_err(|error| ConfigError::Value {
                name: "database_statement_timeout",
                message: format!("{error}"),
            })?;
            Duration::from_secs(duration.seconds())
        }
    };
    Ok(DatabaseSettings {
        pool_size,
        statement_timeout,
        migrate: file.database_migrate.unwrap_or(defaults.migrate),
    })
}

fn checkpoint_interval(text: Option<&str>) -> Result<Duration, ConfigError> {
    let text = text.unwrap_or(DEFAULT_CHECKPOINT_INTERVAL);
    let duration: ReviewDuration = text.parse().map_err(|error| ConfigError::Value {
        name: "checkpoint_interval",
        message: format!("{error}"),
    })?;
    Ok(Duration::from_secs(duration.seconds()))
}

fn parse_file(text: &str) -> Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_errors() {
        let none = resolve(None, Overrides::default(), Overrides::default(), None).unwrap();
        assert_eq!(none.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(none.database, DEFAULT_DATABASE);
        assert_eq!(none.policy, None);

        let env = Overrides {
            listen: Some("127.0.0.1:1".into()),
            database: Some("sqlite://env.db".into()),
            policy: None,
        };
        let flags = Overrides {
            listen: Some("127.0.0.1:2".into()),
            ..Overrides::default()
        };
        let both = resolve(None, env, flags, None).unwrap();
        assert_eq!(both.listen.port(), 2);
        assert_eq!(both.database, "sqlite://env.db");

        assert_eq!(none.checkpoints.interval, Duration::from_secs(60));
        assert_eq!(none.checkpoints.key, PathBuf::from(DEFAULT_CHECKPOINT_KEY));
        assert!(none.integrity_check);

        let error = parse_file("listen = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(parse_file("[[notify]]\nkind = \"webhook\"\n").is_ok());
    }

    #[test]
    fn database_settings_from_the_file() {
        let settings_of =
            |text: &str| database_settings(&parse_file(text).unwrap()).map_err(|e| e.to_string());
        assert_eq!(settings_of("").unwrap(), DatabaseSettings::default());
        let set = settings_of(
            "database_pool_size = 32\ndatabase_statement_timeout = \"30s\"\ndatabase_migrate = false\n",
        )
        .unwrap();
        assert_eq!(
            set,
            DatabaseSettings {
                pool_size: 32,
                statement_timeout: Duration::from_secs(30),
                migrate: false,
            }
        );
        assert_eq!(
            settings_of("database_pool_size = 0").unwrap_err(),
            "invalid database_pool_size: expected 1 to 1000 connections, found 0"
        );
        assert!(
            settings_of("database_statement_timeout = \"soon\"")
                .unwrap_err()
                .starts_with("invalid database_statement_timeout")
        );
    }

    #[test]
    fn limits_from_the_file() {
        let limits_of = |text: &str, descriptors: Option<u64>| {
            limits(&parse_file(text).unwrap(), descriptors).map_err(|e| e.to_string())
        };
        let set = limits_of(
            "max_reasoning_bytes = 10\nmax_context_bytes = 20\nmax_page_bytes = 30\n\
             max_waits_per_token = 4\nmax_connections = 50\nheader_timeout_seconds = 2\n\
             body_timeout_seconds = 3\nidle_timeout_seconds = 5\n",
            Some(1024),
        )
        .unwrap();
        assert_eq!(
            (
                set.max_reasoning_bytes,
                set.max_context_bytes,
                set.max_page_bytes
            ),
            (10, 20, 30)
        );
        assert_eq!((set.max_waits_per_token, set.max_connections), (4, 50));
        assert_eq!(set.header_timeout, std::time::Duration::from_secs(2));
        assert_eq!(set.body_timeout, std::time::Duration::from_secs(3));
        assert_eq!(set.idle_timeout, std::time::Duration::from_secs(5));
        // Without a setting, the connection cap fits the descriptor limit.
        assert_eq!(limits_of("", Some(256)).unwrap().max_connections, 192);

        #[rustfmt::skip]
        let refused = [
            ("max_body_bytes = 10", "invalid max_body_bytes: expected at least 1024, found 10"),
            ("max_reasoning_bytes = 0", "invalid max_reasoning_bytes: expected at least 1, found 0"),
            ("max_page_bytes = 0", "invalid max_page_bytes: expected at least 1, found 0"),
            ("max_waits_per_token = 0", "invalid max_waits_per_token: expected at least 1, found 0"),
            ("header_timeout_seconds = 0", "invalid header_timeout_seconds: expected at least 1, found 0"),
            ("idle_timeout_seconds = 0", "invalid idle_timeout_seconds: expected at least 1, found 0"),
            ("max_connections = 0", "invalid max_connections: expected at least 1, found 0"),
            ("max_wait_seconds = 3601", "invalid max_wait_seconds: expected at most 3600 (the longest wait the API takes), found 3601"),
            ("max_connections = 5000", "invalid max_connections: 5000 connections need 5064 open files, but this process may open only 1024"),
        ];
        for (text, expected) in refused {
            let error = limits_of(text, Some(1024)).unwrap_err();
            assert!(error.starts_with(expected), "{text}: {error}");
        }
        assert!(parse_file("max_connections = -1").is_err());
    }
}
