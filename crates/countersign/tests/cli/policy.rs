//! `countersign policy check | explain | test` as a user runs them: the real binary, real
//! files, exit codes and output.

use std::path::PathBuf;
use std::process::{Command, Output};

use expect_test::expect;

fn countersign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run countersign")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_passes_the_example_and_fails_a_bad_file_with_positions() {
    let ok = countersign(&["policy", "check", "examples/support-desk.toml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("ok (10 rule(s)"));

    let bad = temp_file(
        "bad.toml",
        "version = 1\n[[rules]]\nname = \"a\"\ntire = \"auto\"\nwhen = \"args.x >\"\n",
    );
    let out = countersign(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let dir = bad.parent().unwrap().display().to_string();
    let stderr = text(&out.stderr).replace(&dir, "DIR");
    expect![[r#"
        error[missing-tier]: rule "a" has no `tier` (one of auto, logged, approve, confirm, deny)
          --> DIR/bad.toml:2:1
          |
        2 | [[rules]]
          | ^^^^^^^^^

        error[unknown-key]: unknown key `tire` in rule "a"
          --> DIR/bad.toml:4:1
          |
        4 | tire = "auto"
          | ^^^^
           = help: did you mean `tier`?

        error[cel-syntax]: syntax error in `when` in rule "a": Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
          --> DIR/bad.toml:5:17
          |
        5 | when = "args.x >"
          |                 ^

        DIR/bad.toml: 3 error(s), 0 warning(s)
    "#]].assert_eq(&stderr);

    let json = countersign(&["policy", "check", "--json", bad.to_str().unwrap()]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["diagnostics"][0]["line"], 2);
    assert_eq!(report["diagnostics"][1]["code"], "unknown-key");

    let missing = countersign(&["policy", "check", "no/such/file.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot read no/such/file.toml"));
}

#[test]
fn explain_names_the_rule_and_why_earlier_ones_did_not_match() {
    let out = countersign(&[
        "policy",
        "explain",
        "examples/support-desk.toml",
        "--action",
        "refund.create",
        "--agent",
        "support-bot",
        "--args",
        r#"{"amount": 2500}"#,
        "--confidence",
        "0.62",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tier"], "approve");
    assert_eq!(v["rule"], "large refunds");
    assert_eq!(
        v["reason"],
        "confidence 0.62 is below 0.9 (rule \"large refunds\")"
    );
    assert_eq!(v["rules"][2]["rule"], "small refunds");
    assert!(v["rules"][2]["outcome"].as_str().unwrap().contains("false"));

    let human = countersign(&[
        "policy",
        "explain",
        "examples/support-desk.toml",
        "--action",
        "order.get",
    ]);
    expect![[r#"
        tier:   auto
        rule:   "lookups"
        reason: rule "lookups" matched

        rules:
          ✓ "lookups" (line 17): matched
          · "ticket housekeeping" (line 23): not reached: an earlier rule decided
          · "small refunds" (line 30): not reached: an earlier rule decided
          · "large refunds" (line 37): not reached: an earlier rule decided
          · "huge refunds" (line 51): not reached: an earlier rule decided
          · "replies to the customer" (line 58): not reached: an earlier rule decided
          · "other outbound email" (line 67): not reached: an earlier rule decided
          · "account closure and deletion" (line 74): not reached: an earlier rule decided
          · "destructive tools" (line 82): not reached: an earlier rule decided
          · "never" (line 89): not reached: an earlier rule decided
    "#]]
    .assert_eq(&text(&human.stdout));

    for (flag, value, message) in [
        ("--args", "[1]", "--args must be a JSON object"),
        ("--args", "{", "--args is not valid JSON"),
        (
            "--confidence",
            "1.5",
            "confidence must be a number from 0 to 1",
        ),
        ("--action", "bad name", "not allowed"),
        ("--bogus", "1", "unexpected argument"),
    ] {
        let mut args = vec!["policy", "explain", "examples/support-desk.toml"];
        if flag != "--action" {
            args.extend(["--action", "x.y"]);
        }
        args.extend([flag, value]);
        let out = countersign(&args);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        assert!(
            text(&out.stderr).contains(message),
            "{flag} {value}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn test_runs_cases_and_reports_failures() {
    let ok = countersign(&[
        "policy",
        "test",
        "examples/support-desk.toml",
        "examples/support-desk.cases.toml",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains("11 passed, 0 failed"));

    let cases = temp_file(
        "cases.toml",
        "[[cases]]\nname = \"wrong\"\naction = \"order.get\"\ntier = \"approve\"\n",
    );
    let out = countersign(&[
        "policy",
        "test",
        "examples/support-desk.toml",
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let dir = cases.parent().unwrap().display().to_string();
    expect![[r#"
        FAIL "wrong" (DIR/cases.toml:1)
            tier: - approve
                  + auto
            reason: rule "lookups" matched
        0 passed, 1 failed
    "#]]
    .assert_eq(&text(&out.stdout).replace(&dir, "DIR"));
}
