//! What graduation asks of the history: recorded submissions streamed for a replay, the
//! evidence per rule and action aggregated in the database, the policies the server put in
//! force, and the regressions reviewers were told of.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use countersign_core::action::{ActionName, AgentName, Confidence, Hints, ProposedAction};
use countersign_core::graduation::{Evidence, GroupKey, RealOutcome, Recorded};
use countersign_core::{Status, Tier};
use serde_json::Value;

use crate::error::StoreError;
use crate::sqlite::rows::from_millis;

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

/// A recorded submission's columns as every backend reads them (the agent's own
/// arguments: `original_args` after a `modify`).
pub(crate) struct RecordedColumns {
    pub id: String,
    pub action: String,
    pub agent: String,
    pub args: String,
    pub context: String,
    pub confidence: Option<f64>,
    pub hints: String,
    pub created_at: i64,
    pub tier: String,
    pub rule: Option<String>,
    pub status: String,
    pub modified: bool,
    pub reviewed: bool,
    pub flagged: bool,
}

impl RecordedColumns {
    pub(crate) fn recorded(self) -> Result<Recorded, StoreError> {
        let id = self.id;
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("action {id}: {what}: {e}"))
        };
        let mut request = ProposedAction::new(
            ActionName::parse(&self.action).map_err(|e| bad("action", &e))?,
            AgentName::parse(&self.agent).map_err(|e| bad("agent", &e))?,
        );
        request.args = serde_json::from_str(&self.args).map_err(|e| bad("args", &e))?;
        request.context = serde_json::from_str(&self.context).map_err(|e| bad("context", &e))?;
        request.confidence = self
            .confidence
            .map(Confidence::new)
            .transpose()
            .map_err(|e| bad("confidence", &e))?;
        request.hints = serde_json::from_str::<Hints>(&self.hints).map_err(|e| bad("hints", &e))?;
        let status: Status = self.status.parse().map_err(|e| bad("status", &e))?;
        Ok(Recorded {
            at: from_millis(self.created_at)?,
            tier: self.tier.parse().map_err(|e| bad("tier", &e))?,
            rule: self.rule,
            outcome: RealOutcome::of(status, self.modified),
            reviewed: self.reviewed,
            flagged: self.flagged,
            request,
            id,
        })
    }
}

/// One row of the decisions' aggregate (a rule, action, tier and status), as every backend
/// reads it. A grant's use is an `allowed` action: it counts among the submissions at its
/// recorded tier, never as a person's approval.
pub(crate) struct DecisionsRow {
    pub rule: Option<String>,
    pub action: String,
    pub tier: String,
    pub status: String,
    pub count: i64,
    pub modified: i64,
    pub first_submitted: Option<i64>,
    pub last_submitted: Option<i64>,
    pub last_decided: Option<i64>,
}

impl DecisionsRow {
    /// Adds this row to its group.
    pub(crate) fn add_to(
        self,
        groups: &mut BTreeMap<GroupKey, Evidence>,
    ) -> Result<(), StoreError> {
        let corrupt = |what: String| StoreError::Corrupt(what);
        let key = GroupKey {
            rule: self.rule,
            action: self.action,
        };
        let tier: Tier = self
            .tier
            .parse()
            .map_err(|e| corrupt(format!("tier {:?}: {e}", self.tier)))?;
        let status: Status = self
            .status
            .parse()
            .map_err(|e| corrupt(format!("status {:?}: {e}", self.status)))?;
        let n = self.count.max(0) as u64;
        let modified = (self.modified.max(0) as u64).min(n);
        let mut part = Evidence::new(key.clone());
        part.add_tier(tier, n);
        match status {
            Status::Approved => {
                part.approved = n - modified;
                part.modified = modified;
            }
            Status::Rejected => part.rejected = n,
            Status::Expired => part.expired = n,
            _ => {}
        }
        let time = |t: Option<i64>| t.map(from_millis).transpose();
        part.first_submitted = time(self.first_submitted)?;
        part.last_submitted = time(self.last_submitted)?;
        if matches!(status, Status::Approved | Status::Rejected) {
            part.last_decided = time(self.last_decided)?;
        }
        groups
            .entry(key.clone())
            .or_insert_with(|| Evidence::new(key))
            .merge(&part);
        Ok(())
    }
}

/// Adds one group's post-hoc reviews (how many, how many flagged, the latest) to it.
pub(crate) fn add_reviews(
    groups: &mut BTreeMap<GroupKey, Evidence>,
    key: GroupKey,
    reviewed: i64,
    flagged: i64,
    last: Option<i64>,
) -> Result<(), StoreError> {
    let group = groups
        .entry(key.clone())
        .or_insert_with(|| Evidence::new(key));
    group.reviewed += reviewed.max(0) as u64;
    group.flagged += flagged.max(0) as u64;
    group.last_decided = group.last_decided.max(last.map(from_millis).transpose()?);
    Ok(())
}
