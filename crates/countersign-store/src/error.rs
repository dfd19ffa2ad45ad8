//! The store's one error type: domain refusals (which the server turns into 4xx answers)
//! kept apart from storage failures (5xx).

use countersign_core::identity::IdentityError;
use countersign_core::lifecycle::{DecideError, ReviewError, StateError};

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No action with this id.
    #[error("no action with id {0:?}")]
    NotFound(String),
    /// The lifecycle refused the decision (see [`DecideError::kind`] for its class).
    #[error(transparent)]
    Decide(#[from] DecideError),
    /// The lifecycle refused a cancellation or outcome.
    #[error(transparent)]
    State(#[from] StateError),
    /// An idempotency key was reused with a different request body.
    #[error(
        "idempotency key {key:?} was already used with a different request body; use a new key for a new request"
    )]
    IdempotencyMismatch { key: String },
    /// The post-hoc review was refused (the reviewer answers for the agent).
    #[error(transparent)]
    Review(#[from] ReviewError),
    /// A new token may not take the identity it asks for (see [`IdentityError::kind`]).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An outcome was already reported for this action.
    #[error("an outcome was already reported for this action")]
    OutcomeAlreadyRecorded,
    /// The action is not in the post-hoc review queue (it was not sampled).
    #[error("this action was not sampled for post-hoc review")]
    NotInReviewQueue,
    /// The post-hoc review of this action is already done.
    #[error("this action was already reviewed")]
    AlreadyReviewed,
    /// No token with this id.
    #[error("no token with id {0:?}")]
    TokenNotFound(String),
    /// A pagination cursor that this store did not hand out.
    #[error("the cursor {0:?} is not one this server handed out")]
    BadCursor(String),
    /// No database file where one was expected.
    #[error("no database at {0:?}")]
    NoDatabase(String),
    /// A database file that cannot be opened (missing directory, permissions...).
    #[error("cannot open the database {path:?}: {reason}")]
    Open { path: String, reason: String },
    /// A database URL this build cannot open.
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or a file path")]
    UnsupportedUrl(String),
    /// A stored row that does not decode (the file was edited by hand, or a bug).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed for a reason that is neither the request's nor the storage's
    /// (a bug, a constraint).
    #[error("database error: {0}")]
    Database(rusqlite::Error),
    /// The storage cannot do it now: the disk is full, the file or its directory is
    /// read-only, the device failed, a connection could not be opened (the process is out
    /// of file descriptors, say). Answered `503`; the store reports itself unhealthy until
    /// a write succeeds again.
    #[error("the database cannot take this now: {0}")]
    Unavailable(String),
    /// Another connection held the database locked for longer than the busy timeout.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The database file is damaged (SQLite found a malformed page). Answered `503`; the
    /// store refuses writes from then on and reports itself unhealthy until it is restarted
    /// on a repaired or restored file.
    #[error("the database file is damaged: {0}")]
    Damaged(String),
    /// A checkpoint that does not match the log (its entry has another hash, or there is no
    /// such entry).
    #[error("the checkpoint does not match the audit log: {0}")]
    CheckpointMismatch(String),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// The writer is gone (the store was closed, or a batch failed to commit).
    #[error("the store's writer stopped: {0}")]
    WriterGone(String),
}

impl From<rusqlite::Error> for StoreError {
    /// Storage failures (full, read-only, I/O, damaged) become [`StoreError::Unavailable`]
    /// or [`StoreError::Damaged`], so that callers answer them as "not now" instead of as a
    /// bug.
    fn from(error: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        let Some(code) = error.sqlite_error_code() else {
            return StoreError::Database(error);
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
            _ => StoreError::Database(error),
        }
    }
}

impl StoreError {
    /// A failure of the storage itself (the disk, the file), as opposed to the request or
    /// the code: answered `503`, and reflected by the store's health.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Damaged(_) | StoreError::Busy(_)
        )
    }

    /// Is this a refusal caused by the request (as opposed to a storage failure)?
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            StoreError::Corrupt(_)
                | StoreError::Database(_)
                | StoreError::Unavailable(_)
                | StoreError::Busy(_)
                | StoreError::Damaged(_)
                | StoreError::CheckpointMismatch(_)
                | StoreError::Migrate(_)
                | StoreError::WriterGone(_)
                | StoreError::UnsupportedUrl(_)
                | StoreError::NoDatabase(_)
                | StoreError::Open { .. }
        )
    }

    /// Is this a failure that passes, so that the caller should retry later (`503`) rather
    /// than report a fault (`500`)? A closed store, a connection that cannot be opened, a
    /// file that could not be opened (no descriptor left), a lock held past the busy timeout,
    /// memory SQLite could not get.
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::WriterGone(_) | StoreError::Unavailable(_) | StoreError::Busy(_) => true,
            StoreError::Database(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::OutOfMemory)
            ),
            _ => false,
        }
    }
}
