//! More real clients, with `mcp-server-time` (a Python reference server that speaks both
//! protocol eras) behind the proxy: the Python SDK opening with `initialize` (2025-11-25)
//! and with `server/discover` (2026-07-28), the OpenAI Agents SDK with its 5 s default
//! timeout, the MCP Inspector CLI (no progress token, one call per process), and Claude
//! Code's permission-prompt tool served by `countersign mcp --permission-prompt`.

use std::process::Command;

use serde_json::{Value, json};

use crate::{
    BIN, Driver, Gateway, client_script, deps, is_error, node, proxy, python, result_text, text,
};

const POLICY: &str = r#"
version = 1

[defaults]
tier = "approve"

[[rules]]
name = "clock"
actions = ["mcp.time.get_current_time", "claude-code.Read"]
tier = "auto"

[[rules]]
name = "no force pushes"
actions = ["claude-code.Bash"]
when = "args.command.contains('--force')"
tier = "deny"
"#;

fn time_server() -> Vec<String> {
    vec![
        deps()
            .join("venv/bin/mcp-server-time")
            .display()
            .to_string(),
        "--local-timezone".into(),
        "UTC".into(),
    ]
}

fn convert() -> Value {
    json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})
}

/// The Python client through the proxy, in an era: an auto call, then a held call that runs
/// after approval, with progress on the way.
fn python_story(era: &str) {
    let gateway = Gateway::start(POLICY);
    let command = proxy("time", &["--progress-every", "1"], &time_server());
    let mut client =
        Driver::python(json!({"command": command, "env": gateway.agent_env(), "era": era}));
    let now = client.call("now", "get_current_time", json!({"timezone": "UTC"}));
    assert!(
        !is_error(&now) && result_text(&now).contains("\"timezone\": \"UTC\""),
        "{now}"
    );

    client.send(json!({"id": "c", "op": "call", "tool": "convert_time", "args": convert(), "progress": true}));
    let progress = client.expect_event("c");
    let id = gateway.wait_pending("mcp.time.convert_time");
    assert!(
        progress["message"].as_str().unwrap().contains(&id),
        "{progress}"
    );
    gateway.reviewer(&["approve", &id]);
    let converted = client.expect("c");
    assert!(!is_error(&converted), "{converted}");
    assert!(result_text(&converted).contains("21:00"), "{converted}");
}

#[test]
fn the_python_sdk_through_the_proxy_with_initialize() {
    python_story("legacy");
}

#[test]
fn the_python_sdk_through_the_proxy_with_server_discover() {
    python_story("modern");
}

#[test]
fn the_openai_agents_sdk_gets_retry_within_its_five_seconds_and_the_retry_runs() {
    let gateway = Gateway::start(POLICY);
    let command = proxy("time", &["--hold", "2"], &time_server());
    let mut agents = Driver::start(
        &python(),
        &[client_script("agents_client.py")],
        json!({"command": command, "env": gateway.agent_env()}),
    );
    let first = agents.call("1", "convert_time", convert());
    assert!(is_error(&first), "pending, not a crash: {first}");
    assert!(
        result_text(&first).contains("Retry the identical call"),
        "{first}"
    );
    let id = gateway.wait_pending("mcp.time.convert_time");
    gateway.reviewer(&["approve", &id]);
    let retried = agents.call("2", "convert_time", convert());
    assert!(!is_error(&retried), "{retried}");
    assert!(result_text(&retried).contains("21:00"), "{retried}");
    assert_eq!(gateway.outcome(&id), "succeeded");
}

