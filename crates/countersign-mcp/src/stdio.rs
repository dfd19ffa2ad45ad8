//! The stdio transport: the client launched this process as its MCP server; the real
//! server runs as our child. Lines are relayed as they are, except what the gate owns:
//! `tools/list` answers (denied tools left out), `tools/call` requests (gated), cancellations
//! of held calls, and progress of calls the gate held. Our stdout carries nothing but
//! frames; logs go to stderr.

use std::collections::HashMap;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

use crate::gate::{Admission, Finished, Gate, ListTools, Notify, ToolCall, cancelled};
use crate::jsonrpc::{Frame, INTERNAL_ERROR, INVALID_PARAMS, Kind, error_response, id_key};

/// The longest frame accepted on either side (a 16 MiB image in base64 fits).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Runs the proxy until the client closes stdin or the server exits; returns the
/// server's exit status.
pub async fn run(gate: Arc<Gate>, command: &[String]) -> std::io::Result<ExitStatus> {
    let (program, args) = command.split_first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no server command")
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {program:?}: {e}")))?;
    let child_in = child.stdin.take().expect("piped");
    let child_out = child.stdout.take().expect("piped");

    let (to_client, client_rx) = mpsc::unbounded_channel::<String>();
    let (to_upstream, upstream_rx) = mpsc::unbounded_channel::<String>();
    let client_writer = tokio::spawn(write_lines(tokio::io::stdout(), client_rx));
    let upstream_writer = tokio::spawn(write_lines(child_in, upstream_rx));
    let relay = Arc::new(Relay::new(gate, to_client, to_upstream));

    let upstream_reader = {
        let relay = relay.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(child_out);
            let mut buffer = Vec::new();
            while let Some(line) = read_line(&mut lines, &mut buffer, "the server").await {
                relay.on_upstream_line(&line);
            }
            relay.upstream_closed();
        })
    };
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut buffer = Vec::new();
    let mut upstream_done = upstream_reader;
    loop {
        tokio::select! {
            line = read_line(&mut stdin, &mut buffer, "the client") => match line {
                Some(line) => relay.on_client_line(&line),
                None => break,
            },
            _ = &mut upstream_done => break,
        }
    }
    // The client is gone (or the server): close the server's stdin, give it a moment to
    // exit as the stdio transport asks, then stop it.
    relay.close_upstream();
    drop(relay);
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            child.start_kill()?;
            child.wait().await?
        }
    };
    let _ = upstream_writer.await;
    // Answers still in the channel reach the client before we exit.
    let _ = tokio::time::timeout(Duration::from_secs(5), client_writer).await;
    Ok(status)
}

/// Reads one line; `None` at end of input. Lines that are not UTF-8 or are too long are
/// reported and skipped (never relayed).
async fn read_line(
    reader: &mut (impl tokio::io::AsyncBufRead + Unpin),
    buffer: &mut Vec<u8>,
    from: &str,
) -> Option<String> {
    loop {
        buffer.clear();
        match reader.read_until(b'\n', buffer).await {
            Ok(0) => return None,
            Ok(_) if buffer.len() > MAX_LINE => {
                tracing::warn!(
                    "dropping a {}-byte line from {from}: too long",
                    buffer.len()
                );
            }
            Ok(_) => match std::str::from_utf8(buffer) {
                Ok(text) => return Some(text.trim_end_matches(['\n', '\r']).to_owned()),
                Err(_) => tracing::warn!("dropping a line from {from} that is not UTF-8"),
            },
            Err(e) => {
                tracing::warn!("cannot read from {from}: {e}");
                return None;
            }
        }
    }
}

