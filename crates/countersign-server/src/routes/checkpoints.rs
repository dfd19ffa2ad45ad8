//! Signed checkpoints of the audit chain: the latest, and signing one now.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::views::CheckpointView;

/// The latest signed checkpoint, with the verifier key that checks it.
#[utoipa::path(
    get, path = "/v1/audit/checkpoint", tag = "audit", operation_id = "latest_checkpoint",
    responses(
        (status = 200, description = "The latest checkpoint", body = CheckpointView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No checkpoint was signed yet", body = ErrorBody),
        (status = 503, description = "The database cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn latest(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CheckpointView>, AppError> {
    caller.require_admin("reading audit checkpoints")?;
    let latest = state
        .store()
        .latest_checkpoint()
        .await?
        .ok_or_else(|| AppError::not_found("no checkpoint was signed yet"))?;
    let key = state.checkpoints().map(|c| c.verifier().encode());
    Ok(Json(CheckpointView::new(&latest, key)))
}

/// Signs the chain head now (and publishes it). `200` with the latest checkpoint when it
/// already covers the head.
#[utoipa::path(
    post, path = "/v1/audit/checkpoints", tag = "audit", operation_id = "sign_checkpoint",
    responses(
        (status = 201, description = "A new checkpoint of the current head", body = CheckpointView),
        (status = 200, description = "The latest checkpoint already covers the head", body = CheckpointView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The log is empty, or no longer extends its last checkpoint (run verification)", body = ErrorBody),
        (status = 503, description = "The database cannot take writes, or the server has no checkpoint key", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<CheckpointView>), AppError> {
    caller.require_admin("signing audit checkpoints")?;
    let checkpoints = state
        .checkpoints()
        .ok_or_else(|| AppError::unavailable("this server has no checkpoint key"))?;
    let (stored, created) = checkpoints
        .sign_head(state.store(), state.clock().now())
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "empty_log",
                "the audit log is empty: there is nothing to sign yet",
            )
        })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let key = Some(checkpoints.verifier().encode());
    Ok((status, Json(CheckpointView::new(&stored, key))))
}
