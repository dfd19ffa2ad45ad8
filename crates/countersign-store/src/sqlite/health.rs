//! Whether the store can take writes, as its last writes showed: a write that failed for a
//! storage reason (full disk, read-only file, device error, lock held elsewhere) makes the
//! store unavailable until a later write commits; a damaged file makes it damaged until
//! restart. `/healthz` reads this, and probes with a real write when it is stale.

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::audit_log::StoreHealth;
use crate::error::StoreError;

/// A health answer older than this is checked with a probe write first.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(10);
/// The free space a healthy store has beside its file: room for a few of the largest
/// requests (64 KiB of `args`, written to the row and to the log).
pub(crate) const HEADROOM: usize = 256 * 1024;

/// Checks that the file system holding `database` has [`HEADROOM`] bytes free, by writing
/// (and syncing, and removing) a file of that size beside it. A probe write into the
/// database alone cannot tell: after a write failed for a full disk, the write-ahead log
/// keeps the space that write had taken, so small writes fit again while real requests do
/// not.
pub(crate) fn check_headroom(database: &Path) -> Result<(), StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push("-headroom");
    let probe = Path::new(&name);
    let written = (|| {
        let mut file = std::fs::File::create(probe)?;
        file.write_all(&vec![0u8; HEADROOM])?;
        file.sync_data()
    })();
    let _ = std::fs::remove_file(probe);
    written.map_err(|error| {
        StoreError::Unavailable(if error.kind() == std::io::ErrorKind::StorageFull {
            format!(
                "the disk is full: less than {} KiB free beside the database ({error})",
                HEADROOM / 1024
            )
        } else {
            format!("cannot write beside the database ({error})")
        })
    })
}

#[derive(Debug, Default)]
struct Condition {
    failing: Option<String>,
    damaged: Option<String>,
    last_write: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct Health {
    condition: Mutex<Condition>,
    /// One probe at a time: concurrent health checks share its answer instead of each
    /// writing a probe of their own.
    probing: std::sync::atomic::AtomicBool,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Condition> {
        // Plain data: a panic while it was held cannot leave it inconsistent.
        self.condition
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A write committed.
    pub fn wrote(&self) {
        let mut condition = self.lock();
        condition.failing = None;
        condition.last_write = Some(Instant::now());
    }

    /// Records `error` if it is a storage failure (other errors say nothing about health).
    pub fn failed(&self, error: &StoreError) {
        let mut condition = self.lock();
        match error {
            StoreError::Damaged(message) => {
                condition.damaged.get_or_insert_with(|| message.clone());
            }
            StoreError::Unavailable(reason) | StoreError::Busy(reason) => {
                condition.failing = Some(reason.clone());
            }
            _ => {}
        }
    }

    /// The damage found, if any: writes are refused with it.
    pub fn damage(&self) -> Option<String> {
        self.lock().damaged.clone()
    }

    pub fn current(&self) -> StoreHealth {
        let condition = self.lock();
        if let Some(damage) = &condition.damaged {
            return StoreHealth::Damaged(damage.clone());
        }
        match &condition.failing {
            Some(reason) => StoreHealth::Unavailable(reason.clone()),
            None => StoreHealth::Ok,
        }
    }

    /// Whether the answer needs a probe write (failing now, to see it recover; or no write
    /// for a while, since a disk can fill up while nobody writes) and none is running; if
    /// so, the caller runs it while holding the returned guard (dropped, even by a caller
    /// that gave up waiting, it lets the next probe run).
    pub fn start_probe(&self) -> Option<ProbeGuard<'_>> {
        use std::sync::atomic::Ordering;
        let needed = {
            let condition = self.lock();
            condition.damaged.is_none()
                && (condition.failing.is_some()
                    || condition
                        .last_write
                        .is_none_or(|at| at.elapsed() >= PROBE_AFTER))
        };
        let won = needed
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        won.then_some(ProbeGuard(self))
    }
}

/// A probe in progress; see [`Health::start_probe`].
pub(crate) struct ProbeGuard<'a>(&'a Health);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0
            .probing
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// A real commit, to learn whether writes go through: rewrites the probe row, after checking
/// that the disk beside the database has headroom.
pub(crate) fn probe(
    conn: &rusqlite::Connection,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    if let Some(path) = conn.path() {
        check_headroom(std::path::Path::new(path))?;
    }
    conn.prepare_cached(
        "INSERT INTO write_probe (id, at) VALUES (1, ?) \
         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    )?
    .execute([super::rows::millis(now)])?;
    Ok(())
}
