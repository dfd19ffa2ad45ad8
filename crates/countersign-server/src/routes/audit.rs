//! The audit log: reading entries, and verifying it (the chain, checkpoints, and every
//! action's state re-derived from its entries).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use countersign_core::audit::checkpoint::{self, CheckpointError};
use countersign_core::audit::note::{NoteError, NoteVerifier};
use countersign_store::CheckpointClaim;

use crate::audit_views::VerifyRequest;
use crate::auth::Caller;
use crate::checkpoints::stored_claim;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::params::{PageSize, Seq};
use crate::state::AppState;
use crate::views::{AuditEntryView, AuditPage, VerifyView};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries with a sequence number above this (default 0: from the start).
    #[param(inline)]
    after: Option<Seq>,
    /// Page size, 1 to 1000 (default 100). A page also ends early once it holds the
    /// server's `max_page_bytes`; `next_after` then says where to go on.
    #[param(inline)]
    limit: Option<PageSize>,
}

/// Audit entries in order.
#[utoipa::path(
    get, path = "/v1/audit", tag = "audit", operation_id = "list_audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, AppError> {
    caller.require_admin("reading the audit log")?;
    let limit = query.limit.map_or(100, PageSize::as_u32);
    let max_bytes = state.limits().max_page_bytes;
    let entries = state
        .store()
        .audit(query.after.map_or(0, Seq::get), limit, max_bytes)
        .await?;
    // A full page, or one the byte bound ended early: there may be more after it.
    let bytes: usize = entries.iter().map(|e| e.stored_bytes()).sum();
    let next_after = (entries.len() as u32 == limit || bytes > max_bytes)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        items: entries.iter().map(AuditEntryView::from).collect(),
        next_after,
    }))
}

/// Verifies the log: the hash chain (naming the first changed, removed or reordered entry),
/// that it still extends the latest checkpoint stored (whose signature must verify with the
/// server's key), and every action's stored state against its entries. A damaged file is
/// reported in the answer (`ok: false`, `damage`), not as an error.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit", operation_id = "verify_audit",
    responses(
        (status = 200, description = "The verification result (`ok` false when anything is wrong)", body = VerifyView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, description = "The database cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyView>, AppError> {
    caller.require_admin("verifying the audit log")?;
    let mut claims = Vec::new();
    let mut unverified = Vec::new();
    if let Some(checkpoints) = state.checkpoints()
        && let Some(latest) = state.store().latest_checkpoint().await?
    {
        match stored_claim(&latest, &checkpoints.verifier()) {
            Ok(claim) => claims.push(claim),
            Err(failed) => unverified.push(failed),
        }
    }
    let report = state.store().verify_audit_against(claims).await?;
    Ok(Json(VerifyView::new(&report, unverified)))
}

/// Verifies the log as `GET` does, and against the checkpoints given: a log that no longer
/// extends one of them (entries cut from its end, or rewritten) fails. Every checkpoint's
/// signature must verify first.
#[utoipa::path(
    post, path = "/v1/audit/verify", tag = "audit", operation_id = "verify_against_checkpoints",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The verification result (`ok` false when anything is wrong)", body = VerifyView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A malformed key or checkpoint, or a checkpoint whose signature does not verify", body = ErrorBody),
        (status = 503, description = "The database cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn verify_against(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyView>, AppError> {
    caller.require_admin("verifying the audit log")?;
    let verifier = match &request.key {
        Some(key) => NoteVerifier::parse(key)
            .map_err(|error| AppError::invalid("invalid_key", error.to_string()))?,
        None => state.checkpoints().map(|c| c.verifier()).ok_or_else(|| {
            AppError::invalid(
                "invalid_key",
                "this server has no checkpoint key: pass the verifier key in \"key\"",
            )
        })?,
    };
    let checkpoints = checkpoint::open_all(&request.checkpoint, &verifier).map_err(|error| {
        let code = match error.error {
            CheckpointError::Note(
                NoteError::UnknownKey { .. } | NoteError::BadSignature { .. },
            ) => "checkpoint_not_verified",
            _ => "invalid_checkpoint",
        };
        AppError::invalid(code, error.to_string())
    })?;
    let count = checkpoints.len();
    let claims = checkpoints
        .into_iter()
        .map(|filed| CheckpointClaim {
            source: format!("checkpoint {} of {count}", filed.index),
            size: filed.checkpoint.size,
            hash: filed.checkpoint.hash,
        })
        .collect();
    let report = state.store().verify_audit_against(claims).await?;
    Ok(Json(VerifyView::from(&report)))
}
