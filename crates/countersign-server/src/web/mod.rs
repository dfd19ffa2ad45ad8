//! The reviewer web UI, served by the server itself: server-rendered pages (askama
//! templates compiled into the binary, escaping by default), two static files embedded with
//! `include_bytes!`, and plain forms for every decision, so the core flows work without
//! JavaScript; the script adds live updates, shortcuts and the editor's checks.
//!
//! Access is the API's: the signed-in person acts as an [`countersign_store::Actor`] with
//! their name, groups and admin flag, and decisions go through [`crate::decision::decide`],
//! the function the API route calls. These routes are not in the OpenAPI document.

mod action_page;
mod audit_page;
mod chart;
mod dashboard;
mod decide;
mod error;
mod events;
mod forms;
mod grants_page;
mod password;
mod present;
mod queue;
mod reviews;
mod session;
mod sign_in;
mod throttle;

use std::sync::Mutex;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use password::{NewPassword, verify as verify_password};
pub use session::WebSettings;

use crate::state::AppState;

/// The web UI's memory: the sign-in throttle and the last audit verification.
#[derive(Debug, Default)]
pub struct WebShared {
    throttle: throttle::Throttle,
    verification: Mutex<Option<audit_page::Verification>>,
}

/// What every page's frame shows: who is signed in, the form token, the current page.
pub struct Chrome {
    pub name: String,
    pub admin: bool,
    pub csrf: String,
    pub page: &'static str,
}

impl Chrome {
    pub fn of(person: &session::Person, page: &'static str) -> Chrome {
        Chrome {
            name: person.user.name.to_string(),
            admin: person.user.admin,
            csrf: person.csrf.clone(),
            page,
        }
    }

    pub fn anonymous(page: &'static str) -> Chrome {
        Chrome {
            name: String::new(),
            admin: false,
            csrf: String::new(),
            page,
        }
    }
}

/// The UI's routes, with their security headers.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { (StatusCode::SEE_OTHER, [(LOCATION, "/queue")]) }),
        )
        .route("/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/queue", get(queue::page))
        .route("/events", get(events::stream))
        .route("/actions/{id}", get(action_page::page))
        .route("/actions/{id}/decide", post(decide::decide))
        .route("/actions/{id}/review", post(decide::review))
        .route("/reviews", get(reviews::page))
        .route("/dashboard", get(dashboard::page))
        .route("/grants", get(grants_page::page))
        .route("/grants/{id}/revoke", post(grants_page::revoke))
        .route("/audit", get(audit_page::page))
        .route("/audit/verify", post(audit_page::verify))
        .route(
            "/static/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/static/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .layer(middleware::from_fn_with_state(state, security_headers))
}

const APP_CSS: &[u8] = include_bytes!("../../static/app.css");
const APP_JS: &[u8] = include_bytes!("../../static/app.js");

async fn asset(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        bytes,
    )
        .into_response()
}

/// The content security policy: scripts, styles and connections only from this origin, no
/// inline script or style, no framing, forms only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if state.web_settings().secure_cookies {
        // Served over HTTPS (`public_url`): browsers keep to HTTPS for a year.
        headers.insert(
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(headers, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cross-origin-opener-policy", "same-origin");
    set(
        headers,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if !headers.contains_key(CACHE_CONTROL) {
        // Pages show actions and a form token: never kept by a shared cache or the back
        // button's disk copy.
        set(headers, "cache-control", "no-store");
    }
    response
}

/// The message after a decision, from the redirect's query: only known verdicts and plain
/// ids, so a link cannot put words of its own on the page.
pub fn flash(decided: Option<&str>, verdict: Option<&str>, grant: Option<&str>) -> Option<String> {
    let plain = |id: &&str| {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    let id = decided.filter(plain)?;
    let what = match verdict? {
        "approve" => "approved",
        "reject" => "rejected",
        "modify" => "approved, with your arguments,",
        "ok" => "marked as looking right",
        "flag" => "flagged",
        _ => return None,
    };
    Some(match grant.filter(plain) {
        Some(grant) => format!(
            "You {what} action {id} and let its agent run the same action without asking for an hour (grant {grant}; revoke it under Grants)."
        ),
        None => format!("You {what} action {id}."),
    })
}
