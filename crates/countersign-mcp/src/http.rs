//! The Streamable HTTP transport: a reverse proxy in front of an MCP server's HTTP endpoint
//! (`countersign mcp --upstream URL --listen ADDR`). Requests and responses pass through as
//! they are — JSON or SSE, sessions (`Mcp-Session-Id`), version and `Mcp-*` headers, GET
//! streams and DELETE — except what the gate owns: `tools/list` answers (denied tools left
//! out) and `tools/call` (gated; a held call is answered as an SSE stream carrying progress
//! and SSE comments until the decision). Policy answers are HTTP 200 with a JSON-RPC body,
//! never a 4xx (a 4xx makes some clients drop the session: research mcp.md §1.3). A held call
//! is withdrawn by `notifications/cancelled` (2025 era) or by closing its stream (2026).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::gate::{Admission, Finished, Gate, ListTools, Notify, Run, ToolCall, cancelled};
use crate::jsonrpc::{Frame, INTERNAL_ERROR, INVALID_PARAMS, Kind, error_response, id_key};
use crate::sse;

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

    async fn call(self: Arc<Self>, parts: Parts, frame: Frame) -> Response {
        let Kind::Request { id, .. } = frame.kind.clone() else {
            return StatusCode::ACCEPTED.into_response();
        };
        let call = match ToolCall::parse(frame.params()) {
            Ok(call) => call,
            Err(message) => return rpc_error(StatusCode::OK, &id, INVALID_PARAMS, &message),
        };
        let session = session_of(&parts.headers).unwrap_or_default();
        let key = (session.clone(), id_key(&id));
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        self.calls
            .lock()
            .unwrap()
            .insert(key.clone(), cancel_tx.clone());
        let (events, events_rx) = mpsc::unbounded_channel::<String>();
        let (first_tx, first_rx) = oneshot::channel::<Option<Admission>>();
        let proxy = self.clone();
        let parts = Arc::new(parts);
        let task_parts = parts.clone();
        let (task_id, task_call, task_value) = (id.clone(), call.clone(), frame.value.clone());
        tokio::spawn(async move {
            let (id, call) = (task_id, task_call);
            let client_name = proxy.clients.lock().unwrap().get(&session).cloned();
            let notify = HttpNotify {
                events: events.clone(),
                first: Mutex::new(Some(first_tx)),
            };
            let lister = HttpLister {
                proxy: &proxy,
                parts: &task_parts,
            };
            let admission = proxy
                .gate
                .admit(
                    &call,
                    client_name.as_deref(),
                    &notify,
                    &mut cancel_rx,
                    &lister,
                )
                .await;
            let first = notify.first.lock().unwrap().take();
            match first {
                // Never held: the handler answers in the server's own format.
                Some(first) => {
                    let _ = first.send(Some(admission));
                }
                // Held: the answer goes on the stream already open.
                None => {
                    let sink = Sink::Events(events);
                    match admission {
                        Admission::Answer(result) => sink.answer(
                            json!({"jsonrpc": "2.0", "id": id, "result": call.complete(result)})
                                .to_string(),
                        ),
                        Admission::Error(code, message) => {
                            sink.answer(error_response(&id, code, &message).to_string())
                        }
                        Admission::Withdrawn => {}
                        Admission::Run(run) => {
                            proxy
                                .forward(&task_parts, task_value, &call, &id, run, sink, cancel_rx)
                                .await
                        }
                    }
                }
            }
            proxy.calls.lock().unwrap().remove(&key);
        });
        match first_rx.await {
            Ok(Some(Admission::Answer(result))) => json_response(
                StatusCode::OK,
                json!({"jsonrpc": "2.0", "id": id, "result": call.complete(result)}).to_string(),
            ),
            Ok(Some(Admission::Error(code, message))) => {
                rpc_error(StatusCode::OK, &id, code, &message)
            }
            Ok(Some(Admission::Withdrawn)) => StatusCode::ACCEPTED.into_response(),
            Ok(Some(Admission::Run(run))) => {
                let (tx, rx) = oneshot::channel();
                let cancel = cancel_tx.subscribe();
                let proxy = self.clone();
                let frame_value = frame.value.clone();
                let parts = parts.clone();
                tokio::spawn(async move {
                    proxy
                        .forward(&parts, frame_value, &call, &id, run, Sink::Http(tx), cancel)
                        .await;
                });
                rx.await
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
            }
            // Held: an SSE stream of progress, keep-alive comments, then the answer.
            Ok(None) | Err(_) => sse_response(events_rx, CancelOnDrop(cancel_tx)),
        }
    }

    /// Forwards a call the gate let through, and turns the server's answer into the
    /// client's (`Gate::finish`), in the server's format when the sink allows it.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        parts: &Parts,
        mut request: Value,
        call: &ToolCall,
        id: &Value,
        run: Box<Run>,
        sink: Sink,
        mut cancel: watch::Receiver<bool>,
    ) {
        if run.modified {
            request["params"]["arguments"] = Value::Object(run.arguments.clone());
        }
        // The server's progress is shifted past the gate's own notifications on a fresh
        // token, so that the client sees one increasing sequence.
        let mut remap = None;
        if let (Some(client_token), true) = (&call.progress_token, run.progress_sent > 0) {
            let token = format!(
                "countersign-progress-{}",
                self.next_token.fetch_add(1, Ordering::Relaxed)
            );
            request["params"]["_meta"]["progressToken"] = json!(token);
            remap = Some((json!(token), client_token.clone(), run.progress_sent as f64));
        }
        let body = Bytes::from(request.to_string());
        // The arguments changed: so do the Mcp-Param headers mirrored from them.
        let mut rewritten = None;
        if run.modified
            && let Some(schema) = self
                .gate
                .catalog
                .tool(&call.name)
                .and_then(|t| t.input_schema)
        {
            let mut changed = parts.clone_parts();
            let stale: Vec<HeaderName> = changed
                .headers
                .keys()
                .filter(|name| name.as_str().starts_with("mcp-param-"))
                .cloned()
                .collect();
            for name in stale {
                changed.headers.remove(name);
            }
            for (name, value) in crate::mcp_param::headers(&schema, &run.arguments) {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                {
                    changed.headers.insert(name, value);
                }
            }
            rewritten = Some(changed);
        }
        let parts = rewritten.as_ref().unwrap_or(parts);
        let sent = tokio::select! {
            sent = self.upstream_request(parts, body).send() => sent,
            () = cancelled(&mut cancel) => {
                self.gate.abandon(run);
                return;
            }
        };
        let response = match sent {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                let finished = self
                    .gate
                    .finish(run, Err(format!("HTTP {}", response.status())));
                return sink.answer(finished_text(finished, id, None));
            }
            Err(e) => {
                let finished = self.gate.finish(run, Err(e.to_string()));
                return sink.answer(finished_text(finished, id, None));
            }
        };
        let headers = response.headers().clone();
        if !is_sse(&headers) {
            let Ok(bytes) = response.bytes().await else {
                let finished = self.gate.finish(run, Err("the answer was cut off".into()));
                return sink.answer(finished_text(finished, id, None));
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let value = serde_json::from_str::<Value>(&text).map_err(|e| format!("not JSON: {e}"));
            let finished = self.gate.finish(run, value);
            return sink.answer(finished_text(finished, id, Some(text)));
        }
        let events = match sink {
            Sink::Events(events) => events,
            Sink::Http(respond) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let (guard_tx, guard_rx) = watch::channel(false);
                let mut answer = sse_response(rx, CancelOnDrop(guard_tx));
                copy_headers(&headers, answer.headers_mut());
                let _ = respond.send(answer);
                cancel = guard_rx;
                tx
            }
        };
        let mut stream = response.bytes_stream();
        let mut parser = sse::Parser::default();
        let mut run = Some(run);
        loop {
            let chunk = tokio::select! {
                chunk = stream.next() => chunk,
                () = cancelled(&mut cancel) => {
                    if let Some(run) = run.take() {
                        self.gate.abandon(run);
                    }
                    return;
                }
            };
            let Some(Ok(chunk)) = chunk else { break };
            for event in parser.push(&chunk) {
                let value = event
                    .data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok());
                let text = match value {
                    Some(value) if value.get("id") == Some(id) && value.get("method").is_none() => {
                        let Some(run) = run.take() else { continue };
                        match self.gate.finish(run, Ok(value)) {
                            Finished::Unchanged(_) => event.raw,
                            Finished::Changed(mut frame) => {
                                frame["id"] = id.clone();
                                with_data(&event, &frame.to_string(), true).raw
                            }
                        }
                    }
                    Some(mut value)
                        if remap.as_ref().is_some_and(|(token, _, _)| {
                            value["params"]["progressToken"] == *token
                        }) =>
                    {
                        let (_, client_token, offset) = remap.as_ref().unwrap();
                        value["params"]["progressToken"] = client_token.clone();
                        for key in ["progress", "total"] {
                            if let Some(n) = value["params"][key].as_f64() {
                                value["params"][key] = json!(n + offset);
                            }
                        }
                        with_data(&event, &value.to_string(), true).raw
                    }
                    _ => event.raw,
                };
                if events.send(text).is_err() {
                    return;
                }
            }
        }
        if let Some(run) = run {
            let finished = self.gate.finish(
                run,
                Err("the server's stream ended without an answer".into()),
            );
            let _ = events.send(sse::message(&finished_text(finished, id, None)));
        }
    }
}

