//! `GET /events`: the UI's live updates, as Server-Sent Events. Each committed change to an
//! action sends a `change` event with its id, status and version (no content: the page
//! fetches what it shows through the same access rules as any page). The stream checks its
//! session every 15 seconds (with the keep-alive) and ends when the session does, and it
//! counts against a per-person cap on open streams, like a token's waits.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::error::WebError;
use super::session::{Person, cookie, expired};
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    person: Person,
) -> Result<Response, WebError> {
    let secret = cookie(&headers, state.web_settings().cookie_name())
        .unwrap_or_default()
        .to_owned();
    let permit = state
        .wait_caps()
        .acquire(&format!("person:{}", person.user.name))?;
    let changes = state.store().subscribe();
    let stopping = state.stopping();
    let start = Some((state, changes, stopping, secret, permit, true));
    let frames = stream::unfold(start, |step| async move {
        let (state, mut changes, mut stopping, secret, permit, first) = step?;
        if first {
            let hello = Bytes::from_static(b"retry: 3000\nevent: ready\ndata: {}\n\n");
            return Some((
                Ok::<_, std::convert::Infallible>(hello),
                Some((state, changes, stopping, secret, permit, false)),
            ));
        }
        let frame = tokio::select! {
            () = stopping.wait() => return None,
            received = changes.recv() => match received {
                Ok(record) => {
                    let data = serde_json::json!({
                        "id": record.id,
                        "status": record.gate.status.as_str(),
                        "version": record.version,
                    });
                    Bytes::from(format!("event: change\ndata: {data}\n\n"))
                }
                // Missed some: the page reloads what it shows.
                Err(RecvError::Lagged(_)) => Bytes::from_static(b"event: change\ndata: {\"id\": null}\n\n"),
                Err(RecvError::Closed) => return None,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => {
                // Still signed in? A signed-out, disabled or expired session's stream ends.
                let live = match state.store().signed_in(&secret).await {
                    Ok(Some(found)) => expired(&found.session, &found.user, &state.web_settings(), state.clock().now()).is_none(),
                    _ => false,
                };
                if !live {
                    return None;
                }
                Bytes::from_static(b":\n\n")
            }
        };
        Some((
            Ok(frame),
            Some((state, changes, stopping, secret, permit, false)),
        ))
    });
    Ok((
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response())
}
