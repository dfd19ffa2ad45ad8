//! The PostgreSQL backend: several `countersign serve` instances on one database.
//!
//! Each write is its own transaction on a pooled connection, and PostgreSQL commits
//! concurrent transactions together (one WAL flush for many), so there is no writer thread
//! and no process-local lock: every race — two reviewers on one action, one idempotency key
//! twice, two instances sweeping the same deadlines, two token creations for one name — is
//! decided in the database by row locks, unique keys and advisory locks (see `ops` and
//! `admin_ops`). Writes run on a task of their own, so a caller that goes away (a dropped
//! HTTP request) never leaves a transaction half-done on a pooled connection.
//!
//! Three background tasks per instance: the linker (`chain`) that gives committed audit
//! entries their place in the hash chain; the notifier that tells other instances about
//! new submissions; the listener (`listen`) that brings other instances' changes to this
//! instance's watchers.
//!
//! Durability: `synchronous_commit = on` is set on every connection, so a commit returns
//! only once its WAL is flushed; an answer is sent only after the commit returned.

mod admin_ops;
mod chain;
pub(crate) mod errors;
mod grant_ops;
mod history_ops;
mod listen;
mod migrations;
mod ops;
mod outbox_ops;
mod pool;
mod read;
mod rows;
mod stats;
mod verify;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::graduation::{Evidence, GroupKey};
use countersign_core::lifecycle::DecisionRequest;
use countersign_core::name::Name;
use tokio::sync::{Notify, broadcast, watch};

use self::pool::{Conn, Pool};
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
use crate::sqlite::health::Health;
use crate::stats_query::{ExportQuery, SeriesPoint, SeriesQuery, StatsTotals};
use crate::token::{CreatedToken, NewToken, Token};
use crate::ui_query::{
    AuditFilter, AuditWindow, LastApproved, PendingPage, PendingQuery, TierCounts,
};
use crate::{BoxFuture, Store, StoreResult};
use countersign_core::stats::{StatsData, Window};

pub use self::errors::redact as redact_url;
pub use self::outbox_ops::DELIVERY_LEASE;

/// Tuning of a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The most connections this instance opens (the listener's comes on top).
    pub pool_size: usize,
    /// The longest one statement may run before PostgreSQL cancels it (the request then
    /// answers `503`).
    pub statement_timeout: Duration,
    /// How long a request waits for a free connection before it answers `503`.
    pub acquire_timeout: Duration,
    /// Apply pending migrations when opening; otherwise refuse a database whose schema is
    /// not this build's.
    pub migrate: bool,
    /// How many changes a slow subscriber may fall behind before it lags.
    pub change_capacity: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            migrate: true,
            change_capacity: 4096,
        }
    }
}

/// Whether a database URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// What the store's tasks share.
pub(crate) struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    /// This instance's name in notifications, so that it skips its own.
    instance: String,
    changes: broadcast::Sender<Arc<ActionRecord>>,
    revocations: broadcast::Sender<String>,
    health: Health,
    closed: AtomicBool,
    /// Whether the listener is connected and listening now.
    listening: AtomicBool,
    /// Wakes the linker: entries were committed.
    link_wake: Notify,
    /// Submissions committed and not yet announced to other instances.
    announce: Mutex<Vec<String>>,
    announce_wake: Notify,
    commits: AtomicU64,
    refused: AtomicU64,
    /// Where events go (installed by the server; none: nowhere).
    router: RwLock<Option<Arc<dyn EventRouter>>>,
    /// Tells this instance's dispatcher which lanes got deliveries.
    outbox: Arc<OutboxSignal>,
}

/// A store on a PostgreSQL database, shared with other instances.
pub struct PostgresStore {
    inner: Arc<Inner>,
    /// Dropped with the store: ends its background tasks.
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.inner.pool.url)
            .finish()
    }
}

