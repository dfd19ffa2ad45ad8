//! The queue: the pending actions the signed-in person may decide, most urgent deadline
//! first, filtered by action, agent and tier, with counts per tier, paged by position in
//! (deadline, id) order (fast at any depth: each page is an index range).
//!
//! Whether the person may decide an action is the core's rule (`Gate::may_decide`, and not
//! having approved it already), applied to each row read; rows for other reviewers are
//! skipped, within a bounded number of rows read per request.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use countersign_core::Tier;
use countersign_core::action::{ACTION_NAME_CHARS, is_action_name_char};
use countersign_core::glob::Glob;
use countersign_core::lifecycle::Reviewer;
use countersign_core::name::Name;
use countersign_core::summary::args_summary;
use countersign_store::{ActionRecord, PendingQuery, QueuePosition, TierCounts};
use serde::Deserialize;

use super::error::WebError;
use super::forms::{WebQuery, encode_query};
use super::present::{iso, time_left};
use super::session::Person;
use super::{Chrome, flash};
use crate::state::AppState;

/// Rows on a page.
const PAGE_ROWS: usize = 50;
/// Rows read from the store per batch, and at most per request.
const BATCH: u32 = 200;
const MAX_READ: usize = 2000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    tier: String,
    /// Start after this position (`DEADLINE_MILLIS.ID`).
    after: Option<String>,
    /// End before this position.
    before: Option<String>,
    decided: Option<String>,
    verdict: Option<String>,
    grant: Option<String>,
}

/// The filters as the form shows them.
pub struct Filters {
    pub action: String,
    pub agent: String,
    pub tier: String,
}

pub struct Row {
    pub id: String,
    pub action: String,
    pub agent: String,
    pub tier: String,
    pub summary: String,
    pub confidence: String,
    pub deadline: String,
    pub time_left: String,
    pub urgent: bool,
}

pub struct Links {
    pub all_tiers: String,
    pub approve: String,
    pub confirm: String,
    pub previous: Option<String>,
    pub next: Option<String>,
}

pub struct Counts {
    pub total: u64,
    pub approve: u64,
    pub confirm: u64,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    chrome: Chrome,
    filters: Filters,
    filtered: bool,
    rows: Vec<Row>,
    skipped: usize,
    counts: Counts,
    links: Links,
    flash: Option<String>,
}

/// May `person` decide `record` now (the core's rule), and has not approved it already?
pub fn decidable(record: &ActionRecord, person: &Person) -> bool {
    let reviewer = Reviewer {
        name: &person.user.name,
        groups: &person.user.groups,
        admin: person.user.admin,
    };
    record.gate.may_decide(&reviewer).is_ok() && !record.gate.approved_by(&person.user.name)
}

pub fn row(record: &ActionRecord, now: chrono::DateTime<chrono::Utc>) -> Row {
    Row {
        id: record.id.clone(),
        action: record.gate.action.to_string(),
        agent: record.gate.agent.to_string(),
        tier: record.gate.tier.as_str().to_owned(),
        summary: args_summary(&record.gate.args, 90),
        confidence: record
            .confidence
            .map(|c| format!("{:.0}%", c * 100.0))
            .unwrap_or_default(),
        deadline: record.gate.deadline.map(iso).unwrap_or_default(),
        time_left: time_left(record.gate.deadline, now),
        urgent: record
            .gate
            .deadline
            .is_some_and(|d| d - now < chrono::TimeDelta::minutes(5)),
    }
}

fn position(record: &ActionRecord) -> Option<QueuePosition> {
    Some(QueuePosition {
        deadline: record.gate.deadline?,
        id: record.id.clone(),
    })
}

