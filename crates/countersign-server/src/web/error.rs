//! The web UI's one error type: a page that says what went wrong, with the API's status
//! code for the same refusal (a 5xx only for the server's own failures, never for input), or
//! a redirect to the sign-in page when no session counts.

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{Html, IntoResponse, Response};

use crate::error::AppError;

/// A refusal or failure, shown as a page.
#[derive(Debug)]
pub enum WebError {
    /// No session, or one that ended: go to the sign-in page (and come back to `next`).
    SignIn {
        next: Option<String>,
        why: Option<&'static str>,
    },
    /// A page with a status and a sentence.
    Page { status: StatusCode, message: String },
}

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError::Page {
            status,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> WebError {
        WebError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<AppError> for WebError {
    fn from(error: AppError) -> WebError {
        WebError::new(error.status, error.message)
    }
}

impl From<countersign_store::StoreError> for WebError {
    fn from(error: countersign_store::StoreError) -> WebError {
        AppError::from(error).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn { next, why } => {
                let mut query = Vec::new();
                if let Some(next) = next.filter(|n| n.starts_with('/') && !n.starts_with("//")) {
                    query.push(("next", next));
                }
                if let Some(why) = why {
                    query.push(("why", why.to_owned()));
                }
                let location = if query.is_empty() {
                    "/sign-in".to_owned()
                } else {
                    format!("/sign-in?{}", super::forms::encode_query(&query))
                };
                (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
            }
            WebError::Page { status, message } => {
                let title = status.canonical_reason().unwrap_or("Error");
                let page = ErrorPage {
                    title,
                    message: &message,
                    status: status.as_u16(),
                };
                match page.render() {
                    Ok(html) => (status, Html(html)).into_response(),
                    Err(error) => AppError::internal(&error).into_response(),
                }
            }
        }
    }
}
