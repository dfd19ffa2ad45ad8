//! The SLA ladder and the outbox measured through the real `countersign serve` process
//! (release build) over loopback, with receivers in this process.
//!
//! ```text
//! cargo bench -p countersign --bench notify -- sla      # 100,000 deadlines within a minute
//! cargo bench -p countersign --bench notify -- fanout   # 1,000 gated submissions/s, 3 targets
//! cargo bench -p countersign --bench notify -- all
//! ```
//!
//! - `sla`: seeds `BENCH_SLA_ACTIONS` (default 100,000) pending actions through the store's
//!   own API, with deadlines spread evenly over one minute that starts `BENCH_SLA_LEAD`
//!   seconds (default 90) after seeding begins; starts the server; measures one agent's
//!   submission latency idle (before the window and again after it: the machine's load
//!   drifts), and while the deadlines fall; reads every expiry from the audit log (its time
//!   against the deadline it missed: the lateness). `BENCH_SLA_TARGETS` picks the runs
//!   (default `none,never,three`): no notification targets; one target on `expired` that
//!   never answers; two that answer and one that never does.
//! - `fanout`: three webhook targets subscribed to `pending` (in this process), the agents
//!   submitting `BENCH_RATE` (default 1,000) gated actions a second for `BENCH_SECONDS`
//!   (default 20); for each submission, the time from its 2xx to each target's receipt of
//!   its `pending` notification. Run twice: as is, and with a fourth target that never
//!   answers.
//!
//! `BENCH_DIR` chooses where the database goes (default: the system temp dir); it is
//! removed at the end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use countersign_core::policy::Policy;
use countersign_core::{ActionName, AgentName, ProposedAction};
use countersign_store::NewAction;
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `bench.expire` waits two minutes (seeded so that the deadlines fall in the window);
/// `bench.gated` thirty.
const POLICY: &str = r#"version = 1
[defaults]
tier = "approve"
sla = "30m"
[[rules]]
name = "expiring"
actions = ["bench.expire"]
tier = "approve"
sla = "2m"
"#;

fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "all".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("countersign-notify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!("machine: {}", machine());
    if mode == "sla" || mode == "all" {
        let variants =
            std::env::var("BENCH_SLA_TARGETS").unwrap_or_else(|_| "none,never,three".into());
        for variant in variants.split(',') {
            let targets = match variant {
                "none" => Targets::None,
                "never" => Targets::Never,
                "three" => Targets::Three,
                other => panic!("BENCH_SLA_TARGETS: unknown variant {other:?}"),
            };
            runtime.block_on(sla(&dir, targets));
        }
    }
    if mode == "fanout" || mode == "all" {
        runtime.block_on(fanout(&dir, false));
        runtime.block_on(fanout(&dir, true));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A receiver in this process: records when each action's `pending` notification arrived;
/// `hang` never answers.
struct Receiver {
    url: String,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    count: Arc<AtomicU64>,
}

async fn receiver(hang: bool) -> Receiver {
    use axum::body::Bytes;
    use axum::extract::State;
    type Shared = (Arc<Mutex<HashMap<String, Instant>>>, Arc<AtomicU64>, bool);
    async fn receive(State((arrivals, count, hang)): State<Shared>, body: Bytes) -> &'static str {
        let at = Instant::now();
        count.fetch_add(1, Ordering::Relaxed);
        if hang {
            std::future::pending::<()>().await;
        }
        if let Ok(value) = serde_json::from_slice::<Value>(&body)
            && let Some(id) = value["data"]["action"]["id"].as_str()
        {
            arrivals.lock().unwrap().entry(id.to_owned()).or_insert(at);
        }
        "ok"
    }
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let count = Arc::new(AtomicU64::new(0));
    let app =
        axum::Router::new()
            .fallback(receive)
            .with_state((arrivals.clone(), count.clone(), hang));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // Receivers stand for systems on other machines: here they share the two cores, so they
    // run on a thread of their own at the lowest priority, apart from the agents' runtime
    // whose latency is measured.
    std::thread::spawn(move || {
        let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
    });
    Receiver {
        url,
        arrivals,
        count,
    }
}

struct Server {
    child: Child,
    url: String,
    db: String,
    db_path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target(name: &str, url: &str, events: &str) -> String {
    format!(
        "[[notify]]\nkind = \"webhook\"\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nevents = [\"{events}\"]\ntimeout = \"5s\"\n"
    )
}

async fn start_server(dir: &Path, db_name: &str, notify: &str) -> Server {
    std::fs::write(dir.join("policy.toml"), POLICY).expect("policy");
    let db_path = dir.join(db_name);
    let db = format!("sqlite://{}", db_path.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.join("countersign.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = \"{db}\"\npolicy = \"policy.toml\"\ncheckpoint_key = \"{}\"\n{notify}",
            dir.join("checkpoint.key").display()
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start countersign serve");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        // A child process says nothing when it is ready; ask again shortly.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        url,
        db,
        db_path,
    }
}

fn create_token(db: &str, role: &str, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "token", "create", "--role", role, "--name", name, "--db", db,
        ])
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn submit(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    action: &str,
    n: u64,
) -> Option<String> {
    let body =
        json!({"action": action, "args": {"n": n, "amount": 2500}, "reasoning": "benchmark"});
    let answer = client
        .post(format!("{url}/v1/actions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    if answer.status() != reqwest::StatusCode::CREATED {
        return None;
    }
    let value: Value = answer.json().await.ok()?;
    value["id"].as_str().map(str::to_owned)
}

/// One agent, one request at a time, for `window`: the latencies.
async fn probe(url: &str, token: &str, window: Duration) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut n = 0;
    while Instant::now() < end {
        let t = Instant::now();
        assert!(
            submit(&client, url, token, "bench.gated", n)
                .await
                .is_some()
        );
        out.push(t.elapsed());
        n += 1;
    }
    out.sort();
    out
}

/// The notification targets subscribed to `expired` during the SLA run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Targets {
    None,
    /// One that never answers.
    Never,
    /// Two that answer and one that never does.
    Three,
}

async fn sla(dir: &Path, targets: Targets) {
    let count = env_number("BENCH_SLA_ACTIONS", 100_000);
    let lead = env_number("BENCH_SLA_LEAD", 90);
    let db_name = format!("sla-{targets:?}.db");
    let seed_start = Utc::now();
    let window_start = seed_start + TimeDelta::seconds(lead as i64);
    {
        let store = countersign_store::open(&format!("sqlite://{}", dir.join(&db_name).display()))
            .await
            .expect("open store");
        let policy = Arc::new(Policy::parse(POLICY).expect("policy"));
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (store, policy, next) = (store.clone(), policy.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    let mut proposal = ProposedAction::new(
                        ActionName::parse("bench.expire").unwrap(),
                        AgentName::parse("bench-agent").unwrap(),
                    );
                    proposal.args = json!({"n": n, "amount": 2500}).as_object().unwrap().clone();
                    // Deadline = at + 2m, spread evenly over the one-minute window.
                    let deadline =
                        window_start + TimeDelta::milliseconds((n * 60_000 / count) as i64);
                    let at = deadline - TimeDelta::minutes(2);
                    let action = NewAction::classify(&policy, proposal, at);
                    store.submit(action).await.expect("seed submit");
                }
            }));
        }
        for task in tasks {
            task.await.expect("seed task");
        }
        store.close().await;
    }
    let seeded = Utc::now();
    let mut receivers = Vec::new();
    let mut notify = String::new();
    let wanted: &[(&str, bool)] = match targets {
        Targets::None => &[],
        Targets::Never => &[("never", true)],
        Targets::Three => &[("a", false), ("b", false), ("never", true)],
    };
    {
        for (name, hang) in wanted.iter().copied() {
            let r = receiver(hang).await;
            notify.push_str(&target(name, &r.url, "expired"));
            receivers.push(r);
        }
    }
    let server = start_server(dir, &db_name, &notify).await;
    let token = create_token(&server.db, "agent", "bench-prober");
    let ready = Utc::now();
    println!(
        "sla ({}): seeded {count} pending actions in {:.0} s; server ready {:.0} s before the first deadline",
        match targets {
            Targets::None => "no notification targets",
            Targets::Never => "1 target on `expired` that never answers",
            Targets::Three => "3 targets on `expired`, one never answering",
        },
        (seeded - seed_start).as_seconds_f64(),
        (window_start - ready).as_seconds_f64(),
    );
    // Idle: until 5 s before the window (at most 20 s).
    let idle_for = (window_start - Utc::now() - TimeDelta::seconds(5))
        .to_std()
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(20));
    let idle = probe(&server.url, &token, idle_for).await;
    // Wait for the window, then probe through it.
    if let Ok(wait) = (window_start - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let busy = probe(&server.url, &token, Duration::from_secs(60)).await;
    // Let the last expiries land (the audit log is read from the file afterwards).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lateness: Vec<Duration>;
    loop {
        let conn = rusqlite::Connection::open_with_flags(
            &server.db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db");
        let mut statement = conn
            .prepare("SELECT at, json_extract(body, '$.missed_deadline') FROM audit WHERE kind = 'expired'")
            .unwrap();
        lateness = statement
            .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .map(|(at, missed)| Duration::from_millis((at - missed).max(0) as u64))
            .collect();
        if lateness.len() as u64 >= count || Instant::now() > deadline {
            break;
        }
        // The server says nothing when it is done: look at the log again shortly.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lateness.sort();
    // Idle again once the deadlines are over: the machine is shared, and its load drifts;
    // the idle figure is the probes before and after the window together.
    let mut idle = idle;
    idle.extend(probe(&server.url, &token, idle_for.max(Duration::from_secs(10))).await);
    idle.sort();
    let (idle50, idle99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (busy50, busy99) = (percentile(&busy, 0.5), percentile(&busy, 0.99));
    println!(
        "sla: {} of {count} expired; lateness p50 {}, p99 {}, max {} (target p99 <= 1 s: {})",
        lateness.len(),
        ms(percentile(&lateness, 0.5)),
        ms(percentile(&lateness, 0.99)),
        ms(lateness.last().copied().unwrap_or_default()),
        if lateness.len() as u64 == count && percentile(&lateness, 0.99) <= Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        },
    );
    println!(
        "sla: one agent's submission latency idle p50 {} p99 {} ({} requests); while the deadlines fall p50 {} p99 {} ({} requests); p50 ratio {:.2} (target <= 1.5: {}), p99 ratio {:.2}",
        ms(idle50),
        ms(idle99),
        idle.len(),
        ms(busy50),
        ms(busy99),
        busy.len(),
        busy50.as_secs_f64() / idle50.as_secs_f64().max(1e-9),
        if busy50.as_secs_f64() <= idle50.as_secs_f64() * 1.5 {
            "met"
        } else {
            "NOT met"
        },
        busy99.as_secs_f64() / idle99.as_secs_f64().max(1e-9),
    );
    if targets != Targets::None {
        let got: Vec<u64> = receivers
            .iter()
            .map(|r| r.count.load(Ordering::Relaxed))
            .collect();
        println!(
            "sla: expired notifications received by {wanted:?} when the last expiry landed: {got:?}"
        );
    }
    drop(server);
    let _ = std::fs::remove_file(dir.join(&db_name));
}

async fn fanout(dir: &Path, with_hanging: bool) {
    let rate = env_number("BENCH_RATE", 1000);
    let seconds = env_number("BENCH_SECONDS", 20);
    let mut receivers = Vec::new();
    let mut notify = String::new();
    for name in ["a", "b", "c"] {
        let r = receiver(false).await;
        notify.push_str(&target(name, &r.url, "pending"));
        receivers.push(r);
    }
    let hanging = receiver(true).await;
    if with_hanging {
        notify.push_str(&target("never", &hanging.url, "pending"));
    }
    let db_name = format!("fanout-{with_hanging}.db");
    let server = start_server(dir, &db_name, &notify).await;
    let token = create_token(&server.db, "agent", "bench-agent");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let limit = Arc::new(tokio::sync::Semaphore::new(512));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut n = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        n += 1;
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (client, url, token) = (client.clone(), server.url.clone(), token.clone());
        let (answered, latencies, failed) = (answered.clone(), latencies.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            match submit(&client, &url, &token, "bench.gated", n).await {
                Some(id) => {
                    let done = Instant::now();
                    latencies.lock().unwrap().push(done - t);
                    answered.lock().unwrap().insert(id, done);
                }
                None => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
    }
    let offered = n as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let submitted = answered.lock().unwrap().clone();
    // Wait for every notification (up to a minute).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && receivers
            .iter()
            .any(|r| r.arrivals.lock().unwrap().len() < submitted.len())
    {
        // Receivers count; nothing announces the last one: look again shortly.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut delays = Vec::new();
    let mut missing = 0;
    for r in &receivers {
        let arrivals = r.arrivals.lock().unwrap();
        for (id, answered_at) in &submitted {
            match arrivals.get(id) {
                Some(at) => delays.push(at.saturating_duration_since(*answered_at)),
                None => missing += 1,
            }
        }
    }
    delays.sort();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    println!(
        "fanout ({}): offered {offered:.0}/s for {seconds} s, {} acknowledged, {} failed; submission latency p50 {} p99 {}",
        if with_hanging {
            "3 targets + 1 never answering"
        } else {
            "3 targets"
        },
        submitted.len(),
        failed.load(Ordering::Relaxed),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
    );
    println!(
        "fanout: pending notifications {} delivered, {missing} missing; 2xx -> receipt p50 {}, p99 {}, max {} (target p99 <= 1 s: {})",
        delays.len(),
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(delays.last().copied().unwrap_or_default()),
        if missing == 0 && percentile(&delays, 0.99) <= Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        },
    );
    if with_hanging {
        println!(
            "fanout: the never-answering target was tried {} times (its lane's concurrency)",
            hanging.count.load(Ordering::Relaxed)
        );
    }
    drop(server);
    let _ = std::fs::remove_file(dir.join(&db_name));
}
