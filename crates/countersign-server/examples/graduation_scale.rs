//! Measures graduation at scale, for BENCHMARKS.md: replaying a 1,000-rule candidate over
//! 1,000,000 recorded submissions, and the evidence per rule and action over them, each next
//! to a baseline measured in the same run.
//!
//! ```sh
//! cargo run --release -p countersign-server --example graduation_scale -- generate /tmp/grad.db 1000000
//! cargo run --release -p countersign-server --example graduation_scale -- measure /tmp/grad.db
//! ```
//!
//! `generate` submits N actions through the real store from 64 concurrent tasks over the
//! last 29 days: a fifth `order.get` (auto), the rest `tool_0` .. `tool_999` (approve by
//! the defaults), every approve one decided (94% approved, 4% rejected, 2% modified).
//! `generate-without-index` does the same after dropping the graduation index, to measure
//! what it costs the write path.
//!
//! `measure` times, in one run: the history scan alone (decoding every row: the floor of a
//! replay) and the replay of a 1,000-rule candidate; the evidence aggregate from the index
//! and the same aggregate forced onto the table (`NOT INDEXED`); and the whole suggestion
//! (evidence, narrowing reads, diffs) without and with the replays of its proposals.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use countersign_core::Policy;
use countersign_core::action::{ActionName, AgentName, ProposedAction};
use countersign_core::graduation::Thresholds;
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_server::graduation;
use countersign_store::{Actor, NewAction, SqliteOptions, SqliteStore, Store};
use serde_json::json;

const RECORDED: &str = "version = 1\n[defaults]\ntier = \"approve\"\n[[rules]]\nname = \"reads\"\nactions = [\"*.get\"]\ntier = \"auto\"\n";

/// 1,000 rules `tool_i` with `args.amount > 1000`, plus two wildcard rules in front (the
/// policy benchmark's shape).
fn candidate(rules: usize) -> String {
    let mut out = String::from(
        "version = 1\n[defaults]\ntier = \"approve\"\nmin_confidence = 0.5\n\
         [[rules]]\nname = \"reads\"\nactions = [\"*.get\", \"*.list\"]\ntier = \"auto\"\n\
         [[rules]]\nname = \"destructive\"\nwhen = \"has(hints.destructive) && hints.destructive\"\ntier = \"confirm\"\n",
    );
    for i in 0..rules {
        out.push_str(&format!(
            "[[rules]]\nname = \"rule {i}\"\nactions = [\"tool_{i}\"]\nwhen = \"args.amount > 1000\"\ntier = \"approve\"\n\
             [[rules]]\nname = \"small {i}\"\nactions = [\"tool_{i}\"]\ntier = \"logged\"\nreview_sample = 0.1\n"
        ));
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(mode @ ("generate" | "generate-without-index")) => {
            let count: u64 = args
                .get(3)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000);
            if mode == "generate-without-index" {
                SqliteStore::open(&args[2], SqliteOptions::default())
                    .await
                    .unwrap()
                    .close()
                    .await;
                let conn = rusqlite::Connection::open(&args[2]).unwrap();
                conn.execute_batch("DROP INDEX actions_history").unwrap();
                conn.close().unwrap();
            }
            generate(&args[2], count).await;
        }
        Some("measure") => measure(&args[2]).await,
        _ => eprintln!(
            "usage: graduation_scale generate PATH N | generate-without-index PATH N | measure PATH"
        ),
    }
}

