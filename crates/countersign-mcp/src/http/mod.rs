//! The Streamable HTTP transport: a reverse proxy in front of an MCP server's HTTP endpoint
//! (`countersign mcp --upstream URL --listen ADDR`). Requests and responses pass through as
//! they are — JSON or SSE, sessions (`Mcp-Session-Id`), version and `Mcp-*` headers, GET
//! streams and DELETE — except what the gate owns: `tools/list` answers (denied tools left
//! out) and `tools/call` (gated; a held call is answered as an SSE stream carrying progress
//! and SSE comments until the decision). Policy answers are HTTP 200 with a JSON-RPC body,
//! never a 4xx (a 4xx makes some clients drop the session: research mcp.md §1.3). A held call
//! is withdrawn by `notifications/cancelled` (2025 era) or by closing its stream (2026).
//!
//! Whoever reaches the listener acts with the agent's token, so the listener guards itself
//! ([`Access`]): on a loopback address it answers only requests whose `Host` (and `Origin`,
//! when a browser sends one) is a loopback name — a web page cannot reach it through DNS
//! rebinding, as the MCP specification asks of local servers; with a client token it answers
//! only requests bearing it (and does not pass that header on); any other address needs one.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use serde_json::Value;
use tokio::sync::watch;

use crate::gate::Gate;
use crate::jsonrpc::{Frame, INTERNAL_ERROR, Kind, error_response, id_key};
use crate::sse;

mod call;

/// The largest request body relayed.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// How often a held call's stream gets an SSE comment, so that idle-read timeouts on the way
/// (httpx's 300 s, proxies) never fire while a person decides.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Who may use the listener.
#[derive(Debug, Clone)]
pub struct Access {
    /// The listener is on a loopback address: `Host` and `Origin` must name loopback.
    pub loopback: bool,
    /// When set, every request bears `Authorization: Bearer` with this token.
    pub token: Option<String>,
}

impl Access {
    /// The access rule for a listener at `address` with an optional client token; an address
    /// other than loopback without a token is refused (it would hand the agent's authority to
    /// anyone who can reach it).
    pub fn new(address: std::net::SocketAddr, token: Option<String>) -> Result<Access, String> {
        let token = token.filter(|t| !t.is_empty());
        if let Some(token) = &token
            && (token.len() < 16 || token.chars().any(|c| c.is_ascii_control() || c == ' '))
        {
            return Err(
                "the client token must be at least 16 characters, without spaces or control characters"
                    .into(),
            );
        }
        let loopback = address.ip().is_loopback();
        if !loopback && token.is_none() {
            return Err(format!(
                "{address} is not a loopback address: whoever reaches it would act as the agent; set a client token (--listen-token or COUNTERSIGN_MCP_LISTEN_TOKEN) or listen on 127.0.0.1"
            ));
        }
        Ok(Access { loopback, token })
    }

    /// `None` when the request may pass; otherwise the refusal.
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        if self.loopback {
            let host = headers.get(HOST).and_then(|v| v.to_str().ok());
            if !host.is_some_and(|h| is_loopback_name(host_name(h))) {
                return Some(rpc_error(
                    StatusCode::FORBIDDEN,
                    &Value::Null,
                    -32600,
                    &format!(
                        "Host {:?} is not a loopback name: this proxy listens on loopback and answers only requests addressed to localhost, 127.0.0.1 or [::1] (a guard against DNS rebinding)",
                        host.unwrap_or("")
                    ),
                ));
            }
            if let Some(origin) = headers.get("origin") {
                let allowed = origin.to_str().ok().is_some_and(|o| {
                    o.split_once("://")
                        .is_some_and(|(_, rest)| is_loopback_name(host_name(rest)))
                });
                if !allowed {
                    return Some(rpc_error(
                        StatusCode::FORBIDDEN,
                        &Value::Null,
                        -32600,
                        "requests from a web page of another origin are refused (Origin is not a loopback address)",
                    ));
                }
            }
        }
        if let Some(token) = &self.token {
            let given = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same_secret(given.as_bytes(), token.as_bytes()) {
                let mut response = rpc_error(
                    StatusCode::UNAUTHORIZED,
                    &Value::Null,
                    -32600,
                    "this proxy needs its client token: send Authorization: Bearer <token>",
                );
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
                return Some(response);
            }
        }
        None
    }
}

/// The host part of a `Host` header or of an origin's authority: `[::1]:80` → `[::1]`,
/// `localhost:3000` → `localhost`.
fn host_name(authority: &str) -> &str {
    let authority = authority.split('/').next().unwrap_or("");
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..=h.len()]);
    }
    authority.split(':').next().unwrap_or("")
}

