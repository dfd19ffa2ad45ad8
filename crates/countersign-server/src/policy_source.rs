//! The policy in force, and its hot reload: on SIGHUP, and when the file changed and then
//! stayed unchanged for a settling interval, the file is read whole and checked again. A
//! policy with errors — an empty or half-written file among them — is refused (its
//! diagnostics are logged) and the one in force stays.
//!
//! The settling interval is there because editors and deploy scripts often truncate a file
//! and then write it: read in between, an empty file would drop every `deny` rule, and a
//! half-written one may still parse with the rules at its end missing. The file is read only
//! once its size and modification time held still for the interval, and a read during which
//! they moved is discarded. Writing the new policy to another file and renaming it over the
//! old one (atomic on POSIX) avoids the window altogether; the README says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use countersign_core::policy::{self, Policy};
use tokio::sync::mpsc;

use crate::state::{AppState, Stopping};

/// How long a changed file must stay unchanged before it is read, by default.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

/// What is looked at to notice a change: size and modification time (`None`: no file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
}

/// A policy file that could not be loaded: every problem, rendered with line and column.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PolicyLoadError {
    pub message: String,
    /// The file changed while it was read: worth reading again once it holds still.
    still_changing: bool,
}

impl PolicyLoadError {
    fn new(message: String) -> PolicyLoadError {
        PolicyLoadError {
            message,
            still_changing: false,
        }
    }
}

/// The policy in force, shared by every request.
#[derive(Debug)]
pub struct PolicySource {
    path: Option<PathBuf>,
    current: RwLock<Arc<Policy>>,
    /// The file's stamp as last read (loaded or refused), to notice edits.
    seen: Mutex<Option<Stamp>>,
    /// A change noticed and not read yet: the stamp, and since when it held.
    settling: Mutex<Option<(Option<Stamp>, Instant)>>,
    settle: Duration,
    loaded: AtomicU64,
    refused: AtomicU64,
    /// Each policy put in force after the first, with why: the audit task records them.
    loads: mpsc::UnboundedSender<Load>,
    /// Taken once by the task that records loads in the audit log.
    load_receiver: Mutex<Option<mpsc::UnboundedReceiver<Load>>>,
}

/// A policy put in force, and why: `file_changed`, `sighup` or `reload`.
#[derive(Debug)]
struct Load {
    policy: Arc<Policy>,
    trigger: &'static str,
}

impl PolicySource {
    /// The built-in default policy; never reloads.
    pub fn builtin() -> PolicySource {
        PolicySource::fixed(Policy::builtin())
    }

    /// A policy that never reloads (tests, embedding).
    pub fn fixed(policy: Policy) -> PolicySource {
        PolicySource::new(None, policy, None)
    }

    fn new(path: Option<PathBuf>, policy: Policy, seen: Option<Stamp>) -> PolicySource {
        let (loads, load_receiver) = mpsc::unbounded_channel();
        PolicySource {
            loads,
            load_receiver: Mutex::new(Some(load_receiver)),
            path,
            current: RwLock::new(Arc::new(policy)),
            seen: Mutex::new(seen),
            settling: Mutex::new(None),
            settle: DEFAULT_SETTLE,
            loaded: AtomicU64::new(1),
            refused: AtomicU64::new(0),
        }
    }

    /// Loads the policy file at `path`; refuses a file with any error.
    pub fn load(path: &Path) -> Result<PolicySource, PolicyLoadError> {
        let (policy, seen) = read(path)?;
        Ok(PolicySource::new(Some(path.to_owned()), policy, seen))
    }

    /// Sets how long a changed file must stay unchanged before it is read.
    pub fn with_settle(mut self, settle: Duration) -> PolicySource {
        self.settle = settle;
        self
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
        self.reload_because("reload")
    }

