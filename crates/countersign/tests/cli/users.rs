//! `countersign user add|list|passwd|disable` on a database file: passwords from stdin,
//! identity rules shared with tokens, and refusals with their messages.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::{BIN, Server, TempDir, bootstrap_admin, db, scratch, stderr, stdout};

fn user(dir: &TempDir, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .args(["--db", &db(dir)])
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
    child.wait_with_output().unwrap()
}

/// `user ARGS` through the server at `server` with `token`, the password on stdin.
fn remote(server: &Server, token: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("user")
        .args(args)
        .env("COUNTERSIGN_URL", &server.url)
        .env("COUNTERSIGN_TOKEN", token)
        .env_remove("COUNTERSIGN_DB")
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
    child.wait_with_output().unwrap()
}

#[test]
fn people_are_managed_through_the_server_by_an_admin() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let reviewer = server.token(&admin, &["--role", "reviewer", "--name", "sam"]);
    let pw = "correct horse battery\n";
    let refused = remote(&server, &reviewer, &["add", "eve", "--password-stdin"], pw);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("admin"), "{}", stderr(&refused));
    #[rustfmt::skip]
    let steps: &[(&[&str], &str, i32, &str)] = &[
        (&["add", "Rita", "--groups", "support-leads,Finance", "--password-stdin"], pw, 0, "created rita"),
        (&["add", "rita", "--password-stdin"], pw, 1, "already exists"),
        (&["add", "sam2", "--password-stdin"], "short\n", 1, "a password needs at least 10 characters"),
        (&["add", "system", "--password-stdin"], pw, 1, "reserved"),
        (&["add", "bad name", "--password-stdin"], pw, 1, "invalid name"),
        (&["passwd", "rita", "--password-stdin"], "another good password\n", 0, "changed the password of rita"),
        (&["passwd", "nobody", "--password-stdin"], pw, 1, "nobody"),
        (&["disable", "sam"], "", 1, "sam"),
        (&["add", "sam", "--password-stdin"], pw, 0, "created sam"),
        (&["disable", "sam"], "", 0, "disabled sam"),
    ];
    for (args, input, code, expected) in steps {
        let output = remote(&server, &admin, args, input);
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {said}");
        assert!(
            said.contains(expected),
            "{args:?}: expected {expected:?} in {said}"
        );
    }
    // Disabling sam revoked his reviewer token too.
    let after = remote(&server, &reviewer, &["list"], "");
    assert_eq!(after.status.code(), Some(1));
    let list = remote(&server, &admin, &["list"], "");
    assert_eq!(
        stdout(&list),
        "NAME  GROUPS                 ROLE      STATE\n\
         rita  support-leads,finance  reviewer  active\n\
         sam   -                      reviewer  disabled\n"
    );
    let json = remote(&server, &admin, &["list", "--json"], "");
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        !value.to_string().contains("argon2"),
        "never a hash: {value}"
    );
}

#[test]
fn people_are_added_listed_changed_and_disabled() {
    let dir = scratch();
    let pw = "correct horse battery\n";
    #[rustfmt::skip]
    let steps: &[(&[&str], &str, i32, &str)] = &[
        (&["add", "Rita", "--groups", "support-leads,Finance", "--password-stdin"], pw, 0, "created rita"),
        (&["add", "rita", "--password-stdin"], pw, 1, "a user named \"rita\" already exists"),
        (&["add", "sam", "--password-stdin"], "short\n", 1, "a password needs at least 10 characters"),
        (&["add", "system", "--password-stdin"], pw, 1, "reserved"),
        (&["add", "bad name", "--password-stdin"], pw, 1, "invalid name"),
        (&["add", "ada", "--admin", "--password-stdin"], pw, 0, "created ada (admin)"),
        (&["passwd", "rita", "--password-stdin"], "another good password\n", 0, "changed the password of rita"),
        (&["passwd", "nobody", "--password-stdin"], pw, 1, "no user named \"nobody\""),
        (&["disable", "rita"], "", 0, "disabled rita"),
    ];
    for (args, input, code, expected) in steps {
        let output = user(&dir, args, input);
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {said}");
        assert!(
            said.contains(expected),
            "{args:?}: expected {expected:?} in {said}"
        );
    }
    let list = user(&dir, &["list"], "");
    assert_eq!(
        stdout(&list),
        "NAME  GROUPS                 ROLE      STATE\n\
         ada   -                      admin     active\n\
         rita  support-leads,finance  reviewer  disabled\n"
    );
    // An agent token may not take a person's name.
    let token = Command::new(BIN)
        .args([
            "token",
            "create",
            "--role",
            "agent",
            "--name",
            "ada",
            "--db",
            &db(&dir),
        ])
        .output()
        .unwrap();
    assert_eq!(token.status.code(), Some(1));
    assert!(
        stderr(&token).contains("is a person's name"),
        "{}",
        stderr(&token)
    );
}
