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
    /// The lifecycle refused a cancellation or outcome (not pending, may not run, already
    /// reported).
    #[error(transparent)]
    State(#[from] StateError),
    /// An idempotency key was reused with a different request body.
    #[error(
        "idempotency key {key:?} was already used with a different request body; use a new key for a new request"
    )]
    IdempotencyMismatch { key: String },
    /// The post-hoc review was refused (not sampled, already reviewed, or the reviewer
    /// answers for the agent).
    #[error(transparent)]
    Review(#[from] ReviewError),
    /// A new token may not take the identity it asks for (see [`IdentityError::kind`]).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// No token with this id.
    #[error("no token with id {0:?}")]
    TokenNotFound(String),
    /// No grant with this id.
    #[error("no grant with id {0:?}")]
    GrantNotFound(String),
    /// No person with a web login of this name.
    #[error("no user named {0:?}")]
    UserNotFound(String),
    /// A person with this name already has a web login.
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    /// The person was disabled: they may not sign in.
    #[error("the user {0:?} is disabled")]
    UserDisabled(String),
    /// No web session with this id.
    #[error("no session with id {0:?}")]
    SessionNotFound(String),
    /// The session was signed out or revoked.
    #[error("the session {0:?} has ended")]
    SessionEnded(String),
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
    #[error(
        "unsupported database URL {0:?}: expected sqlite://PATH, a file path, or postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl(String),
    /// A stored row that does not decode (the file was edited by hand, or a bug).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database failed for a reason that is neither the request's nor the storage's
    /// (a bug, a constraint): the backend's message.
    #[error("database error: {0}")]
    Database(String),
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
    /// The store was closed: it takes no more work.
    #[error("the store was closed")]
    Closed,
    /// The batch this write was part of did not commit: nothing of it is on disk.
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    /// The writer stopped before it answered (it failed, or the process is ending).
    #[error("the store's writer stopped before answering")]
    WriterStopped,
    /// A background task of the store stopped before it finished (opening, verifying).
    #[error("the store stopped: {0}")]
    Stopped(String),
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
                | StoreError::Closed
                | StoreError::NotCommitted(_)
                | StoreError::WriterStopped
                | StoreError::Stopped(_)
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
        matches!(
            self,
            StoreError::Closed
                | StoreError::NotCommitted(_)
                | StoreError::WriterStopped
                | StoreError::Stopped(_)
                | StoreError::Unavailable(_)
                | StoreError::Busy(_)
        )
    }
}
