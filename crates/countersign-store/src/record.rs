//! The records the store keeps about actions, and what callers hand it to create or change
//! them. Domain types from `countersign-core` are used as they are; only what the core does
//! not model (review sampling, outcomes, idempotency) is defined here.

use chrono::{DateTime, Utc};
use countersign_core::action::{ActionName, AgentName};
use countersign_core::action::{Hints, ProposedAction};
use countersign_core::lifecycle::{Decision, Gate, Reclassified, TimeoutPlan};
use countersign_core::policy::{Policy, ReviewSettings};
use countersign_core::{Approvers, Status, Tier};
use serde_json::{Map, Value};

/// Everything the store knows about one action.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionRecord {
    pub id: String,
    pub action: String,
    /// The name of the agent token that submitted it.
    pub agent: String,
    /// The person responsible for that agent (never allowed to approve its actions).
    pub owner: Option<String>,
    pub status: Status,
    pub tier: Tier,
    /// The rule that classified it; `None`: the policy's `[defaults]`.
    pub rule: Option<String>,
    pub reason: String,
    /// The arguments the agent may run with (a reviewer's after a `modify`).
    pub args: Map<String, Value>,
    /// The agent's arguments, once a `modify` replaced them.
    pub original_args: Option<Map<String, Value>>,
    pub reasoning: Option<String>,
    pub context: Map<String, Value>,
    pub confidence: Option<f64>,
    pub hints: Hints,
    pub idempotency_key: Option<String>,
    /// Who may decide (before escalation).
    pub approvers: Approvers,
    /// Groups the SLA added as approvers.
    pub escalated_to: Vec<String>,
    pub escalated: bool,
    pub approvals_required: u32,
    pub decisions: Vec<Decision>,
    pub deadline: Option<DateTime<Utc>>,
    pub timeout: Option<TimeoutPlan>,
    /// Hash of the policy version that classified it.
    pub policy_hash: String,
    /// The rule's `review_sample` rate at submission.
    pub review_sample: f64,
    pub review: ReviewState,
    pub outcome: Option<Outcome>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Starts at 1 and grows by one with every change: lets a watcher tell whether a record
    /// it holds is older than one it is shown.
    pub version: u64,
}

impl ActionRecord {
    /// The lifecycle view of this record, for `countersign_core::lifecycle` and `sla`.
    pub fn gate(&self) -> Gate {
        Gate {
            action: self.action.clone(),
            agent: self.agent.clone(),
            owner: self.owner.clone(),
            tier: self.tier,
            status: self.status,
            approvers: self.approvers.clone(),
            escalated_to: self.escalated_to.clone(),
            approvals_required: self.approvals_required,
            decisions: self.decisions.clone(),
            args: self.args.clone(),
            original_args: self.original_args.clone(),
            deadline: self.deadline,
            timeout: self.timeout.clone(),
            escalated: self.escalated,
        }
    }

    /// Classifies `args` as this action's new arguments with `policy` at `now`, exactly like a
    /// submission of the same action by the same agent with the same context, confidence
    /// and hints: what a `modify` verdict must satisfy on top of what the action needed.
    pub fn reclassify(
        &self,
        policy: &Policy,
        args: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Reclassified, crate::StoreError> {
        let corrupt = |e| crate::StoreError::Corrupt(format!("action {}: {e}", self.id));
        let mut proposal = ProposedAction::new(
            ActionName::parse(&self.action).map_err(corrupt)?,
            AgentName::parse(&self.agent).map_err(corrupt)?,
        );
        proposal.args = args;
        proposal.reasoning = self.reasoning.clone();
        proposal.context = self.context.clone();
        proposal.confidence = self
            .confidence
            .map(countersign_core::Confidence::new)
            .transpose()
            .map_err(|e| crate::StoreError::Corrupt(format!("action {}: {e}", self.id)))?;
        proposal.hints = self.hints;
        let classification = policy.classify(&proposal, now);
        Ok(Reclassified {
            tier: classification.tier,
            rule: policy.rule_name(&classification).map(str::to_owned),
            reason: policy.reason(&classification),
            settings: policy.review_settings(&classification),
        })
    }

    /// Takes over the lifecycle fields of `gate` (the result of a lifecycle step).
    pub fn apply_gate(&mut self, gate: Gate) {
        self.tier = gate.tier;
        self.status = gate.status;
        self.approvers = gate.approvers;
        self.escalated_to = gate.escalated_to;
        self.approvals_required = gate.approvals_required;
        self.decisions = gate.decisions;
        self.args = gate.args;
        self.original_args = gate.original_args;
        self.deadline = gate.deadline;
        self.timeout = gate.timeout;
        self.escalated = gate.escalated;
    }
}

/// Whether an action is in the post-hoc review queue.
#[derive(Clone, Debug, PartialEq)]
pub enum ReviewState {
    /// Not drawn into the sample (or not a `logged` action).
    NotSampled,
    /// Sampled, waiting for a reviewer.
    Open,
    Reviewed(Review),
}

/// A post-hoc review of an allowed `logged` action.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub reviewer: String,
    pub verdict: ReviewVerdict,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewVerdict {
    Ok,
    Flag,
}

impl ReviewVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVerdict::Ok => "ok",
            ReviewVerdict::Flag => "flag",
        }
    }

    pub fn parse(text: &str) -> Option<ReviewVerdict> {
        [ReviewVerdict::Ok, ReviewVerdict::Flag]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

/// What the agent reported after running the action.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status: OutcomeStatus,
    pub detail: Option<Value>,
    pub reported_by: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeStatus {
    Succeeded,
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Succeeded => "succeeded",
            OutcomeStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<OutcomeStatus> {
        [OutcomeStatus::Succeeded, OutcomeStatus::Failed]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

/// An idempotency key with the hash of the request body it came with
/// (see [`crate::request_hash`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub body_hash: String,
}

/// A classified submission, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAction {
    pub proposal: ProposedAction,
    /// The owner of the submitting agent token.
    pub owner: Option<String>,
    /// The id of the submitting token, recorded next to the agent's name in the audit log.
    pub token_id: Option<String>,
    pub idempotency: Option<Idempotency>,
    pub tier: Tier,
    pub rule: Option<String>,
    pub reason: String,
    /// Who may decide, how many, by when; read only for `approve`/`confirm` tiers (and
    /// `review_sample` for `logged`).
    pub settings: ReviewSettings,
    pub policy_hash: String,
    pub at: DateTime<Utc>,
}

impl NewAction {
    /// Classifies `proposal` with `policy` at `now`. The owner, the token and the
    /// idempotency record are left empty for the caller to fill in.
    pub fn classify(policy: &Policy, proposal: ProposedAction, now: DateTime<Utc>) -> NewAction {
        let classification = policy.classify(&proposal, now);
        NewAction {
            tier: classification.tier,
            rule: policy.rule_name(&classification).map(str::to_owned),
            reason: policy.reason(&classification),
            settings: policy.review_settings(&classification),
            policy_hash: policy.hash().to_owned(),
            proposal,
            owner: None,
            token_id: None,
            idempotency: None,
            at: now,
        }
    }
}

/// The answer to a submission.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    /// The action as first answered (for a replay: as it was when first submitted; read
    /// the action again for its current state).
    pub record: ActionRecord,
    /// Whether this was an idempotent replay of an earlier submission.
    pub replayed: bool,
}

