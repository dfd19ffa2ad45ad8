//! The API through the real server on 127.0.0.1 port 0 with a real SQLite file: the life of
//! each tier, long-poll and SSE wake-ups, every access rule, idempotency, bad input at every
//! endpoint, the SLA ladder on a virtual clock, hot reload and the OpenAPI document.

// The hardening stories (issue: close the holes found by attacking the gateway), one file
// per area; they share the server fixture below.
mod hardening_audit;
mod hardening_identity;
mod hardening_limits;
mod hardening_policy;
// Notifications, callbacks and Slack approvals (issue: SLA ladder and notifications).
mod notify;
mod receivers;
mod slack;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::Policy;
use countersign_server::{AppState, Clock, Limits, ManualClock, PolicySource, SystemClock};
use countersign_store::{NewToken, Role, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

const POLICY: &str = r#"
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

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "countersign-api-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server with its tokens.
struct Server {
    base: String,
    client: reqwest::Client,
    state: AppState,
    store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: Arc<TempDir>,
    agent: String,
    other_agent: String,
    lead: String,
    lead2: String,
    owner: String,
    sales: String,
    finance: String,
    admin: String,
}

struct Options {
    clock: Arc<dyn Clock>,
    limits: Limits,
    dir: Option<Arc<TempDir>>,
    /// The policy in force (default: [`POLICY`], fixed).
    policy: Option<Arc<PolicySource>>,
    /// A store opened by the test (e.g. with other options); default: the dir's file.
    store: Option<Arc<dyn Store>>,
    checkpoints: Option<countersign_server::Checkpoints>,
    notify: Option<countersign_server::Notifications>,
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
            notify: None,
        }
    }
}

async fn spawn() -> Server {
    spawn_with(Options::default()).await
}

async fn spawn_with(options: Options) -> Server {
    let dir = options.dir.unwrap_or_else(|| Arc::new(TempDir::new()));
    let store = match options.store {
        Some(store) => store,
        None => countersign_store::open(dir.0.join("countersign.db").to_str().unwrap())
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
    if let Some(notify) = options.notify {
        state = state.with_notifications(notify);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
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
        client: reqwest::Client::new(),
        state,
        store,
        stop: Some(stop),
        task: Some(task),
        dir,
    }
}

impl Server {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
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

    async fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
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

    async fn submit(&self, body: Value) -> Value {
        let (status, value) = self
            .call("POST", "/v1/actions", &self.agent, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        value
    }

    async fn decide(&self, id: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/v1/actions/{id}/decisions"),
            token,
            Some(body),
        )
        .await
    }

    async fn stop(mut self) -> Arc<TempDir> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
        self.dir.clone()
    }
}

fn large_refund() -> Value {
    json!({"action": "refund.create", "args": {"amount": 2500}, "reasoning": "charged twice"})
}

