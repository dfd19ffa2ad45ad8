//! The issue's stories with the TypeScript SDK client and `server-filesystem` behind the
//! stdio proxy: auto tools pass unchanged, held calls run after approval with the real
//! result, rejections and expiries are error results that say why, a short-timeout client
//! gets "retry" and the retry runs exactly once, modified arguments reach the server (or do
//! not, when they do not fit the schema), denied tools are hidden, a cancellation withdraws,
//! hints count only from trusted servers, and with the gateway down nothing runs.

use serde_json::{Value, json};

use crate::{Driver, Gateway, TempDir, filesystem_server, is_error, proxy, result_text};

const POLICY: &str = r#"
version = 1

[defaults]
tier = "approve"

[[rules]]
name = "reads"
actions = ["mcp.files.read_*", "mcp.files.list_*", "mcp.files.get_file_info"]
tier = "auto"

[[rules]]
name = "no moves"
actions = ["mcp.files.move_file"]
tier = "deny"

[[rules]]
name = "quick or not at all"
actions = ["mcp.files.create_directory"]
tier = "approve"
sla = "1s"
on_timeout = "reject"

[[rules]]
name = "read-only by the server's word"
actions = ["mcp.hinted.*", "mcp.plain.*"]
when = "hints.read_only"
tier = "auto"
"#;

/// A gateway with the policy, and a directory of files for the server to serve.
fn setup() -> (Gateway, TempDir) {
    let gateway = Gateway::start(POLICY);
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path("files")).unwrap();
    std::fs::write(dir.path("files/a.txt"), "x\n").unwrap();
    (gateway, dir)
}

/// The TypeScript client, launching the proxy in front of server-filesystem.
fn client(gateway: &Gateway, dir: &TempDir, name: &str, flags: &[&str]) -> Driver {
    client_env(gateway.agent_env(), dir, name, flags)
}

fn client_env(env: Value, dir: &TempDir, name: &str, flags: &[&str]) -> Driver {
    let command = proxy(name, flags, &filesystem_server(&dir.path("files")));
    Driver::typescript(json!({"command": command, "env": env}))
}

#[test]
fn an_auto_tool_passes_through_unchanged() {
    let (gateway, dir) = setup();
    let mut direct = Driver::typescript(json!({"command": filesystem_server(&dir.path("files"))}));
    let mut gated = client(&gateway, &dir, "files", &[]);
    let args = json!({"path": dir.path("files/a.txt")});
    let through = gated.call("r", "read_text_file", args.clone());
    assert_eq!(through, direct.call("r", "read_text_file", args.clone()));
    assert_eq!(result_text(&through), "x\n");

    let mut listed = direct.tools();
    listed.retain(|tool| tool != "move_file");
    assert_eq!(
        gated.tools(),
        listed,
        "everything but the denied tool, in order"
    );

    // The same call again, and again in a new proxy process: each is a new action that runs.
    for round in ["again", "and again"] {
        assert_eq!(
            result_text(&gated.call(round, "read_text_file", args.clone())),
            "x\n"
        );
    }
    drop(gated);
    let mut restarted = client(&gateway, &dir, "files", &[]);
    for round in ["after a restart", "twice"] {
        assert_eq!(
            result_text(&restarted.call(round, "read_text_file", args.clone())),
            "x\n"
        );
    }
}

#[test]
fn a_denied_tool_is_hidden_and_refused_as_unknown() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &[]);
    assert!(!gated.tools().contains(&"move_file".to_owned()));
    let moved = gated.call(
        "m",
        "move_file",
        json!({"source": dir.path("files/a.txt"), "destination": dir.path("files/b.txt")}),
    );
    assert_eq!(moved["code"], -32602, "{moved}");
    assert!(
        moved["error"]
            .as_str()
            .unwrap()
            .contains("Unknown tool: move_file"),
        "{moved}"
    );
    assert!(std::path::Path::new(&dir.path("files/a.txt")).exists());
}

#[test]
fn a_held_call_keeps_the_client_alive_and_runs_after_approval() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &["--progress-every", "1"]);
    let target = dir.path("files/new.txt");
    gated.send(json!({
        "id": "w", "op": "call", "tool": "write_file",
        "args": {"path": target, "content": "approved\n"},
        "progress": true, "resetOnProgress": true, "timeoutMs": 5000,
    }));
    let progress = gated.expect_event("w");
    let id = gateway.wait_pending("mcp.files.write_file");
    assert!(
        progress["message"].as_str().unwrap().contains(&id),
        "the progress message names the action: {progress}"
    );
    // Two more notifications: the client's 5 s timeout is kept alive by them.
    let second = gated.expect_event("w");
    assert!(second["progress"].as_f64() > progress["progress"].as_f64());
    assert!(
        !std::path::Path::new(&target).exists(),
        "nothing runs before approval"
    );
    gateway.reviewer(&["approve", &id, "--comment", "fine"]);
    let answer = gated.expect("w");
    assert!(!is_error(&answer), "{answer}");
    assert!(
        result_text(&answer).contains("Successfully wrote"),
        "{answer}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "approved\n");
    assert_eq!(gateway.outcome(&id), "succeeded");
}

