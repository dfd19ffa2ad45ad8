//! Deliveries of notifications and callbacks, for admins: what was sent where, what is
//! still being tried, and what failed for good — and putting a failed one back in line.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use countersign_store::{Delivery, DeliveryQuery, DeliveryStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// `pending`, `delivered` or `failed`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatusBody {
    Pending,
    Delivered,
    Failed,
}

/// One event on its way to one destination.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// The message id receivers de-duplicate on (`webhook-id`).
    pub event_id: String,
    /// `pending`, `reminder`, `escalated`, `expired`, `decided`, `cancelled` or
    /// `graduation_regressed`.
    pub event: String,
    /// The action the event is about; empty for `graduation_regressed` (about a rule).
    pub action_id: String,
    /// The `[[notify]]` target's name, or `callback`.
    pub target: String,
    /// For callbacks: the agent's URL.
    pub url: Option<String>,
    pub status: DeliveryStatusBody,
    /// Tries made so far.
    pub attempts: u32,
    /// When the next try is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last try failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was delivered, or failed for good.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        DeliveryView {
            id: d.id.to_string(),
            event_id: d.event_id.clone(),
            event: d.event_kind.as_str().to_owned(),
            action_id: d.action_id.clone(),
            target: d.target.clone(),
            url: d.url.clone(),
            status: match d.status {
                DeliveryStatus::Pending => DeliveryStatusBody::Pending,
                DeliveryStatus::Delivered => DeliveryStatusBody::Delivered,
                DeliveryStatus::Failed => DeliveryStatusBody::Failed,
            },
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// Only deliveries in this status (default: all).
    status: Option<DeliveryStatusBody>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    cursor: Option<String>,
}

/// Notification and callback deliveries, newest first (`?status=failed`: those whose
/// every try failed).
#[utoipa::path(
    get, path = "/v1/deliveries", tag = "deliveries", operation_id = "list_deliveries",
    params(DeliveryListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "A malformed query string or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DeliveryListQuery>,
) -> Result<Json<DeliveryPage>, AppError> {
    caller.require_admin("listing deliveries")?;
    if let Some(limit) = query.limit.filter(|l| !(1..=1000).contains(l)) {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("limit must be from 1 to 1000, found {limit}"),
        ));
    }
    let page = state
        .store()
        .deliveries(DeliveryQuery {
            status: query.status.map(|s| match s {
                DeliveryStatusBody::Pending => DeliveryStatus::Pending,
                DeliveryStatusBody::Delivered => DeliveryStatus::Delivered,
                DeliveryStatusBody::Failed => DeliveryStatus::Failed,
            }),
            limit: query.limit.unwrap_or(50),
            cursor: query.cursor,
        })
        .await?;
    Ok(Json(DeliveryPage {
        items: page.items.iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Puts a failed delivery back in line for a new round of tries (audited).
#[utoipa::path(
    post, path = "/v1/deliveries/{id}/retry", tag = "deliveries", operation_id = "retry_delivery",
    params(("id" = String, Path, description = "The delivery id")),
    responses(
        (status = 200, description = "The delivery, pending again", body = DeliveryView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "The delivery is not failed (`not_failed`): it was delivered or is still being tried", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeliveryView>, AppError> {
    caller.require_admin("retrying a delivery")?;
    let number = id
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(|| AppError::not_found(format!("no delivery with id {id:?}")))?;
    let now = state.clock().now();
    let delivery = state
        .store()
        .retry_delivery(number, caller.actor(), now)
        .await?;
    tracing::info!(id = number, target = %delivery.target, by = %caller.name(), "delivery retried");
    Ok(Json(DeliveryView::from(&delivery)))
}