async fn write_lines(mut out: impl AsyncWrite + Unpin, mut lines: mpsc::UnboundedReceiver<String>) {
    while let Some(line) = lines.recv().await {
        let mut batch = line;
        batch.push('\n');
        // Frames that queued meanwhile go out in the same write.
        while let Ok(more) = lines.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
        }
        if out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

/// The state of one session.
struct Relay {
    gate: Arc<Gate>,
    to_client: mpsc::UnboundedSender<String>,
    to_upstream: Mutex<Option<mpsc::UnboundedSender<String>>>,
    /// Requests the gate sent upstream, by id, waiting for their answer.
    waiting: Mutex<HashMap<String, oneshot::Sender<Frame>>>,
    /// Calls being gated, by the client's request id: their cancellation switch.
    calls: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Progress tokens the gate gave the server for calls it held: the client's token and
    /// how far the gate's own notifications went.
    progress: Mutex<HashMap<String, (Value, u64)>>,
    client_name: Mutex<Option<String>>,
    /// The client declared form elicitation in `initialize`.
    client_elicits: std::sync::atomic::AtomicBool,
    /// Requests the gate sent the client (elicitation), by id, waiting for the answer.
    client_waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Ids of gate-sent requests: a random prefix no client id shares, and a counter.
    id_prefix: String,
    next_id: AtomicU64,
}

impl Relay {
    fn new(
        gate: Arc<Gate>,
        to_client: mpsc::UnboundedSender<String>,
        to_upstream: mpsc::UnboundedSender<String>,
    ) -> Relay {
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let id_prefix = format!(
            "countersign-{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Relay {
            gate,
            to_client,
            to_upstream: Mutex::new(Some(to_upstream)),
            waiting: Mutex::default(),
            calls: Mutex::default(),
            progress: Mutex::default(),
            client_name: Mutex::default(),
            client_elicits: std::sync::atomic::AtomicBool::new(false),
            client_waiting: Mutex::default(),
            id_prefix,
            next_id: AtomicU64::new(1),
        }
    }

    fn send_client(&self, text: String) {
        let _ = self.to_client.send(text);
    }

    fn send_upstream(&self, text: String) -> bool {
        match &*self.to_upstream.lock().unwrap() {
            Some(tx) => tx.send(text).is_ok(),
            None => false,
        }
    }

    fn close_upstream(&self) {
        self.to_upstream.lock().unwrap().take();
    }

    fn gate_id(&self) -> String {
        format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Sends a request upstream under a gate id; the receiver gets the whole answer frame.
    fn request_upstream(&self, mut frame: Value) -> (String, oneshot::Receiver<Frame>) {
        let id = self.gate_id();
        frame["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id_key(&json!(id)), tx);
        if !self.send_upstream(frame.to_string()) {
            self.waiting.lock().unwrap().remove(&id_key(&json!(id)));
        }
        (id, rx)
    }

    fn on_client_line(self: &Arc<Self>, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let frame = match Frame::parse(line) {
            Ok(frame) => frame,
            Err((error, id)) => {
                tracing::warn!("refusing a frame from the client: {error}");
                let id = id.unwrap_or(Value::Null);
                self.send_client(error_response(&id, error.code(), &error.to_string()).to_string());
                return;
            }
        };
        match &frame.kind {
            Kind::Request { method, .. } if method == "initialize" => {
                let name = frame.value["params"]["clientInfo"]["name"]
                    .as_str()
                    .map(str::to_owned);
                *self.client_name.lock().unwrap() = name;
                let elicitation = &frame.value["params"]["capabilities"]["elicitation"];
                let form = elicitation
                    .as_object()
                    .is_some_and(|e| e.is_empty() || e.contains_key("form"));
                self.client_elicits.store(form, Ordering::Relaxed);
                self.send_upstream(frame.text);
            }
            Kind::Request { id, method } if method == "tools/list" => {
                let client_id = id.clone();
                let (_, answer) = self.request_upstream(frame.value);
                let relay = self.clone();
                tokio::spawn(async move { relay.answer_list(client_id, answer).await });
            }
            Kind::Request { id, method } if method == "tools/call" => {
                let relay = self.clone();
                let client_id = id.clone();
                match ToolCall::parse(frame.params()) {
                    Ok(call) => {
                        let (cancel_tx, cancel_rx) = watch::channel(false);
                        self.calls
                            .lock()
                            .unwrap()
                            .insert(id_key(&client_id), cancel_tx);
                        tokio::spawn(async move {
                            relay
                                .gate_call(client_id, frame.value, call, cancel_rx)
                                .await
                        });
                    }
                    Err(message) => self.send_client(
                        error_response(&client_id, INVALID_PARAMS, &message).to_string(),
                    ),
                }
            }
            Kind::Notification { method } if method == "notifications/cancelled" => {
                let request = frame.value["params"]["requestId"].clone();
                let call = self.calls.lock().unwrap().get(&id_key(&request)).cloned();
                match call {
                    // The gate owns that call: it withdraws the action, or cancels upstream
                    // under its own id.
                    Some(cancel) => {
                        let _ = cancel.send(true);
                    }
                    None => {
                        self.send_upstream(frame.text);
                    }
                }
            }
            Kind::Response { id } => {
                let waiter = self.client_waiting.lock().unwrap().remove(&id_key(id));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(frame.value);
                    }
                    None => {
                        self.send_upstream(frame.text);
                    }
                }
            }
            _ => {
                self.send_upstream(frame.text);
            }
        }
    }

    fn on_upstream_line(&self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let frame = match Frame::parse(line) {
            Ok(frame) => frame,
            Err((error, _)) => {
                // Never relayed: the client's stdout carries JSON-RPC only.
                tracing::warn!(
                    "dropping a line from the server that is not a JSON-RPC frame: {error}"
                );
                return;
            }
        };
        match &frame.kind {
            Kind::Response { id } => {
                let waiter = self.waiting.lock().unwrap().remove(&id_key(id));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(frame);
                    }
                    None => self.send_client(frame.text),
                }
            }
            Kind::Notification { method } if method == "notifications/progress" => {
                let token = id_key(&frame.value["params"]["progressToken"]);
                let mapped = self.progress.lock().unwrap().get(&token).cloned();
                match mapped {
                    Some((client_token, offset)) => {
                        let mut value = frame.value;
                        value["params"]["progressToken"] = client_token;
                        for key in ["progress", "total"] {
                            if let Some(n) = value["params"][key].as_f64() {
                                value["params"][key] = json!(n + offset as f64);
                            }
                        }
                        self.send_client(value.to_string());
                    }
                    None => self.send_client(frame.text),
                }
            }
            Kind::Notification { method } if method == "notifications/tools/list_changed" => {
                self.gate.catalog.clear();
                self.send_client(frame.text);
            }
            _ => self.send_client(frame.text),
        }
    }

    /// The server is gone: every request the gate sent it fails.
    fn upstream_closed(&self) {
        self.waiting.lock().unwrap().clear();
    }

    async fn answer_list(&self, client_id: Value, answer: oneshot::Receiver<Frame>) {
        let Ok(Frame {
            value: mut frame, ..
        }) = answer.await
        else {
            let message = "the MCP server closed before answering tools/list";
            self.send_client(error_response(&client_id, INTERNAL_ERROR, message).to_string());
            return;
        };
        if let Some(Value::Array(tools)) = frame.pointer_mut("/result/tools") {
            let listed = std::mem::take(tools);
            let count = listed.len();
            match self.gate.filter_tools(listed).await {
                Ok(visible) => {
                    if visible.len() < count {
                        tracing::info!(
                            hidden = count - visible.len(),
                            "tools the policy denies left out of tools/list"
                        );
                    }
                    frame["result"]["tools"] = Value::Array(visible);
                }
                Err(e) => {
                    let message = format!(
                        "cannot ask Countersign which of this server's tools the policy allows, so none are listed: {e}"
                    );
                    self.send_client(
                        error_response(&client_id, INTERNAL_ERROR, &message).to_string(),
                    );
                    return;
                }
            }
        }
        frame["id"] = client_id;
        self.send_client(frame.to_string());
    }

    async fn gate_call(
        self: Arc<Self>,
        client_id: Value,
        request: Value,
        call: ToolCall,
        mut cancel: watch::Receiver<bool>,
    ) {
        let client_name = self.client_name.lock().unwrap().clone();
        let notify = ClientNotify(&self);
        let lister = Lister(&self);
        let admission = self
            .gate
            .admit(&call, client_name.as_deref(), &notify, &mut cancel, &lister)
            .await;
        let answer = match admission {
            Admission::Answer(result) => Some(
                json!({"jsonrpc": "2.0", "id": client_id, "result": call.complete(result)})
                    .to_string(),
            ),
            Admission::Error(code, message) => {
                Some(error_response(&client_id, code, &message).to_string())
            }
            Admission::Withdrawn => None,
            Admission::Run(run) => {
                let mut request = request;
                if run.modified {
                    request["params"]["arguments"] = Value::Object(run.arguments.clone());
                }
                let mut fresh_token = None;
                if let (Some(client_token), true) = (&call.progress_token, run.progress_sent > 0) {
                    let token = self.gate_id();
                    self.progress.lock().unwrap().insert(
                        id_key(&json!(token)),
                        (client_token.clone(), run.progress_sent),
                    );
                    request["params"]["_meta"]["progressToken"] = json!(token);
                    fresh_token = Some(token);
                }
                let (gate_id, response) = self.request_upstream(request);
                let answer = tokio::select! {
                    response = response => {
                        let (text, response) = match response {
                            Ok(frame) => (Some(frame.text), Ok(frame.value)),
                            Err(_) => (None, Err("the server closed before answering".to_owned())),
                        };
                        Some((text, self.gate.finish(run, response)))
                    }
                    () = cancelled(&mut cancel) => {
                        self.waiting.lock().unwrap().remove(&id_key(&json!(gate_id)));
                        self.send_upstream(json!({
                            "jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": gate_id, "reason": "the client cancelled the call"}
                        }).to_string());
                        self.gate.abandon(run);
                        None
                    }
                };
                if let Some(token) = fresh_token {
                    self.progress.lock().unwrap().remove(&id_key(&json!(token)));
                }
                answer.map(|(text, finished)| match (text, finished) {
                    // The server's own bytes, with the client's id put back: the gate id
                    // (random, quoted) occurs nowhere else in the frame.
                    (Some(text), Finished::Unchanged(_)) => {
                        text.replacen(&json!(gate_id).to_string(), &client_id.to_string(), 1)
                    }
                    (_, Finished::Unchanged(mut frame) | Finished::Changed(mut frame)) => {
                        frame["id"] = client_id.clone();
                        frame.to_string()
                    }
                })
            }
        };
        self.calls.lock().unwrap().remove(&id_key(&client_id));
        if let Some(answer) = answer {
            self.send_client(answer);
        }
    }
}

