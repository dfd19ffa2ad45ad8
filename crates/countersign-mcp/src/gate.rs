//! The gate: what happens to one `tools/call`, whatever the transport. It submits the call
//! as a Countersign action, holds it while a person decides (progress keep-alive, the
//! client's wait budget), and answers with the server's result or with words saying why the
//! tool did not run. The transports (stdio, HTTP) only move frames; every decision is here.

use std::collections::HashSet;
use std::future::Future;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::answer;
use crate::call_key::{Ledger, Turn, digest};
use crate::config::GateConfig;
use crate::gateway::{Action, Gateway, GatewayError};
use crate::hold::Held;
use crate::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS};
use crate::schema;
use crate::tools::{Catalog, Hints, context};

/// How many times a submission is retried with a new idempotency key (an earlier action with
/// the same key already ran, was withdrawn, or was submitted with another body).
const MAX_GENERATIONS: usize = 8;

/// Whether `name` is a valid Countersign action name (SPEC §3).
pub fn is_action_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'))
}

/// A `tools/call` request's params, parsed.
#[derive(Clone, Debug)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Map<String, Value>,
    pub progress_token: Option<Value>,
    /// Protocol 2026-07-28: the request carries its version in `_meta`, and results carry
    /// `resultType`.
    pub modern: bool,
    /// The request's `_meta` (a modern request's version and capabilities go with any
    /// request the gate sends on its behalf).
    pub meta: Option<Map<String, Value>>,
}

impl ToolCall {
    /// Parses `params`; the error is the message of a `-32602` answer.
    pub fn parse(params: Option<&Map<String, Value>>) -> Result<ToolCall, String> {
        let params = params.ok_or("tools/call needs params with a tool \"name\"")?;
        let name = match params.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            Some(other) => {
                return Err(format!(
                    "tools/call: \"name\" must be a non-empty string, found {other}"
                ));
            }
            None => return Err("tools/call: \"name\" is missing".into()),
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(arguments)) => arguments.clone(),
            Some(other) => {
                return Err(format!(
                    "tools/call: \"arguments\" must be an object, found {other}"
                ));
            }
        };
        let meta = match params.get("_meta") {
            None => None,
            Some(Value::Object(meta)) => Some(meta.clone()),
            Some(other) => {
                return Err(format!(
                    "tools/call: \"_meta\" must be an object, found {other}"
                ));
            }
        };
        let progress_token = meta
            .as_ref()
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
            .cloned();
        let modern = meta
            .as_ref()
            .is_some_and(|m| m.contains_key("io.modelcontextprotocol/protocolVersion"));
        Ok(ToolCall {
            name,
            arguments,
            progress_token,
            modern,
            meta,
        })
    }

    /// A result the gate wrote, in this call's protocol era.
    pub fn complete(&self, mut result: Value) -> Value {
        if self.modern
            && let Value::Object(object) = &mut result
        {
            object
                .entry("resultType")
                .or_insert_with(|| json!("complete"));
        }
        result
    }
}

/// What the transport does with a call once the gate has decided.
pub enum Admission {
    /// Forward the call upstream with these arguments, then hand the answer to `finish`.
    Run(Box<Run>),
    /// Answer the client with this tool result (the tool did not run).
    Answer(Value),
    /// Answer the client with a JSON-RPC error (code, message).
    Error(i64, String),
    /// The client withdrew the call: answer nothing.
    Withdrawn,
}

/// A call the policy (or a person) allows, on its way upstream.
pub struct Run {
    pub action: Action,
    pub arguments: Map<String, Value>,
    /// The arguments differ from the call's: a reviewer modified them.
    pub modified: bool,
    /// Progress notifications the gate already sent on the client's token; the server's own
    /// progress is shifted past them, so that the values keep increasing.
    pub progress_sent: u64,
    turn: Turn,
}

/// How the gate reaches the client while it holds a call.
pub trait Notify: Sync {
    /// Sends a notification frame (progress) related to the call.
    fn notify(&self, frame: Value);
    /// The call is about to be held (its action is pending): a transport that answers in
    /// one piece switches to a stream here.
    fn holding(&self) {}
    /// Asks the client's user with a form (`elicitation/create`, 2025 era); the client's
    /// result, or `None` when this client cannot be asked.
    fn elicit(&self, _params: Value) -> impl Future<Output = Option<Value>> + Send {
        async { None }
    }
}

/// How the gate asks the upstream server for its tools, when it needs a schema it has not
/// seen listed.
pub trait ListTools: Sync {
    fn list_tools(
        &self,
        meta: Option<Value>,
    ) -> impl Future<Output = Result<Vec<Value>, String>> + Send;
}

/// The gate of one upstream server.
pub struct Gate {
    pub config: GateConfig,
    pub gateway: Gateway,
    /// The gateway as the person at the client (a reviewer token), for answers given in
    /// the client; the policy decides whether that person may decide.
    pub user: Option<Gateway>,
    pub catalog: Catalog,
    ledger: Ledger,
}

