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
pub use crate::notify::config::NotifyConfig;
use crate::notify::config::{CallbacksFile, SlackFile, TargetFile};

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
    /// `[[notify]]` targets, agent callbacks and Slack approvals.
    pub notify: NotifyConfig,
    /// The web UI's sessions: cookie security, idle and absolute expiry, re-authentication.
    pub web: crate::web::WebSettings,
    /// Graduation's thresholds, the regression check's interval, the replay time limit.
    pub graduation: crate::graduation::GraduationSettings,
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
    graduation: Option<GraduationFile>,
    /// `[stats]`: signal and fatigue thresholds, `/metrics` label caps.
    #[serde(default)]
    stats: crate::stats_config::StatsFile,
    /// Reviewer notifications (`[[notify]]`), checked by `notify::config`.
    #[serde(default)]
    notify: Vec<toml::Spanned<TargetFile>>,
    callback_allow: Option<Vec<toml::Spanned<String>>>,
    callback_secret: Option<toml::Spanned<String>>,
    callback_secret_env: Option<toml::Spanned<String>>,
    callback_timeout: Option<toml::Spanned<String>>,
    callback_max_attempts: Option<toml::Spanned<i64>>,
    slack: Option<toml::Spanned<SlackFile>>,
}

/// `[graduation]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraduationFile {
    target: Option<f64>,
    min_decisions: Option<u64>,
    min_reviews: Option<u64>,
    review_sample: Option<f64>,
    window: Option<String>,
    check_interval: Option<String>,
    replay_time_limit: Option<String>,
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
    #[error("invalid config file {path}:\n  {}", problems.join("\n  "))]
    Notify { path: String, problems: Vec<String> },
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
    let (file_config, base_dir, notify) = match file {
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: shown.clone(),
                error,
            })?;
            let parsed = parse_file(&text).map_err(|error| ConfigError::Parse {
                path: shown.clone(),
                error,
            })?;
            let notify = notify_config(&text, &parsed).map_err(|problems| ConfigError::Notify {
                path: shown,
                problems,
            })?;
            (parsed, path.parent().map(Path::to_path_buf), notify)
        }
        None => (FileConfig::default(), None, NotifyConfig::default()),
    };
    let limits = limits(&file_config, descriptors)?;
    let web = web_settings(&file_config)?;
    let graduation = graduation_settings(file_config.graduation.as_ref())?;
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
        graduation,
        notify,
    })
}

/// The notification settings of the file, every problem with its position.
fn notify_config(text: &str, file: &FileConfig) -> Result<NotifyConfig, Vec<String>> {
    let callbacks = CallbacksFile {
        callback_allow: file.callback_allow.clone(),
        callback_secret: file.callback_secret.clone(),
        callback_secret_env: file.callback_secret_env.clone(),
        callback_timeout: file.callback_timeout.clone(),
        callback_max_attempts: file.callback_max_attempts.clone(),
    };
    crate::notify::config::parse(text, &file.notify, &callbacks, file.slack.as_ref())
}

