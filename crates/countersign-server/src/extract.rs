//! Extractor wrappers that turn axum's own rejections (bad JSON, wrong types, unknown
//! fields, oversized bodies, bad query strings) into the API's error format, with a precise
//! 4xx status and code. JSON bodies must also arrive within the body timeout and name each
//! key of an object once.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::duplicate_keys::first_duplicate;
use crate::error::AppError;
use crate::state::AppState;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let (parts, body) = request.into_parts();
        let timeout = state.limits().body_timeout;
        let read = Bytes::from_request(Request::from_parts(parts.clone(), body), state);
        let bytes = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| {
                AppError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} seconds",
                        timeout.as_secs_f64()
                    ),
                )
            })?
            .map_err(|rejection| json_error(JsonRejection::BytesRejection(rejection)))?;
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        let parsed = axum::Json::<T>::from_request(request, state).await;
        // Valid JSON (whatever its shape) with a key twice means different things to
        // different readers: refused before its shape is judged.
        if matches!(parsed, Ok(_) | Err(JsonRejection::JsonDataError(_)))
            && let Some(duplicate) = first_duplicate(&bytes)
        {
            return Err(AppError::bad_request(
                "duplicate_key",
                format!("ambiguous request body: {duplicate}"),
            ));
        }
        let value = match parsed {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_error(rejection)),
        };
        // serde reads a struct from a JSON array too, field by field in order: `["a.b"]`
        // would pass as a submission. Every body of this API is an object.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(AppError::invalid(
                "invalid_body",
                "expected the request body to be a JSON object",
            ));
        }
        Ok(ApiJson(value))
    }
}

fn json_error(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => AppError::invalid(
            "invalid_body",
            format!("invalid request body: {}", detail(&e.body_text())),
        ),
        JsonRejection::JsonSyntaxError(e) => AppError::bad_request(
            "malformed_json",
            format!(
                "the request body is not valid JSON: {}",
                detail(&e.body_text())
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a request with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than this server accepts",
            )
        }
        other => AppError::bad_request("unreadable_body", other.body_text()),
    }
}

/// What serde said, without axum's capitalised preamble ("Failed to deserialize the JSON
/// body into the target type: "), which says nothing the code does not.
fn detail(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, rest)| rest)
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection: QueryRejection| {
                AppError::bad_request(
                    "invalid_query",
                    format!("invalid query string: {}", detail(&rejection.body_text())),
                )
            })
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection: PathRejection| {
                AppError::bad_request(
                    "invalid_path",
                    format!("invalid path: {}", detail(&rejection.body_text())),
                )
            })
    }
}