impl Gate {
    pub fn new(config: GateConfig, gateway: Gateway) -> Gate {
        Gate {
            config,
            gateway,
            user: None,
            catalog: Catalog::default(),
            ledger: Ledger::default(),
        }
    }

    /// The action name of a tool, if the tool's name can be part of one.
    pub fn action_name(&self, tool: &str) -> Option<String> {
        let name = format!("{}.{tool}", self.config.action_prefix);
        is_action_name(&name).then_some(name)
    }

    /// The tools of a `tools/list` result that the client may see: asks the policy about
    /// each (hypothetically, nothing is stored), records them, and leaves out the denied.
    /// Fails (closed) when Countersign cannot answer.
    pub async fn filter_tools(&self, tools: Vec<Value>) -> Result<Vec<Value>, GatewayError> {
        let mut questions = Vec::new();
        let mut asked = Vec::new();
        let mut hidden = HashSet::new();
        for (index, tool) in tools.iter().enumerate() {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            // A tool whose name cannot be an action can never be called through the gate:
            // not listed either.
            let Some(action) = self.action_name(name) else {
                hidden.insert(name.to_owned());
                continue;
            };
            let annotations = tool.get("annotations");
            questions.push(json!({
                "action": action,
                "context": context(&self.config.server, name, annotations, self.config.trusted),
                "hints": Hints::of(annotations, self.config.trusted).to_json(),
            }));
            asked.push(index);
        }
        let answers = if questions.is_empty() {
            Vec::new()
        } else {
            self.gateway.classify(questions).await?
        };
        for (index, classification) in asked.iter().zip(&answers) {
            if classification.status == "denied"
                && let Some(name) = tools[*index].get("name").and_then(Value::as_str)
            {
                hidden.insert(name.to_owned());
            }
        }
        self.catalog.record(&tools, &hidden);
        Ok(tools
            .into_iter()
            .filter(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(|name| !hidden.contains(name))
            })
            .collect())
    }

    /// Decides a call: submit, hold while pending, and say what the transport does next.
    pub async fn admit(
        &self,
        call: &ToolCall,
        client_name: Option<&str>,
        notify: &impl Notify,
        cancel: &mut watch::Receiver<bool>,
        upstream: &impl ListTools,
    ) -> Admission {
        let Some(action_name) = self.action_name(&call.name) else {
            return Admission::Error(
                INVALID_PARAMS,
                format!(
                    "Unknown tool: {} (its name cannot name a Countersign action)",
                    call.name
                ),
            );
        };
        let arguments = Value::Object(call.arguments.clone());
        let digest = digest(&self.config.server, &call.name, &arguments);
        let mut turn = tokio::select! {
            turn = self.ledger.turn(&digest) => turn,
            () = cancelled(cancel) => return Admission::Withdrawn,
        };
        let tool = self.catalog.tool(&call.name);
        let annotations = tool.as_ref().and_then(|t| t.annotations.as_ref());
        let mut body = json!({
            "action": action_name,
            "args": arguments,
            "reasoning": format!("MCP tools/call of {:?} on server {:?}", call.name, self.config.server),
            "context": context(&self.config.server, &call.name, annotations, self.config.trusted),
            "hints": Hints::of(annotations, self.config.trusted).to_json(),
        });
        let mut action = None;
        for _ in 0..MAX_GENERATIONS {
            body["idempotency_key"] = json!(turn.key());
            let submitted = match self.gateway.submit(&body).await {
                Ok(submitted) => submitted,
                Err(e) if e.code() == Some("idempotency_mismatch") => {
                    turn.settle();
                    continue;
                }
                Err(e) => return Admission::Answer(answer::gateway_failed(&action_name, &e)),
            };
            let current = if submitted.replayed {
                // A replay answers with the action as first submitted; its state now is
                // what counts.
                match self.gateway.wait(&submitted.action.id, 0).await {
                    Ok(current) => current,
                    Err(e) => return Admission::Answer(answer::gateway_failed(&action_name, &e)),
                }
            } else {
                submitted.action
            };
            if submitted.replayed && (current.outcome.is_some() || current.status == "cancelled") {
                // That action already ran (or was withdrawn): this is a new call.
                turn.settle();
                continue;
            }
            action = Some(current);
            break;
        }
        let Some(mut action) = action else {
            return Admission::Answer(answer::error_result(format!(
                "Not run: {action_name} could not be filed as a new Countersign action after \
                 {MAX_GENERATIONS} attempts."
            )));
        };
        let mut progress_sent = 0;
        if action.status == "pending" {
            let budget = self
                .config
                .hold_for(client_name, call.progress_token.is_some());
            match self
                .hold(call, &action_name, action, budget, notify, cancel)
                .await
            {
                Held::Decided(decided, sent) => {
                    action = decided;
                    progress_sent = sent;
                }
                Held::StillPending(pending, waited) => {
                    return Admission::Answer(answer::pending(&action_name, &pending, waited));
                }
                Held::Failed(e) => {
                    return Admission::Answer(answer::gateway_failed(&action_name, &e));
                }
                Held::Withdrawn(id) => {
                    if let Err(e) = self.gateway.cancel(&id).await {
                        tracing::warn!(action = %id, error = %e, "could not withdraw the action");
                    }
                    turn.settle();
                    return Admission::Withdrawn;
                }
            }
        }
        match action.status.as_str() {
            "allowed" | "approved" => {
                self.prepare_run(call, &action_name, action, turn, progress_sent, upstream)
                    .await
            }
            "denied" if self.catalog.is_hidden(&call.name) => {
                turn.settle();
                Admission::Error(INVALID_PARAMS, format!("Unknown tool: {}", call.name))
            }
            _ => {
                turn.settle();
                Admission::Answer(answer::refused(&action_name, &action))
            }
        }
    }

    async fn prepare_run(
        &self,
        call: &ToolCall,
        action_name: &str,
        action: Action,
        mut turn: Turn,
        progress_sent: u64,
        upstream: &impl ListTools,
    ) -> Admission {
        let modified = action.args != call.arguments;
        if modified {
            let mut schema = self.catalog.tool(&call.name).and_then(|t| t.input_schema);
            if schema.is_none() {
                let meta = call.meta.clone().map(|mut meta| {
                    meta.remove("progressToken");
                    Value::Object(meta)
                });
                if let Ok(tools) = upstream.list_tools(meta).await {
                    // Recorded, not filtered: the schema is what is needed here.
                    self.catalog.record(&tools, &HashSet::new());
                    schema = self.catalog.tool(&call.name).and_then(|t| t.input_schema);
                }
            }
            let problem = match &schema {
                None => Some("the server does not list this tool's input schema".to_owned()),
                Some(schema) => schema::validate(schema, &Value::Object(action.args.clone())).err(),
            };
            if let Some(problem) = problem {
                self.report(
                    &action.id,
                    false,
                    json!({"error": "modified arguments do not fit the tool's input schema", "problem": problem}),
                );
                turn.settle();
                return Admission::Answer(answer::bad_modification(action_name, &action, &problem));
            }
        }
        Admission::Run(Box::new(Run {
            arguments: action.args.clone(),
            action,
            modified,
            progress_sent,
            turn,
        }))
    }

    /// Turns the server's answer to a run call into the client's, and reports the outcome to
    /// Countersign (in the background: the client does not wait for it). `response` is the
    /// server's whole JSON-RPC response frame, or why there was none. Returns the frame
    /// for the client (without its id) and whether the gate changed it.
    pub fn finish(&self, mut run: Box<Run>, response: Result<Value, String>) -> Finished {
        run.turn.settle();
        let id = run.action.id.clone();
        match response {
            Ok(mut frame) => {
                if let Some(error) = frame.get("error") {
                    self.report(&id, false, json!({"error": error}));
                    return Finished::Unchanged(frame);
                }
                match frame.get_mut("result") {
                    Some(Value::Object(result)) => {
                        let failed = result.get("isError") == Some(&Value::Bool(true));
                        self.report(&id, !failed, json!({"is_error": failed}));
                        if run.modified {
                            answer::append_content(result, answer::modified_note(&run.action));
                            Finished::Changed(frame)
                        } else {
                            Finished::Unchanged(frame)
                        }
                    }
                    _ => {
                        self.report(&id, false, json!({"error": "malformed result"}));
                        Finished::Changed(json!({"jsonrpc": "2.0", "error": {
                            "code": INTERNAL_ERROR,
                            "message": "the MCP server answered tools/call with a malformed result",
                        }}))
                    }
                }
            }
            Err(why) => {
                self.report(&id, false, json!({"error": why}));
                Finished::Changed(json!({"jsonrpc": "2.0", "error": {
                    "code": INTERNAL_ERROR,
                    "message": format!("the MCP server did not answer tools/call: {why}"),
                }}))
            }
        }
    }

    /// The client withdrew a call that was already forwarded: whether it ran is unknown.
    pub fn abandon(&self, mut run: Box<Run>) {
        run.turn.settle();
        self.report(
            &run.action.id,
            false,
            json!({"error": "the client cancelled the call after it was forwarded; it may have run"}),
        );
    }

    fn report(&self, id: &str, succeeded: bool, detail: Value) {
        let gateway = self.gateway.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = gateway.outcome(&id, succeeded, detail).await {
                tracing::warn!(action = %id, error = %e, "could not report the outcome");
            }
        });
    }
}

/// The client's answer to a forwarded call.
pub enum Finished {
    /// The server's frame as it was: the transport may forward its original text.
    Unchanged(Value),
    /// A frame the gate wrote or changed.
    Changed(Value),
}

/// Resolves once the call is cancelled; never if its sender is gone without cancelling.
pub async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}