/// Where a forwarded call's answer goes: the HTTP response not yet sent, or the SSE stream
/// of a held call.
enum Sink {
    Http(oneshot::Sender<Response>),
    Events(mpsc::UnboundedSender<String>),
}

impl Sink {
    fn answer(self, json: String) {
        match self {
            Sink::Http(respond) => {
                let _ = respond.send(json_response(StatusCode::OK, json));
            }
            Sink::Events(events) => {
                let _ = events.send(sse::message(&json));
            }
        }
    }
}

fn finished_text(finished: Finished, id: &Value, original: Option<String>) -> String {
    match (finished, original) {
        (Finished::Unchanged(_), Some(text)) => text,
        (Finished::Unchanged(mut frame) | Finished::Changed(mut frame), _) => {
            frame["id"] = id.clone();
            frame.to_string()
        }
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

/// Withdraws the call when the client closes its stream before the answer.
struct CancelOnDrop(watch::Sender<bool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

fn sse_response(events: mpsc::UnboundedReceiver<String>, guard: CancelOnDrop) -> Response {
    let mut ticker = tokio::time::interval(KEEP_ALIVE);
    ticker.reset();
    let stream = futures_util::stream::unfold(
        (events, ticker, guard),
        |(mut events, mut ticker, guard)| async move {
            let item = tokio::select! {
                event = events.recv() => event?,
                _ = ticker.tick() => ": keep-alive\n\n".to_owned(),
            };
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(item)),
                (events, ticker, guard),
            ))
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

struct HttpNotify {
    events: mpsc::UnboundedSender<String>,
    first: Mutex<Option<oneshot::Sender<Option<Admission>>>>,
}

impl Notify for HttpNotify {
    fn notify(&self, frame: Value) {
        let _ = self.events.send(sse::message(&frame.to_string()));
    }

    fn holding(&self) {
        if let Some(first) = self.first.lock().unwrap().take() {
            let _ = first.send(None);
        }
    }
}

struct HttpLister<'a> {
    proxy: &'a HttpProxy,
    parts: &'a Parts,
}

impl ListTools for HttpLister<'_> {
    async fn list_tools(&self, meta: Option<Value>) -> Result<Vec<Value>, String> {
        let mut params = json!({});
        if let Some(meta) = meta {
            params["_meta"] = meta;
        }
        let request = json!({"jsonrpc": "2.0", "id": "countersign-list", "method": "tools/list", "params": params});
        let mut parts = self.parts.clone_parts();
        parts
            .headers
            .insert("mcp-method", HeaderValue::from_static("tools/list"));
        parts.headers.remove("mcp-name");
        let params: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("mcp-param-"))
            .cloned()
            .collect();
        for name in params {
            parts.headers.remove(name);
        }
        let response = self
            .proxy
            .upstream_request(&parts, Bytes::from(request.to_string()))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let streamed = is_sse(response.headers());
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let values: Vec<Value> = if streamed {
            let mut parser = sse::Parser::default();
            let mut events = parser.push(&bytes);
            events.extend(parser.finish());
            events
                .iter()
                .filter_map(|e| e.data.as_deref())
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect()
        } else {
            serde_json::from_slice(&bytes)
                .map(|v| vec![v])
                .map_err(|e| e.to_string())?
        };
        values
            .into_iter()
            .find(|v| v["id"] == "countersign-list")
            .and_then(|v| v["result"]["tools"].as_array().cloned())
            .ok_or_else(|| "tools/list gave no tools".to_owned())
    }
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
