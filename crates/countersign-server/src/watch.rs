//! Watching one action for changes, for long-polls and event streams. The store broadcasts
//! every committed change; a watcher subscribes *before* it reads the action, so no change
//! can slip between the read and the wait, and it never polls the database.

use std::sync::Arc;

use countersign_store::{ActionRecord, StoreError};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::state::{AppState, Stopping};

/// A subscription to one action's changes.
pub struct ActionWatch {
    state: AppState,
    id: String,
    changes: broadcast::Receiver<Arc<ActionRecord>>,
    stopping: Stopping,
    /// The newest version seen.
    current: ActionRecord,
}

impl ActionWatch {
    /// Subscribes, then reads the action. `Ok(None)`: no such action.
    pub async fn start(state: &AppState, id: &str) -> Result<Option<ActionWatch>, StoreError> {
        let changes = state.store().subscribe();
        let Some(current) = state.store().action(id).await? else {
            return Ok(None);
        };
        Ok(Some(ActionWatch {
            state: state.clone(),
            id: id.to_owned(),
            changes,
            stopping: state.stopping(),
            current,
        }))
    }

    pub fn current(&self) -> &ActionRecord {
        &self.current
    }

    /// Waits for the next version of the action that is newer than the current one and
    /// makes it current. `false`: the server is stopping (or the store closed).
    pub async fn next(&mut self) -> Result<bool, StoreError> {
        loop {
            let received = tokio::select! {
                () = self.stopping.wait() => return Ok(false),
                received = self.changes.recv() => received,
            };
            let candidate = match received {
                Ok(record) if record.id == self.id => (*record).clone(),
                Ok(_) => continue,
                // Missed some changes: the stored action is the truth.
                Err(RecvError::Lagged(_)) => match self.state.store().action(&self.id).await? {
                    Some(record) => record,
                    None => return Ok(false),
                },
                Err(RecvError::Closed) => return Ok(false),
            };
            if candidate.version > self.current.version {
                self.current = candidate;
                return Ok(true);
            }
        }
    }
}
