//! The SQLite schema, embedded in the binary. One file per version under
//! `migrations/sqlite`; a PostgreSQL backend keeps its own folder next to it.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Every migration, in order. Add new files at the end; never edit an applied one (the
/// migrator checks their checksums).
pub(crate) fn migrator() -> Migrator {
    let files: [(i64, &'static str, &'static str); 2] = [
        (
            1,
            "initial",
            include_str!("../../migrations/sqlite/0001_initial.sql"),
        ),
        (
            2,
            "queue by action",
            include_str!("../../migrations/sqlite/0002_queue_by_action.sql"),
        ),
    ];
    Migrator::with_migrations(
        files
            .into_iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
