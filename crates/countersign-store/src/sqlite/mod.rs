//! The SQLite backend: a WAL database with `synchronous=FULL`, one writer task doing group
//! commit on its own connection, and a read-only pool for queries.

mod admin_ops;
mod chain;
mod migrations;
mod ops;
mod read;
mod rows;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::DecisionRequest;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::writer::{Command, Counters, Op, Reply, Writer};
use crate::audit_log::{AuditEntry, ChainReport, CommitStats, NewAuditEntry};
use crate::error::StoreError;
use crate::record::{
    ActionQuery, ActionRecord, Actor, DueDeadline, Idempotency, NewAction, NewOutcome, NewReview,
    Page, QueueQuery, ReviewQuery, Submitted,
};
use crate::token::{CreatedToken, NewToken, Token};
use crate::{BoxFuture, Store, StoreResult};

/// Tuning of a SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// The most commands one transaction takes.
    pub max_batch: usize,
    /// Connections of the read-only pool.
    pub read_connections: u32,
    /// Commands that may wait for the writer before callers wait to enqueue.
    pub queue_capacity: usize,
    /// How many changes a slow subscriber may fall behind before it lags.
    pub change_capacity: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 1024,
            read_connections: 4,
            queue_capacity: 8192,
            change_capacity: 4096,
        }
    }
}

/// A store on one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    commands: mpsc::Sender<Command>,
    reader: SqlitePool,
    changes: broadcast::Sender<Arc<ActionRecord>>,
    counters: Arc<Counters>,
}

fn base_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5))
}

