//! Tokens, created, listed and revoked by an admin over the API (the first admin token is
//! created directly on the database by `countersign token create --db`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use countersign_store::NewToken;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{CreatedTokenView, TokenBody, TokenList, TokenView};

/// Creates a token. The secret is in the answer and nowhere else.
///
/// Names (and owners and groups) are stored in lowercase: `Rita` creates a token for
/// `rita`. A name that differs from an existing one only by case (stored so by an earlier
/// version), a person's name for an agent or an agent's name for a person, and an agent
/// token naming another owner than the agent's are refused with `409`. An agent token
/// without an owner, for an agent that has one, gets the agent's owner.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = TokenBody,
    responses(
        (status = 201, description = "The new token with its secret", body = CreatedTokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The name is taken in another case or by the other kind of identity, or the agent has another owner", body = ErrorBody),
        (status = 422, description = "Invalid role, name, group or owner, a reserved name, an owner for a person, or an agent named as its own owner", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<CreatedTokenView>), AppError> {
    caller.require_admin("creating tokens")?;
    let new_token = NewToken::parse(
        &body.role,
        &body.name,
        &body.groups,
        body.owner.as_deref(),
        caller.actor(),
        state.clock().now(),
    )?;
    let created = state.store().create_token(new_token).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenView::new(created.secret, &created.token)),
    ))
}

/// Every token, oldest first, without secrets.
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens", operation_id = "list_tokens",
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenList>, AppError> {
    caller.require_admin("listing tokens")?;
    let tokens = state.store().tokens().await?;
    Ok(Json(TokenList {
        items: tokens.iter().map(TokenView::from).collect(),
    }))
}

/// Revokes a token: from the next request on, it authenticates nothing, and its open
/// long-polls (answered `401`) and event streams end at once. Revoking a revoked token
/// answers it as it is.
#[utoipa::path(
    post, path = "/v1/tokens/{id}/revoke", tag = "tokens", operation_id = "revoke_token",
    params(("id" = String, Path, description = "The token id (not its secret)")),
    responses(
        (status = 200, description = "The revoked token", body = TokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenView>, AppError> {
    caller.require_admin("revoking tokens")?;
    let token = state
        .store()
        .revoke_token(id, caller.actor(), state.clock().now())
        .await?;
    tracing::info!(id = %token.id, name = %token.name, by = %caller.name(), "token revoked");
    Ok(Json(TokenView::from(&token)))
}
