//! The PostgreSQL schema, embedded in the binary: one file per version under
//! `migrations/postgres`, the versions applied kept in `countersign_schema`. Applied under
//! a transaction-scoped advisory lock, so that several instances starting at once against
//! a new database apply each version exactly once (the others wait, then find nothing to
//! do); each version commits with its row, or not at all.

use super::pool::Conn;
use crate::error::StoreError;

/// Every migration, in order: `(version, sql)`. Add new files at the end; never edit an
/// applied one.
const MIGRATIONS: [(i32, &str); 5] = [
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (2, include_str!("../../migrations/postgres/0002_grants.sql")),
    (3, include_str!("../../migrations/postgres/0003_outbox.sql")),
    (
        4,
        include_str!("../../migrations/postgres/0004_approval_metrics.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_graduation.sql"),
    ),
];

/// What a migration needs beyond its SQL, in the same transaction: the approval metrics'
/// sums of the actions stored before they were kept.
async fn after(version: i32, conn: &mut Conn) -> Result<(), StoreError> {
    match version {
        4 => super::stats::backfill(conn).await,
        _ => Ok(()),
    }
}

/// The schema version this build writes.
pub(crate) const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key of migrations (any constant; "countersign migrate" in hex-ish).
const MIGRATION_LOCK: i64 = 0x0c05_1960_0001;

/// Brings the schema up to date; returns the versions applied now.
pub(crate) async fn migrate(conn: &mut Conn) -> Result<Vec<i32>, StoreError> {
    conn.begin().await?;
    let result = apply(conn).await;
    match result {
        Ok(applied) => {
            conn.commit().await?;
            Ok(applied)
        }
        Err(error) => {
            conn.rollback().await;
            Err(error)
        }
    }
}

async fn apply(conn: &mut Conn) -> Result<Vec<i32>, StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    conn.batch(
        "CREATE TABLE IF NOT EXISTS countersign_schema (\
         version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let found = current(conn).await?.unwrap_or(0);
    if found > LATEST {
        return Err(newer(found));
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        if version <= found {
            continue;
        }
        conn.batch(sql)
            .await
            .map_err(|e| StoreError::Migrate(format!("version {version}: {e}")))?;
        after(version, conn)
            .await
            .map_err(|e| StoreError::Migrate(format!("version {version}: {e}")))?;
        conn.execute(
            "INSERT INTO countersign_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        applied.push(version);
    }
    Ok(applied)
}

fn newer(found: i32) -> StoreError {
    StoreError::Migrate(format!(
        "the database has schema version {found}, newer than this build's {LATEST}: upgrade countersign"
    ))
}

/// The schema version of the database; `None` when it was never migrated.
pub(crate) async fn current(conn: &mut Conn) -> Result<Option<i32>, StoreError> {
    let exists = conn
        .query_one("SELECT to_regclass('countersign_schema') IS NOT NULL", &[])
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(None);
    }
    Ok(conn
        .query_one("SELECT max(version) FROM countersign_schema", &[])
        .await?
        .get::<_, Option<i32>>(0))
}

/// Refuses a database whose schema is not this build's (for instances started with
/// automatic migration off, and commands that must not change the schema).
pub(crate) async fn check(conn: &mut Conn) -> Result<(), StoreError> {
    match current(conn).await? {
        Some(LATEST) => Ok(()),
        Some(found) if found > LATEST => Err(newer(found)),
        Some(found) => Err(StoreError::Migrate(format!(
            "the database has schema version {found}, this build needs {LATEST}: run `countersign migrate --db URL` first"
        ))),
        None => Err(StoreError::Migrate(
            "the database has no countersign schema yet: run `countersign migrate --db URL` first (or start `countersign serve` with migrations on)".into(),
        )),
    }
}
