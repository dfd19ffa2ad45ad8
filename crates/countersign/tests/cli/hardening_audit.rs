//! Hardening of the audit log and the database, through the real binary: `audit verify
//! --checkpoint` finds entries cut from the end, `audit checkpoint` prints and signs, a
//! read-only database stops `serve` with a clear message, and a full disk answers 503 and
//! turns `/healthz` to 503 until space is freed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{BIN, Server, bootstrap_admin, db, json, scratch, sqlite, stderr, stdout};

/// Runs the binary in `dir` with `args`.
fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("COUNTERSIGN_URL")
        .env_remove("COUNTERSIGN_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn audit_verify_with_a_checkpoint_file_finds_entries_cut_from_the_end() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let agent = server.token(&admin, &["--role", "agent", "--name", "bot"]);
    let rita = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);
    for n in 0..3 {
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
        assert_eq!(
            server
                .run(&rita, &["reject", id, "--reason", "no"])
                .status
                .code(),
            Some(0)
        );
    }
    // Sign the head now and keep the checkpoint outside the database, as an operator would.
    let signed = server.run(&admin, &["audit", "checkpoint", "--sign", "--json"]);
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let signed = json(&signed);
    let size = signed["size"].as_u64().unwrap();
    let vkey = signed["key"].as_str().unwrap().to_owned();
    let printed = server.run(&admin, &["audit", "checkpoint"]);
    assert_eq!(stdout(&printed), signed["note"].as_str().unwrap());
    let kept = dir.path().join("kept.checkpoint");
    std::fs::write(&kept, stdout(&printed)).unwrap();
    let kept = kept.display().to_string();
    let ok = server.run(&admin, &["audit", "verify", "--checkpoint", &kept]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    drop(server);

    // Read-only, from the file: the latest stored checkpoint is printed.
    let db = db(&dir);
    let stored = run_in(dir.path(), &["audit", "checkpoint", "--db", &db]);
    assert_eq!(
        stdout(&stored),
        signed["note"].as_str().unwrap(),
        "{}",
        stderr(&stored)
    );

    // The attack: the last action cut from the log, its row and the stored checkpoints
    // deleted, so that the database agrees with itself.
    sqlite(&db, "PRAGMA wal_checkpoint(TRUNCATE);");
    sqlite(
        &db,
        &format!(
            "DROP TRIGGER audit_no_delete; DROP TRIGGER checkpoints_no_delete;
             DELETE FROM actions WHERE id IN (SELECT action_id FROM audit WHERE seq > {0});
             DELETE FROM audit WHERE seq > {0}; DELETE FROM checkpoints;",
            size - 3
        ),
    );
    let alone = run_in(dir.path(), &["audit", "verify", "--db", &db]);
    assert_eq!(
        alone.status.code(),
        Some(0),
        "the database alone cannot tell: {}",
        stderr(&alone)
    );

    let found = run_in(
        dir.path(),
        &[
            "audit",
            "verify",
            "--db",
            &db,
            "--checkpoint",
            &kept,
            "--key",
            &vkey,
        ],
    );
    assert_eq!(found.status.code(), Some(1), "{}", stdout(&found));
    let message = stderr(&found);
    assert!(
        message.contains(&format!(
            "entries {} to {size} were cut from its end",
            size - 2
        )),
        "{message}"
    );
    // The key file in the working directory is used when --key is not given.
    let found = run_in(
        dir.path(),
        &[
            "audit",
            "verify",
            "--db",
            &db,
            "--checkpoint",
            &kept,
            "--json",
        ],
    );
    assert_eq!(found.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(report["first_bad_seq"], size - 2, "{report}");

    // Bad input at every new flag: a precise message, exit 1, never a panic.
    let other = dir.path().join("other.key");
    std::fs::write(&other, "PRIVATE+KEY+x+00000000+AAAA\n").unwrap();
    let garbage = dir.path().join("garbage.checkpoint");
    std::fs::write(&garbage, "countersign/x\n12\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--checkpoint", "missing.checkpoint"],
            "cannot read the checkpoint file",
        ),
        (
            &["--checkpoint", &kept, "--key", "nope"],
            "--key: expected a verifier key",
        ),
        (
            &["--checkpoint", &kept, "--key", other.to_str().unwrap()],
            "is not a signing key",
        ),
        (
            &["--checkpoint", garbage.to_str().unwrap()],
            "no signature line",
        ),
        (
            &[
                "--checkpoint",
                &kept,
                "--key",
                "countersign/x+9a7f4f3c+AWVYZ6ni5tXlLNtc8wUYr/mq4Bhf5q+uM6/rgxlMrRtY",
            ],
            "--key:",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["audit", "verify", "--db", db.as_str()];
        args.extend_from_slice(extra);
        let output = run_in(dir.path(), &args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {message}");
        assert!(
            message.starts_with("error: ") && message.contains(expected),
            "{args:?}: {message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
    let missing = run_in(dir.path(), &["audit", "checkpoint", "--db", "missing.db"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(!dir.path().join("missing.db").exists());

    // Signing from the file with the key file, without a server.
    let signed = run_in(
        dir.path(),
        &["audit", "checkpoint", "--db", &db, "--sign", "--json"],
    );
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    assert_eq!(json(&signed)["size"], size - 3);
}

/// Whether this process runs as root, for whom permission bits do not stop writes.
fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

#[test]
fn serve_refuses_a_read_only_database_with_a_clear_message() {
    let dir = scratch();
    bootstrap_admin(&dir);
    // A database the server's user cannot write: as root (who ignores permission bits) the
    // server runs as `nobody` on root's file; otherwise the file is made read-only. Either
    // way the start is really attempted on a file it cannot write, never skipped.
    let mut command = if is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        command
    } else {
        let status = Command::new("chmod")
            .args(["0444", &db(&dir)])
            .status()
            .unwrap();
        assert!(status.success());
        Command::new(BIN)
    };
    let output = command
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db(&dir)])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("cannot open the database"), "{message}");
    assert!(message.contains("read-only"), "{message}");
    assert!(!message.contains("countersign is serving"), "{message}");
}

/// Starts `command` (a `countersign serve`, possibly wrapped) and waits for its address.
fn start(mut command: Command) -> Server {
    let mut child = command
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
    let address = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the server reports its address");
    Server {
        child,
        url: format!("http://{address}"),
    }
}

fn http(url: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = reqwest::Url::parse(url).unwrap().join(path).unwrap();
        let mut request = client.request(method.parse().unwrap(), url);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let value = response.json().await.unwrap_or(Value::Null);
        (status, value)
    })
}

