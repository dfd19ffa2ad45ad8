//! The SQLite backend: a WAL database with `synchronous=FULL`, one writer thread doing
//! group commit on its own connection, and read-only connections for queries.
//!
//! SQLite is called in-thread (rusqlite), not through a driver that hands each statement
//! to a worker thread: on this project's machines such a hand-off costs ~100 µs a
//! statement in thread wake-ups, more than the statement itself by two orders of magnitude.
//! Reads are short indexed lookups and run on the caller's task; the one long read, audit
//! verification, runs on the blocking pool.

mod admin_ops;
mod chain;
mod checkpoints;
mod errors;
mod export;
mod grant_ops;
pub(crate) mod health;
mod history_ops;
mod migrations;
mod ops;
mod outbox_ops;
mod people_ops;
pub(crate) mod read;
pub(crate) mod rows;
pub(crate) mod stats;
mod ui_read;
pub(crate) mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::graduation::{Evidence, GroupKey};
use countersign_core::lifecycle::DecisionRequest;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::chain::Head;
use self::health::Health;
use self::outbox_ops::Emitter;
use self::writer::{Command, Counters, Job, Writer};
use crate::audit_log::{
    AuditEntry, AuditHead, AuditReport, CheckpointClaim, CommitStats, NewAuditEntry, NewCheckpoint,
    StoreHealth, StoredCheckpoint,
};
use crate::error::StoreError;
use crate::grants::{GrantQuery, GrantRecord, NewGrant};
use crate::history::{ActiveRegression, HistoryVisitor, NewRegression, PolicyLoad};
use crate::outbox::{
    Delivery, DeliveryQuery, EventRouter, Notifications, OutboxSignal, Person, SlackLink, Tried,
};
use crate::people::{NewSession, NewUser, Session, SignedIn, StartedSession, User};
use crate::record::{
    ActionQuery, ActionRecord, Actor, DueDeadline, Idempotency, NewAction, NewOutcome, NewReview,
    Page, QueueQuery, ReviewQuery, Submitted,
};
use crate::stats_query::{ExportQuery, SeriesPoint, SeriesQuery, StatsTotals};
use crate::token::{CreatedToken, NewToken, Token};
use crate::ui_query::{
    AuditFilter, AuditWindow, LastApproved, PendingPage, PendingQuery, TierCounts,
};
use crate::{BoxFuture, Store, StoreResult};
use countersign_core::name::Name;
use countersign_core::stats::{StatsData, Window};

/// Tuning of a SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// The most commands one transaction takes.
    pub max_batch: usize,
    /// Idle read-only connections kept open for reuse.
    pub read_connections: u32,
    /// Commands that may wait for the writer before callers wait to enqueue.
    pub queue_capacity: usize,
    /// How many changes a slow subscriber may fall behind before it lags.
    pub change_capacity: usize,
    /// Run SQLite's `quick_check` when opening, and refuse a damaged file. It reads the
    /// whole file (see BENCHMARKS.md for what that costs on a large one).
    pub check_integrity: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 1024,
            read_connections: 8,
            queue_capacity: 8192,
            change_capacity: 4096,
            check_integrity: true,
        }
    }
}

/// A store on one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    commands: mpsc::Sender<Command>,
    readers: Arc<Readers>,
    changes: broadcast::Sender<Arc<ActionRecord>>,
    /// Ids of tokens revoked through this store, sent after the commit.
    revocations: broadcast::Sender<String>,
    counters: Arc<Counters>,
    health: Arc<Health>,
    /// Where events go (installed by the server; none: nowhere).
    router: RwLock<Option<Router>>,
    /// Raised after commits that wrote deliveries.
    outbox: Arc<OutboxSignal>,
}

/// The installed router (a newtype so that the store stays `Debug`).
#[derive(Clone)]
struct Router(Arc<dyn EventRouter>);

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Router")
    }
}

/// Revocations a slow listener may fall behind on before it lags (and re-checks instead).
const REVOCATION_CAPACITY: usize = 64;

/// How long a connection waits for another's lock before it reports the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// SQLITE_BUSY or SQLITE_LOCKED.
fn is_busy(error: &StoreError) -> bool {
    matches!(error, StoreError::Busy(_))
}

