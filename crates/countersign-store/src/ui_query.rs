//! What the reviewer web UI asks of the store beyond the API's listings: the pending queue
//! filtered by action, agent and tier and walked both ways (for "next" and "previous"),
//! counts per tier, the last approved action like a given one, and windows of the audit log
//! filtered by action and actor.

use chrono::{DateTime, Utc};
use countersign_core::Tier;
use countersign_core::action::ActionName;
use countersign_core::glob::Glob;
use countersign_core::name::Name;

/// The pending queue in (deadline, id) order, filtered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PendingQuery {
    /// Only actions whose name matches this glob.
    pub action: Option<Glob>,
    /// Only actions submitted by this agent.
    pub agent: Option<Name>,
    pub tier: Option<Tier>,
    /// Start after (or, `backwards`, before) this position, exclusive.
    pub from: Option<QueuePosition>,
    /// Walk towards earlier deadlines (the page is still returned in queue order).
    pub backwards: bool,
    /// At most this many items (clamped to 1..=1000; 0 means 50).
    pub limit: u32,
    /// The page ends early once its items hold more than this many stored bytes (0 means
    /// [`crate::DEFAULT_PAGE_BYTES`]).
    pub max_bytes: usize,
}

/// A place in the pending queue: an action's deadline and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePosition {
    pub deadline: DateTime<Utc>,
    pub id: String,
}

impl QueuePosition {
    /// `DEADLINE_MILLIS.ID`, for links.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.deadline.timestamp_millis(), self.id)
    }

    /// Reads [`QueuePosition::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<QueuePosition> {
        let (millis, id) = text.split_once('.')?;
        let deadline = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
        (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())).then(
            || QueuePosition {
                deadline,
                id: id.to_owned(),
            },
        )
    }
}

/// One page of the pending queue.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPage<T> {
    pub items: Vec<T>,
    /// Whether more items lie beyond the page in the direction walked.
    pub more: bool,
}

/// How many actions are pending in each tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierCounts {
    pub approve: u64,
    pub confirm: u64,
    /// Any other tier (only `approve` and `confirm` wait for people, unless a database was
    /// edited by hand).
    pub other: u64,
}

impl TierCounts {
    pub fn total(&self) -> u64 {
        self.approve + self.confirm + self.other
    }
}

/// A window of the audit log, newest first, filtered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// Only entries about this action.
    pub action_id: Option<String>,
    /// Only entries by this actor.
    pub actor: Option<Name>,
    /// Entries with a sequence number below this (default: from the newest).
    pub before: Option<u64>,
    /// At most this many entries (clamped to 1..=1000; 0 means 100).
    pub limit: u32,
    /// At most this many entries are looked at, matching or not, so that a filter that
    /// matches little answers in bounded time (0 means 50,000): the log has no index by
    /// action or actor (BENCHMARKS.md), and the answer says where the scan stopped.
    pub scan: u64,
}

/// What a filtered window of the log found.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditWindow {
    pub entries: Vec<crate::AuditEntry>,
    /// Where to go on to older entries (`before`), if any are left.
    pub next_before: Option<u64>,
    /// The number of entries in the log.
    pub total: u64,
}

/// The newest approved action of `agent` named `action`, other than `except`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastApproved<'a> {
    pub agent: &'a Name,
    pub action: &'a ActionName,
    pub except: &'a str,
}
