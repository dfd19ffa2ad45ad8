//! The notification settings of the config file: `[[notify]]` targets, `callback_allow` and
//! the callbacks' secret, and `[slack]` for Slack approvals. Parsed once into typed settings;
//! every problem is reported at once, each with the line and column where it is.
//!
//! Secrets may be written in the file (`secret = "whsec_..."`) or named by environment
//! variable (`secret_env = "HOOK_SECRET"`); a variable is read when the server starts
//! ([`Secret::resolve`]), so that the file itself need not hold one.

use std::fmt;
use std::time::Duration;

use countersign_core::name::Name;
use countersign_core::notify::{Audience, EventKind};
use reqwest::Url;
use serde::Deserialize;
use toml::Spanned;

use super::allow::UrlPattern;

/// Everything about notifications, callbacks and Slack approvals, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifyConfig {
    pub targets: Vec<Target>,
    pub callbacks: Callbacks,
    pub slack: Option<SlackConfig>,
}

impl NotifyConfig {
    /// Whether anything is configured to be sent.
    pub fn sends_anything(&self) -> bool {
        !self.targets.is_empty() || !self.callbacks.allow.is_empty()
    }
}

/// One `[[notify]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `name`, or `KIND-N` (N: its place among the entries, from 1).
    pub name: String,
    pub kind: TargetKind,
    pub audience: Audience,
    pub delivery: Delivery,
    /// Where the entry is in the file, for errors found later (an unset variable).
    pub place: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TargetKind {
    /// JSON POSTed and signed per Standard Webhooks.
    Webhook {
        url: Url,
        secret: Secret,
    },
    /// A Slack incoming webhook: a Block Kit message.
    Slack {
        url: Url,
    },
    Email(Email),
}

impl TargetKind {
    pub fn label(&self) -> &'static str {
        match self {
            TargetKind::Webhook { .. } => "webhook",
            TargetKind::Slack { .. } => "slack",
            TargetKind::Email(_) => "email",
        }
    }
}

/// An SMTP server and the addresses of an email target.
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

countersign_core::vocabulary! {
    /// How the SMTP connection is protected.
    pub enum SmtpTls {
        /// Plain connection upgraded with STARTTLS, required (port 587 by default).
        Starttls = "starttls",
        /// TLS from the first byte (port 465 by default).
        Tls = "tls",
        /// No encryption: only to a relay on this machine (port 25 by default).
        None = "none",
    }
}

/// How one lane of deliveries is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// How long one try may take, connecting included.
    pub timeout: Duration,
    /// Tries in all before the delivery is failed.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles with each retry up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Tries in flight at once.
    pub concurrency: usize,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 8,
        }
    }
}

/// Agent callbacks: where they may go, how they are signed and tried.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Callbacks {
    /// Empty: no callbacks (a submission naming one is refused).
    pub allow: Vec<UrlPattern>,
    pub secret: Option<Secret>,
    pub delivery: Delivery,
}

/// `[slack]`: the app that posts approval buttons and receives their clicks.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackConfig {
    /// Verifies every interaction request (Slack's `v0` signature).
    pub signing_secret: Secret,
    /// For modals (a reason to reject, a confirmation, modified arguments); without it those
    /// buttons answer with a link to the action instead.
    pub bot_token: Option<Secret>,
    /// Slack's Web API (`https://slack.com/api`), configurable for tests.
    pub api_base_url: Url,
    /// When set, only interactions from this workspace are accepted.
    pub team_id: Option<String>,
}

/// A secret as the file gives it: inline, or the name of an environment variable.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("Secret(<redacted>)"),
            Secret::Env(name) => write!(f, "Secret(env {name})"),
        }
    }
}

impl Secret {
    /// The secret's text, reading the variable with `var` if it is one.
    pub fn resolve(&self, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        match self {
            Secret::Value(value) => Ok(value.clone()),
            Secret::Env(name) => var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("the environment variable {name} is not set")),
        }
    }
}

