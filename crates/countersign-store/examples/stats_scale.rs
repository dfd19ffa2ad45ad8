//! Approval metrics at scale, for BENCHMARKS.md:
//!
//! ```sh
//! cargo run --release -p countersign-store --example stats_scale -- generate /tmp/stats.db 1000000
//! cargo run --release -p countersign-store --example stats_scale -- measure /tmp/stats.db
//! cargo run --release -p countersign-store --example stats_scale -- generate-cases /tmp/cases.db 1000000
//! ```
//!
//! `generate` submits N actions through the real store from 1,024 concurrent tasks, spread
//! over a simulated week (one every 0.6 s at a million): reads, sampled logged refunds (a
//! tenth of them flagged), large refunds approved, modified, rejected, escalated then
//! expired, or left pending, after 2 s to 14 min, by five reviewers (one approving within
//! seconds), two-person confirms, denials; 10 agents and 30 action names. `measure` times
//! `Store::stats` (and the core's report) for every grouping over windows of every shape,
//! the dashboard's series and `/metrics`' totals, and prints the process's peak memory.
//! `generate-cases` makes N actions that are all training cases (rejected or modified, with
//! a kilobyte of context each), for the export's memory figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_core::stats::{self, GroupBy, StatsSettings, Window};
use countersign_store::conformance::{new_action, policy};
use countersign_store::{
    Actor, NewReview, ReviewVerdict, SeriesQuery, SeriesStep, SqliteOptions, SqliteStore, Store,
};
use serde_json::json;

/// The simulated week starts on a Monday at midnight UTC.
fn start() -> DateTime<Utc> {
    "2026-11-02T00:00:00Z".parse().unwrap()
}

const WEEK_MILLIS: i64 = 7 * 24 * 3_600_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = || -> u64 {
        args.get(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000)
    };
    match args.get(1).map(String::as_str) {
        Some("generate") => generate(&args[2], count(), false).await,
        Some("generate-cases") => generate(&args[2], count(), true).await,
        Some("measure") => measure(&args[2]).await,
        _ => eprintln!("usage: stats_scale generate PATH N | generate-cases PATH N | measure PATH"),
    }
}

fn reviewer(name: &str) -> Actor {
    Actor {
        name: countersign_core::Name::parse(name).unwrap(),
        groups: vec!["support-leads".into()],
        token_id: None,
        admin: false,
    }
}

fn request(verdict: Verdict, reason: Option<&str>) -> DecisionRequest {
    DecisionRequest {
        verdict,
        args: None,
        reason: reason.map(str::to_owned),
        confirm: None,
        reclassified: None,
    }
}