struct ClientNotify<'a>(&'a Arc<Relay>);

impl Notify for ClientNotify<'_> {
    fn notify(&self, frame: Value) {
        self.0.send_client(frame.to_string());
    }

    async fn elicit(&self, params: Value) -> Option<Value> {
        if !self.0.client_elicits.load(Ordering::Relaxed) {
            tracing::debug!("the client cannot show forms: not asking its user");
            return None;
        }
        let id = self.0.gate_id();
        let (tx, rx) = oneshot::channel();
        self.0
            .client_waiting
            .lock()
            .unwrap()
            .insert(id_key(&json!(id)), tx);
        self.0.send_client(
            json!({"jsonrpc": "2.0", "id": id, "method": "elicitation/create", "params": params})
                .to_string(),
        );
        let mut guard = Withdraw {
            relay: self.0,
            id,
            answered: false,
        };
        let answer = rx.await.ok();
        guard.answered = true;
        answer?.get("result").cloned()
    }
}

/// Withdraws the form from the client when the call was decided elsewhere first.
struct Withdraw<'a> {
    relay: &'a Arc<Relay>,
    id: String,
    answered: bool,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.relay
            .client_waiting
            .lock()
            .unwrap()
            .remove(&id_key(&json!(self.id)));
        self.relay.send_client(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": self.id, "reason": "decided elsewhere"}})
            .to_string(),
        );
    }
}

struct Lister<'a>(&'a Arc<Relay>);

impl ListTools for Lister<'_> {
    async fn list_tools(&self, meta: Option<Value>) -> Result<Vec<Value>, String> {
        let mut tools = Vec::new();
        let mut cursor: Option<Value> = None;
        // A server that pages forever is cut off: 100 pages is far more than any lists.
        for _ in 0..100 {
            let mut params = json!({});
            if let Some(meta) = &meta {
                params["_meta"] = meta.clone();
            }
            if let Some(cursor) = &cursor {
                params["cursor"] = cursor.clone();
            }
            let (_, answer) = self.0.request_upstream(json!({
                "jsonrpc": "2.0", "id": null, "method": "tools/list", "params": params
            }));
            let frame = answer
                .await
                .map_err(|_| "the server closed".to_owned())?
                .value;
            let page = frame["result"]["tools"]
                .as_array()
                .ok_or("tools/list gave no tools")?;
            tools.extend(page.iter().cloned());
            match frame["result"].get("nextCursor") {
                Some(next) if !next.is_null() => cursor = Some(next.clone()),
                _ => return Ok(tools),
            }
        }
        Ok(tools)
    }
}
