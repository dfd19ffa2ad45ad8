//! Operations endpoints: health, Prometheus metrics and the OpenAPI document.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use countersign_store::StoreHealth;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::metrics::Gauges;
use crate::state::AppState;

/// `200` while the server is serving; `503` with the reason while its store cannot take
/// writes (closed, its writer stopped, the disk full, the file read-only or damaged), so
/// that a supervisor or load balancer stops sending agents to a gateway that can only
/// refuse them. The store's answer is checked with a real write when its last one is more
/// than a few seconds old or failed, so it shows a disk that filled up while idle, and
/// recovery once writes go through again.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = serde_json::Value),
        (status = 503, description = "The store cannot take writes; the message says why", body = ErrorBody),
    ))]
pub async fn healthz(
    State(state): State<AppState>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    match state.store().health().await {
        StoreHealth::Ok => Ok(axum::Json(serde_json::json!({"status": "ok"}))),
        StoreHealth::Unavailable(reason) => Err(AppError::unavailable(format!(
            "the store cannot take writes: {reason}"
        ))),
        StoreHealth::Damaged(reason) => Err(AppError::unavailable(format!(
            "the database file is damaged: {reason}; restore it from a backup and restart"
        ))),
    }
}

/// Prometheus text format. Public unless the server is configured otherwise.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    if !state.metrics_public() {
        let (mut parts, _) = request.into_parts();
        if let Err(error) = Caller::from_request_parts(&mut parts, &state).await {
            return error.into_response();
        }
    }
    let gauges = Gauges {
        watched_actions: state.watchers().watched(),
        open_waits: state.wait_caps().total(),
    };
    let mut text = state.metrics().render(state.store().commit_stats(), gauges);
    // The approval metrics come from the database's kept sums; without them the rest of
    // the scrape still answers.
    let store = state.store();
    match tokio::try_join!(store.stats_totals(), store.pending_counts()) {
        Ok((totals, pending)) => {
            let config = state.stats_config();
            crate::stats_metrics::render(
                &mut text,
                &totals,
                &pending,
                config.max_action_labels,
                config.max_rule_labels,
            );
        }
        Err(error) => {
            tracing::warn!(%error, "approval metrics left out of /metrics");
            text.push_str(&format!("# approval metrics unavailable: {error}\n"));
        }
    }
    state.policy().render_metrics(&mut text);
    if let Some(checkpoints) = state.checkpoints() {
        text.push_str(&checkpoints.render_metrics());
    }
    if let Ok(regressions) = state.store().active_regressions().await {
        render_regressions(&mut text, &regressions);
    }
    if let Some(notifications) = state.notifications() {
        text.push_str(&notifications.render_metrics());
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = serde_json::Value)))]
pub async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// Unknown paths answer in the API's error format.
pub async fn not_found() -> AppError {
    AppError::not_found("no such endpoint")
}

pub async fn method_not_allowed() -> AppError {
    AppError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Graduated rules whose post-hoc flag rate crossed the target and has not recovered: a
/// warning an alerting rule can fire on (`countersign_graduation_regressed > 0`).
fn render_regressions(out: &mut String, regressions: &[countersign_store::ActiveRegression]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP countersign_graduation_regressed Graduated rules (by rule and action) whose post-hoc flag rate crossed the target.\n\
         # TYPE countersign_graduation_regressed gauge"
    );
    let escape = |text: &str| {
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    for r in regressions {
        let _ = writeln!(
            out,
            "countersign_graduation_regressed{{rule=\"{}\",action=\"{}\"}} 1",
            escape(&r.rule),
            escape(&r.action)
        );
    }
}
