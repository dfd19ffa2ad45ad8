//! The single writer: one task owns the write connection and commits in groups. It waits
//! for a command, drains whatever else is queued (up to a cap), runs them all in one
//! transaction, commits once (one fsync), and only then answers each caller and tells
//! subscribers what changed. A refused command must not fail its neighbours: if one is
//! refused, the batch is rolled back and run again with a savepoint around each command
//! (savepoints cost two round trips to SQLite's thread per command, so the common batch,
//! where everything succeeds, goes without).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::DecisionRequest;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::chain::{self, Head};
use super::{admin_ops, ops};
use crate::audit_log::{AuditEntry, CommitStats, NewAuditEntry};
use crate::error::StoreError;
use crate::record::{ActionRecord, Actor, NewAction, NewOutcome, NewReview, Submitted};
use crate::token::{CreatedToken, NewToken, Token};

/// What a caller asks the writer to do.
#[derive(Clone)]
pub(crate) enum Op {
    Submit(Box<NewAction>),
    Decide {
        id: String,
        reviewer: Actor,
        request: DecisionRequest,
        now: DateTime<Utc>,
    },
    Cancel {
        id: String,
        actor: String,
        now: DateTime<Utc>,
    },
    Outcome {
        id: String,
        actor: String,
        outcome: NewOutcome,
        now: DateTime<Utc>,
    },
    ApplySla {
        id: String,
        now: DateTime<Utc>,
    },
    SweepSla {
        now: DateTime<Utc>,
        limit: u32,
    },
    Review {
        id: String,
        reviewer: Actor,
        review: NewReview,
        now: DateTime<Utc>,
    },
    AppendAudit(NewAuditEntry),
    CreateToken(NewToken),
    RevokeToken {
        id: String,
        actor: String,
        now: DateTime<Utc>,
    },
}

/// The writer's answer to an [`Op`].
pub(crate) enum Reply {
    Submitted(Submitted),
    Record(ActionRecord),
    MaybeRecord(Option<ActionRecord>),
    Records(Vec<ActionRecord>),
    Audit(AuditEntry),
    CreatedToken(CreatedToken),
    Token(Token),
}

pub(crate) enum Command {
    Run {
        op: Op,
        reply: oneshot::Sender<Result<Reply, StoreError>>,
    },
    /// Finish the queued work, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

/// The counters behind [`CommitStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    commands: AtomicU64,
    refused: AtomicU64,
    failed_batches: AtomicU64,
    max_batch: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            max_batch: self.max_batch.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Writer {
    pub conn: SqliteConnection,
    pub commands: mpsc::Receiver<Command>,
    pub changes: broadcast::Sender<Arc<ActionRecord>>,
    pub counters: Arc<Counters>,
    pub max_batch: usize,
}

type ReplyTo = oneshot::Sender<Result<Reply, StoreError>>;
type Pending = (Op, ReplyTo);

impl Writer {
    pub async fn run(mut self) {
        let mut close_reply = None;
        while let Some(first) = self.commands.recv().await {
            let mut batch: Vec<Pending> = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Run { op, reply } => batch.push((op, reply)),
                    Command::Close(reply) => {
                        close_reply = Some(reply);
                        break;
                    }
                }
                if batch.len() < self.max_batch {
                    next = self.commands.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.run_batch(batch).await;
            }
            if close_reply.is_some() {
                break;
            }
        }
        // Commands that raced with the close are answered, not dropped silently.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Run { reply, .. } = command {
                let _ = reply.send(Err(StoreError::WriterGone("the store was closed".into())));
            }
        }
        let _ = self.conn.close().await;
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    async fn exec(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(&mut self.conn).await?;
        Ok(())
    }

    async fn run_batch(&mut self, batch: Vec<Pending>) {
        let size = batch.len() as u64;
        self.counters.commands.fetch_add(size, Ordering::Relaxed);
        self.counters.max_batch.fetch_max(size, Ordering::Relaxed);
        let (ops, replies): (Vec<Op>, Vec<ReplyTo>) = batch.into_iter().unzip();
        let result = match self.transact_optimistic(&ops).await {
            Ok(Attempt::Committed(done)) => Ok(done),
            // A command was refused: nothing of the attempt is kept. A command alone has no
            // neighbours to protect, so its refusal is the answer; otherwise run the batch
            // again with a savepoint around each command.
            Ok(Attempt::Refused { index: 0, error }) if ops.len() == 1 => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Ok(vec![(Err(error), Vec::new())])
            }
            Ok(Attempt::Refused { .. }) => self.transact_careful(ops).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(done) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                let mut changed = Vec::new();
                for (reply, (outcome, records)) in replies.into_iter().zip(done) {
                    let _ = reply.send(outcome);
                    changed.extend(records);
                }
                if self.changes.receiver_count() > 0 {
                    for record in changed {
                        let _ = self.changes.send(Arc::new(record));
                    }
                }
            }
            Err(error) => {
                // Nothing of the batch is on disk: every caller hears so, including those
                // whose command itself went fine.
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                let _ = self.exec("ROLLBACK").await;
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::WriterGone(format!(
                        "the write was not committed: {message}"
                    ))));
                }
            }
        }
    }

    async fn begin(&mut self) -> Result<Head, StoreError> {
        self.exec("BEGIN IMMEDIATE").await?;
        chain::load_head(&mut self.conn).await
    }

    /// The fast path: the whole batch in one transaction with no savepoints (each is two
    /// more round trips to SQLite's thread per command). Commits only if every command
    /// succeeded; at the first refusal it rolls everything back and says which.
    async fn transact_optimistic(&mut self, ops: &[Op]) -> Result<Attempt, StoreError> {
        let mut head = self.begin().await?;
        let mut done = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match run_op(&mut self.conn, &mut head, op.clone()).await {
                Ok((reply, records)) => done.push((Ok(reply), records)),
                Err(error) => {
                    self.exec("ROLLBACK").await?;
                    return Ok(Attempt::Refused { index, error });
                }
            }
        }
        self.exec("COMMIT").await?;
        Ok(Attempt::Committed(done))
    }

    /// The careful path: each command under its own savepoint, so a refused command leaves
    /// no trace and does not fail its neighbours. An `Err` means the batch did not commit.
    async fn transact_careful(&mut self, ops: Vec<Op>) -> Result<Vec<Done>, StoreError> {
        let mut head = self.begin().await?;
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            let saved = head;
            self.exec("SAVEPOINT command").await?;
            match run_op(&mut self.conn, &mut head, op).await {
                Ok((reply, records)) => {
                    self.exec("RELEASE command").await?;
                    done.push((Ok(reply), records));
                }
                Err(error) => {
                    head = saved;
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    self.exec("ROLLBACK TO command").await?;
                    self.exec("RELEASE command").await?;
                    done.push((Err(error), Vec::new()));
                }
            }
        }
        self.exec("COMMIT").await?;
        Ok(done)
    }
}

