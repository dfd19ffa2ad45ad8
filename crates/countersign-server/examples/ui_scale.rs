//! Measures the reviewer web UI at scale, for BENCHMARKS.md:
//!
//! ```sh
//! cargo run --release -p countersign-server --example ui_scale -- /tmp/ui-scale 100000
//! ```
//!
//! Fills a fresh database with N pending actions (20 agents, 10 action names, 1% `confirm`)
//! through the real store, then times server-side rendering (the router called in-process,
//! the body collected) of the queue page (first page; filtered by tier, by agent, by action;
//! a page deep in the queue) and of the action page for actions across the queue; and, on
//! the real server over loopback, the time from a person's approval form being sent to the
//! waiting agent's long-poll returning. Prints p50/p95/max for each. Deletes nothing: remove
//! the directory afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use countersign_core::action::{ActionName, AgentName, ProposedAction};
use countersign_core::{Name, Policy};
use countersign_server::web::NewPassword;
use countersign_server::{AppState, Limits, PolicySource, SystemClock};
use countersign_store::{Actor, NewAction, NewSession, NewToken, NewUser, Role};
use serde_json::json;

const POLICY: &str = r#"
version = 1
[defaults]
tier = "approve"
sla = "1d"
[[rules]]
name = "closures"
actions = ["account.close"]
tier = "confirm"
"#;