/// Opens the writer's connection and brings the schema up to date.
///
/// Durability is stated explicitly rather than inherited: WAL (readers never block the
/// writer) and FULL (the WAL is synced at every commit, so an acknowledged write survives
/// power loss, not just a process crash).
///
/// Two processes may open a new file at once (`countersign serve &` and then `countersign
/// token create --db`, as the README does). The switch to WAL takes an exclusive lock that
/// SQLite does not wait for, so the later process can fail with "database is locked"; each
/// such failure means the other side made progress, and a short backoff lets it finish.
fn open_writer(path: &Path, check_integrity: bool) -> StoreResult<Connection> {
    let mut backoff = Duration::from_millis(10);
    let mut attempts_left = 8;
    loop {
        match try_open_writer(path, check_integrity) {
            Ok(conn) => return Ok(conn),
            Err(error) if is_busy(&error) && attempts_left > 1 => {}
            Err(error) => return Err(start_error(path, error)),
        }
        attempts_left -= 1;
        std::thread::sleep(backoff);
        backoff *= 2;
    }
}

/// A storage failure while opening, said as what the operator has to fix.
fn start_error(path: &Path, error: StoreError) -> StoreError {
    let shown = path.display();
    match error {
        StoreError::Unavailable(reason) | StoreError::Busy(reason) => StoreError::Open {
            path: shown.to_string(),
            reason: format!(
                "{reason}; countersign must be able to write the file and create its -wal and -shm files beside it"
            ),
        },
        StoreError::Damaged(damage) => StoreError::Damaged(format!(
            "{shown}: {damage}; restore it from a backup, or salvage what is readable with `sqlite3 {shown} .recover`"
        )),
        other => other,
    }
}

/// Opens, checks and migrates the writer's connection: refuses a file it could not write
/// (SQLite would quietly open it read-only and fail every write later), a damaged file
/// (`quick_check`), and proves writes commit with a probe write.
fn try_open_writer(path: &Path, check_integrity: bool) -> StoreResult<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(path, e))?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(StoreError::Unavailable(
            "the file is read-only for this process (its permissions or owner, an immutable attribute, or a read-only mount)".into(),
        ));
    }
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Migrate(format!(
            "the database refused write-ahead logging (journal mode {mode:?})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Statement journals (one per savepoint, spilled to a file past 64 KiB) and temporary
    // tables stay in memory: the writer never needs a new file descriptor after it opened,
    // so a process out of descriptors still commits.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if check_integrity {
        let problems = verify::integrity(&conn);
        if problems != ["ok"] {
            return Err(StoreError::Damaged(format!(
                "SQLite's quick_check found: {}",
                problems.join("; ")
            )));
        }
    }
    migrations::migrate(&mut conn)?;
    conn.execute(
        "INSERT INTO write_probe (id, at) VALUES (1, ?) \
         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        [rows::millis(chrono::Utc::now())],
    )?;
    health::check_headroom(path)?;
    Ok(conn)
}

/// Why a file could not be opened, in words: rusqlite's own message repeats the path.
fn open_error(path: &Path, error: rusqlite::Error) -> StoreError {
    let reason = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::CannotOpen if path.is_dir() => "it is a directory".to_owned(),
            ErrorCode::CannotOpen
                if !path.exists()
                    && path
                        .parent()
                        .is_some_and(|dir| dir.as_os_str().is_empty() || dir.is_dir()) =>
            {
                "no such file, and it cannot be created there (is the directory writable?)"
                    .to_owned()
            }
            ErrorCode::CannotOpen if !path.exists() => {
                "no such file, or its directory does not exist".to_owned()
            }
            ErrorCode::CannotOpen => "the file or its directory cannot be opened".to_owned(),
            ErrorCode::PermissionDenied => "permission denied".to_owned(),
            _ => error.to_string(),
        },
        _ => error.to_string(),
    };
    StoreError::Open {
        path: path.display().to_string(),
        reason,
    }
}

/// A read-only connection. Never creates the file.
fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Another read-only connection to the database this store already has open. A failure
/// here is the process's, not the file's (the writer holds it open): most often no file
/// descriptor is left. It is [`StoreError::Unavailable`], for the caller to retry.
fn open_another_reader(path: &Path) -> StoreResult<Connection> {
    open_reader(path).map_err(|error| {
        // SQLite says only "unable to open database file"; the OS says why.
        let why = match std::fs::File::open(path) {
            Err(os) => os.to_string(),
            Ok(_) => error.to_string(),
        };
        StoreError::Unavailable(format!("cannot open a read connection: {why}"))
    })
}

