//! `countersign hook claude-code` on recorded `PreToolUse` inputs (Bash, Edit, an MCP
//! tool), each answered for allow, deny, approve-after-wait and gateway-down, plus the
//! budget running out (`ask`) and inputs it cannot read (exit 2, which blocks the tool).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::{BIN, Gateway, text};

const INPUTS: [(&str, &str); 3] = [
    ("bash.json", "claude-code.Bash"),
    ("edit.json", "claude-code.Edit"),
    ("mcp_tool.json", "claude-code.mcp__files__write_file"),
];

fn policy(tier: &str) -> String {
    format!("version = 1\n[defaults]\ntier = \"{tier}\"\n")
}

fn input(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mcp/hook_inputs")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn start_hook(url: &str, token: &str, wait: &str, stdin: &str) -> std::process::Child {
    let mut child = Command::new(BIN)
        .args(["hook", "claude-code", "--wait", wait])
        .env("COUNTERSIGN_URL", url)
        .env("COUNTERSIGN_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child
}

/// The decision and its reason, from a hook that exited 0.
fn decision(output: &Output) -> (String, String) {
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    let specific = &value["hookSpecificOutput"];
    assert_eq!(specific["hookEventName"], "PreToolUse");
    (
        specific["permissionDecision"].as_str().unwrap().to_owned(),
        specific["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[test]
fn recorded_inputs_are_answered_for_each_verdict() {
    let allow = Gateway::start(&policy("auto"));
    let deny = Gateway::start(&policy("deny"));
    let approve = Gateway::start(&policy("approve"));
    for (file, action) in INPUTS {
        let stdin = input(file);
        let run = |gateway: &Gateway| {
            start_hook(&gateway.url, &gateway.agent, "60", &stdin)
                .wait_with_output()
                .unwrap()
        };
        assert_eq!(
            decision(&run(&allow)).0,
            "allow",
            "{file} under an auto policy"
        );

        let (verdict, reason) = decision(&run(&deny));
        assert_eq!(verdict, "deny", "{file} under a deny policy");
        assert!(reason.contains("the policy denies"), "{reason}");

        let waiting = start_hook(&approve.url, &approve.agent, "60", &stdin);
        let id = approve.wait_pending(action);
        approve.reviewer(&["approve", &id]);
        let (verdict, reason) = decision(&waiting.wait_with_output().unwrap());
        assert_eq!(verdict, "allow", "{file} approved while the hook waited");
        assert!(reason.contains(&id), "{reason}");

        let down = start_hook("http://127.0.0.1:9", "cs_x", "60", &stdin)
            .wait_with_output()
            .unwrap();
        let (verdict, reason) = decision(&down);
        assert_eq!(verdict, "deny", "{file} with the gateway down");
        assert!(reason.contains("cannot be reached"), "{reason}");
    }
}

#[test]
fn a_modified_input_is_returned_and_an_unanswered_one_asks_the_user() {
    let gateway = Gateway::start(&policy("approve"));
    let waiting = start_hook(&gateway.url, &gateway.agent, "60", &input("bash.json"));
    let id = gateway.wait_pending("claude-code.Bash");
    let safer = r#"{"command": "cargo test -p shop", "description": "Run the test suite"}"#;
    gateway.reviewer(&["modify", &id, "--args", safer]);
    let output = waiting.wait_with_output().unwrap();
    let value: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["hookSpecificOutput"]["updatedInput"]["command"],
        "cargo test -p shop"
    );

    let (verdict, reason) = decision(
        &start_hook(&gateway.url, &gateway.agent, "1", &input("edit.json"))
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(verdict, "ask", "{reason}");
    let id = reason.split_whitespace().nth(2).unwrap();
    assert_eq!(
        gateway.show(id)["status"],
        "cancelled",
        "withdrawn: {reason}"
    );
}

#[test]
fn unreadable_hook_input_blocks_the_tool() {
    for (stdin, expected) in [
        ("", "not JSON"),
        ("{\"hook_event_name\": \"PreToolUse\"}", "no \"tool_name\""),
        (
            "{\"hook_event_name\": \"Stop\", \"tool_name\": \"Bash\"}",
            "answers PreToolUse events",
        ),
    ] {
        let output = start_hook("http://127.0.0.1:9", "cs_x", "1", stdin)
            .wait_with_output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "exit 2 blocks the tool");
        assert!(
            text(&output.stderr).contains(expected),
            "{}",
            text(&output.stderr)
        );
        assert!(output.stdout.is_empty());
    }
}