const ACTIONS: [&str; 10] = [
    "refund.create",
    "email.send",
    "invoice.void",
    "user.delete",
    "plan.change",
    "credit.issue",
    "order.cancel",
    "ticket.escalate",
    "payout.send",
    "account.close",
];

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name:<44} n={:<4} p50={:>7.2} ms  p95={:>7.2} ms  max={:>7.2} ms",
        samples.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).cloned().unwrap_or("/tmp/ui-scale".into()));
    let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("countersign.db");
    let fresh = !db.exists();
    let store = countersign_store::open(db.to_str().unwrap()).await.unwrap();
    let policy = Arc::new(Policy::parse(POLICY).unwrap());
    let hash = NewPassword::parse("correct horse battery")
        .unwrap()
        .hash()
        .unwrap();
    if fresh {
        store
            .create_user(NewUser {
                name: "rita".into(),
                groups: vec![],
                admin: false,
                password_hash: hash,
                created_by: Actor::named("cli"),
                at: Utc::now(),
            })
            .await
            .unwrap();
        let started = Instant::now();
        let mut tasks = Vec::new();
        let per_task = count.div_ceil(64);
        for task in 0..64 {
            let store = store.clone();
            let policy = policy.clone();
            tasks.push(tokio::spawn(async move {
                for i in task * per_task..((task + 1) * per_task).min(count) {
                    let action = if i % 100 == 0 {
                        ACTIONS[9]
                    } else {
                        ACTIONS[i % 9]
                    };
                    let mut proposal = ProposedAction::new(
                        ActionName::parse(action).unwrap(),
                        AgentName::parse(&format!("agent-{}", i % 20)).unwrap(),
                    );
                    proposal.args =
                        json!({"amount": i, "order": format!("O-{i}"), "note": "x".repeat(40)})
                            .as_object()
                            .cloned()
                            .unwrap();
                    proposal.reasoning = Some(format!("Ticket {i}: the customer asked for it"));
                    let mut new = NewAction::classify(&policy, proposal, Utc::now());
                    new.owner = Some("olivia".into());
                    store.submit(new).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        println!(
            "submitted {count} pending actions in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let session = store
        .start_session(NewSession {
            name: "rita".into(),
            at: Utc::now(),
            address: None,
        })
        .await
        .unwrap();
    let cookie = format!("countersign_session={}", session.secret);
    let state = AppState::new(
        store.clone(),
        Arc::new(PolicySource::fixed(Policy::parse(POLICY).unwrap())),
        Arc::new(SystemClock),
        Limits::default(),
    );
    let router = countersign_server::app(state.clone());
    let get = |path: String| {
        let router = router.clone();
        let cookie = cookie.clone();
        async move {
            let request = Request::get(&path)
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap();
            let started = Instant::now();
            let response = tower_service::Service::call(&mut router.clone(), request)
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let took = started.elapsed();
            assert!(
                status.is_success(),
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            (took, body)
        }
    };
    // Warm the caches as a server in use would have them.
    for _ in 0..20 {
        get("/queue".into()).await;
    }
    let rounds = 200;
    let page = get("/queue".into()).await.1;
    let text = String::from_utf8_lossy(&page).into_owned();
    let ids: Vec<String> = text
        .split("data-id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_owned))
        .collect();
    assert!(!ids.is_empty());
    // A page from the middle of the queue: the position halfway between the first and the
    // last deadline.
    let edge = |backwards| countersign_store::PendingQuery {
        limit: 1,
        backwards,
        ..Default::default()
    };
    let first = store.pending(edge(false)).await.unwrap().items.remove(0);
    let last = store.pending(edge(true)).await.unwrap().items.remove(0);
    let (start, end) = (first.gate.deadline.unwrap(), last.gate.deadline.unwrap());
    let deep = format!(
        "/queue?after={}",
        countersign_store::QueuePosition {
            deadline: start + (end - start) / 2,
            id: "0".into()
        }
        .encode()
    );
    for (name, path) in [
        ("queue, first page", "/queue".to_owned()),
        (
            "queue, tier=confirm (1% of actions)",
            "/queue?tier=confirm".to_owned(),
        ),
        ("queue, agent=agent-7", "/queue?agent=agent-7".to_owned()),
        (
            "queue, action=invoice.void",
            "/queue?action=invoice.void".to_owned(),
        ),
        (
            "queue, action=pay* (wildcard)",
            "/queue?action=pay*".to_owned(),
        ),
        ("queue, a page further in", deep.clone()),
    ] {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            samples.push(get(path.clone()).await.0);
        }
        stats(name, samples);
    }
    // Action pages across the queue (the first page's actions, and ones deep in it).
    let mut targets = ids.clone();
    let later = store
        .pending(countersign_store::PendingQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    targets.extend(later.items.iter().step_by(20).map(|r| r.id.clone()));
    let mut samples = Vec::new();
    for i in 0..rounds {
        samples.push(
            get(format!("/actions/{}", targets[i % targets.len()]))
                .await
                .0,
        );
    }
    stats("action page", samples);

    // A decision from the UI waking the waiting agent, on the real server over loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(countersign_server::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let agent = store
        .create_token(NewToken {
            name: Name::parse("wake-bot").unwrap(),
            role: Role::Agent,
            groups: vec![],
            owner: Some("olivia".into()),
            created_by: Actor::named("cli"),
            at: Utc::now(),
        })
        .await;
    let agent = match agent {
        Ok(created) => created.secret,
        Err(_) => {
            store
                .create_token(NewToken {
                    name: Name::parse(&format!("wake-bot-{}", std::process::id())).unwrap(),
                    role: Role::Agent,
                    groups: vec![],
                    owner: Some("olivia".into()),
                    created_by: Actor::named("cli"),
                    at: Utc::now(),
                })
                .await
                .unwrap()
                .secret
        }
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = {
        let page = http
            .get(format!("{base}/queue"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        page.split("name=\"csrf-token\" content=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let mut wakes = Vec::new();
    for i in 0..50 {
        let submitted: serde_json::Value = http
            .post(format!("{base}/v1/actions"))
            .bearer_auth(&agent)
            .json(&json!({"action": "refund.create", "args": {"amount": i}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = submitted["id"].as_str().unwrap().to_owned();
        let waiter = {
            let http = http.clone();
            let url = format!("{base}/v1/actions/{id}?wait=30");
            let agent = agent.clone();
            tokio::spawn(async move {
                let answer: serde_json::Value = http
                    .get(url)
                    .bearer_auth(agent)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (Instant::now(), answer)
            })
        };
        // Let the long-poll register before the decision (it would otherwise just read it).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        let response = http
            .post(format!("{base}/actions/{id}/decide"))
            .header("cookie", &cookie)
            .form(&[("verdict", "approve"), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let (woke, answer) = waiter.await.unwrap();
        assert_eq!(answer["status"], "approved");
        wakes.push(woke.saturating_duration_since(sent));
    }
    stats("UI approval -> waiting agent's long-poll returns", wakes);
    let _ = stop.send(());
    let _ = server.await;
}
