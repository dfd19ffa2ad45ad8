//! Kept statistics on a real database, SQLite and PostgreSQL alike: the same after a
//! restart, and the same again when the migration that introduced them sums an older
//! database's actions.

use chrono::TimeDelta;
use countersign_core::lifecycle::Verdict;
use countersign_core::stats::{self, GroupBy, Report, StatsSettings, Window};
use countersign_store::Store;
use countersign_store::conformance::{new_action, policy, t0};
use serde_json::json;

use super::{TempDb, approve, reviewer, tamper};

async fn reports(store: &dyn Store) -> Vec<Report> {
    let data = store
        .stats(Window::all(), t0() + TimeDelta::days(1))
        .await
        .unwrap();
    [GroupBy::Action, GroupBy::Reviewer]
        .map(|by| stats::report(&data, by, &StatsSettings::default()))
        .to_vec()
}

/// Three decided actions hours apart and one allowed at once.
async fn seed(store: &dyn Store) {
    let p = policy();
    for (n, verdict) in [Verdict::Approve, Verdict::Reject, Verdict::Approve]
        .into_iter()
        .enumerate()
    {
        let at = t0() + TimeDelta::hours(n as i64 * 7);
        let id = store
            .submit(new_action(&p, "bot", "queue.item", json!({"n": n}), at))
            .await
            .unwrap()
            .record
            .id;
        let request = countersign_core::lifecycle::DecisionRequest {
            verdict,
            ..approve()
        };
        let decided = at + TimeDelta::seconds(40 + n as i64);
        store
            .decide(id, reviewer("rita"), request, decided)
            .await
            .unwrap();
    }
    store
        .submit(new_action(&p, "bot", "order.get", json!({}), t0()))
        .await
        .unwrap();
}

#[tokio::test]
async fn statistics_survive_a_restart_and_are_summed_for_older_databases() {
    let db = TempDb::new("stats-restart");
    let store = db.open().await;
    seed(store.as_ref()).await;
    let before = reports(store.as_ref()).await;
    assert_eq!(before[0].overall.counts.total, 4);
    assert_eq!(before[0].overall.counts.approved, 2);
    assert_eq!(before[1].groups.len(), 1, "rita");
    store.close().await;
    drop(store);

    let store = db.open().await;
    assert_eq!(reports(store.as_ref()).await, before, "after a restart");
    store.close().await;
    drop(store);

    // A database from before the sums were kept (version 6, the outbox; neither the sums
    // of 7 nor graduation's tables of 8): the migration sums what it holds.
    tamper(
        &db.path(),
        &[
            "DROP TABLE action_stats",
            "DROP TABLE reviewer_stats",
            "DROP TABLE graduation_alerts",
            "DROP TABLE policy_loads",
            "DROP INDEX actions_history",
            "PRAGMA user_version = 6",
        ],
    )
    .await;
    let store = db.open().await;
    assert_eq!(
        reports(store.as_ref()).await,
        before,
        "summed by the migration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_survive_a_restart_and_are_summed_for_older_databases_on_postgres() {
    let Some(db) = super::postgres::PgDb::new().await else {
        return;
    };
    let store = db.open().await;
    seed(store.as_ref()).await;
    let before = reports(store.as_ref()).await;
    assert_eq!(before[0].overall.counts.total, 4);
    assert_eq!(before[0].overall.counts.approved, 2);
    assert_eq!(before[1].groups.len(), 1, "rita");
    store.close().await;
    drop(store);

    let store = db.open().await;
    assert_eq!(reports(store.as_ref()).await, before, "after a restart");
    store.close().await;
    drop(store);

    // A database from before the sums were kept (version 3, the outbox; neither the sums
    // of 4 nor graduation's tables and column of 5): the migration sums what it holds.
    db.client()
        .await
        .batch_execute(
            "DROP TABLE action_stats; DROP TABLE reviewer_stats; \
             DROP TABLE graduation_alerts; DROP TABLE policy_loads; \
             DROP INDEX actions_history; ALTER TABLE actions DROP COLUMN modified; \
             DELETE FROM countersign_schema WHERE version >= 4",
        )
        .await
        .unwrap();
    let store = db.open().await;
    assert_eq!(
        reports(store.as_ref()).await,
        before,
        "summed by the migration"
    );
    store.close().await;
}