/// The keys of one `[[notify]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetFile {
    kind: Spanned<String>,
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
    events: Option<Vec<Spanned<String>>>,
    actions: Option<Vec<Spanned<String>>>,
    groups: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<String>>,
    max_attempts: Option<Spanned<i64>>,
    retry_backoff: Option<Spanned<String>>,
    retry_backoff_max: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    smtp: Option<Spanned<String>>,
    tls: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    username_env: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    to: Option<Vec<Spanned<String>>>,
}

/// The top-level keys about callbacks, as written.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallbacksFile {
    pub callback_allow: Option<Vec<Spanned<String>>>,
    pub callback_secret: Option<Spanned<String>>,
    pub callback_secret_env: Option<Spanned<String>>,
    pub callback_timeout: Option<Spanned<String>>,
    pub callback_max_attempts: Option<Spanned<i64>>,
}

/// `[slack]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlackFile {
    signing_secret: Option<Spanned<String>>,
    signing_secret_env: Option<Spanned<String>>,
    bot_token: Option<Spanned<String>>,
    bot_token_env: Option<Spanned<String>>,
    api_base_url: Option<Spanned<String>>,
    team_id: Option<Spanned<String>>,
}

/// Collects problems with where they are.
struct Problems<'t> {
    text: &'t str,
    found: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, message: impl fmt::Display) {
        let (line, column) = position(self.text, span.start);
        self.found
            .push(format!("line {line}, column {column}: {message}"));
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses the notification settings, reporting every problem at once (each a line of the
/// error, with its position).
pub(crate) fn parse(
    text: &str,
    targets: &[Spanned<TargetFile>],
    callbacks: &CallbacksFile,
    slack: Option<&Spanned<SlackFile>>,
) -> Result<NotifyConfig, Vec<String>> {
    let mut problems = Problems {
        text,
        found: Vec::new(),
    };
    let mut config = NotifyConfig::default();
    for (index, entry) in targets.iter().enumerate() {
        if let Some(target) = target(&mut problems, index + 1, entry) {
            if config.targets.iter().any(|t| t.name == target.name) {
                problems.at(
                    entry.span(),
                    format!(
                        "[[notify]] name {:?} is used twice; names identify targets in deliveries",
                        target.name
                    ),
                );
            }
            config.targets.push(target);
        }
    }
    config.callbacks = callbacks_config(&mut problems, callbacks);
    config.slack = slack.and_then(|s| slack_config(&mut problems, s));
    if problems.found.is_empty() {
        Ok(config)
    } else {
        Err(problems.found)
    }
}

fn target(
    problems: &mut Problems<'_>,
    number: usize,
    entry: &Spanned<TargetFile>,
) -> Option<Target> {
    let file = entry.get_ref();
    let (line, _) = position(problems.text, entry.span().start);
    let place = format!("[[notify]] #{number} (line {line})");
    let kind_text = file.kind.get_ref().as_str();
    let name = match &file.name {
        Some(name) => {
            let text = name.get_ref();
            if text.is_empty()
                || text.len() > 64
                || !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problems.at(
                    name.span(),
                    format!("`name` of {place}: expected 1 to 64 letters, digits, `-` or `_`, found {text:?}"),
                );
            }
            text.clone()
        }
        None => format!("{kind_text}-{number}"),
    };
    if name == "callback" {
        problems.at(
            entry.span(),
            format!("{place}: the name \"callback\" is reserved for agent callbacks"),
        );
    }
    let delivery = delivery(problems, &place, file);
    let audience = audience(problems, &place, file);
    let allowed: &[&str] = match kind_text {
        "webhook" => &["url", "secret", "secret_env"],
        "slack" => &["url"],
        "email" => &[
            "smtp",
            "tls",
            "username",
            "username_env",
            "password",
            "password_env",
            "from",
            "to",
        ],
        other => {
            problems.at(
                file.kind.span(),
                format!(
                    "`kind` of {place}: expected one of \"webhook\", \"slack\", \"email\", found {other:?}"
                ),
            );
            return None;
        }
    };
    for (key, span) in kind_keys(file) {
        if !allowed.contains(&key) {
            problems.at(
                span,
                format!("`{key}` does not apply to a {kind_text} target ({place})"),
            );
        }
    }
    let kind = match kind_text {
        "webhook" => {
            let url = url(problems, &place, file.url.as_ref(), entry);
            let secret = match (&file.secret, &file.secret_env) {
                (Some(secret), None) => {
                    if let Err(e) = super::signature::WebhookKey::parse(secret.get_ref()) {
                        problems.at(secret.span(), format!("`secret` of {place}: {e}"));
                    }
                    Some(Secret::Value(secret.get_ref().clone()))
                }
                (None, Some(var)) => Some(Secret::Env(var.get_ref().clone())),
                (Some(_), Some(var)) => {
                    problems.at(
                        var.span(),
                        format!("{place}: give `secret` or `secret_env`, not both"),
                    );
                    None
                }
                (None, None) => {
                    problems.at(
                        entry.span(),
                        format!("{place}: a webhook needs `secret` (\"whsec_...\") or `secret_env` (a variable holding it): receivers verify every message with it"),
                    );
                    None
                }
            };
            TargetKind::Webhook {
                url: url?,
                secret: secret?,
            }
        }
        "slack" => TargetKind::Slack {
            url: url(problems, &place, file.url.as_ref(), entry)?,
        },
        _ => TargetKind::Email(email(problems, &place, file, entry)?),
    };
    Some(Target {
        name,
        kind,
        audience: audience?,
        delivery: delivery?,
        place,
    })
}

/// The kind-specific keys an entry sets, with their spans.
fn kind_keys(file: &TargetFile) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut keys = Vec::new();
    let mut add = |key: &'static str, value: Option<std::ops::Range<usize>>| {
        if let Some(span) = value {
            keys.push((key, span));
        }
    };
    add("url", file.url.as_ref().map(Spanned::span));
    add("secret", file.secret.as_ref().map(Spanned::span));
    add("secret_env", file.secret_env.as_ref().map(Spanned::span));
    add("smtp", file.smtp.as_ref().map(Spanned::span));
    add("tls", file.tls.as_ref().map(Spanned::span));
    add("username", file.username.as_ref().map(Spanned::span));
    add(
        "username_env",
        file.username_env.as_ref().map(Spanned::span),
    );
    add("password", file.password.as_ref().map(Spanned::span));
    add(
        "password_env",
        file.password_env.as_ref().map(Spanned::span),
    );
    add("from", file.from.as_ref().map(Spanned::span));
    add(
        "to",
        file.to
            .as_ref()
            .and_then(|to| to.first().map(Spanned::span)),
    );
    keys
}

