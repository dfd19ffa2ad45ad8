//! `countersign stats` and `countersign export` against a real server: the table, `--by
//! reviewer` with its rubber-stamp warning, `--json`, export lines that parse, who may
//! export, bad flags refused with a message; and an export far larger than the memory it
//! may take, streamed by the server within a bound.

use std::io::Read as _;
use std::process::{Command, Stdio};

use chrono::{TimeDelta, Utc};
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_core::{ActionName, AgentName, Policy, ProposedAction};
use countersign_store::{Actor, NewAction};
use serde_json::{Value, json};

use super::{BIN, Server, bootstrap_admin, db, json, scratch, stderr, stdout};

/// Submits `body` as `agent` and returns the id.
fn submit(server: &Server, agent: &str, action: &str, args: &str) -> String {
    let output = server.run(
        agent,
        &[
            "submit",
            "--action",
            action,
            "--args",
            args,
            "--reasoning",
            "a customer asked",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    json(&output)["id"].as_str().unwrap().to_owned()
}

#[test]
fn stats_and_export_on_the_command_line() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    // Every approval here comes within seconds: at these thresholds, a rubber stamp.
    std::fs::write(
        dir.path().join("stats.toml"),
        "[stats]\nrubber_stamp_min_decisions = 2\nfast_approval_seconds = 60\n",
    )
    .unwrap();
    let server = Server::start_command(dir.path(), Command::new(BIN), &["--config", "stats.toml"]);
    let agent = server.token(
        &admin,
        &[
            "--role",
            "agent",
            "--name",
            "support-bot",
            "--owner",
            "olivia",
        ],
    );
    let rita = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);
    let sam = server.token(&admin, &["--role", "reviewer", "--name", "sam"]);
    for n in 0..2 {
        let id = submit(
            &server,
            &agent,
            "refund.create",
            &format!(r#"{{"n": {n}}}"#),
        );
        let approved = server.run(&rita, &["approve", &id]);
        assert_eq!(approved.status.code(), Some(0), "{}", stderr(&approved));
    }
    let id = submit(&server, &agent, "refund.create", r#"{"amount": 2500}"#);
    let modified = server.run(
        &sam,
        &[
            "modify",
            &id,
            "--args",
            r#"{"amount": 250}"#,
            "--comment",
            "one item",
        ],
    );
    assert_eq!(modified.status.code(), Some(0), "{}", stderr(&modified));
    let id = submit(
        &server,
        &agent,
        "email.send",
        r#"{"to": "all@example.com"}"#,
    );
    let rejected = server.run(&sam, &["reject", &id, "--reason", "not to everyone"]);
    assert_eq!(rejected.status.code(), Some(0), "{}", stderr(&rejected));
    submit(&server, &agent, "order.get", "{}");

    // The table: a row per action and one for everything.
    let table = server.run(&rita, &["stats"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "all actions, by action");
    assert!(lines[1].starts_with("ACTION         TOTAL  APPROVED  MODIFIED  REJECTED  EXPIRED  PENDING  APPROVE%  REJECT%  MODIFY%  TIMEOUT%  P50"), "{text}");
    let row = |name: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        line.split_whitespace()
            .take(11)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        row("email.send"),
        [
            "email.send",
            "1",
            "0",
            "0",
            "1",
            "0",
            "0",
            "0%",
            "100%",
            "0%",
            "0%"
        ]
    );
    assert_eq!(
        row("order.get"),
        [
            "order.get",
            "1",
            "0",
            "0",
            "0",
            "0",
            "0",
            "-",
            "-",
            "-",
            "-"
        ]
    );
    assert_eq!(
        row("refund.create"),
        [
            "refund.create",
            "3",
            "3",
            "1",
            "0",
            "0",
            "0",
            "100%",
            "0%",
            "33%",
            "0%"
        ]
    );
    assert_eq!(
        row("(all)"),
        [
            "(all)", "5", "3", "1", "1", "0", "0", "75%", "25%", "25%", "0%"
        ]
    );
    // --json is the server's answer.
    let answer = json(&server.run(&rita, &["stats", "--json", "--by", "tier"]));
    assert_eq!(answer["group_by"], "tier");
    assert_eq!(answer["overall"]["approval_rate"], 0.75);

    // By reviewer (an admin sees everyone): rita approved both within a minute.
    let reviewers = server.run(&admin, &["stats", "--by", "reviewer", "--since", "1d"]);
    let text = stdout(&reviewers);
    let header: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "REVIEWER",
            "DECISIONS",
            "APPROVED",
            "MODIFIED",
            "REJECTED",
            "APPROVE%",
            "MEDIAN",
            "P10",
            "FAST<60s",
            "FLAGGED"
        ]
    );
    assert!(text.contains("rubber stamp? rita approved 100% of 2 decisions on approve and confirm actions, 100% of those approvals in under 60 s"), "{text}");
    assert!(!text.contains("rubber stamp? sam"), "{text}");
    // ... and rita sees only herself.
    let own = stdout(&server.run(&rita, &["stats", "--by", "reviewer"]));
    assert!(own.contains("\nrita ") && !own.contains("\nsam "), "{own}");

    // Bad flags and roles: exit 1 with a message saying what was expected.
    let refusals: &[(&str, &[&str], &str)] = &[
        (
            &rita,
            &["stats", "--by", "day"],
            "invalid value 'day' for '--by",
        ),
        (
            &rita,
            &["stats", "--since", "yesterday"],
            "--since expects an RFC 3339 time",
        ),
        (
            &rita,
            &[
                "stats",
                "--since",
                "2026-11-26T00:00:00Z",
                "--until",
                "2026-11-25T00:00:00Z",
            ],
            "must be before until (2026-11-25T00:00:00+00:00) (invalid_window, HTTP 400)",
        ),
        (&agent, &["stats"], "wrong_role, HTTP 403"),
        (
            &rita,
            &["export"],
            "exporting training data needs a token with role admin",
        ),
        (
            &admin,
            &["export", "--verdict", "approved"],
            "--verdict takes a comma-separated list",
        ),
        (
            &admin,
            &["export", "--format", "preference", "--verdict", "expired"],
            "expired_is_not_a_judgment",
        ),
        (&admin, &["export", "--action", "a b"], "invalid_query"),
    ];
    for (token, args, expected) in refusals {
        let output = server.run(token, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty(), "{args:?}");
    }

    // The export: every line parses; no progress on a stderr that is not a terminal.
    for (format, lines) in [
        ("jsonl", 2),
        ("openai-chat", 2),
        ("preference", 2),
        ("eval", 2),
    ] {
        let output = server.run(&admin, &["export", "--format", format]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{format}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{format}");
        let parsed: Vec<Value> = stdout(&output)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{format}: {e}: {l}")))
            .collect();
        assert_eq!(parsed.len(), lines, "{format}");
    }
    let modified = server.run(
        &admin,
        &["export", "--verdict", "modified", "--action", "refund.*"],
    );
    let line: Value = serde_json::from_str(stdout(&modified).trim()).unwrap();
    assert_eq!(
        (
            &line["proposed_args"],
            &line["accepted_args"],
            &line["reviewer_reason"]
        ),
        (
            &json!({"amount": 2500}),
            &json!({"amount": 250}),
            &json!("one item")
        )
    );
}

/// A process's resident memory now and its peak since the last reset, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const CASES: usize = 1500;
const CONTEXT_BYTES: usize = 60 * 1024;
/// What the server may add to its resident memory while it streams the export: a page of
/// cases (1 MiB of stored bytes by default) read, rendered and sent, with room for the
/// allocator and SQLite's page cache, far below the ~90 MiB exported.
const BOUND_KIB: u64 = 32 * 1024;

#[test]
fn a_large_export_streams_within_a_memory_bound() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    // Seeded through the store, not the API: rejected actions, each with 60 KiB of context.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = countersign_store::open_for_command(&db(&dir))
            .await
            .unwrap();
        let policy = Policy::parse("version = 1\n[defaults]\ntier = \"approve\"\n").unwrap();
        let now = Utc::now() - TimeDelta::hours(1);
        let note = "x".repeat(CONTEXT_BYTES);
        let mut submissions = Vec::new();
        for n in 0..CASES {
            let mut proposal = ProposedAction::new(
                ActionName::parse("refund.create").unwrap(),
                AgentName::parse("support-bot").unwrap(),
            );
            proposal.args = json!({"n": n}).as_object().unwrap().clone();
            proposal.context = json!({"ticket": note}).as_object().unwrap().clone();
            let new = NewAction::classify(&policy, proposal, now);
            let store = store.clone();
            // Concurrent, so that the writer commits them in batches.
            submissions.push(tokio::spawn(async move {
                let id = store.submit(new).await.unwrap().record.id;
                let reject = DecisionRequest {
                    verdict: Verdict::Reject,
                    args: None,
                    reason: Some("no".into()),
                    confirm: None,
                    reclassified: None,
                };
                store
                    .decide(id, Actor::named("rita"), reject, now)
                    .await
                    .unwrap();
            }));
        }
        for task in submissions {
            task.await.unwrap();
        }
        store.close().await;
    });
    let server = Server::start(dir.path());
    let pid = server.child.id();
    let (before, _) = memory_kib(pid);
    // The peak from here on.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let mut child = Command::new(BIN)
        .args(["export", "--format", "jsonl"])
        .env("COUNTERSIGN_URL", &server.url)
        .env("COUNTERSIGN_TOKEN", &admin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (mut lines, mut bytes) = (0usize, 0usize);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = out.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        bytes += n;
        lines += buffer[..n].iter().filter(|&&b| b == b'\n').count();
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let (_, peak) = memory_kib(pid);
    eprintln!(
        "export: {lines} lines, {} MiB; server RSS before {} MiB, peak while exporting {} MiB",
        bytes / (1024 * 1024),
        before / 1024,
        peak / 1024
    );
    assert_eq!(lines, CASES);
    assert!(bytes > CASES * CONTEXT_BYTES, "{bytes} bytes exported");
    assert!(
        peak < before + BOUND_KIB,
        "the server's peak {peak} KiB while exporting exceeds {before} KiB + {BOUND_KIB} KiB"
    );
}
