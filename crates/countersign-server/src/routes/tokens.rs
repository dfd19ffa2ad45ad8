//! Tokens, created by an admin over the API (the first admin token is created directly on
//! the database by `countersign token create --db`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use countersign_store::{NewToken, Role};

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::views::{CreatedTokenView, TokenBody};

/// Creates a token. The secret is in the answer and nowhere else.
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens",
    request_body = TokenBody,
    responses(
        (status = 201, description = "The new token with its secret", body = CreatedTokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
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
