//! Tokens, created, listed and revoked by an admin over the API (the first admin token is
//! created directly on the database by `countersign token create --db`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use countersign_store::{NewToken, Role};

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::views::{CreatedTokenView, TokenBody, TokenList, TokenView};

/// Creates a token. The secret is in the answer and nowhere else.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens", operation_id = "create_token",
    request_body = TokenBody,
    responses(
        (status = 201, description = "The new token with its secret", body = CreatedTokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
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
    let new_token = parse_new_token(body, caller.name(), state.clock().now())?;
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

/// Revokes a token: from the next request on, it authenticates nothing. Revoking a revoked
/// token answers it as it is.
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
        .revoke_token(id, caller.name().to_owned(), state.clock().now())
        .await?;
    tracing::info!(id = %token.id, name = %token.name, by = %caller.name(), "token revoked");
    Ok(Json(TokenView::from(&token)))
}

/// Checks a token request: a valid role, a name usable as an identity, clean groups.
pub fn parse_new_token(
    body: TokenBody,
    created_by: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<NewToken, AppError> {
    let role: Role = body
        .role
        .parse()
        .map_err(|e| AppError::invalid("invalid_role", format!("role: {e}")))?;
    countersign_core::AgentName::parse(&body.name)
        .map_err(|e| AppError::invalid("invalid_name", format!("name {:?}: {e}", body.name)))?;
    for group in &body.groups {
        countersign_core::AgentName::parse(group)
            .map_err(|e| AppError::invalid("invalid_group", format!("group {group:?}: {e}")))?;
    }
    // The owner is compared with reviewers' names, so it must be a name they could have: an
    // owner like "olivia " would never match and never keep olivia from approving.
    if let Some(owner) = &body.owner {
        countersign_core::AgentName::parse(owner)
            .map_err(|e| AppError::invalid("invalid_owner", format!("owner {owner:?}: {e}")))?;
    }
    Ok(NewToken {
        name: body.name,
        role,
        groups: body.groups,
        owner: body.owner,
        created_by: created_by.to_owned(),
        at,
    })
}
