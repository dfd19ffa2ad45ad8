//! Hardening of the audit log on real files: the attacks that the hash chain alone missed
//! (entries cut from the end, an action's row edited behind the log's back) and a damaged
//! or read-only file, each done to a file the way an attacker or a failing disk would.

use std::path::{Path, PathBuf};

use countersign_core::audit::hash_from_hex;
use countersign_store::conformance::{new_action, policy, t0};
use countersign_store::{
    CheckpointClaim, CheckpointOutcome, SqliteOptions, SqliteStore, Store, StoreError, StoreHealth,
    verify_file,
};
use serde_json::{Value, json};

use super::{TempDb, approve, audited_db, reviewer, tamper};

/// A file with one action of each end state: rejected, approved after a modify, pending.
/// Returns the db and the ids.
async fn lifecycle_db(name: &str) -> (TempDb, [String; 3]) {
    let db = TempDb::new(name);
    let store = db.open().await;
    let p = policy();
    let mut ids = Vec::new();
    for amount in [500, 600, 700] {
        let record = store
            .submit(new_action(
                &p,
                "bot",
                "refund.create",
                json!({"amount": amount}),
                t0(),
            ))
            .await
            .unwrap()
            .record;
        ids.push(record.id);
    }
    let mut reject = approve();
    reject.verdict = countersign_core::lifecycle::Verdict::Reject;
    let lead = countersign_store::Actor {
        name: "rita".into(),
        groups: vec!["support-leads".into()],
        token_id: None,
        admin: false,
    };
    store
        .decide(ids[0].clone(), lead.clone(), reject, t0())
        .await
        .unwrap();
    let mut modify = approve();
    modify.verdict = countersign_core::lifecycle::Verdict::Modify;
    modify.args = json!({"amount": 60}).as_object().cloned();
    let record = store.action(&ids[1]).await.unwrap().unwrap();
    modify.reclassified = Some(
        record
            .reclassify(
                &countersign_store::conformance::policy(),
                modify.args.clone().unwrap(),
                t0(),
            )
            .unwrap(),
    );
    store
        .decide(ids[1].clone(), lead, modify, t0())
        .await
        .unwrap();
    store.close().await;
    let report = verify_file(db.path(), vec![]).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.actions, 3);
    (db, ids.try_into().unwrap())
}

/// Each edit of the actions table, and the mismatch verification must name: `(sql with
/// {0} {1} {2} for the three ids, the action, the field, stored, derived)`.
#[tokio::test]
async fn edits_of_stored_state_are_found_by_replaying_the_log() {
    type Case = (&'static str, usize, &'static str, Value, Value);
    let cases: &[Case] = &[
        // A rejected action flipped to approved, so that the agent runs it.
        (
            "UPDATE actions SET status = 'approved' WHERE id = '{0}'",
            0,
            "status",
            json!("approved"),
            json!("rejected"),
        ),
        // Arguments swapped after a reviewer approved others.
        (
            "UPDATE actions SET args = '{\"amount\": 60000}' WHERE id = '{1}'",
            1,
            "args",
            json!({"amount": 60000}),
            json!({"amount": 60}),
        ),
        // A decision erased, and the owner changed so that they could approve themselves.
        (
            "UPDATE actions SET decisions = '[]', owner = 'mallory' WHERE id = '{1}'",
            1,
            "owner",
            json!("mallory"),
            json!("olivia"),
        ),
        // A pending action's deadline pushed out, and its SLA plan turned to approve.
        (
            "UPDATE actions SET deadline = deadline + 86400000 WHERE id = '{2}'",
            2,
            "deadline",
            json!(t0().timestamp_millis() + 15 * 60 * 1000 + 86_400_000),
            json!(t0().timestamp_millis() + 15 * 60 * 1000),
        ),
        // A row deleted (the log still has its entries).
        (
            "DELETE FROM actions WHERE id = '{2}'",
            2,
            "row",
            Value::Null,
            json!({"entries": 2, "status": "pending"}),
        ),
    ];
    for (sql, index, field, stored, derived) in cases {
        let (db, ids) = lifecycle_db("replay").await;
        let sql = sql
            .replace("{0}", &ids[0])
            .replace("{1}", &ids[1])
            .replace("{2}", &ids[2]);
        let sql: &'static str = Box::leak(sql.into_boxed_str());
        tamper(&db.path(), &[sql]).await;
        let report = verify_file(db.path(), vec![]).await.unwrap();
        assert!(!report.ok(), "{sql}: {report:?}");
        assert_eq!(report.broken, None, "the chain itself is intact: {sql}");
        let found = report
            .state_mismatches
            .iter()
            .find(|m| m.field == *field)
            .unwrap_or_else(|| panic!("{sql}: no {field} mismatch in {report:?}"));
        assert_eq!(found.action_id, ids[*index], "{sql}");
        assert_eq!((&found.stored, &found.derived), (stored, derived), "{sql}");
    }
    // A row inserted behind the log's back: a copy of an action under a new id.
    let (db, ids) = lifecycle_db("insert").await;
    let columns = "action, agent, owner, status, tier, rule, reason, args, original_args, \
         reasoning, context, confidence, hints, idempotency_key, approvers, escalated_to, \
         escalated, approvals_required, decisions, deadline, timeout_plan, policy_hash, \
         review_sample, review_state, review, outcome, created_at, decided_at, version";
    let sql = format!(
        "INSERT INTO actions (id, {columns}) SELECT 'zzzzforged', {columns} FROM actions WHERE id = '{}'",
        ids[1]
    );
    tamper(&db.path(), &[Box::leak(sql.into_boxed_str())]).await;
    let report = verify_file(db.path(), vec![]).await.unwrap();
    assert_eq!(report.state_mismatch_count, 1, "{report:?}");
    let forged = &report.state_mismatches[0];
    assert_eq!(
        (forged.action_id.as_str(), forged.field.as_str()),
        ("zzzzforged", "log")
    );
}

