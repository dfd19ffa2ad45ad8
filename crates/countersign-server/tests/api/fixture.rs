//! The server fixture every API test uses: a real server on 127.0.0.1 port 0 with a real
//! SQLite file in a scratch directory, its tokens, and helpers that say one thing each
//! (submit and get the id, decide, wait, expect a status and an error code).

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use countersign_core::Policy;
use countersign_server::{AppState, Clock, Limits, PolicySource, SystemClock};
use countersign_store::{NewToken, Role, Store};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const POLICY: &str = r#"
version = 1

[defaults]
tier = "approve"
sla = "30m"

[[rules]]
name = "reads"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 100"
tier = "logged"
review_sample = 1.0

[[rules]]
name = "large refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]
min_confidence = 0.9
sla = "15m"
on_timeout = "escalate"
escalate_to = ["finance"]
escalation_sla = "1h"

[[rules]]
name = "account closure"
actions = ["account.close"]
tier = "confirm"
approvers = ["admins"]

[[rules]]
name = "forbidden"
actions = ["db.drop"]
tier = "deny"
"#;

/// A running server with its tokens.
pub struct Server {
    pub base: Url,
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub dir: Arc<TempDir>,
    pub agent: String,
    pub other_agent: String,
    pub lead: String,
    pub lead2: String,
    pub owner: String,
    pub sales: String,
    pub finance: String,
    pub admin: String,
}

pub struct Options {
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    pub dir: Option<Arc<TempDir>>,
    /// The policy in force (default: [`POLICY`], fixed).
    pub policy: Option<Arc<PolicySource>>,
    /// A store opened by the test (e.g. with other options); default: the dir's file.
    pub store: Option<Arc<dyn Store>>,
    pub checkpoints: Option<countersign_server::Checkpoints>,
    /// Graduation's settings (default: the server's defaults).
    pub graduation: Option<countersign_server::GraduationSettings>,
    /// Notification targets, callbacks and Slack approvals (default: none).
    pub notify: Option<countersign_server::Notifications>,
    /// Statistics' thresholds and `/metrics` label caps (`[stats]`).
    pub stats: Option<countersign_server::stats_config::StatsConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
            dir: None,
            policy: None,
            store: None,
            checkpoints: None,
            graduation: None,
            notify: None,
            stats: None,
        }
    }
}

/// A scratch directory, removed when the last holder drops it.
pub fn scratch() -> Arc<TempDir> {
    Arc::new(
        tempfile::Builder::new()
            .prefix("countersign-api-")
            .tempdir()
            .unwrap(),
    )
}

pub async fn spawn() -> Server {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> Server {
    let dir = options.dir.unwrap_or_else(scratch);
    let store = match options.store {
        Some(store) => store,
        None => countersign_store::open(dir.path().join("countersign.db").to_str().unwrap())
            .await
            .unwrap(),
    };
    let policy = options
        .policy
        .unwrap_or_else(|| Arc::new(PolicySource::fixed(Policy::parse(POLICY).unwrap())));
    let mut state = AppState::new(store.clone(), policy, options.clock, options.limits);
    if let Some(checkpoints) = options.checkpoints {
        state = state.with_checkpoints(checkpoints);
    }
    if let Some(graduation) = options.graduation {
        state = state.with_graduation(graduation);
    }
    if let Some(notify) = options.notify {
        state = state.with_notifications(notify);
    }
    if let Some(stats) = options.stats {
        state = state.with_stats_config(stats);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let base = Url::parse(&format!("http://{address}")).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            countersign_server::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }
    });
    let token = |name: &str, role: Role, groups: &[&str], owner: Option<&str>| {
        let store = store.clone();
        let new = NewToken {
            name: countersign_core::Name::parse(name).unwrap(),
            role,
            groups: groups
                .iter()
                .map(|g| countersign_core::Name::parse(g).unwrap())
                .collect(),
            owner: owner.map(|o| countersign_core::Name::parse(o).unwrap()),
            created_by: countersign_store::Actor::named("test"),
            at: Utc::now(),
        };
        async move { store.create_token(new).await.unwrap().secret }
    };
    Server {
        agent: token("support-bot", Role::Agent, &[], Some("olivia")).await,
        other_agent: token("other-bot", Role::Agent, &[], None).await,
        lead: token("rita", Role::Reviewer, &["support-leads", "admins"], None).await,
        lead2: token("sam", Role::Reviewer, &["support-leads", "admins"], None).await,
        owner: token("olivia", Role::Reviewer, &["support-leads"], None).await,
        sales: token("sally", Role::Reviewer, &["sales"], None).await,
        finance: token("fin", Role::Reviewer, &["finance"], None).await,
        admin: token("ada", Role::Admin, &["admins"], None).await,
        base,
        address,
        client: reqwest::Client::new(),
        state,
        store,
        stop: Some(stop),
        task: Some(task),
        dir,
    }
}