pub async fn page(
    State(state): State<AppState>,
    person: Person,
    WebQuery(query): WebQuery<QueueQuery>,
) -> Result<Response, WebError> {
    let base = parse_filters(&query)?;
    let from = match (&query.after, &query.before) {
        (Some(_), Some(_)) => {
            return Err(WebError::bad_request(
                "give either after or before, not both",
            ));
        }
        (Some(p), None) | (None, Some(p)) => Some(
            QueuePosition::decode(p)
                .ok_or_else(|| WebError::bad_request(format!("not a queue position: {p:?}")))?,
        ),
        (None, None) => None,
    };
    let backwards = query.before.is_some();
    let now = state.clock().now();
    let mut rows: Vec<ActionRecord> = Vec::new();
    let mut skipped = 0;
    let mut read = 0;
    let mut cursor = from.clone();
    let mut more = false;
    // Read batches until the page is full, the queue ends, or the read bound is reached.
    while rows.len() < PAGE_ROWS && read < MAX_READ {
        let batch = state
            .store()
            .pending(PendingQuery {
                from: cursor.clone(),
                backwards,
                limit: BATCH,
                ..base.clone()
            })
            .await?;
        read += batch.items.len();
        let mut ordered = batch.items;
        if backwards {
            ordered.reverse();
        }
        let mut stopped_early = false;
        for record in ordered {
            cursor = position(&record);
            if rows.len() >= PAGE_ROWS {
                stopped_early = true;
                break;
            }
            if decidable(&record, &person) {
                rows.push(record);
            } else {
                skipped += 1;
            }
        }
        more = batch.more || stopped_early;
        if !batch.more || stopped_early {
            break;
        }
    }
    if read >= MAX_READ && rows.len() < PAGE_ROWS {
        more = true;
    }
    if backwards {
        rows.reverse();
    }
    let counts: TierCounts = state.store().pending_counts().await?;
    let filters = Filters {
        action: query.action.clone(),
        agent: query.agent.clone(),
        tier: query.tier.clone(),
    };
    let link = |tier: &str, extra: Option<(&str, String)>| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !filters.action.is_empty() {
            pairs.push(("action", filters.action.clone()));
        }
        if !filters.agent.is_empty() {
            pairs.push(("agent", filters.agent.clone()));
        }
        if !tier.is_empty() {
            pairs.push(("tier", tier.to_owned()));
        }
        pairs.extend(extra);
        if pairs.is_empty() {
            "/queue".to_owned()
        } else {
            format!("/queue?{}", encode_query(&pairs))
        }
    };
    // Going forwards from the top, "more urgent" exists only if we started somewhere.
    let (has_previous, has_next) = if backwards {
        (more, true)
    } else {
        (from.is_some(), more)
    };
    let links = Links {
        all_tiers: link("", None),
        approve: link("approve", None),
        confirm: link("confirm", None),
        previous: has_previous
            .then(|| rows.first().and_then(position).or(from.clone()))
            .flatten()
            .map(|p| link(&filters.tier, Some(("before", p.encode())))),
        next: has_next
            .then(|| {
                if backwards {
                    rows.last().and_then(position).or(from.clone())
                } else {
                    cursor.clone()
                }
            })
            .flatten()
            .map(|p| link(&filters.tier, Some(("after", p.encode())))),
    };
    let page = QueuePage {
        chrome: Chrome::of(&person, "queue"),
        filtered: !(filters.action.is_empty()
            && filters.agent.is_empty()
            && filters.tier.is_empty()),
        filters,
        rows: rows.iter().map(|r| row(r, now)).collect(),
        skipped,
        counts: Counts {
            total: counts.total(),
            approve: counts.approve,
            confirm: counts.confirm,
        },
        links,
        flash: flash(
            query.decided.as_deref(),
            query.verdict.as_deref(),
            query.grant.as_deref(),
        ),
    };
    let html = page
        .render()
        .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok(Html(html).into_response())
}

fn parse_filters(query: &QueueQuery) -> Result<PendingQuery, WebError> {
    let action = match query.action.trim() {
        "" => None,
        pattern => Some(
            Glob::parse(pattern, is_action_name_char, ACTION_NAME_CHARS)
                .map_err(|e| WebError::bad_request(format!("action filter: {e}")))?,
        ),
    };
    let agent = match query.agent.trim() {
        "" => None,
        name => Some(
            Name::parse(name).map_err(|e| WebError::bad_request(format!("agent filter: {e}")))?,
        ),
    };
    let tier = match query.tier.trim() {
        "" => None,
        text => Some(
            text.parse::<Tier>()
                .map_err(|e| WebError::bad_request(format!("tier filter: {e}")))?,
        ),
    };
    Ok(PendingQuery {
        action,
        agent,
        tier,
        ..PendingQuery::default()
    })
}
