//! Notifications and agent callbacks: the configured targets (webhook, Slack, email), the
//! router the store consults when an event happens, the senders, and the dispatcher that
//! delivers the outbox.
//!
//! The path of an event: a change commits in the store's writer together with its event
//! and one delivery per destination ([`payload::Router`] decides which); the writer wakes
//! the dispatcher (`dispatch.rs`), which reads due deliveries lane by lane (a lane is a
//! receiver: a target, or one callback origin), sends each with the lane's timeout, and
//! records the try: delivered, retried later with backoff and jitter, or failed after the
//! last try (audited, counted, listed at `GET /v1/deliveries?status=failed`). Nothing waits
//! on a receiver but its own lane: not the API, not the SLA ladder, not other receivers.

pub mod allow;
pub mod config;
pub(crate) mod dispatch;
mod email;
pub mod payload;
pub mod signature;
pub mod slack_message;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use countersign_store::{Delivery, EventRouter};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use self::allow::UrlPattern;
use self::config::{Delivery as DeliverySettings, NotifyConfig, SlackConfig, TargetKind};
use self::email::Mailer;
use self::signature::WebhookKey;

/// A target as it sends.
enum Channel {
    Webhook { url: Url, key: WebhookKey },
    Slack { url: Url },
    Email(Box<Mailer>),
}

struct Sender {
    channel: Channel,
    delivery: DeliverySettings,
}

/// `[slack]` with its secrets read.
#[derive(Clone)]
pub struct Slack {
    pub signing_secret: String,
    pub bot_token: Option<String>,
    pub api_base_url: Url,
    pub team_id: Option<String>,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("api_base_url", &self.api_base_url.as_str())
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

/// The notification side of a running server.
pub struct Notifications {
    router: Arc<payload::Router>,
    senders: HashMap<String, Sender>,
    allow: Vec<UrlPattern>,
    callback_key: Option<WebhookKey>,
    callback_delivery: DeliverySettings,
    slack: Option<Slack>,
    /// Deliveries' client, used on the delivery thread only.
    http: reqwest::Client,
    /// Slack interactions' client (answers and forms), used on the API's runtime: a pooled
    /// connection belongs to the runtime that opened it.
    interactive: reqwest::Client,
    counters: Counters,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications")
            .field("targets", &self.senders.keys().collect::<Vec<_>>())
            .field("callbacks", &!self.allow.is_empty())
            .field("slack", &self.slack)
            .finish()
    }
}

impl Notifications {
    /// Builds the senders from the configuration, reading secrets named by environment
    /// variable with `var`. Fails with what to fix (a variable not set, a secret that is
    /// not one).
    pub fn new(
        config: &NotifyConfig,
        public_url: Option<&str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Notifications, String> {
        let public_url = public_url
            .map(|text| {
                let mut url = config::http_url(text).map_err(|e| format!("public_url: {e}"))?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                Ok::<_, String>(url)
            })
            .transpose()?;
        let mut senders = HashMap::new();
        for target in &config.targets {
            let place = &target.place;
            let channel = match &target.kind {
                TargetKind::Webhook { url, secret } => Channel::Webhook {
                    url: url.clone(),
                    key: WebhookKey::parse(
                        &secret.resolve(var).map_err(|e| format!("{place}: {e}"))?,
                    )
                    .map_err(|e| format!("{place}: secret: {e}"))?,
                },
                TargetKind::Slack { url } => Channel::Slack { url: url.clone() },
                TargetKind::Email(email) => Channel::Email(Box::new(
                    Mailer::new(email, target.delivery.timeout, var)
                        .map_err(|e| format!("{place}: {e}"))?,
                )),
            };
            senders.insert(
                target.name.clone(),
                Sender {
                    channel,
                    delivery: target.delivery,
                },
            );
        }
        let callback_key = config
            .callbacks
            .secret
            .as_ref()
            .map(|secret| {
                let text = secret
                    .resolve(var)
                    .map_err(|e| format!("callback_secret: {e}"))?;
                WebhookKey::parse(&text).map_err(|e| format!("callback_secret: {e}"))
            })
            .transpose()?;
        let slack = config
            .slack
            .as_ref()
            .map(|s| resolve_slack(s, var))
            .transpose()?;
        let client = || {
            reqwest::Client::builder()
                // A receiver may not bounce a delivery elsewhere (an admitted callback URL
                // redirecting to an internal address).
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot set up the HTTP client: {e}"))
        };
        let (http, interactive) = (client()?, client()?);
        Ok(Notifications {
            router: Arc::new(payload::Router {
                targets: config.targets.clone(),
                public_url,
                callbacks: !config.callbacks.allow.is_empty(),
            }),
            senders,
            allow: config.callbacks.allow.clone(),
            callback_key,
            callback_delivery: config.callbacks.delivery,
            slack,
            http,
            interactive,
            counters: Counters::default(),
        })
    }

    /// The router the store consults inside its write transactions.
    pub fn router(&self) -> Arc<dyn EventRouter> {
        self.router.clone()
    }

    /// The action's page at `public_url`, if configured.
    pub fn action_url(&self, id: &str) -> Option<String> {
        self.router.action_url(id)
    }

    /// Checks a submission's `callback_url` against `callback_allow`.
    pub fn check_callback(&self, url: &str) -> Result<String, String> {
        allow::check(&self.allow, url).map(String::from)
    }

    pub fn slack(&self) -> Option<&Slack> {
        self.slack.as_ref()
    }

    /// The client for Slack's Web API and response URLs.
    pub(crate) fn interactive_client(&self) -> &reqwest::Client {
        &self.interactive
    }

    /// How deliveries of `lane` are tried.
    pub(crate) fn lane_settings(&self, lane: &str) -> DeliverySettings {
        match self.senders.get(lane) {
            Some(sender) => sender.delivery,
            None => self.callback_delivery,
        }
    }

    /// One try of one delivery, within its lane's timeout; `now` (the server's clock) is
    /// what "time left" in messages counts from.
    pub(crate) async fn send(
        &self,
        delivery: &Delivery,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), String> {
        let settings = if delivery.target == "callback" {
            self.callback_delivery
        } else {
            self.senders
                .get(&delivery.target)
                .map(|s| s.delivery)
                .ok_or_else(|| {
                    format!("the target {:?} is no longer configured", delivery.target)
                })?
        };
        let timeout = settings.timeout;
        match tokio::time::timeout(timeout, self.send_now(delivery, now)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}", humantime(timeout))),
        }
    }

