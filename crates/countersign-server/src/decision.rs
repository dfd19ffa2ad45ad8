//! A reviewer's verdict on an action, whoever asks and however: the API route
//! (`POST /v1/actions/{id}/decisions`) and the web UI's forms both call [`decide`], so a
//! person clicking "Approve" is held to exactly the rules a token is held to.

use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_store::{ActionRecord, Actor};
use serde_json::{Map, Value};

use crate::auth::not_found;
use crate::error::AppError;
use crate::routes::actions::check_args_size;
use crate::state::AppState;

/// A verdict as a reviewer gives it, before the policy has classified modified arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictRequest {
    pub verdict: Verdict,
    pub args: Option<Map<String, Value>>,
    pub reason: Option<String>,
    pub confirm: Option<String>,
}

/// Records `actor`'s verdict on action `id`: modified arguments are checked for size and
/// classified by the policy in force, then the store applies the core's decision inside its
/// writer. Every refusal (owner, approver groups, already approved, confirm, deadline,
/// denied arguments, not pending) comes from the core, the same for every caller.
pub async fn decide(
    state: &AppState,
    actor: Actor,
    id: String,
    request: VerdictRequest,
) -> Result<ActionRecord, AppError> {
    if let Some(args) = &request.args {
        check_args_size(state, args)?;
    }
    let verdict = request.verdict;
    let now = state.clock().now();
    // Modified arguments are classified like a submission, by the policy in force: the
    // lifecycle then requires the stricter of the two classifications, and refuses
    // arguments the policy denies. The fields classified besides `args` never change after
    // submission, so reading the action before the write is safe.
    let reclassified = match (&request.args, verdict) {
        (Some(args), Verdict::Modify) => {
            let record = state
                .store()
                .action(&id)
                .await?
                .ok_or_else(|| not_found(&id))?;
            let policy = state.policy().current();
            Some(record.reclassify(&policy, args.clone(), now)?)
        }
        _ => None,
    };
    let reviewer = actor.name.clone();
    let request = DecisionRequest {
        verdict,
        args: request.args,
        reason: request.reason,
        confirm: request.confirm,
        reclassified,
    };
    let record = state.store().decide(id, actor, request, now).await?;
    tracing::info!(id = %record.id, reviewer = %reviewer, verdict = verdict.as_str(),
        status = %record.gate.status, "decision recorded");
    Ok(record)
}
