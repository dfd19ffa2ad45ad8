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
    pub const EXPIRED: &str = "expired";
    pub const AUTO_APPROVED: &str = "auto_approved";
    pub const CANCELLED: &str = "cancelled";
    pub const OUTCOME: &str = "outcome";
    pub const REVIEWED: &str = "reviewed";
    pub const TOKEN_CREATED: &str = "token_created";
    pub const TOKEN_REVOKED: &str = "token_revoked";
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

/// The result of verifying the whole chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries verified good (all of them when `broken` is `None`).
    pub entries: u64,
    /// Hex hash of the last good entry (of the genesis, all zeros, for an empty log).
    pub head: String,
    /// The first problem found.
    pub broken: Option<ChainBreak>,
}

impl ChainReport {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }

    /// The first bad entry's sequence number.
    pub fn first_bad_seq(&self) -> Option<u64> {
        self.broken.as_ref().map(ChainBreak::seq)
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
