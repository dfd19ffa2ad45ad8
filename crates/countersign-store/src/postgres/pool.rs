//! A small connection pool: at most `size` connections, each with its own cache of prepared
//! statements, handed out one per operation and given back after. A connection that was
//! lost (the server restarted, the network dropped) is discarded when it is next taken, and
//! a connection given back in the middle of a transaction (its operation was cancelled) is
//! closed rather than reused, which rolls the transaction back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::errors::connect_error;
use crate::error::StoreError;

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Inside a transaction this code began and has not ended.
    in_transaction: bool,
    /// The approval metrics the current transaction added, written just before its
    /// commit (`stats::flush`, in `ops::transaction!`).
    pub(crate) stats: super::stats::Pending,
}

impl Conn {
    /// Opens a connection; its I/O runs on a task of its own.
    pub async fn open(config: &tokio_postgres::Config, url: &str) -> Result<Conn, StoreError> {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| connect_error(url, e))?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the client then
            // reports itself closed and the pool discards it.
            let _ = connection.await;
        });
        Ok(Conn {
            client,
            statements: HashMap::new(),
            in_transaction: false,
            stats: Default::default(),
        })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        // Dynamic listings add a few shapes each; bounded all the same.
        if self.statements.len() >= 256 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub async fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.client.query(&statement, params).await?)
    }

    /// Like [`Conn::query`], keeping the driver's error (to tell a unique violation).
    pub async fn query_raw_error(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Result<Vec<Row>, tokio_postgres::Error>, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.client.query(&statement, params).await)
    }

    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.client.query_opt(&statement, params).await?)
    }

    pub async fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.client.query_one(&statement, params).await?)
    }

    pub async fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.client.execute(&statement, params).await?)
    }

    /// Runs statements without parameters (the simple protocol).
    pub async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.client.batch_execute(sql).await?)
    }

    /// Begins a transaction (read committed: writes lock the rows they decide on).
    pub async fn begin(&mut self) -> Result<(), StoreError> {
        self.in_transaction = true;
        self.stats.clear();
        self.batch("BEGIN").await
    }

    /// Begins a read-only transaction on one snapshot.
    pub async fn begin_snapshot(&mut self) -> Result<(), StoreError> {
        self.in_transaction = true;
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    /// Commits. Only once this returned is the transaction durable
    /// (`synchronous_commit = on`).
    pub async fn commit(&mut self) -> Result<(), StoreError> {
        self.batch("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    pub async fn rollback(&mut self) {
        self.stats.clear();
        if self.batch("ROLLBACK").await.is_ok() {
            self.in_transaction = false;
        }
    }
}

/// The pool.
pub(crate) struct Pool {
    config: tokio_postgres::Config,
    /// The URL without its password, for messages.
    pub url: String,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("url", &self.url).finish()
    }
}

/// A connection taken from the pool; given back when dropped.
pub(crate) struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.in_transaction
            && !conn.is_closed()
        {
            self.pool.lock().push(conn);
        }
    }
}

impl Pool {
    pub fn new(
        config: tokio_postgres::Config,
        url: String,
        size: usize,
        acquire_timeout: Duration,
    ) -> Pool {
        Pool {
            config,
            url,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
            acquire_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // A plain list: a panic while it was held cannot leave it inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a connection outside the pool (the listener's, a migration's).
    pub async fn open_unpooled(&self) -> Result<Conn, StoreError> {
        Conn::open(&self.config, &self.url).await
    }

    /// Takes an idle connection or opens one; waits for a free slot at most the acquire
    /// timeout, then answers [`StoreError::Busy`].
    pub async fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let permit = match tokio::time::timeout(self.acquire_timeout, self.permits.acquire()).await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => {
                return Err(StoreError::Busy(format!(
                    "every database connection was in use for {} s",
                    self.acquire_timeout.as_secs()
                )));
            }
        };
        let idle = loop {
            let Some(conn) = self.lock().pop() else {
                break None;
            };
            if !conn.is_closed() {
                break Some(conn);
            }
        };
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_unpooled().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// Drops the idle connections and refuses new ones.
    pub fn close(&self) {
        self.permits.close();
        self.lock().clear();
    }
}
