//! `POST /v1/integrations/slack/interactions`: the Slack app's interactivity request URL.
//! Every request is checked against Slack's signature before anything else; see
//! `crate::slack` for what a verified click may do.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{AppError, ErrorBody};
use crate::slack::signature;
use crate::state::AppState;

/// The form Slack posts (documentation only; the body is read raw, to check its signature).
#[derive(Serialize, ToSchema)]
pub struct SlackInteractionForm {
    /// The interaction, as JSON (a `block_actions` click or a `view_submission`).
    pub payload: String,
}

/// Slack interactions: Approve, Reject… and Modify… buttons and their forms. The request
/// must carry Slack's `v0` signature made with the app's signing secret, at most five
/// minutes old; the clicking Slack user must be linked to a person who may decide, by the
/// same rules as the API.
#[utoipa::path(
    post, path = "/v1/integrations/slack/interactions", tag = "integrations",
    operation_id = "slack_interactions",
    params(
        ("X-Slack-Request-Timestamp" = Option<String>, Header, description = "Unix seconds when Slack sent the request"),
        ("X-Slack-Signature" = Option<String>, Header, description = "`v0=` + hex HMAC-SHA256 of `v0:TIMESTAMP:BODY` with the signing secret"),
    ),
    request_body(content = SlackInteractionForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Handled; refusals go to the user as an ephemeral message, form errors in the answer", body = Object),
        (status = 400, description = "Signed, but not an interaction Countersign understands", body = ErrorBody),
        (status = 401, description = "Not signed by Slack with this app's secret, older than five minutes, or Slack is not configured", body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
    ),
)]
pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let Some(notifications) = state.notifications().cloned() else {
        return Err(not_configured());
    };
    let Some(slack) = notifications.slack().cloned() else {
        return Err(not_configured());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        &slack.signing_secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|error| {
        tracing::warn!(%error, "Slack interaction refused");
        AppError::unauthorized(error.to_string())
    })?;
    let answer = crate::slack::handle(&state, &notifications, &slack, &body).await?;
    Ok(Json(answer))
}

fn not_configured() -> AppError {
    AppError::unauthorized(
        "Slack approvals are not configured on this server ([slack] signing_secret), so no request can be verified",
    )
}
