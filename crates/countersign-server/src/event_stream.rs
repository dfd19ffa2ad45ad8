//! The Server-Sent Events body of `GET /v1/actions/{id}/events`: one `status` event per
//! version of the action, a comment every 15 seconds of silence so that proxies keep the
//! stream open, and the end after the event that carries a final status.
//!
//! Written by hand rather than with axum's `Sse` because an event's data is the action's
//! shared JSON ([`Snapshot::json`]): the frame around it is a few bytes of its own, and the
//! JSON itself goes out as the same bytes to every stream, where `Sse` would copy it once
//! per stream and event.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt};

use crate::revocation::RevocationWatch;
use crate::wait_caps::WaitPermit;
use crate::watch::{ActionWatch, Snapshot};

/// Silence after which a comment line is sent (axum's `KeepAlive` default).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The event stream of `watch`, starting with the action as it is now; it ends at once when
/// the token is revoked (`revoked`). `permit` is given back when the stream ends or the
/// client goes.
pub fn response(watch: ActionWatch, revoked: RevocationWatch, permit: WaitPermit) -> Response {
    let first = watch.snapshot().clone();
    let start = Some((watch, Some(first), revoked, permit));
    let frames = stream::unfold(start, |step| async move {
        let (mut watch, first, mut revoked, permit) = step?;
        let snapshot = match first {
            Some(snapshot) => snapshot,
            None => {
                let next = tokio::select! {
                    next = watch.next() => next,
                    () = revoked.revoked() => {
                        tracing::info!(token = %revoked.token_id(), "event stream ended: its token was revoked");
                        return None;
                    }
                    () = tokio::time::sleep(KEEP_ALIVE) => {
                        let comment = vec![Bytes::from_static(b":\n\n")];
                        return Some((comment, Some((watch, None, revoked, permit))));
                    }
                };
                match next {
                    Ok(true) => watch.snapshot().clone(),
                    Ok(false) => return None,
                    Err(error) => {
                        tracing::warn!(%error, "event stream ended by a store error");
                        return None;
                    }
                }
            }
        };
        let frame = status_frame(&snapshot);
        let next =
            (!snapshot.record.gate.status.is_final()).then_some((watch, None, revoked, permit));
        Some((frame, next))
    })
    .flat_map(|chunks| stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>)));
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}

/// `event: status`, the version as the event id, the action as one `data:` line (compact
/// JSON has no raw newline).
fn status_frame(snapshot: &Snapshot) -> Vec<Bytes> {
    let head = format!("event: status\nid: {}\ndata: ", snapshot.record.version);
    vec![
        Bytes::from(head),
        snapshot.json(),
        Bytes::from_static(b"\n\n"),
    ]
}
