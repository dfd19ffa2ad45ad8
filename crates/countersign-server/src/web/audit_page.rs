//! The audit page (admins, as for the API's `/v1/audit`): the log newest first, filtered by
//! action and actor within a bounded scan, and the chain's verification status, from the
//! last verification this server ran ("Verify now" runs one: the whole chain and every
//! action's state, which takes seconds on a large log, so a page view never does).

use askama::Template;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use countersign_core::name::Name;
use countersign_store::AuditFilter;
use serde::Deserialize;

use super::Chrome;
use super::error::WebError;
use super::forms::{WebForm, WebQuery, encode_query};
use super::present::{ago, clock, iso};
use super::session::{Person, check_same_origin};
use super::sign_in::CsrfForm;
use crate::state::AppState;

/// The result of the last verification.
#[derive(Clone, Debug)]
pub struct Verification {
    pub ok: bool,
    pub at: DateTime<Utc>,
    pub summary: String,
    pub problems: Vec<String>,
}

pub struct VerificationView {
    pub ok: bool,
    pub when: String,
    pub summary: String,
    pub problems: Vec<String>,
}

pub struct EntryView {
    pub seq: u64,
    pub at: String,
    pub at_iso: String,
    pub kind: String,
    pub actor: String,
    pub action_id: String,
    pub action_short: String,
    pub body: String,
    pub body_summary: String,
    pub hash: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    verification: Option<VerificationView>,
    filter_action: String,
    filter_actor: String,
    filtered: bool,
    total: u64,
    scanned: String,
    entries: Vec<EntryView>,
    newer: Option<String>,
    older: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    before: Option<u64>,
}

fn require_admin(person: &Person) -> Result<(), WebError> {
    if person.user.admin {
        Ok(())
    } else {
        Err(WebError::forbidden(
            "The audit log is for administrators, as it is in the API.",
        ))
    }
}

pub async fn page(
    State(state): State<AppState>,
    person: Person,
    WebQuery(query): WebQuery<AuditQuery>,
) -> Result<Response, WebError> {
    require_admin(&person)?;
    let action = query.action.trim();
    let is_id = action.len() <= 64 && action.bytes().all(|b| b.is_ascii_alphanumeric());
    if !action.is_empty() && !is_id {
        return Err(WebError::bad_request(format!(
            "not an action id: {action:?}"
        )));
    }
    let actor = match query.actor.trim() {
        "" => None,
        name => Some(Name::parse(name).map_err(|e| WebError::bad_request(format!("actor: {e}")))?),
    };
    let window = state
        .store()
        .audit_window(AuditFilter {
            action_id: (!action.is_empty()).then(|| action.to_owned()),
            actor,
            before: query.before,
            limit: 100,
            scan: 0,
        })
        .await?;
    let now = state.clock().now();
    let link = |before: Option<u64>| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !action.is_empty() {
            pairs.push(("action", action.to_owned()));
        }
        if !query.actor.trim().is_empty() {
            pairs.push(("actor", query.actor.trim().to_owned()));
        }
        if let Some(before) = before {
            pairs.push(("before", before.to_string()));
        }
        if pairs.is_empty() {
            "/audit".to_owned()
        } else {
            format!("/audit?{}", encode_query(&pairs))
        }
    };
    let top = query
        .before
        .unwrap_or(window.total + 1)
        .min(window.total + 1);
    let bottom = window.next_before.unwrap_or(1);
    let entries = window
        .entries
        .iter()
        .map(|e| {
            let body = serde_json::from_str::<serde_json::Value>(&e.body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| e.body.clone());
            let summary: String = e.body.chars().take(80).collect();
            EntryView {
                seq: e.seq,
                at: clock(e.at),
                at_iso: iso(e.at),
                kind: e.kind.clone(),
                actor: e.actor.clone(),
                action_short: e.action_id.chars().take(10).collect(),
                action_id: e.action_id.clone(),
                body,
                body_summary: if e.body.chars().count() > 80 {
                    format!("{summary}…")
                } else {
                    summary
                },
                hash: e.hash.clone(),
            }
        })
        .collect();
    let verification = state
        .web()
        .verification
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .map(|v| VerificationView {
            ok: v.ok,
            when: ago(v.at, now),
            summary: v.summary,
            problems: v.problems,
        });
    let html = AuditPage {
        chrome: Chrome::of(&person, "audit"),
        verification,
        filter_action: action.to_owned(),
        filter_actor: query.actor.trim().to_owned(),
        filtered: !action.is_empty() || !query.actor.trim().is_empty(),
        total: window.total,
        scanned: format!(
            "looked through entries {bottom} to {}",
            top.saturating_sub(1)
        ),
        entries,
        newer: query.before.map(|_| link(None)),
        older: window.next_before.map(|b| link(Some(b))),
    }
    .render()
    .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok(Html(html).into_response())
}

pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    person: Person,
    WebForm(form): WebForm<CsrfForm>,
) -> Result<Response, WebError> {
    check_same_origin(&headers)?;
    person.check_csrf(&form.csrf)?;
    require_admin(&person)?;
    let mut claims = Vec::new();
    let mut unverified = Vec::new();
    if let Some(checkpoints) = state.checkpoints()
        && let Some(latest) = state.store().latest_checkpoint().await?
    {
        match crate::checkpoints::stored_claim(&latest, &checkpoints.verifier()) {
            Ok(claim) => claims.push(claim),
            Err(failed) => unverified.push(failed),
        }
    }
    let report = state.store().verify_audit_against(claims).await?;
    // The API's view of the report, so that the page says what `GET /v1/audit/verify` says.
    let view = crate::audit_views::VerifyView::new(&report, unverified);
    let value = serde_json::to_value(&view).unwrap_or_default();
    let mut problems = Vec::new();
    let ok = value["ok"].as_bool().unwrap_or(false);
    if let Some(listed) = value["problems"].as_array() {
        problems.extend(listed.iter().filter_map(|p| p.as_str().map(str::to_owned)));
    }
    if let Some(message) = value["message"].as_str() {
        problems.insert(0, message.to_owned());
    }
    let summary = format!(
        "{} entries, {} actions re-derived, head {}",
        value["entries"],
        value["actions"],
        value["head"]
            .as_str()
            .map(|h| h.chars().take(16).collect::<String>())
            .unwrap_or_default()
    );
    *state
        .web()
        .verification
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(Verification {
        ok,
        at: state.clock().now(),
        summary,
        problems,
    });
    Ok((StatusCode::SEE_OTHER, [(LOCATION, "/audit")]).into_response())
}
