//! The one crate that knows SQL: a [`Store`] named by domain operations, with two backends:
//! SQLite (one process, [`SqliteStore`]) and PostgreSQL (several instances on one database,
//! [`PostgresStore`]).
//!
//! Every write goes through one writer thread per store that batches concurrent commands into
//! one transaction (group commit): one fsync acknowledges many requests, and an answer is
//! sent only after the commit returned. Lifecycle rules are `countersign_core`'s, applied
//! inside the writer's transaction so that no two writers can act on a stale state. The
//! audit chain is linked in the same transaction as the change it records.
//!
//! That is the SQLite backend; the PostgreSQL backend reaches the same guarantees with
//! concurrent transactions and row locks, and links the audit chain after the commit
//! (`postgres` module). The server holds an `Arc<dyn Store>`; both backends run the same
//! conformance story (`conformance::story`, behind the `conformance` feature).

mod audit_log;
mod canonical;
mod cursor;
mod entries;
mod error;
mod grants;
mod history;
mod ids;
mod new_token;
mod outbox;
mod people;
pub mod postgres;
mod record;
pub mod sqlite;
mod stats_query;
mod token;
mod ui_query;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use countersign_core::graduation::{Evidence, GroupKey};
use countersign_core::lifecycle::DecisionRequest;
use countersign_core::name::Name;
use countersign_core::stats::{StatsData, Window};
use tokio::sync::broadcast;

pub use audit_log::{
    ACTOR_TOKEN_FIELD, AuditEntry, AuditHead, AuditReport, CLI_ACTOR, CheckpointCheck,
    CheckpointClaim, CheckpointOutcome, CommitStats, Damage, MAX_LISTED_MISMATCHES, NewAuditEntry,
    NewCheckpoint, SYSTEM_ACTOR, StateMismatch, StoreHealth, StoredCheckpoint, kind,
};
pub use canonical::request_hash;
pub use cursor::CURSOR_PATTERN;
pub use error::StoreError;
pub use grants::{GrantQuery, GrantRecord, NewGrant, grant_kind};
pub use history::{ActiveRegression, HistoryVisitor, NewRegression, PolicyLoad};
pub use new_token::NewTokenError;
pub use outbox::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, Destination, Event, EventKind, EventRouter,
    NO_ACTION, Notifications, OutboxSignal, Person, RegressionEvent, Routed, SlackLink, Tried,
    outbox_kind,
};
pub use people::{NewSession, NewUser, Session, SignedIn, StartedSession, User, people_kind};
pub use postgres::{PostgresOptions, PostgresStore, is_postgres_url};
pub use record::{
    ActionQuery, ActionRecord, Actor, DEFAULT_PAGE_BYTES, DueDeadline, Idempotency, NewAction,
    NewOutcome, NewReview, Outcome, OutcomeStatus, Page, QueueQuery, Review, ReviewQuery,
    ReviewState, ReviewVerdict, Submitted,
};
pub use sqlite::{SqliteOptions, SqliteStore, latest_checkpoint_in_file, verify_file};
pub use stats_query::{ExportQuery, KeptSum, SeriesPoint, SeriesQuery, SeriesStep, StatsTotals};
pub use token::{CreatedToken, NewToken, Role, TOKEN_PREFIX, Token};
pub use ui_query::{
    AuditFilter, AuditWindow, LastApproved, PendingPage, PendingQuery, QueuePosition, TierCounts,
};

