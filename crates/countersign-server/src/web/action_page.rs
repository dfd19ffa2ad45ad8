//! The single view: the proposed action and its arguments (readable), why it needs a
//! person (tier, rule, the policy's reason), the reasoning and context, the countdown, the
//! decisions so far and the action's history, what differs from the last approved one like
//! it, and the decision forms, shown only to a person who may decide.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use countersign_core::lifecycle::{ReviewState, Reviewer, Verdict, answers_for};
use countersign_core::{Status, Tier};
use countersign_store::{ActionRecord, LastApproved, PendingQuery, QueuePosition};
use serde::Deserialize;

use super::error::WebError;
use super::forms::WebQuery;
use super::present::{self, ago, args_html, clock, diff, diff_html, iso, size_warning, time_left};
use super::session::Person;
use super::{Chrome, flash};
use crate::extract::ApiPath;
use crate::state::AppState;

/// The facts shown, as text.
pub struct ActionFacts {
    pub id: String,
    pub version: u64,
    pub action: String,
    pub agent: String,
    pub owner: String,
    pub tier: String,
    pub status: String,
    pub rule: String,
    pub reason: String,
    pub reasoning: String,
    pub confidence: String,
    pub hints: String,
    pub approvers: String,
    pub approvals_given: usize,
    pub approvals_required: u32,
    pub deadline: String,
    pub time_left: String,
    pub urgent: bool,
    pub created: String,
    pub created_iso: String,
    pub modified: bool,
    pub size_warning: String,
    /// The grant that let it run without asking (empty: none).
    pub grant: String,
}

pub struct DecisionRow {
    pub reviewer: String,
    pub verdict: String,
    pub reason: String,
    pub at: String,
    pub at_iso: String,
    pub diff_html: String,
}

pub struct Step {
    pub at: String,
    pub at_iso: String,
    pub text: String,
}

pub struct LastApprovedView {
    pub id: String,
    pub when: String,
    pub same: bool,
    pub diff_html: String,
}

/// A modification ready to submit: its arguments, their differences and classification.
pub struct Preview {
    /// The new arguments as compact JSON, for the hidden field.
    pub args: String,
    pub diff_html: String,
    pub tier: String,
    pub rule: String,
    /// The new arguments make the action `confirm`: re-type the name.
    pub confirm: bool,
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    chrome: Chrome,
    a: ActionFacts,
    args_html: String,
    original_html: String,
    context_html: String,
    last_approved: Option<LastApprovedView>,
    decisions: Vec<DecisionRow>,
    history: Vec<Step>,
    can_decide: bool,
    can_review: bool,
    why_not: String,
    first_approver: String,
    needs_password: bool,
    reauth_minutes: i64,
    args_json: String,
    editor_text: String,
    modify_open: bool,
    preview: Option<Preview>,
    previous: Option<String>,
    next: Option<String>,
    flash: Option<String>,
    error: Option<String>,
}

/// What a page shows besides the action: a message, an error, the editor's state.
#[derive(Default)]
pub struct Extras {
    pub flash: Option<String>,
    pub error: Option<String>,
    /// The editor's text to show again (after invalid JSON).
    pub editor_text: Option<String>,
    pub modify_open: bool,
    pub preview: Option<Preview>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    decided: Option<String>,
    verdict: Option<String>,
    grant: Option<String>,
    modify: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    person: Person,
    ApiPath(id): ApiPath<String>,
    WebQuery(query): WebQuery<ActionQuery>,
) -> Result<Response, WebError> {
    let extras = Extras {
        flash: flash(
            query.decided.as_deref(),
            query.verdict.as_deref(),
            query.grant.as_deref(),
        ),
        modify_open: query.modify.is_some(),
        ..Extras::default()
    };
    render(&state, &person, &id, extras, StatusCode::OK).await
}