/// A command's result and the actions it changed, held until the batch committed.
type Done = (Result<Reply, StoreError>, Vec<ActionRecord>);

/// How the optimistic attempt at a batch ended.
enum Attempt {
    Committed(Vec<Done>),
    /// Command `index` was refused and the transaction rolled back.
    Refused {
        index: usize,
        error: StoreError,
    },
}

/// Runs one operation; returns its reply and the actions it changed.
async fn run_op(
    conn: &mut SqliteConnection,
    head: &mut Head,
    op: Op,
) -> Result<(Reply, Vec<ActionRecord>), StoreError> {
    Ok(match op {
        Op::Submit(new) => {
            let (submitted, created) = ops::submit(conn, head, *new).await?;
            (Reply::Submitted(submitted), created.into_iter().collect())
        }
        Op::Decide {
            id,
            reviewer,
            request,
            now,
        } => {
            let record = ops::decide(conn, head, &id, &reviewer, request, now).await?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::Cancel { id, actor, now } => {
            let record = ops::cancel(conn, head, &id, &actor, now).await?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::Outcome {
            id,
            actor,
            outcome,
            now,
        } => {
            let record = ops::record_outcome(conn, head, &id, &actor, outcome, now).await?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::ApplySla { id, now } => {
            let record = ops::apply_sla(conn, head, &id, now).await?;
            (
                Reply::MaybeRecord(record.clone()),
                record.into_iter().collect(),
            )
        }
        Op::SweepSla { now, limit } => {
            let records = ops::sweep_sla(conn, head, now, limit).await?;
            (Reply::Records(records.clone()), records)
        }
        Op::Review {
            id,
            reviewer,
            review,
            now,
        } => {
            let record = ops::review(conn, head, &id, &reviewer, review, now).await?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::AppendAudit(entry) => (
            Reply::Audit(admin_ops::append_audit(conn, head, entry).await?),
            vec![],
        ),
        Op::CreateToken(token) => (
            Reply::CreatedToken(admin_ops::create_token(conn, head, token).await?),
            vec![],
        ),
        Op::RevokeToken { id, actor, now } => (
            Reply::Token(admin_ops::revoke_token(conn, head, &id, &actor, now).await?),
            vec![],
        ),
    })
}
