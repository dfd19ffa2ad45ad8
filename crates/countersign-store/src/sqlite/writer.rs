//! The single writer: one thread owns the write connection and commits in groups. It waits
//! for a command, drains whatever else is queued (up to a cap), runs them all in one
//! transaction — each under its own savepoint, so a refused command does not fail its
//! neighbours — commits once (one fsync), and only then tells subscribers what changed and
//! answers each caller.
//!
//! A thread of its own rather than a task: SQLite is called in-thread, so a batch of a
//! hundred commands is a few hundred microseconds of work with nothing to wait for but the
//! commit's fsync, and it never waits behind HTTP work in a runtime's queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::DecisionRequest;
use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::chain::{self, Head};
use super::health::Health;
use super::{admin_ops, checkpoints, ops};
use crate::audit_log::{AuditEntry, CommitStats, NewAuditEntry, NewCheckpoint, StoredCheckpoint};
use crate::error::StoreError;
use crate::record::{ActionRecord, Actor, NewAction, NewOutcome, NewReview, Submitted};
use crate::token::{CreatedToken, NewToken, Token};

/// What a caller asks the writer to do.
pub(crate) enum Op {
    Submit(Box<NewAction>),
    Decide {
        id: String,
        reviewer: Actor,
        request: Box<DecisionRequest>,
        now: DateTime<Utc>,
    },
    Cancel {
        id: String,
        actor: Actor,
        now: DateTime<Utc>,
    },
    Outcome {
        id: String,
        actor: Actor,
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
        actor: Actor,
        now: DateTime<Utc>,
    },
    AddCheckpoint(NewCheckpoint),
    /// Rewrites the probe row: a real commit, to learn whether writes go through.
    Probe(DateTime<Utc>),
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
    Checkpoint(StoredCheckpoint, bool),
    Done,
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
    pub conn: Connection,
    pub commands: mpsc::Receiver<Command>,
    pub changes: broadcast::Sender<Arc<ActionRecord>>,
    pub counters: Arc<Counters>,
    pub health: Arc<Health>,
    pub max_batch: usize,
}

type ReplyTo = oneshot::Sender<Result<Reply, StoreError>>;
type Pending = (Op, ReplyTo);

impl Writer {
    /// Serves commands until the store is closed or every sender is gone. Blocks: run it
    /// on its own thread.
    pub fn run(mut self) {
        let mut close_reply = None;
        while let Some(first) = self.commands.blocking_recv() {
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
                self.run_batch(batch);
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
        // A close that fails leaves nothing unwritten: every batch committed or rolled back.
        let _ = self.conn.close();
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    fn exec(&self, sql: &'static str) -> Result<(), StoreError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    fn run_batch(&mut self, batch: Vec<Pending>) {
        let size = batch.len() as u64;
        self.counters.commands.fetch_add(size, Ordering::Relaxed);
        self.counters.max_batch.fetch_max(size, Ordering::Relaxed);
        let (ops, replies): (Vec<Op>, Vec<ReplyTo>) = batch.into_iter().unzip();
        match self.transact(ops) {
            Ok(done) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                // A storage failure of any command says the disk cannot take everything;
                // otherwise a command that wrote shows that it can again.
                let failure = done
                    .iter()
                    .find_map(|(outcome, _)| outcome.as_ref().err())
                    .filter(|error| error.is_storage_failure());
                match failure {
                    Some(error) => self.health.failed(error),
                    None if done.iter().any(|(outcome, _)| outcome.is_ok()) => self.health.wrote(),
                    None => {}
                }
                // Subscribers first: a caller that has its answer and subscribes next must
                // not be told afterwards about a change it already knows.
                let mut outcomes = Vec::with_capacity(done.len());
                for (outcome, records) in done {
                    if self.changes.receiver_count() > 0 {
                        for record in records {
                            let _ = self.changes.send(Arc::new(record));
                        }
                    }
                    outcomes.push(outcome);
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // Nothing of the batch is on disk: every caller hears so, including those
                // whose command itself went fine.
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                if !self.conn.is_autocommit() {
                    let _ = self.exec("ROLLBACK");
                }
                self.health.failed(&error);
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(match &error {
                        StoreError::Damaged(_) => StoreError::Damaged(message.clone()),
                        error if error.is_storage_failure() => StoreError::Unavailable(format!(
                            "the write was not committed: {message}"
                        )),
                        _ => StoreError::WriterGone(format!(
                            "the write was not committed: {message}"
                        )),
                    }));
                }
            }
        }
    }