#[test]
fn a_full_disk_answers_503_and_healthz_reports_it_until_space_is_freed() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    sqlite(&db(&dir), "PRAGMA wal_checkpoint(TRUNCATE);");
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let free = dir.path().join("free-space");
    // A 2 MiB file system of its own, in a mount namespace of the server's own (gone with
    // it, nothing left mounted): the database is copied in, with 512 KiB of ballast that
    // the script deletes once the test asks, to free space while the server runs.
    let script = format!(
        "set -e
         mount -t tmpfs -o size=2m countersign-test {disk}
         cp {db} {disk}/countersign.db
         head -c 524288 /dev/zero > {disk}/ballast
         (for i in $(seq 1200); do [ -e {free} ] && rm -f {disk}/ballast && exit 0; sleep 0.1; done) &
         exec {BIN} serve --listen 127.0.0.1:0 --db {disk}/countersign.db",
        disk = disk.display(),
        db = db(&dir),
        free = free.display(),
    );
    let mut command = Command::new("unshare");
    command
        .args(["--map-root-user", "--mount", "sh", "-c", &script])
        .current_dir(dir.path());
    let server = start(command);
    let agent = server.token(&admin, &["--role", "agent", "--name", "bot"]);
    let (status, _) = http(&server.url, "GET", "/healthz", "", None);
    assert_eq!(status, 200);

    // Fill the disk: large submissions until one is refused, then smaller ones until they
    // are refused too, so that not even a small write fits.
    let mut refused = None;
    for size in [60_000, 8_000, 500] {
        let mut filled = false;
        for n in 0..400 {
            let body = json!({"action": "email.send", "args": {"n": n, "pad": "x".repeat(size)}});
            let (status, answer) = http(&server.url, "POST", "/v1/actions", &agent, Some(body));
            if status == 503 {
                refused = Some(answer);
                filled = true;
                break;
            }
            assert_eq!(status, 201, "{answer}");
        }
        assert!(
            filled,
            "the disk never filled up with {size}-byte submissions"
        );
    }
    let refused = refused.unwrap();
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("full"), "{message}");
    let (status, health) = http(&server.url, "GET", "/healthz", "", None);
    assert_eq!(status, 503, "{health}");
    assert!(
        health["error"]["message"]
            .as_str()
            .unwrap()
            .contains("full"),
        "{health}"
    );

    // Space comes back: healthz says so (its probe write goes through), and so do writes.
    std::fs::write(&free, "").unwrap();
    let mut recovered = false;
    for _ in 0..200 {
        // The script polls for the signal every 100 ms; healthz probes on each call.
        std::thread::sleep(Duration::from_millis(50));
        if http(&server.url, "GET", "/healthz", "", None).0 == 200 {
            recovered = true;
            break;
        }
    }
    assert!(
        recovered,
        "healthz did not recover within 10 s of space being freed"
    );
    let body = json!({"action": "email.send", "args": {"after": "recovery"}});
    let (status, answer) = http(&server.url, "POST", "/v1/actions", &agent, Some(body));
    assert_eq!(status, 201, "{answer}");
}

#[test]
fn serve_refuses_a_key_file_that_is_not_a_key_and_bad_checkpoint_settings() {
    let dir = scratch();
    bootstrap_admin(&dir);
    let cases: &[(&str, &str, &str)] = &[
        // (key file content or "" for none, config, expected message)
        (
            "not a key\n",
            "",
            "countersign-checkpoint.key is not a signing key",
        ),
        (
            "",
            "checkpoint_interval = \"0s\"\n",
            "invalid checkpoint_interval",
        ),
        (
            "",
            "checkpoint_interval = \"often\"\n",
            "invalid checkpoint_interval",
        ),
        (
            "",
            "checkpoint_webhook = \"ftp://x\"\n",
            "invalid checkpoint_webhook",
        ),
    ];
    for (key, config, expected) in cases {
        let key_path = dir.path().join("countersign-checkpoint.key");
        let _ = std::fs::remove_file(&key_path);
        if !key.is_empty() {
            std::fs::write(&key_path, key).unwrap();
        }
        std::fs::write(dir.path().join("countersign.toml"), config).unwrap();
        let output = run_in(
            dir.path(),
            &[
                "serve",
                "--config",
                "countersign.toml",
                "--listen",
                "127.0.0.1:0",
                "--db",
                &db(&dir),
            ],
        );
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{config}: {message}");
        assert!(message.contains(expected), "{config}: {message}");
        if !key.is_empty() {
            // Never replaced: a new key would orphan the checkpoints published with the old.
            assert_eq!(std::fs::read_to_string(&key_path).unwrap(), *key);
        }
    }
}
