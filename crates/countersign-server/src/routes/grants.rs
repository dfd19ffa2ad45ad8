//! Grants: given, listed, shown and revoked by reviewers; an agent sees its own.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use countersign_core::name::Name;
use countersign_store::{GrantQuery, Role};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::grant_views::{CreatedGrantView, GrantBody, GrantList, GrantView};
use crate::grants::{self, GrantRequest};
use crate::state::AppState;

/// Gives a grant: the agent may run actions matching `actions` (and `when`) without asking,
/// until `duration` has passed or `max_uses` are spent, or it is revoked.
///
/// Only a reviewer (or admin) who could approve every `approve` rule the pattern reaches
/// may give one, never the agent's owner. A grant never lets `confirm` or `deny` actions
/// run, nor actions needing several approvals, nor any raised for low confidence or a
/// condition that failed: those are asked about as before. Each use is an audit entry
/// naming the grant, and is checked again against the policy in force then.
#[utoipa::path(
    post, path = "/v1/grants", tag = "grants", operation_id = "create_grant",
    request_body = GrantBody,
    responses(
        (status = 201, description = "The grant, with the rules it reaches", body = CreatedGrantView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a reviewer (`wrong_role`), the agent's owner (`owner_may_not_grant`), or not among who may approve a rule the pattern reaches (`not_an_approver`)", body = ErrorBody),
        (status = 409, description = "The agent holds as many live grants as it may (`too_many_grants`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "An invalid agent, pattern, condition, duration, use count or reason; an agent without a token (`unknown_agent`); or nothing the pattern matches is in the approve tier (`nothing_to_grant`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<CreatedGrantView>), AppError> {
    let (record, scope) = grants::give(
        &state,
        caller.actor(),
        caller.token.role,
        GrantRequest {
            agent: body.agent,
            actions: body.actions,
            when: body.when,
            duration: body.duration,
            max_uses: body.max_uses,
            reason: body.reason,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedGrantView::new(&record, scope, state.clock().now())),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantsQuery {
    /// Only this agent's grants (an agent sees only its own anyway).
    #[param(
        pattern = r"^[A-Za-z0-9._:/@-]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    agent: Option<String>,
    /// `true`: only those that can still be used.
    live: Option<bool>,
}

/// Grants, newest first: reviewers see all; an agent sees its own.
#[utoipa::path(
    get, path = "/v1/grants", tag = "grants", operation_id = "list_grants",
    params(GrantsQuery),
    responses(
        (status = 200, description = "The grants", body = GrantList),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "An invalid agent name", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<GrantsQuery>,
) -> Result<Json<GrantList>, AppError> {
    let now = state.clock().now();
    let agent = match (caller.token.role, query.agent) {
        (Role::Agent, _) => Some(caller.token.name.clone()),
        (_, Some(agent)) => Some(Name::parse(&agent).map_err(|e| {
            AppError::invalid(
                "invalid_agent_name",
                format!("invalid agent name {agent:?}: {e}"),
            )
        })?),
        (_, None) => None,
    };
    let records = state
        .store()
        .grants(GrantQuery {
            agent,
            live_at: query.live.unwrap_or(false).then_some(now),
        })
        .await?;
    Ok(Json(GrantList {
        items: records.iter().map(|r| GrantView::new(r, now)).collect(),
    }))
}

/// One grant (an agent sees only its own).
#[utoipa::path(
    get, path = "/v1/grants/{id}", tag = "grants", operation_id = "show_grant",
    params(("id" = String, Path, description = "The grant id")),
    responses(
        (status = 200, description = "The grant", body = GrantView),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GrantView>, AppError> {
    let not_found = || AppError::not_found(format!("no grant with id {id:?}"));
    let record = state.store().grant(&id).await?.ok_or_else(not_found)?;
    if caller.token.role == Role::Agent && record.agent != caller.token.name {
        return Err(not_found());
    }
    Ok(Json(GrantView::new(&record, state.clock().now())))
}

/// Revokes a grant: from the next submission on it covers nothing. Any reviewer may revoke
/// any grant (taking autonomy away needs no approver rights). Revoking a revoked grant
/// answers it as it is.
#[utoipa::path(
    post, path = "/v1/grants/{id}/revoke", tag = "grants", operation_id = "revoke_grant",
    params(("id" = String, Path, description = "The grant id")),
    responses(
        (status = 200, description = "The revoked grant", body = GrantView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GrantView>, AppError> {
    caller.require_reviewer("revoking a grant")?;
    let record = grants::revoke(&state, &id, caller.actor()).await?;
    tracing::info!(id = %record.id, by = %caller.name(), "grant revoked");
    Ok(Json(GrantView::new(&record, state.clock().now())))
}
