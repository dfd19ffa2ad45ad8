//! The client commands against a real `countersign serve` process: the approval story with
//! SPEC exit codes, audit tamper detection with `audit verify`, and a crash test that
//! `kill -9`s the server while agents submit and decide; (in `policy`) the policy commands;
//! (in `limits`) the server out of descriptors and under a thousand waiters; and (in
//! `hardening_audit`) checkpoints, a read-only database and a full disk; (in `stats`)
//! statistics and the training-data export. One test binary for the crate.

mod graduation;
mod grants;
mod hardening_audit;
mod limits;
mod policy;
mod postgres;
mod stats;
mod users;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

/// A scratch directory, removed on drop.
fn scratch() -> TempDir {
    tempfile::Builder::new()
        .prefix("countersign-cli-")
        .tempdir()
        .unwrap()
}

/// The URL of the API path `segments` on the server at `base`, each one segment.
fn api(base: &str, segments: &[&str]) -> reqwest::Url {
    let mut url = reqwest::Url::parse(base).unwrap();
    url.path_segments_mut().unwrap().clear().extend(segments);
    url
}

/// The database file in `dir`.
fn db(dir: &TempDir) -> String {
    dir.path().join("countersign.db").display().to_string()
}

/// A running `countersign serve`.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts the server on a free port in `dir` and waits until it says it is serving.
    fn start(dir: &Path) -> Server {
        Server::start_command(dir, Command::new(BIN), &[])
    }

    /// Like [`Server::start`], with `command` the binary or a wrapper that runs it (e.g.
    /// `prlimit ... -- BIN`), and `extra` arguments after `serve`'s own.
    fn start_command(dir: &Path, command: Command, extra: &[&str]) -> Server {
        Server::start_on(dir, command, "countersign.db", extra)
    }

    /// Like [`Server::start_command`], on the database `db`.
    fn start_on(dir: &Path, mut command: Command, db: &str, extra: &[&str]) -> Server {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .env_remove("COUNTERSIGN_POLICY")
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
        let address = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("the server reports its address");
        Server {
            child,
            url: format!("http://{address}"),
        }
    }

    /// Runs a client command against this server.
    fn run(&self, token: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("COUNTERSIGN_URL", &self.url)
            .env("COUNTERSIGN_TOKEN", token)
            .output()
            .unwrap()
    }

    fn spawn(&self, token: &str, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(args)
            .env("COUNTERSIGN_URL", &self.url)
            .env("COUNTERSIGN_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn token(&self, admin: &str, args: &[&str]) -> String {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let output = self.run(admin, &all);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output).trim().to_owned()
    }

    /// Sends SIGKILL: no chance to flush or shut down cleanly.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(output), stderr(output)))
}

