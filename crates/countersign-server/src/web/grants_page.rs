//! The grants page: what agents may do without asking right now (and what they could
//! recently), who allowed it, until when, how much of it is spent; any reviewer may revoke
//! a grant with one click.

use askama::Template;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use countersign_store::{GrantQuery, GrantRecord};
use serde::Deserialize;

use super::Chrome;
use super::error::WebError;
use super::forms::{WebForm, WebQuery};
use super::present::{ago, clock, duration_words, iso};
use super::session::{Person, check_same_origin};
use crate::extract::ApiPath;
use crate::grants;
use crate::state::AppState;

/// Most grants listed (newest first); live ones always come first.
const SHOWN: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsQuery {
    revoked: Option<String>,
}

pub struct GrantRow {
    pub id: String,
    pub agent: String,
    pub actions: String,
    pub when: String,
    pub granted_by: String,
    pub reason: String,
    pub given: String,
    pub given_iso: String,
    pub until: String,
    pub until_iso: String,
    pub uses: String,
    pub state: String,
    pub live: bool,
}

#[derive(Template)]
#[template(path = "grants.html")]
struct GrantsPage {
    chrome: Chrome,
    live: Vec<GrantRow>,
    ended: Vec<GrantRow>,
    flash: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    person: Person,
    WebQuery(query): WebQuery<GrantsQuery>,
) -> Result<Response, WebError> {
    let now = state.clock().now();
    let records = state.store().grants(GrantQuery::default()).await?;
    let (live, ended): (Vec<GrantRow>, Vec<GrantRow>) = records
        .iter()
        .take(SHOWN)
        .map(|r| row(r, now))
        .partition(|r| r.live);
    let flash = query
        .revoked
        .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|id| format!("You revoked grant {id}: from now on its agent asks again."));
    let html = GrantsPage {
        chrome: Chrome::of(&person, "grants"),
        live,
        ended,
        flash,
    }
    .render()
    .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok(Html(html).into_response())
}

fn row(record: &GrantRecord, now: chrono::DateTime<chrono::Utc>) -> GrantRow {
    let live = record.revoked_at.is_none()
        && now < record.expires_at
        && record.max_uses.is_none_or(|max| record.uses < max);
    let state = match (&record.revoked_at, &record.revoked_by) {
        (Some(at), by) => format!(
            "revoked by {} {}",
            by.as_ref().map(|b| b.as_str()).unwrap_or("?"),
            ago(*at, now)
        ),
        _ if record.max_uses.is_some_and(|max| record.uses >= max) => "used up".to_owned(),
        _ if now >= record.expires_at => format!("ended {}", ago(record.expires_at, now)),
        _ => format!(
            "live, {} left",
            duration_words(
                (record.expires_at - now)
                    .num_seconds()
                    .max(0)
                    .unsigned_abs()
            )
        ),
    };
    GrantRow {
        id: record.id.clone(),
        agent: record.agent.to_string(),
        actions: record.actions.clone(),
        when: record.condition.clone().unwrap_or_default(),
        granted_by: record.granted_by.to_string(),
        reason: record.reason.clone().unwrap_or_default(),
        given: ago(record.created_at, now),
        given_iso: iso(record.created_at),
        until: clock(record.expires_at),
        until_iso: iso(record.expires_at),
        uses: match record.max_uses {
            Some(max) => format!("{} of {max}", record.uses),
            None => format!("{} (no limit)", record.uses),
        },
        state,
        live,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeForm {
    csrf: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    person: Person,
    ApiPath(id): ApiPath<String>,
    WebForm(form): WebForm<RevokeForm>,
) -> Result<Response, WebError> {
    check_same_origin(&headers)?;
    person.check_csrf(&form.csrf)?;
    let record = grants::revoke(&state, &id, person.actor()).await?;
    tracing::info!(id = %record.id, by = %person.user.name, "grant revoked in the web UI");
    let query = super::forms::encode_query(&[("revoked", record.id)]);
    Ok((
        StatusCode::SEE_OTHER,
        [(LOCATION, format!("/grants?{query}"))],
    )
        .into_response())
}