/// A boxed, sendable future: what [`Store`] methods return, so that the trait can be used
/// as `Arc<dyn Store>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What the server asks of storage, by domain operation. Writes return only after their
/// transaction committed durably.
pub trait Store: Notifications + Send + Sync + 'static {
    // ---- actions -------------------------------------------------------------------------

    /// Stores a classified submission. With an idempotency key already used by the same
    /// agent: the first answer again (`replayed`), or [`StoreError::IdempotencyMismatch`]
    /// if the body differs. Concurrent duplicates resolve to one action.
    fn submit(&self, action: NewAction) -> BoxFuture<'_, StoreResult<Submitted>>;

    /// The earlier submission under `(agent, key)`, if any, without writing anything: the
    /// cheap path for replays. [`Store::submit`] makes the same check authoritatively.
    fn replay<'a>(
        &'a self,
        agent: &'a str,
        idempotency: &'a Idempotency,
    ) -> BoxFuture<'a, StoreResult<Option<Submitted>>>;

    /// One action.
    fn action<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>>;

    /// The pending queue, oldest deadline first (ties by id).
    fn queue(&self, query: QueueQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>>;

    /// Actions of any status, newest first.
    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>>;

    /// Applies a reviewer's verdict with `countersign_core::lifecycle::decide`, inside the
    /// write transaction.
    fn decide(
        &self,
        id: String,
        reviewer: Actor,
        request: DecisionRequest,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>>;

    /// The agent withdraws a pending action (`actor`: the agent, with its token).
    fn cancel(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>>;

    /// The agent reports what happened when it ran the action (once).
    fn record_outcome(
        &self,
        id: String,
        actor: Actor,
        outcome: NewOutcome,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>>;

    // ---- the SLA ladder ------------------------------------------------------------------

    /// The earliest next SLA step (a reminder or a deadline) among pending actions, for the
    /// SLA worker to sleep until.
    fn next_deadline(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>>;

    /// Pending actions whose next SLA step (a reminder or the deadline) is at or before
    /// `now`, earliest first.
    fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<DueDeadline>>>;

    /// Applies the SLA step due for action `id` at `now` (`countersign_core::sla::due`),
    /// inside the write transaction. `None` when nothing is due (any more).
    fn apply_sla(
        &self,
        id: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Option<ActionRecord>>>;

    /// Applies every SLA step due at `now`, up to `limit` actions, in one transaction;
    /// returns the changed actions.
    fn sweep_sla(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>>;

    // ---- post-hoc review -----------------------------------------------------------------

    /// The post-hoc review queue: sampled `logged` actions, oldest first.
    fn reviews(&self, query: ReviewQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>>;

    /// Records a post-hoc review (once per action), if the reviewer may give it
    /// (`countersign_core::lifecycle::may_review`: not the agent's owner, not the agent).
    fn review(
        &self,
        id: String,
        reviewer: Actor,
        review: NewReview,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>>;

    // ---- audit ---------------------------------------------------------------------------

    /// Appends an entry for an event outside the action lifecycle.
    fn append_audit(&self, entry: NewAuditEntry) -> BoxFuture<'_, StoreResult<AuditEntry>>;

    /// Entries with `seq > after`, in order: at most `limit`, and no more once they hold
    /// more than `max_bytes` ([`AuditEntry::stored_bytes`]; 0 means [`DEFAULT_PAGE_BYTES`]).
    fn audit(
        &self,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>>;

    /// Verifies the log: the whole chain (naming the first changed, removed or reordered
    /// entry), that it still extends each of `claims` (checkpoints whose signatures the
    /// caller checked), and every action's stored state against its entries. A file too
    /// damaged to read to the end is reported in the report's `damage`, not as an error.
    fn verify_audit_against(
        &self,
        claims: Vec<CheckpointClaim>,
    ) -> BoxFuture<'_, StoreResult<AuditReport>>;

    /// [`Store::verify_audit_against`] no checkpoint.
    fn verify_audit(&self) -> BoxFuture<'_, StoreResult<AuditReport>> {
        self.verify_audit_against(Vec::new())
    }

    /// The chain's head: what a checkpoint signs.
    fn audit_head(&self) -> BoxFuture<'_, StoreResult<AuditHead>>;

    /// Keeps a signed checkpoint. Refused ([`StoreError::CheckpointMismatch`]) unless the
    /// log holds its entry with its hash and still extends the latest checkpoint stored;
    /// `false` when the same one was stored already.
    fn add_checkpoint(
        &self,
        checkpoint: NewCheckpoint,
    ) -> BoxFuture<'_, StoreResult<(StoredCheckpoint, bool)>>;

    /// The checkpoint of the largest size stored.
    fn latest_checkpoint(&self) -> BoxFuture<'_, StoreResult<Option<StoredCheckpoint>>>;

    // ---- tokens --------------------------------------------------------------------------

    /// Creates a token if `countersign_core::identity::admit` lets it take its name, decided
    /// inside the write transaction (two concurrent creations cannot both pass). An agent
    /// token without an owner, for an agent that has one, gets the agent's owner.
    fn create_token(&self, token: NewToken) -> BoxFuture<'_, StoreResult<CreatedToken>>;

    /// The live token with this secret; `None` for unknown and revoked tokens.
    fn authenticate<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<Token>>>;

    fn tokens(&self) -> BoxFuture<'_, StoreResult<Vec<Token>>>;

    /// Revokes a token; once committed, its id is sent to [`Store::subscribe_revocations`].
    fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Token>>;

    /// The ids of the tokens revoked through this store, each sent after its commit, so that
    /// open waits of a revoked token end at once. Revocations by another process on the
    /// same database are not sent: [`Store::revoked_among`] finds those.
    fn subscribe_revocations(&self) -> broadcast::Receiver<String>;

    /// Which of the tokens `ids` are revoked now (whoever revoked them). Unknown ids are
    /// left out.
    fn revoked_among<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<String>>>;

    // ---- watching ------------------------------------------------------------------------

    /// Every action changed by a committed write, sent after the commit. A receiver that
    /// lags (`RecvError::Lagged`) should re-read the actions it watches.
    fn subscribe(&self) -> broadcast::Receiver<Arc<ActionRecord>>;

    /// Group-commit counters.
    fn commit_stats(&self) -> CommitStats;

    /// Whether the store can take writes: `false` once it was closed or its writer stopped
    /// (a bug that panicked it, say), while writes fail for a storage reason (until one
    /// succeeds again), and once the file was found damaged. Cheap: no query.
    fn is_writable(&self) -> bool;

    /// Like [`Store::is_writable`], with the reason, and checked with a real write when the
    /// last one is a while ago or failed (so that a disk that filled up while nobody wrote,
    /// or one that has space again, shows).
    fn health(&self) -> BoxFuture<'_, StoreHealth>;

    // ---- grants ----------------------------------------------------------------------------

    /// Stores a grant (checked by the caller: the policy, the giver's rights).
    fn create_grant(&self, grant: NewGrant) -> BoxFuture<'_, StoreResult<GrantRecord>>;

    /// The grants `query` selects, newest first.
    fn grants(&self, query: GrantQuery) -> BoxFuture<'_, StoreResult<Vec<GrantRecord>>>;

    /// One grant.
    fn grant<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<GrantRecord>>>;

    /// Revokes a grant: from the next submission on, it covers nothing. Revoking a revoked
    /// grant answers it as it is.
    fn revoke_grant(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<GrantRecord>>;

    // ---- people ----------------------------------------------------------------------------

    /// Creates a person's web login if `countersign_core::identity::admit` lets a person take
    /// the name (decided inside the write transaction); [`StoreError::UserExists`] if the
    /// name has a login already.
    fn create_user(&self, user: NewUser) -> BoxFuture<'_, StoreResult<User>>;

    /// The person with this (folded) name, disabled or not.
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<User>>>;

    /// Every person with a login, by name.
    fn users(&self) -> BoxFuture<'_, StoreResult<Vec<User>>>;

    /// Replaces a person's password hash and ends all their sessions.
    fn change_password(
        &self,
        name: Name,
        password_hash: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<User>>;

    /// Disables a person: no sign-in, their sessions ended, and every live token of their
    /// name revoked (sent to [`Store::subscribe_revocations`] after the commit).
    fn disable_user(
        &self,
        name: Name,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<User>>;

    /// Starts a session for a person whose password the caller verified; the secret is in
    /// the answer and nowhere else. Refused for a disabled person.
    fn start_session(&self, session: NewSession) -> BoxFuture<'_, StoreResult<StartedSession>>;

    /// The session (live or ended) whose secret this is, with its person.
    fn signed_in<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<SignedIn>>>;

    /// Marks a live session as seen at `now`, and with `reauthenticated` as having had its
    /// password typed again; [`StoreError::SessionEnded`] for an ended one.
    fn touch_session(
        &self,
        id: String,
        now: DateTime<Utc>,
        reauthenticated: bool,
    ) -> BoxFuture<'_, StoreResult<Session>>;

    /// Ends a session (sign-out). Ending an ended session answers it as it is.
    fn end_session(&self, id: String, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<Session>>;

    // ---- the reviewer UI's reads -------------------------------------------------------

    /// The pending queue filtered by action, agent and tier, from a position either way.
    fn pending(&self, query: PendingQuery)
    -> BoxFuture<'_, StoreResult<PendingPage<ActionRecord>>>;

    /// How many actions are pending, per tier.
    fn pending_counts(&self) -> BoxFuture<'_, StoreResult<TierCounts>>;

    /// The newest approved action of the same agent and name, other than the one given.
    fn last_approved<'a>(
        &'a self,
        query: LastApproved<'a>,
    ) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>>;

    /// A window of the audit log, newest first, filtered by action and actor within a
    /// bounded scan.
    fn audit_window(&self, filter: AuditFilter) -> BoxFuture<'_, StoreResult<AuditWindow>>;

    // ---- history (graduation) ------------------------------------------------------------

    /// Streams every submission made at or after `since` to `visit`, on a blocking thread,
    /// in one read snapshot, until `visit` answers `false`; answers how many it visited.
    /// Memory stays one row at a time whatever the history's size.
    fn scan_history(
        &self,
        since: DateTime<Utc>,
        visit: HistoryVisitor,
    ) -> BoxFuture<'_, StoreResult<u64>>;

    /// The evidence per rule and action type among submissions made at or after `since`,
    /// aggregated in the database.
    fn evidence(&self, since: DateTime<Utc>) -> BoxFuture<'_, StoreResult<Vec<Evidence>>>;

    /// The agent's arguments of up to `limit` actions of a group that people corrected
    /// (rejected, or approved with other arguments) since `since`.
    fn corrected_args<'a>(
        &'a self,
        key: &'a GroupKey,
        since: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<serde_json::Map<String, serde_json::Value>>>>;

    /// A group's evidence counting only actions whose argument `arg` (as the agent sent it)
    /// is a number under `below`.
    fn evidence_below<'a>(
        &'a self,
        key: &'a GroupKey,
        since: DateTime<Utc>,
        arg: &'a str,
        below: f64,
    ) -> BoxFuture<'a, StoreResult<Evidence>>;

    /// Records that a policy is in force: a `policy_loaded` audit entry (and the text kept)
    /// when its hash differs from the last one recorded; `None` when it is the same.
    fn record_policy_load(
        &self,
        load: PolicyLoad,
    ) -> BoxFuture<'_, StoreResult<Option<AuditEntry>>>;

    /// Brings the regressions reviewers were told of in line with those that hold now, in
    /// one transaction: each new one gets a `graduation_regressed` audit entry (returned),
    /// each one told of before is left alone (told once), and each that no longer holds is
    /// cleared (so that it is told again if it comes back). `policy_hash` is the policy
    /// the caller judged by: when the policy most recently put in force (the last
    /// `policy_loaded`) is another, the caller is an instance left behind by a rolling
    /// deploy and nothing changes — so instances running two policies never clear and
    /// re-announce each other's alerts.
    fn sync_regressions(
        &self,
        policy_hash: String,
        holding: Vec<NewRegression>,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>>;

    /// The regressions told of and not cleared, newest first.
    fn active_regressions(&self) -> BoxFuture<'_, StoreResult<Vec<ActiveRegression>>>;
    // ---- statistics and training data ---------------------------------------------------

    /// The statistics of the actions submitted within `window`, as of `now` (nothing was
    /// submitted after it), summed by the finest keys. From sums kept as actions change
    /// (`countersign_core::stats::change`, added in the transaction of each change) and, at
    /// each unaligned end, at most half an hour of actions read one by one
    /// (`countersign_core::stats::plan`): never a scan of the history. One snapshot.
    fn stats(&self, window: Window, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<StatsData>>;

    /// Every group summed per hour or per day of submission (the dashboard's charts).
    fn stats_series(&self, query: SeriesQuery) -> BoxFuture<'_, StoreResult<Vec<SeriesPoint>>>;

    /// The all-time sums, with the day each group first had actions (for `/metrics`).
    fn stats_totals(&self) -> BoxFuture<'_, StoreResult<StatsTotals>>;

    /// A page of training cases: actions submitted within the query's window whose label
    /// (`countersign_core::learning::case`) may be one asked for, oldest first. The caller
    /// keeps those whose case has one of the labels.
    fn export(&self, query: ExportQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>>;

    /// Finishes queued writes and closes the database; later calls fail with
    /// [`StoreError::Closed`]. Dropping the store without closing loses nothing
    /// acknowledged (every answer came after its commit), but closing shuts down cleanly.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Opens the store a database URL names: `postgres://...` (or `postgresql://`) for
/// PostgreSQL, shared with other instances (migrated); `sqlite://PATH`, `sqlite:PATH` or a
/// plain path for SQLite (created if missing, migrated).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    open_with(url, SqliteOptions::default()).await
}

/// [`open`] with SQLite's options (a PostgreSQL URL opens with the default
/// [`PostgresOptions`]).
pub async fn open_with(url: &str, options: SqliteOptions) -> StoreResult<Arc<dyn Store>> {
    open_configured(url, options, PostgresOptions::default()).await
}

/// [`open`] with both backends' options: the URL picks which apply.
pub async fn open_configured(
    url: &str,
    sqlite: SqliteOptions,
    postgres: PostgresOptions,
) -> StoreResult<Arc<dyn Store>> {
    if is_postgres_url(url) {
        return Ok(Arc::new(PostgresStore::open(url, postgres).await?));
    }
    let store = SqliteStore::open(sqlite_path(url)?, sqlite).await?;
    Ok(Arc::new(store))
}

/// Like [`open`], for commands that work on a database someone already uses (`token list
/// --db`, `token revoke --db`): a missing file is an error, not a new empty database that
/// would answer a typo'd path with "no tokens"; a PostgreSQL database must have been
/// migrated already.
pub async fn open_existing(url: &str) -> StoreResult<Arc<dyn Store>> {
    if is_postgres_url(url) {
        let options = PostgresOptions {
            migrate: false,
            pool_size: 2,
            ..PostgresOptions::default()
        };
        return Ok(Arc::new(PostgresStore::open(url, options).await?));
    }
    let path = sqlite_path(url)?;
    if !std::path::Path::new(path).is_file() {
        return Err(StoreError::NoDatabase(path.to_owned()));
    }
    open_for_command(url).await
}

/// Like [`open`], for one-shot commands on the database (`token create --db` and the
/// others): on SQLite without the start-up integrity scan, which `serve` runs and which
/// takes tens of seconds on a large file whose pages are not cached (BENCHMARKS.md). A
/// damaged page the command touches is still reported.
pub async fn open_for_command(url: &str) -> StoreResult<Arc<dyn Store>> {
    let options = SqliteOptions {
        check_integrity: false,
        ..SqliteOptions::default()
    };
    let postgres = PostgresOptions {
        pool_size: 2,
        ..PostgresOptions::default()
    };
    open_configured(url, options, postgres).await
}

/// Brings the schema of the database a URL names up to date (`countersign migrate`):
/// returns the versions applied now and the version the database is at.
pub async fn migrate(url: &str) -> StoreResult<(Vec<i32>, i32)> {
    if is_postgres_url(url) {
        return postgres::migrate_database(url).await;
    }
    sqlite::migrate_file(sqlite_path(url)?).await
}

/// Verifies the audit log of the database a URL names against `claims`, read-only: the
/// database is neither created nor migrated nor written (`countersign audit verify --db`).
pub async fn verify_database(url: &str, claims: Vec<CheckpointClaim>) -> StoreResult<AuditReport> {
    if is_postgres_url(url) {
        return postgres::verify_postgres(url, claims).await;
    }
    verify_file(existing_file(url)?, claims).await
}

/// The latest checkpoint stored in the database a URL names, read-only (`countersign audit
/// checkpoint --db`).
pub async fn latest_checkpoint_in_database(url: &str) -> StoreResult<Option<StoredCheckpoint>> {
    if is_postgres_url(url) {
        return postgres::latest_checkpoint_postgres(url).await;
    }
    latest_checkpoint_in_file(existing_file(url)?).await
}

fn existing_file(url: &str) -> StoreResult<&str> {
    let path = sqlite_path(url)?;
    if !std::path::Path::new(path).is_file() {
        return Err(StoreError::NoDatabase(path.to_owned()));
    }
    Ok(path)
}

/// The file a database URL names.
fn sqlite_path(url: &str) -> StoreResult<&str> {
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    } else {
        url
    };
    let path = path.split('?').next().unwrap_or(path);
    // Separate writer and reader connections would each see their own in-memory database.
    if path.is_empty() || path.starts_with(":memory:") || path.contains("mode=memory") {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    Ok(path)
}
