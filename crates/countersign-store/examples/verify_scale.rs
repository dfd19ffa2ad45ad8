//! Measures audit verification (chain, state re-derivation) and the start-up integrity
//! check on a large database, for BENCHMARKS.md:
//!
//! ```sh
//! cargo run --release -p countersign-store --example verify_scale -- generate /tmp/big.db 1000000
//! cargo run --release -p countersign-store --example verify_scale -- verify /tmp/big.db
//! ```
//!
//! `generate` submits N actions through the real store from 64 concurrent tasks (half
//! `order.get`, allowed at once; half large refunds, pending, of which every other one is
//! approved); `generate-with-index` does the same with an index of the log by action
//! added (`(action_id, seq)`), to measure what such an index would cost the write path. `verify` times `verify_file` and an open with and without `quick_check`, and
//! prints the process's peak memory.

use std::sync::Arc;
use std::time::Instant;

use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_store::conformance::{new_action, policy, t0};
use countersign_store::{Actor, SqliteOptions, SqliteStore, Store, verify_file};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(mode @ ("generate" | "generate-with-index")) => {
            let count: u64 = args
                .get(3)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000);
            if mode == "generate-with-index" {
                SqliteStore::open(&args[2], SqliteOptions::default())
                    .await
                    .unwrap()
                    .close()
                    .await;
                let conn = rusqlite::Connection::open(&args[2]).unwrap();
                conn.execute_batch(
                    "CREATE INDEX audit_by_action ON audit (action_id, seq) WHERE action_id <> ''",
                )
                .unwrap();
                conn.close().unwrap();
            }
            generate(&args[2], count).await;
        }
        Some("verify") => verify(&args[2]).await,
        _ => eprintln!(
            "usage: verify_scale generate PATH N | generate-with-index PATH N | verify PATH"
        ),
    }
}

async fn generate(path: &str, count: u64) {
    let store = Arc::new(
        SqliteStore::open(path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    let tasks = 64;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let p = policy();
            let lead = Actor {
                name: "rita".into(),
                groups: vec!["support-leads".into()],
                token_id: None,
                admin: false,
            };
            let mut n = task;
            while n < count {
                let (action, args) = if n % 2 == 0 {
                    ("order.get", json!({"order": n}))
                } else {
                    ("refund.create", json!({"amount": 500, "order": n}))
                };
                // A millisecond apart, as real traffic: ids are time-ordered, so index
                // inserts land near the end (all at one instant they would be random).
                let at = t0() + chrono::TimeDelta::milliseconds(n as i64);
                let record = store
                    .submit(new_action(&p, "bot", action, args, at))
                    .await
                    .unwrap()
                    .record;
                if n % 4 == 1 {
                    let request = DecisionRequest {
                        verdict: Verdict::Approve,
                        args: None,
                        reason: None,
                        confirm: None,
                        reclassified: None,
                    };
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
        "generated {count} actions in {:.1} s ({:.0} actions/s); file {:.0} MiB",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        size as f64 / 1048576.0
    );
}

async fn verify(path: &str) {
    let started = Instant::now();
    let report = verify_file(path, vec![]).await.unwrap();
    let verify = started.elapsed();
    assert!(report.ok(), "{:?}", report.problems());
    println!(
        "verify: {} entries, {} actions in {:.1} s ({:.0} entries/s); peak RSS so far {}",
        report.entries,
        report.actions,
        verify.as_secs_f64(),
        report.entries as f64 / verify.as_secs_f64(),
        peak_rss()
    );
    for check_integrity in [false, true] {
        let started = Instant::now();
        let store = SqliteStore::open(
            path,
            SqliteOptions {
                check_integrity,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        let opened = started.elapsed();
        store.close().await;
        println!(
            "open with check_integrity={check_integrity}: {:.2} s",
            opened.as_secs_f64()
        );
    }
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("VmHWM"))
        .map(|line| {
            line.split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "?".into())
}
