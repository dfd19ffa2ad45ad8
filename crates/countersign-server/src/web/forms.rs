//! Form bodies (`application/x-www-form-urlencoded`) and query strings for the web UI,
//! refused as pages with a precise status: a body too large `413`, not a form `415`, a
//! field of the wrong shape or named twice `422`, a malformed query `400`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::WebError;
use crate::state::AppState;

/// A form body.
pub struct WebForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for WebForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, WebError> {
        let is_form = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if !is_form {
            return Err(WebError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a form (Content-Type: application/x-www-form-urlencoded)",
            ));
        }
        let timeout = state.limits().body_timeout;
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(request, state))
            .await
            .map_err(|_| {
                WebError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the form did not arrive in time",
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    WebError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the form is larger than this server accepts",
                    )
                } else {
                    WebError::bad_request(format!(
                        "the form could not be read: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        parse(&bytes).map(WebForm)
    }
}

/// Parses a form, refusing a field given twice: two readers could take different values.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WebError> {
    let mut seen = std::collections::HashSet::new();
    for (key, _) in form_urlencoded::parse(bytes) {
        if !seen.insert(key.clone()) {
            return Err(WebError::invalid(format!(
                "the form names the field {key:?} twice"
            )));
        }
    }
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| WebError::invalid(format!("the form is not what this page sends: {e}")))
}

/// A query string.
pub struct WebQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for WebQuery<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(WebQuery)
            .map_err(|e| WebError::bad_request(format!("invalid query string: {e}")))
    }
}

/// `key=value&...`, percent-encoded.
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}
