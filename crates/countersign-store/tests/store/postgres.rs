//! The PostgreSQL backend against a real cluster (`COUNTERSIGN_TEST_POSTGRES`, an admin URL:
//! `scripts/test.sh` starts a throw-away cluster and sets it), one fresh database per test:
//! the conformance story, and what several instances on one database must get right —
//! idempotency and decision races between instances, an SLA step applied once (reminders
//! included), each notification delivery claimed by one instance and a killed instance's
//! claim retried by another after its lease, a killed
//! instance's step taken over, wake-ups across instances (also after the listener lost its
//! connection), the audit chain written concurrently by two instances, a policy load and a
//! graduation regression recorded once when two instances see them at once, and clear
//! errors for bad URLs. Each "instance" is a `PostgresStore` of its own, with its own pool, listener and
//! linker, as two `countersign serve` processes would have.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use countersign_core::Status;
use countersign_core::lifecycle::DecideError;
use countersign_store::conformance::{self, new_action, policy, t0};
use countersign_store::{
    Idempotency, NewRegression, Notifications, PolicyLoad, PostgresOptions, PostgresStore,
    QueueQuery, Store, StoreError, request_hash,
};
use serde_json::json;

use super::{approve, reviewer};

/// A fresh database on the test cluster, dropped at the end.
pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

/// The test cluster's admin URL; `None` (the test is skipped, and says so) when there is
/// none outside CI. In CI a missing cluster fails the test: the suite must not pass by
/// skipping.
pub fn admin_url() -> Option<String> {
    match std::env::var("COUNTERSIGN_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("COUNTERSIGN_TEST_POSTGRES is not set: scripts/test.sh starts a cluster")
        }
        _ => {
            eprintln!(
                "skipped: COUNTERSIGN_TEST_POSTGRES is not set (scripts/pg-cluster.sh start)"
            );
            None
        }
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test cluster answers");
    tokio::spawn(connection);
    client
}

