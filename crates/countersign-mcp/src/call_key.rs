//! Identical calls and their idempotency keys. A call's key is a hash of the server, the tool
//! and the canonical arguments, plus a generation: a retry of a call that got "pending" sends
//! the same key and so re-attaches to the same action; once a call got its final answer
//! (a result, a rejection...), the generation moves on and the next identical call is a new
//! action. Identical calls in flight at once take turns, so that one approval runs one call.
//!
//! The first generation's key is the same in every process (`mcp:<digest>:0`), so that a
//! client that restarted the proxy still re-attaches to a call left pending; later
//! generations are random, so that a call repeated many times over many sessions costs one
//! extra round trip after a restart (the gate sees the first key's action already ran and
//! settles), not one per earlier repetition. The ledger keeps one small entry per distinct
//! call for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The digest of one call: the same server, tool and arguments give the same digest, in any
/// key order.
pub fn digest(server: &str, tool: &str, args: &Value) -> String {
    let mut text = String::new();
    canonical(args, &mut text);
    let mut hasher = Sha256::new();
    for part in [server, "\0", tool, "\0", &text] {
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with object keys sorted at every depth (RFC 8785's ordering for ASCII keys; numbers
/// as serde_json prints them).
pub fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The generations of the calls this process has seen, and the turn of each call.
#[derive(Debug, Default)]
pub struct Ledger {
    calls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<String>>>>,
}

/// A call's turn: while held, identical calls wait. `key()` is its idempotency key.
pub struct Turn {
    key: tokio::sync::OwnedMutexGuard<String>,
}

impl Ledger {
    /// Waits for the turn of the call with this digest.
    pub async fn turn(&self, digest: &str) -> Turn {
        let slot = self
            .calls
            .lock()
            .unwrap()
            .entry(digest.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(format!("mcp:{digest}:0"))))
            .clone();
        Turn {
            key: slot.lock_owned().await,
        }
    }
}

impl Turn {
    /// The idempotency key of this call in its current generation.
    pub fn key(&self) -> String {
        self.key.clone()
    }

    /// The call got its final answer: the next identical call is a new action.
    pub fn settle(&mut self) {
        let digest = self.key.split(':').nth(1).unwrap_or_default().to_owned();
        let mut random = [0u8; 12];
        let _ = getrandom::fill(&mut random);
        let nonce: String = random.iter().map(|b| format!("{b:02x}")).collect();
        *self.key = format!("mcp:{digest}:{nonce}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter_but_values_do() {
        let a = digest(
            "files",
            "write",
            &json!({"path": "a", "n": {"y": 1, "x": [2, 3]}}),
        );
        let b = digest(
            "files",
            "write",
            &json!({"n": {"x": [2, 3], "y": 1}, "path": "a"}),
        );
        let c = digest(
            "files",
            "write",
            &json!({"n": {"x": [3, 2], "y": 1}, "path": "a"}),
        );
        let d = digest(
            "other",
            "write",
            &json!({"n": {"x": [2, 3], "y": 1}, "path": "a"}),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[tokio::test]
    async fn generations_move_on_when_settled() {
        let ledger = Ledger::default();
        let turn = ledger.turn("d").await;
        let first = turn.key();
        drop(turn);
        let mut turn = ledger.turn("d").await;
        assert_eq!(turn.key(), first, "a pending call's retry re-attaches");
        turn.settle();
        let second = turn.key();
        assert_ne!(second, first);
        drop(turn);
        assert_eq!(ledger.turn("d").await.key(), second);
        assert_eq!(first, "mcp:d:0", "the same first key in every process");
    }
}
