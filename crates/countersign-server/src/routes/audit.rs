//! The audit log: reading entries and verifying the hash chain.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::views::{AuditEntryView, AuditPage, VerifyView};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries with a sequence number above this (default 0: from the start).
    after: Option<u64>,
    /// Page size, 1 to 1000 (default 100). A page also ends early once it holds the
    /// server's `max_page_bytes`; `next_after` then says where to go on.
    limit: Option<u32>,
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
    let limit = match query.limit.unwrap_or(100) {
        0 => 100,
        n => n.min(1000),
    };
    let max_bytes = state.limits().max_page_bytes;
    let entries = state
        .store()
        .audit(query.after.unwrap_or(0), limit, max_bytes)
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

/// Verifies the whole chain; names the first changed, removed or reordered entry.
#[utoipa::path(
    get, path = "/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The verification result (`ok` false when the chain is broken)", body = VerifyView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyView>, AppError> {
    caller.require_admin("verifying the audit log")?;
    let report = state.store().verify_audit().await?;
    Ok(Json(VerifyView::from(&report)))
}