/// `[graduation]` over the defaults, each value checked.
fn graduation_settings(
    file: Option<&GraduationFile>,
) -> Result<crate::graduation::GraduationSettings, ConfigError> {
    let mut settings = crate::graduation::GraduationSettings::default();
    let Some(file) = file else {
        return Ok(settings);
    };
    let fraction = |name: &'static str, value: Option<f64>, default: f64| match value {
        None => Ok(default),
        Some(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Some(v) => Err(ConfigError::Value {
            name,
            message: format!("expected a number above 0 and at most 1, found {v}"),
        }),
    };
    let duration = |name: &'static str, value: Option<&str>| -> Result<Option<u64>, ConfigError> {
        value
            .map(|text| {
                text.parse::<ReviewDuration>()
                    .map(ReviewDuration::seconds)
                    .map_err(|e| ConfigError::Value {
                        name,
                        message: e.to_string(),
                    })
            })
            .transpose()
    };
    let t = &mut settings.thresholds;
    t.target = fraction("graduation.target", file.target, t.target)?;
    t.review_sample = fraction(
        "graduation.review_sample",
        file.review_sample,
        t.review_sample,
    )?;
    t.min_decisions = file.min_decisions.unwrap_or(t.min_decisions).max(1);
    t.min_reviews = file.min_reviews.unwrap_or(t.min_reviews).max(1);
    if let Some(seconds) = duration("graduation.window", file.window.as_deref())? {
        t.window_days = (seconds.div_ceil(86_400)) as u32;
    }
    if let Some(seconds) = duration("graduation.check_interval", file.check_interval.as_deref())? {
        settings.check_interval = Duration::from_secs(seconds);
    }
    if let Some(seconds) = duration(
        "graduation.replay_time_limit",
        file.replay_time_limit.as_deref(),
    )? {
        settings.replay_time_limit = Duration::from_secs(seconds);
    }
    Ok(settings)
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

    /// `[[notify]]`, callbacks and `[slack]`: every problem at once, each where it is.
    #[test]
    fn notification_settings() {
        let check = |text: &str| -> Result<NotifyConfig, Vec<String>> {
            notify_config(text, &parse_file(text).map_err(|e| vec![e.to_string()])?)
        };
        let good = check(
            r#"
public_url = "https://countersign.example.com"
callback_allow = ["https://agents.internal/*"]
callback_secret_env = "CALLBACK_SECRET"

[[notify]]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
events = ["pending", "reminder", "escalated", "expired", "decided", "graduation_regressed"]
actions = ["refund.*"]
groups = ["Finance"]
timeout = "500ms"

[[notify]]
kind = "slack"
name = "leads-channel"
url = "https://hooks.slack.com/services/T/B/X"

[[notify]]
kind = "email"
smtp = "smtp.example.com"
username_env = "SMTP_USER"
password_env = "SMTP_PASSWORD"
from = "Countersign <countersign@example.com>"
to = ["finance@example.com"]

[slack]
signing_secret_env = "SLACK_SIGNING_SECRET"
"#,
        )
        .unwrap();
        let names: Vec<&str> = good.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["webhook-1", "leads-channel", "email-3"]);
        assert_eq!(good.targets[0].audience.groups[0].as_str(), "finance");
        assert_eq!(good.targets[0].delivery.timeout, Duration::from_millis(500));
        assert_eq!(good.callbacks.allow.len(), 1);
        assert!(good.slack.is_some());

        #[rustfmt::skip]
        let refused: &[(&str, &[&str])] = &[
            ("[[notify]]\nkind = \"pager\"\n", &[
                "line 2, column 8: `kind` of [[notify]] #1 (line 1): expected one of \"webhook\", \"slack\", \"email\", found \"pager\"",
            ]),
            ("[[notify]]\nkind = \"webhook\"\nurl = \"ftp://x\"\nsecret = \"nope\"\nevents = [\"pending\", \"cancelled\"]\n", &[
                "line 5, column 22: `events` of [[notify]] #1 (line 1): expected \"pending\", \"reminder\", \"escalated\", \"expired\", \"decided\" or \"graduation_regressed\", found \"cancelled\"",
                "line 4, column 10: `secret` of [[notify]] #1 (line 1): expected a Standard Webhooks secret starting with \"whsec_\"",
                "line 3, column 7: `url` of [[notify]] #1 (line 1): expected an http:// or https:// URL, found \"ftp://x\"",
            ]),
            ("[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nevents = [\"decided\", \"graduation_regresed\"]\n", &[
                "line 4, column 22: `events` of [[notify]] #1 (line 1): expected \"pending\", \"reminder\", \"escalated\", \"expired\", \"decided\" or \"graduation_regressed\", found \"graduation_regresed\"",
            ]),
            ("[[notify]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\ngroups = [\"\"]\n", &[
                "`groups` of [[notify]] #1 (line 1)",
                "line 4, column 10: `secret` does not apply to a slack target ([[notify]] #1 (line 1))",
            ]),
            ("[[notify]]\nkind = \"email\"\nsmtp = \"mail.example.com\"\ntls = \"none\"\nfrom = \"not an address\"\nto = []\n", &[
                "line 4, column 7: `tls = \"none\"` of [[notify]] #1 (line 1) is only for a relay on this machine",
                "line 5, column 8: `from` of [[notify]] #1 (line 1): \"not an address\" is not an address",
                "`to` needs at least one address",
            ]),
            ("callback_allow = [\"agents.internal\"]\n", &[
                "line 1, column 19: `callback_allow`: expected a URL pattern",
            ]),
            ("callback_allow = [\"https://agents.internal/*\"]\n", &[
                "`callback_allow` needs `callback_secret`",
            ]),
            ("[slack]\nbot_token = \"xoxb-1\"\n", &[
                "[slack] needs `signing_secret` or `signing_secret_env`",
            ]),
            ("[[notify]]\nkind = \"slack\"\nname = \"a\"\nurl = \"https://h/x\"\n[[notify]]\nkind = \"slack\"\nname = \"a\"\nurl = \"https://h/y\"\n", &[
                "[[notify]] name \"a\" is used twice",
            ]),
        ];
        for (text, expected) in refused {
            let problems = check(text).unwrap_err();
            assert_eq!(problems.len(), expected.len(), "{text}: {problems:#?}");
            for want in *expected {
                assert!(
                    problems.iter().any(|p| p.contains(want)),
                    "{text}: no problem says {want:?} in {problems:#?}"
                );
            }
        }
        // An unknown key is refused by the parser, with its position.
        let error = parse_file("[[notify]]\nkind = \"webhook\"\nurll = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("line 3"), "{error}");
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
