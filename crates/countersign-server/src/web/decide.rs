//! The decision forms: approve (one click), reject (with its required reason), modify (the
//! editor, then the differences and the new classification, then the approval), and the
//! post-hoc review. Every verdict goes through [`crate::decision::decide`], the API's own
//! path, as the signed-in person; a refusal re-renders the page with the API's status.
//!
//! Before an irreversible (`confirm`) approval, a session whose password was typed longer
//! ago than the re-authentication window must type it again; a wrong password counts
//! against the sign-in throttle like a failed sign-in.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign_core::Tier;
use countersign_core::lifecycle::{ReviewVerdict, Verdict};
use countersign_store::{ActionRecord, NewReview, PendingQuery, QueuePosition, Role};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::action_page::{Extras, Preview, render};
use super::error::WebError;
use super::forms::{WebForm, encode_query};
use super::password;
use super::present::{diff, diff_html};
use super::queue::decidable;
use super::session::{ClientAddress, Person, check_same_origin};
use crate::decision::{self, VerdictRequest};
use crate::extract::ApiPath;
use crate::grants::{self, GrantRequest};
use crate::state::AppState;

/// Longest reason or note accepted, in characters.
const MAX_REASON_CHARS: usize = 4000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideForm {
    csrf: String,
    verdict: String,
    /// The action's version the page showed: a decision on a page that is out of date is
    /// refused, so nobody approves arguments they did not see.
    version: Option<u64>,
    #[serde(default)]
    reason: String,
    args: Option<String>,
    confirm: Option<String>,
    password: Option<String>,
    /// For modify: `preview` (show the differences) or `submit`.
    step: Option<String>,
    /// With an approval: `1h` also lets the agent run the same action without asking for an
    /// hour (a grant).
    grant: Option<String>,
}

fn error_page(message: impl Into<String>, status: StatusCode) -> (Extras, StatusCode) {
    (
        Extras {
            error: Some(message.into()),
            ..Extras::default()
        },
        status,
    )
}

