//! The policy in force, and its hot reload: on SIGHUP and when the file's modification time
//! changes, the file is read and checked again. A policy with errors is refused — its
//! diagnostics are logged — and the one in force stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use countersign_core::policy::{self, Policy};

/// A policy file that could not be loaded: every problem, rendered with line and column.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyLoadError(pub String);

/// The policy in force, shared by every request.
#[derive(Debug)]
pub struct PolicySource {
    path: Option<PathBuf>,
    current: RwLock<Arc<Policy>>,
    /// The modification time of the file as last read, to notice edits.
    seen: Mutex<Option<SystemTime>>,
}

impl PolicySource {
    /// The built-in default policy; never reloads.
    pub fn builtin() -> PolicySource {
        PolicySource::fixed(Policy::builtin())
    }

    /// A policy that never reloads (tests, embedding).
    pub fn fixed(policy: Policy) -> PolicySource {
        PolicySource {
            path: None,
            current: RwLock::new(Arc::new(policy)),
            seen: Mutex::new(None),
        }
    }

    /// Loads the policy file at `path`; refuses a file with any error.
    pub fn load(path: &Path) -> Result<PolicySource, PolicyLoadError> {
        let seen = modified(path);
        let policy = read(path)?;
        Ok(PolicySource {
            path: Some(path.to_owned()),
            current: RwLock::new(Arc::new(policy)),
            seen: Mutex::new(seen),
        })
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the file again. `Ok(true)`: a new policy is in force; `Ok(false)`: there is no
    /// file to read; `Err`: the new text was refused and the old policy stays.
    pub fn reload(&self) -> Result<bool, PolicyLoadError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = modified(path);
        let policy = read(path)?;
        let hash = policy.hash().to_owned();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
        tracing::info!(path = %path.display(), %hash, "policy reloaded");
        Ok(true)
    }

    /// Reloads if the file's modification time changed since it was last read.
    fn reload_if_changed(&self) {
        let Some(path) = &self.path else { return };
        let now = modified(path);
        let changed = *self.seen.lock().unwrap_or_else(|e| e.into_inner()) != now;
        if changed {
            self.reload_logged("file changed");
        }
    }

    fn reload_logged(&self, why: &str) {
        if let Err(error) = self.reload() {
            tracing::error!(
                trigger = why,
                "policy reload refused, keeping the policy in force:\n{error}"
            );
        }
    }

    /// Watches for SIGHUP and file changes until `shutdown` resolves. Polling the file's
    /// modification time once a second is cheap and needs no platform watcher.
    pub async fn watch(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        if self.path.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hangup = hangup_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => self.reload_if_changed(),
                Some(()) = next_hangup(&mut hangup) => self.reload_logged("SIGHUP"),
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<Policy, PolicyLoadError> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path)
        .map_err(|e| PolicyLoadError(format!("cannot read policy file {shown}: {e}")))?;
    let checked = policy::check(&source);
    for warning in checked.diagnostics.iter().filter(|d| !d.is_error()) {
        tracing::warn!("{}", warning.render(&shown, &source));
    }
    checked.policy.ok_or_else(|| {
        let rendered: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(&shown, &source))
            .collect();
        PolicyLoadError(format!(
            "policy file {shown} has {} error(s):\n{}",
            rendered.len(),
            rendered.join("\n")
        ))
    })
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