fn url(
    problems: &mut Problems<'_>,
    place: &str,
    url: Option<&Spanned<String>>,
    entry: &Spanned<TargetFile>,
) -> Option<Url> {
    let Some(url) = url else {
        problems.at(entry.span(), format!("{place}: `url` is required"));
        return None;
    };
    match http_url(url.get_ref()) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            problems.at(url.span(), format!("`url` of {place}: {e}"));
            None
        }
    }
}

/// An `http://` or `https://` URL with a host and no credentials.
pub(crate) fn http_url(text: &str) -> Result<Url, String> {
    let url =
        Url::parse(text).map_err(|e| format!("expected an http(s) URL, found {text:?} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(format!(
            "expected an http:// or https:// URL, found {text:?}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?} carries credentials; put secrets in `secret` or an environment variable"
        ));
    }
    Ok(url)
}

/// The events a target may name, quoted: `"pending", ... or "graduation_regressed"`.
fn subscribable() -> String {
    let quoted: Vec<String> = EventKind::SUBSCRIBABLE
        .iter()
        .map(|kind| format!("{:?}", kind.as_str()))
        .collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn audience(problems: &mut Problems<'_>, place: &str, file: &TargetFile) -> Option<Audience> {
    let mut ok = true;
    let events = match &file.events {
        None => EventKind::SUBSCRIBABLE.to_vec(),
        Some(list) => {
            let mut events = Vec::new();
            for event in list {
                match event.get_ref().parse::<EventKind>() {
                    Ok(kind) if EventKind::SUBSCRIBABLE.contains(&kind) => events.push(kind),
                    _ => {
                        ok = false;
                        problems.at(
                            event.span(),
                            format!(
                                "`events` of {place}: expected {}, found {:?}",
                                subscribable(),
                                event.get_ref()
                            ),
                        );
                    }
                }
            }
            if list.is_empty() {
                ok = false;
                problems.at(
                    0..0,
                    format!("`events` of {place} is empty: the target would hear nothing"),
                );
            }
            events
        }
    };
    let mut actions = Vec::new();
    for pattern in file.actions.iter().flatten() {
        match Audience::action_glob(pattern.get_ref()) {
            Ok(glob) => actions.push(glob),
            Err(e) => {
                ok = false;
                problems.at(pattern.span(), format!("`actions` of {place}: {e}"));
            }
        }
    }
    let mut groups = Vec::new();
    for group in file.groups.iter().flatten() {
        match Name::parse(group.get_ref()) {
            Ok(name) => groups.push(name),
            Err(e) => {
                ok = false;
                problems.at(group.span(), format!("`groups` of {place}: {e}"));
            }
        }
    }
    ok.then_some(Audience {
        events,
        actions,
        groups,
    })
}

fn delivery(problems: &mut Problems<'_>, place: &str, file: &TargetFile) -> Option<Delivery> {
    let mut delivery = Delivery::default();
    let before = problems.found.len();
    if let Some(text) = &file.timeout {
        delay(problems, place, "timeout", text, &mut delivery.timeout);
    }
    if let Some(text) = &file.retry_backoff {
        delay(
            problems,
            place,
            "retry_backoff",
            text,
            &mut delivery.backoff,
        );
    }
    if let Some(text) = &file.retry_backoff_max {
        delay(
            problems,
            place,
            "retry_backoff_max",
            text,
            &mut delivery.backoff_max,
        );
    }
    if let Some(n) = &file.max_attempts {
        match u32::try_from(*n.get_ref()) {
            Ok(n @ 1..=100) => delivery.max_attempts = n,
            _ => problems.at(
                n.span(),
                format!(
                    "`max_attempts` of {place} must be from 1 to 100, found {}",
                    n.get_ref()
                ),
            ),
        }
    }
    if let Some(n) = &file.concurrency {
        match usize::try_from(*n.get_ref()) {
            Ok(n @ 1..=256) => delivery.concurrency = n,
            _ => problems.at(
                n.span(),
                format!(
                    "`concurrency` of {place} must be from 1 to 256, found {}",
                    n.get_ref()
                ),
            ),
        }
    }
    (problems.found.len() == before).then_some(delivery)
}

fn delay(
    problems: &mut Problems<'_>,
    place: &str,
    key: &str,
    text: &Spanned<String>,
    slot: &mut Duration,
) {
    match parse_delay(text.get_ref()) {
        Ok(value) => *slot = value,
        Err(e) => problems.at(text.span(), format!("`{key}` of {place}: {e}")),
    }
}

/// `250ms`, `10s`, `5m`, `1h`: from 1 ms to 1 day.
pub(crate) fn parse_delay(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration like \"500ms\", \"10s\" or \"5m\", found {text:?}");
    let (digits, unit) = match text.strip_suffix("ms") {
        Some(digits) => (digits, 1),
        None => {
            let unit_at = text.char_indices().last().ok_or_else(bad)?.0;
            let (digits, unit) = text.split_at(unit_at);
            let millis = match unit {
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => return Err(bad()),
            };
            (digits, millis)
        }
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|ms| (1..=86_400_000).contains(ms))
        .ok_or_else(|| format!("{text:?} is out of range: from 1ms to 24h"))?;
    Ok(Duration::from_millis(millis))
}

