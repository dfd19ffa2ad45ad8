//! Several gateway instances on one PostgreSQL, measured as agents see them, next to what
//! the same cluster does on its own in the same run:
//!
//! - `pgbench` with a single-row `INSERT` per transaction (64 clients, and 1), the cluster's
//!   durable commit rate;
//! - `pgbench` with the naive audit chain: every transaction bumps one head row and inserts
//!   its entry (what a chain linked inside each commit costs);
//! - one connection's commit latency (p50, p99), the floor of a single agent's latency;
//! - then two `countersign serve` processes on one database: durable submissions per second
//!   with 64 agents spread over both, and one agent's latency (p50, p99).
//!
//! ```text
//! cargo bench -p countersign --bench postgres
//! ```
//!
//! Environment: `BENCH_SECONDS` (each window, default 10), `BENCH_AGENTS` (default 64),
//! `BENCH_POSTGRES` (an admin URL of a cluster to use; default a throw-away cluster under
//! `target/pg-bench`, started with `scripts/pg-cluster.sh` and removed after).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

const POLICY: &str = r#"version = 1
[defaults]
tier = "approve"
[[rules]]
name = "bench writes"
actions = ["bench.write"]
tier = "logged"
"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let seconds = env_number("BENCH_SECONDS", 10);
    let agents = env_number("BENCH_AGENTS", 64);
    println!("machine: {}", machine());
    let cluster = Cluster::start();
    println!("cluster: {}", redact(&cluster.admin));
    let bench_db = cluster.database(&runtime, "pgbench_figures");
    runtime.block_on(sql(
        &bench_db,
        "CREATE TABLE bench_insert (id bigserial PRIMARY KEY, body text NOT NULL); \
         CREATE TABLE chain_head (id int PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL); \
         INSERT INTO chain_head VALUES (1, 0, '\\x00'); \
         CREATE TABLE chain_log (seq bigint PRIMARY KEY, hash bytea NOT NULL, body text NOT NULL);",
    ));
    let scratch = tempdir();
    let insert = scratch.join("insert.sql");
    std::fs::write(
        &insert,
        "INSERT INTO bench_insert (body) VALUES ('one row');\n",
    )
    .unwrap();
    let chain = scratch.join("chain.sql");
    std::fs::write(
        &chain,
        "BEGIN;\n\
         UPDATE chain_head SET seq = seq + 1, hash = sha256(hash || 'entry') WHERE id = 1 RETURNING seq, hash \\gset\n\
         INSERT INTO chain_log (seq, hash, body) VALUES (:seq, :hash, 'entry');\n\
         COMMIT;\n",
    )
    .unwrap();
    let insert_64 = pgbench(&bench_db, &insert, agents, seconds);
    let insert_1 = pgbench(&bench_db, &insert, 1, seconds);
    let chain_64 = pgbench(&bench_db, &chain, agents, seconds);
    let commit = runtime.block_on(commit_latency(&bench_db, 2000));
    println!(
        "pgbench single-row INSERT: {:.0} tps with {agents} clients, {:.0} tps with 1 (latency avg {:.3} ms)",
        insert_64.tps, insert_1.tps, insert_1.latency_ms
    );
    println!(
        "pgbench naive head-row chain: {:.0} tps with {agents} clients",
        chain_64.tps
    );
    println!(
        "commit latency, one connection: p50 {:.3} ms, p99 {:.3} ms",
        ms(commit.0),
        ms(commit.1)
    );

    let gateway_db = cluster.database(&runtime, "countersign_bench");
    let (rate, single) = runtime.block_on(gateway(&gateway_db, &scratch, agents, seconds));
    println!(
        "countersign, 2 instances, {agents} agents: {rate:.0} durable submissions/s ({:.1}x the naive chain, {:.0}% of pgbench's INSERT rate)",
        rate / chain_64.tps,
        100.0 * rate / insert_64.tps
    );
    println!(
        "countersign, 1 agent: p50 {:.3} ms, p99 {:.3} ms (target: p99 <= 2 x commit p99 + 1 ms = {:.3} ms)",
        ms(single.0),
        ms(single.1),
        2.0 * ms(commit.1) + 1.0
    );
    let _ = std::fs::remove_dir_all(&scratch);
    drop(cluster);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn env_number(name: &str, default: u64) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default) as usize
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

