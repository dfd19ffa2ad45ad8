//! The accept loop: at most `max_connections` connections are served at once; the next one
//! is answered `503` with `Connection: close` and closed, so that a flood of idle
//! connections costs the server a bounded number of descriptors and the caller a clear
//! answer instead of a hang. An accept that fails (no descriptor left, say) is retried after
//! a pause rather than ending the server or spinning on the error.
//!
//! At shutdown the loop stops accepting and waits for the served connections to close:
//! idle ones close at once, in-flight requests finish, long-polls and event streams end at
//! once (they watch the same stop signal).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::state::AppState;

/// Refused connections kept open at once to be answered properly: their descriptors come
/// out of the reserve kept beside `max_connections`. Past this many, a refused connection is
/// closed without an answer.
const REFUSING: usize = 16;
/// How long a refused connection may take to send its request before it is answered anyway.
const REFUSAL_WAIT: Duration = Duration::from_secs(1);
/// How long a refused connection is kept, all told.
const REFUSAL_TIME: Duration = Duration::from_secs(3);
/// The most of a refused request read before answering (a request header's size).
const REFUSAL_READ: usize = 16 * 1024;
/// The pause after a failed accept before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The shortest time between two log lines about failing accepts.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until the server stops, then waits for every connection
/// to close.
pub async fn run(listener: TcpListener, router: axum::Router, state: AppState) {
    let max = state.limits().max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let refusal: Arc<[u8]> = refusal().into();
    let mut stopping = state.stopping();
    let mut last_logged: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = stopping.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // The client gave up before we took the connection: nothing to do.
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of descriptors or memory: take the next connection once some are free.
                if last_logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                    tracing::warn!(%error, "cannot accept connections; retrying");
                    last_logged = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(serve(stream, router.clone(), state.clone(), slot));
            }
            Err(_) => {
                state.metrics().connection_refused();
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(refuse(stream, refusal.clone(), permit));
                }
            }
        }
    }
    drop(listener);
    // Every served connection holds a slot until it closes.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

async fn serve(
    stream: TcpStream,
    router: axum::Router,
    state: AppState,
    _slot: OwnedSemaphorePermit,
) {
    state.metrics().connection_opened();
    crate::connection::serve(stream, router, state.clone()).await;
    state.metrics().connection_closed();
}

/// Answers a connection over the cap with `refusal`, then closes it.
///
/// The answer waits for the request (up to `REFUSAL_WAIT`): an HTTP client answered before
/// it asked reports a broken connection, not the answer. And the socket is not simply closed
/// after the answer: closing it with unread request bytes in it sends a reset, which can
/// destroy the answer before the client reads it. So the write side is shut (the client
/// sees the answer end), and what the client still sends is read and dropped until it
/// closes, all within `REFUSAL_TIME`.
async fn refuse(mut stream: TcpStream, refusal: Arc<[u8]>, _permit: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        let asked = Instant::now() + REFUSAL_WAIT;
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while head.len() < REFUSAL_READ && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout_at(asked, stream.read(&mut chunk)).await {
                // The client left.
                Ok(Ok(0) | Err(_)) => return Ok(()),
                Ok(Ok(n)) => head.extend_from_slice(&chunk[..n]),
                // It sends nothing: answer all the same.
                Err(_) => break,
            }
        }
        stream.write_all(&refusal).await?;
        stream.shutdown().await?;
        while stream.read(&mut chunk).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// The answer to a connection over the cap, in the API's error format.
fn refusal() -> Vec<u8> {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server is serving as many connections as it allows; try again shortly"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Errors that concern only the connection being accepted (as hyper 0.14's accept loop
/// classified them), not the listener.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
