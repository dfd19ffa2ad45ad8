//! The SQLite schema, embedded in the binary. One file per version under
//! `migrations/sqlite`; the file's version is kept in SQLite's own `user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// Every migration, in order: `(version, sql)`. Add new files at the end; never edit an
/// applied one.
const MIGRATIONS: [(u32, &str); 8] = [
    (1, include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_queue_by_action.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_checkpoints.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_people_and_review_ui.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_grants.sql")),
    (6, include_str!("../../migrations/sqlite/0006_outbox.sql")),
    (
        7,
        include_str!("../../migrations/sqlite/0007_approval_metrics.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_graduation.sql"),
    ),
];

/// What a migration needs beyond its SQL, in the same transaction: the approval metrics'
/// sums of the actions stored before they were kept.
fn after(version: u32, tx: &Connection) -> Result<(), StoreError> {
    match version {
        7 => super::stats::backfill(tx),
        _ => Ok(()),
    }
}

/// The schema version this build writes.
pub(crate) const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the schema up to date. Each migration runs in an immediate transaction together
/// with its `user_version` bump, and the version is read again inside that transaction, so
/// two processes opening a new file at once apply each migration exactly once (the second
/// waits for the first's lock, then finds nothing left to do).
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    for (version, sql) in MIGRATIONS {
        if user_version(conn)? >= version {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if user_version(&tx)? < version {
            tx.execute_batch(sql)
                .map_err(|e| StoreError::Migrate(format!("version {version}: {e}")))?;
            after(version, &tx)
                .map_err(|e| StoreError::Migrate(format!("version {version}: {e}")))?;
            tx.pragma_update(None, "user_version", version)?;
        }
        tx.commit()?;
    }
    let found = user_version(conn)?;
    if found > LATEST {
        return Err(StoreError::Migrate(format!(
            "the database has schema version {found}, newer than this build's {LATEST}: upgrade countersign"
        )));
    }
    Ok(())
}

pub(crate) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}
