//! Changes made on other instances, for this instance's watchers: every action write's
//! transaction sends a notification on [`CHANNEL`] (delivered by PostgreSQL when, and only
//! if, it commits), naming the instance and the actions it changed. One connection per
//! instance `LISTEN`s; for each notification from another instance it reads the actions
//! and broadcasts them to the store's subscribers, as if written here. Long-polls and event
//! streams on instance A thus wake as soon as B's decision commits.
//!
//! A listener that lost its connection missed what was sent meanwhile: after it listens
//! again, it re-reads the actions changed since it was last known to be listening (by the
//! database's clock, `actions.changed_at`, with a margin for transactions that began before
//! and committed after) and broadcasts those, so that no waiter sleeps through a decision
//! made during the outage. Liveness is checked every few seconds on the same connection.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::Inner;
use super::rows::{ACTION_COLUMNS, action_from_row};
use crate::error::StoreError;

/// The notification channel.
pub(crate) const CHANNEL: &str = "countersign_changes";

/// How often the listener checks its connection (and moves its watermark).
const KEEPALIVE: Duration = Duration::from_secs(5);
/// How far before the watermark a reconnected listener re-reads: longer than any write
/// transaction lasts (statements are bounded by the statement timeout).
const RESYNC_MARGIN_MILLIS: i64 = 30_000;
/// The most actions a reconnected listener re-reads; past that, subscribers lag (and their
/// watchers re-read what they watch).
const RESYNC_LIMIT: i64 = 10_000;
/// The pause before reconnecting.
const RECONNECT: Duration = Duration::from_millis(500);

/// Runs until the store is dropped or closed.
pub(crate) async fn run(store: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut watermark: Option<i64> = None;
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let session = listen(&inner, &mut watermark, &mut shutdown).await;
        drop(inner);
        match session {
            Ok(Stop::Shutdown) => return,
            Ok(Stop::Lost) => {}
            Err(error) => tracing::warn!(%error, "change listener cannot connect; retrying"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(RECONNECT) => {}
        }
    }
}

enum Stop {
    Shutdown,
    Lost,
}

/// One listening session: connect, `LISTEN`, catch up, then pass notifications on until
/// the connection is lost or the store shuts down.
async fn listen(
    inner: &Arc<Inner>,
    watermark: &mut Option<i64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Stop, StoreError> {
    let (client, mut connection) = inner
        .config
        .connect(NoTls)
        .await
        .map_err(|e| super::errors::connect_error(&inner.pool.url, e))?;
    let (payloads, mut received) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if payloads.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let _driver = AbortOnDrop(driver);
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let now = database_millis(&client).await?;
    if let Some(last) = watermark.replace(now) {
        // Listening again: what changed while nobody listened is read now.
        resync(inner, last - RESYNC_MARGIN_MILLIS).await?;
    }
    inner
        .listening
        .store(true, std::sync::atomic::Ordering::Release);
    let stop = loop {
        tokio::select! {
            _ = shutdown.changed() => break Stop::Shutdown,
            payload = received.recv() => match payload {
                Some(payload) => changed_elsewhere(inner, &payload).await,
                None => break Stop::Lost,
            },
            () = tokio::time::sleep(KEEPALIVE) => match database_millis(&client).await {
                Ok(now) => *watermark = Some(now),
                Err(_) => break Stop::Lost,
            },
        }
    };
    inner
        .listening
        .store(false, std::sync::atomic::Ordering::Release);
    Ok(stop)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn database_millis(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    Ok(client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .await?
        .get(0))
}

/// A notification: `INSTANCE ID ID...`. This instance's own changes were broadcast when
/// they committed.
async fn changed_elsewhere(inner: &Arc<Inner>, payload: &str) {
    let mut words = payload.split(' ');
    if words.next() == Some(inner.instance.as_str()) || inner.changes.receiver_count() == 0 {
        return;
    }
    let ids: Vec<String> = words.map(str::to_owned).collect();
    if ids.is_empty() {
        return;
    }
    let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE id = ANY($1)");
    if let Err(error) = broadcast(inner, &sql, &[&ids]).await {
        tracing::warn!(%error, "cannot read actions changed on another instance");
    }
}

/// Re-reads the actions changed since `since_millis` (database clock) and broadcasts them.
async fn resync(inner: &Arc<Inner>, since_millis: i64) -> Result<(), StoreError> {
    if inner.changes.receiver_count() == 0 {
        return Ok(());
    }
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM actions \
         WHERE changed_at >= to_timestamp($1::bigint / 1000.0) \
         ORDER BY changed_at DESC LIMIT $2"
    );
    broadcast(inner, &sql, &[&since_millis, &RESYNC_LIMIT]).await
}

async fn broadcast(
    inner: &Arc<Inner>,
    sql: &str,
    params: super::pool::Params<'_>,
) -> Result<(), StoreError> {
    let rows = inner.pool.get().await?.query(sql, params).await?;
    for row in &rows {
        match action_from_row(row) {
            Ok(record) => {
                let _ = inner.changes.send(Arc::new(record));
            }
            Err(error) => tracing::warn!(%error, "an action changed elsewhere does not decode"),
        }
    }
    Ok(())
}
