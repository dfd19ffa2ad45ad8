//! Audit entries as the store keeps them, and the report of a chain verification. The
//! hashing itself is `countersign_core::audit`'s.

use chrono::{DateTime, Utc};
use countersign_core::audit::ChainBreak;
use serde_json::Value;

/// The kinds of audit entries the store writes itself (callers may append others).
pub mod kind {
    pub const SUBMITTED: &str = "submitted";
    pub const CLASSIFIED: &str = "classified";
    pub const DECIDED: &str = "decided";
    pub const ESCALATED: &str = "escalated";
    /// The SLA reminded the approvers of the deadline.
    pub const REMINDED: &str = "reminded";
    /// Reminders that fell due while the server was down and went stale were dropped.
    pub const REMINDERS_SKIPPED: &str = "reminders_skipped";
    pub const EXPIRED: &str = "expired";
    pub const AUTO_APPROVED: &str = "auto_approved";
    pub const CANCELLED: &str = "cancelled";
    pub const OUTCOME: &str = "outcome";
    pub const REVIEWED: &str = "reviewed";
    pub const TOKEN_CREATED: &str = "token_created";
    pub const TOKEN_REVOKED: &str = "token_revoked";
    /// The server put a policy in force whose hash differs from the last one recorded.
    pub const POLICY_LOADED: &str = "policy_loaded";
    /// A graduated rule's post-hoc flag rate crossed the target (once per regression).
    pub const GRADUATION_REGRESSED: &str = "graduation_regressed";
}

/// The actor name the store records for steps the system takes on its own (SLA steps).
pub const SYSTEM_ACTOR: &str = "system";

/// The actor name recorded for commands run directly on the database file
/// (`countersign token create --db`, `token revoke --db`).
pub const CLI_ACTOR: &str = "cli";

/// The body field that carries the id of the token an entry's actor presented, next to
/// the actor's name. Absent on entries by `system` and `cli`, which use no token.
pub const ACTOR_TOKEN_FIELD: &str = "actor_token_id";

/// One stored audit entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    /// Empty for entries not about an action (tokens, policy).
    pub action_id: String,
    /// The JSON body exactly as stored and hashed.
    pub body: String,
    /// Hex SHA-256 of the previous entry.
    pub prev: String,
    /// Hex SHA-256 of this entry.
    pub hash: String,
}

impl AuditEntry {
    /// The body parsed as JSON (`Null` if it is not JSON, which only a tampered file has).
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The bytes this entry holds, as pages of the log count them.
    pub fn stored_bytes(&self) -> usize {
        // `seq` and `at` as two 8-byte numbers.
        16 + self.kind.len()
            + self.actor.len()
            + self.action_id.len()
            + self.body.len()
            + self.prev.len()
            + self.hash.len()
    }
}

/// An entry a caller appends (for events outside the action lifecycle, e.g. a policy
/// reload).
#[derive(Clone, Debug, PartialEq)]
pub struct NewAuditEntry {
    pub kind: String,
    pub actor: String,
    pub action_id: Option<String>,
    pub body: Value,
    pub at: DateTime<Utc>,
}

/// The chain's last entry: how many entries the log holds and the hash of the last
/// (all zeros for an empty log). What a checkpoint signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditHead {
    pub size: u64,
    pub hash: [u8; 32],
}

/// A signed checkpoint, to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCheckpoint {
    pub size: u64,
    pub hash: [u8; 32],
    /// The whole signed note.
    pub note: String,
    pub at: DateTime<Utc>,
}

/// A signed checkpoint as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub hash: [u8; 32],
    pub note: String,
    pub signed_at: DateTime<Utc>,
}

/// A chain head someone vouches for (a checkpoint whose signature the caller verified):
/// the log must still hold entry `size`, with this hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointClaim {
    /// Where it came from, for the report (e.g. "checkpoint 3 of cp.txt").
    pub source: String,
    pub size: u64,
    pub hash: [u8; 32],
}

/// What the log says to a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointOutcome {
    /// The log holds entry `size` with the checkpoint's hash, and the chain verifies
    /// through it: the log still extends the checkpoint.
    Extended,
    /// The log ends before entry `size`: entries were cut from its end.
    Truncated { entries: u64 },
    /// Entry `size` has another hash although the chain verifies: the log was rewritten
    /// (and re-linked) up to there.
    Rewritten,
    /// The chain breaks before entry `size`, so the checkpoint cannot be checked.
    Unverifiable { broken_at: u64 },
}

/// One checkpoint checked against the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointCheck {
    pub claim: CheckpointClaim,
    pub outcome: CheckpointOutcome,
}

