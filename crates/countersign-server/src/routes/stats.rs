//! Approval metrics (SPEC §6) and the training-data export.
//!
//! Who sees what: reviewers and admins read statistics; per-reviewer figures (approval
//! fatigue, the rubber-stamp warning) of other people are for admins — a reviewer asking
//! `group_by=reviewer` gets their own entry only, so that the figures help a person watch
//! themselves and a team lead watch the team, without making colleagues each other's
//! auditors. Only admins export: the export holds every case's full context.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use countersign_core::learning::{self, Label};
use countersign_core::name;
use countersign_core::stats::{self, GroupBy, Window};
use countersign_store::{ExportQuery, Role};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::export_formats;
use crate::extract::ApiQuery;
use crate::params::ActionGlob;
use crate::state::AppState;
use crate::stats_params::{ExportFormat, GroupByView, LabelList, RuleName, Timestamp};
use crate::stats_views::StatsView;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Actions submitted at or after this RFC 3339 time (default: the first).
    #[param(inline)]
    since: Option<Timestamp>,
    /// ... and before this one (default: now). Must be after `since`.
    #[param(inline)]
    until: Option<Timestamp>,
    /// `action` (default), `agent`, `rule`, `reviewer` or `tier`.
    #[param(inline)]
    group_by: Option<GroupByView>,
}

fn window(since: Option<Timestamp>, until: Option<Timestamp>) -> Result<Window, AppError> {
    Window::new(since.map(|t| t.0), until.map(|t| t.0))
        .map_err(|e| AppError::bad_request("invalid_window", e.to_string()))
}

/// Approval metrics of the actions submitted in a window, overall and per group: counts by
/// outcome, approval, rejection, modification and timeout rates, review latency
/// percentiles, SLA outcomes, post-hoc flags; per action name, a high rejection or
/// modification rate; per reviewer, approval-fatigue figures. Answered from sums kept as
/// decisions happen, never by reading the history. `since` must be before `until` (`400
/// invalid_window`). With `group_by=reviewer`, a reviewer sees their own entry only; admins
/// see everyone's.
#[utoipa::path(
    get, path = "/v1/stats", tag = "stats", operation_id = "get_stats",
    params(StatsQuery),
    responses(
        (status = 200, description = "The window's figures", body = StatsView),
        (status = 400, description = "A malformed parameter, or `since` not before `until`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a reviewer or an admin", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<StatsView>, AppError> {
    caller.require_reviewer("reading statistics")?;
    let window = window(query.since, query.until)?;
    let group_by = query.group_by.unwrap_or_default();
    let settings = state.stats_config().settings;
    let data = state.store().stats(window, state.clock().now()).await?;
    let mut report = stats::report(&data, group_by.into(), &settings);
    let regressions = state.store().active_regressions().await?;
    if GroupBy::from(group_by) == GroupBy::Reviewer && caller.token.role != Role::Admin {
        report.groups.retain(|g| {
            g.key
                .as_deref()
                .is_some_and(|k| name::same(k, caller.name()))
        });
    }
    Ok(Json(StatsView::new(
        &report,
        window.since(),
        window.until(),
        group_by,
        &settings,
        &regressions,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `jsonl` (default), `openai-chat`, `preference` or `eval`.
    #[param(inline)]
    format: Option<ExportFormat>,
    /// Actions submitted at or after this RFC 3339 time.
    #[param(inline)]
    since: Option<Timestamp>,
    /// ... and before this one. Must be after `since`.
    #[param(inline)]
    until: Option<Timestamp>,
    /// Only actions whose name matches this pattern (`*` any run, `?` any one).
    #[param(inline)]
    action: Option<ActionGlob>,
    /// Only actions classified by this rule.
    #[param(inline)]
    rule: Option<RuleName>,
    /// Which cases, comma-separated: `rejected`, `modified`, `flagged`, `expired` (default
    /// `rejected,modified,flagged`). `expired` only with `format=jsonl`: nobody judged
    /// those actions, so they make no chat example, preference pair or test case.
    #[param(inline)]
    verdict: Option<LabelList>,
}

/// The default cases: every human judgment.
const DEFAULT_LABELS: [Label; 3] = [Label::Rejected, Label::Modified, Label::Flagged];

/// Cases read per page: each page is read, rendered and sent before the next is read.
const EXPORT_PAGE: u32 = 200;

/// Training and evaluation data: one JSON object per line (NDJSON), oldest first, for
/// every rejected, modified and flagged action (and, asked for, expired ones in `jsonl`,
/// labelled `expired`, never `rejected`), with its context, the agent's reasoning, the
/// reviewer's reason and, for modifications, the corrected arguments. Streamed a page at a
/// time. `since` must be before `until` and `expired` needs `format=jsonl` (`400`).
#[utoipa::path(
    get, path = "/v1/export", tag = "stats", operation_id = "export_cases",
    params(ExportParams),
    responses(
        (status = 200, description = "One JSON object per line", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A malformed parameter, `since` not before `until`, or `expired` with a format other than `jsonl`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, AppError> {
    caller.require_admin("exporting training data")?;
    let window = window(params.since, params.until)?;
    let format = params.format.unwrap_or_default();
    let labels = params
        .verdict
        .map_or_else(|| DEFAULT_LABELS.to_vec(), |list| list.0);
    if format != ExportFormat::Jsonl && labels.contains(&Label::Expired) {
        return Err(AppError::bad_request(
            "expired_is_not_a_judgment",
            format!(
                "expired actions carry no person's judgment and make no {} lines; export them with format=jsonl, where they are labelled expired",
                format.as_str()
            ),
        ));
    }
    let query = ExportQuery {
        window,
        action: params.action.map(|glob| glob.0),
        rule: params.rule.map(|rule| rule.0),
        labels: labels.clone(),
        cursor: None,
        limit: EXPORT_PAGE,
        max_bytes: state.limits().max_page_bytes,
    };
    // Pulled by the connection as the client reads: one page in memory at a time.
    let pages = futures_util::stream::unfold(Some(query), move |query| {
        let state = state.clone();
        let labels = labels.clone();
        async move {
            let query = query?;
            let page = match state.store().export(query.clone()).await {
                Ok(page) => page,
                // Headers are sent: ending the body without its last chunk is how a reader
                // learns the export is incomplete.
                Err(error) => return Some((Err(std::io::Error::other(error.to_string())), None)),
            };
            let mut out = Vec::new();
            for record in &page.items {
                let Some(case) = learning::case(&record.gate) else {
                    continue;
                };
                if !labels.contains(&case.label) {
                    continue;
                }
                if let Some(line) = export_formats::line(format, record, &case) {
                    out.extend_from_slice(line.to_string().as_bytes());
                    out.push(b'\n');
                }
            }
            let next = page.next_cursor.map(|cursor| ExportQuery {
                cursor: Some(cursor),
                ..query
            });
            Some((Ok::<_, std::io::Error>(Bytes::from(out)), next))
        }
    });
    Ok((
        [(CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}
