//! `countersign policy init | replay | suggest` as an operator runs them: the real binary on
//! a real database file seeded with a known history.

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_core::name::Name;
use countersign_core::{ActionName, AgentName, Policy, ProposedAction};
use countersign_store::{Actor, NewAction};
use serde_json::{Value, json};

use super::{BIN, scratch};

pub(super) const POLICY: &str = r#"version = 1

[defaults]
tier = "approve"

# Mail to customers: a person reads it first.
[[rules]]
name = "mail"
actions = ["email.send"]
tier = "approve"

[[rules]]
name = "refunds"
actions = ["refund.create"]
tier = "approve"
"#;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Seeds `db` with `(action, amount, verdict)` decisions under [`POLICY`]; the ids.
pub(super) fn seed(db: &str, rows: &[(&str, i64, Verdict)]) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = countersign_store::open(db).await.unwrap();
        let policy = Policy::parse(POLICY).unwrap();
        let lead = Actor {
            name: Name::parse("lena").unwrap(),
            groups: Vec::new(),
            token_id: None,
            admin: false,
        };
        let mut ids = Vec::new();
        for (action, amount, verdict) in rows {
            let mut proposal = ProposedAction::new(
                ActionName::parse(action).unwrap(),
                AgentName::parse("bot").unwrap(),
            );
            proposal.args = json!({"amount": amount}).as_object().unwrap().clone();
            let now = Utc::now();
            let record = store
                .submit(NewAction::classify(&policy, proposal, now))
                .await
                .unwrap()
                .record;
            let request = DecisionRequest {
                verdict: *verdict,
                args: None,
                reason: (*verdict == Verdict::Reject).then(|| "no".to_owned()),
                confirm: None,
                reclassified: None,
            };
            store
                .decide(record.id.clone(), lead.clone(), request, now)
                .await
                .unwrap();
            ids.push(record.id);
        }
        store.close().await;
        ids
    })
}

#[test]
fn init_writes_each_stage_and_each_passes_check() {
    let dir = scratch();
    for stage in ["launch", "early", "mature"] {
        let file = format!("{stage}.toml");
        let out = run(dir.path(), &["policy", "init", "--stage", stage, &file]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let check = run(dir.path(), &["policy", "check", &file, "--json"]);
        assert_eq!(check.status.code(), Some(0));
        let report: Value = serde_json::from_slice(&check.stdout).unwrap();
        assert_eq!(report["warnings"], json!(0), "{report}");
        let policy = std::fs::read_to_string(dir.path().join(&file)).unwrap();
        assert!(policy.contains("Next step") || stage == "mature");
        assert!(policy.contains("countersign policy suggest"));
    }
    let again = run(
        dir.path(),
        &["policy", "init", "--stage", "early", "early.toml"],
    );
    assert_eq!(
        again.status.code(),
        Some(1),
        "never overwrites without --force"
    );
    let unknown = run(dir.path(), &["policy", "init", "--stage", "someday"]);
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn replay_reports_changes_and_the_mistakes_it_would_let_through() {
    let dir = scratch();
    let db = format!("sqlite://{}", dir.path().join("countersign.db").display());
    let mut rows = vec![("refund.create", 40, Verdict::Approve); 5];
    rows.push(("refund.create", 900, Verdict::Reject));
    rows.push(("email.send", 1, Verdict::Approve));
    let ids = seed(&db, &rows);
    let candidate = POLICY.replace(
        "name = \"refunds\"\nactions = [\"refund.create\"]\ntier = \"approve\"",
        "name = \"refunds\"\nactions = [\"refund.create\"]\ntier = \"logged\"",
    );
    std::fs::write(dir.path().join("candidate.toml"), candidate).unwrap();
    let out = run(
        dir.path(),
        &["policy", "replay", "candidate.toml", "--db", &db, "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["total"].as_u64(), report["relaxed"].as_u64()),
        (Some(7), Some(6))
    );
    assert_eq!(report["changes"][0]["outcomes"]["rejected"], json!(1));
    assert_eq!(report["let_through"][0]["id"], json!(ids[5]));
    assert!(
        text(&out.stderr).is_empty(),
        "no progress when stderr is not a terminal"
    );

    let human = run(
        dir.path(),
        &["policy", "replay", "candidate.toml", "--db", &db],
    );
    let shown = text(&human.stdout);
    assert!(
        shown.contains("refund.create: 6 would be logged instead of approve"),
        "{shown}"
    );
    assert!(shown.contains(&ids[5]), "{shown}");

    // A malformed candidate: non-zero, with line and column.
    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 1\n[defaults]\ntier = \"aprove\"\n",
    )
    .unwrap();
    let bad = run(dir.path(), &["policy", "replay", "bad.toml", "--db", &db]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("bad.toml:3:"),
        "{}",
        text(&bad.stderr)
    );
    let since = run(
        dir.path(),
        &[
            "policy",
            "replay",
            "candidate.toml",
            "--db",
            &db,
            "--since",
            "soon",
        ],
    );
    assert_eq!(since.status.code(), Some(1));
    assert!(text(&since.stderr).contains("invalid --since"));
    let missing = run(
        dir.path(),
        &["policy", "replay", "candidate.toml", "--db", "nowhere.db"],
    );
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn suggest_writes_a_changed_copy_and_never_the_file() {
    let dir = scratch();
    let db = format!("sqlite://{}", dir.path().join("countersign.db").display());
    let mut rows = vec![("email.send", 1, Verdict::Approve); 80];
    // Refunds: corrected only above 500, clean below it.
    rows.extend(vec![("refund.create", 20, Verdict::Approve); 80]);
    rows.extend(vec![("refund.create", 700, Verdict::Reject); 4]);
    rows.push(("refund.create", 600, Verdict::Reject));
    seed(&db, &rows);
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let out = run(
        dir.path(),
        &["policy", "suggest", "policy.toml", "--db", &db, "--write"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("relax approve -> logged: rule \"mail\", action email.send"),
        "{shown}"
    );
    assert!(shown.contains("narrow approve -> logged: rule \"refunds\", action refund.create when args.amount < 600"), "{shown}");
    assert!(
        shown.contains("-tier = \"approve\"\n  +tier = \"logged\""),
        "{shown}"
    );
    assert!(
        shown.contains("no rejected, modified or flagged action would have run unreviewed"),
        "{shown}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        POLICY,
        "FILE is never changed"
    );
    let suggested = dir.path().join("policy.suggested.toml");
    let check = run(
        dir.path(),
        &["policy", "check", suggested.to_str().unwrap()],
    );
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let text_of = std::fs::read_to_string(&suggested).unwrap();
    assert!(text_of.contains("# Mail to customers: a person reads it first."));
    assert!(
        text_of.contains("when = \"args.amount < 600\""),
        "{text_of}"
    );

    let json_out = run(
        dir.path(),
        &[
            "policy",
            "suggest",
            "policy.toml",
            "--db",
            &db,
            "--json",
            "--no-replay",
        ],
    );
    let report: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(report["proposals"].as_array().unwrap().len(), 2, "{report}");
    // A stricter bar: nothing.
    let strict = run(
        dir.path(),
        &[
            "policy",
            "suggest",
            "policy.toml",
            "--db",
            &db,
            "--min-decisions",
            "500",
        ],
    );
    assert!(text(&strict.stdout).contains("No change is supported by the evidence yet."));
}