/// Parses a URL into a connection configuration with the store's session settings.
fn config(url: &str, options: &PostgresOptions) -> StoreResult<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Open {
        path: errors::redact(url),
        reason: format!(
            "not a valid PostgreSQL URL ({e}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ),
    })?;
    let timeout = options.statement_timeout.as_millis().max(1);
    // Durability is stated, not inherited from the server's configuration: a commit returns
    // once its WAL is flushed. Statements and idle transactions are bounded so that a stuck
    // client never holds row locks for long.
    config.options(format!(
        "-c synchronous_commit=on -c statement_timeout={timeout} \
         -c idle_in_transaction_session_timeout={} -c lock_timeout={timeout}",
        timeout * 2
    ));
    config.application_name("countersign");
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    Ok(config)
}

/// Connects once and checks or migrates the schema.
async fn prepare(url: &str, config: &tokio_postgres::Config, migrate: bool) -> StoreResult<Conn> {
    let mut conn = Conn::open(config, url).await?;
    if migrate {
        migrations::migrate(&mut conn).await?;
    } else {
        migrations::check(&mut conn).await?;
    }
    Ok(conn)
}

/// Applies pending migrations to the database at `url`; returns the versions applied now
/// and the version it is at (`countersign migrate`).
pub async fn migrate_database(url: &str) -> StoreResult<(Vec<i32>, i32)> {
    let config = config(url, &PostgresOptions::default())?;
    let mut conn = Conn::open(&config, url).await?;
    let applied = migrations::migrate(&mut conn).await?;
    Ok((applied, migrations::LATEST))
}

/// Verifies the audit log of the database at `url` without writing anything (entries not
/// linked yet are replayed but not counted): `countersign audit verify --db`.
pub async fn verify_postgres(url: &str, claims: Vec<CheckpointClaim>) -> StoreResult<AuditReport> {
    let config = config(url, &PostgresOptions::default())?;
    let mut conn = prepare(url, &config, false).await?;
    verify::verify(&mut conn, claims).await
}

/// The latest checkpoint stored in the database at `url`, read-only.
pub async fn latest_checkpoint_postgres(url: &str) -> StoreResult<Option<StoredCheckpoint>> {
    let config = config(url, &PostgresOptions::default())?;
    let mut conn = prepare(url, &config, false).await?;
    verify::latest_checkpoint(&mut conn).await
}

impl PostgresStore {
    /// Connects to the database at `url`, migrates it (or checks its schema, with
    /// `migrate` off) and starts the store's background tasks. Must be called inside a
    /// tokio runtime.
    pub async fn open(url: &str, options: PostgresOptions) -> StoreResult<PostgresStore> {
        let config = config(url, &options)?;
        let first = prepare(url, &config, options.migrate).await?;
        let pool = Pool::new(
            config.clone(),
            errors::redact(url),
            options.pool_size,
            options.acquire_timeout,
        );
        drop(first);
        let inner = Arc::new(Inner {
            pool,
            config,
            instance: crate::ids::base64url(&crate::ids::random_bytes::<9>()),
            changes: broadcast::channel(options.change_capacity.max(1)).0,
            revocations: broadcast::channel(64).0,
            health: Health::default(),
            closed: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            link_wake: Notify::new(),
            announce: Mutex::new(Vec::new()),
            announce_wake: Notify::new(),
            commits: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            router: RwLock::new(None),
            outbox: Arc::new(OutboxSignal::default()),
        });
        inner.health.wrote();
        let (shutdown, stopped) = watch::channel(false);
        tokio::spawn(linker(Arc::downgrade(&inner), stopped.clone()));
        tokio::spawn(announcer(Arc::downgrade(&inner), stopped.clone()));
        tokio::spawn(outbox_watch(Arc::downgrade(&inner), stopped.clone()));
        tokio::spawn(listen::run(Arc::downgrade(&inner), stopped));
        Ok(PostgresStore {
            inner,
            _shutdown: shutdown,
        })
    }

