//! The post-hoc review queue: sampled `logged` actions, oldest first; each opens in the
//! single view with "looks right" and "flag".

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use countersign_core::lifecycle::answers_for;
use countersign_store::ReviewQuery;
use serde::Deserialize;

use super::error::WebError;
use super::forms::{WebQuery, encode_query};
use super::present::ago;
use super::queue::Row;
use super::session::Person;
use super::{Chrome, flash};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewsQuery {
    cursor: Option<String>,
    decided: Option<String>,
    verdict: Option<String>,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    next: Option<String>,
    flash: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    person: Person,
    WebQuery(query): WebQuery<ReviewsQuery>,
) -> Result<Response, WebError> {
    let page = state
        .store()
        .reviews(ReviewQuery {
            reviewed: false,
            limit: 50,
            cursor: query.cursor,
            max_bytes: state.limits().max_page_bytes,
        })
        .await?;
    let now = state.clock().now();
    let rows = page
        .items
        .iter()
        // The agent's owner may not review its actions (the store refuses it too).
        .filter(|r| !answers_for(&r.gate.agent, r.gate.owner.as_ref(), &person.user.name))
        .map(|r| {
            let mut row = super::queue::row(r, now);
            row.time_left = format!("ran {}", ago(r.created_at, now));
            row
        })
        .collect();
    let html = ReviewsPage {
        chrome: Chrome::of(&person, "reviews"),
        rows,
        next: page
            .next_cursor
            .map(|c| format!("/reviews?{}", encode_query(&[("cursor", c)]))),
        flash: flash(query.decided.as_deref(), query.verdict.as_deref(), None),
    }
    .render()
    .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok(Html(html).into_response())
}