/// An answer: its status and its body (JSON, or the text as a JSON string).
pub type Answer = (StatusCode, Value);

impl Server {
    /// The URL of the API path `segments`, each percent-encoded as one segment, with
    /// `query` pairs.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().unwrap().clear().extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// `METHOD path` (a literal path and query, e.g. `/v1/audit?limit=1000`).
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
        self.send(method, self.base.join(path).unwrap(), token, body)
            .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, token, None).await
    }

    /// `METHOD url` with `body` as JSON.
    pub async fn send(&self, method: &str, url: Url, token: &str, body: Option<Value>) -> Answer {
        let mut request = self.client.request(method.parse().unwrap(), url);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A request with exactly these body bytes and content type.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method.parse().unwrap(), self.base.join(path).unwrap())
            .body(body);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value = response.json().await.unwrap_or(Value::Null);
        (status, value)
    }

    /// Submits `body` as the agent; the new action (`201` asserted).
    pub async fn submit(&self, body: Value) -> Value {
        let (status, value) = self
            .call("POST", "/v1/actions", &self.agent, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        value
    }

    /// Submits `body` as the agent; the new action's id (`201` asserted).
    pub async fn submit_id(&self, body: Value) -> String {
        id(&self.submit(body).await)
    }

    /// `POST /v1/actions/{id}/{what}` with `body`: `decisions`, `cancel`, `outcome`,
    /// `review`.
    pub async fn act(&self, id: &str, what: &str, token: &str, body: Option<Value>) -> Answer {
        let url = self.url(&["v1", "actions", id, what], &[]);
        self.send("POST", url, token, body).await
    }

    pub async fn decide(&self, id: &str, token: &str, body: Value) -> Answer {
        self.act(id, "decisions", token, Some(body)).await
    }

    pub async fn cancel(&self, id: &str, token: &str) -> Answer {
        self.act(id, "cancel", token, None).await
    }

    pub async fn outcome(&self, id: &str, token: &str, body: Value) -> Answer {
        self.act(id, "outcome", token, Some(body)).await
    }

    pub async fn review(&self, id: &str, token: &str, body: Value) -> Answer {
        self.act(id, "review", token, Some(body)).await
    }

    /// `GET /v1/actions/{id}`.
    pub async fn show(&self, id: &str, token: &str) -> Answer {
        let url = self.url(&["v1", "actions", id], &[]);
        self.send("GET", url, token, None).await
    }

    /// `GET /v1/actions/{id}?wait=SECONDS`.
    pub async fn wait(&self, id: &str, token: &str, seconds: u64) -> Answer {
        let url = self.url(&["v1", "actions", id], &[("wait", &seconds.to_string())]);
        self.send("GET", url, token, None).await
    }

    /// `GET /v1/actions/{id}/events`, the stream open.
    pub async fn events(&self, id: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(&["v1", "actions", id, "events"], &[]))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn stop(mut self) -> Arc<TempDir> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self.dir.clone()
    }
}

pub fn large_refund() -> Value {
    json!({"action": "refund.create", "args": {"amount": 2500}, "reasoning": "charged twice"})
}

/// The error code of an answer's body.
pub fn code(value: &Value) -> &str {
    value["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// An action's id.
pub fn id(action: &Value) -> String {
    action["id"]
        .as_str()
        .expect("an action with an id")
        .to_owned()
}

/// Asserts that `answer` is `status` with the error `code` (and a message); its body.
#[track_caller]
pub fn expect(answer: Answer, status: StatusCode, code: &str) -> Value {
    let (got, body) = answer;
    assert_eq!((got, self::code(&body)), (status, code), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error says why: {body}"
    );
    body
}

/// Asserts that `answer` is `200 OK`; its body.
#[track_caller]
pub fn ok(answer: Answer) -> Value {
    let (status, body) = answer;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Reads `status` events from a streaming response.
#[derive(Default)]
pub struct SseReader {
    buffer: String,
}

impl SseReader {
    pub async fn next(&mut self, response: &mut reqwest::Response) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = Some(name.trim().to_owned());
                    } else if let Some(chunk) = line.strip_prefix("data:") {
                        data.push_str(chunk.trim_start());
                    }
                }
                if event.as_deref() == Some("status") {
                    return Some(serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let chunk = response.chunk().await.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
