//! The Streamable HTTP proxy (`countersign mcp --upstream URL --listen ADDR`) in front of
//! `server-everything`'s HTTP transport: the official conformance suite gives the same
//! result, check by check, through the proxy as against the server directly; and the
//! TypeScript SDK over HTTP sees a held call's progress, its real result after approval, a
//! rejection as an HTTP 200 error result, and a denied tool hidden.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde_json::{Value, json};

use crate::{
    BIN, Driver, Gateway, PATIENCE, TempDir, client_script, deps, is_error, node, node_bin,
    result_text,
};

/// A child process that reports its address on stderr, killed on drop.
struct Listening {
    child: Child,
    url: String,
}

impl Listening {
    /// Starts `command` and waits for a stderr line containing `marker`, followed by the
    /// address.
    fn start(mut command: Command, marker: &'static str, path: &str) -> Listening {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(marker).nth(1) {
                    let address = rest.trim().trim_start_matches("http://");
                    let address = address.split('/').next().unwrap_or("").to_owned();
                    let _ = sender.send(address);
                }
            }
        });
        let address = receiver
            .recv_timeout(PATIENCE)
            .expect("the process reports its address");
        Listening {
            child,
            url: format!("http://{address}{path}"),
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// server-everything's Streamable HTTP transport, bound to loopback by the shim.
fn everything() -> Listening {
    let mut command = Command::new(node());
    command
        .arg("--import")
        .arg(client_script("loopback.ts"))
        .arg(deps().join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
        .arg("streamableHttp")
        .env("PORT", "0");
    Listening::start(command, "loopback: listening on ", "/mcp")
}

/// A server on the Python SDK (both eras on one endpoint), at a free loopback port.
fn python_server() -> Listening {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(crate::python())
        .arg(client_script("py_http_server.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Listening {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
    };
    // uvicorn says nothing we read on a pipe: poll the port until it listens, bounded.
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < PATIENCE,
            "the Python server never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

/// The proxy in front of `upstream`.
fn gate(gateway: &Gateway, upstream: &str, flags: &[&str]) -> Listening {
    gate_named(gateway, "everything", upstream, flags)
}

fn gate_named(gateway: &Gateway, name: &str, upstream: &str, flags: &[&str]) -> Listening {
    let mut command = Command::new(BIN);
    command
        .args([
            "mcp",
            "--name",
            name,
            "--upstream",
            upstream,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(flags)
        .env("COUNTERSIGN_URL", &gateway.url)
        .env("COUNTERSIGN_TOKEN", &gateway.agent);
    Listening::start(command, " at ", "/mcp")
}

/// Runs the conformance suite against `url`: scenario → (check id → status).
fn conformance(url: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let out = TempDir::new();
    let status = Command::new(node())
        .arg(node_bin("conformance"))
        .args(["server", "--url", url, "-o", &out.path("results")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    // The suite exits non-zero when any check fails; server-everything fails some (it is
    // not the suite's reference server): what matters is the same result both ways.
    let _ = status;
    let mut results = BTreeMap::new();
    for entry in std::fs::read_dir(out.path("results")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // "server-ping-2026-11-30T07-19-35-306Z" → "server-ping"
        let scenario = name.split("-20").next().unwrap().to_owned();
        let checks: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checks.json")).unwrap())
                .unwrap();
        let statuses = results.entry(scenario).or_insert_with(BTreeMap::new);
        for check in checks {
            let id = check["id"].as_str().unwrap().to_owned();
            let status = check["status"].as_str().unwrap().to_owned();
            // A scenario may repeat a check id; keep every status, in order.
            let slot: &mut String = statuses.entry(id).or_default();
            if !slot.is_empty() {
                slot.push(',');
            }
            slot.push_str(&status);
        }
    }
    results
}

#[test]
fn the_conformance_suite_cannot_tell_the_proxy_from_the_server() {
    let gateway = Gateway::start("version = 1\n[defaults]\ntier = \"auto\"\n");
    let server = everything();
    let proxied = gate(&gateway, &server.url, &["--trusted"]);
    let direct = conformance(&server.url);
    let through = conformance(&proxied.url);
    let checks: usize = direct.values().map(BTreeMap::len).sum();
    assert!(
        direct.len() >= 25 && checks >= 25,
        "the suite ran: {direct:#?}"
    );
    assert_eq!(
        through, direct,
        "every scenario and check, the same through the proxy"
    );
}

const POLICY: &str = r#"
version = 1

[defaults]
tier = "auto"

[[rules]]
name = "sums need a person"
actions = ["mcp.everything.get-sum"]
tier = "approve"

[[rules]]
name = "no environment"
actions = ["mcp.everything.get-env"]
tier = "deny"
"#;

#[test]
fn held_calls_over_streamable_http() {
    let gateway = Gateway::start(POLICY);
    let server = everything();
    let proxied = gate(&gateway, &server.url, &["--progress-every", "1"]);
    let mut client = Driver::typescript(json!({"url": proxied.url}));

    let tools = client.tools();
    assert!(
        tools.contains(&"echo".to_owned()) && !tools.contains(&"get-env".to_owned()),
        "{tools:?}"
    );
    let echo = client.call("e", "echo", json!({"message": "hi"}));
    assert_eq!(result_text(&echo), "Echo: hi");

    client.send(
        json!({"id": "s", "op": "call", "tool": "get-sum", "args": {"a": 2, "b": 3},
                       "progress": true, "resetOnProgress": true, "timeoutMs": 5000}),
    );
    let progress = client.expect_event("s");
    let id = gateway.wait_pending("mcp.everything.get-sum");
    assert!(
        progress["message"].as_str().unwrap().contains(&id),
        "{progress}"
    );
    client.expect_event("s");
    gateway.reviewer(&["modify", &id, "--args", r#"{"a": 2, "b": 40}"#]);
    let sum = client.expect("s");
    assert!(!is_error(&sum), "{sum}");
    assert!(
        result_text(&sum).contains("42"),
        "the modified arguments ran: {sum}"
    );

    client.send(json!({"id": "r", "op": "call", "tool": "get-sum", "args": {"a": 1, "b": 1}}));
    let id = gateway.wait_pending("mcp.everything.get-sum");
    gateway.reviewer(&["reject", &id, "--reason", "no arithmetic today"]);
    let rejected = client.expect("r");
    assert!(
        is_error(&rejected) && result_text(&rejected).contains("no arithmetic today"),
        "{rejected}"
    );

    // The SDK gives up after 2 s and posts notifications/cancelled: the action is withdrawn.
    client.send(json!({"id": "c", "op": "call", "tool": "get-sum", "args": {"a": 5, "b": 5}, "timeoutMs": 2000}));
    let id = gateway.wait_pending("mcp.everything.get-sum");
    assert_eq!(client.expect("c")["code"], -32001);
    let start = std::time::Instant::now();
    while gateway.show(&id)["status"] != "cancelled" {
        assert!(start.elapsed() < PATIENCE, "the action was never withdrawn");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_python_sdk_over_streamable_http_in_both_eras() {
    let policy = "version = 1\n[defaults]\ntier = \"auto\"\n[[rules]]\nname = \"sums\"\nactions = [\"mcp.py.add\"]\ntier = \"approve\"\n";
    let gateway = Gateway::start(policy);
    let server = python_server();
    let proxied = gate_named(&gateway, "py", &server.url, &["--progress-every", "1"]);
    for era in ["legacy", "modern"] {
        let mut client = Driver::python(json!({"url": proxied.url, "era": era}));
        let shout = client.call("s", "shout", json!({"text": "hi"}));
        assert_eq!(result_text(&shout), "HI", "{era}: {shout}");

        client.send(json!({"id": "a", "op": "call", "tool": "add", "args": {"a": 2, "b": 3}, "progress": true}));
        let progress = client.expect_event("a");
        let id = gateway.wait_pending("mcp.py.add");
        assert!(
            progress["message"].as_str().unwrap().contains(&id),
            "{era}: {progress}"
        );
        gateway.reviewer(&["modify", &id, "--args", r#"{"a": 2, "b": 40}"#]);
        let sum = client.expect("a");
        assert!(!is_error(&sum), "{era}: {sum}");
        assert_eq!(
            result_text(&sum),
            "2 + 40 = 42",
            "{era}: the reviewer's arguments ran"
        );
    }
}
