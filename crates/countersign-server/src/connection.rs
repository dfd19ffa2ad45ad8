//! One HTTP/1 connection, served by hyper under a watchdog that closes it when the client
//! takes too long: to send a request header (`header_timeout`, counted from the first byte,
//! or from the connection's opening for its first request), to send its next request
//! (`idle_timeout`), or to read a response (`idle_timeout` with the socket's send buffer
//! full). A request being handled is never cut: long-polls end by their own `wait`, event
//! streams by the action's final status or the server stopping, request bodies by the
//! body timeout of [`crate::extract::ApiJson`].
//!
//! hyper's own `header_read_timeout` is not used: it runs from the moment the connection
//! waits for a request, so it cannot tell a keep-alive connection resting between requests
//! (idle) from one trickling a header (slowloris), and the two deserve different bounds.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits::Limits;
use crate::state::AppState;

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// The request header did not arrive within `header_timeout`.
    Header,
    /// No request for `idle_timeout`.
    Idle,
    /// The client left a response unread for `idle_timeout`.
    Unread,
    /// The server is stopping and nothing is in flight.
    Stopping,
}

/// What the watchdog knows about the connection, updated as bytes and requests pass.
struct Activity {
    state: Mutex<ActivityState>,
    /// Wakes the watchdog when a deadline appears or moves earlier.
    changed: Notify,
}

struct ActivityState {
    /// Requests being handled (with their response bodies not yet finished).
    in_flight: usize,
    /// When the next request began: its first byte, or the connection's opening.
    header_since: Option<Instant>,
    /// When the last response finished (meaningful only with nothing in flight).
    idle_since: Instant,
    /// When writing started to wait for the client to read.
    write_blocked_since: Option<Instant>,
    stopping: bool,
}

impl Activity {
    fn new() -> Arc<Activity> {
        let now = Instant::now();
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                // The first request is taken to begin as the connection opens: a client that
                // connects and sends nothing is a slow header, not a resting keep-alive.
                header_since: Some(now),
                idle_since: now,
                write_blocked_since: None,
                stopping: false,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        // Only plain fields are written under the lock; a panic cannot leave them torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bytes_read(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.header_since.is_none() {
            state.header_since = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    fn write_blocked(&self, blocked: bool) {
        let mut state = self.state();
        match (blocked, state.write_blocked_since) {
            (true, None) => {
                state.write_blocked_since = Some(Instant::now());
                drop(state);
                self.changed.notify_one();
            }
            // Unblocking only moves a deadline later: the watchdog re-checks when it wakes.
            (false, Some(_)) => state.write_blocked_since = None,
            _ => {}
        }
    }

    fn begin_request(self: &Arc<Activity>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.header_since = None;
        InFlight(self.clone())
    }

    fn stop(&self) {
        self.state().stopping = true;
        self.changed.notify_one();
    }

    /// The next deadline and what passing it means; `None`: none while this state lasts.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        let state = self.state();
        if let Some(since) = state.write_blocked_since {
            return Some((since + limits.idle_timeout, Expiry::Unread));
        }
        if state.in_flight > 0 {
            return None;
        }
        if state.stopping {
            return Some((Instant::now(), Expiry::Stopping));
        }
        Some(match state.header_since {
            Some(since) => (since + limits.header_timeout, Expiry::Header),
            None => (state.idle_since + limits.idle_timeout, Expiry::Idle),
        })
    }

    /// Resolves when a deadline passes.
    async fn expired(&self, limits: &Limits) -> Expiry {
        loop {
            let changed = self.changed.notified();
            match self.deadline(limits) {
                Some((at, expiry)) if at <= Instant::now() => return expiry,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A request in flight; dropped when its response body ends or is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            drop(state);
            self.0.changed.notify_one();
        }
    }
}

/// The socket, reporting reads and blocked writes to the watchdog.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl Watched {
    fn track<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.activity.write_blocked(poll.is_pending());
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, bytes);
        self.track(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.track(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.track(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that holds its request's [`InFlight`] until it ends.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves one connection until the client closes it, a timeout closes it, or the server
/// stops (in-flight requests finish first).
pub async fn serve(stream: TcpStream, router: axum::Router, state: AppState) {
    let limits = state.limits();
    let activity = Activity::new();
    // The peer's address, for the web UI's sign-in throttle (per address).
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: hyper::Request<Incoming>| {
            let in_flight = activity.begin_request();
            let mut router = router.clone();
            async move {
                let mut request: Request = request.map(Body::new);
                if let Some(peer) = peer {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                }
                let response: Response =
                    match tower_service::Service::call(&mut router, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                Ok::<_, Infallible>(response.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = state.stopping();
    let mut stop_seen = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            expiry = activity.expired(&limits) => {
                if expiry != Expiry::Stopping {
                    state.metrics().connection_timed_out();
                    tracing::debug!(?expiry, "connection closed by a timeout");
                }
                // Dropping the connection closes the socket.
                return;
            }
            () = stopping.wait(), if !stop_seen => {
                stop_seen = true;
                // Finish what is in flight, then close; an idle connection closes now.
                connection.as_mut().graceful_shutdown();
                activity.stop();
            }
        }
    }
}
