//! What the gate knows about the upstream server's tools: each tool's input schema and
//! annotations from the last `tools/list`, which tools the policy denies (hidden), and the
//! hints a submission carries.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Map, Value, json};

/// MCP's defaults for an unannotated tool (spec `ToolAnnotations`): not read-only,
/// destructive, not idempotent, open-world. An untrusted server's annotations are replaced
/// by these, so that whatever it claims never relaxes a policy.
const PESSIMISTIC: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: true,
};

/// The four hints of SPEC §2, as sent in a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Hints {
    /// The hints for a tool: its annotations when the server is trusted, MCP's
    /// pessimistic defaults for whatever they leave out, and nothing but the defaults when it
    /// is not trusted. A hint that is not a boolean counts as absent.
    pub fn of(annotations: Option<&Value>, trusted: bool) -> Hints {
        let Some(annotations) = annotations.filter(|_| trusted) else {
            return PESSIMISTIC;
        };
        let flag = |key: &str, default: bool| {
            annotations
                .get(key)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        Hints {
            read_only: flag("readOnlyHint", PESSIMISTIC.read_only),
            destructive: flag("destructiveHint", PESSIMISTIC.destructive),
            idempotent: flag("idempotentHint", PESSIMISTIC.idempotent),
            open_world: flag("openWorldHint", PESSIMISTIC.open_world),
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "read_only": self.read_only,
            "destructive": self.destructive,
            "idempotent": self.idempotent,
            "open_world": self.open_world,
        })
    }
}

/// One tool as last listed.
#[derive(Clone, Debug, Default)]
pub struct Tool {
    pub input_schema: Option<Value>,
    pub annotations: Option<Value>,
}

/// The tools of one upstream server, shared by every call of a session.
#[derive(Debug, Default)]
pub struct Catalog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tools: HashMap<String, Tool>,
    hidden: HashSet<String>,
}

impl Catalog {
    /// Records the tools of one `tools/list` page; `hidden` are those the policy denies.
    pub fn record(&self, tools: &[Value], hidden: &HashSet<String>) {
        let mut inner = self.inner.lock().unwrap();
        for tool in tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            inner.tools.insert(
                name.to_owned(),
                Tool {
                    input_schema: tool.get("inputSchema").cloned(),
                    annotations: tool.get("annotations").cloned(),
                },
            );
            if hidden.contains(name) {
                inner.hidden.insert(name.to_owned());
            } else {
                inner.hidden.remove(name);
            }
        }
    }

    /// Forgets everything (the server said its tools changed).
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.tools.clear();
        inner.hidden.clear();
    }

    pub fn tool(&self, name: &str) -> Option<Tool> {
        self.inner.lock().unwrap().tools.get(name).cloned()
    }

    pub fn is_hidden(&self, name: &str) -> bool {
        self.inner.lock().unwrap().hidden.contains(name)
    }
}

/// The context a submission carries about the tool, for reviewers. It is the same for an
/// identical call (an idempotent retry must send the same body).
pub fn context(server: &str, tool: &str, annotations: Option<&Value>, trusted: bool) -> Value {
    let mut mcp = Map::new();
    mcp.insert("server".into(), json!(server));
    mcp.insert("tool".into(), json!(tool));
    mcp.insert("trusted".into(), json!(trusted));
    if let Some(annotations) = annotations {
        mcp.insert("annotations".into(), annotations.clone());
    }
    json!({ "mcp": mcp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_trusted_only_from_trusted_servers() {
        let read_only = json!({"readOnlyHint": true, "openWorldHint": false});
        let trusted = Hints::of(Some(&read_only), true);
        assert_eq!(
            trusted,
            Hints {
                read_only: true,
                destructive: true,
                idempotent: false,
                open_world: false
            }
        );
        assert_eq!(Hints::of(Some(&read_only), false), PESSIMISTIC);
        assert_eq!(Hints::of(None, true), PESSIMISTIC);
        let odd = json!({"readOnlyHint": "yes"});
        assert_eq!(Hints::of(Some(&odd), true), PESSIMISTIC);
    }
}