fn secret_of(
    problems: &mut Problems<'_>,
    place: &str,
    key: &str,
    value: Option<&Spanned<String>>,
    env: Option<&Spanned<String>>,
) -> Option<Secret> {
    match (value, env) {
        (Some(value), None) => Some(Secret::Value(value.get_ref().clone())),
        (None, Some(var)) => Some(Secret::Env(var.get_ref().clone())),
        (Some(_), Some(var)) => {
            problems.at(
                var.span(),
                format!("{place}: give `{key}` or `{key}_env`, not both"),
            );
            None
        }
        (None, None) => None,
    }
}

fn email(
    problems: &mut Problems<'_>,
    place: &str,
    file: &TargetFile,
    entry: &Spanned<TargetFile>,
) -> Option<Email> {
    let before = problems.found.len();
    let tls = match &file.tls {
        None => SmtpTls::Starttls,
        Some(text) => match text.get_ref().parse::<SmtpTls>() {
            Ok(tls) => tls,
            Err(e) => {
                problems.at(text.span(), format!("`tls` of {place}: {e}"));
                SmtpTls::Starttls
            }
        },
    };
    let default_port = match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    };
    let (host, port) = match &file.smtp {
        None => {
            problems.at(
                entry.span(),
                format!("{place}: `smtp` (host or host:port) is required"),
            );
            (String::new(), default_port)
        }
        Some(text) => match split_host_port(text.get_ref(), default_port) {
            Ok(pair) => pair,
            Err(e) => {
                problems.at(text.span(), format!("`smtp` of {place}: {e}"));
                (String::new(), default_port)
            }
        },
    };
    if tls == SmtpTls::None && !is_loopback(&host) && !host.is_empty() {
        let span = file.tls.as_ref().map_or(entry.span(), Spanned::span);
        problems.at(
            span,
            format!("`tls = \"none\"` of {place} is only for a relay on this machine (localhost, 127.0.0.1, ::1), not {host:?}: mail and credentials would cross the network in clear"),
        );
    }
    let username = secret_of(
        problems,
        place,
        "username",
        file.username.as_ref(),
        file.username_env.as_ref(),
    );
    let password = secret_of(
        problems,
        place,
        "password",
        file.password.as_ref(),
        file.password_env.as_ref(),
    );
    if username.is_some() != password.is_some() {
        problems.at(
            entry.span(),
            format!("{place}: give both a username and a password, or neither"),
        );
    }
    let from = match &file.from {
        None => {
            problems.at(entry.span(), format!("{place}: `from` is required"));
            String::new()
        }
        Some(from) => {
            if let Err(e) = from.get_ref().parse::<lettre::message::Mailbox>() {
                problems.at(
                    from.span(),
                    format!(
                        "`from` of {place}: {:?} is not an address ({e})",
                        from.get_ref()
                    ),
                );
            }
            from.get_ref().clone()
        }
    };
    let mut to = Vec::new();
    for address in file.to.iter().flatten() {
        if let Err(e) = address.get_ref().parse::<lettre::message::Mailbox>() {
            problems.at(
                address.span(),
                format!(
                    "`to` of {place}: {:?} is not an address ({e})",
                    address.get_ref()
                ),
            );
        }
        to.push(address.get_ref().clone());
    }
    if to.is_empty() {
        problems.at(
            entry.span(),
            format!("{place}: `to` needs at least one address"),
        );
    }
    (problems.found.len() == before).then_some(Email {
        host,
        port,
        tls,
        username,
        password,
        from,
        to,
    })
}

fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("expected host or host:port, found {text:?}");
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (text, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn callbacks_config(problems: &mut Problems<'_>, file: &CallbacksFile) -> Callbacks {
    let mut callbacks = Callbacks::default();
    for pattern in file.callback_allow.iter().flatten() {
        match UrlPattern::parse(pattern.get_ref()) {
            Ok(parsed) => callbacks.allow.push(parsed),
            Err(e) => problems.at(pattern.span(), format!("`callback_allow`: {e}")),
        }
    }
    callbacks.secret = secret_of(
        problems,
        "the callbacks",
        "callback_secret",
        file.callback_secret.as_ref(),
        file.callback_secret_env.as_ref(),
    );
    if let Some(secret) = &file.callback_secret
        && let Err(e) = super::signature::WebhookKey::parse(secret.get_ref())
    {
        problems.at(secret.span(), format!("`callback_secret`: {e}"));
    }
    if !callbacks.allow.is_empty() && callbacks.secret.is_none() {
        let span = file
            .callback_allow
            .as_ref()
            .and_then(|list| list.first())
            .map_or(0..0, Spanned::span);
        problems.at(
            span,
            "`callback_allow` needs `callback_secret` (\"whsec_...\") or `callback_secret_env`: agents verify callbacks with it",
        );
    }
    if let Some(text) = &file.callback_timeout {
        delay(
            problems,
            "the callbacks",
            "callback_timeout",
            text,
            &mut callbacks.delivery.timeout,
        );
    }
    if let Some(n) = &file.callback_max_attempts {
        match u32::try_from(*n.get_ref()) {
            Ok(n @ 1..=100) => callbacks.delivery.max_attempts = n,
            _ => problems.at(
                n.span(),
                format!(
                    "`callback_max_attempts` must be from 1 to 100, found {}",
                    n.get_ref()
                ),
            ),
        }
    }
    callbacks
}

fn slack_config(problems: &mut Problems<'_>, file: &Spanned<SlackFile>) -> Option<SlackConfig> {
    let slack = file.get_ref();
    let signing_secret = secret_of(
        problems,
        "[slack]",
        "signing_secret",
        slack.signing_secret.as_ref(),
        slack.signing_secret_env.as_ref(),
    );
    if signing_secret.is_none() && slack.signing_secret_env.is_none() {
        problems.at(
            file.span(),
            "[slack] needs `signing_secret` or `signing_secret_env` (the app's signing secret): every interaction is verified with it",
        );
    }
    let bot_token = secret_of(
        problems,
        "[slack]",
        "bot_token",
        slack.bot_token.as_ref(),
        slack.bot_token_env.as_ref(),
    );
    let api_base_url = match &slack.api_base_url {
        None => Url::parse("https://slack.com/api/").ok(),
        Some(text) => match http_url(text.get_ref()) {
            Ok(mut url) => {
                // Methods are joined onto it: `.../api/` + `views.open`.
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                Some(url)
            }
            Err(e) => {
                problems.at(text.span(), format!("`api_base_url` of [slack]: {e}"));
                None
            }
        },
    };
    let team_id = slack.team_id.as_ref().map(|t| t.get_ref().clone());
    Some(SlackConfig {
        signing_secret: signing_secret?,
        bot_token,
        api_base_url: api_base_url?,
        team_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        let ok: &[(&str, u64)] = &[
            ("250ms", 250),
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_delay(text),
                Ok(Duration::from_millis(*millis)),
                "{text}"
            );
        }
        for bad in ["", "ms", "10", "1.5s", "-1s", "0ms", "2d", "25h"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_and_ports() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            ("smtp.example.com", Some(("smtp.example.com", 587))),
            ("smtp.example.com:2525", Some(("smtp.example.com", 2525))),
            ("127.0.0.1:1025", Some(("127.0.0.1", 1025))),
            ("[::1]:25", Some(("::1", 25))),
            ("smtp.example.com:x", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let found = split_host_port(text, 587).ok();
            let expected = expected.map(|(host, port)| (host.to_owned(), port));
            assert_eq!(found, expected, "{text}");
        }
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("::1"));
        assert!(!is_loopback("smtp.example.com") && !is_loopback("10.0.0.1"));
    }
}