#[tokio::test]
async fn entries_cut_from_the_end_are_found_against_a_checkpoint() {
    let db = audited_db("truncate").await;
    let report = verify_file(db.path(), vec![]).await.unwrap();
    let head = CheckpointClaim {
        source: "the published checkpoint".into(),
        size: report.entries,
        hash: hash_from_hex(&report.head).unwrap(),
    };
    // The triggers stop a careless DELETE; an attacker drops them first (`tamper` does),
    // and removes the rows of the actions whose entries they cut, so that no row is left
    // without its log.
    tamper(
        &db.path(),
        &[
            "DELETE FROM actions WHERE id IN (SELECT action_id FROM audit WHERE seq > 16)",
            "DELETE FROM audit WHERE seq > 16",
        ],
    )
    .await;
    // The chain alone still verifies: what is left is a valid, shorter chain.
    assert!(verify_file(db.path(), vec![]).await.unwrap().ok());
    let report = verify_file(db.path(), vec![head.clone()]).await.unwrap();
    assert!(!report.ok());
    assert_eq!(
        report.checkpoints[0].outcome,
        CheckpointOutcome::Truncated { entries: 16 }
    );
    assert_eq!(report.first_bad_seq(), Some(17));
    let problems = report.problems();
    assert!(
        problems[0].contains("entries 17 to 20 were cut from its end"),
        "{problems:?}"
    );

    // Re-appending forged entries of the same count does not help: the hash differs.
    let store = db.open().await;
    for i in 0..3 {
        store
            .submit(new_action(
                &policy(),
                "bot",
                "order.get",
                json!({"forged": i}),
                t0(),
            ))
            .await
            .unwrap();
    }
    store.close().await;
    let report = verify_file(db.path(), vec![head]).await.unwrap();
    assert_eq!(report.checkpoints[0].outcome, CheckpointOutcome::Rewritten);
    assert!(report.problems()[0].contains("rewritten up to entry 20"));
}

/// Whether this process runs as root, for whom permission bits do not stop writes.
fn is_root() -> bool {
    let output = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Makes a file or directory read-only for this process, in the way that holds for it:
/// `chattr +i` for root (who ignores permission bits), the permission bits for anyone else.
/// Undone on drop, so the test directory can be removed.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(path: &Path) -> ReadOnly {
        let status = if is_root() {
            std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .unwrap()
        } else {
            let mode = if path.is_dir() { "0555" } else { "0444" };
            std::process::Command::new("chmod")
                .arg(mode)
                .arg(path)
                .status()
                .unwrap()
        };
        // Not skippable: if the file cannot be made read-only, the test fails here.
        assert!(
            status.success(),
            "could not make {} read-only",
            path.display()
        );
        ReadOnly(path.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        let _ = std::process::Command::new("chmod")
            .arg("u+w")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_read_only_file_or_directory_is_refused_at_open() {
    let db = audited_db("read-only").await;
    // Closed by a writing connection (the verification's reader may have left a -wal),
    // the file has no -wal or -shm beside it, as after a clean stop.
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    conn.close().unwrap();
    assert!(!db.dir.join("countersign.db-wal").exists());
    {
        // A writable file in a read-only directory: SQLite cannot create its -wal file.
        let _read_only = ReadOnly::new(&db.dir);
        let error = SqliteStore::open(db.path(), SqliteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Open { .. }), "{error}");
        assert!(error.to_string().contains("-wal"), "{error}");
    }
    {
        let _read_only = ReadOnly::new(&db.path());
        let error = SqliteStore::open(db.path(), SqliteOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Open { reason, .. } if reason.contains("read-only")),
            "{error}"
        );
        // Verification only reads: it still works on a read-only file.
        assert!(verify_file(db.path(), vec![]).await.unwrap().ok());
    }
    // Writable again: it opens.
    db.open().await.close().await;
}

/// Overwrites the root page of `table` with garbage, as a failing disk might.
fn damage_table(path: &Path, table: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    // Everything into the main file first, so that the page is read from there.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?",
            [table],
            |row| row.get(0),
        )
        .unwrap();
    conn.close().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        size => usize::from(size),
    };
    let start = (root as usize - 1) * page_size;
    bytes[start..start + page_size].fill(0x5a);
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_damaged_file_is_refused_at_open_and_reported_by_verify() {
    let db = audited_db("damaged").await;
    damage_table(&db.path(), "audit");

    let error = SqliteStore::open(db.path(), SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Damaged(_)), "{error}");
    assert!(error.to_string().contains("quick_check"), "{error}");

    // Verification answers with what is wrong instead of failing.
    let report = verify_file(db.path(), vec![]).await.unwrap();
    assert!(!report.ok());
    let damage = report.damage.as_ref().expect("damage is reported");
    assert!(damage.message.contains("malformed"), "{damage:?}");
    assert!(!damage.integrity.is_empty() && damage.integrity != ["ok"]);

    // Opened without the check (damage that appears while serving): the first read or
    // write that meets the damage marks the store damaged, and writes are refused.
    let options = SqliteOptions {
        check_integrity: false,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(db.path(), options).await.unwrap();
    assert_eq!(store.health().await, StoreHealth::Ok);
    let report = store.verify_audit().await.unwrap();
    assert!(report.damage.is_some());
    assert!(matches!(store.health().await, StoreHealth::Damaged(_)));
    assert!(!store.is_writable());
    let refused = store
        .decide("x".into(), reviewer("rita"), approve(), t0())
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Damaged(_)), "{refused}");
    store.close().await;
}
