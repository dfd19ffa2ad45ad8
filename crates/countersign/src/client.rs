//! The HTTP client behind the client commands: where the server is, which token to send,
//! and turning the API's error objects into one-line messages.

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use countersign_server::views::ErrorBody;
use reqwest::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// How to reach the server.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// The Countersign server.
    #[arg(long, env = "COUNTERSIGN_URL", default_value = "http://127.0.0.1:7878")]
    pub server: String,
    /// The bearer token to send.
    #[arg(long, env = "COUNTERSIGN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where a command that can also work on the database file directly does its work: on the
/// file with `--db`, otherwise through the server.
#[derive(Args, Clone, Debug)]
pub struct DbOrServer {
    /// Work directly on this database instead of asking the server.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub struct Client {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let token = args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("no token: pass --token or set COUNTERSIGN_TOKEN"))?;
        let base = Url::parse(&args.server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                anyhow!(
                    "--server {:?} is not an http(s) URL, like http://127.0.0.1:7878",
                    args.server
                )
            })?;
        let http = reqwest::Client::builder()
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client { base, token, http })
    }

    /// `GET` the API path `segments` with `query` pairs, read as the view `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(segments)).query(query))
            .await
    }

    /// `POST` `body` to the API path `segments`, the answer read as the view `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(self.url(segments)).json(body))
            .await
    }

    /// `GET` the API path `segments` with `query` pairs, answered with a stream the caller
    /// reads in chunks (`Response::chunk`); an error answer is read whole into a message.
    pub async fn get_streamed(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .get(self.url(segments))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response
            .text()
            .await
            .context("the server's answer was cut off")?;
        Err(error_answer(status, &text))
    }

    /// The server's URL with `segments` appended, each percent-encoded as one segment (an
    /// id with a `/` or `?` in it stays one segment, and the server answers 404 for it).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("the server's answer was cut off")?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .context("the server's answer is not what this client expects");
        }
        Err(error_answer(status, &text))
    }
}

/// An error answer as one line: the API's message and code, or the text.
fn error_answer(status: reqwest::StatusCode, text: &str) -> anyhow::Error {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(ErrorBody { error }) => anyhow!(
            "{} ({}, HTTP {})",
            error.message,
            error.code,
            status.as_u16()
        ),
        Err(_) => anyhow!("the server answered HTTP {}: {text}", status.as_u16()),
    }
}

/// Parses a JSON-object flag (`--args`, `--context`, `--hints`). serde's message carries
/// the line and column of the problem.
pub fn json_object(flag: &str, text: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => bail!(
            "{flag} must be a JSON object, like '{{\"amount\": 10}}', found {}",
            json_kind(&other)
        ),
        Err(e) => bail!("{flag} is not valid JSON: {e}"),
    }
}

/// What kind of JSON value this is, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Runs `future` on a fresh runtime: the client commands are one request or a few.
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}