    /// The file the policy comes from (`None`: built in or given by the program).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn reload_because(&self, trigger: &'static str) -> Result<bool, PolicyLoadError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        *self.settling.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let result = read(path);
        let seen = match &result {
            Ok((_, stamp)) => Some(*stamp),
            // Still moving: not seen yet, so the next settled change is read again.
            Err(error) if error.still_changing => None,
            Err(_) => Some(stamp(path)),
        };
        if let Some(seen) = seen {
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        }
        let (policy, _) = result.inspect_err(|_| {
            self.refused.fetch_add(1, Ordering::Relaxed);
        })?;
        let hash = policy.hash().to_owned();
        let policy = Arc::new(policy);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = policy.clone();
        self.loaded.fetch_add(1, Ordering::Relaxed);
        // Nobody listening (no server running) is fine: nothing to record then.
        let _ = self.loads.send(Load { policy, trigger });
        tracing::info!(path = %path.display(), %hash, "policy reloaded; this policy is in force");
        Ok(true)
    }

    /// Reloads once the file changed and then held still for the settling interval.
    fn reload_if_settled(&self) {
        let Some(path) = &self.path else { return };
        let now = stamp(path);
        if *self.seen.lock().unwrap_or_else(|e| e.into_inner()) == now {
            *self.settling.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return;
        }
        let settled = {
            let mut settling = self.settling.lock().unwrap_or_else(|e| e.into_inner());
            match *settling {
                Some((seen, since)) if seen == now => since.elapsed() >= self.settle,
                _ => {
                    *settling = Some((now, Instant::now()));
                    false
                }
            }
        };
        if settled {
            self.reload_logged("file_changed");
        }
    }

    fn reload_logged(&self, why: &'static str) {
        if let Err(error) = self.reload_because(why) {
            tracing::error!(
                trigger = why,
                hash = %self.current().hash(),
                "policy reload refused, keeping the policy in force:\n{error}"
            );
        }
    }

    /// The policy in force and the reloads so far, in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP countersign_policy_info The policy in force (its SHA-256 as the hash label).\n\
             # TYPE countersign_policy_info gauge\n\
             countersign_policy_info{{hash=\"{}\"}} 1\n\
             # HELP countersign_policy_loads_total Policy loads, by result (refused: the old policy stayed).\n\
             # TYPE countersign_policy_loads_total counter\n\
             countersign_policy_loads_total{{result=\"loaded\"}} {}\n\
             countersign_policy_loads_total{{result=\"refused\"}} {}",
            self.current().hash(),
            self.loaded.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        );
    }

    /// Watches for SIGHUP and file changes until `shutdown` resolves. Looking at the file's
    /// size and modification time a few times a settling interval is cheap and needs no
    /// platform watcher.
    pub async fn watch(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        if self.path.is_none() {
            return;
        }
        let period = (self.settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hangup = hangup_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => self.reload_if_settled(),
                Some(()) = next_hangup(&mut hangup) => self.reload_logged("sighup"),
            }
        }
    }
}

/// Records every policy the server puts in force in the audit log (`policy_loaded`, by
/// `system`; at start with the operator's login name when the environment has one): the one
/// in force at start, then each reload, until `stopping`. The store writes an entry only
/// when the hash differs from the last one recorded, so a restart with the same file adds
/// nothing. A failed write is logged and retried with the next load.
pub(crate) async fn audit_loads(state: AppState, mut stopping: Stopping) {
    let source = state.policy();
    let receiver = source
        .load_receiver
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    record_load(&state, source.current(), "start").await;
    let Some(mut receiver) = receiver else { return };
    loop {
        tokio::select! {
            () = stopping.wait() => return,
            load = receiver.recv() => match load {
                Some(load) => record_load(&state, load.policy, load.trigger).await,
                None => return,
            },
        }
    }
}

async fn record_load(state: &AppState, policy: Arc<Policy>, trigger: &'static str) {
    let source = state.policy();
    let operator = (trigger == "start")
        .then(|| {
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
        })
        .flatten();
    let load = countersign_store::PolicyLoad {
        hash: policy.hash().to_owned(),
        source: policy.source().to_owned(),
        path: source.path().map(|p| p.display().to_string()),
        trigger: trigger.to_owned(),
        actor: countersign_store::SYSTEM_ACTOR.to_owned(),
        operator,
        at: state.clock().now(),
    };
    match state.store().record_policy_load(load).await {
        Ok(Some(entry)) => {
            tracing::info!(seq = entry.seq, hash = %policy.hash(), trigger, "policy load recorded in the audit log");
            // Another policy: a regression announced under the old one is re-armed.
            state.nudge_graduation();
        }
        Ok(None) => {}
        Err(error) => {
            tracing::error!(%error, hash = %policy.hash(), "could not record the policy load in the audit log")
        }
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: metadata.modified().ok()?,
        len: metadata.len(),
    })
}

/// Reads and checks the whole file; returns the policy and the file's stamp as read. A file
/// that changed while it was read is refused (the next settled change reads it again).
fn read(path: &Path) -> Result<(Policy, Option<Stamp>), PolicyLoadError> {
    let shown = path.display().to_string();
    let before = stamp(path);
    let source = std::fs::read_to_string(path)
        .map_err(|e| PolicyLoadError::new(format!("cannot read policy file {shown}: {e}")))?;
    let after = stamp(path);
    if before != after || after.is_some_and(|s| s.len != source.len() as u64) {
        return Err(PolicyLoadError {
            message: format!(
                "policy file {shown} changed while it was read; it is read again once it holds still"
            ),
            still_changing: true,
        });
    }
    let checked = policy::check(&source);
    for warning in checked.diagnostics.iter().filter(|d| !d.is_error()) {
        tracing::warn!("{}", warning.render(&shown, &source));
    }
    let policy = checked.policy.ok_or_else(|| {
        let rendered: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.render(&shown, &source))
            .collect();
        PolicyLoadError::new(format!(
            "policy file {shown} has {} error(s):\n{}",
            rendered.len(),
            rendered.join("\n")
        ))
    })?;
    Ok((policy, after))
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