/// Read-only connections for reuse: a query takes an idle one or opens one, and gives it
/// back after.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
    closed: AtomicBool,
    health: Arc<Health>,
}

impl Readers {
    fn with<T>(&self, query: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let idle = self.lock().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => open_another_reader(&self.path)?,
        };
        let result = query(&mut conn);
        if let Err(error) = &result {
            // A damaged page found by a read is damage all the same.
            self.health.failed(error);
        }
        let mut idle = self.lock();
        if idle.len() < self.keep && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while the list was held cannot leave it inconsistent: it is a plain list.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.lock().clear();
    }
}

/// Verifies the log in one read transaction (one snapshot), on the blocking pool. `open` is
/// [`open_reader`] for a file nobody else has open, [`open_another_reader`] for this store's
/// own.
async fn verify_on(
    path: PathBuf,
    open: fn(&Path) -> StoreResult<Connection>,
    claims: Vec<CheckpointClaim>,
) -> StoreResult<AuditReport> {
    tokio::task::spawn_blocking(move || {
        let mut conn = open(&path)?;
        // The state pass sorts (action id, seq) pairs, ~40 bytes an entry: on disk past a
        // few megabytes, so that verifying a log of millions stays a few MiB of memory.
        conn.pragma_update(None, "temp_store", "FILE")?;
        let tx = conn.transaction()?;
        verify::verify(&tx, claims)
    })
    .await
    .map_err(|e| StoreError::Stopped(format!("audit verification stopped: {e}")))?
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`, and starts its
    /// writer thread. Must be called inside a tokio runtime.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let writer_path = path.clone();
        let check_integrity = options.check_integrity;
        let conn = tokio::task::spawn_blocking(move || open_writer(&writer_path, check_integrity))
            .await
            .map_err(|e| StoreError::Stopped(format!("opening the database stopped: {e}")))??;
        let (commands, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let (changes, _) = broadcast::channel(options.change_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let health = Arc::new(Health::default());
        health.wrote();
        let outbox = Arc::new(OutboxSignal::default());
        let writer = Writer {
            outbox: outbox.clone(),
            conn,
            commands: receiver,
            changes: changes.clone(),
            counters: counters.clone(),
            health: health.clone(),
            max_batch: options.max_batch.max(1),
        };
        std::thread::Builder::new()
            .name("countersign-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Stopped(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            commands,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
                keep: options.read_connections.max(1) as usize,
                closed: AtomicBool::new(false),
                health: health.clone(),
            }),
            changes,
            revocations: broadcast::channel(REVOCATION_CAPACITY).0,
            counters,
            health,
            router: RwLock::new(None),
            outbox,
        })
    }

    /// What a write job emits events through: the router in force now.
    fn emitter(&self) -> Emitter {
        Emitter {
            router: self
                .router
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .as_ref()
                .map(|r| r.0.clone()),
            signal: self.outbox.clone(),
        }
    }

    /// Finishes queued writes and closes the database. Later calls fail with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        // Readers first: the last connection to close checkpoints the write-ahead log into
        // the file and removes it, which only a writing connection can do, so a cleanly
        // stopped server leaves one file behind.
        self.readers.close();
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Runs `work` in the writer's next transaction and answers with its result once that
    /// committed. `changed` names the actions the result changed, for watchers.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection, &mut Head) -> StoreResult<T> + Send + 'static,
        changed: fn(&T) -> Vec<ActionRecord>,
    ) -> StoreResult<T> {
        // Writing on into a damaged file could spread the damage: refused until restart.
        if let Some(damage) = self.health.damage() {
            return Err(StoreError::Damaged(damage));
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Run(Job::new(work, changed, reply)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// A write that changes one action and answers with it.
    async fn write_action(
        &self,
        work: impl FnOnce(&Connection, &mut Head) -> StoreResult<ActionRecord> + Send + 'static,
    ) -> StoreResult<ActionRecord> {
        self.write(work, |record| vec![record.clone()]).await
    }
}

/// For writes that change no action.
fn no_action<T>(_: &T) -> Vec<ActionRecord> {
    Vec::new()
}

impl SqliteStore {
    /// A read too long for the caller's task (statistics, export pages): on the blocking
    /// pool, with a reused read connection.
    async fn read_blocking<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(query))
            .await
            .map_err(|e| StoreError::Stopped(format!("a read stopped: {e}")))?
    }

    fn is_open(&self) -> bool {
        !self.commands.is_closed() && !self.readers.closed.load(Ordering::Acquire)
    }
}

/// Verifies the audit log of the database file at `path` directly, without a server
/// (`countersign audit verify --db`), against `claims` (checkpoints whose signatures the
/// caller checked). Opens the file read-only and never creates it.
pub async fn verify_file(
    path: impl AsRef<Path>,
    claims: Vec<CheckpointClaim>,
) -> StoreResult<AuditReport> {
    verify_on(path.as_ref().to_path_buf(), open_reader, claims).await
}

/// The latest checkpoint stored in the database file at `path`, read-only
/// (`countersign audit checkpoint --db`).
pub async fn latest_checkpoint_in_file(
    path: impl AsRef<Path>,
) -> StoreResult<Option<StoredCheckpoint>> {
    let path = path.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let conn = open_reader(&path)?;
        if migrations::user_version(&conn)? < 3 {
            // A file from before checkpoints existed has none.
            return Ok(None);
        }
        checkpoints::latest(&conn)
    })
    .await
    .map_err(|e| StoreError::Stopped(format!("reading the checkpoint stopped: {e}")))?
}

/// Creates or migrates the database file at `path` (`countersign migrate`); returns the
/// versions applied now and the version it is at.
pub async fn migrate_file(path: impl AsRef<Path>) -> StoreResult<(Vec<i32>, i32)> {
    let path = path.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let before = if path.is_file() {
            migrations::user_version(&open_reader(&path)?)?
        } else {
            0
        };
        drop(open_writer(&path, false)?);
        let latest = migrations::LATEST;
        let applied = (before + 1..=latest).map(|v| v as i32).collect();
        Ok((applied, latest as i32))
    })
    .await
    .map_err(|e| StoreError::Stopped(format!("migrating the database stopped: {e}")))?
}

/// How long a health probe may wait for the writer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Store for SqliteStore {
    fn submit(&self, action: NewAction) -> BoxFuture<'_, StoreResult<Submitted>> {
        let out = self.emitter();
        Box::pin(self.write(
            move |conn, head| ops::submit(conn, head, &out, action),
            |submitted: &Submitted| {
                if submitted.replayed {
                    Vec::new()
                } else {
                    vec![submitted.record.clone()]
                }
            },
        ))
    }

    fn replay<'a>(
        &'a self,
        agent: &'a str,
        idempotency: &'a Idempotency,
    ) -> BoxFuture<'a, StoreResult<Option<Submitted>>> {
        Box::pin(async move {
            self.readers
                .with(|c| ops::find_replay(c, agent, idempotency))
        })
    }

    fn action<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>> {
        Box::pin(async move { self.readers.with(|c| read::action(c, id)) })
    }

    fn queue(&self, query: QueueQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(async move { self.readers.with(|c| read::queue(c, &query)) })
    }

    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(async move { self.readers.with(|c| read::actions(c, &query)) })
    }

    fn decide(
        &self,
        id: String,
        reviewer: Actor,
        request: DecisionRequest,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        let out = self.emitter();
        Box::pin(self.write_action(move |conn, head| {
            ops::decide(conn, head, &out, &id, &reviewer, request, now)
        }))
    }

    fn cancel(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        let out = self.emitter();
        Box::pin(
            self.write_action(move |conn, head| ops::cancel(conn, head, &out, &id, &actor, now)),
        )
    }

    fn record_outcome(
        &self,
        id: String,
        actor: Actor,
        outcome: NewOutcome,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        Box::pin(self.write_action(move |conn, head| {
            ops::record_outcome(conn, head, &id, &actor, outcome, now)
        }))
    }

    fn next_deadline(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move { self.readers.with(|c| read::next_deadline(c)) })
    }

    fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<DueDeadline>>> {
        Box::pin(async move { self.readers.with(|c| read::due_deadlines(c, now, limit)) })
    }

    fn apply_sla(
        &self,
        id: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Option<ActionRecord>>> {
        let out = self.emitter();
        Box::pin(self.write(
            move |conn, head| ops::apply_sla(conn, head, &out, &id, now),
            |record: &Option<ActionRecord>| record.iter().cloned().collect(),
        ))
    }

    fn sweep_sla(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>> {
        let out = self.emitter();
        Box::pin(self.write(
            move |conn, head| ops::sweep_sla(conn, head, &out, now, limit),
            |records: &Vec<ActionRecord>| records.clone(),
        ))
    }

    fn reviews(&self, query: ReviewQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(async move { self.readers.with(|c| read::reviews(c, &query)) })
    }

    fn review(
        &self,
        id: String,
        reviewer: Actor,
        review: NewReview,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        Box::pin(
            self.write_action(move |conn, head| {
                ops::review(conn, head, &id, &reviewer, review, now)
            }),
        )
    }

    fn append_audit(&self, entry: NewAuditEntry) -> BoxFuture<'_, StoreResult<AuditEntry>> {
        Box::pin(self.write(
            move |conn, head| admin_ops::append_audit(conn, head, entry),
            no_action,
        ))
    }

    fn audit(
        &self,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>> {
        Box::pin(async move {
            self.readers
                .with(|c| read::audit(c, after, limit, max_bytes))
        })
    }

    fn verify_audit_against(
        &self,
        claims: Vec<CheckpointClaim>,
    ) -> BoxFuture<'_, StoreResult<AuditReport>> {
        Box::pin(async move {
            let report = verify_on(self.readers.path.clone(), open_another_reader, claims).await?;
            if let Some(damage) = &report.damage {
                self.health
                    .failed(&StoreError::Damaged(damage.message.clone()));
            }
            Ok(report)
        })
    }

    fn audit_head(&self) -> BoxFuture<'_, StoreResult<AuditHead>> {
        Box::pin(async move { self.readers.with(|c| checkpoints::head(c)) })
    }

    fn add_checkpoint(
        &self,
        checkpoint: NewCheckpoint,
    ) -> BoxFuture<'_, StoreResult<(StoredCheckpoint, bool)>> {
        Box::pin(self.write(move |conn, _| checkpoints::add(conn, checkpoint), no_action))
    }

    fn latest_checkpoint(&self) -> BoxFuture<'_, StoreResult<Option<StoredCheckpoint>>> {
        Box::pin(async move { self.readers.with(|c| checkpoints::latest(c)) })
    }

    fn health(&self) -> BoxFuture<'_, StoreHealth> {
        Box::pin(async move {
            if !self.is_open() {
                return StoreHealth::Unavailable("the store was closed".into());
            }
            if let Some(_probing) = self.health.start_probe() {
                let now = chrono::Utc::now();
                let probe = self.write(move |conn, _| health::probe(conn, now), no_action);
                match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => self.health.failed(&error),
                    Err(_) => {
                        return StoreHealth::Unavailable(format!(
                            "a probe write did not finish within {} s",
                            PROBE_TIMEOUT.as_secs()
                        ));
                    }
                }
            }
            self.health.current()
        })
    }

    fn create_token(&self, token: NewToken) -> BoxFuture<'_, StoreResult<CreatedToken>> {
        Box::pin(self.write(
            move |conn, head| admin_ops::create_token(conn, head, token),
            no_action,
        ))
    }

    fn authenticate<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<Token>>> {
        Box::pin(async move { self.readers.with(|c| read::authenticate(c, secret)) })
    }

    fn tokens(&self) -> BoxFuture<'_, StoreResult<Vec<Token>>> {
        Box::pin(async move { self.readers.with(|c| read::tokens(c)) })
    }

    fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Token>> {
        Box::pin(async move {
            let token = self
                .write(
                    move |conn, head| admin_ops::revoke_token(conn, head, &id, &actor, now),
                    no_action,
                )
                .await?;
            // Committed: whoever waits on this token's behalf may stop now. Sent again for a
            // token that was already revoked, which costs a listener nothing.
            let _ = self.revocations.send(token.id.clone());
            Ok(token)
        })
    }

    fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.revocations.subscribe()
    }

    fn revoked_among<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move { self.readers.with(|c| read::revoked_among(c, ids)) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ActionRecord>> {
        self.changes.subscribe()
    }

    fn commit_stats(&self) -> CommitStats {
        self.counters.snapshot()
    }

    fn is_writable(&self) -> bool {
        self.is_open() && self.health.current() == StoreHealth::Ok
    }

    fn create_grant(&self, grant: NewGrant) -> BoxFuture<'_, StoreResult<GrantRecord>> {
        Box::pin(self.write(
            move |conn, head| grant_ops::create_grant(conn, head, grant),
            no_action,
        ))
    }

    fn grants(&self, query: GrantQuery) -> BoxFuture<'_, StoreResult<Vec<GrantRecord>>> {
        Box::pin(async move { self.readers.with(|c| grant_ops::grants(c, &query)) })
    }

    fn grant<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<GrantRecord>>> {
        Box::pin(async move { self.readers.with(|c| grant_ops::grant(c, id)) })
    }

    fn revoke_grant(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<GrantRecord>> {
        Box::pin(self.write(
            move |conn, head| grant_ops::revoke_grant(conn, head, &id, &actor, now),
            no_action,
        ))
    }

    fn create_user(&self, user: NewUser) -> BoxFuture<'_, StoreResult<User>> {
        Box::pin(self.write(
            move |conn, head| people_ops::create_user(conn, head, user),
            no_action,
        ))
    }

    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<User>>> {
        Box::pin(async move { self.readers.with(|c| people_ops::user(c, name)) })
    }

    fn users(&self) -> BoxFuture<'_, StoreResult<Vec<User>>> {
        Box::pin(async move { self.readers.with(|c| people_ops::users(c)) })
    }

    fn change_password(
        &self,
        name: Name,
        password_hash: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<User>> {
        Box::pin(self.write(
            move |conn, head| {
                people_ops::change_password(conn, head, &name, &password_hash, &actor, now)
            },
            no_action,
        ))
    }

    fn disable_user(
        &self,
        name: Name,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<User>> {
        Box::pin(async move {
            let (user, revoked) = self
                .write(
                    move |conn, head| people_ops::disable_user(conn, head, &name, &actor, now),
                    no_action,
                )
                .await?;
            // Committed: the person's open waits end now, as for any revocation.
            for id in revoked {
                let _ = self.revocations.send(id);
            }
            Ok(user)
        })
    }

    fn start_session(&self, session: NewSession) -> BoxFuture<'_, StoreResult<StartedSession>> {
        Box::pin(self.write(
            move |conn, head| people_ops::start_session(conn, head, session),
            no_action,
        ))
    }

    fn signed_in<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<SignedIn>>> {
        Box::pin(async move { self.readers.with(|c| people_ops::signed_in(c, secret)) })
    }

    fn touch_session(
        &self,
        id: String,
        now: DateTime<Utc>,
        reauthenticated: bool,
    ) -> BoxFuture<'_, StoreResult<Session>> {
        Box::pin(self.write(
            move |conn, _| people_ops::touch_session(conn, &id, now, reauthenticated),
            no_action,
        ))
    }

    fn end_session(&self, id: String, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<Session>> {
        Box::pin(self.write(
            move |conn, head| people_ops::end_session(conn, head, &id, now),
            no_action,
        ))
    }

    fn pending(
        &self,
        query: PendingQuery,
    ) -> BoxFuture<'_, StoreResult<PendingPage<ActionRecord>>> {
        Box::pin(async move { self.readers.with(|c| ui_read::pending(c, &query)) })
    }

    fn pending_counts(&self) -> BoxFuture<'_, StoreResult<TierCounts>> {
        Box::pin(async move { self.readers.with(|c| ui_read::pending_counts(c)) })
    }

    fn last_approved<'a>(
        &'a self,
        query: LastApproved<'a>,
    ) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>> {
        Box::pin(async move { self.readers.with(|c| ui_read::last_approved(c, &query)) })
    }

    fn audit_window(&self, filter: AuditFilter) -> BoxFuture<'_, StoreResult<AuditWindow>> {
        Box::pin(async move { self.readers.with(|c| ui_read::audit_window(c, &filter)) })
    }

    fn scan_history(
        &self,
        since: DateTime<Utc>,
        visit: HistoryVisitor,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.read_blocking(move |conn| {
            // One snapshot: a replay sees the history as it was when it started.
            let tx = conn.transaction()?;
            history_ops::scan(&tx, since, visit)
        }))
    }

    fn evidence(&self, since: DateTime<Utc>) -> BoxFuture<'_, StoreResult<Vec<Evidence>>> {
        Box::pin(self.read_blocking(move |conn| history_ops::evidence(conn, since)))
    }

    fn corrected_args<'a>(
        &'a self,
        key: &'a GroupKey,
        since: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<serde_json::Map<String, serde_json::Value>>>> {
        let key = key.clone();
        Box::pin(
            self.read_blocking(move |conn| history_ops::corrected_args(conn, &key, since, limit)),
        )
    }

    fn evidence_below<'a>(
        &'a self,
        key: &'a GroupKey,
        since: DateTime<Utc>,
        arg: &'a str,
        below: f64,
    ) -> BoxFuture<'a, StoreResult<Evidence>> {
        let key = key.clone();
        let arg = arg.to_owned();
        Box::pin(
            self.read_blocking(move |conn| {
                history_ops::evidence_below(conn, &key, since, &arg, below)
            }),
        )
    }

    fn record_policy_load(
        &self,
        load: PolicyLoad,
    ) -> BoxFuture<'_, StoreResult<Option<AuditEntry>>> {
        Box::pin(self.write(
            move |conn, head| history_ops::record_policy_load(conn, head, load),
            no_action,
        ))
    }

    fn sync_regressions(
        &self,
        policy_hash: String,
        holding: Vec<NewRegression>,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>> {
        let out = self.emitter();
        Box::pin(self.write(
            move |conn, head| {
                history_ops::sync_regressions(conn, head, &out, &policy_hash, holding, at)
            },
            no_action,
        ))
    }

    fn active_regressions(&self) -> BoxFuture<'_, StoreResult<Vec<ActiveRegression>>> {
        Box::pin(async move { self.readers.with(|c| history_ops::active(c)) })
    }

    fn stats(&self, window: Window, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<StatsData>> {
        Box::pin(self.read_blocking(move |c| stats::window(c, &window, now)))
    }

    fn stats_series(&self, query: SeriesQuery) -> BoxFuture<'_, StoreResult<Vec<SeriesPoint>>> {
        Box::pin(self.read_blocking(move |c| stats::series(c, &query)))
    }

    fn stats_totals(&self) -> BoxFuture<'_, StoreResult<StatsTotals>> {
        Box::pin(self.read_blocking(stats::totals))
    }

    fn export(&self, query: ExportQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(self.read_blocking(move |c| export::export(c, &query)))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(SqliteStore::close(self))
    }
}

impl Notifications for SqliteStore {
    fn set_router(&self, router: Arc<dyn EventRouter>) {
        *self
            .router
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Router(router));
    }

    fn outbox_signal(&self) -> Arc<OutboxSignal> {
        self.outbox.clone()
    }

    fn pending_lanes(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(async move { self.readers.with(|c| outbox_ops::pending_lanes(c)) })
    }

    fn due_deliveries(
        &self,
        lane: String,
        now: DateTime<Utc>,
        limit: u32,
        skip: Vec<u64>,
    ) -> BoxFuture<'_, StoreResult<Vec<Delivery>>> {
        Box::pin(async move {
            self.readers
                .with(|c| outbox_ops::due(c, &lane, now, limit, &skip))
        })
    }

    fn lane_state(
        &self,
        lane: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<(bool, Option<DateTime<Utc>>)>> {
        Box::pin(async move { self.readers.with(|c| outbox_ops::lane_state(c, &lane, now)) })
    }

    fn finish_deliveries(
        &self,
        tried: Vec<Tried>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(self.write(
            move |conn, head| outbox_ops::finish(conn, head, tried, now),
            no_action,
        ))
    }

    fn deliveries(&self, query: DeliveryQuery) -> BoxFuture<'_, StoreResult<Page<Delivery>>> {
        Box::pin(async move { self.readers.with(|c| outbox_ops::list(c, &query)) })
    }

    fn retry_delivery(
        &self,
        id: u64,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Delivery>> {
        let signal = self.outbox.clone();
        Box::pin(self.write(
            move |conn, head| outbox_ops::retry(conn, head, &signal, id, &actor, now),
            no_action,
        ))
    }

    fn link_slack(
        &self,
        slack_user: String,
        name: Name,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<SlackLink>> {
        Box::pin(self.write(
            move |conn, head| outbox_ops::link_slack(conn, head, &slack_user, &name, &actor, now),
            no_action,
        ))
    }

    fn unlink_slack(
        &self,
        slack_user: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<SlackLink>> {
        Box::pin(self.write(
            move |conn, head| outbox_ops::unlink_slack(conn, head, &slack_user, &actor, now),
            no_action,
        ))
    }

    fn slack_links(&self) -> BoxFuture<'_, StoreResult<Vec<SlackLink>>> {
        Box::pin(async move { self.readers.with(|c| outbox_ops::slack_links(c)) })
    }

    fn slack_person<'a>(
        &'a self,
        slack_user: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Person>>> {
        Box::pin(async move {
            self.readers
                .with(|c| outbox_ops::slack_person(c, slack_user))
        })
    }
}