fn redact(url: &str) -> String {
    countersign_store::postgres::redact_url(url)
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-pg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cluster measured: `BENCH_POSTGRES`, or a throw-away one removed when dropped.
struct Cluster {
    admin: String,
    own: Option<PathBuf>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}

impl Cluster {
    fn start() -> Cluster {
        if let Ok(admin) = std::env::var("BENCH_POSTGRES") {
            return Cluster { admin, own: None };
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/pg-bench");
        let output = Command::new("bash")
            .arg(script())
            .args(["start", dir.to_str().unwrap()])
            .output()
            .expect("scripts/pg-cluster.sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Cluster {
            admin: String::from_utf8(output.stdout).unwrap().trim().to_owned(),
            own: Some(dir),
        }
    }

    /// A fresh database; returns its URL.
    fn database(&self, runtime: &tokio::runtime::Runtime, name: &str) -> String {
        runtime.block_on(async {
            sql(&self.admin, &format!("DROP DATABASE IF EXISTS {name}")).await;
            sql(&self.admin, &format!("CREATE DATABASE {name}")).await;
        });
        format!("{}/{name}", &self.admin[..self.admin.rfind('/').unwrap()])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The benchmark's data is big and of no use after: removed with its cluster.
        if let Some(dir) = &self.own {
            let _ = Command::new("bash")
                .arg(script())
                .args(["remove", dir.to_str().unwrap()])
                .status();
        }
    }
}

async fn sql(url: &str, statements: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client.batch_execute(statements).await.expect("sql");
}

struct Pgbench {
    tps: f64,
    latency_ms: f64,
}

fn pgbench(url: &str, script: &Path, clients: usize, seconds: usize) -> Pgbench {
    let program = if Command::new("pgbench").arg("--version").output().is_ok() {
        "pgbench".to_owned()
    } else {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/pgbench"))
            .find(|p| p.exists())
            .expect("pgbench");
        bin.display().to_string()
    };
    let output = Command::new(program)
        .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(script)
        .arg(url)
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "pgbench: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Pgbench {
        tps: number("tps = "),
        latency_ms: number("latency average = "),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One connection, one single-row insert per commit: (p50, p99).
async fn commit_latency(url: &str, rounds: usize) -> (Duration, Duration) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute("SET synchronous_commit = on")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO bench_insert (body) VALUES ($1)")
        .await
        .unwrap();
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        client.execute(&insert, &[&"one row"]).await.unwrap();
        latencies.push(t.elapsed());
    }
    latencies.sort();
    (percentile(&latencies, 0.5), percentile(&latencies, 0.99))
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn countersign(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .output()
        .expect("countersign");
    assert!(
        output.status.success(),
        "countersign {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn start_server(db: &str, dir: &Path) -> Server {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = dir.join("countersign.toml");
    std::fs::write(&config, "database_pool_size = 40\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .current_dir(dir)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db,
        ])
        .arg("--config")
        .arg(&config)
        .arg("--policy")
        .arg(&policy)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("countersign serve");
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
        // A child process says nothing when it is ready; ask again shortly.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, url }
}

async fn submit(client: &reqwest::Client, url: &str, token: &str, n: usize) -> bool {
    let body = json!({
        "action": "bench.write",
        "args": {"n": n, "note": "two instances on one PostgreSQL"},
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

/// Two instances: the rate with `agents` agents spread over both, and one agent's latency.
async fn gateway(
    db: &str,
    dir: &Path,
    agents: usize,
    seconds: usize,
) -> (f64, (Duration, Duration)) {
    countersign(&["migrate", "--db", db]);
    let token = countersign(&[
        "token",
        "create",
        "--db",
        db,
        "--role",
        "agent",
        "--name",
        "bench-agent",
    ]);
    let a = start_server(db, dir).await;
    let b = start_server(db, dir).await;

    // One agent, one request at a time, on A (after a warm-up).
    let client = reqwest::Client::new();
    for n in 0..200 {
        submit(&client, &a.url, &token, n).await;
    }
    let mut latencies = Vec::with_capacity(2000);
    for n in 0..2000 {
        let t = Instant::now();
        assert!(submit(&client, &a.url, &token, n).await, "submit failed");
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let single = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));

    // Many agents over both instances, each with its own connection.
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for agent in 0..agents {
        let url = if agent % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let (token, done, failed, stop) =
            (token.clone(), done.clone(), failed.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if submit(&client, &url, &token, n).await {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    // Warm-up, then the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        println!("({failures} submissions failed during the run)");
    }
    drop((a, b));
    let verified = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify", "--db", db])
        .output()
        .expect("audit verify");
    println!(
        "audit verify after the run: {}",
        if verified.status.success() {
            "ok"
        } else {
            "FAILED"
        }
    );
    (count as f64 / elapsed.as_secs_f64(), single)
}
