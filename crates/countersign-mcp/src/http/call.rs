//! A gated `tools/call` over HTTP: the admission in its own task, answered in the server's
//! own format when it was never held, as an SSE stream (progress, keep-alive comments, then
//! the answer) when it was; and the forwarded call's answer turned into the client's.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    CloneParts, HttpProxy, KEEP_ALIVE, copy_headers, is_sse, json_response, rpc_error, session_of,
    with_data,
};
use crate::gate::{Admission, Finished, ListTools, Notify, Run, ToolCall, cancelled};
use crate::jsonrpc::{Frame, INVALID_PARAMS, Kind, error_response, id_key};
use crate::sse;

impl HttpProxy {
    pub(super) async fn call(self: Arc<Self>, parts: Parts, frame: Frame) -> Response {
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