fn code(value: &Value) -> &str {
    value["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn auto_and_deny_tiers_answer_at_once() {
    let server = spawn().await;
    let auto = server.submit(json!({"action": "order.get"})).await;
    assert_eq!(auto["status"], "allowed");
    assert_eq!(auto["tier"], "auto");
    assert_eq!(auto["rule"], "reads");
    assert_eq!(auto["args"], json!({}));
    assert_eq!(
        auto["policy_hash"],
        Policy::parse(POLICY).unwrap().hash(),
        "each action records the policy version that classified it"
    );
    let denied = server.submit(json!({"action": "db.drop"})).await;
    assert_eq!(denied["status"], "denied");
    assert_eq!(denied["tier"], "deny");
    // The default tier for an action no rule names.
    let other = server.submit(json!({"action": "email.send"})).await;
    assert_eq!(other["status"], "pending");
    assert_eq!(other["rule"], Value::Null);
}

#[tokio::test]
async fn logged_tier_is_allowed_and_sampled_for_review() {
    let server = spawn().await;
    let logged = server
        .submit(json!({"action": "refund.create", "args": {"amount": 50}}))
        .await;
    assert_eq!(logged["status"], "allowed");
    assert_eq!(logged["tier"], "logged");
    assert_eq!(logged["review"], "open");
    let id = logged["id"].as_str().unwrap();

    let (status, queue) = server.call("GET", "/v1/reviews", &server.lead, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue["items"][0]["id"], id);
    let (status, _) = server.call("GET", "/v1/reviews", &server.agent, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let path = format!("/v1/actions/{id}/review");
    let (status, reviewed) = server
        .call(
            "POST",
            &path,
            &server.lead,
            Some(json!({"verdict": "flag", "note": "odd"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["review"], "flag");
    let (status, again) = server
        .call("POST", &path, &server.lead, Some(json!({"verdict": "ok"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&again), "already_reviewed");
    let (_, queue) = server.call("GET", "/v1/reviews", &server.lead, None).await;
    assert_eq!(queue["items"], json!([]));
    let (_, done) = server
        .call("GET", "/v1/reviews?status=done", &server.lead, None)
        .await;
    assert_eq!(done["items"][0]["id"], id);

    // An action that was not sampled is not reviewable.
    let auto = server.submit(json!({"action": "order.get"})).await;
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/actions/{}/review", auto["id"].as_str().unwrap()),
            &server.lead,
            Some(json!({"verdict": "ok"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "not_in_review_queue");
}

#[tokio::test]
async fn approve_tier_full_lifecycle() {
    let server = spawn().await;
    let pending = server.submit(large_refund()).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["rule"], "large refunds");
    assert_eq!(pending["approvals_required"], 1);
    assert_eq!(pending["approvers"], json!(["support-leads"]));
    let created: DateTime<Utc> = pending["created_at"].as_str().unwrap().parse().unwrap();
    let deadline: DateTime<Utc> = pending["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - created, TimeDelta::minutes(15));
    let id = pending["id"].as_str().unwrap();

    let (status, queue) = server.call("GET", "/v1/actions", &server.lead, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue["items"][0]["id"], id);

    let (status, approved) = server
        .decide(
            id,
            &server.lead,
            json!({"verdict": "approve", "reason": "checked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decisions"][0]["reviewer"], "rita");
    assert!(approved["decided_at"].is_string());
    let (_, read_back) = server
        .call("GET", &format!("/v1/actions/{id}"), &server.lead, None)
        .await;
    assert_eq!(
        read_back, approved,
        "a write answers what a later read shows"
    );

    let (_, queue) = server.call("GET", "/v1/actions", &server.lead, None).await;
    assert_eq!(queue["items"], json!([]));
    let (_, approved_list) = server
        .call("GET", "/v1/actions?status=approved", &server.lead, None)
        .await;
    assert_eq!(approved_list["items"][0]["id"], id);

    let outcome = format!("/v1/actions/{id}/outcome");
    let (status, done) = server
        .call(
            "POST",
            &outcome,
            &server.agent,
            Some(json!({"status": "succeeded", "detail": {"refund": "r_1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["outcome"]["status"], "succeeded");
    let (status, again) = server
        .call(
            "POST",
            &outcome,
            &server.agent,
            Some(json!({"status": "failed"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&again), "outcome_already_recorded");
}

#[tokio::test]
async fn reject_modify_and_cancel() {
    let server = spawn().await;
    let first = server.submit(large_refund()).await;
    let id = first["id"].as_str().unwrap();
    let (_, rejected) = server
        .decide(
            id,
            &server.lead,
            json!({"verdict": "reject", "reason": "duplicate"}),
        )
        .await;
    assert_eq!(rejected["status"], "rejected");
    let (status, body) = server
        .call(
            "POST",
            &format!("/v1/actions/{id}/outcome"),
            &server.agent,
            Some(json!({"status": "succeeded"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a rejected action may not run: {body}"
    );

    let second = server.submit(large_refund()).await;
    let id = second["id"].as_str().unwrap();
    let (status, modified) = server
        .decide(
            id,
            &server.lead,
            json!({"verdict": "modify", "args": {"amount": 100}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{modified}");
    assert_eq!(modified["status"], "approved");
    assert_eq!(modified["args"], json!({"amount": 100}));
    assert_eq!(modified["original_args"], json!({"amount": 2500}));

    let third = server.submit(large_refund()).await;
    let id = third["id"].as_str().unwrap();
    let cancel = format!("/v1/actions/{id}/cancel");
    let (status, _) = server.call("POST", &cancel, &server.lead, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "reviewers do not cancel");
    let (status, body) = server
        .call("POST", &cancel, &server.other_agent, None)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another agent's action: {body}"
    );
    let (status, cancelled) = server.call("POST", &cancel, &server.agent, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    let (status, body) = server.call("POST", &cancel, &server.agent, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "not_pending");
}

#[tokio::test]
async fn confirm_tier_needs_two_people_and_the_name() {
    let server = spawn().await;
    let pending = server
        .submit(json!({"action": "account.close", "args": {"customer": "c_9"}}))
        .await;
    assert_eq!(pending["tier"], "confirm");
    assert_eq!(pending["approvals_required"], 2);
    let id = pending["id"].as_str().unwrap();

    let (status, body) = server
        .decide(id, &server.lead, json!({"verdict": "approve"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "confirmation_mismatch");
    let (status, body) = server
        .decide(
            id,
            &server.lead,
            json!({"verdict": "approve", "confirm": "account.delete"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "confirmation_mismatch");
    let confirm = json!({"verdict": "approve", "confirm": "account.close"});
    let (status, body) = server.decide(id, &server.lead, confirm.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending");
    let (status, body) = server.decide(id, &server.lead, confirm.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "already_approved");
    let (status, body) = server.decide(id, &server.admin, confirm).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
}

#[tokio::test]
async fn long_poll_and_events_wake_on_decision() {
    let server = Arc::new(spawn().await);
    let pending = server.submit(large_refund()).await;
    let id = pending["id"].as_str().unwrap().to_owned();

    // A wait that nothing ends returns the pending action when it runs out.
    let (status, still) = server
        .call(
            "GET",
            &format!("/v1/actions/{id}?wait=1"),
            &server.agent,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(still["status"], "pending");

    let mut events = server
        .client
        .get(format!("{}/v1/actions/{id}/events", server.base))
        .bearer_auth(&server.agent)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let mut sse = SseReader::default();
    let first = sse.next(&mut events).await.expect("a first event");
    assert_eq!(
        first["status"], "pending",
        "the stream starts with the current state"
    );

    let waiter = tokio::spawn({
        let server = server.clone();
        let id = id.clone();
        async move {
            server
                .call(
                    "GET",
                    &format!("/v1/actions/{id}?wait=300"),
                    &server.agent,
                    None,
                )
                .await
        }
    });
    let (_, decided) = server
        .decide(&id, &server.lead, json!({"verdict": "approve"}))
        .await;
    assert_eq!(decided["status"], "approved");

    let (status, woken) = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the long-poll is woken by the decision, not by its 300 s timeout")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(woken["status"], "approved");
    let second = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the event stream is woken by the decision")
        .expect("a second event");
    assert_eq!(second["status"], "approved");
    assert_eq!(second["id"], id.as_str());
    let end = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends after a final status");
}

/// The `countersign_watched_actions` gauge.
async fn watched_actions(server: &Server) -> u64 {
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("countersign_watched_actions "))
        .and_then(|v| v.parse().ok())
        .expect("the gauge is exported")
}

/// Polls the gauge until it reads `expected` (it follows requests the server is still
/// setting up or tearing down).
async fn until_watched(server: &Server, expected: u64) {
    for _ in 0..600 {
        if watched_actions(server).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("watched actions never reached {expected}");
}

#[tokio::test]
async fn each_long_poll_wakes_for_its_own_action_only() {
    let server = Arc::new(spawn().await);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            server.submit(large_refund()).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let waiters: Vec<_> = ids
        .iter()
        .map(|id| {
            let (server, id) = (server.clone(), id.clone());
            tokio::spawn(async move {
                server
                    .call(
                        "GET",
                        &format!("/v1/actions/{id}?wait=300"),
                        &server.agent,
                        None,
                    )
                    .await
            })
        })
        .collect();
    until_watched(&server, 5).await;
    let (_, decided) = server
        .decide(&ids[2], &server.lead, json!({"verdict": "approve"}))
        .await;
    assert_eq!(decided["status"], "approved");
    let mut waiters = waiters.into_iter().map(Some).collect::<Vec<_>>();
    let (status, woken) = tokio::time::timeout(Duration::from_secs(60), waiters[2].take().unwrap())
        .await
        .expect("woken by its own decision")
        .unwrap();
    assert_eq!(
        (status, &woken["status"]),
        (StatusCode::OK, &json!("approved"))
    );
    until_watched(&server, 4).await;
    // The others are still waiting: their actions are pending, and nothing woke them.
    for waiter in waiters.iter().flatten() {
        assert!(!waiter.is_finished());
    }
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 2) {
        let (status, _) = server
            .call(
                "POST",
                &format!("/v1/actions/{id}/cancel"),
                &server.agent,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, body) = tokio::time::timeout(Duration::from_secs(60), waiters[i].take().unwrap())
            .await
            .expect("woken by the cancellation")
            .unwrap();
        assert_eq!(body["status"], "cancelled");
    }
    until_watched(&server, 0).await;
}

/// Reads `status` events from a streaming response.
#[derive(Default)]
struct SseReader {
    buffer: String,
}

impl SseReader {
    async fn next(&mut self, response: &mut reqwest::Response) -> Option<Value> {
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

// ---- access rules, one case each ------------------------------------------------------------

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let server = spawn().await;
    for (token, what) in [("", "no token"), ("cs_not-a-real-token", "unknown token")] {
        let (status, body) = server.call("GET", "/v1/actions", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(code(&body), "unauthorized");
    }
    let response = server
        .client
        .get(format!("{}/v1/actions", server.base))
        .header("authorization", format!("Basic {}", server.lead))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "not a bearer token"
    );
}

#[tokio::test]
async fn agents_cannot_decide() {
    let server = spawn().await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .decide(&id, &server.agent, json!({"verdict": "approve"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "wrong_role");
}

#[tokio::test]
async fn reviewers_cannot_submit() {
    let server = spawn().await;
    let (status, body) = server
        .call(
            "POST",
            "/v1/actions",
            &server.lead,
            Some(json!({"action": "order.get"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "wrong_role");
}

#[tokio::test]
async fn agents_cannot_list_the_queue() {
    let server = spawn().await;
    let (status, body) = server.call("GET", "/v1/actions", &server.agent, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "wrong_role");
}

#[tokio::test]
async fn agents_read_only_their_own_actions() {
    let server = spawn().await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/actions/{id}");
    assert_eq!(
        server.call("GET", &path, &server.agent, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.call("GET", &path, &server.lead, None).await.0,
        StatusCode::OK
    );
    let (status, body) = server.call("GET", &path, &server.other_agent, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, _) = server
        .call("GET", &format!("{path}/events"), &server.other_agent, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reviewers_outside_the_approver_groups_cannot_decide() {
    let server = spawn().await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .decide(&id, &server.sales, json!({"verdict": "approve"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "not_an_approver");
}

#[tokio::test]
async fn owners_never_decide_on_their_agents_actions() {
    let server = spawn().await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for verdict in ["approve", "reject"] {
        let (status, body) = server
            .decide(&id, &server.owner, json!({"verdict": verdict}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(code(&body), "own_agent");
    }
}

#[tokio::test]
async fn no_one_approves_twice() {
    let server = spawn().await;
    let id = server.submit(json!({"action": "account.close"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approve = json!({"verdict": "approve", "confirm": "account.close"});
    assert_eq!(
        server.decide(&id, &server.lead, approve.clone()).await.0,
        StatusCode::OK
    );
    let (status, body) = server.decide(&id, &server.lead, approve).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "already_approved");
}

#[tokio::test]
async fn decisions_on_finished_actions_conflict() {
    let server = spawn().await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .decide(&id, &server.lead, json!({"verdict": "reject"}))
        .await;
    let (status, body) = server
        .decide(&id, &server.lead2, json!({"verdict": "approve"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "not_pending");
}

#[tokio::test]
async fn only_admins_read_the_audit_log_and_create_tokens() {
    let server = spawn().await;
    for path in ["/v1/audit", "/v1/audit/verify"] {
        let (status, body) = server.call("GET", path, &server.lead, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(code(&body), "wrong_role");
    }
    let token = json!({"role": "agent", "name": "new-bot"});
    let (status, _) = server
        .call("POST", "/v1/tokens", &server.lead, Some(token.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = server
        .call("POST", "/v1/tokens", &server.admin, Some(token))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap();
    let (status, body) = server
        .call(
            "POST",
            "/v1/actions",
            secret,
            Some(json!({"action": "order.get"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["agent"], "new-bot");
}

#[tokio::test]
async fn admins_list_and_revoke_tokens_and_a_revoked_token_stops_at_once() {
    let server = spawn().await;
    let (status, _) = server.call("GET", "/v1/tokens", &server.lead, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = server.call("GET", "/v1/tokens", &server.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 8, "{list}");
    assert!(
        !list.to_string().contains(&server.agent),
        "secrets are never listed"
    );
    let bot = items.iter().find(|t| t["name"] == "support-bot").unwrap();
    assert_eq!(bot["role"], "agent");
    assert_eq!(bot["owner"], "olivia");
    assert_eq!(bot["revoked"], false);
    let id = bot["id"].as_str().unwrap();

    let revoke = format!("/v1/tokens/{id}/revoke");
    let (status, _) = server.call("POST", &revoke, &server.lead, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, revoked) = server.call("POST", &revoke, &server.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revoked"], true);
    let (status, body) = server
        .call(
            "POST",
            "/v1/actions",
            &server.agent,
            Some(json!({"action": "order.get"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Again: the same answer, and one audit entry only.
    let (status, again) = server.call("POST", &revoke, &server.admin, None).await;
    assert_eq!((status, &again["revoked"]), (StatusCode::OK, &json!(true)));
    let (status, missing) = server
        .call("POST", "/v1/tokens/nope/revoke", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (_, audit) = server
        .call("GET", "/v1/audit?limit=1000", &server.admin, None)
        .await;
    let revocations: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "token_revoked")
        .collect();
    assert_eq!(revocations.len(), 1, "{audit}");
    assert_eq!(revocations[0]["actor"], "ada");
}

// ---- idempotency ----------------------------------------------------------------------------

#[tokio::test]
async fn idempotent_replays_and_mismatches() {
    let server = spawn().await;
    let body = json!({"action": "refund.create", "args": {"amount": 2500}, "idempotency_key": "run-77/step-4"});
    let first = server.submit(body.clone()).await;
    let (status, replay) = server
        .call("POST", "/v1/actions", &server.agent, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        replay, first,
        "a replay is the first answer, timestamps included"
    );

    // The header is the same key; key order in the body does not matter.
    let response = server
        .client
        .post(format!("{}/v1/actions", server.base))
        .bearer_auth(&server.agent)
        .header("Idempotency-Key", "run-77/step-4")
        .body(r#"{"args": {"amount": 2500}, "action": "refund.create"}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["id"], first["id"]);

    let (status, mismatch) = server
        .call(
            "POST",
            "/v1/actions",
            &server.agent,
            Some(json!({"action": "refund.create", "args": {"amount": 9999}, "idempotency_key": "run-77/step-4"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&mismatch), "idempotency_mismatch");
}

#[tokio::test]
async fn concurrent_duplicates_resolve_to_one_action() {
    let server = Arc::new(spawn().await);
    let body =
        json!({"action": "refund.create", "args": {"amount": 7}, "idempotency_key": "burst"});
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let server = server.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            server
                .call("POST", "/v1/actions", &server.agent, Some(body))
                .await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let (status, value) = task.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {value}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.push(value["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one action for one key");
    assert_eq!(created, 1, "exactly one answer says created");
}

// ---- bad input ------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_gets_a_precise_4xx_at_every_endpoint() {
    let server = spawn_with(Options {
        limits: Limits {
            max_body_bytes: 4096,
            max_args_bytes: 256,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let decisions = format!("/v1/actions/{id}/decisions");
    let outcome = format!("/v1/actions/{id}/outcome");
    let review = format!("/v1/actions/{id}/review");
    let wait_soon = format!("/v1/actions/{id}?wait=soon");
    let wait_negative = format!("/v1/actions/{id}?wait=-1");
    let json = Some("application/json");
    let (agent, lead, admin) = (&server.agent, &server.lead, &server.admin);
    let big = format!(
        r#"{{"action":"a.b","args":{{"x":"{}"}}}}"#,
        "y".repeat(5000)
    );
    let wide = format!(r#"{{"action":"a.b","args":{{"x":"{}"}}}}"#, "y".repeat(300));
    let long_name = format!(r#"{{"action":"{}"}}"#, "a".repeat(201));
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        String,
        u16,
        &'a str,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("POST", "/v1/actions", agent, json, "{".into(), 400, "malformed_json"),
        ("POST", "/v1/actions", agent, json, "[1,2]".into(), 422, "invalid_body"),
        // serde reads a struct from an array by position: a body or `hints` must be an object.
        ("POST", "/v1/actions", agent, json, r#"["a.b"]"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"a.b","hints":[true]}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"args":{}}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"action":5}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"a.b","args":[1]}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"a.b","bogus":1}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"a.b","hints":{"sneaky":true}}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"refund create"}"#.into(), 422, "invalid_action_name"),
        ("POST", "/v1/actions", agent, json, r#"{"action":""}"#.into(), 422, "invalid_action_name"),
        ("POST", "/v1/actions", agent, json, long_name, 422, "invalid_action_name"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"a.b","confidence":1.5}"#.into(), 422, "invalid_confidence"),
        ("POST", "/v1/actions", agent, json, r#"{"action":"a.b","idempotency_key":""}"#.into(), 422, "invalid_idempotency_key"),
        ("POST", "/v1/actions", agent, json, wide, 422, "args_too_large"),
        ("POST", "/v1/actions", agent, json, big, 413, "body_too_large"),
        ("POST", "/v1/actions", agent, Some("text/plain"), r#"{"action":"a.b"}"#.into(), 415, "unsupported_media_type"),
        ("POST", "/v1/actions", agent, None, r#"{"action":"a.b"}"#.into(), 415, "unsupported_media_type"),
        ("GET", "/v1/actions/nope", agent, None, String::new(), 404, "not_found"),
        ("GET", &wait_soon, agent, None, String::new(), 400, "invalid_query"),
        ("GET", &wait_negative, agent, None, String::new(), 400, "invalid_query"),
        ("GET", "/v1/actions?status=lost", lead, None, String::new(), 400, "invalid_query"),
        ("GET", "/v1/actions?action=a%20b", lead, None, String::new(), 400, "invalid_query"),
        ("GET", "/v1/actions?limit=many", lead, None, String::new(), 400, "invalid_query"),
        ("GET", "/v1/actions?cursor=forged", lead, None, String::new(), 400, "invalid_cursor"),
        ("GET", "/v1/actions?colour=red", lead, None, String::new(), 400, "invalid_query"),
        ("POST", &decisions, lead, json, r#"{"verdict":"maybe"}"#.into(), 422, "invalid_body"),
        ("POST", &decisions, lead, json, r#"{}"#.into(), 422, "invalid_body"),
        ("POST", &decisions, lead, json, r#"{"verdict":"approve","extra":1}"#.into(), 422, "invalid_body"),
        ("POST", &decisions, lead, json, r#"{"verdict":"modify"}"#.into(), 422, "modify_without_args"),
        ("POST", &decisions, lead, json, r#"{"verdict":"approve","args":{}}"#.into(), 422, "args_without_modify"),
        ("POST", &decisions, lead, json, "not json".into(), 400, "malformed_json"),
        ("POST", &decisions, lead, json, r#"["approve"]"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions/nope/decisions", lead, json, r#"{"verdict":"approve"}"#.into(), 404, "not_found"),
        ("POST", &outcome, agent, json, r#"{"status":"great"}"#.into(), 422, "invalid_body"),
        ("POST", "/v1/actions/nope/cancel", agent, None, String::new(), 404, "not_found"),
        ("POST", &review, lead, json, r#"{"verdict":"meh"}"#.into(), 422, "invalid_body"),
        ("GET", "/v1/reviews?status=closed", lead, None, String::new(), 400, "invalid_query"),
        ("GET", "/v1/audit?after=x", admin, None, String::new(), 400, "invalid_query"),
        ("POST", "/v1/tokens", admin, json, r#"{"role":"root","name":"x"}"#.into(), 422, "invalid_role"),
        ("POST", "/v1/tokens", admin, json, r#"{"role":"agent","name":"a b"}"#.into(), 422, "invalid_name"),
        ("POST", "/v1/tokens", admin, json, r#"{"role":"agent"}"#.into(), 422, "invalid_body"),
        // An owner that no reviewer's name can equal would never be kept from approving.
        ("POST", "/v1/tokens", admin, json, r#"{"role":"agent","name":"x","owner":"olivia "}"#.into(), 422, "invalid_owner"),
        ("GET", "/v1/nothing-here", agent, None, String::new(), 404, "not_found"),
        ("DELETE", "/v1/actions", agent, None, String::new(), 405, "method_not_allowed"),
    ];
    for (method, path, token, content_type, body, status, expected) in cases {
        let (got, value) = server
            .raw(method, path, token, content_type, body.clone().into_bytes())
            .await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(got.as_u16(), status, "{method} {path} {shown}: {value}");
        assert_eq!(code(&value), expected, "{method} {path} {shown}: {value}");
        assert!(
            value["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: a message"
        );
    }
    // Nothing above was stored: the pending queue holds only the first submission.
    let (_, queue) = server.call("GET", "/v1/actions", lead, None).await;
    assert_eq!(queue["items"].as_array().unwrap().len(), 1);
}

// ---- SLA, restart, audit, reload, documents -------------------------------------------------

#[tokio::test]
async fn sla_escalates_then_expires_on_a_virtual_clock() {
    let start: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let server = spawn_with(Options {
        clock: clock.clone(),
        ..Options::default()
    })
    .await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .decide(&id, &server.finance, json!({"verdict": "approve"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "not_an_approver")
    );

    let mut events = server
        .client
        .get(format!("{}/v1/actions/{id}/events", server.base))
        .bearer_auth(&server.lead)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::default();
    assert_eq!(sse.next(&mut events).await.unwrap()["status"], "pending");

    clock.advance(TimeDelta::minutes(16));
    server.state.nudge_sla();
    let escalated = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the SLA worker escalates once the virtual deadline passed")
        .unwrap();
    assert_eq!(escalated["status"], "pending");
    assert!(
        escalated["approvers"]
            .as_array()
            .unwrap()
            .contains(&json!("finance")),
        "{escalated}"
    );
    let deadline: DateTime<Utc> = escalated["deadline"].as_str().unwrap().parse().unwrap();
    // The added groups get their full window from when the escalation happened.
    assert_eq!(
        deadline,
        start + TimeDelta::minutes(16) + TimeDelta::hours(1)
    );

    clock.advance(TimeDelta::hours(1));
    server.state.nudge_sla();
    let expired = tokio::time::timeout(Duration::from_secs(60), sse.next(&mut events))
        .await
        .expect("the SLA worker expires after the escalation window")
        .unwrap();
    assert_eq!(expired["status"], "expired");
}

#[tokio::test]
async fn deadlines_passed_while_down_are_acted_on_at_start() {
    let start: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
    let server = spawn_with(Options {
        clock: Arc::new(ManualClock::new(start)),
        ..Options::default()
    })
    .await;
    let pending = server.submit(json!({"action": "email.send"})).await;
    let id = pending["id"].as_str().unwrap().to_owned();
    let agent = server.agent.clone();
    let dir = server.stop().await;

    let later = start + TimeDelta::hours(3);
    let server = spawn_with(Options {
        clock: Arc::new(ManualClock::new(later)),
        dir: Some(dir),
        ..Options::default()
    })
    .await;
    let (status, body) = server
        .call("GET", &format!("/v1/actions/{id}?wait=120"), &agent, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "expired", "{body}");
}

#[tokio::test]
async fn audit_log_records_and_verifies() {
    let server = spawn().await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .decide(&id, &server.lead, json!({"verdict": "approve"}))
        .await;
    let (status, audit) = server
        .call("GET", "/v1/audit?limit=1000", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action_id"] == id.as_str())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"submitted"), "{kinds:?}");
    assert!(kinds.contains(&"decided"), "{kinds:?}");
    let (status, verify) = server
        .call("GET", "/v1/audit/verify", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_u64().unwrap() >= 2);
    assert_eq!(verify["head"].as_str().unwrap().len(), 64);
    let _ = &server.store;
}

#[tokio::test]
async fn policy_reload_keeps_the_old_policy_when_the_new_one_is_bad() {
    let dir = TempDir::new();
    let path = dir.0.join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let source = PolicySource::load(&path).unwrap();
    let first = source.current().hash().to_owned();

    std::fs::write(
        &path,
        POLICY.replace("tier = \"deny\"", "tier = \"approve\""),
    )
    .unwrap();
    assert!(source.reload().unwrap());
    let second = source.current().hash().to_owned();
    assert_ne!(first, second);

    std::fs::write(&path, "version = 1\n[defaults]\ntier = \"sometimes\"\n").unwrap();
    let error = source.reload().unwrap_err().to_string();
    assert!(
        error.contains("policy.toml:3:"),
        "diagnostics with line and column: {error}"
    );
    assert_eq!(
        source.current().hash(),
        second,
        "the old policy stays in force"
    );
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let server = spawn().await;
    server.submit(json!({"action": "order.get"})).await;
    let (status, _) = server.call("GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, metrics) = server.call("GET", "/metrics", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("countersign_actions_submitted_total{tier=\"auto\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE countersign_store_commits_total counter"));

    let (status, doc) = server.call("GET", "/v1/openapi.json", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/actions",
        "/v1/actions/{id}",
        "/v1/actions/{id}/events",
        "/v1/actions/{id}/decisions",
        "/v1/actions/{id}/cancel",
        "/v1/actions/{id}/outcome",
        "/v1/reviews",
        "/v1/actions/{id}/review",
        "/v1/audit",
        "/v1/audit/verify",
        "/healthz",
        "/metrics",
        "/v1/tokens",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    // OpenAPI 3.1 requires a description on every response object and unique operation ids.
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let operation_id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(operation_id.to_owned()),
                "{method} {path}: operationId {operation_id:?} is used twice"
            );
            for (status, response) in operation["responses"].as_object().unwrap() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    assert!(doc["components"]["schemas"]["ActionView"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // A store that can no longer take writes makes the server unhealthy, and writes answer
    // 503, never a 2xx.
    server.store.close().await;
    let (status, body) = server.call("GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "unavailable");
    let (status, _) = server
        .call(
            "POST",
            "/v1/actions",
            &server.agent,
            Some(json!({"action": "order.get"})),
        )
        .await;
    assert!(
        status.is_server_error() || status == StatusCode::UNAUTHORIZED,
        "{status}"
    );
}