    /// Runs the batch in one transaction, each command under its own savepoint. Results
    /// are held back until the commit returned; an `Err` means the batch did not commit.
    fn transact(&mut self, ops: Vec<Op>) -> Result<Vec<Done>, StoreError> {
        self.exec("BEGIN IMMEDIATE")?;
        let mut head = chain::load_head(&self.conn)?;
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            let saved = head;
            self.exec("SAVEPOINT command")?;
            match run_op(&self.conn, &mut head, op) {
                Ok((reply, records)) => {
                    self.exec("RELEASE command")?;
                    done.push((Ok(reply), records));
                }
                Err(error) => {
                    head = saved;
                    // Recorded now: after a full disk SQLite may have rolled the whole
                    // transaction back, and then the batch fails with another error.
                    self.health.failed(&error);
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    self.exec("ROLLBACK TO command")?;
                    self.exec("RELEASE command")?;
                    done.push((Err(error), Vec::new()));
                }
            }
        }
        self.exec("COMMIT")?;
        Ok(done)
    }
}

/// A command's result and the actions it changed, held until the batch committed.
type Done = (Result<Reply, StoreError>, Vec<ActionRecord>);

/// Runs one operation; returns its reply and the actions it changed.
fn run_op(
    conn: &Connection,
    head: &mut Head,
    op: Op,
) -> Result<(Reply, Vec<ActionRecord>), StoreError> {
    Ok(match op {
        Op::Submit(new) => {
            let (submitted, created) = ops::submit(conn, head, *new)?;
            (Reply::Submitted(submitted), created.into_iter().collect())
        }
        Op::Decide {
            id,
            reviewer,
            request,
            now,
        } => {
            let record = ops::decide(conn, head, &id, &reviewer, *request, now)?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::Cancel { id, actor, now } => {
            let record = ops::cancel(conn, head, &id, &actor, now)?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::Outcome {
            id,
            actor,
            outcome,
            now,
        } => {
            let record = ops::record_outcome(conn, head, &id, &actor, outcome, now)?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::ApplySla { id, now } => {
            let record = ops::apply_sla(conn, head, &id, now)?;
            (
                Reply::MaybeRecord(record.clone()),
                record.into_iter().collect(),
            )
        }
        Op::SweepSla { now, limit } => {
            let records = ops::sweep_sla(conn, head, now, limit)?;
            (Reply::Records(records.clone()), records)
        }
        Op::Review {
            id,
            reviewer,
            review,
            now,
        } => {
            let record = ops::review(conn, head, &id, &reviewer, review, now)?;
            (Reply::Record(record.clone()), vec![record])
        }
        Op::AppendAudit(entry) => (
            Reply::Audit(admin_ops::append_audit(conn, head, entry)?),
            vec![],
        ),
        Op::CreateToken(token) => (
            Reply::CreatedToken(admin_ops::create_token(conn, head, token)?),
            vec![],
        ),
        Op::RevokeToken { id, actor, now } => (
            Reply::Token(admin_ops::revoke_token(conn, head, &id, &actor, now)?),
            vec![],
        ),
        Op::AddCheckpoint(new) => {
            let (stored, created) = checkpoints::add(conn, new)?;
            (Reply::Checkpoint(stored, created), vec![])
        }
        Op::Probe(now) => {
            if let Some(path) = conn.path() {
                super::health::check_headroom(std::path::Path::new(path))?;
            }
            conn.prepare_cached(
                "INSERT INTO write_probe (id, at) VALUES (1, ?) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            )?
            .execute([super::rows::millis(now)])?;
            (Reply::Done, vec![])
        }
    })
}
