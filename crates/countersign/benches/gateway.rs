//! The gateway measured as agents see it: the real `countersign serve` process over loopback
//! HTTP with a real SQLite file, next to the disk's fsync rate measured in the same run.
//!
//! ```text
//! cargo bench -p countersign --bench gateway                 # fsync, throughput, latency
//! cargo bench -p countersign --bench gateway -- scale        # 1,000,000 pending actions
//! cargo bench -p countersign --bench gateway -- roundtrip    # an approval round trip vs its floor
//! cargo bench -p countersign --bench gateway -- all
//! BENCH_BASELINE=/path/to/other/countersign cargo bench -p countersign --bench gateway -- compare
//! ```
//!
//! `compare` measures submission throughput of this build and of another `countersign`
//! binary (an earlier commit's, say) back to back, alternating `BENCH_ROUNDS` times (default
//! 3) with a fresh database each round, and prints every round, so the spread between rounds
//! of one build shows how noisy the machine is next to the difference between builds.
//!
//! Environment: `BENCH_SECONDS` (throughput window, default 10), `BENCH_AGENTS` (default 64),
//! `BENCH_PENDING` (scale, default 1000000), `BENCH_DIR` (where the database goes, default a
//! fresh directory under the system temp dir: put it on the disk you want to measure).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use countersign_core::policy::Policy;
use countersign_core::{ActionName, AgentName, ProposedAction};
use countersign_store::NewAction;
use serde_json::{Value, json};

const POLICY: &str = r#"version = 1
[defaults]
tier = "approve"
[[rules]]
name = "bench writes"
actions = ["bench.write"]
tier = "logged"
[[rules]]
name = "bench reads"
actions = ["*.get"]
tier = "auto"
[[rules]]
name = "bench approvals"
actions = ["bench.gated"]
tier = "approve"
"#;

fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "default".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = bench_dir();
    println!("machine: {}", machine());
    println!("database directory: {}", dir.display());
    let fsync = fsync_probe(&dir, Duration::from_secs(3));
    println!(
        "fsync: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms",
        fsync.rate,
        fsync.p50.as_secs_f64() * 1e3,
        fsync.p99.as_secs_f64() * 1e3
    );
    if mode == "default" || mode == "all" {
        runtime.block_on(throughput_and_latency(&dir, &fsync));
    }
    if mode == "scale" || mode == "all" {
        runtime.block_on(scale(&dir));
    }
    if mode == "roundtrip" || mode == "all" {
        runtime.block_on(roundtrip(&dir, &fsync));
    }
    if mode == "compare" {
        runtime.block_on(compare(&dir));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn bench_dir() -> PathBuf {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("countersign-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dir
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
    format!("{cpu}, {cores} cores")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Fsync {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// Writes 4 KiB and `fdatasync`s, in a loop, in the directory the database will use: over
/// a file already written to its full size, cycling through it, as SQLite reuses its
/// write-ahead log (an append that grows the file costs a metadata update per sync as well,
/// which no commit of the gateway pays once its log has grown).
fn fsync_probe(dir: &Path, window: Duration) -> Fsync {
    use std::io::{Seek, SeekFrom};
    const SPAN: u64 = 4 * 1024 * 1024;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("create probe file");
    let block = [0x5au8; 4096];
    for _ in 0..SPAN / 4096 {
        file.write_all(&block).expect("write");
    }
    file.sync_all().expect("fsync");
    let mut latencies = Vec::new();
    let mut offset = 0;
    let start = Instant::now();
    while start.elapsed() < window {
        let t = Instant::now();
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        latencies.push(t.elapsed());
        offset = (offset + 4096) % SPAN;
    }
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(&path);
    latencies.sort();
    Fsync {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A running `countersign serve`.
struct Server {
    child: Child,
    url: String,
    db: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Under a wrapper (a profiler), an interrupt lets it write its data; else SIGKILL.
        if std::env::var_os("BENCH_WRAP").is_some() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// This build's binary.
fn this_build() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_countersign"))
}

async fn start_server(dir: &Path, db_name: &str) -> Server {
    start_server_of(this_build(), dir, db_name).await
}

async fn start_server_of(binary: &Path, dir: &Path, db_name: &str) -> Server {
    let policy = dir.join("bench-policy.toml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let db = format!("sqlite://{}", dir.join(db_name).display());
    let port = free_port();
    // `BENCH_WRAP="perf record -e cpu-clock -g -o server.perf --"` runs the server under a
    // profiler (or any other wrapper command).
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let child = command
        .current_dir(dir)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            &db,
        ])
        .arg("--policy")
        .arg(&policy)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start countersign serve");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        // A child process says nothing when it is ready; ask again shortly, up to the deadline.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, url, db }
}

fn create_token(db: &str, role: &str, name: &str) -> String {
    create_token_with(this_build(), db, role, name)
}

fn create_token_with(binary: &Path, db: &str, role: &str, name: &str) -> String {
    let out = Command::new(binary)
        .args([
            "token", "create", "--role", role, "--name", name, "--db", db,
        ])
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `(commits, commands)` from the store's group-commit counters.
async fn commit_counters(client: &reqwest::Client, url: &str) -> (u64, u64) {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let read = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        read("countersign_store_commits_total"),
        read("countersign_store_commands_total"),
    )
}

async fn submit(client: &reqwest::Client, url: &str, token: &str, n: u64) -> bool {
    let body = json!({
        "action": "bench.write",
        "args": {"n": n, "note": "group commit benchmark"},
        "reasoning": "benchmark",
    });
    match client
        .post(format!("{url}/v1/actions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status() == reqwest::StatusCode::CREATED,
        Err(_) => false,
    }
}

async fn throughput_and_latency(dir: &Path, fsync: &Fsync) {
    let server = start_server(dir, "throughput.db").await;
    let token = create_token(&server.db, "agent", "bench-agent");
    let agents = env_number("BENCH_AGENTS", 64);
    let seconds = env_number("BENCH_SECONDS", 10);

    // Latency at low load: one agent, one request at a time.
    let client = reqwest::Client::new();
    for n in 0..200 {
        submit(&client, &server.url, &token, n).await;
    }
    let mut latencies = Vec::with_capacity(2000);
    for n in 0..2000 {
        let t = Instant::now();
        assert!(
            submit(&client, &server.url, &token, n).await,
            "submit failed"
        );
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let budget = fsync.p99 * 2 + Duration::from_millis(1);
    println!(
        "latency (1 agent, auto-allowed, durable): p50 {:.3} ms, p99 {:.3} ms; target p99 <= 2 x fsync p99 + 1 ms = {:.3} ms: {}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        budget.as_secs_f64() * 1e3,
        if p99 <= budget { "met" } else { "NOT met" }
    );

    // Throughput: many agents at once.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (commits_before, commands_before) = commit_counters(&client, &server.url).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for agent in 0..agents {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let (url, token) = (server.url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = agent * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if submit(&client, &url, &token, n).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // The measurement window: the agents run while this task waits.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (commits_after, commands_after) = commit_counters(&client, &server.url).await;
    let decisions = done.load(Ordering::Relaxed);
    let rate = decisions as f64 / elapsed;
    let commits = commits_after - commits_before;
    let per_commit = (commands_after - commands_before) as f64 / commits.max(1) as f64;
    println!(
        "throughput ({agents} agents, {seconds} s): {rate:.0} durable decisions/s, {} failed; {commits} commits = {:.1} decisions per fsync; \
         disk alone: {:.0} fsync/s -> {:.1}x the fsync rate; targets >= 10 per fsync: {}, >= 5000/s: {}",
        failed.load(Ordering::Relaxed),
        per_commit,
        fsync.rate,
        rate / fsync.rate,
        if per_commit >= 10.0 { "met" } else { "NOT met" },
        if rate >= 5000.0 { "met" } else { "NOT met" },
    );
}

/// CPU time a process has used (user + system), from /proc: less sensitive than throughput
/// to what else runs on the machine.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces), from its closing paren.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the paren; the
    // kernel counts them in USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Submissions per second (auto/logged tier, 64 agents) against `binary`'s server, and the
/// server's CPU time per submission in microseconds.
async fn throughput_of(binary: &Path, dir: &Path, db_name: &str) -> (f64, f64) {
    let server = start_server_of(binary, dir, db_name).await;
    let token = create_token_with(binary, &server.db, "agent", "bench-agent");
    let agents = env_number("BENCH_AGENTS", 64);
    let seconds = env_number("BENCH_SECONDS", 10);
    let client = reqwest::Client::new();
    // Warm-up: the first requests open connections and caches.
    for n in 0..200 {
        submit(&client, &server.url, &token, n).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(server.child.id());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for agent in 0..agents {
        let (stop, done) = (stop.clone(), done.clone());
        let (url, token) = (server.url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = agent * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if submit(&client, &url, &token, n).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let submitted = done.load(Ordering::Relaxed) as f64;
    let rate = submitted / started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(server.child.id()) - cpu_before) / submitted.max(1.0) * 1e6;
    drop(server);
    let _ = std::fs::remove_file(dir.join(db_name));
    let _ = std::fs::remove_file(dir.join(format!("{db_name}-wal")));
    let _ = std::fs::remove_file(dir.join(format!("{db_name}-shm")));
    (rate, cpu)
}

/// This build against `BENCH_BASELINE`, alternating.
async fn compare(dir: &Path) {
    let Some(baseline) = std::env::var_os("BENCH_BASELINE").map(PathBuf::from) else {
        eprintln!("compare: set BENCH_BASELINE to the other countersign binary");
        return;
    };
    let rounds = env_number("BENCH_ROUNDS", 3);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_cpu, mut their_cpu) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (base, base_cpu) = throughput_of(&baseline, dir, "baseline.db").await;
        let (this, this_cpu) = throughput_of(this_build(), dir, "this.db").await;
        println!(
            "round {round}: baseline {base:.0}/s ({base_cpu:.0} µs CPU each), this build {this:.0}/s ({this_cpu:.0} µs CPU each): {:+.1}% throughput, {:+.1}% CPU",
            (this / base - 1.0) * 100.0,
            (this_cpu / base_cpu - 1.0) * 100.0
        );
        theirs.push(base);
        ours.push(this);
        their_cpu.push(base_cpu);
        our_cpu.push(this_cpu);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let spread = |v: &[f64]| (v[v.len() - 1] / v[0] - 1.0) * 100.0;
    let (b, t) = (median(&mut theirs), median(&mut ours));
    let (bc, tc) = (median(&mut their_cpu), median(&mut our_cpu));
    println!(
        "compare ({rounds} rounds): throughput baseline median {b:.0}/s (spread {:.0}%), this build {t:.0}/s (spread {:.0}%): {:+.1}%; \
         server CPU per submission baseline median {bc:.0} µs (spread {:.0}%), this build {tc:.0} µs (spread {:.0}%): {:+.1}%",
        spread(&theirs),
        spread(&ours),
        (t / b - 1.0) * 100.0,
        spread(&their_cpu),
        spread(&our_cpu),
        (tc / bc - 1.0) * 100.0,
    );
}

/// Rss of a process in MiB, from /proc.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn scale(dir: &Path) {
    let pending = env_number("BENCH_PENDING", 1_000_000);
    let db_path = dir.join("scale.db");
    let seed_started = Instant::now();
    {
        // Seed through the store's own API (classification included), many at a time.
        let store = countersign_store::open(&format!("sqlite://{}", db_path.display()))
            .await
            .expect("open store");
        let policy = Arc::new(Policy::parse(POLICY).expect("policy"));
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..256 {
            let (store, policy, next) = (store.clone(), policy.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= pending {
                        break;
                    }
                    let mut proposal = ProposedAction::new(
                        ActionName::parse(&format!("refund.create_{}", n % 50)).unwrap(),
                        AgentName::parse("support-bot").unwrap(),
                    );
                    proposal.args = json!({"amount": n, "order": format!("A-{n}")})
                        .as_object()
                        .unwrap()
                        .clone();
                    let action = NewAction::classify(&policy, proposal, Utc::now());
                    store.submit(action).await.expect("seed submit");
                }
            }));
        }
        for task in tasks {
            task.await.expect("seed task");
        }
    }
    println!(
        "scale: seeded {pending} pending actions in {:.0} s",
        seed_started.elapsed().as_secs_f64()
    );
    let server = start_server(dir, "scale.db").await;
    let token = create_token(&server.db, "reviewer", "bench-reviewer");
    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let page: Value = client
            .get(format!("{}/v1/actions", server.url))
            .query(&[("status", "pending"), ("limit", "50")])
            .bearer_auth(&token)
            .send()
            .await
            .expect("queue")
            .json()
            .await
            .expect("queue json");
        latencies.push(t.elapsed());
        assert_eq!(page["items"].as_array().map(Vec::len), Some(50), "{page}");
    }
    latencies.sort();
    let rss = rss_mib(server.child.id());
    println!(
        "scale: first queue page (50 items) of {pending} pending: p50 {:.2} ms, p99 {:.2} ms (target <= 20 ms: {}); server RSS {rss:.0} MiB (target <= 150: {})",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        if percentile(&latencies, 0.5) <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        },
        if rss <= 150.0 { "met" } else { "NOT met" },
    );
}

/// An agent's whole approval round trip — submit (durable), a reviewer's decision (durable),
/// the agent reading the decision — one at a time, next to its floor measured in the same
/// run: two fsyncs of the same disk plus three no-op HTTP exchanges of the same client (a
/// request the server answers without touching the store).
async fn roundtrip(dir: &Path, fsync: &Fsync) {
    let server = start_server(dir, "roundtrip.db").await;
    let agent = create_token(&server.db, "agent", "bench-agent");
    let reviewer = create_token(&server.db, "reviewer", "bench-reviewer");
    let client = reqwest::Client::new();
    let rounds = env_number("BENCH_ROUNDS", 2000) as usize;
    let noop = |client: &reqwest::Client| {
        let url = format!("{}/nothing-here", server.url);
        let request = client.get(url);
        async move {
            let response = request.send().await.expect("no-op");
            let _ = response.bytes().await;
        }
    };
    // The disk's fsync time drifts by an order of magnitude over minutes on these machines,
    // so the floor is measured inside each round, interleaved with it: two syncs of a
    // pre-written file in the database's directory, as the log's commits are.
    let probe_path = dir.join("roundtrip-fsync-probe");
    let mut probe = std::fs::File::create(&probe_path).expect("create probe file");
    let block = [0x5au8; 4096];
    for _ in 0..1024 {
        probe.write_all(&block).expect("write");
    }
    probe.sync_all().expect("fsync");
    let mut offset = 0u64;
    let mut sync = move || {
        use std::io::{Seek, SeekFrom};
        let t = Instant::now();
        probe.seek(SeekFrom::Start(offset)).expect("seek");
        probe.write_all(&block).expect("write");
        probe.sync_data().expect("fdatasync");
        offset = (offset + 4096) % (1024 * 4096);
        t.elapsed()
    };
    let mut noops = Vec::with_capacity(rounds);
    let mut syncs = Vec::with_capacity(rounds * 2);
    let mut floors = Vec::with_capacity(rounds);
    let mut totals = Vec::with_capacity(rounds);
    let mut steps: [Vec<Duration>; 3] = Default::default();
    for round in 0..rounds + 200 {
        let mut noop_time = Duration::ZERO;
        for _ in 0..3 {
            let t = Instant::now();
            noop(&client).await;
            noop_time += t.elapsed();
        }
        let (first, second) = (sync(), sync());

        let t0 = Instant::now();
        let submitted: Value = client
            .post(format!("{}/v1/actions", server.url))
            .bearer_auth(&agent)
            .json(
                &json!({"action": "bench.gated", "args": {"n": round}, "reasoning": "round trip"}),
            )
            .send()
            .await
            .expect("submit")
            .json()
            .await
            .expect("submit json");
        let id = submitted["id"].as_str().expect("an id").to_owned();
        let t1 = Instant::now();
        let decided = client
            .post(format!("{}/v1/actions/{id}/decisions", server.url))
            .bearer_auth(&reviewer)
            .json(&json!({"verdict": "approve"}))
            .send()
            .await
            .expect("decide");
        assert!(
            decided.status().is_success(),
            "decide: {}",
            decided.status()
        );
        let _ = decided.bytes().await;
        let t2 = Instant::now();
        let read: Value = client
            .get(format!("{}/v1/actions/{id}", server.url))
            .bearer_auth(&agent)
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("read json");
        let t3 = Instant::now();
        assert_eq!(read["status"], "approved");
        if round >= 200 {
            noops.push(noop_time / 3);
            syncs.extend([first, second]);
            floors.push(first + second + noop_time);
            totals.push(t3 - t0);
            steps[0].push(t1 - t0);
            steps[1].push(t2 - t1);
            steps[2].push(t3 - t2);
        }
    }
    let _ = std::fs::remove_file(&probe_path);
    for list in [&mut noops, &mut syncs, &mut floors, &mut totals] {
        list.sort();
    }
    for list in &mut steps {
        list.sort();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let floor = percentile(&floors, 0.5);
    let p50 = percentile(&totals, 0.5);
    let _ = fsync;
    println!(
        "round trip (submit, decide, read; {rounds} rounds): p50 {:.3} ms, p99 {:.3} ms; steps p50: submit {:.3}, decide {:.3}, read {:.3} ms",
        ms(p50),
        ms(percentile(&totals, 0.99)),
        ms(percentile(&steps[0], 0.5)),
        ms(percentile(&steps[1], 0.5)),
        ms(percentile(&steps[2], 0.5)),
    );
    println!(
        "round trip floor (interleaved): 2 fsyncs (p50 {:.3} ms each) + 3 no-op HTTP exchanges (p50 {:.3} ms each) = p50 {:.3} ms; round trip = {:.2}x the floor (target <= 1.3x: {})",
        ms(percentile(&syncs, 0.5)),
        ms(percentile(&noops, 0.5)),
        ms(floor),
        p50.as_secs_f64() / floor.as_secs_f64(),
        if p50.as_secs_f64() <= 1.3 * floor.as_secs_f64() {
            "met"
        } else {
            "NOT met"
        },
    );
}
