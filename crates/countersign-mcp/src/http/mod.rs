//! The Streamable HTTP transport: a reverse proxy in front of an MCP server's HTTP endpoint
//! (`countersign mcp --upstream URL --listen ADDR`). Requests and responses pass through as
//! they are — JSON or SSE, sessions (`Mcp-Session-Id`), version and `Mcp-*` headers, GET
//! streams and DELETE — except what the gate owns: `tools/list` answers (denied tools left
//! out) and `tools/call` (gated; a held call is answered as an SSE stream carrying progress
//! and SSE comments until the decision). Policy answers are HTTP 200 with a JSON-RPC body,
//! never a 4xx (a 4xx makes some clients drop the session: research mcp.md §1.3). A held call
//! is withdrawn by `notifications/cancelled` (2025 era) or by closing its stream (2026).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST};
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

/// Serves the proxy on `listener` until the task is dropped.
pub async fn serve(
    gate: Arc<Gate>,
    upstream: Url,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let proxy = Arc::new(HttpProxy {
        gate,
        upstream,
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
    http: reqwest::Client,
    /// Held or running calls by (session, request id): their cancellation switch.
    calls: Mutex<HashMap<(String, String), watch::Sender<bool>>>,
    /// `clientInfo.name` by session, from `initialize`.
    clients: Mutex<HashMap<String, String>>,
    next_token: AtomicU64,
}

async fn handle(State(proxy): State<Arc<HttpProxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
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
