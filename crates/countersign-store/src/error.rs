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
    /// The database failed (IO, locking, full disk...).
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// The writer is gone (the store was closed, or a batch failed to commit).
    #[error("the store's writer stopped: {0}")]
    WriterGone(String),
    /// The database cannot be reached right now, though nothing is wrong with it: a
    /// connection could not be opened (the process is out of file descriptors, say).
    #[error("the database is unavailable for now: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Is this a refusal caused by the request (as opposed to a storage failure)?
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            StoreError::Corrupt(_)
                | StoreError::Database(_)
                | StoreError::Migrate(_)
                | StoreError::WriterGone(_)
                | StoreError::Unavailable(_)
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
            StoreError::WriterGone(_) | StoreError::Unavailable(_) => true,
            StoreError::Database(error) => matches!(
                error.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::OutOfMemory
                )
            ),
            _ => false,
        }
    }
}