/// Who acts: the name the audit log records, the groups a deciding reviewer is in, and the
/// token used, which the audit log records next to the name (none for `cli` and `system`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub groups: Vec<String>,
    /// The id of the token the actor presented.
    pub token_id: Option<String>,
    /// Whether the token has the admin role.
    pub admin: bool,
}

impl Actor {
    /// An actor without a token or groups, e.g. [`CLI_ACTOR`](crate::CLI_ACTOR) for commands
    /// run directly on the database.
    pub fn named(name: &str) -> Actor {
        Actor {
            name: name.to_owned(),
            groups: Vec::new(),
            token_id: None,
            admin: false,
        }
    }

    /// Whoever presents `token`.
    pub fn of(token: &crate::Token) -> Actor {
        Actor {
            name: token.name.clone(),
            groups: token.groups.clone(),
            token_id: Some(token.id.clone()),
            admin: token.role == crate::Role::Admin,
        }
    }
}

/// A post-hoc review as a reviewer submits it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewReview {
    pub verdict: ReviewVerdict,
    pub note: Option<String>,
}

/// An outcome as the agent reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOutcome {
    pub status: OutcomeStatus,
    pub detail: Option<Value>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The pending queue, oldest deadline first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueQuery {
    /// Only actions whose name matches this glob.
    pub action: Option<countersign_core::glob::Glob>,
    /// At most this many items (clamped to 1..=1000; 0 means 50).
    pub limit: u32,
    pub cursor: Option<String>,
    /// The page ends early once its items hold more than this many stored bytes (0 means
    /// [`DEFAULT_PAGE_BYTES`]).
    pub max_bytes: usize,
}

/// Actions of any status, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionQuery {
    pub status: Option<Status>,
    pub action: Option<countersign_core::glob::Glob>,
    /// Only actions submitted by this agent.
    pub agent: Option<String>,
    pub limit: u32,
    pub cursor: Option<String>,
    /// As in [`QueueQuery::max_bytes`].
    pub max_bytes: usize,
}

/// The post-hoc review queue, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReviewQuery {
    /// `false`: open reviews; `true`: finished ones.
    pub reviewed: bool,
    pub limit: u32,
    pub cursor: Option<String>,
    /// As in [`QueueQuery::max_bytes`].
    pub max_bytes: usize,
}

/// A pending action whose deadline has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDeadline {
    pub id: String,
    pub deadline: DateTime<Utc>,
}

/// The stored bytes a page holds before it ends early when the caller does not say.
pub const DEFAULT_PAGE_BYTES: usize = 1024 * 1024;

/// A page's byte bound: 0 means [`DEFAULT_PAGE_BYTES`].
pub(crate) fn page_bytes(max_bytes: usize) -> usize {
    match max_bytes {
        0 => DEFAULT_PAGE_BYTES,
        n => n,
    }
}

/// Clamps a requested page size.
pub(crate) fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => 50,
        n => n.min(1000),
    }
}
