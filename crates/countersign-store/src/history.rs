//! What graduation asks of the history: recorded submissions streamed for a replay, the
//! evidence per rule and action aggregated in the database, the policies the server put in
//! force, and the regressions reviewers were told of.

use chrono::{DateTime, Utc};
use countersign_core::graduation::Recorded;
use serde_json::Value;

/// Called with each recorded submission of a history scan, on a blocking thread; `false`
/// stops the scan (a time limit, a caller that went away).
pub type HistoryVisitor = Box<dyn FnMut(Recorded) -> bool + Send>;

/// A policy the server put in force.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyLoad {
    pub hash: String,
    /// The policy's text.
    pub source: String,
    /// The file it came from (`None`: built in, or given by the embedding program).
    pub path: Option<String>,
    /// Why it was loaded: `start`, `file_changed`, `sighup`.
    pub trigger: String,
    /// Who loaded it: the audit entry's actor (`system`: the server did, on its own or at
    /// start).
    pub actor: String,
    /// The login name of who started the server, when the environment says (at start).
    pub operator: Option<String>,
    pub at: DateTime<Utc>,
}

/// A regression of a graduated rule that holds now.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRegression {
    pub rule: String,
    pub action: String,
    /// The policy in force: a regression is announced once per policy.
    pub policy_hash: String,
    /// The audit entry's body: the evidence and the revert proposal.
    pub body: Value,
}

/// A regression reviewers were told of and that has not cleared.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveRegression {
    pub rule: String,
    pub action: String,
    pub policy_hash: String,
    pub fired_at: DateTime<Utc>,
    /// The `graduation_regressed` audit entry.
    pub audit_seq: u64,
    pub body: Value,
}