impl PgDb {
    pub async fn new() -> Option<PgDb> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = admin_url()?;
        let name = format!(
            "cs_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let client = admin(&admin_url).await;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = match admin_url.rfind('/') {
            Some(i) if admin_url[..i].contains("://") && i > admin_url.find("://").unwrap() + 2 => {
                format!("{}/{name}", &admin_url[..i])
            }
            _ => format!("{admin_url}/{name}"),
        };
        Some(PgDb {
            admin: admin_url,
            name,
            url,
        })
    }

    /// An instance on the test database. Waits for a pooled connection up to 60 s rather
    /// than the default 5 s: the tests check what happens, not how fast, and CI runs them
    /// beside other suites on two cores (64 concurrent tasks once waited over 5 s there).
    pub async fn open(&self) -> Arc<PostgresStore> {
        let options = PostgresOptions {
            acquire_timeout: Duration::from_secs(60),
            ..PostgresOptions::default()
        };
        Arc::new(PostgresStore::open(&self.url, options).await.unwrap())
    }

    /// A client on the test database itself, for what an operator (or an attacker) does.
    pub async fn client(&self) -> tokio_postgres::Client {
        admin(&self.url).await
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin.clone(), self.name.clone());
        // Dropped outside any runtime's async context: a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = admin(&admin_url).await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// Waits for `condition`, at most `limit` (a generous bound, not a timing assertion).
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut condition: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        // Polling a test condition, not the product: the product is woken, the test looks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_story_on_postgres() {
    let Some(db) = PgDb::new().await else { return };
    let store = db.open().await;
    conformance::story(store.as_ref()).await;
    store.close().await;
    // The finished database verifies on its own, as `countersign audit verify --db` does it.
    let report = countersign_store::verify_database(&db.url, vec![])
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_submissions_on_two_instances_become_one_action() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let p = Arc::new(policy());
    let body = json!({"action": "email.send", "args": {"to": "x"}});
    let mut tasks = Vec::new();
    for n in 0..24 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let (p, body) = (p.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut new = new_action(&p, "bot", "email.send", json!({"to": "x"}), t0());
            new.idempotency = Some(Idempotency {
                key: "k-1".into(),
                body_hash: request_hash(&body),
            });
            store.submit(new).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|s| !s.replayed).count(), 1);
    assert!(results.iter().all(|s| s.record == results[0].record));
    assert_eq!(a.queue(QueueQuery::default()).await.unwrap().items.len(), 1);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_load_and_a_regression_seen_by_two_instances_at_once_are_told_once() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let load = |hash: &str| PolicyLoad {
        hash: hash.into(),
        source: format!("# {hash}"),
        path: Some("policy.toml".into()),
        trigger: "start".into(),
        actor: "system".into(),
        operator: None,
        at: t0(),
    };
    let regression = || NewRegression {
        rule: "small refunds".into(),
        action: "refund.create".into(),
        policy_hash: "h1".into(),
        body: json!({"flagged": 3}),
    };
    // Both instances start with one policy file, and both watchers find one regression,
    // at the same time, several times over.
    let mut loads = Vec::new();
    let mut syncs = Vec::new();
    for n in 0..8 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let (load, regression) = (load("h1"), regression());
        loads.push(tokio::spawn({
            let store = store.clone();
            async move { store.record_policy_load(load).await.unwrap() }
        }));
        syncs.push(tokio::spawn(async move {
            store
                .sync_regressions("h1".into(), vec![regression], t0())
                .await
                .unwrap()
        }));
    }
    let mut recorded = Vec::new();
    for task in loads {
        recorded.extend(task.await.unwrap());
    }
    let mut fired = Vec::new();
    for task in syncs {
        fired.extend(task.await.unwrap());
    }
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].kind, "policy_loaded");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].kind, "graduation_regressed");
    let active = b.active_regressions().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].audit_seq, fired[0].seq);
    // Another policy on one instance: recorded once, with its predecessor.
    let next = b.record_policy_load(load("h2")).await.unwrap().unwrap();
    assert_eq!(next.body_json()["previous_hash"], json!("h1"));
    assert!(a.record_policy_load(load("h2")).await.unwrap().is_none());
    assert!(a.verify_audit().await.unwrap().ok());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_racing_on_two_instances_never_exceed_the_quorum() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let p = policy();
    let single = a
        .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let confirm = a
        .submit(new_action(&p, "bot", "account.close", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let mut tasks = Vec::new();
    for n in 0..10 {
        for (id, typed) in [
            (single.clone(), None),
            (confirm.clone(), Some("account.close")),
        ] {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut request = approve();
                request.confirm = typed.map(str::to_owned);
                let result = store
                    .decide(id.clone(), reviewer(&format!("r{n}")), request, t0())
                    .await;
                (id, result)
            }));
        }
    }
    let mut wins = std::collections::HashMap::<String, usize>::new();
    for task in tasks {
        let (id, result) = task.await.unwrap();
        match result {
            Ok(_) => *wins.entry(id).or_default() += 1,
            Err(StoreError::Decide(DecideError::NotPending(Status::Approved))) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins[&single], 1);
    assert_eq!(wins[&confirm], 2);
    let confirm = b.action(&confirm).await.unwrap().unwrap();
    assert_eq!(
        (confirm.gate.status, confirm.gate.decisions.len()),
        (Status::Approved, 2)
    );
    // The approval metrics, read on either instance, counted each winning verdict once:
    // two actions, both approved, three reviewers' decisions.
    for store in [&a, &b] {
        let data = store
            .stats(
                countersign_core::stats::Window::all(),
                t0() + TimeDelta::hours(1),
            )
            .await
            .unwrap();
        let report = countersign_core::stats::report(
            &data,
            countersign_core::stats::GroupBy::Reviewer,
            &countersign_core::stats::StatsSettings::default(),
        );
        let c = &report.overall.counts;
        assert_eq!((c.total, c.approved, c.pending), (2, 2, 0));
        let decisions: i64 = data.reviewers.iter().map(|(_, t)| t.decisions).sum();
        assert_eq!(decisions, 3);
    }
    let report = a.verify_audit().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_swept_by_two_instances_at_once_fires_once() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let p = policy();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            a.submit(new_action(&p, "bot", "email.send", json!({}), t0()))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    let late = t0() + TimeDelta::hours(1);
    let (from_a, from_b, one_a, one_b) = tokio::join!(
        a.sweep_sla(late, 256),
        b.sweep_sla(late, 256),
        a.apply_sla(ids[0].clone(), late),
        b.apply_sla(ids[0].clone(), late),
    );
    let stepped = from_a.unwrap().len()
        + from_b.unwrap().len()
        + usize::from(one_a.unwrap().is_some())
        + usize::from(one_b.unwrap().is_some());
    assert_eq!(stepped, ids.len());
    for id in &ids {
        assert_eq!(
            a.action(id).await.unwrap().unwrap().gate.status,
            Status::Expired
        );
    }
    let expired = a
        .audit(0, 1000, 0)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "expired")
        .count();
    assert_eq!(expired, ids.len());
    assert!(a.verify_audit().await.unwrap().ok());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_held_by_an_instance_that_dies_is_taken_over() {
    let Some(db) = PgDb::new().await else { return };
    let b = db.open().await;
    let p = policy();
    let id = b
        .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let late = t0() + TimeDelta::hours(1);
    // "Instance A" is in the middle of its sweep: it holds the due row, and has written
    // half of its step.
    let dying = db.client().await;
    dying
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM actions WHERE id = '{id}' FOR UPDATE; \
             UPDATE actions SET status = 'expired' WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    // Meanwhile B's sweep skips the row A holds rather than queueing behind it.
    assert!(b.sweep_sla(late, 256).await.unwrap().is_empty());
    // A dies: its connection goes, and its transaction with it.
    drop(dying);
    assert!(
        eventually(Duration::from_secs(10), || async {
            b.sweep_sla(late, 256).await.unwrap().len() == 1
        })
        .await
    );
    let record = b.action(&id).await.unwrap().unwrap();
    assert_eq!(record.gate.status, Status::Expired);
    assert!(b.sweep_sla(late, 256).await.unwrap().is_empty());
    let report = b.verify_audit().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems());
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_one_instance_reaches_the_other_instances_subscribers() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let mut changes = a.subscribe();
    assert!(eventually(Duration::from_secs(10), || async { a.is_listening() }).await);
    let p = policy();
    let id = a
        .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let wait_for = |status: Status, changes: &mut tokio::sync::broadcast::Receiver<_>| {
        let mut changes = changes.resubscribe();
        let id = id.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let record: Arc<countersign_store::ActionRecord> =
                        changes.recv().await.unwrap();
                    if record.id == id && record.gate.status == status {
                        return record;
                    }
                }
            })
            .await
            .expect("the change arrives")
        }
    };
    let approved = wait_for(Status::Approved, &mut changes);
    b.decide(id.clone(), reviewer("rita"), approve(), t0())
        .await
        .unwrap();
    assert_eq!(approved.await.version, 2);

    // The listener loses its connection (a network cut, a restarted proxy); a cancellation
    // is committed on B while A may not be listening. A still hears of it: it re-reads
    // what changed while it was away.
    let second = a
        .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let operator = db.client().await;
    operator
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'countersign' AND query LIKE 'LISTEN%' \
             OR query LIKE 'SELECT (extract(epoch%'",
        )
        .await
        .unwrap();
    let mut changes = a.subscribe();
    b.cancel(second.clone(), reviewer("bot"), t0())
        .await
        .unwrap();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let record = changes.recv().await.unwrap();
            if record.id == second && record.gate.status == Status::Cancelled {
                return true;
            }
        }
    })
    .await;
    assert_eq!(found, Ok(true));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_writing_at_once_keep_one_verifiable_chain() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let p = Arc::new(policy());
    let mut tasks = Vec::new();
    for n in 0..64 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let id = store
                .submit(new_action(
                    &p,
                    &format!("bot-{n}"),
                    "email.send",
                    json!({"n": n}),
                    t0(),
                ))
                .await
                .unwrap()
                .record
                .id;
            if n % 3 == 0 {
                store
                    .decide(id, reviewer("rita"), approve(), t0())
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let head = a.audit_head().await.unwrap();
    assert_eq!(head.size, 64 * 2 + 22);
    let report = b.verify_audit().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems());
    assert_eq!(report.entries, head.size);
    assert_eq!(report.actions, 64);

    // An edit behind the log's back is found: the chain names the entry, and the state
    // pass the action whose row no longer matches its log.
    let operator = db.client().await;
    operator
        .batch_execute(
            "ALTER TABLE audit DISABLE TRIGGER audit_append_only; \
             UPDATE audit SET body = body || ' ' WHERE seq = 9; \
             UPDATE actions SET status = 'approved' WHERE id = (SELECT min(id) FROM actions WHERE status = 'pending')",
        )
        .await
        .unwrap();
    let report = a.verify_audit().await.unwrap();
    assert!(!report.ok());
    assert_eq!(report.first_bad_seq(), Some(9), "{:?}", report.problems());
    assert_eq!(report.state_mismatch_count, 1, "{:?}", report.problems());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn the_log_refuses_careless_edits() {
    let Some(db) = PgDb::new().await else { return };
    let store = db.open().await;
    store
        .submit(new_action(&policy(), "bot", "email.send", json!({}), t0()))
        .await
        .unwrap();
    store.link_audit().await.unwrap();
    let operator = db.client().await;
    for statement in [
        "UPDATE audit SET body = '{}' WHERE seq = 1",
        "DELETE FROM audit WHERE seq = 2",
        "UPDATE audit SET seq = 7 WHERE seq = 1",
    ] {
        let error = operator.batch_execute(statement).await.unwrap_err();
        assert!(
            error.to_string().contains("append-only")
                || format!("{error:?}").contains("append-only"),
            "{statement}: {error:?}"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn bad_urls_say_what_is_wrong() {
    let Some(admin_url) = admin_url() else { return };
    let Some(db) = PgDb::new().await else { return };
    let open =
        |url: String| async move { PostgresStore::open(&url, PostgresOptions::default()).await };
    // Wrong password: said so, and the password is not repeated.
    let wrong = db.url.replacen(":countersign@", ":not-the-password@", 1);
    assert_ne!(wrong, db.url, "the test URL carries a password");
    let error = open(wrong).await.unwrap_err().to_string();
    assert!(error.contains("password"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    // A database that does not exist.
    let missing = format!("{}_missing", db.url);
    let error = open(missing).await.unwrap_err().to_string();
    assert!(error.contains("does not exist"), "{error}");
    // Nothing listening there: unavailable (503 for a running server), with the address.
    let error = open("postgres://u:p@127.0.0.1:1/db".into())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    // Not a URL at all.
    let error = open("postgres://u:p@host:notaport/db".into())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a valid PostgreSQL URL"), "{error}");
    // A database never migrated, opened by a command that must not migrate it.
    let Err(error) = countersign_store::open_existing(&db.url).await else {
        panic!("opened a database without a schema");
    };
    let error = error.to_string();
    assert!(error.contains("countersign migrate"), "{error}");
    let (applied, latest) = countersign_store::migrate(&db.url).await.unwrap();
    // Every version, in order, up to the latest (numbers may skip: they are assigned to
    // branches).
    assert_eq!(applied.first(), Some(&1));
    assert_eq!(applied.last(), Some(&latest));
    assert!(applied.windows(2).all(|w| w[0] < w[1]), "{applied:?}");
    assert!(
        countersign_store::migrate(&db.url)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert!(countersign_store::open_existing(&db.url).await.is_ok());
    drop(admin_url);
}

/// Sends every event to one webhook lane, `hook`.
struct HookRouter;

impl countersign_store::EventRouter for HookRouter {
    fn route(&self, event: &countersign_store::Event<'_>) -> Option<countersign_store::Routed> {
        Some(countersign_store::Routed {
            body: json!({"type": event.kind.as_str(), "action": event.record.id}).to_string(),
            destinations: vec![countersign_store::Destination {
                target: "hook".into(),
                lane: "hook".into(),
                url: None,
            }],
        })
    }
}

/// Claims what `store` finds due on the lane `hook` at `now`, and records every claimed
/// delivery as delivered; returns the ids it claimed.
async fn deliver_hook(store: &PostgresStore, now: chrono::DateTime<chrono::Utc>) -> Vec<u64> {
    let mut claimed = Vec::new();
    loop {
        let found = store
            .due_deliveries("hook".into(), now, 7, Vec::new())
            .await
            .unwrap();
        if found.is_empty() {
            return claimed;
        }
        let tried = found
            .iter()
            .map(|d| countersign_store::Tried {
                id: d.id,
                attempt: countersign_store::Attempt::Delivered,
            })
            .collect();
        claimed.extend(found.iter().map(|d| d.id));
        store.finish_deliveries(tried, now).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reminder_and_each_delivery_happens_once_across_two_instances() {
    let Some(db) = PgDb::new().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    a.set_router(Arc::new(HookRouter));
    b.set_router(Arc::new(HookRouter));
    let p = countersign_core::Policy::parse(
        "version = 1\n[defaults]\ntier = \"approve\"\nsla = \"30m\"\nremind_at = [\"50%\", \"90%\"]\n",
    )
    .unwrap();
    let count = 12;
    for n in 0..count {
        let at_b = n % 2 == 1;
        let store = if at_b { &b } else { &a };
        store
            .submit(new_action(&p, "bot", "email.send", json!({ "n": n }), t0()))
            .await
            .unwrap();
    }
    // Both instances run the ladder at the same moments: each step is taken by one.
    for (minutes, expected) in [(16, "reminded"), (28, "reminded"), (31, "expired")] {
        let now = t0() + TimeDelta::minutes(minutes);
        let (from_a, from_b) = tokio::join!(a.sweep_sla(now, 256), b.sweep_sla(now, 256));
        let stepped = from_a.unwrap().len() + from_b.unwrap().len();
        assert_eq!(stepped, count as usize, "{expected} at +{minutes}m");
    }
    let entries = a.audit(0, 1000, 0).await.unwrap();
    let of_kind = |kind: &str| entries.iter().filter(|e| e.kind == kind).count();
    assert_eq!(of_kind("reminded"), 2 * count as usize);
    assert_eq!(of_kind("expired"), count as usize);
    // One event per submission, reminder and expiry, each with one delivery; both
    // instances deliver at once, and each delivery is claimed by exactly one of them.
    let now = t0() + TimeDelta::minutes(32);
    let (by_a, by_b) = tokio::join!(deliver_hook(&a, now), deliver_hook(&b, now));
    let mut all: Vec<u64> = by_a.iter().chain(&by_b).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        by_a.len() + by_b.len(),
        "a delivery was claimed twice"
    );
    assert_eq!(all.len(), 4 * count as usize);
    let delivered = a
        .deliveries(countersign_store::DeliveryQuery {
            status: Some(countersign_store::DeliveryStatus::Delivered),
            limit: 1000,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(delivered.items.len(), all.len());
    assert!(delivered.items.iter().all(|d| d.attempts == 1));

    // An instance killed mid-delivery: A claims a delivery and never reports the try. B
    // leaves it alone while A's lease lasts, and tries it once the lease is over.
    let id = a
        .submit(new_action(&p, "bot", "email.send", json!({}), now))
        .await
        .unwrap()
        .record
        .id;
    let claimed = a
        .due_deliveries("hook".into(), now, 10, Vec::new())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].action_id, id);
    a.close().await;
    drop(a);
    assert!(deliver_hook(&b, now).await.is_empty(), "claimed by A");
    let after_lease = now
        + TimeDelta::from_std(countersign_store::postgres::DELIVERY_LEASE).unwrap()
        + TimeDelta::seconds(1);
    assert_eq!(deliver_hook(&b, after_lease).await, vec![claimed[0].id]);
    assert!(deliver_hook(&b, after_lease).await.is_empty());
    let report = b.verify_audit().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems());
    b.close().await;
}
