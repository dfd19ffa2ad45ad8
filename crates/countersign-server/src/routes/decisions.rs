//! Changing a pending action: a reviewer's verdict, the agent's cancellation, and the
//! agent's report of what happened when it ran the action.

use axum::Json;
use axum::extract::State;
use countersign_core::lifecycle::Verdict;
use countersign_store::NewOutcome;

use crate::auth::{Caller, not_found};
use crate::decision::{self, VerdictRequest};
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{ActionView, DecisionBody, OutcomeBody};

/// Records a reviewer's verdict: approve, reject, or modify (approve other arguments).
#[utoipa::path(
    post, path = "/v1/actions/{id}/decisions", tag = "decisions", operation_id = "decide_action",
    params(("id" = String, Path, description = "The action id")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The action after the decision", body = ActionView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a reviewer, not in the rule's approver groups, the agent's owner, or already approved", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The action is not pending (`not_pending`), or its review deadline passed (`expired`)", body = ErrorBody),
        (status = 422, description = "Confirmation missing or wrong, args with the wrong verdict, or modified args the policy denies (`modified_args_denied`)", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<ActionView>, AppError> {
    caller.require_reviewer("deciding on an action")?;
    let verdict = Verdict::from(body.verdict);
    let request = VerdictRequest {
        verdict,
        args: body.args,
        reason: body.reason,
        confirm: body.confirm,
    };
    let record = decision::decide(&state, caller.actor(), id, request).await?;
    Ok(Json(ActionView::from(&record)))
}

/// The agent withdraws its pending action.
#[utoipa::path(
    post, path = "/v1/actions/{id}/cancel", tag = "decisions", operation_id = "cancel_action",
    params(("id" = String, Path, description = "The action id")),
    responses(
        (status = 200, description = "The cancelled action", body = ActionView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The action is not pending", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ActionView>, AppError> {
    caller.require_agent("cancelling an action")?;
    let record = state
        .store()
        .action(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    caller.check_own(&record, "cancelling an action")?;
    let now = state.clock().now();
    let record = state.store().cancel(id, caller.actor(), now).await?;
    Ok(Json(ActionView::from(&record)))
}

/// The agent reports whether running the action succeeded.
#[utoipa::path(
    post, path = "/v1/actions/{id}/outcome", tag = "decisions", operation_id = "report_outcome",
    params(("id" = String, Path, description = "The action id")),
    request_body = OutcomeBody,
    responses(
        (status = 200, description = "The action with its outcome", body = ActionView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The action may not run, or an outcome was already reported", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "The body is JSON of the wrong shape", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn outcome(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<OutcomeBody>,
) -> Result<Json<ActionView>, AppError> {
    caller.require_agent("reporting an outcome")?;
    let record = state
        .store()
        .action(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    caller.check_own(&record, "reporting an outcome")?;
    let now = state.clock().now();
    let record = state
        .store()
        .record_outcome(
            id,
            caller.actor(),
            NewOutcome {
                status: body.status.into(),
                detail: body.detail,
            },
            now,
        )
        .await?;
    Ok(Json(ActionView::from(&record)))
}