#[test]
fn a_rejection_is_an_error_result_with_who_and_why() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &[]);
    let target = dir.path("files/no.txt");
    gated.send(json!({
        "id": "w", "op": "call", "tool": "write_file", "args": {"path": target, "content": "no"},
    }));
    let id = gateway.wait_pending("mcp.files.write_file");
    gateway.reviewer(&["reject", &id, "--reason", "not in this sprint"]);
    let answer = gated.expect("w");
    assert!(is_error(&answer), "{answer}");
    let text = result_text(&answer);
    assert!(
        text.contains("rita rejected") && text.contains("not in this sprint"),
        "{text}"
    );
    assert!(!std::path::Path::new(&target).exists());
    // The session goes on.
    assert!(!gated.tools().is_empty());
}

#[test]
fn a_short_timeout_client_gets_retry_and_the_retry_runs_exactly_once() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &["--hold", "2"]);
    let file = dir.path("files/a.txt");
    let edit = json!({"path": file, "edits": [{"oldText": "x", "newText": "xy"}]});
    let step = |id: &str| json!({"id": id, "op": "call", "tool": "edit_file", "args": edit, "timeoutMs": 5000});

    gated.send(step("first"));
    let first = gated.expect("first");
    assert!(is_error(&first), "{first}");
    assert!(
        result_text(&first).contains("Retry the identical call"),
        "{first}"
    );
    let pending = gateway.pending("mcp.files.edit_file");
    assert_eq!(pending.len(), 1, "one action, still pending: {pending:?}");
    let id = pending[0]["id"].as_str().unwrap().to_owned();

    gated.send(step("again"));
    let again = gated.expect("again");
    assert!(is_error(&again), "still pending: {again}");
    assert_eq!(
        gateway.pending("mcp.files.edit_file").len(),
        1,
        "the retry re-attached"
    );

    gateway.reviewer(&["approve", &id]);
    gated.send(step("after"));
    let after = gated.expect("after");
    assert!(!is_error(&after), "{after}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "xy\n",
        "edited once"
    );

    // The same call once more is a new request: a new approval, not a second run of the old.
    gated.send(step("later"));
    let later = gated.expect("later");
    assert!(is_error(&later), "{later}");
    let pending = gateway.pending("mcp.files.edit_file");
    assert_eq!(pending.len(), 1);
    assert_ne!(pending[0]["id"], id.as_str());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "xy\n",
        "still edited once"
    );
}

#[test]
fn modified_arguments_reach_the_server_and_the_model_is_told() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &[]);
    let asked = dir.path("files/asked.txt");
    let changed = dir.path("files/changed.txt");
    gated.send(json!({
        "id": "w", "op": "call", "tool": "write_file", "args": {"path": asked, "content": "v1"},
    }));
    let id = gateway.wait_pending("mcp.files.write_file");
    let modified = json!({"path": changed, "content": "v2"}).to_string();
    gateway.reviewer(&[
        "modify",
        &id,
        "--args",
        &modified,
        "--comment",
        "other file",
    ]);
    let answer = gated.expect("w");
    assert!(!is_error(&answer), "{answer}");
    let blocks = answer["result"]["content"].as_array().unwrap();
    let note = blocks.last().unwrap()["text"].as_str().unwrap();
    assert!(note.contains("rita changed the arguments"), "{note}");
    assert_eq!(std::fs::read_to_string(&changed).unwrap(), "v2");
    assert!(!std::path::Path::new(&asked).exists());
}

#[test]
fn modified_arguments_that_do_not_fit_the_schema_never_run() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &[]);
    let target = dir.path("files/w.txt");
    // Listed first, so the proxy has the schema; the modification drops a required field.
    gated.tools();
    gated.send(json!({
        "id": "w", "op": "call", "tool": "write_file", "args": {"path": target, "content": "v1"},
    }));
    let id = gateway.wait_pending("mcp.files.write_file");
    let modified = json!({"path": target}).to_string();
    gateway.reviewer(&["modify", &id, "--args", &modified]);
    let answer = gated.expect("w");
    assert!(is_error(&answer), "{answer}");
    assert!(
        result_text(&answer).contains("\"content\" is required"),
        "{answer}"
    );
    assert!(!std::path::Path::new(&target).exists());
    assert_eq!(gateway.outcome(&id), "failed");
}

#[test]
fn with_the_gateway_down_nothing_runs() {
    let (_gateway, dir) = setup();
    // Port 9 (discard) on loopback: nothing listens there, connections are refused.
    let env = json!({"COUNTERSIGN_URL": "http://127.0.0.1:9", "COUNTERSIGN_TOKEN": "cs_nothing"});
    let mut gated = client_env(env, &dir, "files", &[]);
    gated.send(json!({"id": "list", "op": "list"}));
    let listed = gated.expect("list");
    assert!(
        listed["error"]
            .as_str()
            .unwrap()
            .contains("cannot ask Countersign"),
        "{listed}"
    );
    let target = dir.path("files/w.txt");
    for (tool, args) in [
        ("write_file", json!({"path": target, "content": "v"})),
        ("read_text_file", json!({"path": dir.path("files/a.txt")})),
    ] {
        let answer = gated.call(tool, tool, args);
        assert!(is_error(&answer), "{answer}");
        assert!(
            result_text(&answer).contains("cannot be reached"),
            "{answer}"
        );
    }
    assert!(!std::path::Path::new(&target).exists());
}

