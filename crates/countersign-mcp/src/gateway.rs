//! The Countersign HTTP API as the proxy and the hook use it, with an agent token: submit,
//! read (long-poll), cancel, report an outcome, classify. Every failure is a `GatewayError`
//! that says what happened; callers treat any of them as "do not run the tool".

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Where the gateway is and who is asking.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub url: Url,
    pub token: String,
}

impl GatewayConfig {
    /// Parses the URL (`COUNTERSIGN_URL`) and takes the token (`COUNTERSIGN_TOKEN`).
    pub fn parse(url: &str, token: Option<&str>) -> Result<GatewayConfig, String> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or("no token: pass --token or set COUNTERSIGN_TOKEN to an agent token")?;
        let url = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                format!("--server {url:?} is not an http(s) URL, like http://127.0.0.1:7878")
            })?;
        Ok(GatewayConfig {
            url,
            token: token.to_owned(),
        })
    }
}

/// Why the gateway gave no usable answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("Countersign at {url} cannot be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("Countersign refused the request: {message} ({code}, HTTP {status})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("Countersign answered something this client does not understand: {0}")]
    Malformed(String),
}

impl GatewayError {
    /// The API's error code, for refusals.
    pub fn code(&self) -> Option<&str> {
        match self {
            GatewayError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An action as the API answers about it, reduced to what the gate reads.
#[derive(Clone, Debug, Deserialize)]
pub struct Action {
    pub id: String,
    pub status: String,
    pub tier: String,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub args: Map<String, Value>,
    #[serde(default)]
    pub original_args: Option<Map<String, Value>>,
    #[serde(default)]
    pub decisions: Vec<Decision>,
    #[serde(default)]
    pub outcome: Option<Value>,
}

/// One reviewer's verdict.
#[derive(Clone, Debug, Deserialize)]
pub struct Decision {
    pub reviewer: String,
    pub verdict: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The answer to a submission.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub action: Action,
    /// `200`: an earlier submission with the same idempotency key.
    pub replayed: bool,
}

/// What `POST /v1/policy/classify` says about one hypothetical action.
#[derive(Clone, Debug, Deserialize)]
pub struct Classification {
    pub tier: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
}

/// The client.
#[derive(Clone, Debug)]
pub struct Gateway {
    config: GatewayConfig,
    http: reqwest::Client,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| GatewayError::Malformed(format!("cannot set up HTTP: {e}")))?;
        Ok(Gateway { config, http })
    }

    pub fn base(&self) -> &Url {
        &self.config.url
    }

    /// `POST /v1/actions`.
    pub async fn submit(&self, body: &Value) -> Result<Submitted, GatewayError> {
        let (status, value) = self
            .send(self.http.post(self.url(&["v1", "actions"])).json(body), 30)
            .await?;
        Ok(Submitted {
            action: parse_action(value)?,
            replayed: status == 200,
        })
    }

    /// `GET /v1/actions/{id}?wait=SECONDS`: answers when the status leaves `pending` or
    /// the wait ends.
    pub async fn wait(&self, id: &str, seconds: u64) -> Result<Action, GatewayError> {
        let request = self
            .http
            .get(self.url(&["v1", "actions", id]))
            .query(&[("wait", seconds.to_string())]);
        let (_, value) = self.send(request, seconds + 30).await?;
        parse_action(value)
    }

    /// `POST /v1/actions/{id}/cancel`.
    pub async fn cancel(&self, id: &str) -> Result<Action, GatewayError> {
        let request = self.http.post(self.url(&["v1", "actions", id, "cancel"]));
        let (_, value) = self.send(request, 30).await?;
        parse_action(value)
    }

    /// `POST /v1/actions/{id}/decisions` (with a reviewer token).
    pub async fn decide(&self, id: &str, body: &Value) -> Result<Action, GatewayError> {
        let request = self
            .http
            .post(self.url(&["v1", "actions", id, "decisions"]))
            .json(body);
        let (_, value) = self.send(request, 30).await?;
        parse_action(value)
    }

    /// `POST /v1/actions/{id}/outcome`.
    pub async fn outcome(
        &self,
        id: &str,
        succeeded: bool,
        detail: Value,
    ) -> Result<(), GatewayError> {
        let status = if succeeded { "succeeded" } else { "failed" };
        let request = self
            .http
            .post(self.url(&["v1", "actions", id, "outcome"]))
            .json(&json!({"status": status, "detail": detail}));
        self.send(request, 30).await.map(|_| ())
    }

    /// `POST /v1/policy/classify`: one answer per action, in order.
    pub async fn classify(&self, actions: Vec<Value>) -> Result<Vec<Classification>, GatewayError> {
        let mut answers = Vec::with_capacity(actions.len());
        for chunk in actions.chunks(1000) {
            let request = self
                .http
                .post(self.url(&["v1", "policy", "classify"]))
                .json(&json!({ "actions": chunk }));
            let (_, value) = self.send(request, 30).await?;
            #[derive(Deserialize)]
            struct Answer {
                results: Vec<Classification>,
            }
            let answer: Answer = serde_json::from_value(value)
                .map_err(|e| GatewayError::Malformed(format!("classification: {e}")))?;
            if answer.results.len() != chunk.len() {
                return Err(GatewayError::Malformed(format!(
                    "{} classifications for {} actions",
                    answer.results.len(),
                    chunk.len()
                )));
            }
            answers.extend(answer.results);
        }
        Ok(answers)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.config.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout_seconds: u64,
    ) -> Result<(u16, Value), GatewayError> {
        let unreachable = |e: reqwest::Error| GatewayError::Unreachable {
            url: self.config.url.to_string(),
            detail: error_chain(&e),
        };
        let response = request
            .bearer_auth(&self.config.token)
            .timeout(Duration::from_secs(timeout_seconds))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let value: Value = serde_json::from_str(&text).map_err(|_| {
            GatewayError::Malformed(format!("HTTP {status} with a body that is not JSON"))
        })?;
        if (200..300).contains(&status) {
            return Ok((status, value));
        }
        let code = value["error"]["code"].as_str().unwrap_or("unknown");
        let message = value["error"]["message"].as_str().unwrap_or("no message");
        Err(GatewayError::Refused {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        })
    }
}

fn parse_action(value: Value) -> Result<Action, GatewayError> {
    serde_json::from_value(value).map_err(|e| GatewayError::Malformed(format!("action: {e}")))
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
