//! Hardening: the audit log proves its own completeness (signed checkpoints, state
//! re-derived from the log) and a damaged or read-only database is reported, not served.
//! Each test is the attack that found the hole, done to the file between two runs of the
//! server the way someone with access to it would.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use countersign_core::audit::note::NoteSigner;
use countersign_server::{Checkpoints, Publish};
use countersign_store::{SqliteOptions, SqliteStore, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use tempfile::TempDir;

use crate::fixture::{Options, Server, code, large_refund, scratch, spawn, spawn_with};

/// The same key for every run of the server on a directory (as the key file gives it).
fn signer() -> NoteSigner {
    NoteSigner::from_seed("countersign/test", [42; 32]).unwrap()
}

fn published(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("published.checkpoints")
}

async fn spawn_signing(dir: Option<Arc<TempDir>>) -> Server {
    let dir = dir.unwrap_or_else(scratch);
    let publish = Publish {
        file: Some(published(&dir)),
        webhook: None,
    };
    spawn_with(Options {
        checkpoints: Some(Checkpoints::start(
            signer(),
            Duration::from_secs(3600),
            publish,
        )),
        dir: Some(dir),
        ..Options::default()
    })
    .await
}

/// Runs SQL on the stopped server's file, the audit log's guard triggers dropped first.
fn tamper(dir: &TempDir, sql: &str) {
    let conn = rusqlite::Connection::open(dir.path().join("countersign.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; \
         DROP TRIGGER IF EXISTS checkpoints_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().unwrap();
}

/// Waits (bounded) until the publish file holds a checkpoint of `size`.
async fn published_note(dir: &TempDir, size: u64) -> String {
    let marker = format!("\n{size}\n");
    for _ in 0..200 {
        let text = std::fs::read_to_string(published(dir)).unwrap_or_default();
        if text.contains(&marker) {
            return text;
        }
        // The publisher appends on its own task, just after the answer.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("checkpoint {size} was not published within 5 s");
}

async fn verify(server: &Server) -> Value {
    let (status, report) = server
        .call("GET", "/v1/audit/verify", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

#[tokio::test]
async fn entries_cut_from_the_end_are_detected_with_a_checkpoint() {
    let server = spawn_signing(None).await;
    let (status, body) = server
        .call("GET", "/v1/audit/checkpoint", &server.admin, None)
        .await;
    // The worker signs at start: the tokens the fixture created are covered.
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "{body}"
    );
    for n in 0..3 {
        let action = server
            .submit(json!({"action": "refund.create", "args": {"amount": 500 + n}}))
            .await;
        let id = action["id"].as_str().unwrap();
        let (status, _) = server
            .decide(
                id,
                &server.lead,
                json!({"verdict": "reject", "reason": "no"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, signed) = server
        .call("POST", "/v1/audit/checkpoints", &server.admin, None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{signed}");
    let size = signed["size"].as_u64().unwrap();
    assert_eq!(signed["key"], signer().verifier().encode());
    assert!(
        signed["note"]
            .as_str()
            .unwrap()
            .starts_with("countersign/test\n")
    );
    // Signing again without new entries: the same checkpoint, not a new one.
    let (status, again) = server
        .call("POST", "/v1/audit/checkpoints", &server.admin, None)
        .await;
    assert_eq!((status, &again["size"]), (StatusCode::OK, &signed["size"]));
    let (status, latest) = server
        .call("GET", "/v1/audit/checkpoint", &server.admin, None)
        .await;
    assert_eq!((status, &latest["note"]), (StatusCode::OK, &signed["note"]));
    let report = verify(&server).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checkpoints"][0]["ok"], true, "{report}");
    let publish_file = published_note(&server.dir, size).await;
    let dir = server.stop().await;

    // The attack: the last action (its three entries) cut from the log and from the table,
    // so that what is left is a valid chain of consistent rows.
    let cut = format!(
        "DELETE FROM actions WHERE id IN (SELECT action_id FROM audit WHERE seq > {0});
         DELETE FROM audit WHERE seq > {0};",
        size - 3
    );
    tamper(&dir, &cut);
    // With the stored checkpoint left in place, the server's own check finds it (the
    // server appended entries since, so entry `size` exists again, with another hash).
    let server = spawn_signing(Some(dir.clone())).await;
    let report = verify(&server).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["state_mismatch_count"], 0, "{report}");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("no longer extends"), "{message}");
    let dir = server.stop().await;

    // A thorough attacker deletes the stored checkpoints too: now only the published copy
    // outside the database knows.
    tamper(&dir, "DELETE FROM checkpoints;");
    let server = spawn_signing(Some(dir.clone())).await;
    let report = verify(&server).await;
    assert_eq!(
        report["ok"], true,
        "the database alone cannot tell: {report}"
    );
    let (status, report) = server
        .call(
            "POST",
            "/v1/audit/verify",
            &server.admin,
            Some(json!({"checkpoint": publish_file})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("no longer extends checkpoint"),
        "{problems}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_edited_action_status_is_detected_by_rederiving_it_from_the_log() {
    let server = spawn().await;
    let action = server.submit(large_refund()).await;
    let id = action["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .decide(
            &id,
            &server.lead,
            json!({"verdict": "reject", "reason": "no"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let dir = server.stop().await;

    // The attack: the rejected action flipped to approved in its table, so that the agent
    // that asks again runs it. The log is left alone, so the chain verifies.
    tamper(
        &dir,
        &format!("UPDATE actions SET status = 'approved' WHERE id = '{id}';"),
    );
    let server = spawn_with(Options {
        dir: Some(dir),
        ..Options::default()
    })
    .await;
    let report = verify(&server).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(report.get("first_bad_seq").is_none(), "the chain is intact");
    assert_eq!(report["state_mismatch_count"], 1);
    assert_eq!(
        report["state_mismatches"][0],
        json!({"action_id": id, "field": "status", "stored": "approved", "derived": "rejected"})
    );
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("its log says \"rejected\""), "{message}");
    server.stop().await;
}

/// Overwrites the root page of `table` with garbage, as a failing disk might.
fn damage_table(path: &Path, table: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?",
            [table],
            |row| row.get(0),
        )
        .unwrap();
    conn.close().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        size => usize::from(size),
    };
    let start = (root as usize - 1) * page_size;
    bytes[start..start + page_size].fill(0x5a);
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_corrupted_page_is_reported_not_served() {
    let server = spawn().await;
    server.submit(large_refund()).await;
    let dir = server.stop().await;
    let path = dir.path().join("countersign.db");
    damage_table(&path, "actions");

    // At start: refused, with what is wrong and what to do.
    let error = countersign_store::open(path.to_str().unwrap())
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(
        message.contains("damaged") && message.contains("backup"),
        "{message}"
    );

    // Damage that appears while serving (here: the start check switched off): verify
    // answers what is wrong, health says so, and writes are refused with 503.
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            check_integrity: false,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let server = spawn_with(Options {
        dir: Some(dir),
        store: Some(store),
        ..Options::default()
    })
    .await;
    let report = verify(&server).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["damage"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{report}"
    );
    let (status, health) = server.call("GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert!(
        health["error"]["message"]
            .as_str()
            .unwrap()
            .contains("damaged"),
        "{health}"
    );
    let (status, refused) = server
        .call("POST", "/v1/actions", &server.agent, Some(large_refund()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert_eq!(code(&refused), "unavailable");
    server.stop().await;
}

#[tokio::test]
async fn bad_checkpoints_and_keys_are_refused_precisely() {
    let server = spawn_signing(None).await;
    let (status, signed) = server
        .call("POST", "/v1/audit/checkpoints", &server.admin, None)
        .await;
    assert!(status.is_success(), "{signed}");
    let note = signed["note"].as_str().unwrap().to_owned();
    let other = NoteSigner::from_seed("countersign/other", [7; 32]).unwrap();
    let forged = countersign_core::audit::checkpoint::Checkpoint {
        origin: "countersign/test".into(),
        size: 1,
        hash: [0; 32],
    }
    .sign(&other)
    .unwrap();
    let changed = note.replacen("countersign/test\n", "countersign/test\n9", 1);
    // (token, body, status, code)
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            &server.lead,
            json!({"checkpoint": note}),
            StatusCode::FORBIDDEN,
            "wrong_role",
        ),
        (
            &server.admin,
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &server.admin,
            json!({"checkpoint": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &server.admin,
            json!({"checkpoint": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_checkpoint",
        ),
        (
            &server.admin,
            json!({"checkpoint": note.replace('\n', "\r\n")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_checkpoint",
        ),
        (
            &server.admin,
            json!({"checkpoint": forged}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "checkpoint_not_verified",
        ),
        (
            &server.admin,
            json!({"checkpoint": changed}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "checkpoint_not_verified",
        ),
        (
            &server.admin,
            json!({"checkpoint": note, "key": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_key",
        ),
        (
            &server.admin,
            json!({"checkpoint": note, "key": other.verifier().encode()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "checkpoint_not_verified",
        ),
        (
            &server.admin,
            json!({"checkpoint": note, "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (token, body, status, expected) in cases {
        let (found, answer) = server
            .call("POST", "/v1/audit/verify", token, Some(body.clone()))
            .await;
        assert_eq!(
            (found, code(&answer)),
            (status, expected),
            "{body}: {answer}"
        );
    }
    for (method, path) in [
        ("POST", "/v1/audit/checkpoints"),
        ("GET", "/v1/audit/checkpoint"),
    ] {
        let (status, _) = server.call(method, path, &server.agent, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // The right key, given explicitly, works like the server's own.
    let (status, report) = server
        .call(
            "POST",
            "/v1/audit/verify",
            &server.admin,
            Some(json!({"checkpoint": note, "key": signer().verifier().encode()})),
        )
        .await;
    assert_eq!(
        (status, &report["ok"]),
        (StatusCode::OK, &json!(true)),
        "{report}"
    );
    server.stop().await;

    // A server without a checkpoint key: nothing to sign with, nothing signed yet.
    let plain = spawn().await;
    let (status, answer) = plain
        .call("POST", "/v1/audit/checkpoints", &plain.admin, None)
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    let (status, _) = plain
        .call("GET", "/v1/audit/checkpoint", &plain.admin, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    plain.stop().await;
}

#[tokio::test]
async fn new_checkpoints_are_posted_to_the_webhook_and_failures_counted() {
    // A webhook receiver on loopback that keeps what it is sent.
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let app = axum::Router::new().route(
        "/checkpoints",
        axum::routing::post({
            let received = received.clone();
            move |body: String| async move {
                received.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/checkpoints", listener.local_addr().unwrap());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A second server that publishes to a closed port.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);

    for (webhook, reachable) in [(url, true), (dead_url, false)] {
        let server = spawn_with(Options {
            checkpoints: Some(Checkpoints::start(
                signer(),
                Duration::from_secs(3600),
                Publish {
                    file: None,
                    webhook: Some(webhook),
                },
            )),
            ..Options::default()
        })
        .await;
        server.submit(large_refund()).await;
        let (status, signed) = server
            .call("POST", "/v1/audit/checkpoints", &server.admin, None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{signed}");
        let note = signed["note"].as_str().unwrap().to_owned();
        let mut seen = false;
        for _ in 0..200 {
            let checkpoints = server.state.checkpoints().unwrap();
            seen = if reachable {
                received.lock().unwrap().contains(&note)
            } else {
                checkpoints.publish_failures() >= 1
            };
            if seen {
                break;
            }
            // The publisher posts on its own task, after the answer.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            seen,
            "reachable={reachable}: not published or not counted within 5 s"
        );
        if !reachable {
            let response = reqwest::get(server.url(&["metrics"], &[]))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let failures: u64 = response
                .lines()
                .find_map(|line| {
                    line.strip_prefix("countersign_checkpoint_publish_failures_total ")
                })
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(failures >= 1, "{response}");
        }
        server.stop().await;
    }
    receiver.abort();
}