#[test]
fn a_client_cancellation_withdraws_the_pending_action() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &[]);
    let target = dir.path("files/w.txt");
    // The TypeScript SDK gives up after 2 s and sends notifications/cancelled.
    gated.send(json!({
        "id": "w", "op": "call", "tool": "write_file",
        "args": {"path": target, "content": "v"}, "timeoutMs": 2000,
    }));
    let id = gateway.wait_pending("mcp.files.write_file");
    let answer = gated.expect("w");
    assert_eq!(answer["code"], -32001, "the client timed out: {answer}");
    let start = std::time::Instant::now();
    while gateway.show(&id)["status"] != "cancelled" {
        assert!(
            start.elapsed() < crate::PATIENCE,
            "the action was never withdrawn"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!std::path::Path::new(&target).exists());
}

#[test]
fn hints_count_only_from_trusted_servers() {
    let (gateway, dir) = setup();
    let args = json!({"path": dir.path("files/a.txt")});
    let mut trusted = client(&gateway, &dir, "hinted", &["--trusted"]);
    trusted.tools();
    let answer = trusted.call("r", "read_text_file", args.clone());
    assert_eq!(
        result_text(&answer),
        "x\n",
        "readOnlyHint from a trusted server: auto"
    );

    let mut untrusted = client(&gateway, &dir, "plain", &["--hold", "1"]);
    untrusted.tools();
    let answer = untrusted.call("r", "read_text_file", args);
    assert!(
        is_error(&answer),
        "the same claim from an untrusted server relaxes nothing: {answer}"
    );
    assert_eq!(gateway.pending("mcp.plain.read_text_file").len(), 1);
}

#[test]
fn malformed_frames_get_precise_errors_and_never_reach_the_server() {
    use std::io::{BufRead, BufReader, Write};
    let (gateway, dir) = setup();
    let command = proxy("files", &[], &filesystem_server(&dir.path("files")));
    let mut child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("COUNTERSIGN_URL", &gateway.url)
        .env("COUNTERSIGN_TOKEN", &gateway.agent)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let target = dir.path("files/smuggled.txt");
    let write = json!({"name": "write_file", "arguments": {"path": target, "content": "x"}});
    let cases = [
        ("not json".to_owned(), Value::Null, -32700),
        (
            json!([{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": write}]).to_string(),
            Value::Null,
            -32600,
        ),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}).to_string(), json!(1), -32602),
        (
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "write_file", "arguments": "x"}}).to_string(),
            json!(2),
            -32602,
        ),
        (json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call"}).to_string(), json!(3), -32602),
        (json!({"jsonrpc": "2.0", "id": null, "method": "tools/call", "params": write}).to_string(), Value::Null, -32600),
        (json!({"jsonrpc": "1.0", "id": 4, "method": "tools/call", "params": write}).to_string(), json!(4), -32600),
    ];
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for (line, id, code) in cases {
        writeln!(stdin, "{line}").unwrap();
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["id"], id, "{line}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{line}: {answer}");
    }
    drop(stdin);
    child.wait().unwrap();
    assert!(
        !std::path::Path::new(&target).exists(),
        "nothing reached the server"
    );
}

#[test]
fn bad_flags_are_refused_with_what_to_do() {
    let cases: [(&[&str], &str); 5] = [
        (&["mcp"], "--name"),
        (
            &["mcp", "--name", "a b", "--", "true"],
            "must be 1 to 100 letters",
        ),
        (&["mcp", "--name", "files"], "no server to gate"),
        (
            &["mcp", "--name", "files", "--hold", "0", "--", "true"],
            "--hold",
        ),
        (
            &[
                "mcp",
                "--name",
                "files",
                "--upstream",
                "ftp://x",
                "--listen",
                "127.0.0.1:0",
            ],
            "is not an http(s) URL",
        ),
    ];
    for (args, expected) in cases {
        let output = std::process::Command::new(crate::BIN)
            .args(args)
            .env("COUNTERSIGN_TOKEN", "cs_x")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = crate::text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unanswered_call_expires_and_the_model_is_told_so() {
    let (gateway, dir) = setup();
    let mut gated = client(&gateway, &dir, "files", &[]);
    let target = dir.path("files/sub");
    // The rule's review deadline is 1 s and nobody answers: the SLA rejects it as expired.
    let answer = gated.call("d", "create_directory", json!({"path": target}));
    assert!(is_error(&answer), "{answer}");
    assert!(
        result_text(&answer).contains("expired unanswered"),
        "{answer}"
    );
    assert!(!std::path::Path::new(&target).exists());
}