fn bootstrap_admin(dir: &TempDir) -> String {
    let output = Command::new(BIN)
        .args([
            "token",
            "create",
            "--db",
            &db(dir),
            "--role",
            "admin",
            "--name",
            "ada",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = stdout(&output).trim().to_owned();
    assert!(
        token.starts_with("cs_") && !token.contains('\n'),
        "the token alone: {token:?}"
    );
    token
}

/// The id of the first action in the review queue, once a submission running in another
/// process has put one there. Polls, as a reviewer would re-run `queue`; bounded so that a
/// submission that never lands fails the test instead of hanging it.
fn first_in_queue(server: &Server, token: &str, filter: &[&str]) -> String {
    let mut args = vec!["queue", "--json"];
    args.extend_from_slice(filter);
    for _ in 0..1200 {
        let queue = server.run(token, &args);
        assert_eq!(queue.status.code(), Some(0), "{}", stderr(&queue));
        if let Some(item) = json(&queue)["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
        {
            return item["id"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing reached the queue within 60 s");
}

/// Waits for a client process to exit, within a generous bound (polling: `Child` has no
/// wait with a timeout).
fn exit_code(mut child: Child) -> (i32, String) {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (status.code().unwrap_or(-1), stdout(&output));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the client did not finish within 60 s");
}

#[test]
fn approval_story_with_exit_codes() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
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
    let rita = server.token(
        &admin,
        &[
            "--role",
            "reviewer",
            "--name",
            "rita",
            "--groups",
            "leads,finance",
        ],
    );
    let olivia = server.token(&admin, &["--role", "reviewer", "--name", "olivia"]);

    // Reads pass at once: exit 0 even with --wait.
    let read = server.run(
        &agent,
        &["submit", "--action", "order.get", "--wait", "5", "--json"],
    );
    assert_eq!(read.status.code(), Some(0), "{}", stderr(&read));
    assert_eq!(json(&read)["status"], "allowed");

    // A callback is refused at submission unless the config allows its URL (none here).
    let callback = server.run(
        &agent,
        &[
            "submit",
            "--action",
            "refund.create",
            "--callback-url",
            "http://169.254.169.254/latest",
        ],
    );
    assert_eq!(callback.status.code(), Some(1), "{}", stderr(&callback));
    assert!(
        stderr(&callback).contains("callback"),
        "{}",
        stderr(&callback)
    );

    // A waiting submit returns when a reviewer approves it from another terminal.
    let waiting = server.spawn(
        &agent,
        &[
            "submit",
            "--action",
            "refund.create",
            "--args",
            r#"{"amount": 2500}"#,
            "--reasoning",
            "charged twice",
            "--wait",
            "120",
            "--json",
        ],
    );
    let id = first_in_queue(&server, &rita, &[]);
    let table = server.run(&rita, &["queue"]);
    assert!(
        stdout(&table).starts_with("ID"),
        "a table by default: {}",
        stdout(&table)
    );
    assert!(stdout(&table).contains(&id));

    let refused = server.run(&olivia, &["approve", &id]);
    assert_eq!(refused.status.code(), Some(1), "the owner may not approve");
    assert!(
        stderr(&refused).contains("own_agent"),
        "{}",
        stderr(&refused)
    );

    let approved = server.run(
        &rita,
        &["approve", &id, "--comment", "duplicate charge confirmed"],
    );
    assert_eq!(approved.status.code(), Some(0), "{}", stderr(&approved));
    assert!(stdout(&approved).contains("approved"));
    let (code, out) = exit_code(waiting);
    assert_eq!(code, 0, "approved: the agent may run it: {out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "approved"
    );

    let shown = server.run(&agent, &["show", &id, "--wait", "5"]);
    assert_eq!(shown.status.code(), Some(0));
    assert!(
        stdout(&shown).contains("status        approved"),
        "{}",
        stdout(&shown)
    );

    // Rejected: exit 2.
    let waiting = server.spawn(
        &agent,
        &[
            "submit",
            "--action",
            "email.send",
            "--wait",
            "120",
            "--json",
        ],
    );
    let id = first_in_queue(&server, &rita, &["--action", "email.*"]);
    let rejected = server.run(&rita, &["reject", &id, "--reason", "not today"]);
    assert_eq!(rejected.status.code(), Some(0), "{}", stderr(&rejected));
    assert_eq!(exit_code(waiting).0, 2, "rejected: may not run");
    assert_eq!(
        server
            .run(&agent, &["show", &id, "--wait", "1"])
            .status
            .code(),
        Some(2)
    );

    // Modified: runs with the reviewer's arguments.
    let submitted = json(&server.run(
        &agent,
        &[
            "submit",
            "--action",
            "refund.create",
            "--args",
            r#"{"amount": 900}"#,
            "--json",
        ],
    ));
    let id = submitted["id"].as_str().unwrap();
    let modified = server.run(
        &rita,
        &["modify", id, "--args", r#"{"amount": 90}"#, "--json"],
    );
    assert_eq!(modified.status.code(), Some(0), "{}", stderr(&modified));
    assert_eq!(json(&modified)["args"]["amount"], 90);
    assert_eq!(json(&modified)["original_args"]["amount"], 900);

    // Still pending when the wait ends: exit 3.
    let pending = server.run(
        &agent,
        &["submit", "--action", "file.delete", "--wait", "1"],
    );
    assert_eq!(pending.status.code(), Some(3), "{}", stderr(&pending));

    // Errors: exit 1 with a message on stderr.
    let wrong = server.run("cs_wrong", &["show", "nope"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("unauthorized"),
        "{}",
        stderr(&wrong)
    );
    let bad_args = server.run(&agent, &["submit", "--action", "a.b", "--args", "[1]"]);
    assert_eq!(bad_args.status.code(), Some(1));
    let bad_name = server.run(&agent, &["submit", "--action", "no spaces"]);
    assert_eq!(bad_name.status.code(), Some(1));
    assert!(
        stderr(&bad_name).contains("invalid_action_name"),
        "{}",
        stderr(&bad_name)
    );

    let verify = server.run(&admin, &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
    assert!(stdout(&verify).starts_with("ok: "), "{}", stdout(&verify));
}

#[test]
fn tokens_are_listed_and_revoked_through_the_server_or_the_file() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let agent = server.token(&admin, &["--role", "agent", "--name", "support-bot"]);
    let other = server.token(&admin, &["--role", "agent", "--name", "other-bot"]);

    let table = server.run(&admin, &["token", "list"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("support-bot") && text.contains("active"),
        "{text}"
    );
    assert!(!text.contains(&agent), "secrets are never shown");
    let list = json(&server.run(&admin, &["token", "list", "--json"]));
    let id_of = |list: &Value, name: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (agent_id, other_id) = (id_of(&list, "support-bot"), id_of(&list, "other-bot"));

    // Through the server: a reviewer may not, an admin may; the token stops at once.
    let refused = server.run(&agent, &["token", "revoke", &agent_id]);
    assert_eq!(refused.status.code(), Some(1));
    let revoked = server.run(&admin, &["token", "revoke", &agent_id]);
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    assert!(stdout(&revoked).contains("support-bot"));
    let submit = server.run(&agent, &["submit", "--action", "order.get"]);
    assert_eq!(submit.status.code(), Some(1));
    assert!(stderr(&submit).contains("revoked"), "{}", stderr(&submit));

    // Directly on the file while the server runs: the server sees it at the next request.
    let revoked = Command::new(BIN)
        .args(["token", "revoke", &other_id, "--db", &db(&dir), "--json"])
        .output()
        .unwrap();
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    assert_eq!(json(&revoked)["revoked"], true);
    let submit = server.run(&other, &["submit", "--action", "order.get"]);
    assert_eq!(submit.status.code(), Some(1), "{}", stdout(&submit));
    let listed = Command::new(BIN)
        .args(["token", "list", "--db", &db(&dir)])
        .output()
        .unwrap();
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert_eq!(stdout(&listed).matches("revoked").count(), 2);
    // A typo'd --db path is an error, not a new empty database.
    let typo = dir.path().join("countersing.db");
    for args in [
        vec!["token", "list", "--db"],
        vec!["token", "revoke", &other_id, "--db"],
        vec!["audit", "verify", "--db"],
    ] {
        let output = Command::new(BIN).args(&args).arg(&typo).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&output).contains("no database at"),
            "{}",
            stderr(&output)
        );
        assert!(!typo.exists(), "{args:?} created the file");
    }
    let unknown = server.run(&admin, &["token", "revoke", "no-such-id"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no token"),
        "{}",
        stderr(&unknown)
    );
    // Both revocations are in the chain, which still verifies.
    let verify = server.run(&admin, &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
}

/// Runs SQL on the file the way someone with the `sqlite3` shell would.
fn sqlite(db: &str, sql: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().unwrap();
}

/// `audit verify --db` as an operator runs it, in the database's directory: where the
/// server created its checkpoint key, whose verifier the command takes by default.
fn verify_db(db: &str) -> (i32, Value, String) {
    let output = Command::new(BIN)
        .args(["audit", "verify", "--db", db, "--json"])
        .current_dir(Path::new(db).parent().unwrap())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        json(&output),
        stderr(&output),
    )
}

#[test]
fn audit_verify_detects_tampering() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let agent = server.token(&admin, &["--role", "agent", "--name", "bot"]);
    let rita = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);
    for n in 0..4 {
        let args = format!(r#"{{"n": {n}}}"#);
        let out = json(&server.run(
            &agent,
            &[
                "submit",
                "--action",
                "refund.create",
                "--args",
                &args,
                "--json",
            ],
        ));
        let id = out["id"].as_str().unwrap();
        assert_eq!(server.run(&rita, &["approve", id]).status.code(), Some(0));
    }
    drop(server);

    let db = db(&dir);
    let (code, report, _) = verify_db(&db);
    assert_eq!(code, 0, "{report}");
    let entries = report["entries"].as_u64().unwrap();
    assert!(entries >= 10, "{report}");

    // Each kind of tampering on its own copy of the file (checkpointed first, so that the
    // copy holds everything without its write-ahead log).
    sqlite(&db, "PRAGMA wal_checkpoint(TRUNCATE);");
    let copy = |name: &str| {
        let path = dir.path().join(name).display().to_string();
        std::fs::copy(&db, &path).unwrap();
        sqlite(
            &path,
            "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;",
        );
        path
    };
    let edited = copy("edited.db");
    sqlite(
        &edited,
        "UPDATE audit SET body = replace(body, '\"n\":2', '\"n\":3') WHERE body LIKE '%\"n\":2%';",
    );
    let (code, report, message) = verify_db(&edited);
    assert_eq!(code, 1, "an edited entry is found: {report}");
    assert!(report["first_bad_seq"].as_u64().is_some());
    assert!(message.contains("broken at entry"), "{message}");

    let removed = copy("removed.db");
    sqlite(&removed, "DELETE FROM audit WHERE seq = 5;");
    let (code, report, _) = verify_db(&removed);
    assert_eq!(code, 1);
    assert_eq!(report["first_bad_seq"], 5, "{report}");

    let reordered = copy("reordered.db");
    sqlite(
        &reordered,
        "UPDATE audit SET seq = -1 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = -1;",
    );
    let (code, report, _) = verify_db(&reordered);
    assert_eq!(code, 1);
    assert_eq!(report["first_bad_seq"], 3, "{report}");

    let missing = Command::new(BIN)
        .args(["audit", "verify", "--db", "/nonexistent/x.db"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let agent = server.token(&admin, &["--role", "agent", "--name", "bot"]);
    let rita = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);
    let url = server.url.clone();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (acknowledged, approved) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
        let approved = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut tasks = Vec::new();
        for agent_number in 0..8 {
            let (client, url, agent, rita) = (client.clone(), url.clone(), agent.clone(), rita.clone());
            let (acked, approved) = (acked.clone(), approved.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let action = if n % 2 == 0 { "order.get" } else { "refund.create" };
                    let body = serde_json::json!({"action": action, "args": {"agent": agent_number, "n": n}});
                    let Ok(response) = client.post(api(&url, &["v1", "actions"])).bearer_auth(&agent).json(&body).send().await else {
                        return;
                    };
                    if !response.status().is_success() {
                        return;
                    }
                    let Ok(value) = response.json::<Value>().await else { return };
                    let id = value["id"].as_str().unwrap().to_owned();
                    acked.lock().unwrap().push((id.clone(), value["status"].as_str().unwrap().to_owned()));
                    if value["status"] == "pending" {
                        let decision = serde_json::json!({"verdict": "approve"});
                        let Ok(response) = client
                            .post(api(&url, &["v1", "actions", &id, "decisions"]))
                            .bearer_auth(&rita)
                            .json(&decision)
                            .send()
                            .await
                        else {
                            return;
                        };
                        if response.status().is_success() && response.bytes().await.is_ok() {
                            approved.lock().unwrap().push(id);
                        }
                    }
                }
            }));
        }
        // Kill once a good number of writes were acknowledged, while the agents keep going
        // (polled: the acknowledgements come from many tasks; the agents never stop, so this
        // ends).
        while acked.lock().unwrap().len() < 300 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill();
        for task in tasks {
            let _ = task.await;
        }
        let acked = acked.lock().unwrap().clone();
        let approved = approved.lock().unwrap().clone();
        (acked, approved)
    });
    assert!(acknowledged.len() >= 300);

    let restarted = Server::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (id, status) in &acknowledged {
            let response = client
                .get(api(&restarted.url, &["v1", "actions", id]))
                .bearer_auth(&rita)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                200,
                "acknowledged action {id} survived the crash"
            );
            let value: Value = response.json().await.unwrap();
            if status == "allowed" {
                assert_eq!(value["status"], "allowed");
            }
            if approved.contains(id) {
                assert_eq!(
                    value["status"], "approved",
                    "acknowledged decision on {id} survived"
                );
            }
        }
    });
    drop(restarted);
    let (code, report, message) = verify_db(&db(&dir));
    assert_eq!(
        code, 0,
        "the chain verifies after the crash: {report} {message}"
    );
}

