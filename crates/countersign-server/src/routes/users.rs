//! People with a web login, managed by an admin over the API (`countersign user ...`
//! without `--db`); the first admin is created on the database directly.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use countersign_core::name::Name;
use countersign_store::NewUser;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::user_views::{PasswordBody, UserBody, UserList, UserView};
use crate::web::NewPassword;

fn name(text: &str, what: &str) -> Result<Name, AppError> {
    Name::parse(text)
        .map_err(|e| AppError::invalid("invalid_name", format!("invalid {what} {text:?}: {e}")))
}

/// Hashes a chosen password with Argon2id, off the async threads.
async fn hashed(password: &str) -> Result<String, AppError> {
    let password = NewPassword::parse(password)
        .map_err(|message| AppError::invalid("invalid_password", message))?;
    tokio::task::spawn_blocking(move || password.hash())
        .await
        .map_err(|e| AppError::internal(&e))?
        .map_err(|e| AppError::internal(&e))
}

/// Creates a person's web login. Their name is an identity like a token's: refused when
/// an agent has it, or another spelling of it exists.
#[utoipa::path(
    post, path = "/v1/users", tag = "users", operation_id = "create_user",
    request_body = UserBody,
    responses(
        (status = 201, description = "The person", body = UserView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "The person exists, or the name is an agent's or taken in another case", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "An invalid or reserved name or group, or a password too short, too long or with control characters", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<(StatusCode, Json<UserView>), AppError> {
    caller.require_admin("creating logins")?;
    let new = NewUser {
        name: name(&body.name, "name")?,
        groups: body
            .groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| name(g, "group"))
            .collect::<Result<_, _>>()?,
        admin: body.admin,
        password_hash: hashed(&body.password).await?,
        created_by: caller.actor(),
        at: state.clock().now(),
    };
    let user = state.store().create_user(new).await?;
    tracing::info!(name = %user.name, by = %caller.name(), "login created");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Everyone with a login, by name (never a password or its hash).
#[utoipa::path(
    get, path = "/v1/users", tag = "users", operation_id = "list_users",
    responses(
        (status = 200, description = "The people", body = UserList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserList>, AppError> {
    caller.require_admin("listing logins")?;
    let users = state.store().users().await?;
    Ok(Json(UserList {
        items: users.iter().map(UserView::from).collect(),
    }))
}

/// Sets a person's password; their sessions end.
#[utoipa::path(
    post, path = "/v1/users/{name}/password", tag = "users", operation_id = "set_user_password",
    params(("name" = String, Path, description = "The person's name",
        pattern = r"^[A-Za-z0-9._:/@-]{1,200}$")),
    request_body = PasswordBody,
    responses(
        (status = 200, description = "The person", body = UserView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "An invalid name, or a password too short, too long or with control characters", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(person): ApiPath<String>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Json<UserView>, AppError> {
    caller.require_admin("setting a password")?;
    let person = name(&person, "name")?;
    let hash = hashed(&body.password).await?;
    let user = state
        .store()
        .change_password(person, hash, caller.actor(), state.clock().now())
        .await?;
    tracing::info!(name = %user.name, by = %caller.name(), "password set");
    Ok(Json(UserView::from(&user)))
}

/// Disables a person: no sign-in, their sessions ended, their tokens revoked.
#[utoipa::path(
    post, path = "/v1/users/{name}/disable", tag = "users", operation_id = "disable_user",
    params(("name" = String, Path, description = "The person's name",
        pattern = r"^[A-Za-z0-9._:/@-]{1,200}$")),
    responses(
        (status = 200, description = "The person, disabled", body = UserView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "An invalid name", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(person): ApiPath<String>,
) -> Result<Json<UserView>, AppError> {
    caller.require_admin("disabling a person")?;
    let person = name(&person, "name")?;
    let user = state
        .store()
        .disable_user(person, caller.actor(), state.clock().now())
        .await?;
    tracing::info!(name = %user.name, by = %caller.name(), "person disabled");
    Ok(Json(UserView::from(&user)))
}