    /// Whether this instance hears other instances' changes now (its listener is
    /// connected).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Links every audit entry committed so far into the chain (the linker does this on its
    /// own, soon after each write).
    pub async fn link_audit(&self) -> StoreResult<u64> {
        let inner = self.inner.clone();
        spawn(async move { chain::link(&mut *inner.pool.get().await?).await }).await
    }

    /// A read on a pooled connection.
    async fn read<T>(&self, work: impl AsyncFnOnce(&mut Conn) -> StoreResult<T>) -> StoreResult<T> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let result = async {
            let mut conn = self.inner.pool.get().await?;
            work(&mut conn).await
        }
        .await;
        if let Err(error) = &result {
            self.inner.health.failed(error);
        }
        result
    }
}

/// Runs `work` on a task of its own: a caller that stops waiting does not stop it halfway.
async fn spawn<T: Send + 'static>(
    work: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    tokio::spawn(work)
        .await
        .map_err(|e| StoreError::Stopped(format!("a database task stopped: {e}")))?
}

impl Inner {
    /// What a write emits events through: the router in force now.
    fn emitter(&self) -> outbox_ops::Emitter {
        outbox_ops::Emitter::new(
            self.router
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }

    /// Runs an action write that may emit events, publishing their lanes once it
    /// committed.
    async fn emitting<T>(
        &self,
        work: impl AsyncFnOnce(&mut Conn, &outbox_ops::Emitter) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let out = self.emitter();
        let mut conn = self.pool.get().await?;
        let result = work(&mut conn, &out).await;
        if result.is_ok() {
            out.publish(&self.outbox);
        }
        result
    }

    /// Bookkeeping after a write: health, counters, the linker's wake-up, and the changed
    /// actions broadcast to this instance's subscribers.
    fn wrote<T>(&self, result: &StoreResult<T>, changed: impl FnOnce(&T) -> Vec<ActionRecord>) {
        match result {
            Ok(value) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.health.wrote();
                self.link_wake.notify_one();
                if self.changes.receiver_count() > 0 {
                    for record in changed(value) {
                        let _ = self.changes.send(Arc::new(record));
                    }
                }
            }
            Err(error) => {
                if error.is_refusal() {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
                self.health.failed(error);
            }
        }
    }
}

/// Runs a write on its own task with a pooled connection, then does the bookkeeping.
fn write<T, F>(
    store: &PostgresStore,
    work: impl FnOnce(Arc<Inner>) -> F + Send + 'static,
    changed: fn(&T) -> Vec<ActionRecord>,
) -> BoxFuture<'_, StoreResult<T>>
where
    T: Send + 'static,
    F: Future<Output = StoreResult<T>> + Send + 'static,
{
    let inner = store.inner.clone();
    Box::pin(async move {
        if inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let task_inner = inner.clone();
        spawn(async move {
            let result = work(task_inner.clone()).await;
            task_inner.wrote(&result, changed);
            result
        })
        .await
    })
}

fn one(record: &ActionRecord) -> Vec<ActionRecord> {
    vec![record.clone()]
}

fn none<T>(_: &T) -> Vec<ActionRecord> {
    Vec::new()
}

/// How often an instance looks for deliveries another instance left (it stopped, or was
/// killed, with deliveries pending or claimed): their lanes are handed to this instance's
/// dispatcher, which claims what is due.
const OUTBOX_WATCH: Duration = Duration::from_secs(5);

/// Hands the lanes with pending deliveries to this instance's dispatcher every
/// [`OUTBOX_WATCH`], so that no delivery waits for the instance that wrote it.
async fn outbox_watch(store: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(OUTBOX_WATCH) => {}
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        if inner.closed.load(Ordering::Acquire) || inner.router.read().map_or(true, |r| r.is_none())
        {
            continue;
        }
        let lanes = async { outbox_ops::pending_lanes(&mut *inner.pool.get().await?).await };
        match lanes.await {
            Ok(lanes) => inner.outbox.publish(lanes),
            Err(error) => tracing::debug!(%error, "cannot look for pending deliveries"),
        }
    }
}

