//! Real receivers on loopback for the notification tests: an HTTP server that records
//! every request and answers as told (OK, a status, fail N times then OK, or never), and
//! waits without sleeping: a test asks `until` for what it expects, and is woken by each
//! request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use tokio::sync::Notify;

/// How a receiver answers.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// `200 {"ok": true}`.
    Ok,
    /// This status for the first N requests, then OK.
    FailFirst(u16, usize),
    /// Never answers.
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Got {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The status it was answered with.
    pub answered: u16,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// The Standard Webhooks `type` of a webhook or callback payload.
    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

struct Shared {
    got: Mutex<Vec<Got>>,
    changed: Notify,
    behaviour: Mutex<Behaviour>,
}

pub struct Receiver {
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let answer = {
        let mut behaviour = shared.behaviour.lock().unwrap();
        match *behaviour {
            Behaviour::Ok => Some(200),
            Behaviour::FailFirst(_, 0) => {
                *behaviour = Behaviour::Ok;
                Some(200)
            }
            Behaviour::FailFirst(status, n) => {
                *behaviour = Behaviour::FailFirst(status, n - 1);
                Some(status)
            }
            Behaviour::Hang => None,
        }
    };
    let got = Got {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: answer.unwrap_or(0),
    };
    shared.got.lock().unwrap().push(got);
    shared.changed.notify_waiters();
    match answer {
        Some(status) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(serde_json::json!({"ok": status == 200})),
        )
            .into_response(),
        None => std::future::pending().await,
    }
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let shared = Arc::new(Shared {
            got: Mutex::new(Vec::new()),
            changed: Notify::new(),
            behaviour: Mutex::new(behaviour),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { base, shared, task }
    }

    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests received so far, and returns them. The
    /// minute is a guard against a hung test, not a timing expectation.
    pub async fn until(&self, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.got();
            if done(&got) {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{what}: not received within a minute; got {got:#?}");
            }
        }
    }

    /// Waits for `count` requests whose payload `type` is `kind`.
    pub async fn until_kind(&self, kind: &str, count: usize) -> Vec<Got> {
        self.until(&format!("{count} × {kind}"), |got| {
            got.iter().filter(|g| g.kind() == kind).count() >= count
        })
        .await
    }
}