impl CheckpointCheck {
    pub fn ok(&self) -> bool {
        self.outcome == CheckpointOutcome::Extended
    }

    /// The finding in words.
    pub fn describe(&self) -> String {
        let CheckpointClaim { source, size, .. } = &self.claim;
        match &self.outcome {
            CheckpointOutcome::Extended => {
                format!("the log extends {source} (size {size})")
            }
            CheckpointOutcome::Truncated { entries } => format!(
                "the log no longer extends {source}: it holds {entries} entries but the checkpoint was signed at {size}, so entries {} to {size} were cut from its end",
                entries + 1
            ),
            CheckpointOutcome::Rewritten => format!(
                "the log no longer extends {source}: entry {size} does not have the checkpoint's hash, so the log was rewritten up to entry {size}"
            ),
            CheckpointOutcome::Unverifiable { broken_at } => format!(
                "{source} (size {size}) cannot be checked: the chain breaks at entry {broken_at} before it"
            ),
        }
    }
}

/// A stored action that disagrees with its log entries (or has none, or a log without a
/// row).
#[derive(Clone, Debug, PartialEq)]
pub struct StateMismatch {
    pub action_id: String,
    /// The field that differs, or `row` / `log` when one side is missing or unreadable.
    pub field: String,
    /// What the actions table holds.
    pub stored: Value,
    /// What the log entries say.
    pub derived: Value,
}

/// The database could not be read to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub message: String,
    /// What SQLite's `quick_check` says about the file (at most a few lines).
    pub integrity: Vec<String>,
}

/// The most state mismatches a report lists (all are counted).
pub const MAX_LISTED_MISMATCHES: usize = 100;

/// The result of verifying the audit log: the chain, the checkpoints given, and every
/// action's stored state against its entries.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditReport {
    /// Entries verified good (all of them when `broken` is `None`).
    pub entries: u64,
    /// Hex hash of the last good entry (of the genesis, all zeros, for an empty log).
    pub head: String,
    /// The first problem found in the chain.
    pub broken: Option<ChainBreak>,
    /// Each checkpoint given, checked.
    pub checkpoints: Vec<CheckpointCheck>,
    /// Actions whose state was re-derived and compared.
    pub actions: u64,
    /// The first [`MAX_LISTED_MISMATCHES`] disagreements, in action id order.
    pub state_mismatches: Vec<StateMismatch>,
    /// All disagreements.
    pub state_mismatch_count: u64,
    /// Set when the file could not be read to the end.
    pub damage: Option<Damage>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
            && self.checkpoints.iter().all(CheckpointCheck::ok)
            && self.state_mismatch_count == 0
            && self.damage.is_none()
    }

    /// The first bad entry's sequence number: a changed, removed or reordered entry, or the
    /// first entry cut from the end after a checkpoint.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.broken.as_ref().map(ChainBreak::seq).or_else(|| {
            self.checkpoints
                .iter()
                .find_map(|check| match check.outcome {
                    CheckpointOutcome::Truncated { entries } => Some(entries + 1),
                    _ => None,
                })
        })
    }

    /// Every problem, one sentence each: what `audit verify` prints.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(damage) = &self.damage {
            problems.push(format!("the database file is damaged: {}", damage.message));
        }
        if let Some(broken) = &self.broken {
            problems.push(format!(
                "the audit chain is broken at entry {}: {}",
                broken.seq(),
                broken.describe()
            ));
        }
        for check in self.checkpoints.iter().filter(|c| !c.ok()) {
            problems.push(check.describe());
        }
        for mismatch in &self.state_mismatches {
            problems.push(format!(
                "action {}: stored {} is {} but its log says {}",
                mismatch.action_id, mismatch.field, mismatch.stored, mismatch.derived
            ));
        }
        let unlisted = self.state_mismatch_count - self.state_mismatches.len() as u64;
        if unlisted > 0 {
            problems.push(format!("and {unlisted} more state mismatches"));
        }
        problems
    }
}

/// Counters of the group-commit writer, for benchmarks and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions committed (each is one fsync of the WAL with `synchronous=FULL`).
    pub commits: u64,
    /// Commands executed (successfully or refused) inside those transactions.
    pub commands: u64,
    /// Commands refused by the domain (rolled back to their savepoint, batch unaffected).
    pub refused: u64,
    /// Batches whose commit failed (every command in them answered with an error).
    pub failed_batches: u64,
    /// The largest batch seen.
    pub max_batch: u64,
}

/// Whether the store can take writes now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// Writes fail now (full disk, read-only file, a device error), or the store was closed;
    /// clears when a write succeeds again.
    Unavailable(String),
    /// The file is damaged: writes are refused until a restart on a repaired file.
    Damaged(String),
}
