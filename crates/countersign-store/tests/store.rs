//! The store's integration tests, on real SQLite files: the conformance story, group commit
//! under concurrency, idempotency and decision races, audit tamper detection, and restarts;
//! and (in `audit`) the hardening of the audit log against truncation, state edits and
//! damaged or read-only files; (in `stats`) kept statistics across restarts and migration.

// In `store/` beside this file rather than a sibling `audit.rs`, which cargo would take for
// a test binary of its own.
#[path = "store/audit.rs"]
mod audit;
#[path = "store/postgres.rs"]
mod postgres;
#[path = "store/stats.rs"]
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::TimeDelta;
use countersign_core::Status;
use countersign_core::audit::ChainBreak;
use countersign_core::lifecycle::{DecideError, DecisionRequest, Verdict};
use countersign_store::conformance::{self, new_action, policy, t0};
use countersign_store::{
    Actor, Idempotency, QueueQuery, SqliteOptions, SqliteStore, Store, StoreError, request_hash,
    verify_file,
};
use serde_json::json;

/// A fresh directory for one test's database, removed when dropped.
struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    fn new(name: &str) -> TempDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "countersign-store-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDb { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("countersign.db")
    }

    async fn open(&self) -> Arc<SqliteStore> {
        Arc::new(
            SqliteStore::open(self.path(), SqliteOptions::default())
                .await
                .unwrap(),
        )
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn reviewer(name: &str) -> Actor {
    Actor::named(name)
}

fn approve() -> DecisionRequest {
    DecisionRequest {
        verdict: Verdict::Approve,
        args: None,
        reason: None,
        confirm: None,
        reclassified: None,
    }
}

/// Runs raw SQL on the file, as someone tampering with it would (triggers dropped first).
async fn tamper(path: &Path, statements: &[&'static str]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
    )
    .unwrap();
    for sql in statements {
        conn.execute_batch(sql).unwrap();
    }
    conn.close().unwrap();
}

#[tokio::test]
async fn conformance_story_on_sqlite() {
    let db = TempDb::new("story");
    let store = db.open().await;
    conformance::story(store.as_ref()).await;
    store.close().await;
    // The finished file verifies on its own, as `countersign audit verify --db` does it.
    assert!(verify_file(db.path(), vec![]).await.unwrap().ok());
    // The journal mode is the file's own (persistent) setting: WAL.
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_acknowledges_every_concurrent_submitter() {
    let db = TempDb::new("group");
    let store = db.open().await;
    let p = Arc::new(policy());
    let (agents, each) = (64, 20);
    let mut tasks = Vec::new();
    for agent in 0..agents {
        let store = store.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..each {
                let new = new_action(
                    &p,
                    &format!("agent-{agent}"),
                    "order.get",
                    json!({"i": i}),
                    t0(),
                );
                let submitted = store.submit(new).await.unwrap();
                assert_eq!(submitted.record.gate.status, Status::Allowed);
                ids.push(submitted.record.id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    let total = agents * each;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total);
    for id in ids.iter().step_by(97) {
        assert!(store.action(id).await.unwrap().is_some());
    }
    let stats = store.commit_stats();
    assert_eq!(stats.commands, total as u64);
    assert!(stats.commits <= stats.commands);
    eprintln!(
        "{} submissions in {} commits (largest batch {})",
        stats.commands, stats.commits, stats.max_batch
    );
    let report = store.verify_audit().await.unwrap();
    assert!(report.ok());
    assert_eq!(report.entries, 2 * total as u64);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicate_submissions_become_one_action() {
    let db = TempDb::new("idem");
    let store = db.open().await;
    let p = Arc::new(policy());
    let body = json!({"action": "email.send", "args": {"to": "x"}});
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (store, p, body) = (store.clone(), p.clone(), body.clone());
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
    let queue = store.queue(QueueQuery::default()).await.unwrap();
    assert_eq!(queue.items.len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reviewers_never_exceed_the_quorum() {
    let db = TempDb::new("race");
    let store = db.open().await;
    let p = policy();
    let single = store
        .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let confirm = store
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
            let store = store.clone();
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
    let single = store.action(&single).await.unwrap().unwrap();
    let confirm = store.action(&confirm).await.unwrap().unwrap();
    assert_eq!(
        (single.gate.status, single.gate.decisions.len()),
        (Status::Approved, 1)
    );
    assert_eq!(
        (confirm.gate.status, confirm.gate.decisions.len()),
        (Status::Approved, 2)
    );

    // One person racing themselves on a two-person action counts once.
    let twice = store
        .submit(new_action(&p, "bot", "account.close", json!({}), t0()))
        .await
        .unwrap()
        .record
        .id;
    let mut request = approve();
    request.confirm = Some("account.close".into());
    let (a, b) = tokio::join!(
        store.decide(twice.clone(), reviewer("rita"), request.clone(), t0()),
        store.decide(twice.clone(), reviewer("rita"), request, t0()),
    );
    assert!(a.is_ok() != b.is_ok());
    assert!(matches!(
        a.err().or(b.err()),
        Some(StoreError::Decide(DecideError::AlreadyApproved(_)))
    ));
    assert!(store.verify_audit().await.unwrap().ok());
    store.close().await;
}

/// A database with a few dozen audit entries, closed.
async fn audited_db(name: &str) -> TempDb {
    let db = TempDb::new(name);
    let store = db.open().await;
    let p = policy();
    for i in 0..10 {
        store
            .submit(new_action(&p, "bot", "order.get", json!({"i": i}), t0()))
            .await
            .unwrap();
    }
    store.close().await;
    assert_eq!(verify_file(db.path(), vec![]).await.unwrap().entries, 20);
    db
}

#[tokio::test]
async fn verify_names_the_first_changed_entry() {
    let db = audited_db("edit").await;
    tamper(
        &db.path(),
        &["UPDATE audit SET body = '{\"action\":\"order.delete\"}' WHERE seq = 5"],
    )
    .await;
    let report = verify_file(db.path(), vec![]).await.unwrap();
    assert_eq!(report.broken, Some(ChainBreak::HashMismatch { seq: 5 }));
    assert_eq!(report.entries, 4);
    // The same answer through an open store.
    let store = db.open().await;
    assert_eq!(store.verify_audit().await.unwrap().first_bad_seq(), Some(5));
    store.close().await;
}

#[tokio::test]
async fn verify_names_the_first_removed_entry() {
    let db = audited_db("delete").await;
    tamper(&db.path(), &["DELETE FROM audit WHERE seq = 7"]).await;
    let report = verify_file(db.path(), vec![]).await.unwrap();
    assert_eq!(report.first_bad_seq(), Some(7));
    assert!(matches!(report.broken, Some(ChainBreak::Gap { .. })));
    // Renumbering the rest to hide the gap does not help.
    tamper(
        &db.path(),
        &["UPDATE audit SET seq = seq - 1 WHERE seq > 7"],
    )
    .await;
    assert_eq!(
        verify_file(db.path(), vec![]).await.unwrap().broken,
        Some(ChainBreak::PrevMismatch { seq: 7 })
    );
}

#[tokio::test]
async fn verify_names_the_first_reordered_entry() {
    let db = audited_db("reorder").await;
    // Swap entries 3 and 4, keeping the sequence numbers in place.
    tamper(
        &db.path(),
        &[
            "UPDATE audit SET seq = -3 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = 4",
            "UPDATE audit SET seq = 4 WHERE seq = -3",
        ],
    )
    .await;
    let report = verify_file(db.path(), vec![]).await.unwrap();
    assert_eq!(report.first_bad_seq(), Some(3));
}

#[tokio::test]
async fn the_log_refuses_careless_edits() {
    let db = audited_db("triggers").await;
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let deleted = conn.execute("DELETE FROM audit WHERE seq = 1", []);
    let updated = conn.execute("UPDATE audit SET body = '{}' WHERE seq = 1", []);
    assert!(
        deleted.unwrap_err().to_string().contains("append-only"),
        "DELETE is refused by the trigger"
    );
    assert!(updated.is_err(), "UPDATE is refused by the trigger");
    conn.close().unwrap();
}

#[tokio::test]
async fn pending_actions_deadlines_and_the_chain_survive_a_restart() {
    let db = TempDb::new("restart");
    let p = policy();
    let store = db.open().await;
    let pending = store
        .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
        .await
        .unwrap()
        .record;
    let head = store.verify_audit().await.unwrap();
    store.close().await;
    assert!(matches!(
        store
            .submit(new_action(&p, "bot", "email.send", json!({}), t0()))
            .await,
        Err(StoreError::Closed)
    ));

    let store = db.open().await;
    assert_eq!(
        store.action(&pending.id).await.unwrap().as_ref(),
        Some(&pending)
    );
    assert_eq!(store.next_deadline().await.unwrap(), pending.gate.deadline);
    let queue = store.queue(QueueQuery::default()).await.unwrap();
    assert_eq!(queue.items, std::slice::from_ref(&pending));
    // The deadline passed while the server was down: acted on once at start.
    let start = t0() + TimeDelta::hours(5);
    let expired = store.sweep_sla(start, 100).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].gate.status, Status::Expired);
    assert!(store.sweep_sla(start, 100).await.unwrap().is_empty());
    // The chain continues where it stopped.
    let report = store.verify_audit().await.unwrap();
    assert!(report.ok());
    assert_eq!(report.entries, head.entries + 1);
    let entries = store.audit(head.entries, 10, 0).await.unwrap();
    assert_eq!(entries[0].prev, head.head);
    store.close().await;
}

#[tokio::test]
async fn opening_by_url() {
    let db = TempDb::new("url");
    let url = format!("sqlite://{}", db.path().display());
    let store = countersign_store::open(&url).await.unwrap();
    assert!(store.verify_audit().await.unwrap().ok());
    assert!(store.is_writable());
    store.close().await;
    assert!(!store.is_writable());
    assert!(matches!(
        store.audit(0, 10, 0).await,
        Err(StoreError::Closed)
    ));
    for unsupported in ["mysql://localhost/x", "sqlite::memory:", "sqlite://"] {
        assert!(matches!(
            countersign_store::open(unsupported).await,
            Err(StoreError::UnsupportedUrl(_))
        ));
    }
    // Verifying a file that does not exist fails instead of creating it.
    let missing = db.dir.join("missing.db");
    assert!(verify_file(&missing, vec![]).await.is_err());
    assert!(!missing.exists());
}

/// `countersign serve &` followed at once by `countersign token create --db` (the README's
/// first steps) opens a new file from two processes: both find the schema missing and both
/// migrate. Each open must succeed, whichever migrates first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opens_of_a_new_file_at_once_both_succeed() {
    for round in 0..20 {
        let db = TempDb::new(&format!("race-{round}"));
        let path = db.path();
        let (first, second) = tokio::join!(
            SqliteStore::open(&path, SqliteOptions::default()),
            SqliteStore::open(&path, SqliteOptions::default()),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        assert!(first.verify_audit().await.unwrap().ok());
        first.close().await;
        second.close().await;
    }
}

/// Tokens an earlier version stored with names as typed (`Legacy-Bot`, owner `Oscar`): read
/// back folded, they are the same identities, and a new token may not take their name in
/// another spelling or hang a new agent on the owner's other spelling.
#[tokio::test]
async fn names_stored_in_another_case_by_earlier_versions_are_one_identity() {
    let db = TempDb::new("legacy-names");
    let store = db.open().await;
    store.close().await;
    tamper(
        &db.path(),
        &[
            "INSERT INTO tokens (id, name, role, groups, owner, secret_hash, created_at) \
           VALUES ('t-legacy', 'Legacy-Bot', 'agent', '[\"Ops\"]', 'Oscar', x'00', 0)",
        ],
    )
    .await;
    let store = db.open().await;
    let tokens = store.tokens().await.unwrap();
    let legacy = tokens.iter().find(|t| t.id == "t-legacy").unwrap();
    assert_eq!(
        (
            legacy.name.as_str(),
            legacy.owner.as_deref(),
            legacy.groups[0].as_str()
        ),
        ("legacy-bot", Some("oscar"), "ops"),
        "read folded"
    );
    let new = |name: &str, owner: Option<&str>| countersign_store::NewToken {
        name: countersign_core::Name::parse(name).unwrap(),
        role: countersign_store::Role::Agent,
        groups: vec![],
        owner: owner.map(|o| countersign_core::Name::parse(o).unwrap()),
        created_by: countersign_store::Actor::named("test"),
        at: chrono::Utc::now(),
    };
    for (name, owner) in [("legacy-bot", None), ("new-bot", Some("oscar"))] {
        let refused = store.create_token(new(name, owner)).await;
        assert!(
            matches!(
                refused,
                Err(StoreError::Identity(
                    countersign_core::identity::IdentityError::OtherCase { .. }
                ))
            ),
            "{name} (owner {owner:?}): {refused:?}"
        );
    }
    store.close().await;
}
