//! How many long-polls and event streams each token has open, capped by the configuration
//! (`max_waits_per_token`). A waiter holds a [`WaitPermit`] for as long as it waits; the
//! permit is given back when it is dropped, however the wait ends (answered, timed out, the
//! client gone, the server stopping), so a count can never leak.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::error::AppError;

/// Open waits by token id.
pub struct WaitCaps {
    per_token: usize,
    open: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

/// One open wait of one token.
pub struct WaitPermit {
    caps: Arc<WaitCaps>,
    token_id: String,
}

impl WaitCaps {
    pub fn new(per_token: usize) -> Arc<WaitCaps> {
        Arc::new(WaitCaps {
            per_token,
            open: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Every change under the lock is one insert, increment or removal.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit for one more wait by `token_id`, or `429 too_many_waits`.
    pub fn acquire(self: &Arc<WaitCaps>, token_id: &str) -> Result<WaitPermit, AppError> {
        let mut open = self.open();
        let count = open.entry(token_id.to_owned()).or_insert(0);
        if *count >= self.per_token {
            return Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_waits",
                format!(
                    "this token already has {} long-polls and event streams open, the most \
                     this server allows; close one or wait without ?wait",
                    self.per_token
                ),
            ));
        }
        *count += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(WaitPermit {
            caps: self.clone(),
            token_id: token_id.to_owned(),
        })
    }

    /// Waits open now, all tokens together (for `/metrics`).
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for WaitPermit {
    fn drop(&mut self) {
        let mut open = self.caps.open();
        if let Some(count) = open.get_mut(&self.token_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.token_id);
            }
        }
        self.caps.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_per_token_and_given_back_on_drop() {
        let caps = WaitCaps::new(2);
        let first = caps.acquire("a").unwrap();
        let second = caps.acquire("a").unwrap();
        let error = caps.acquire("a").err().unwrap();
        assert_eq!((error.status.as_u16(), error.code), (429, "too_many_waits"));
        let other = caps.acquire("b").unwrap();
        assert_eq!(caps.total(), 3);
        drop(first);
        let again = caps.acquire("a").unwrap();
        drop((second, again, other));
        assert_eq!(caps.total(), 0);
        assert!(caps.open().is_empty(), "no entry left behind");
    }
}
