//! SQLite's errors in the store's terms: storage failures (full, read-only, I/O, damaged,
//! locked) become the store's "not now" errors, everything else a database error with its
//! message. The only place `rusqlite::Error` is turned into a [`StoreError`], so that the
//! error type stays the same for every backend.

use crate::error::StoreError;

impl From<rusqlite::Error> for StoreError {
    /// Storage failures (full, read-only, I/O, damaged) become [`StoreError::Unavailable`]
    /// or [`StoreError::Damaged`], so that callers answer them as "not now" instead of as a
    /// bug.
    fn from(error: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        let Some(code) = error.sqlite_error_code() else {
            return StoreError::Database(error.to_string());
        };
        match code {
            C::DatabaseCorrupt | C::NotADatabase => StoreError::Damaged(error.to_string()),
            C::DiskFull => StoreError::Unavailable(format!("the disk is full ({error})")),
            C::ReadOnly => StoreError::Unavailable(format!(
                "the database file or its directory is read-only ({error})"
            )),
            C::SystemIoFailure => {
                StoreError::Unavailable(format!("the storage device failed ({error})"))
            }
            C::CannotOpen => {
                StoreError::Unavailable(format!("the database files cannot be opened ({error})"))
            }
            C::DatabaseBusy | C::DatabaseLocked => StoreError::Busy(format!(
                "another process holds the database locked ({error})"
            )),
            C::OutOfMemory => {
                StoreError::Unavailable(format!("SQLite ran out of memory ({error})"))
            }
            _ => StoreError::Database(error.to_string()),
        }
    }
}