/// Links committed entries whenever writes were made here, and every second for entries
/// of instances that stopped before linking theirs.
async fn linker(store: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let linked = match inner.pool.get().await {
            Ok(mut conn) => chain::link(&mut conn).await,
            Err(error) => Err(error),
        };
        if let Err(error) = &linked
            && !inner.closed.load(Ordering::Acquire)
        {
            tracing::warn!(%error, "cannot link audit entries now; retrying");
        }
        let wake = async {
            let woken = inner.link_wake.notified();
            tokio::time::timeout(Duration::from_secs(1), woken)
                .await
                .ok();
        };
        tokio::select! {
            _ = shutdown.changed() => return,
            () = wake => {}
        }
    }
}

/// Tells other instances about new submissions, after they committed, many per
/// notification. (Other writes notify inside their own transaction; a submission does not,
/// because PostgreSQL serialises the commits of notifying transactions, which would cap
/// submissions at the disk's flush rate.)
async fn announcer(store: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let ids = std::mem::take(&mut *inner.announce.lock().unwrap_or_else(|p| p.into_inner()));
        if !ids.is_empty() {
            let sent = async {
                let mut conn = inner.pool.get().await?;
                for payload in ops::payloads(&inner.instance, ids.iter().map(String::as_str)) {
                    conn.execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &payload])
                        .await?;
                }
                Ok::<_, StoreError>(())
            }
            .await;
            if let Err(error) = sent {
                tracing::debug!(%error, "cannot announce submissions to other instances");
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = inner.announce_wake.notified() => {}
        }
    }
}

