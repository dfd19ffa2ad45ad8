//! The records the store keeps about actions, and what callers hand it to create or change
//! them. An action's lifecycle is the core's [`Gate`], kept whole; the record adds what
//! the lifecycle does not change (the submission's reasoning, context and hints, the
//! classification's rule and reason) and the store's own bookkeeping (id, version).

use chrono::{DateTime, Utc};
use countersign_core::action::{Hints, ProposedAction};
use countersign_core::grant::Grant;
use countersign_core::lifecycle::{Gate, Reclassified};
pub use countersign_core::lifecycle::{Outcome, OutcomeStatus, Review, ReviewState, ReviewVerdict};
use countersign_core::name::Name;
use countersign_core::policy::{Policy, ReviewSettings};
use countersign_core::{Status, Tier};
use serde_json::{Map, Value};

/// Everything the store knows about one action.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionRecord {
    pub id: String,
    /// The lifecycle: action, agent, owner, tier, status, approvers, decisions, arguments,
    /// deadline, review and outcome.
    pub gate: Gate,
    /// The rule that classified it; `None`: the policy's `[defaults]`.
    pub rule: Option<String>,
    pub reason: String,
    pub reasoning: Option<String>,
    pub context: Map<String, Value>,
    pub confidence: Option<f64>,
    pub hints: Hints,
    pub idempotency_key: Option<String>,
    /// Hash of the policy version that classified it.
    pub policy_hash: String,
    /// The rule's `review_sample` rate at submission.
    pub review_sample: f64,
    pub created_at: DateTime<Utc>,
    /// The grant that let it run without asking, if any.
    pub grant: Option<String>,
    /// Starts at 1 and grows by one with every change: lets a watcher tell whether a record
    /// it holds is older than one it is shown.
    pub version: u64,
}

impl ActionRecord {
    /// Classifies `args` as this action's new arguments with `policy` at `now`, exactly like a
    /// submission of the same action by the same agent with the same context, confidence
    /// and hints: what a `modify` verdict must satisfy on top of what the action needed.
    pub fn reclassify(
        &self,
        policy: &Policy,
        args: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Reclassified, crate::StoreError> {
        let mut proposal = ProposedAction::new(
            self.gate.action.clone(),
            countersign_core::AgentName::parse(self.gate.agent.as_str())
                .map_err(|e| crate::StoreError::Corrupt(format!("action {}: {e}", self.id)))?,
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
    pub owner: Option<Name>,
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
    /// Grants the caller found to cover the action (`countersign_core::grant`), best first:
    /// the store uses the first that is still live when it writes, and counts the use.
    pub grants: Vec<String>,
}

impl NewAction {
    /// Classifies `proposal` with `policy` at `now`. The owner, the token and the
    /// idempotency record are left empty for the caller to fill in.
    pub fn classify(policy: &Policy, proposal: ProposedAction, now: DateTime<Utc>) -> NewAction {
        NewAction::classify_granted(policy, proposal, None, &[], now)
    }

    /// Classifies `proposal`, submitted by an agent owned by `owner`, and notes which of
    /// `grants` cover it (`countersign_core::grant::Grant::covers`): only an `approve`-tier
    /// action can be covered, so the grants cost nothing for any other.
    pub fn classify_granted(
        policy: &Policy,
        proposal: ProposedAction,
        owner: Option<Name>,
        grants: &[std::sync::Arc<Grant>],
        now: DateTime<Utc>,
    ) -> NewAction {
        let classification = policy.classify(&proposal, now);
        let settings = policy.review_settings(&classification);
        let grants = if classification.tier == Tier::Approve {
            grants
                .iter()
                .filter(|g| {
                    g.covers(&proposal, owner.as_ref(), &classification, &settings, now)
                        .is_ok()
                })
                .map(|g| g.id.clone())
                .collect()
        } else {
            Vec::new()
        };
        NewAction {
            tier: classification.tier,
            rule: policy.rule_name(&classification).map(str::to_owned),
            reason: policy.reason(&classification),
            settings,
            policy_hash: policy.hash().to_owned(),
            proposal,
            owner,
            token_id: None,
            idempotency: None,
            at: now,
            grants,
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
    pub name: Name,
    pub groups: Vec<Name>,
    /// The id of the token the actor presented.
    pub token_id: Option<String>,
    /// Whether the token has the admin role.
    pub admin: bool,
}

impl Actor {
    /// An actor without a token or groups, e.g. [`CLI_ACTOR`](crate::CLI_ACTOR) for commands
    /// run directly on the database.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid name: it is for names the program spells itself.
    pub fn named(name: &str) -> Actor {
        Actor {
            name: Name::parse(name).expect("the program's own actor names are valid"),
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
    pub agent: Option<Name>,
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