    async fn send_now(
        &self,
        delivery: &Delivery,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), String> {
        let body = delivery.body.as_deref().unwrap_or("{}");
        if delivery.target == "callback" {
            let key = self
                .callback_key
                .as_ref()
                .ok_or("callbacks are no longer configured")?;
            let url = delivery.url.as_deref().ok_or("the callback has no URL")?;
            // Checked at submission; checked again, as the allow-list may have narrowed.
            let url = allow::check(&self.allow, url)?;
            return self.post_signed(url, key, &delivery.event_id, body).await;
        }
        let sender = self
            .senders
            .get(&delivery.target)
            .ok_or_else(|| format!("the target {:?} is no longer configured", delivery.target))?;
        match &sender.channel {
            Channel::Webhook { url, key } => {
                self.post_signed(url.clone(), key, &delivery.event_id, body)
                    .await
            }
            Channel::Slack { url } => {
                let payload: Value =
                    serde_json::from_str(body).map_err(|e| format!("stored payload: {e}"))?;
                let message = slack_message::message(&payload, now);
                let answer = self
                    .http
                    .post(url.clone())
                    .json(&message)
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                status(answer.status())
            }
            Channel::Email(mailer) => {
                let payload: Value =
                    serde_json::from_str(body).map_err(|e| format!("stored payload: {e}"))?;
                mailer.send(&delivery.event_id, &payload, now).await
            }
        }
    }

    async fn post_signed(
        &self,
        url: Url,
        key: &WebhookKey,
        id: &str,
        body: &str,
    ) -> Result<(), String> {
        // The receiver judges freshness by its own clock: the real time, always.
        let timestamp = Utc::now().timestamp();
        let signature = key.sign(id, timestamp, body.as_bytes());
        let answer = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        status(answer.status())
    }

    pub(crate) fn count(&self, attempt: &countersign_store::Attempt) {
        let counter = match attempt {
            countersign_store::Attempt::Delivered => &self.counters.delivered,
            countersign_store::Attempt::Retry { .. } => &self.counters.retried,
            countersign_store::Attempt::GaveUp { .. } => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The delivery counters in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP countersign_deliveries_total Tries of notifications and callbacks, by result (retried: failed and scheduled again; failed: the last try failed, see GET /v1/deliveries?status=failed).\n# TYPE countersign_deliveries_total counter"
        );
        for (result, counter) in [
            ("delivered", &self.counters.delivered),
            ("retried", &self.counters.retried),
            ("failed", &self.counters.failed),
        ] {
            let _ = writeln!(
                out,
                "countersign_deliveries_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}

fn status(status: reqwest::StatusCode) -> Result<(), String> {
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}

fn humantime(duration: std::time::Duration) -> String {
    if duration.subsec_millis() != 0 || duration.as_secs() == 0 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs())
    }
}

fn resolve_slack(
    config: &SlackConfig,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Slack, String> {
    Ok(Slack {
        signing_secret: config
            .signing_secret
            .resolve(var)
            .map_err(|e| format!("[slack] signing_secret: {e}"))?,
        bot_token: config
            .bot_token
            .as_ref()
            .map(|t| t.resolve(var))
            .transpose()
            .map_err(|e| format!("[slack] bot_token: {e}"))?,
        api_base_url: config.api_base_url.clone(),
        team_id: config.team_id.clone(),
    })
}
