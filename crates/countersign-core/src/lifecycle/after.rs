//! What happens around a decision: the agent withdraws a pending action or reports how a
//! run went, and a reviewer judges a sampled action after the fact — with the same
//! separation of duties as decisions.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Gate, Outcome, OutcomeStatus, Review, ReviewState, ReviewVerdict, Transition};
use crate::name::Name;
use crate::tier::Status;

/// Why a cancellation or outcome was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the action is {0}; only pending actions can be cancelled")]
    NotCancellable(Status),
    #[error("the action is {0}; an outcome can only be reported for allowed or approved actions")]
    MayNotRun(Status),
    #[error("an outcome was already reported for this action")]
    OutcomeAlreadyReported,
}

/// Why a post-hoc review was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("{reviewer} owns the agent {agent:?} that submitted this action and may not review it")]
    OwnAgent { reviewer: String, agent: String },
    #[error("this action was not sampled for post-hoc review")]
    NotSampled,
    #[error("this action was already reviewed")]
    AlreadyReviewed,
}

/// Separation of duties: does `person` answer for the actions of `agent` (owned by
/// `owner`), as its owner or as the agent itself? Such a person judges none of them:
/// neither before they run (decisions) nor after (post-hoc review).
pub fn answers_for(agent: &Name, owner: Option<&Name>, person: &Name) -> bool {
    agent == person || owner == Some(person)
}

/// The agent withdraws a pending action.
pub fn cancel(gate: &Gate, at: DateTime<Utc>) -> Result<Transition, StateError> {
    match gate.status {
        Status::Pending => Ok(Transition::Cancelled { at }),
        other => Err(StateError::NotCancellable(other)),
    }
}

/// The agent reports what happened when it ran the action: once, and only for an action
/// it was allowed to run.
pub fn report_outcome(
    gate: &Gate,
    status: OutcomeStatus,
    detail: Option<Value>,
    by: &Name,
    at: DateTime<Utc>,
) -> Result<Transition, StateError> {
    if !gate.status.may_run() {
        return Err(StateError::MayNotRun(gate.status));
    }
    if gate.outcome.is_some() {
        return Err(StateError::OutcomeAlreadyReported);
    }
    Ok(Transition::Outcome(Outcome {
        status,
        detail,
        reported_by: by.clone(),
        at,
    }))
}

/// A post-hoc review of a sampled action: once, and not by the agent's owner or the agent
/// (an "ok" from them would vouch for their own agent).
pub fn review(
    gate: &Gate,
    reviewer: &Name,
    verdict: ReviewVerdict,
    note: Option<String>,
    at: DateTime<Utc>,
) -> Result<Transition, ReviewError> {
    match gate.review {
        ReviewState::NotSampled => return Err(ReviewError::NotSampled),
        ReviewState::Reviewed(_) => return Err(ReviewError::AlreadyReviewed),
        ReviewState::Open => {}
    }
    if answers_for(&gate.agent, gate.owner.as_ref(), reviewer) {
        return Err(ReviewError::OwnAgent {
            reviewer: reviewer.to_string(),
            agent: gate.agent.to_string(),
        });
    }
    Ok(Transition::Reviewed(Review {
        reviewer: reviewer.clone(),
        verdict,
        note,
        at,
    }))
}