/// Opens the writer's connection and brings the schema up to date.
///
/// Two processes may open a new file at once (`countersign serve &` and then `countersign
/// token create --db`, as the README does). The switch to WAL takes an exclusive lock that
/// SQLite does not wait for, and SQLite's migrator takes no lock, so the later process
/// fails on "database is locked" or on `CREATE TABLE`. Each migration commits together with
/// its row in `_sqlx_migrations`, so starting over skips what the other process applied;
/// each failure means the other side made progress, and a short backoff lets it finish.
async fn connect_and_migrate(
    options: &SqliteConnectOptions,
) -> StoreResult<sqlx::SqliteConnection> {
    let mut backoff = Duration::from_millis(10);
    let mut attempts_left = 8;
    loop {
        let error = match options.connect().await {
            Err(error) if is_busy(&error) => StoreError::from(error),
            Err(error) => return Err(error.into()),
            Ok(mut conn) => match migrations::migrator()
                .run_direct(None, &mut conn, false)
                .await
            {
                Ok(()) => return Ok(conn),
                Err(error) => StoreError::from(error),
            },
        };
        attempts_left -= 1;
        if attempts_left == 0 {
            return Err(error);
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, with any extended code.
fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    let code = error.code().and_then(|code| code.parse::<i32>().ok());
    code.is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`, and starts its
    /// writer task. Must be called inside a tokio runtime.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let path = path.as_ref();
        // Durability is stated explicitly rather than inherited: WAL (readers never block the
        // writer) and FULL (the WAL is synced at every commit, so an acknowledged write
        // survives power loss, not just a process crash).
        let write_options = base_options(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let conn = connect_and_migrate(&write_options).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .connect_with(base_options(path).read_only(true))
            .await?;
        let (commands, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let (changes, _) = broadcast::channel(options.change_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            conn,
            commands: receiver,
            changes: changes.clone(),
            counters: counters.clone(),
            max_batch: options.max_batch.max(1),
        };
        tokio::spawn(writer.run());
        Ok(SqliteStore {
            commands,
            reader,
            changes,
            counters,
        })
    }

    /// Finishes queued writes and closes the database. Later calls fail with
    /// [`StoreError::WriterGone`].
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
        self.reader.close().await;
    }

    async fn write(&self, op: Op) -> StoreResult<Reply> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Run { op, reply })
            .await
            .map_err(|_| StoreError::WriterGone("the store was closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::WriterGone("the writer stopped before answering".into()))?
    }

    async fn write_record(&self, op: Op) -> StoreResult<ActionRecord> {
        match self.write(op).await? {
            Reply::Record(record) => Ok(record),
            _ => Err(unexpected()),
        }
    }

    async fn read(&self) -> StoreResult<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        Ok(self.reader.acquire().await?)
    }
}

fn unexpected() -> StoreError {
    StoreError::WriterGone("the writer answered with the wrong kind of reply".into())
}

/// Verifies the audit chain of the database file at `path` directly, without a server
/// (`countersign audit verify --db`). Opens the file read-only and never creates it.
pub async fn verify_file(path: impl AsRef<Path>) -> StoreResult<ChainReport> {
    let mut conn = base_options(path.as_ref())
        .read_only(true)
        .connect()
        .await?;
    let report = {
        let mut tx = conn.begin().await?;
        let report = read::verify(&mut tx).await;
        tx.rollback().await?;
        report
    };
    let _ = conn.close().await;
    report
}

impl Store for SqliteStore {
    fn submit(&self, action: NewAction) -> BoxFuture<'_, StoreResult<Submitted>> {
        Box::pin(async move {
            match self.write(Op::Submit(Box::new(action))).await? {
                Reply::Submitted(submitted) => Ok(submitted),
                _ => Err(unexpected()),
            }
        })
    }

    fn replay<'a>(
        &'a self,
        agent: &'a str,
        idempotency: &'a Idempotency,
    ) -> BoxFuture<'a, StoreResult<Option<Submitted>>> {
        Box::pin(
            async move { ops::find_replay(&mut *self.read().await?, agent, idempotency).await },
        )
    }

    fn action<'a>(&'a self, id: &'a str) -> BoxFuture<'a, StoreResult<Option<ActionRecord>>> {
        Box::pin(async move { read::action(&mut *self.read().await?, id).await })
    }

    fn queue(&self, query: QueueQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(async move { read::queue(&mut *self.read().await?, &query).await })
    }

    fn actions(&self, query: ActionQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(async move { read::actions(&mut *self.read().await?, &query).await })
    }

    fn decide(
        &self,
        id: String,
        reviewer: Actor,
        request: DecisionRequest,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        Box::pin(self.write_record(Op::Decide {
            id,
            reviewer,
            request,
            now,
        }))
    }

    fn cancel(
        &self,
        id: String,
        actor: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        Box::pin(self.write_record(Op::Cancel { id, actor, now }))
    }

    fn record_outcome(
        &self,
        id: String,
        actor: String,
        outcome: NewOutcome,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        Box::pin(self.write_record(Op::Outcome {
            id,
            actor,
            outcome,
            now,
        }))
    }

    fn next_deadline(&self) -> BoxFuture<'_, StoreResult<Option<DateTime<Utc>>>> {
        Box::pin(async move { read::next_deadline(&mut *self.read().await?).await })
    }

    fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<DueDeadline>>> {
        Box::pin(async move { read::due_deadlines(&mut *self.read().await?, now, limit).await })
    }

    fn apply_sla(
        &self,
        id: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Option<ActionRecord>>> {
        Box::pin(async move {
            match self.write(Op::ApplySla { id, now }).await? {
                Reply::MaybeRecord(record) => Ok(record),
                _ => Err(unexpected()),
            }
        })
    }

    fn sweep_sla(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> BoxFuture<'_, StoreResult<Vec<ActionRecord>>> {
        Box::pin(async move {
            match self.write(Op::SweepSla { now, limit }).await? {
                Reply::Records(records) => Ok(records),
                _ => Err(unexpected()),
            }
        })
    }

    fn reviews(&self, query: ReviewQuery) -> BoxFuture<'_, StoreResult<Page<ActionRecord>>> {
        Box::pin(async move { read::reviews(&mut *self.read().await?, &query).await })
    }

    fn review(
        &self,
        id: String,
        reviewer: Actor,
        review: NewReview,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<ActionRecord>> {
        Box::pin(self.write_record(Op::Review {
            id,
            reviewer,
            review,
            now,
        }))
    }

    fn append_audit(&self, entry: NewAuditEntry) -> BoxFuture<'_, StoreResult<AuditEntry>> {
        Box::pin(async move {
            match self.write(Op::AppendAudit(entry)).await? {
                Reply::Audit(entry) => Ok(entry),
                _ => Err(unexpected()),
            }
        })
    }

    fn audit(&self, after: u64, limit: u32) -> BoxFuture<'_, StoreResult<Vec<AuditEntry>>> {
        Box::pin(async move { read::audit(&mut *self.read().await?, after, limit).await })
    }

    fn verify_audit(&self) -> BoxFuture<'_, StoreResult<ChainReport>> {
        Box::pin(async move {
            let mut conn = self.read().await?;
            let mut tx = conn.begin().await?;
            let report = read::verify(&mut tx).await;
            tx.rollback().await?;
            report
        })
    }

    fn create_token(&self, token: NewToken) -> BoxFuture<'_, StoreResult<CreatedToken>> {
        Box::pin(async move {
            match self.write(Op::CreateToken(token)).await? {
                Reply::CreatedToken(created) => Ok(created),
                _ => Err(unexpected()),
            }
        })
    }

    fn authenticate<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, StoreResult<Option<Token>>> {
        Box::pin(async move { read::authenticate(&mut *self.read().await?, secret).await })
    }

    fn tokens(&self) -> BoxFuture<'_, StoreResult<Vec<Token>>> {
        Box::pin(async move { read::tokens(&mut *self.read().await?).await })
    }

    fn revoke_token(
        &self,
        id: String,
        actor: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Token>> {
        Box::pin(async move {
            match self.write(Op::RevokeToken { id, actor, now }).await? {
                Reply::Token(token) => Ok(token),
                _ => Err(unexpected()),
            }
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<ActionRecord>> {
        self.changes.subscribe()
    }

    fn commit_stats(&self) -> CommitStats {
        self.counters.snapshot()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(SqliteStore::close(self))
    }
}
