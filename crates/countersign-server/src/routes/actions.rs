//! Actions: submit, read (with long-poll), watch (Server-Sent Events) and list.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_core::action::IdempotencyKey;
use countersign_core::{ActionName, AgentName, Confidence, ProposedAction, Status};
use countersign_store::{ActionQuery, Idempotency, NewAction, QueueQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{Caller, not_found};
use crate::error::{AppError, ErrorBody};
use crate::event_stream;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::params::{ActionGlob, CursorParam, PageSize, WaitSeconds};
use crate::revocation::revoked_while_waiting;
use crate::state::AppState;
use crate::views::{ActionPage, ActionView, StatusEvent, StatusView, SubmitBody};
use crate::watch::ActionWatch;

/// Submits a proposed action; the policy decides at once whether it may run.
#[utoipa::path(
    post, path = "/v1/actions", tag = "actions", operation_id = "submit_action",
    request_body = SubmitBody,
    params(("Idempotency-Key" = Option<String>, Header,
        pattern = r"^[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$",
        description = "Retry-safe submission: a repeated key with the same body returns the first answer. The same as the body's `idempotency_key`: sent both ways, the two must be the same key (`422 invalid_idempotency_key`)")),
    responses(
        (status = 201, description = "A new action, classified", body = ActionView),
        (status = 200, description = "An idempotent replay: the first answer", body = ActionView),
        (status = 400, description = "Malformed JSON, a key named twice, or an `Idempotency-Key` header that is not visible ASCII", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "Invalid action name; args, reasoning or context larger than the server's limits; the `Idempotency-Key` header and the body's `idempotency_key` naming different keys (`invalid_idempotency_key`); or a key this agent used before with another body (`idempotency_mismatch`)", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitBody>,
) -> Result<(StatusCode, Json<ActionView>), AppError> {
    caller.require_agent("submitting an action")?;
    let idempotency = idempotency(&headers, &body)?;
    let action = ActionName::parse(&body.action).map_err(|e| {
        AppError::invalid(
            "invalid_action_name",
            format!("invalid action name {:?}: {e}", body.action),
        )
    })?;
    let agent = AgentName::parse(caller.name()).map_err(|e| {
        AppError::invalid(
            "invalid_agent_name",
            format!("this token's name cannot name an agent: {e}"),
        )
    })?;
    let confidence = body
        .confidence
        .map(Confidence::new)
        .transpose()
        .map_err(|e| AppError::invalid("invalid_confidence", e.to_string()))?;
    let args = body.args.clone().unwrap_or_default();
    check_args_size(&state, &args)?;
    check_prose_sizes(&state, &body)?;

    let agent_name = caller.name().to_owned();
    if let Some(idempotency) = &idempotency
        && let Some(earlier) = state.store().replay(&agent_name, idempotency).await?
    {
        state.metrics().replayed();
        return Ok((StatusCode::OK, Json(ActionView::from(&earlier.record))));
    }
    // Checked by `idempotency` above, so parsing again cannot fail.
    let idempotency_key = idempotency
        .as_ref()
        .and_then(|i| IdempotencyKey::parse(&i.key).ok());
    let proposal = ProposedAction {
        action,
        agent,
        args,
        reasoning: body.reasoning,
        context: body.context.clone().unwrap_or_default(),
        confidence,
        hints: body.hints.unwrap_or_default().into(),
        idempotency_key,
    };
    let now = state.clock().now();
    let policy = state.policy().current();
    let grants = state
        .grants()
        .for_agent(state.store(), &agent_name, now)
        .await?;
    let mut new_action =
        NewAction::classify_granted(&policy, proposal, caller.token.owner.clone(), &grants, now);
    new_action.token_id = Some(caller.token.id.clone());
    new_action.idempotency = idempotency;
    let candidates = new_action.grants.clone();
    let submitted = state.store().submit(new_action).await?;
    let record = &submitted.record;
    // Candidates tried before the one used (or all, if none was) cover nothing any more.
    let dead = match &record.grant {
        Some(used) => candidates
            .iter()
            .take_while(|id| *id != used)
            .cloned()
            .collect(),
        None if !submitted.replayed => candidates,
        None => Vec::new(),
    };
    state.grants().forget(&agent_name, &dead);
    if submitted.replayed {
        state.metrics().replayed();
        return Ok((StatusCode::OK, Json(ActionView::from(record))));
    }
    state.metrics().submitted(record.gate.tier);
    if record.gate.status == Status::Pending {
        state.nudge_sla();
    }
    tracing::info!(id = %record.id, action = %record.gate.action, agent = %record.gate.agent,
        tier = %record.gate.tier, status = %record.gate.status, "action submitted");
    Ok((StatusCode::CREATED, Json(ActionView::from(record))))
}

/// The key from the `Idempotency-Key` header or the body (they must agree), with the hash
/// of the request it came with.
fn idempotency(headers: &HeaderMap, body: &SubmitBody) -> Result<Option<Idempotency>, AppError> {
    let header = match headers.get("idempotency-key") {
        Some(value) => Some(value.to_str().map_err(|_| {
            AppError::bad_request(
                "invalid_idempotency_key",
                "the Idempotency-Key header must be visible ASCII",
            )
        })?),
        None => None,
    };
    let key = match (header, body.idempotency_key.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(AppError::invalid(
                "invalid_idempotency_key",
                format!(
                    "the Idempotency-Key header {h:?} differs from the body's idempotency_key {b:?}"
                ),
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => return Ok(None),
    };
    let key = IdempotencyKey::parse(key)
        .map_err(|e| AppError::invalid("invalid_idempotency_key", e.to_string()))?;
    // The hash covers what the request asks for, not how the key was sent; absent `args`
    // and `{}` are the same request.
    let canonical = SubmitBody {
        action: body.action.clone(),
        args: Some(body.args.clone().unwrap_or_default()),
        reasoning: body.reasoning.clone(),
        context: body.context.clone(),
        confidence: body.confidence,
        hints: body.hints,
        idempotency_key: None,
    };
    let value = serde_json::to_value(&canonical).map_err(|e| AppError::internal(&e))?;
    Ok(Some(Idempotency {
        key: key.as_str().to_owned(),
        body_hash: countersign_store::request_hash(&value),
    }))
}

/// Refuses arguments too large for a person to review.
pub fn check_args_size(
    state: &AppState,
    args: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), AppError> {
    let limit = state.limits().max_args_bytes;
    let size = json_size(args);
    if size > limit {
        return Err(AppError::invalid(
            "args_too_large",
            format!("args are {size} bytes as JSON; at most {limit} bytes can be sent for review"),
        ));
    }
    Ok(())
}

/// The length of `value` as compact JSON, counted without building the text.
fn json_size(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Refuses `reasoning` and `context` larger than the configuration allows: every copy of an
/// action (a reviewer's page, each waiter's answer) carries them. `hints` need no cap of
/// their own: four optional booleans, unknown keys refused, are at most 80 bytes.
fn check_prose_sizes(state: &AppState, body: &SubmitBody) -> Result<(), AppError> {
    let limits = state.limits();
    if let Some(reasoning) = &body.reasoning
        && reasoning.len() > limits.max_reasoning_bytes
    {
        return Err(AppError::invalid(
            "reasoning_too_large",
            format!(
                "reasoning is {} bytes; at most {} bytes are accepted",
                reasoning.len(),
                limits.max_reasoning_bytes
            ),
        ));
    }
    if let Some(context) = &body.context {
        let size = json_size(context);
        if size > limits.max_context_bytes {
            return Err(AppError::invalid(
                "context_too_large",
                format!(
                    "context is {size} bytes as JSON; at most {} bytes are accepted",
                    limits.max_context_bytes
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShowQuery {
    /// Wait up to this many seconds (at most 3600) for the status to leave `pending`. The
    /// server ends a wait sooner when its `max_wait_seconds` is lower (default 300).
    #[param(inline)]
    wait: Option<WaitSeconds>,
}

/// One action; with `wait`, answers as soon as its status leaves `pending`, or when the
/// wait ends, or with `401` as soon as the caller's token is revoked.
#[utoipa::path(
    get, path = "/v1/actions/{id}", tag = "actions", operation_id = "show_action",
    params(("id" = String, Path, description = "The action id"), ShowQuery),
    responses(
        (status = 200, description = "The action", body = ActionView),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 401, description = "No valid token, or the token was revoked while the request waited", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "With `wait`: this token already has as many long-polls and event streams open as the server allows", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ShowQuery>,
) -> Result<Response, AppError> {
    let wait = query
        .wait
        .map_or(0, WaitSeconds::get)
        .min(state.limits().max_wait_seconds);
    if wait == 0 {
        let record = state
            .store()
            .action(&id)
            .await?
            .ok_or_else(|| not_found(&id))?;
        caller.check_read(&record)?;
        return Ok(Json(ActionView::from(&record)).into_response());
    }
    let _permit = state.wait_caps().acquire(&caller.token.id)?;
    let mut revoked = state.revocations().watch(&caller.token.id).await?;
    if revoked.is_revoked() {
        return Err(revoked_while_waiting());
    }
    let mut watch = ActionWatch::start(&state, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    caller.check_read(watch.current())?;
    let waited = tokio::time::timeout(Duration::from_secs(wait), async {
        let decided = async {
            while watch.current().gate.status == Status::Pending {
                if !watch.next().await? {
                    break;
                }
            }
            Ok::<(), countersign_store::StoreError>(())
        };
        tokio::select! {
            () = revoked.revoked() => Err(revoked_while_waiting()),
            done = decided => done.map_err(AppError::from),
        }
    })
    .await;
    if let Ok(Err(error)) = waited {
        return Err(error);
    }
    // The JSON every waiter of this version shares.
    Ok((
        [(CONTENT_TYPE, "application/json")],
        watch.snapshot().json(),
    )
        .into_response())
}

/// Server-Sent Events: one `status` event per change of the action, carrying the action
/// object. The first event is the action as it is now; the stream ends after the event
/// that carries a final status, or as soon as the caller's token is revoked.
#[utoipa::path(
    get, path = "/v1/actions/{id}/events", tag = "actions", operation_id = "watch_action",
    params(("id" = String, Path, description = "The action id")),
    responses(
        (status = 200, description = "An event stream of `status` events whose data is the action object",
            content_type = "text/event-stream", body = StatusEvent),
        (status = 401, description = "No valid token (a stream whose token is revoked later ends)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "This token already has as many long-polls and event streams open as the server allows", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, AppError> {
    let permit = state.wait_caps().acquire(&caller.token.id)?;
    let revoked = state.revocations().watch(&caller.token.id).await?;
    if revoked.is_revoked() {
        return Err(revoked_while_waiting());
    }
    let watch = ActionWatch::start(&state, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    caller.check_read(watch.current())?;
    Ok(event_stream::response(watch, revoked, permit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending` (the default: the review queue, oldest deadline first) or another status
    /// (newest first).
    #[param(inline)]
    status: Option<StatusView>,
    /// A glob on the action name: name characters, `*` for any run and `?` for any one
    /// character, e.g. `refund.*`.
    #[param(inline)]
    action: Option<ActionGlob>,
    /// Page size, 1 to 1000 (default 50); a page also ends early, with a `next_cursor`, once
    /// it holds the server's `max_page_bytes`.
    #[param(inline)]
    limit: Option<PageSize>,
    /// The `next_cursor` of the previous page: `KEY.ID`, the last item's sort key in
    /// milliseconds and its id.
    #[param(inline)]
    cursor: Option<CursorParam>,
}

/// The review queue: pending actions, oldest deadline first. With another `status`, the
/// actions in that status, newest first.
#[utoipa::path(
    get, path = "/v1/actions", tag = "actions", operation_id = "list_actions",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of actions", body = ActionPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ActionPage>, AppError> {
    caller.require_reviewer("listing actions")?;
    let status = query.status.map_or(Status::Pending, Status::from);
    let action = query.action.map(|glob| glob.0);
    // 0: the store's default page size.
    let limit = query.limit.map_or(0, PageSize::as_u32);
    let cursor = query.cursor.map(|cursor| cursor.0);
    let page = if status == Status::Pending {
        state
            .store()
            .queue(QueueQuery {
                action,
                limit,
                cursor,
                max_bytes: state.limits().max_page_bytes,
            })
            .await?
    } else {
        state
            .store()
            .actions(ActionQuery {
                status: Some(status),
                action,
                agent: None,
                limit,
                cursor,
                max_bytes: state.limits().max_page_bytes,
            })
            .await?
    };
    Ok(Json(ActionPage {
        items: page.items.iter().map(ActionView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