pub async fn decide(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    person: Person,
    ApiPath(id): ApiPath<String>,
    WebForm(form): WebForm<DecideForm>,
) -> Result<Response, WebError> {
    check_same_origin(&headers)?;
    person.check_csrf(&form.csrf)?;
    match attempt(&state, address, &person, &id, form).await {
        Ok(Done::Redirect(location)) => {
            Ok((StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response())
        }
        Ok(Done::Page(extras, status)) => render(&state, &person, &id, extras, status).await,
        Err(error) => Err(error),
    }
}

enum Done {
    Redirect(String),
    Page(Extras, StatusCode),
}

async fn attempt(
    state: &AppState,
    address: Option<std::net::IpAddr>,
    person: &Person,
    id: &str,
    form: DecideForm,
) -> Result<Done, WebError> {
    let verdict: Verdict = form.verdict.parse().map_err(|_| {
        WebError::invalid(format!(
            "verdict: expected approve, reject or modify, found {:?}",
            form.verdict
        ))
    })?;
    let record = state
        .store()
        .action(id)
        .await?
        .ok_or_else(|| WebError::not_found(format!("There is no action with id {id:?}.")))?;
    if let Some(version) = form.version
        && version != record.version
    {
        let (extras, status) = error_page(
            "This action changed while you were looking at it (another decision, a modification or the deadline). Look at it again before deciding.",
            StatusCode::CONFLICT,
        );
        return Ok(Done::Page(extras, status));
    }
    let grant = match form.grant.as_deref() {
        None | Some("") => false,
        Some("1h") if verdict == Verdict::Approve => true,
        Some(other) => {
            return Err(WebError::invalid(format!(
                "grant: only \"1h\", with an approval, found {other:?}"
            )));
        }
    };
    let reason = form.reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        let (extras, status) = error_page(
            format!("The reason may have at most {MAX_REASON_CHARS} characters."),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return Ok(Done::Page(extras, status));
    }
    if verdict == Verdict::Reject && reason.is_empty() {
        let (extras, status) = error_page(
            "Say why you reject it: the reason goes back to the agent and into the training data.",
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return Ok(Done::Page(extras, status));
    }
    let args = match (verdict, form.args.as_deref()) {
        (Verdict::Modify, Some(text)) => match parse_args(text) {
            Ok(args) => Some(args),
            Err(message) => {
                return Ok(Done::Page(
                    Extras {
                        error: Some(message),
                        editor_text: Some(text.to_owned()),
                        modify_open: true,
                        ..Extras::default()
                    },
                    StatusCode::UNPROCESSABLE_ENTITY,
                ));
            }
        },
        (Verdict::Modify, None) => {
            return Err(WebError::invalid("a modify needs the new arguments (args)"));
        }
        (_, Some(_)) => {
            return Err(WebError::invalid("arguments are only sent with a modify"));
        }
        (_, None) => None,
    };
    // What the action would need after this verdict: a modify is classified by the policy
    // in force (the decision path classifies again, authoritatively).
    let mut required_tier = record.gate.tier;
    if let Some(args) = &args {
        if *args == record.gate.args {
            return Ok(Done::Page(
                Extras {
                    error: Some("Nothing changed: approve instead, or edit the arguments.".into()),
                    editor_text: form.args.clone(),
                    modify_open: true,
                    ..Extras::default()
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
        let reclassified =
            record.reclassify(&state.policy().current(), args.clone(), state.clock().now())?;
        required_tier = required_tier.max(reclassified.tier);
        if form.step.as_deref() != Some("submit") {
            let changes = diff(&record.gate.args, args);
            return Ok(Done::Page(
                Extras {
                    preview: Some(Preview {
                        args: serde_json::to_string(args).unwrap_or_default(),
                        diff_html: diff_html(&changes, "Now", "Yours"),
                        tier: reclassified.tier.as_str().to_owned(),
                        rule: reclassified.rule.unwrap_or_default(),
                        confirm: required_tier == Tier::Confirm,
                    }),
                    ..Extras::default()
                },
                StatusCode::OK,
            ));
        }
    }
    let approving = verdict != Verdict::Reject;
    if approving && required_tier == Tier::Confirm {
        let now = state.clock().now();
        if !person.recently_authenticated(&state.web_settings(), now)
            && let Some(page) =
                reauthenticate(state, address, person, form.password.as_deref()).await?
        {
            return Ok(page);
        }
    }
    let request = VerdictRequest {
        verdict,
        args,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        confirm: form.confirm.map(|c| c.trim().to_owned()),
    };
    let position = queue_position(&record);
    match decision::decide(state, person.actor(), id.to_owned(), request).await {
        Ok(_) => {
            let given = if grant {
                match allow_similar(state, person, &record).await {
                    Ok(given) => Some(given),
                    Err(refusal) => {
                        let (extras, status) = error_page(
                            format!(
                                "You approved the action, but no grant was given: {}",
                                refusal.message
                            ),
                            refusal.status,
                        );
                        return Ok(Done::Page(extras, status));
                    }
                }
            } else {
                None
            };
            Ok(Done::Redirect(
                next_location(
                    state,
                    person,
                    position,
                    id,
                    verdict.as_str(),
                    given.as_deref(),
                )
                .await?,
            ))
        }
        Err(refusal) => {
            let (extras, status) = error_page(refusal.message, refusal.status);
            Ok(Done::Page(extras, status))
        }
    }
}

/// "Approve and allow similar for 1 h": a grant to the action's agent for the same action
/// name, for an hour, given by the person under the same rules as over the API. Its id.
async fn allow_similar(
    state: &AppState,
    person: &Person,
    record: &ActionRecord,
) -> Result<String, crate::error::AppError> {
    let role = if person.user.admin {
        Role::Admin
    } else {
        Role::Reviewer
    };
    let (given, _) = grants::give(
        state,
        person.actor(),
        role,
        GrantRequest {
            agent: record.gate.agent.to_string(),
            actions: record.gate.action.to_string(),
            when: None,
            duration: "1h".to_owned(),
            max_uses: None,
            reason: Some(format!("allowed with the approval of action {}", record.id)),
        },
    )
    .await?;
    Ok(given.id)
}

/// Checks the password typed for an irreversible approval; `Some(page)` when it is missing,
/// throttled or wrong.
async fn reauthenticate(
    state: &AppState,
    address: Option<std::net::IpAddr>,
    person: &Person,
    typed: Option<&str>,
) -> Result<Option<Done>, WebError> {
    let minutes = state.web_settings().reauth_window.num_minutes();
    let Some(typed) = typed.filter(|p| !p.is_empty()) else {
        let (extras, _) = error_page(
            format!(
                "You signed in more than {minutes} minutes ago: type your password again to approve an irreversible action."
            ),
            StatusCode::UNAUTHORIZED,
        );
        return Ok(Some(Done::Page(extras, StatusCode::UNAUTHORIZED)));
    };
    let now = state.clock().now();
    let name = person.user.name.as_str();
    if let Err(throttled) = state.web().throttle.check(name, address, now) {
        let wait = (throttled.until - now).num_seconds().max(1);
        let (extras, status) = error_page(
            format!("Too many wrong passwords; try again in {wait} seconds."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        return Ok(Some(Done::Page(extras, status)));
    }
    let hash = person.user.password_hash.clone();
    let typed = typed.to_owned();
    let matches = tokio::task::spawn_blocking(move || password::verify(&typed, &hash))
        .await
        .map_err(|e| crate::error::AppError::internal(&e))?;
    if !matches {
        state.web().throttle.failed(name, address, now);
        let (extras, status) = error_page("That password is wrong.", StatusCode::FORBIDDEN);
        return Ok(Some(Done::Page(extras, status)));
    }
    state
        .store()
        .touch_session(person.session.id.clone(), now, true)
        .await?;
    Ok(None)
}

fn parse_args(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            if crate::duplicate_keys::first_duplicate(text.as_bytes()).is_some() {
                Err("The arguments name a key twice; every key once, please.".into())
            } else {
                Ok(map)
            }
        }
        Ok(_) => Err("The arguments must be a JSON object: { \"key\": value, ... }.".into()),
        Err(error) => Err(format!("The arguments are not valid JSON: {error}.")),
    }
}

fn queue_position(record: &ActionRecord) -> Option<QueuePosition> {
    Some(QueuePosition {
        deadline: record.gate.deadline?,
        id: record.id.clone(),
    })
}

/// After a decision: the next action in the queue this person may decide, or the queue.
async fn next_location(
    state: &AppState,
    person: &Person,
    position: Option<QueuePosition>,
    decided: &str,
    verdict: &str,
    grant: Option<&str>,
) -> Result<String, WebError> {
    let mut flash = vec![
        ("decided", decided.to_owned()),
        ("verdict", verdict.to_owned()),
    ];
    if let Some(grant) = grant {
        flash.push(("grant", grant.to_owned()));
    }
    let flash = encode_query(&flash);
    let page = state
        .store()
        .pending(PendingQuery {
            from: position,
            limit: 50,
            ..PendingQuery::default()
        })
        .await?;
    Ok(
        match page
            .items
            .iter()
            .find(|r| r.id != decided && decidable(r, person))
        {
            Some(next) => format!("/actions/{}?{flash}", next.id),
            None => format!("/queue?{flash}"),
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewForm {
    csrf: String,
    verdict: String,
    #[serde(default)]
    note: String,
}

pub async fn review(
    State(state): State<AppState>,
    headers: HeaderMap,
    person: Person,
    ApiPath(id): ApiPath<String>,
    WebForm(form): WebForm<ReviewForm>,
) -> Result<Response, WebError> {
    check_same_origin(&headers)?;
    person.check_csrf(&form.csrf)?;
    let verdict: ReviewVerdict = form.verdict.parse().map_err(|_| {
        WebError::invalid(format!(
            "verdict: expected ok or flag, found {:?}",
            form.verdict
        ))
    })?;
    let note = form.note.trim();
    if note.chars().count() > MAX_REASON_CHARS {
        return Err(WebError::invalid(format!(
            "the note may have at most {MAX_REASON_CHARS} characters"
        )));
    }
    if verdict == ReviewVerdict::Flag && note.is_empty() {
        let (extras, status) = error_page(
            "Say what was wrong: a flag needs a note.",
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        return render(&state, &person, &id, extras, status).await;
    }
    let result = state
        .store()
        .review(
            id.clone(),
            person.actor(),
            NewReview {
                verdict,
                note: (!note.is_empty()).then(|| note.to_owned()),
            },
            state.clock().now(),
        )
        .await;
    match result {
        Ok(_) => {
            let flash = encode_query(&[("decided", id), ("verdict", verdict.as_str().to_owned())]);
            Ok((
                StatusCode::SEE_OTHER,
                [(LOCATION, format!("/reviews?{flash}"))],
            )
                .into_response())
        }
        Err(error) => {
            let refusal = crate::error::AppError::from(error);
            let (extras, status) = error_page(refusal.message, refusal.status);
            render(&state, &person, &id, extras, status).await
        }
    }
}