/// A number in 0..100 fixed by `n`, spread evenly (not `n % 100`, which would line the
/// mix up with the 64 tasks).
fn draw(n: u64, salt: u64) -> u64 {
    let mixed = (n ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (mixed >> 33) % 100
}

async fn one(store: &dyn Store, n: u64, count: u64, cases: bool) {
    let p = policy();
    let at =
        start() + TimeDelta::milliseconds((n as i64).saturating_mul(WEEK_MILLIS) / count as i64);
    let agent = format!("agent-{}", n % 10);
    let kind = draw(n, 1);
    let latency = [2, 5, 20, 45, 90, 300, 600, 840][(draw(n, 2) % 8) as usize];
    // reviewer-0 approves everything within two seconds; the others take their time.
    let (index, latency) = if draw(n, 4) < 20 {
        (0, 1)
    } else {
        (1 + draw(n, 3) % 4, latency)
    };
    let reviewer_name = format!("reviewer-{index}");
    let second_name = format!("reviewer-{}", (index + 1) % 5);
    let decided = at + TimeDelta::seconds(latency);
    let context = if cases {
        json!({"ticket": format!("T-{n}"), "history": "x".repeat(1000)})
    } else {
        json!({"ticket": format!("T-{n}")})
    };
    let submit = |action: &str, args: serde_json::Value| {
        let mut new = new_action(&p, &agent, action, args, at);
        new.proposal.context = context.as_object().unwrap().clone();
        new.proposal.reasoning = Some("the customer asked".into());
        new
    };
    if cases {
        let id = store
            .submit(submit("refund.create", json!({"amount": 2500, "order": n})))
            .await
            .unwrap()
            .record
            .id;
        let verdict = if n.is_multiple_of(2) {
            Verdict::Reject
        } else {
            Verdict::Modify
        };
        decide(store, &p, id, &reviewer_name, verdict, decided).await;
        return;
    }
    match kind {
        0..40 => {
            let action = format!(
                "{}.get",
                ["order", "customer", "invoice", "ticket", "refund"][(n % 5) as usize]
            );
            store
                .submit(submit(&action, json!({"id": n})))
                .await
                .unwrap();
        }
        40..50 => {
            let record = store
                .submit(submit("refund.create", json!({"amount": 20, "order": n})))
                .await
                .unwrap()
                .record;
            if draw(n, 5) < 50 {
                let verdict = if draw(n, 6) < 10 {
                    ReviewVerdict::Flag
                } else {
                    ReviewVerdict::Ok
                };
                let review = NewReview {
                    verdict,
                    note: Some("looked at it".into()),
                };
                store
                    .review(record.id, reviewer(&reviewer_name), review, decided)
                    .await
                    .unwrap();
            }
        }
        50..90 => {
            let action = if draw(n, 7) < 50 {
                "refund.create".to_owned()
            } else {
                format!("ticket.update-{}", n % 24)
            };
            let record = store
                .submit(submit(&action, json!({"amount": 2500, "order": n})))
                .await
                .unwrap()
                .record;
            let outcome = draw(n, 8);
            let verdict = match outcome {
                _ if reviewer_name == "reviewer-0" => Some(Verdict::Approve),
                0..60 => Some(Verdict::Approve),
                60..75 => Some(Verdict::Reject),
                75..90 => Some(Verdict::Modify),
                _ => None,
            };
            match verdict {
                Some(verdict) => {
                    decide(store, &p, record.id, &reviewer_name, verdict, decided).await
                }
                None if outcome < 95 => {
                    // Nobody answers: the SLA steps, at whatever the rule says.
                    let mut now = at;
                    while let Some(deadline) =
                        store.action(&record.id).await.unwrap().and_then(|r| {
                            (r.gate.status == countersign_core::Status::Pending)
                                .then_some(r.gate.deadline)
                                .flatten()
                        })
                    {
                        now = now.max(deadline);
                        store.apply_sla(record.id.clone(), now).await.unwrap();
                    }
                }
                None => {}
            }
        }
        90..95 => {
            let id = store
                .submit(submit("account.close", json!({"account": n})))
                .await
                .unwrap()
                .record
                .id;
            for (name, after) in [(&reviewer_name, latency), (&second_name, latency + 30)] {
                let confirm = DecisionRequest {
                    confirm: Some("account.close".into()),
                    ..request(Verdict::Approve, None)
                };
                store
                    .decide(
                        id.clone(),
                        reviewer(name),
                        confirm,
                        at + TimeDelta::seconds(after),
                    )
                    .await
                    .unwrap();
            }
        }
        _ => {
            store
                .submit(submit("db.drop", json!({"table": n})))
                .await
                .unwrap();
        }
    }
}

async fn decide(
    store: &dyn Store,
    p: &countersign_core::Policy,
    id: String,
    who: &str,
    verdict: Verdict,
    at: DateTime<Utc>,
) {
    let request = match verdict {
        Verdict::Modify => {
            let record = store.action(&id).await.unwrap().unwrap();
            let args = json!({"amount": 250, "order": record.gate.args["order"]})
                .as_object()
                .unwrap()
                .clone();
            DecisionRequest {
                args: Some(args.clone()),
                reclassified: Some(record.reclassify(p, args, at).unwrap()),
                ..request(Verdict::Modify, Some("one item, not ten"))
            }
        }
        Verdict::Reject => request(Verdict::Reject, Some("refunded by the bank already")),
        Verdict::Approve => request(Verdict::Approve, None),
    };
    store.decide(id, reviewer(who), request, at).await.unwrap();
}

async fn generate(path: &str, count: u64, cases: bool) {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let started = Instant::now();
    // Many at once: the writer commits whatever queued during the last fsync together.
    let tasks = 1024;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut n = task;
            while n < count {
                one(store.as_ref(), n, count, cases).await;
                n += tasks;
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = started.elapsed();
    let commits = store.commit_stats();
    store.close().await;
    let size = std::fs::metadata(path).unwrap().len();
    println!(
        "generated {count} actions in {:.1} s ({:.0} actions/s, {} commands in {} commits); file {:.0} MiB",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        commits.commands,
        commits.commits,
        size as f64 / 1048576.0
    );
}

/// Times `f` `runs` times: (median, max).
async fn time<F, Fut>(runs: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        f().await;
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

async fn measure(path: &str) {
    let options = SqliteOptions {
        check_integrity: false,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path, options).await.unwrap());
    let now = start() + TimeDelta::days(7) + TimeDelta::hours(1);
    let s = start();
    let minutes = |m: i64| s + TimeDelta::minutes(m);
    let windows: Vec<(&str, Window)> = vec![
        ("all", Window::all()),
        (
            "the week, aligned on days",
            Window::new(Some(s), Some(s + TimeDelta::days(7))).unwrap(),
        ),
        (
            "last 24 h, from an hour",
            Window::new(Some(s + TimeDelta::days(6)), None).unwrap(),
        ),
        // Ends half-way through hours: the most actions read one by one (30 min a side).
        (
            "1d 00:30 to 6d 23:30",
            Window::new(
                Some(minutes(24 * 60 + 30)),
                Some(minutes(6 * 24 * 60 + 23 * 60 + 30)),
            )
            .unwrap(),
        ),
        (
            "1d 00:17 to 5d 14:43",
            Window::new(
                Some(minutes(24 * 60 + 17)),
                Some(minutes(5 * 24 * 60 + 14 * 60 + 43)),
            )
            .unwrap(),
        ),
        (
            "one hour, 3d 10:05 to 10:52",
            Window::new(Some(minutes(3 * 1440 + 605)), Some(minutes(3 * 1440 + 652))).unwrap(),
        ),
        (
            "20 minutes",
            Window::new(Some(minutes(3 * 1440 + 605)), Some(minutes(3 * 1440 + 625))).unwrap(),
        ),
    ];
    let settings = StatsSettings::default();
    println!("window | group_by | median ms | max ms | actions in window");
    let mut worst = Duration::ZERO;
    for (name, window) in &windows {
        for group_by in GroupBy::ALL {
            let mut times = Vec::new();
            let mut total = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let data = store.stats(*window, now).await.unwrap();
                let report = stats::report(&data, *group_by, &settings);
                times.push(t.elapsed());
                total = report.overall.counts.total;
            }
            times.sort();
            let (median, max) = (times[2], times[4]);
            worst = worst.max(max);
            println!(
                "{name} | {group_by} | {} | {} | {total}",
                ms(median),
                ms(max)
            );
        }
    }
    println!("slowest stats answer: {} ms", ms(worst));
    for (name, step, from) in [
        (
            "48 h hourly series",
            SeriesStep::Hour,
            now - TimeDelta::hours(48),
        ),
        (
            "14 d daily series",
            SeriesStep::Day,
            now - TimeDelta::days(14),
        ),
    ] {
        let (median, max) = time(5, || async {
            store
                .stats_series(SeriesQuery {
                    from,
                    to: now,
                    step,
                })
                .await
                .unwrap();
        })
        .await;
        println!("{name}: median {} ms, max {} ms", ms(median), ms(max));
    }
    let (median, max) = time(5, || async {
        store.stats_totals().await.unwrap();
    })
    .await;
    println!(
        "/metrics totals: median {} ms, max {} ms",
        ms(median),
        ms(max)
    );
    let report = stats::report(
        &store.stats(Window::all(), now).await.unwrap(),
        GroupBy::Reviewer,
        &settings,
    );
    for group in &report.groups {
        if let Some(warning) = group.fatigue.as_ref().and_then(|f| f.rubber_stamp.as_ref()) {
            println!("warning: {warning}");
        }
    }
    println!("peak RSS {}", peak_rss());
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