#[test]
fn bad_config_is_refused_with_line_and_column() {
    let dir = scratch();
    let config = dir.path().join("countersign.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ndatabse = \"x.db\"\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("line 2, column 1"), "{message}");
    assert!(message.contains("databse"), "{message}");

    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "version = 1\n[defaults]\ntier = \"sometimes\"\n").unwrap();
    let output = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            policy.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "a bad policy stops the start"
    );
    assert!(
        stderr(&output).contains("policy.toml:3:"),
        "{}",
        stderr(&output)
    );
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_policy_and_refuses_a_bad_one() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let policy = dir.path().join("policy.toml");
    let strict = "version = 1\n[defaults]\ntier = \"approve\"\n";
    std::fs::write(&policy, strict).unwrap();
    let config = dir.path().join("countersign.toml");
    std::fs::write(&config, "policy = \"policy.toml\"\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            "countersign.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, receiver) = mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            let line = receiver
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("the server logs {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    let line = wait_for("address=");
    let address = line
        .split("address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let server = Server {
        child,
        url: format!("http://{address}"),
    };
    let agent = server.token(&admin, &["--role", "agent", "--name", "bot"]);
    let submit = || json(&server.run(&agent, &["submit", "--action", "note.write", "--json"]));
    assert_eq!(submit()["status"], "pending");

    let relaxed = "version = 1\n[defaults]\ntier = \"auto\"\n";
    std::fs::write(&policy, relaxed).unwrap();
    let hup = |pid: u32| {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    hup(server.child.id());
    wait_for("policy reloaded");
    let after = submit();
    assert_eq!(after["status"], "allowed", "the new policy is in force");

    std::fs::write(&policy, "version = 1\n[defaults]\ntier = \"sometimes\"\n").unwrap();
    hup(server.child.id());
    wait_for("policy reload refused");
    let kept = submit();
    assert_eq!(kept["status"], "allowed", "the old policy stays in force");
    assert_eq!(kept["policy_hash"], after["policy_hash"]);
}

#[test]
fn queue_pages_and_reads_at_a_glance() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let agent = server.token(&admin, &["--role", "agent", "--name", "bot"]);
    let rita = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);
    for n in 1..=3 {
        let args = format!(r#"{{"amount": {n}00, "order": "A-{n}", "lines": [1, 2]}}"#);
        let out = server.run(
            &agent,
            &["submit", "--action", "refund.create", "--args", &args],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let first = server.run(&rita, &["queue", "--limit", "2"]);
    let table = stdout(&first);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "header, two actions, the cursor: {table}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("LEFT") && lines[0].contains("ARGS"));
    assert!(
        lines[1].contains("29m left") && lines[1].contains(r#"amount=100 lines=[2] order="A-1""#),
        "{table}"
    );
    let cursor = lines[3]
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("a cursor to go on: {table}"));
    let rest = server.run(&rita, &["queue", "--limit", "2", "--cursor", cursor]);
    let rest = stdout(&rest);
    assert_eq!(
        rest.lines().count(),
        2,
        "header and the third action: {rest}"
    );
    assert!(rest.contains(r#"order="A-3""#), "{rest}");

    let all = server.run(&rita, &["queue", "--limit", "1", "--all", "--json"]);
    let all = json(&all);
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert_eq!(all["next_cursor"], Value::Null);

    let bad = server.run(&rita, &["queue", "--action", "a b"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("invalid_query"), "{}", stderr(&bad));
    let bad = server.run(&rita, &["queue", "--cursor", "nonsense"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("invalid_cursor"), "{}", stderr(&bad));
    let out = Command::new(BIN)
        .args(["queue", "--server", "not a url", "--token", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not an http(s) URL"),
        "{}",
        stderr(&out)
    );
}
