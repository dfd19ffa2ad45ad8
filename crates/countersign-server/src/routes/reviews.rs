//! Post-hoc review: the queue of allowed `logged` actions drawn by `review_sample`, and a
//! reviewer's verdict on one of them.

use axum::Json;
use axum::extract::State;
use countersign_store::{NewReview, ReviewQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::params::{CursorParam, PageSize};
use crate::state::AppState;
use crate::views::{ActionPage, ActionView, ReviewBody, ReviewQueue};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewsQuery {
    /// `open` (the default) or `done`.
    #[param(inline)]
    status: Option<ReviewQueue>,
    /// Page size, 1 to 1000 (default 50); a page also ends early, with a `next_cursor`, once
    /// it holds the server's `max_page_bytes`.
    #[param(inline)]
    limit: Option<PageSize>,
    /// The `next_cursor` of the previous page.
    #[param(inline)]
    cursor: Option<CursorParam>,
}

/// The post-hoc review queue, oldest first.
#[utoipa::path(
    get, path = "/v1/reviews", tag = "reviews", operation_id = "list_reviews",
    params(ReviewsQuery),
    responses(
        (status = 200, description = "A page of sampled actions", body = ActionPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ReviewsQuery>,
) -> Result<Json<ActionPage>, AppError> {
    caller.require_reviewer("listing reviews")?;
    let reviewed = query.status.unwrap_or_default() == ReviewQueue::Done;
    let page = state
        .store()
        .reviews(ReviewQuery {
            reviewed,
            // 0: the store's default page size.
            limit: query.limit.map_or(0, PageSize::as_u32),
            cursor: query.cursor.map(|cursor| cursor.0),
            max_bytes: state.limits().max_page_bytes,
        })
        .await?;
    Ok(Json(ActionPage {
        items: page.items.iter().map(ActionView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Records a post-hoc review: `ok`, or `flag` (the policy let through something it should
/// not have). The agent's owner, and the agent itself, may not review its actions, as they
/// may not decide on them.
#[utoipa::path(
    post, path = "/v1/actions/{id}/review", tag = "reviews", operation_id = "review_action",
    params(("id" = String, Path, description = "The action id")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The reviewed action", body = ActionView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a reviewer, or the owner of the agent that submitted the action (or that agent)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not sampled for review, or already reviewed", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "The body is larger than the server accepts", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "The body is JSON of the wrong shape", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn review(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Json<ActionView>, AppError> {
    caller.require_reviewer("reviewing an action")?;
    let now = state.clock().now();
    let record = state
        .store()
        .review(
            id,
            caller.actor(),
            NewReview {
                verdict: body.verdict.into(),
                note: body.note,
            },
            now,
        )
        .await?;
    Ok(Json(ActionView::from(&record)))
}
