//! Graduation: the evidence and proposals against the policy in force
//! (`GET /v1/graduation`), and a candidate policy replayed over the history
//! (`POST /v1/policy/replay`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::TimeDelta;
use countersign_core::Policy;
use countersign_core::duration::ReviewDuration;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::ApiJson;
use crate::graduation;
use crate::graduation_views::{GraduationView, ReplayBody, ReplayView};
use crate::state::AppState;

/// The evidence per rule and action type in the configured window, and the changes of the
/// policy in force it supports: relax `approve` → `logged` where the error rate's 95% upper
/// bound is under the target over enough decisions, narrowed by an argument where the errors
/// cluster, tighten `logged` → `approve` where post-hoc flags run too high. Each proposal
/// comes as a diff of the policy file with the replay of the changed policy over the
/// window. Nothing changes the policy in force; an operator applies a diff. Also lists the
/// regressions of graduated rules reviewers were told of.
#[utoipa::path(
    get, path = "/v1/graduation", tag = "graduation", operation_id = "graduation",
    responses(
        (status = 200, description = "Evidence, proposals and regressions", body = GraduationView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a reviewer or admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GraduationView>, AppError> {
    caller.require_reviewer("reading graduation suggestions")?;
    let settings = state.graduation_settings();
    let policy = state.policy().current();
    let name = state
        .policy()
        .path()
        .map_or("policy".to_owned(), |p| p.display().to_string());
    // Replays share the one-at-a-time slot with `/v1/policy/replay`; when it is taken the
    // proposals come without their replays (`replay_complete: false`).
    let guard = state.start_replay();
    let deadline = guard
        .as_ref()
        .map(|_| Instant::now() + settings.replay_time_limit);
    let mut suggestions = graduation::suggest(
        state.store(),
        &policy,
        &name,
        settings.thresholds,
        state.clock().now(),
        deadline,
    )
    .await?;
    if guard.is_none() {
        suggestions.replay_complete = false;
    }
    drop(guard);
    let regressions = state.store().active_regressions().await?;
    Ok(Json(GraduationView::of(&suggestions, &regressions)))
}

/// Replays a candidate policy over every submission recorded in the window (default 30
/// days), with the engine the server classifies with (fail-closed rules included), on each
/// request exactly as the agent sent it, at the time it was sent. Answers, per action and
/// rule, what would have changed (tier from → to, how many) with those actions' real
/// outcomes, and lists by id every rejected, modified or flagged action the candidate would
/// have let run unreviewed. Admins only: a replay reads the whole history and takes a core
/// for seconds, so one runs at a time (`429 replay_busy`) and it stops at the server's
/// `replay_time_limit` (`complete: false`). The policy in force does not change.
#[utoipa::path(
    post, path = "/v1/policy/replay", tag = "graduation", operation_id = "replay_policy",
    request_body = ReplayBody,
    responses(
        (status = 200, description = "The replay's report", body = ReplayView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "The candidate policy has errors (`invalid_policy`, each with line and column) or `since` is not a duration (`invalid_since`)", body = ErrorBody),
        (status = 429, description = "Another replay is running (`replay_busy`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReplayBody>,
) -> Result<Json<ReplayView>, AppError> {
    caller.require_admin("replaying a policy")?;
    let window = match body.since.as_deref() {
        None => ReviewDuration::from_seconds(30 * 86_400).expect("30 days is a duration"),
        Some(text) => text.parse::<ReviewDuration>().map_err(|e| {
            AppError::invalid("invalid_since", format!("invalid since {text:?}: {e}"))
        })?,
    };
    let candidate = Policy::parse(&body.policy).map_err(|errors| {
        let listed: Vec<String> = errors
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("line {}, column {}: {}", d.line, d.column, d.message))
            .collect();
        AppError::invalid(
            "invalid_policy",
            format!(
                "the candidate policy has {} error(s): {}",
                listed.len(),
                listed.join("; ")
            ),
        )
    })?;
    let Some(_guard) = state.start_replay() else {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "replay_busy",
            "another replay is running; try again when it is done",
        ));
    };
    let since = state.clock().now() - TimeDelta::seconds(window.seconds() as i64);
    let deadline = Instant::now() + state.graduation_settings().replay_time_limit;
    // A client that goes away stops the scan too.
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    let run = graduation::replay_until(
        state.store(),
        Arc::new(candidate),
        since,
        Some(deadline),
        Arc::new(AtomicU64::new(0)),
        cancelled,
    )
    .await?;
    Ok(Json(ReplayView::from(&run)))
}

struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