/// How long a health probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Store for PostgresStore {
    fn submit(&self, action: NewAction) -> BoxFuture<'_, StoreResult<Submitted>> {
        write(
            self,
            move |inner| async move {
                let submitted = inner
                    .emitting(async |c, out| ops::submit(c, out, action).await)
                    .await?;
                if !submitted.replayed {
                    inner
                        .announce
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(submitted.record.id.clone());
                    inner.announce_wake.notify_one();
                }
                Ok(submitted)
            },
            |submitted: &Submitted| {
                if submitted.replayed {
                    Vec::new()
                } else {
                    vec![submitted.record.clone()]
                }
            },
        )
    }

    fn replay<'a>(
        &'a self,
        agent: &'a str,
        idempotency: &'a Idempotency,
    ) -> BoxFuture<'a, StoreResult<Option<Submitted>>> {
        Box::pin(self.read(async |c| ops::find_replay(c, agent, idempotency).await))
    }

    fn action<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>> {
        Box::pin(self.read(async |c| ops::action(c, id).await))
    }

    fn queue(&self, query: QueueQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(self.read(async move |c| read::queue(c, &query).await))
    }

    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(self.read(async move |c| read::actions(c, &query).await))
    }

    fn decide(
        &self,
        id: String,
        reviewer: Actor,
        request: DecisionRequest,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        write(
            self,
            move |inner| async move {
                let instance = inner.instance.clone();
                inner
                    .emitting(async |c, out| {
                        ops::decide(c, &instance, out, &id, &reviewer, request, now).await
                    })
                    .await
            },
            one,
        )
    }

    fn cancel(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        write(
            self,
            move |inner| async move {
                let instance = inner.instance.clone();
                inner
                    .emitting(async |c, out| ops::cancel(c, &instance, out, &id, &actor, now).await)
                    .await
            },
            one,
        )
    }

    fn record_outcome(
        &self,
        id: String,
        actor: Actor,
        outcome: NewOutcome,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                ops::record_outcome(&mut conn, &inner.instance, &id, &actor, outcome, now).await
            },
            one,
        )
    }

    fn next_deadline(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(self.read(async |c| read::next_deadline(c).await))
    }

    fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<DueDeadline>>> {
        Box::pin(self.read(async move |c| read::due_deadlines(c, now, limit).await))
    }

    fn apply_sla(
        &self,
        id: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Option<ActionRecord>>> {
        write(
            self,
            move |inner| async move {
                let instance = inner.instance.clone();
                inner
                    .emitting(async |c, out| ops::apply_sla(c, &instance, out, &id, now).await)
                    .await
            },
            |record: &Option<ActionRecord>| record.iter().cloned().collect(),
        )
    }

    fn sweep_sla(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>> {
        write(
            self,
            move |inner| async move {
                let instance = inner.instance.clone();
                inner
                    .emitting(async |c, out| ops::sweep_sla(c, &instance, out, now, limit).await)
                    .await
            },
            |records: &Vec<ActionRecord>| records.clone(),
        )
    }

    fn reviews(&self, query: ReviewQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(self.read(async move |c| read::reviews(c, &query).await))
    }

    fn review(
        &self,
        id: String,
        reviewer: Actor,
        review: NewReview,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                ops::review(&mut conn, &inner.instance, &id, &reviewer, review, now).await
            },
            one,
        )
    }

    fn append_audit(&self, entry: NewAuditEntry) -> BoxFuture<'_, StoreResult<AuditEntry>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                let id = admin_ops::append_audit(&mut conn, entry).await?;
                // The caller gets the entry in its place in the chain.
                chain::link(&mut conn).await?;
                let sql = format!("SELECT {} FROM audit WHERE id = $1", rows::AUDIT_COLUMNS);
                let row = conn.query_one(&sql, &[&id]).await?;
                rows::audit_from_row(&row)
            },
            none,
        )
    }

    fn audit(
        &self,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>> {
        Box::pin(self.read(async move |c| {
            // What was written before this read is listed: linked first.
            chain::link(c).await?;
            read::audit(c, after, limit, max_bytes).await
        }))
    }

    fn verify_audit_against(
        &self,
        claims: Vec<CheckpointClaim>,
    ) -> BoxFuture<'_, StoreResult<AuditReport>> {
        Box::pin(self.read(async move |c| {
            chain::link(c).await?;
            verify::verify(c, claims).await
        }))
    }

    fn audit_head(&self) -> BoxFuture<'_, StoreResult<AuditHead>> {
        Box::pin(self.read(async |c| {
            chain::link(c).await?;
            verify::head(c).await
        }))
    }

    fn add_checkpoint(
        &self,
        checkpoint: NewCheckpoint,
    ) -> BoxFuture<'_, StoreResult<(StoredCheckpoint, bool)>> {
        write(
            self,
            move |inner| async move {
                verify::add_checkpoint(&mut *inner.pool.get().await?, checkpoint).await
            },
            none,
        )
    }

    fn latest_checkpoint(&self) -> BoxFuture<'_, StoreResult<Option<StoredCheckpoint>>> {
        Box::pin(self.read(async |c| verify::latest_checkpoint(c).await))
    }

    fn create_token(&self, token: NewToken) -> BoxFuture<'_, StoreResult<CreatedToken>> {
        write(
            self,
            move |inner| async move {
                admin_ops::create_token(&mut *inner.pool.get().await?, token).await
            },
            none,
        )
    }

    fn authenticate<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<Token>>> {
        Box::pin(self.read(async |c| read::authenticate(c, secret).await))
    }

    fn tokens(&self) -> BoxFuture<'_, StoreResult<Vec<Token>>> {
        Box::pin(self.read(async |c| read::tokens(c).await))
    }

    fn revoke_token(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Token>> {
        Box::pin(async move {
            let token = write(
                self,
                move |inner| async move {
                    admin_ops::revoke_token(&mut *inner.pool.get().await?, &id, &actor, now).await
                },
                none,
            )
            .await?;
            let _ = self.inner.revocations.send(token.id.clone());
            Ok(token)
        })
    }

    fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.inner.revocations.subscribe()
    }

    fn revoked_among<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(self.read(async |c| read::revoked_among(c, ids).await))
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ActionRecord>> {
        self.inner.changes.subscribe()
    }

    fn commit_stats(&self) -> CommitStats {
        let commits = self.inner.commits.load(Ordering::Relaxed);
        CommitStats {
            commits,
            commands: commits + self.inner.refused.load(Ordering::Relaxed),
            refused: self.inner.refused.load(Ordering::Relaxed),
            failed_batches: 0,
            max_batch: u64::from(commits > 0),
        }
    }

    fn is_writable(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire) && self.inner.health.current() == StoreHealth::Ok
    }

    fn health(&self) -> BoxFuture<'_, StoreHealth> {
        Box::pin(async move {
            if self.inner.closed.load(Ordering::Acquire) {
                return StoreHealth::Unavailable("the store was closed".into());
            }
            if let Some(_probing) = self.inner.health.start_probe() {
                let inner = self.inner.clone();
                let probe = spawn(async move {
                    let mut conn = inner.pool.get().await?;
                    conn.execute(
                        "INSERT INTO write_probe (id, at) VALUES (1, $1) \
                         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                        &[&Utc::now().timestamp_millis()],
                    )
                    .await
                });
                match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    Ok(Ok(_)) => self.inner.health.wrote(),
                    Ok(Err(error)) => {
                        // Any failure of a probe means the database cannot take writes.
                        let error = if error.is_storage_failure() {
                            error
                        } else {
                            StoreError::Unavailable(error.to_string())
                        };
                        self.inner.health.failed(&error);
                    }
                    Err(_) => {
                        return StoreHealth::Unavailable(format!(
                            "PostgreSQL did not answer a probe write within {} s",
                            PROBE_TIMEOUT.as_secs()
                        ));
                    }
                }
            }
            self.inner.health.current()
        })
    }

    fn create_user(&self, user: NewUser) -> BoxFuture<'_, StoreResult<User>> {
        write(
            self,
            move |inner| async move {
                admin_ops::create_user(&mut *inner.pool.get().await?, user).await
            },
            none,
        )
    }

    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<User>>> {
        Box::pin(self.read(async |c| admin_ops::user(c, name).await))
    }

    fn create_grant(&self, grant: NewGrant) -> BoxFuture<'_, StoreResult<GrantRecord>> {
        write(
            self,
            move |inner| async move {
                grant_ops::create_grant(&mut *inner.pool.get().await?, grant).await
            },
            none,
        )
    }

    fn grants(&self, query: GrantQuery) -> BoxFuture<'_, StoreResult<Vec<GrantRecord>>> {
        Box::pin(self.read(async move |c| grant_ops::grants(c, &query).await))
    }

    fn grant<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<GrantRecord>>> {
        Box::pin(self.read(async |c| grant_ops::grant(c, id).await))
    }

    fn revoke_grant(
        &self,
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<GrantRecord>> {
        write(
            self,
            move |inner| async move {
                grant_ops::revoke_grant(&mut *inner.pool.get().await?, &id, &actor, now).await
            },
            none,
        )
    }

    fn users(&self) -> BoxFuture<'_, StoreResult<Vec<User>>> {
        Box::pin(self.read(async |c| admin_ops::users(c).await))
    }

    fn change_password(
        &self,
        name: Name,
        password_hash: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<User>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                admin_ops::change_password(&mut conn, &name, &password_hash, &actor, now).await
            },
            none,
        )
    }

    fn disable_user(
        &self,
        name: Name,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<User>> {
        Box::pin(async move {
            let (user, revoked) = write(
                self,
                move |inner| async move {
                    admin_ops::disable_user(&mut *inner.pool.get().await?, &name, &actor, now).await
                },
                none,
            )
            .await?;
            for id in revoked {
                let _ = self.inner.revocations.send(id);
            }
            Ok(user)
        })
    }

    fn start_session(&self, session: NewSession) -> BoxFuture<'_, StoreResult<StartedSession>> {
        write(
            self,
            move |inner| async move {
                admin_ops::start_session(&mut *inner.pool.get().await?, session).await
            },
            none,
        )
    }

    fn signed_in<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<SignedIn>>> {
        Box::pin(self.read(async |c| admin_ops::signed_in(c, secret).await))
    }

    fn touch_session(
        &self,
        id: String,
        now: DateTime<Utc>,
        reauthenticated: bool,
    ) -> BoxFuture<'_, StoreResult<Session>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                admin_ops::touch_session(&mut conn, &id, now, reauthenticated).await
            },
            none,
        )
    }

    fn end_session(&self, id: String, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<Session>> {
        write(
            self,
            move |inner| async move {
                admin_ops::end_session(&mut *inner.pool.get().await?, &id, now).await
            },
            none,
        )
    }

    fn pending(
        &self,
        query: PendingQuery,
    ) -> BoxFuture<'_, StoreResult<PendingPage<ActionRecord>>> {
        Box::pin(self.read(async move |c| read::pending(c, &query).await))
    }

    fn pending_counts(&self) -> BoxFuture<'_, StoreResult<TierCounts>> {
        Box::pin(self.read(async |c| read::pending_counts(c).await))
    }

    fn last_approved<'a>(
        &'a self,
        query: LastApproved<'a>,
    ) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>> {
        Box::pin(self.read(async move |c| read::last_approved(c, &query).await))
    }

    fn audit_window(&self, filter: AuditFilter) -> BoxFuture<'_, StoreResult<AuditWindow>> {
        Box::pin(self.read(async move |c| {
            chain::link(c).await?;
            read::audit_window(c, &filter).await
        }))
    }

    fn scan_history(
        &self,
        since: DateTime<Utc>,
        visit: HistoryVisitor,
    ) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(self.read(async move |c| history_ops::scan(c, since, visit).await))
    }

    fn evidence(&self, since: DateTime<Utc>) -> BoxFuture<'_, StoreResult<Vec<Evidence>>> {
        Box::pin(self.read(async move |c| history_ops::evidence(c, since).await))
    }

    fn corrected_args<'a>(
        &'a self,
        key: &'a GroupKey,
        since: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<serde_json::Map<String, serde_json::Value>>>> {
        Box::pin(self.read(async move |c| history_ops::corrected_args(c, key, since, limit).await))
    }

    fn evidence_below<'a>(
        &'a self,
        key: &'a GroupKey,
        since: DateTime<Utc>,
        arg: &'a str,
        below: f64,
    ) -> BoxFuture<'a, StoreResult<Evidence>> {
        Box::pin(
            self.read(async move |c| history_ops::evidence_below(c, key, since, arg, below).await),
        )
    }

    fn record_policy_load(
        &self,
        load: PolicyLoad,
    ) -> BoxFuture<'_, StoreResult<Option<AuditEntry>>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                let Some(id) = history_ops::record_policy_load(&mut conn, load).await? else {
                    return Ok(None);
                };
                // The caller gets the entry in its place in the chain.
                let entries = history_ops::entries_by_id(&mut conn, &[id]).await?;
                Ok(entries.into_iter().next())
            },
            none,
        )
    }

    fn sync_regressions(
        &self,
        policy_hash: String,
        holding: Vec<NewRegression>,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>> {
        write(
            self,
            move |inner| async move {
                inner
                    .emitting(async |conn, out| {
                        let ids =
                            history_ops::sync_regressions(conn, out, &policy_hash, holding, at)
                                .await?;
                        history_ops::entries_by_id(conn, &ids).await
                    })
                    .await
            },
            none,
        )
    }

    fn active_regressions(&self) -> BoxFuture<'_, StoreResult<Vec<ActiveRegression>>> {
        Box::pin(self.read(async |c| history_ops::active(c).await))
    }

    fn stats(&self, window: Window, now: DateTime<Utc>) -> BoxFuture<'_, StoreResult<StatsData>> {
        Box::pin(self.read(async move |c| stats::window(c, &window, now).await))
    }

    fn stats_series(&self, query: SeriesQuery) -> BoxFuture<'_, StoreResult<Vec<SeriesPoint>>> {
        Box::pin(self.read(async move |c| stats::series(c, &query).await))
    }

    fn stats_totals(&self) -> BoxFuture<'_, StoreResult<StatsTotals>> {
        Box::pin(self.read(async move |c| stats::totals(c).await))
    }

    fn export(&self, query: ExportQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(self.read(async move |c| stats::export(c, &query).await))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.closed.store(true, Ordering::Release);
            // Entries committed here are linked before this instance goes (another
            // instance would link them otherwise, within a second).
            if let Ok(mut conn) = self.inner.pool.get().await {
                let _ = chain::link(&mut conn).await;
            }
            self.inner.pool.close();
        })
    }
}