async fn generate(path: &str, count: u64) {
    let store = Arc::new(
        SqliteStore::open(path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let policy = Arc::new(Policy::parse(RECORDED).unwrap());
    let start = Utc::now() - TimeDelta::days(29);
    let step = TimeDelta::days(29).num_milliseconds() / count.max(1) as i64;
    let started = Instant::now();
    let tasks = 64;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        let policy = policy.clone();
        handles.push(tokio::spawn(async move {
            let lead = Actor {
                name: "rita".into(),
                groups: vec![],
                token_id: None,
                admin: false,
            };
            let mut n = task;
            while n < count {
                let action = if n % 5 == 0 {
                    "order.get".to_owned()
                } else {
                    format!("tool_{}", n % 1000)
                };
                let mut proposal = ProposedAction::new(
                    ActionName::parse(&action).unwrap(),
                    AgentName::parse("bot").unwrap(),
                );
                let amount = (n * 7919) % 2000;
                proposal.args = json!({"amount": amount, "order": format!("A-{n}")})
                    .as_object()
                    .unwrap()
                    .clone();
                let at = start + TimeDelta::milliseconds(n as i64 * step);
                let new = NewAction::classify(&policy, proposal, at);
                let record = store.submit(new).await.unwrap().record;
                if n % 5 != 0 {
                    let verdict = match n % 50 {
                        0 | 1 => Verdict::Reject,
                        2 => Verdict::Modify,
                        _ => Verdict::Approve,
                    };
                    let mut request = DecisionRequest {
                        verdict,
                        args: None,
                        reason: (verdict == Verdict::Reject).then(|| "no".to_owned()),
                        confirm: None,
                        reclassified: None,
                    };
                    if verdict == Verdict::Modify {
                        let mut args = record.gate.args.clone();
                        args.insert("amount".into(), json!(amount / 2));
                        request.reclassified =
                            Some(record.reclassify(&policy, args.clone(), at).unwrap());
                        request.args = Some(args);
                    }
                    store
                        .decide(record.id, lead.clone(), request, at)
                        .await
                        .unwrap();
                }
                n += tasks;
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = started.elapsed();
    store.close().await;
    let size = std::fs::metadata(path).unwrap().len();
    println!(
        "generated {count} actions in {:.1} s ({:.0} actions/s, {:.0} writes/s); file {:.0} MiB",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        (count as f64 * 1.8) / elapsed.as_secs_f64(),
        size as f64 / 1048576.0
    );
}

fn secs(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

async fn measure(path: &str) {
    let options = SqliteOptions {
        check_integrity: false,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path, options).await.unwrap());
    let since = Utc::now() - TimeDelta::days(30);

    // Replay: the scan alone (every row decoded), then the 1,000-rule candidate.
    let started = Instant::now();
    let scanned = store
        .scan_history(
            since,
            Box::new(|recorded| std::hint::black_box(recorded).at.timestamp() != 0),
        )
        .await
        .unwrap();
    println!("scan alone (decode {scanned} rows): {:.2} s", secs(started));
    let parsed = Instant::now();
    let candidate = Arc::new(Policy::parse(&candidate(1000)).unwrap());
    println!("parse the 2,002-rule candidate: {:.2} s", secs(parsed));
    let started = Instant::now();
    let run = graduation::replay(
        store.as_ref(),
        candidate,
        since,
        None,
        Arc::new(AtomicU64::new(0)),
    )
    .await
    .unwrap();
    println!(
        "replay ({} rows, {} relaxed, {} tightened, {} let through): {:.2} s",
        run.report.total,
        run.report.relaxed,
        run.report.tightened,
        run.report.let_through_total,
        secs(started)
    );

    // Evidence: from the index, and the same aggregate on the table.
    for round in 0..3 {
        let started = Instant::now();
        let evidence = store.evidence(since).await.unwrap();
        println!(
            "evidence from the index, round {round} ({} groups): {:.0} ms",
            evidence.len(),
            secs(started) * 1000.0
        );
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT rule, action, tier, status, count(*), sum(original_args IS NOT NULL), min(created_at), max(created_at), max(decided_at) FROM actions INDEXED BY actions_history WHERE created_at >= ?1 GROUP BY rule, action, tier, status")
        .unwrap()
        .query_map([since.timestamp_millis()], |row| row.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    println!("plan: {}", plan.join(" / "));
    let started = Instant::now();
    let groups: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT rule, action, tier, status, count(*), \
             sum(original_args IS NOT NULL), min(created_at), max(created_at), max(decided_at) \
             FROM actions NOT INDEXED WHERE created_at >= ?1 GROUP BY rule, action, tier, status)",
            [since.timestamp_millis()],
            |row| row.get(0),
        )
        .unwrap();
    println!(
        "baseline: the same aggregate on the table ({groups} groups): {:.0} ms",
        secs(started) * 1000.0
    );

    // The whole suggestion against the recorded policy, without and with replays.
    let policy = Policy::parse(RECORDED).unwrap();
    let thresholds = Thresholds {
        target: 0.1,
        ..Thresholds::default()
    };
    for replay in [false, true] {
        let started = Instant::now();
        let deadline = replay.then(|| Instant::now() + std::time::Duration::from_secs(600));
        let found = graduation::suggest(
            store.as_ref(),
            &policy,
            "policy.toml",
            thresholds,
            Utc::now(),
            deadline,
        )
        .await
        .unwrap();
        println!(
            "suggest (replay: {replay}): {} proposal(s) in {:.0} ms",
            found.suggested.len(),
            secs(started) * 1000.0
        );
    }
    store.close().await;
}