#[test]
fn the_inspector_cli_gets_pending_and_a_rerun_after_approval_succeeds() {
    let gateway = Gateway::start(POLICY);
    let inspector = |hold: &str| {
        let cli =
            deps().join("node/node_modules/@modelcontextprotocol/inspector/cli/build/index.js");
        // The Inspector's parser takes everything after a `--` as the server's, options
        // included, so the proxy's own `--` travels inside a shell command.
        let gated = proxy(
            "time",
            &[
                "--hold",
                hold,
                "--server",
                &gateway.url,
                "--token",
                &gateway.agent,
            ],
            &time_server(),
        );
        let output = Command::new(node())
            .arg(cli)
            .args(["sh", "-c", &format!("exec {}", gated.join(" "))])
            .args(["--method", "tools/call", "--tool-name", "convert_time"])
            .args([
                "--tool-arg",
                "source_timezone=UTC",
                "time=12:00",
                "target_timezone=Asia/Tokyo",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let first = inspector("2");
    assert_eq!(first["isError"], true, "{first}");
    let id = gateway.wait_pending("mcp.time.convert_time");
    gateway.reviewer(&["approve", &id]);
    let rerun = inspector("2");
    assert_eq!(rerun["isError"], false, "{rerun}");
    assert_eq!(
        rerun["structuredContent"]["target"]["timezone"],
        "Asia/Tokyo"
    );
}

#[test]
fn the_permission_prompt_tool_answers_claude_code() {
    let gateway = Gateway::start(POLICY);
    let command = vec![
        BIN.to_owned(),
        "mcp".into(),
        "--permission-prompt".into(),
        "--progress-every".into(),
        "1".into(),
    ];
    let mut claude = Driver::typescript(json!({"command": command, "env": gateway.agent_env()}));
    assert_eq!(claude.tools(), ["approve"]);
    let ask = |tool: &str, input: Value, id: &str| {
        json!({"id": id, "op": "call", "tool": "approve", "progress": true, "resetOnProgress": true,
               "args": {"tool_name": tool, "input": input, "tool_use_id": format!("toolu_{id}")}})
    };
    let behaviour =
        |answer: &Value| -> Value { serde_json::from_str(&result_text(answer)).unwrap() };

    claude.send(ask("Read", json!({"file_path": "/etc/hosts"}), "read"));
    let read = behaviour(&claude.expect("read"));
    assert_eq!(
        read,
        json!({"behavior": "allow", "updatedInput": {"file_path": "/etc/hosts"}})
    );

    claude.send(ask("Bash", json!({"command": "git push --force"}), "push"));
    let push = behaviour(&claude.expect("push"));
    assert_eq!(push["behavior"], "deny", "{push}");
    assert!(
        push["message"]
            .as_str()
            .unwrap()
            .contains("no force pushes"),
        "{push}"
    );

    claude.send(ask(
        "Edit",
        json!({"file_path": "/src/a.rs", "old_string": "a", "new_string": "b"}),
        "edit",
    ));
    claude.expect_event("edit");
    let id = gateway.wait_pending("claude-code.Edit");
    let changed =
        json!({"file_path": "/src/a.rs", "old_string": "a", "new_string": "c"}).to_string();
    gateway.reviewer(&["modify", &id, "--args", &changed]);
    let edit = behaviour(&claude.expect("edit"));
    assert_eq!(edit["behavior"], "allow");
    assert_eq!(edit["updatedInput"]["new_string"], "c", "{edit}");

    claude
        .send(json!({"id": "bad", "op": "call", "tool": "approve", "args": {"tool_name": "Bash"}}));
    let bad = behaviour(&claude.expect("bad"));
    assert_eq!(
        bad["behavior"], "deny",
        "a malformed request is a deny: {bad}"
    );
}

#[test]
fn the_person_at_the_client_answers_in_a_form() {
    let gateway = Gateway::start(POLICY);
    for decision in ["approve", "reject"] {
        let command = proxy("time", &["--user-token", &gateway.user], &time_server());
        let mut client = Driver::python(
            json!({"command": command, "env": gateway.agent_env(), "elicit": decision}),
        );
        client.send(json!({"id": "c", "op": "call", "tool": "convert_time", "args": convert()}));
        let form = client.expect_event("elicitation");
        assert!(
            form["message"]
                .as_str()
                .unwrap()
                .contains("mcp.time.convert_time"),
            "{form}"
        );
        let answer = client.expect("c");
        if decision == "approve" {
            assert!(
                !is_error(&answer) && result_text(&answer).contains("21:00"),
                "{answer}"
            );
        } else {
            assert!(is_error(&answer), "{answer}");
            let text = result_text(&answer);
            assert!(
                text.contains("ursula rejected") && text.contains("checked in the client"),
                "{text}"
            );
        }
    }
}