fn is_loopback_name(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the proxy on `listener` until the task is dropped.
pub async fn serve(
    gate: Arc<Gate>,
    upstream: Url,
    listener: tokio::net::TcpListener,
    access: Access,
) -> std::io::Result<()> {
    let proxy = Arc::new(HttpProxy {
        gate,
        upstream,
        access,
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .map_err(std::io::Error::other)?,
        calls: Mutex::default(),
        clients: Mutex::default(),
        next_token: AtomicU64::new(1),
    });
    let app = axum::Router::new().fallback(handle).with_state(proxy);
    // Without TCP_NODELAY a response written in pieces (headers, chunks) meets the client's
    // delayed ACK: 40 ms a request (measured: BENCHMARKS.md).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

struct HttpProxy {
    gate: Arc<Gate>,
    upstream: Url,
    access: Access,
    http: reqwest::Client,
    /// Held or running calls by (session, request id): their cancellation switch.
    calls: Mutex<HashMap<(String, String), watch::Sender<bool>>>,
    /// `clientInfo.name` by session, from `initialize`.
    clients: Mutex<HashMap<String, String>>,
    next_token: AtomicU64,
}

async fn handle(State(proxy): State<Arc<HttpProxy>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(refusal) = proxy.access.refuse(&parts.headers) {
        return refusal;
    }
    if proxy.access.token.is_some() {
        // The client's token is the proxy's, not the MCP server's.
        parts.headers.remove(AUTHORIZATION);
    }
    if parts.method != Method::POST {
        return proxy.pass(&parts, Bytes::new()).await;
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &Value::Null,
                -32600,
                "the request body is too large or was cut off",
            );
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let frame = match Frame::parse(&text) {
        Ok(frame) => frame,
        Err((error, id)) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &id.unwrap_or(Value::Null),
                error.code(),
                &error.to_string(),
            );
        }
    };
    match &frame.kind {
        Kind::Request { method, .. } if method == "tools/call" => proxy.call(parts, frame).await,
        Kind::Request { method, .. } if method == "tools/list" => {
            proxy.list(parts, frame, bytes).await
        }
        Kind::Request { method, .. } if method == "initialize" => {
            let name = frame.value["params"]["clientInfo"]["name"]
                .as_str()
                .map(str::to_owned);
            let response = proxy.pass(&parts, bytes).await;
            if let (Some(name), Some(session)) = (name, session_of(response.headers())) {
                proxy.clients.lock().unwrap().insert(session, name);
            }
            response
        }
        Kind::Notification { method } if method == "notifications/cancelled" => {
            let key = (
                session_of(&parts.headers).unwrap_or_default(),
                id_key(&frame.value["params"]["requestId"]),
            );
            let owned = proxy.calls.lock().unwrap().get(&key).cloned();
            match owned {
                Some(cancel) => {
                    let _ = cancel.send(true);
                    StatusCode::ACCEPTED.into_response()
                }
                None => proxy.pass(&parts, bytes).await,
            }
        }
        _ => proxy.pass(&parts, bytes).await,
    }
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn rpc_error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response {
    json_response(status, error_response(id, code, message).to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Headers that belong to one hop, not to the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

fn is_sse(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

impl HttpProxy {
    fn upstream_request(&self, parts: &Parts, body: Bytes) -> reqwest::RequestBuilder {
        let mut url = self.upstream.clone();
        if let Some(query) = parts.uri.query() {
            url.set_query(Some(query));
        }
        let mut request = self.http.request(parts.method.clone(), url);
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) && name != HOST {
                request = request.header(name, value);
            }
        }
        request.body(body)
    }

    /// Relays a request and streams the answer back as it comes.
    async fn pass(&self, parts: &Parts, body: Bytes) -> Response {
        match self.upstream_request(parts, body).send().await {
            Ok(response) => relay(response),
            Err(e) => rpc_error(
                StatusCode::BAD_GATEWAY,
                &Value::Null,
                INTERNAL_ERROR,
                &format!("the MCP server cannot be reached: {e}"),
            ),
        }
    }

    async fn list(&self, parts: Parts, frame: Frame, body: Bytes) -> Response {
        let id = match &frame.kind {
            Kind::Request { id, .. } => id.clone(),
            _ => Value::Null,
        };
        let response = match self.upstream_request(&parts, body).send().await {
            Ok(response) => response,
            Err(e) => {
                return rpc_error(
                    StatusCode::BAD_GATEWAY,
                    &id,
                    INTERNAL_ERROR,
                    &format!("the MCP server cannot be reached: {e}"),
                );
            }
        };
        if !response.status().is_success() {
            return relay(response);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let streamed = is_sse(&headers);
        let Ok(bytes) = response.bytes().await else {
            return rpc_error(
                StatusCode::BAD_GATEWAY,
                &id,
                INTERNAL_ERROR,
                "the MCP server's answer to tools/list was cut off",
            );
        };
        let mut events = if streamed {
            let mut parser = sse::Parser::default();
            let mut events = parser.push(&bytes);
            events.extend(parser.finish());
            events
        } else {
            vec![sse::Event {
                raw: String::new(),
                data: Some(String::from_utf8_lossy(&bytes).into_owned()),
            }]
        };
        for event in &mut events {
            let Some(mut value) = event
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
            else {
                continue;
            };
            if value.get("id") != Some(&id) {
                continue;
            }
            if let Some(Value::Array(tools)) = value.pointer_mut("/result/tools") {
                let listed = std::mem::take(tools);
                match self.gate.filter_tools(listed).await {
                    Ok(visible) => value["result"]["tools"] = Value::Array(visible),
                    Err(e) => {
                        let message = format!(
                            "cannot ask Countersign which of this server's tools the policy allows, so none are listed: {e}"
                        );
                        value = error_response(&id, INTERNAL_ERROR, &message);
                    }
                }
            }
            *event = with_data(event, &value.to_string(), streamed);
        }
        let body: String = if streamed {
            events.iter().map(|e| e.raw.as_str()).collect()
        } else {
            events
                .into_iter()
                .next()
                .and_then(|e| e.data)
                .unwrap_or_default()
        };
        let mut answer = Response::new(Body::from(body));
        *answer.status_mut() = status;
        copy_headers(&headers, answer.headers_mut());
        answer
    }
}

/// The event with its data replaced (its `id:`, `event:` and `retry:` lines kept).
fn with_data(event: &sse::Event, data: &str, streamed: bool) -> sse::Event {
    if !streamed {
        return sse::Event {
            raw: String::new(),
            data: Some(data.to_owned()),
        };
    }
    let mut raw: String = event
        .raw
        .lines()
        .filter(|line| !line.starts_with("data:") && !line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    raw.push_str(&format!("data: {data}\n\n"));
    sse::Event {
        raw,
        data: Some(data.to_owned()),
    }
}

fn copy_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.insert(name.clone(), value.clone());
        }
    }
}

fn relay(response: reqwest::Response) -> Response {
    let status = response.status();
    let headers = response.headers().clone();
    let mut answer = Response::new(Body::from_stream(response.bytes_stream()));
    *answer.status_mut() = status;
    copy_headers(&headers, answer.headers_mut());
    answer
}

/// `Parts` is not `Clone`; the gate's own requests reuse the call's headers.
trait CloneParts {
    fn clone_parts(&self) -> Parts;
}

impl CloneParts for Parts {
    fn clone_parts(&self) -> Parts {
        let mut builder = axum::http::Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .version(self.version);
        if let Some(headers) = builder.headers_mut() {
            *headers = self.headers.clone();
        }
        builder
            .body(())
            .expect("parts of a valid request")
            .into_parts()
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        let rows = [
            ("127.0.0.1:3002", true),
            ("localhost", true),
            ("LOCALHOST:80", true),
            ("[::1]:3002", true),
            ("127.1.2.3", true),
            ("127.0.0.1.attacker.example", false),
            ("localhost.attacker.example:80", false),
            ("[::2]:80", false),
            ("10.0.0.1:3002", false),
            ("", false),
        ];
        for (authority, loopback) in rows {
            assert_eq!(
                is_loopback_name(host_name(authority)),
                loopback,
                "{authority}"
            );
        }
    }

    #[test]
    fn a_listener_off_loopback_needs_a_real_token() {
        let any: std::net::SocketAddr = "0.0.0.0:3002".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:3002".parse().unwrap();
        assert!(Access::new(any, None).is_err());
        assert!(Access::new(any, Some(String::new())).is_err());
        assert!(Access::new(local, Some("short".into())).is_err());
        assert!(Access::new(local, Some("sixteen chars  x".into())).is_err());
        assert!(Access::new(any, Some("0123456789abcdef".into())).is_ok());
        assert!(Access::new(local, None).is_ok_and(|a| a.loopback));
        assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