/// Loads action `id` and renders its page with `extras`, answered with `status`.
pub async fn render(
    state: &AppState,
    person: &Person,
    id: &str,
    extras: Extras,
    status: StatusCode,
) -> Result<Response, WebError> {
    let record = state
        .store()
        .action(id)
        .await?
        .ok_or_else(|| WebError::not_found(format!("There is no action with id {id:?}.")))?;
    let now = state.clock().now();
    let settings = state.web_settings();
    let gate = &record.gate;
    let reviewer = Reviewer {
        name: &person.user.name,
        groups: &person.user.groups,
        admin: person.user.admin,
    };
    let may = gate.may_decide(&reviewer);
    let approved_already = gate.approved_by(&person.user.name);
    let can_decide = may.is_ok() && !approved_already;
    let why_not = match (&may, approved_already) {
        (Err(refusal), _) => format!("{}.", capitalise(&refusal.to_string())),
        (Ok(()), true) => {
            "You approved this action already; another person must confirm it.".into()
        }
        (Ok(()), false) => String::new(),
    };
    let can_review = gate.review == ReviewState::Open
        && !answers_for(&gate.agent, gate.owner.as_ref(), &person.user.name);
    let (previous, next) = neighbors(state, &record).await?;
    let last_approved = last_approved(state, &record, now).await?;
    let counting = gate.counting_approvers();
    let page = ActionPage {
        chrome: Chrome::of(person, "action"),
        args_html: args_html(&gate.args),
        original_html: gate
            .original_args
            .as_ref()
            .map(args_html)
            .unwrap_or_default(),
        context_html: if record.context.is_empty() {
            String::new()
        } else {
            args_html(&record.context)
        },
        last_approved,
        decisions: decisions(&record),
        history: history(&record),
        can_decide,
        can_review,
        why_not,
        first_approver: counting.first().map(|n| n.to_string()).unwrap_or_default(),
        needs_password: !person.recently_authenticated(&settings, now),
        reauth_minutes: settings.reauth_window.num_minutes(),
        args_json: serde_json::to_string(&gate.args).unwrap_or_default(),
        editor_text: extras
            .editor_text
            .unwrap_or_else(|| serde_json::to_string_pretty(&gate.args).unwrap_or_default()),
        modify_open: extras.modify_open || extras.preview.is_some(),
        preview: extras.preview,
        previous,
        next,
        flash: extras.flash,
        error: extras.error,
        a: facts(&record, now),
    };
    let html = page
        .render()
        .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok((status, Html(html)).into_response())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn facts(record: &ActionRecord, now: chrono::DateTime<chrono::Utc>) -> ActionFacts {
    let gate = &record.gate;
    let hints = [
        ("read-only", record.hints.read_only),
        ("destructive", record.hints.destructive),
        ("idempotent", record.hints.idempotent),
        ("open world", record.hints.open_world),
    ]
    .iter()
    .filter_map(|(name, value)| value.map(|v| format!("{name}: {}", if v { "yes" } else { "no" })))
    .collect::<Vec<_>>()
    .join(", ");
    ActionFacts {
        id: record.id.clone(),
        version: record.version,
        action: gate.action.to_string(),
        agent: gate.agent.to_string(),
        owner: gate
            .owner
            .as_ref()
            .map(|o| o.to_string())
            .unwrap_or_default(),
        tier: gate.tier.as_str().to_owned(),
        status: gate.status.as_str().to_owned(),
        rule: record.rule.clone().unwrap_or_default(),
        reason: record.reason.clone(),
        reasoning: record.reasoning.clone().unwrap_or_default(),
        confidence: record
            .confidence
            .map(|c| format!("{:.0}% ({c})", c * 100.0))
            .unwrap_or_default(),
        hints,
        approvers: if gate.tier.is_human_gated() {
            gate.deciders().to_string()
        } else {
            String::new()
        },
        approvals_given: gate.counting_approvers().len(),
        approvals_required: gate.approvals_required,
        deadline: gate.deadline.map(iso).unwrap_or_default(),
        time_left: time_left(gate.deadline, now),
        urgent: gate
            .deadline
            .is_some_and(|d| d - now < chrono::TimeDelta::minutes(5)),
        created: format!(
            "{} ({})",
            clock(record.created_at),
            ago(record.created_at, now)
        ),
        created_iso: iso(record.created_at),
        modified: gate.original_args.is_some(),
        size_warning: size_warning(&gate.args),
        grant: record.grant.clone().unwrap_or_default(),
    }
}

fn decisions(record: &ActionRecord) -> Vec<DecisionRow> {
    // Each modify is shown against the arguments it replaced.
    let mut current = record
        .gate
        .original_args
        .clone()
        .unwrap_or_else(|| record.gate.args.clone());
    record
        .gate
        .decisions
        .iter()
        .map(|d| {
            let diff_html = match (&d.args, d.verdict) {
                (Some(args), Verdict::Modify) => {
                    let html = diff_html(&diff(&current, args), "Before", "After");
                    current = args.clone();
                    html
                }
                _ => String::new(),
            };
            DecisionRow {
                reviewer: d.reviewer.to_string(),
                verdict: d.verdict.as_str().to_owned(),
                reason: d.reason.clone().unwrap_or_default(),
                at: clock(d.at),
                at_iso: iso(d.at),
                diff_html,
            }
        })
        .collect()
}

/// The action's history from its record, which audit verification holds equal to the log
/// entry by entry: submission and classification, each decision, escalation, the end, the
/// outcome and the post-hoc review. (The log's own entries for it are on the audit page:
/// the log has no index by action, so finding them is a scan, not a page view's work.)
fn history(record: &ActionRecord) -> Vec<Step> {
    let gate = &record.gate;
    let step = |at: chrono::DateTime<chrono::Utc>, text: String| Step {
        at: clock(at),
        at_iso: iso(at),
        text,
    };
    let mut steps = vec![step(
        record.created_at,
        format!(
            "Submitted by {}; classified {} by {}",
            gate.agent,
            gate.tier,
            record
                .rule
                .as_ref()
                .map_or("the defaults".to_owned(), |r| format!("rule \"{r}\""))
        ),
    )];
    for d in &gate.decisions {
        let mut text = format!("{} by {}", d.verdict, d.reviewer);
        if let Some(reason) = &d.reason {
            text.push_str(&format!(": “{reason}”"));
        }
        steps.push(step(d.at, text));
    }
    if gate.escalated {
        let groups: Vec<&str> = gate.escalated_to.iter().map(|g| g.as_str()).collect();
        steps.push(Step {
            at: String::new(),
            at_iso: String::new(),
            text: format!(
                "Escalated to {} when the review deadline passed",
                groups.join(", ")
            ),
        });
    }
    if let Some(at) = gate.decided_at
        && matches!(gate.status, Status::Expired | Status::Cancelled)
    {
        let text = match gate.status {
            Status::Expired => "Expired: no decision before the deadline",
            _ => "Cancelled by the agent",
        };
        steps.push(step(at, text.to_owned()));
    } else if let Some(at) = gate.decided_at
        && gate.tier.is_human_gated()
        && gate.status != Status::Pending
    {
        steps.push(step(at, format!("Final: {}", gate.status)));
    }
    if let Some(outcome) = &gate.outcome {
        steps.push(step(
            outcome.at,
            format!("{} reported: {}", outcome.reported_by, outcome.status),
        ));
    }
    if let ReviewState::Reviewed(review) = &gate.review {
        let mut text = format!("Post-hoc review by {}: {}", review.reviewer, review.verdict);
        if let Some(note) = &review.note {
            text.push_str(&format!(" “{note}”"));
        }
        steps.push(step(review.at, text));
    }
    steps
}

/// The actions before and after this one in the queue (for a decided action: the most
/// urgent pending one as "next").
async fn neighbors(
    state: &AppState,
    record: &ActionRecord,
) -> Result<(Option<String>, Option<String>), WebError> {
    let position = match (record.gate.status, record.gate.deadline) {
        (Status::Pending, Some(deadline)) => Some(QueuePosition {
            deadline,
            id: record.id.clone(),
        }),
        _ => None,
    };
    let one = |backwards| PendingQuery {
        from: position.clone(),
        backwards,
        limit: 1,
        ..PendingQuery::default()
    };
    let next = state.store().pending(one(false)).await?;
    let previous = match position {
        Some(_) => state.store().pending(one(true)).await?.items,
        None => Vec::new(),
    };
    Ok((
        previous.into_iter().next().map(|r| r.id),
        next.items.into_iter().next().map(|r| r.id),
    ))
}

async fn last_approved(
    state: &AppState,
    record: &ActionRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<LastApprovedView>, WebError> {
    if !record.gate.tier.is_human_gated() || record.gate.tier == Tier::Deny {
        return Ok(None);
    }
    let found = state
        .store()
        .last_approved(LastApproved {
            agent: &record.gate.agent,
            action: &record.gate.action,
            except: &record.id,
        })
        .await?;
    Ok(found.map(|last| {
        let changes = present::diff(&last.gate.args, &record.gate.args);
        LastApprovedView {
            id: last.id.clone(),
            when: last
                .gate
                .decided_at
                .map(|at| format!("approved {}", ago(at, now)))
                .unwrap_or_default(),
            same: changes.is_empty(),
            diff_html: diff_html(&changes, "Last approved", "This one"),
        }
    }))
}
