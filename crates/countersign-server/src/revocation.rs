//! Ending a revoked token's open waits: a long-poll or event stream ends as soon as the
//! token that opened it is revoked, not when it would have timed out.
//!
//! Each wait registers its token here while it is open. Revocations made through this
//! process's store arrive on the store's revocation broadcast and end that token's waits at
//! once. A token revoked by another process on the same database (`countersign token revoke
//! --db`) sends nothing here, so the same task asks the store every
//! [`DEFAULT_CHECK_INTERVAL`] which of the tokens with open waits are revoked now: one
//! primary-key lookup per such token, a single query for all of them, none at all while
//! nothing waits. The waits themselves never poll.
//!
//! A wait registers *before* it checks the store once (as action watchers register before
//! they read the action): a revocation committed before the check is seen by it, and one
//! committed after reaches the registered wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use countersign_store::{Store, StoreError};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::AppError;

/// How often tokens with open waits are checked for revocations by other processes.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The tokens with open waits, and the task that tells them of revocations.
pub struct Revocations {
    store: Arc<dyn Store>,
    registry: Mutex<Registry>,
    check_interval_ms: AtomicU64,
}

#[derive(Default)]
struct Registry {
    /// Per token with open waits: `true` once it is revoked.
    by_token: HashMap<String, watch::Sender<bool>>,
    /// Whether the checking task runs (it stops when `by_token` is empty).
    checking: bool,
}

impl Revocations {
    pub fn new(store: Arc<dyn Store>) -> Arc<Revocations> {
        Arc::new(Revocations {
            store,
            registry: Mutex::new(Registry::default()),
            check_interval_ms: AtomicU64::new(DEFAULT_CHECK_INTERVAL.as_millis() as u64),
        })
    }

    /// Sets how often other processes' revocations are looked for (from the next check on).
    pub fn set_check_interval(&self, every: Duration) {
        let millis = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
        self.check_interval_ms.store(millis, Ordering::Relaxed);
    }

    fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms.load(Ordering::Relaxed))
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Consistent whatever panicked while it was held: every change is one insert, remove,
        // send or flag.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a wait of the token `token_id`, then checks once whether it is revoked
    /// already (see [`RevocationWatch::is_revoked`]).
    pub async fn watch(
        self: &Arc<Revocations>,
        token_id: &str,
    ) -> Result<RevocationWatch, StoreError> {
        let receiver = self.register(token_id);
        let watch = RevocationWatch {
            revocations: self.clone(),
            token_id: token_id.to_owned(),
            receiver,
        };
        let asked = [token_id.to_owned()];
        if !self.store.revoked_among(&asked).await?.is_empty() {
            self.revoked(token_id);
        }
        Ok(watch)
    }

    fn register(self: &Arc<Revocations>, token_id: &str) -> watch::Receiver<bool> {
        let mut registry = self.registry();
        if !registry.checking {
            registry.checking = true;
            let feed = self.store.subscribe_revocations();
            tokio::spawn(check(Arc::downgrade(self), feed));
        }
        registry
            .by_token
            .entry(token_id.to_owned())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }

    /// Called as a wait ends: the last one of a token removes the token.
    fn release(&self, token_id: &str) {
        let mut registry = self.registry();
        // The leaving wait's receiver is still alive here.
        if registry
            .by_token
            .get(token_id)
            .is_some_and(|s| s.receiver_count() <= 1)
        {
            registry.by_token.remove(token_id);
        }
    }

    /// Ends the waits of `token_id`.
    fn revoked(&self, token_id: &str) {
        if let Some(sender) = self.registry().by_token.get(token_id) {
            sender.send_replace(true);
        }
    }

    /// Asks the store which tokens with open waits are revoked, and ends their waits.
    async fn check_all(&self) {
        let ids: Vec<String> = self.registry().by_token.keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        match self.store.revoked_among(&ids).await {
            Ok(revoked) => {
                for id in revoked {
                    self.revoked(&id);
                }
            }
            // The store is closing or failing; the next check tries again.
            Err(error) => tracing::debug!(%error, "checking for revoked tokens failed"),
        }
    }
}

/// Passes revocations on to waits: at once for this process's, at the next check for other
/// processes'. Ends when no wait is open (dropping its subscription) or the state is gone.
async fn check(revocations: Weak<Revocations>, feed: broadcast::Receiver<String>) {
    let mut feed = Some(feed);
    let mut next_check = match revocations.upgrade() {
        Some(r) => Instant::now() + r.check_interval(),
        None => return,
    };
    loop {
        let received = tokio::select! {
            received = async {
                match feed.as_mut() {
                    Some(feed) => feed.recv().await,
                    None => std::future::pending().await,
                }
            } => Some(received),
            () = tokio::time::sleep_until(next_check) => None,
        };
        let Some(revocations) = revocations.upgrade() else {
            return;
        };
        match received {
            Some(Ok(token_id)) => revocations.revoked(&token_id),
            // Missed some: ask the store about every token with open waits.
            Some(Err(RecvError::Lagged(_))) => revocations.check_all().await,
            // The store is gone: only the periodic check is left (and it fails too, until
            // the waits end with the server).
            Some(Err(RecvError::Closed)) => feed = None,
            None => {
                revocations.check_all().await;
                next_check = Instant::now() + revocations.check_interval();
            }
        }
        let mut registry = revocations.registry();
        if registry.by_token.is_empty() {
            registry.checking = false;
            return;
        }
    }
}

/// One open wait's view of its token: resolves once the token is revoked.
pub struct RevocationWatch {
    revocations: Arc<Revocations>,
    token_id: String,
    receiver: watch::Receiver<bool>,
}

impl RevocationWatch {
    /// Whether the token is known to be revoked now.
    pub fn is_revoked(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves when the token is revoked (never, if it is not).
    pub async fn revoked(&mut self) {
        // The sender lives in the registry for as long as this receiver is registered, so
        // an error cannot happen; if it did, it must not end the wait as if revoked.
        if self.receiver.wait_for(|revoked| *revoked).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn token_id(&self) -> &str {
        &self.token_id
    }
}

impl Drop for RevocationWatch {
    fn drop(&mut self) {
        self.revocations.release(&self.token_id);
    }
}

/// The answer to a long-poll whose token was revoked while it waited.
pub fn revoked_while_waiting() -> AppError {
    AppError::unauthorized("the token was revoked while this request waited")
}
