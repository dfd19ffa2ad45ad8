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

use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::chain::{self, Head};
use super::health::Health;
use super::stats;
use crate::StoreResult;
use crate::audit_log::CommitStats;
use crate::error::StoreError;
use crate::record::ActionRecord;

/// One write a caller asked for, with its own answer type: it runs inside the writer's
/// transaction, under its own savepoint, and its caller hears the result only after the
/// commit (or hears that the commit failed). Typed end to end: there is no shared reply
/// enum to unwrap, so no "wrong kind of reply".
pub(crate) struct Job(Box<dyn Work>);

trait Work: Send {
    fn run(self: Box<Self>, conn: &Connection, head: &mut Head, health: &Health) -> Ran;
    /// Answers without running (the batch failed before this job, or the store closed).
    fn abandon(self: Box<Self>, error: StoreError);
}

/// A job computing `T` with `work`, answering on `reply`.
struct Typed<T, W> {
    work: W,
    changed: fn(&T) -> Vec<ActionRecord>,
    reply: oneshot::Sender<StoreResult<T>>,
}

/// What a job did, held until the batch committed.
struct Ran {
    /// Whether the job was refused (its savepoint is rolled back).
    refused: bool,
    /// The actions it changed, broadcast after the commit.
    changed: Vec<ActionRecord>,
    /// Answers the caller: with the job's result, or with the commit's failure.
    answer: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

impl<T, W> Work for Typed<T, W>
where
    T: Send + 'static,
    W: FnOnce(&Connection, &mut Head) -> StoreResult<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, head: &mut Head, health: &Health) -> Ran {
        let Typed {
            work,
            changed,
            reply,
        } = *self;
        let result = work(conn, head);
        if let Err(error) = &result {
            // Recorded now: after a full disk SQLite may have rolled the whole transaction
            // back, and then the batch fails with another error.
            health.failed(error);
        }
        Ran {
            refused: result.is_err(),
            changed: result.as_ref().map(changed).unwrap_or_default(),
            answer: Box::new(move |commit_failure| {
                let _ = reply.send(match commit_failure {
                    Some(error) => Err(error),
                    None => result,
                });
            }),
        }
    }

    fn abandon(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl Job {
    /// A job that runs `work`; `changed` names the actions its result changed.
    pub fn new<T: Send + 'static>(
        work: impl FnOnce(&Connection, &mut Head) -> StoreResult<T> + Send + 'static,
        changed: fn(&T) -> Vec<ActionRecord>,
        reply: oneshot::Sender<StoreResult<T>>,
    ) -> Job {
        Job(Box::new(Typed {
            work,
            changed,
            reply,
        }))
    }
}

pub(crate) enum Command {
    Run(Job),
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
    /// Publishes the lanes a committed batch wrote deliveries to.
    pub outbox: Arc<crate::outbox::OutboxSignal>,
    pub commands: mpsc::Receiver<Command>,
    pub changes: broadcast::Sender<Arc<ActionRecord>>,
    pub counters: Arc<Counters>,
    pub health: Arc<Health>,
    pub max_batch: usize,
}

impl Writer {
    /// Serves commands until the store is closed or every sender is gone. Blocks: run it
    /// on its own thread.
    pub fn run(mut self) {
        let mut close_reply = None;
        while let Some(first) = self.commands.blocking_recv() {
            let mut batch: Vec<Job> = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Run(job) => batch.push(job),
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
        // Jobs that raced with the close are answered, not dropped silently.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Run(job) = command {
                job.0.abandon(StoreError::Closed);
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

    fn run_batch(&mut self, batch: Vec<Job>) {
        let size = batch.len() as u64;
        self.counters.commands.fetch_add(size, Ordering::Relaxed);
        self.counters.max_batch.fetch_max(size, Ordering::Relaxed);
        let mut ran = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        match self.transact(&mut jobs, &mut ran) {
            Ok(()) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                if ran.iter().any(|r| !r.refused) {
                    self.health.wrote();
                }
                // Subscribers first: a caller that has its answer and subscribes next must
                // not be told afterwards about a change it already knows.
                if self.changes.receiver_count() > 0 {
                    for job in &mut ran {
                        for record in std::mem::take(&mut job.changed) {
                            let _ = self.changes.send(Arc::new(record));
                        }
                    }
                }
                // Before the answers: a caller that wrote an event finds its lane published.
                self.outbox.committed();
                for job in ran {
                    (job.answer)(None);
                }
            }
            Err(error) => {
                // Nothing of the batch is on disk: every caller hears so, including those
                // whose job itself went fine and those whose job never started.
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.outbox.rolled_back();
                if !self.conn.is_autocommit() {
                    let _ = self.exec("ROLLBACK");
                }
                self.health.failed(&error);
                let message = error.to_string();
                let failure = || match &error {
                    StoreError::Damaged(_) => StoreError::Damaged(message.clone()),
                    error if error.is_storage_failure() => {
                        StoreError::Unavailable(format!("the write was not committed: {message}"))
                    }
                    _ => StoreError::NotCommitted(message.clone()),
                };
                for job in ran {
                    (job.answer)(Some(failure()));
                }
                for job in jobs {
                    job.0.abandon(failure());
                }
            }
        }
    }

    /// Runs the jobs in one transaction, each under its own savepoint, into `ran`. `Err`:
    /// the batch did not commit; the jobs not started are left in `jobs`.
    fn transact(
        &mut self,
        jobs: &mut impl Iterator<Item = Job>,
        ran: &mut Vec<Ran>,
    ) -> Result<(), StoreError> {
        self.exec("BEGIN IMMEDIATE")?;
        let mut head = chain::load_head(&self.conn)?;
        // The statistics the jobs add, written once per row just before the commit.
        let stats = stats::Batch::begin();
        for job in jobs {
            let saved = head;
            let stats_mark = stats.mark();
            self.exec("SAVEPOINT command")?;
            let outcome = job.0.run(&self.conn, &mut head, &self.health);
            let refused = outcome.refused;
            ran.push(outcome);
            if refused {
                head = saved;
                stats.rollback_to(stats_mark);
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                self.exec("ROLLBACK TO command")?;
            }
            self.exec("RELEASE command")?;
        }
        stats.flush(&self.conn)?;
        self.exec("COMMIT")
    }
}
