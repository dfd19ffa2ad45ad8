//! Signing in and out. A sign-in is refused (before the password is even checked) while the
//! throttle holds the account or the address; a wrong password, an unknown name and a
//! disabled person's wrong password all read the same and take the same time.

use askama::Template;
use axum::extract::State;
use axum::http::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use countersign_core::name::Name;
use countersign_store::NewSession;
use serde::Deserialize;

use super::error::WebError;
use super::forms::{WebForm, WebQuery};
use super::session::{ClientAddress, Person, check_same_origin, cookie, expired};
use super::{Chrome, password};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    name: String,
    next: String,
    message: Option<String>,
    message_class: &'static str,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInQuery {
    next: Option<String>,
    why: Option<String>,
}

/// Where to go after signing in: a path on this site, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.len() <= 2000 =>
        {
            path.to_owned()
        }
        _ => "/queue".to_owned(),
    }
}

fn render(page: SignInPage, status: StatusCode) -> Result<Response, WebError> {
    let html = page
        .render()
        .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok((status, Html(html)).into_response())
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    WebQuery(query): WebQuery<SignInQuery>,
) -> Result<Response, WebError> {
    let next = safe_next(query.next.as_deref());
    // Already signed in: straight on.
    if let Some(secret) = cookie(&headers, state.web_settings().cookie_name())
        && let Some(found) = state.store().signed_in(secret).await?
        && expired(
            &found.session,
            &found.user,
            &state.web_settings(),
            state.clock().now(),
        )
        .is_none()
    {
        return Ok((StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response());
    }
    let message = query.why.map(|why| {
        let mut why = why.chars().take(200).collect::<String>();
        if let Some(first) = why.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        format!("{why}.")
    });
    render(
        SignInPage {
            chrome: Chrome::anonymous("sign-in"),
            name: String::new(),
            next,
            message,
            message_class: "info",
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInForm {
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    WebForm(form): WebForm<SignInForm>,
) -> Result<Response, WebError> {
    check_same_origin(&headers)?;
    let next = safe_next(form.next.as_deref());
    let now = state.clock().now();
    let again = |message: String, status: StatusCode| {
        render(
            SignInPage {
                chrome: Chrome::anonymous("sign-in"),
                name: form.name.chars().take(200).collect(),
                next: next.clone(),
                message: Some(message),
                message_class: "error",
            },
            status,
        )
    };
    let Ok(name) = Name::parse(form.name.trim()) else {
        return again(
            "That is not a name Countersign knows: names are letters, digits and . _ - : / @"
                .into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    if let Err(throttled) = state.web().throttle.check(name.as_str(), address, now) {
        let wait = (throttled.until - now).num_seconds().max(1);
        let mut response = again(
            format!(
                "Too many failed sign-ins {}; try again in {wait} seconds.",
                if throttled.account {
                    "for this name"
                } else {
                    "from this address"
                }
            ),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        if let Ok(value) = wait.to_string().parse() {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let user = state.store().user(name.as_str()).await?;
    let password_text = form.password.clone();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => password::verify(&password_text, &hash),
        None => {
            password::verify_nothing(&password_text);
            false
        }
    })
    .await
    .map_err(|e| crate::error::AppError::internal(&e))?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            state.web().throttle.failed(name.as_str(), address, now);
            tracing::warn!(name = %name, address = ?address, "failed sign-in");
            return again(
                "The name or the password is wrong.".into(),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    if user.disabled {
        return again(
            "This account is disabled; ask an administrator.".into(),
            StatusCode::FORBIDDEN,
        );
    }
    state.web().throttle.succeeded(name.as_str());
    let started = state
        .store()
        .start_session(NewSession {
            name: user.name.clone(),
            at: now,
            address: address.map(|a| a.to_string()),
        })
        .await?;
    tracing::info!(name = %user.name, session = %started.session.id, "signed in");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, state.web_settings().set_cookie(&started.secret)),
            (LOCATION, next),
        ],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    person: Person,
    WebForm(form): WebForm<CsrfForm>,
) -> Result<Response, WebError> {
    check_same_origin(&headers)?;
    person.check_csrf(&form.csrf)?;
    state
        .store()
        .end_session(person.session.id.clone(), state.clock().now())
        .await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, state.web_settings().clear_cookie()),
            (LOCATION, "/sign-in?why=you+signed+out".to_owned()),
        ],
    )
        .into_response())
}