impl Notifications for PostgresStore {
    fn set_router(&self, router: Arc<dyn EventRouter>) {
        *self
            .inner
            .router
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(router);
    }

    fn outbox_signal(&self) -> Arc<OutboxSignal> {
        self.inner.outbox.clone()
    }

    fn pending_lanes(&self) -> BoxFuture<'_, StoreResult<Vec<String>>> {
        Box::pin(self.read(async |c| outbox_ops::pending_lanes(c).await))
    }

    /// Claims the due deliveries for this instance (see `outbox_ops::due`).
    fn due_deliveries(
        &self,
        lane: String,
        now: DateTime<Utc>,
        limit: u32,
        skip: Vec<u64>,
    ) -> BoxFuture<'_, StoreResult<Vec<Delivery>>> {
        write(
            self,
            move |inner| async move {
                let mut conn = inner.pool.get().await?;
                outbox_ops::due(&mut conn, &lane, now, limit, &skip).await
            },
            none,
        )
    }

    fn lane_state(
        &self,
        lane: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<(bool, Option<DateTime<Utc>>)>> {
        Box::pin(self.read(async move |c| outbox_ops::lane_state(c, &lane, now).await))
    }

    fn finish_deliveries(
        &self,
        tried: Vec<Tried>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<()>> {
        write(
            self,
            move |inner| async move {
                let conn = &mut *inner.pool.get().await?;
                ops::transaction!(conn, outbox_ops::finish(conn, tried, now))
            },
            none,
        )
    }

    fn deliveries(&self, query: DeliveryQuery) -> BoxFuture<'_, StoreResult<Page<Delivery>>> {
        Box::pin(self.read(async move |c| outbox_ops::list(c, &query).await))
    }

    fn retry_delivery(
        &self,
        id: u64,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Delivery>> {
        write(
            self,
            move |inner| async move {
                let conn = &mut *inner.pool.get().await?;
                let delivery: Delivery =
                    ops::transaction!(conn, outbox_ops::retry(conn, id, &actor, now))?;
                inner.outbox.publish([delivery.lane.clone()]);
                Ok(delivery)
            },
            none,
        )
    }

    fn link_slack(
        &self,
        slack_user: String,
        name: Name,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<SlackLink>> {
        write(
            self,
            move |inner| async move {
                let conn = &mut *inner.pool.get().await?;
                ops::transaction!(
                    conn,
                    outbox_ops::link_slack(conn, &slack_user, &name, &actor, now)
                )
            },
            none,
        )
    }

    fn unlink_slack(
        &self,
        slack_user: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<SlackLink>> {
        write(
            self,
            move |inner| async move {
                let conn = &mut *inner.pool.get().await?;
                ops::transaction!(
                    conn,
                    outbox_ops::unlink_slack(conn, &slack_user, &actor, now)
                )
            },
            none,
        )
    }

    fn slack_links(&self) -> BoxFuture<'_, StoreResult<Vec<SlackLink>>> {
        Box::pin(self.read(async |c| outbox_ops::slack_links(c).await))
    }

    fn slack_person<'a>(
        &'a self,
        slack_user: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Person>>> {
        Box::pin(self.read(async |c| outbox_ops::slack_person(c, slack_user).await))
    }
}
