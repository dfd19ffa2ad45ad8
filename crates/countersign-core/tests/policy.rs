//! The policy engine through its public API: `policy check` diagnostics with their
//! positions, classification tables, fail-closed evaluation, the shipped example policy,
//! and a property test that the indexed engine and the naive baseline always agree.

use chrono::{DateTime, Utc};
use countersign_core::policy::{self, NaivePolicy, OnTimeout, Policy};
use countersign_core::{ActionName, AgentName, Approvers, Confidence, Name, ProposedAction, Tier};
use expect_test::expect;
use proptest::prelude::*;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn request(action: &str, agent: &str, args: Value, confidence: Option<f64>) -> ProposedAction {
    let mut r = ProposedAction::new(
        ActionName::parse(action).unwrap(),
        AgentName::parse(agent).unwrap(),
    );
    r.args = args.as_object().unwrap().clone();
    r.confidence = confidence.map(|c| Confidence::new(c).unwrap());
    r
}

/// Checks `source` and returns `(code, line, column)` of every diagnostic.
fn diagnostics(source: &str) -> Vec<(&'static str, usize, usize)> {
    policy::check(source)
        .diagnostics
        .iter()
        .map(|d| (d.code, d.line, d.column))
        .collect()
}

#[track_caller]
fn check_diagnostics(source: &str, expected: &[(&str, usize, usize)]) {
    let found = diagnostics(source);
    let found: Vec<(&str, usize, usize)> = found.iter().map(|(c, l, col)| (*c, *l, *col)).collect();
    assert_eq!(found, expected, "diagnostics of:\n{source}");
}

#[test]
fn check_reports_each_problem_with_its_position() {
    type Expected<'a> = &'a [(&'a str, usize, usize)];
    let cases: &[(&str, Expected)] = &[
        ("version = 1\n", &[]),
        ("", &[("missing-version", 1, 1)]),
        ("version = 2\n", &[("unsupported-version", 1, 11)]),
        ("version = 1\n[[rules]\n", &[("toml-syntax", 2, 9)]),
        ("version = 1\nfoo = 1\n", &[("unknown-key", 2, 1)]),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntire = \"auto\"\n",
            &[("missing-tier", 2, 1), ("unknown-key", 4, 1)],
        ),
        (
            "version = 1\n[[rules]]\ntier = \"auto\"\n",
            &[("missing-name", 2, 1)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"sometimes\"\n",
            &[("unknown-tier", 4, 8)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = 3\n",
            &[("wrong-type", 4, 8)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nactions = [\"a b\"]\ntier = \"auto\"\n",
            &[("bad-glob", 4, 12)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nactions = []\ntier = \"auto\"\n",
            &[("empty-actions", 4, 11)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nagents = [\"\"]\ntier = \"auto\"\n",
            &[("bad-glob", 4, 11)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nwhen = \"args.x >\"\ntier = \"auto\"\n",
            &[("cel-syntax", 4, 17)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nwhen = \"args.x > 1 && user == 'x'\"\ntier = \"auto\"\n",
            &[("cel-unknown-variable", 4, 23)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\nactions = [\"x\"]\ntier = \"auto\"\n[[rules]]\nname = \"a\"\nactions = [\"y\"]\ntier = \"auto\"\n",
            &[("duplicate-rule-name", 7, 8)],
        ),
        (
            "version = 1\n[defaults]\nsla = \"15 min\"\n",
            &[("bad-duration", 3, 7)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\nescalation_sla = \"0s\"\n",
            &[("bad-duration", 5, 18)],
        ),
        (
            "version = 1\n[defaults]\nreview_sample = 1.5\n",
            &[("out-of-range", 3, 17)],
        ),
        (
            "version = 1\n[defaults]\nremind_at = [\"50%\", \"150%\", \"5 min\"]\n",
            &[("bad-reminder", 3, 21), ("bad-reminder", 3, 29)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\nremind_at = \"50%\"\n",
            &[("wrong-type", 5, 13)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"logged\"\nreview_sample = -0.1\n",
            &[("out-of-range", 5, 17)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\nmin_confidence = 2\n",
            &[("out-of-range", 5, 18)],
        ),
        (
            "version = 1\n[defaults]\non_timeout = \"approve\"\n",
            &[("unsafe-on-timeout", 3, 14)],
        ),
        (
            "version = 1\n[defaults]\non_timeout = \"approve\"\nallow_auto_approve = true\n",
            &[],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\non_timeout = \"approve\"\n",
            &[("unsafe-on-timeout", 5, 14)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\non_timeout = \"approve\"\nallow_auto_approve = true\n",
            &[],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"confirm\"\non_timeout = \"approve\"\nallow_auto_approve = true\n",
            &[("unsafe-on-timeout", 5, 14)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\non_timeout = \"escalate\"\n",
            &[("escalate-without-groups", 5, 14)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"confirm\"\napprovals = 1\n",
            &[("confirm-needs-two", 4, 8)],
        ),
        (
            "version = 1\n[defaults]\ntier = \"auto\"\n",
            &[("permissive-default", 3, 8)],
        ),
        (
            "version = 1\n[defaults]\ntier = \"logged\"\n",
            &[("permissive-default", 3, 8)],
        ),
        (
            "version = 1\n[defaults]\nmin_confidence = 0.7\n[[rules]]\nname = \"a\"\ntier = \"approve\"\non_timeout = \"approve\"\nallow_auto_approve = true\n",
            &[("approve-on-timeout-not-for-raised", 7, 14)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"logged\"\nmin_confidence = 0.9\non_timeout = \"approve\"\nallow_auto_approve = true\n",
            &[("approve-on-timeout-not-for-raised", 6, 14)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"a\"\ntier = \"approve\"\nreview_sample = 0.5\n",
            &[("no-effect", 4, 8)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"reads\"\nactions = [\"*.get\"]\ntier = \"auto\"\n[[rules]]\nname = \"orders\"\nactions = [\"order.get\"]\ntier = \"approve\"\n",
            &[("unreachable-rule", 6, 1)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"reads\"\nactions = [\"*.get\"]\nwhen = \"args.x > 1\"\ntier = \"auto\"\n[[rules]]\nname = \"orders\"\nactions = [\"order.get\"]\ntier = \"approve\"\n",
            &[],
        ),
        (
            "version = 1\n[[rules]]\nname = \"reads\"\nactions = [\"*.get\"]\ntier = \"auto\"\n[[rules]]\nname = \"users\"\nactions = [\"user.get\", \"user.put\"]\ntier = \"approve\"\n",
            &[("unreachable-pattern", 8, 12)],
        ),
        (
            "version = 1\n[[rules]]\nname = \"bots\"\nagents = [\"bot-*\"]\ntier = \"auto\"\n[[rules]]\nname = \"bot 1\"\nagents = [\"bot-1\"]\ntier = \"approve\"\n[[rules]]\nname = \"anyone\"\ntier = \"approve\"\n",
            &[("unreachable-rule", 6, 1)],
        ),
    ];
    for (source, expected) in cases {
        check_diagnostics(source, expected);
    }
}

#[test]
fn check_reports_all_problems_at_once() {
    let source = "version = 1\n[defaults]\ntier = \"aprove\"\nsla = \"1 hour\"\n[[rules]]\nname = \"a\"\ntire = \"auto\"\n[[rules]]\nname = \"b\"\ntier = \"auto\"\nwhen = \"arg.x\"\n";
    let checked = policy::check(source);
    assert!(checked.policy.is_none());
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            "unknown-tier",
            "bad-duration",
            "missing-tier",
            "unknown-key",
            "cel-unknown-variable"
        ]
    );
    let rendered: Vec<String> = checked
        .diagnostics
        .iter()
        .map(|d| d.render("p.toml", source))
        .collect();
    expect![[r#"
        error[unknown-tier]: `tier` in [defaults]: expected one of "auto", "logged", "approve", "confirm", "deny", found "aprove"
          --> p.toml:3:8
          |
        3 | tier = "aprove"
          |        ^^^^^^^^
           = help: did you mean "approve"?

        error[bad-duration]: `sla` in [defaults]: expected a duration like "30s", "15m", "2h" or "1d", found "1 hour"
          --> p.toml:4:7
          |
        4 | sla = "1 hour"
          |       ^^^^^^^^

        error[missing-tier]: rule "a" has no `tier` (one of auto, logged, approve, confirm, deny)
          --> p.toml:5:1
          |
        5 | [[rules]]
          | ^^^^^^^^^

        error[unknown-key]: unknown key `tire` in rule "a"
          --> p.toml:7:1
          |
        7 | tire = "auto"
          | ^^^^
           = help: did you mean `tier`?

        error[cel-unknown-variable]: `when` in rule "b" uses `arg`, which is not a variable
          --> p.toml:11:9
           |
        11 | when = "arg.x"
           |         ^^^
           = help: did you mean `args`? The variables are: action, agent, args, context, confidence, hints, now
    "#]].assert_eq(&rendered.join("\n"));
}

const POLICY: &str = r#"
version = 1

[defaults]
tier = "approve"
min_confidence = 0.7

[[rules]]
name = "lookups"
actions = ["*.get", "*.list"]
tier = "auto"

[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 100"
tier = "logged"
review_sample = 0.1

[[rules]]
name = "large refunds"
actions = ["refund.create"]
agents = ["support-*"]
when = "args.amount > 100"
tier = "approve"
approvers = ["support-leads"]
min_confidence = 0.9
sla = "15m"
on_timeout = "escalate"
escalate_to = ["finance"]
escalation_sla = "1h"

[[rules]]
name = "closures"
actions = ["account.close"]
tier = "confirm"
approvers = ["admins"]

[[rules]]
name = "drops"
actions = ["db.drop"]
tier = "deny"

[[rules]]
name = "arith"
actions = ["calc.*"]
when = "args.n + 1 == 3"
tier = "auto"
"#;

#[test]
fn classification_table() {
    let policy = Policy::parse(POLICY).unwrap();
    let naive = NaivePolicy::new(&policy);
    // (action, agent, args, confidence): one request a line; the table below says what
    // each gets, and why.
    #[rustfmt::skip]
    let requests: &[(&str, &str, Value, Option<f64>)] = &[
        ("order.get", "bot", json!({}), None),
        ("order.get.extra", "bot", json!({}), None),
        ("refund.create", "support-bot", json!({"amount": 50}), Some(0.95)),
        ("refund.create", "support-bot", json!({"amount": 500}), Some(0.95)),
        ("refund.create", "sales-bot", json!({"amount": 500}), Some(0.95)),
        ("refund.create", "Support-Bot", json!({"amount": 500}), Some(0.95)),
        ("refund.create", "support-bot", json!({"amount": 500}), Some(0.62)),
        ("refund.create", "support-bot", json!({"amount": 50}), Some(0.5)),
        ("refund.create", "support-bot", json!({"amount": 50}), None),
        ("order.get", "bot", json!({}), Some(0.1)),
        ("account.close", "bot", json!({}), None),
        ("db.drop", "bot", json!({}), Some(0.1)),
        ("calc.add", "bot", json!({"n": 2}), None),
        ("calc.add", "bot", json!({"n": 5}), None),
        ("refund.create", "support-bot", json!({}), None),
        ("calc.add", "bot", json!({}), None),
        ("calc.add", "bot", json!({"n": "two"}), None),
    ];
    let mut table = String::new();
    for (action, agent, args, confidence) in requests {
        let r = request(action, agent, args.clone(), *confidence);
        let c = policy.classify(&r, now());
        assert_eq!(
            naive.classify(&r, now()).tier,
            c.tier,
            "naive: {action} {args}"
        );
        let rule = policy.rule_name(&c).unwrap_or("-");
        let confidence = confidence.map_or("-".to_owned(), |c| c.to_string());
        table.push_str(&format!(
            "{action} {agent} {args} {confidence} => {} {rule:?}: {}\n",
            c.tier,
            policy.reason(&c)
        ));
    }
    expect![[r#"
        order.get bot {} - => auto "lookups": rule "lookups" matched
        order.get.extra bot {} - => approve "-": no rule matched; the policy default tier is approve
        refund.create support-bot {"amount":50} 0.95 => logged "small refunds": rule "small refunds" matched (args.amount <= 100)
        refund.create support-bot {"amount":500} 0.95 => approve "large refunds": rule "large refunds" matched (args.amount > 100)
        refund.create sales-bot {"amount":500} 0.95 => approve "-": no rule matched; the policy default tier is approve
        refund.create Support-Bot {"amount":500} 0.95 => approve "large refunds": rule "large refunds" matched (args.amount > 100)
        refund.create support-bot {"amount":500} 0.62 => approve "large refunds": confidence 0.62 is below 0.9 (rule "large refunds")
        refund.create support-bot {"amount":50} 0.5 => approve "small refunds": confidence 0.5 is below 0.7 (policy default)
        refund.create support-bot {"amount":50} - => logged "small refunds": rule "small refunds" matched (args.amount <= 100)
        order.get bot {} 0.1 => approve "lookups": confidence 0.1 is below 0.7 (policy default)
        account.close bot {} - => confirm "closures": rule "closures" matched
        db.drop bot {} 0.1 => deny "drops": rule "drops" matched
        calc.add bot {"n":2} - => auto "arith": rule "arith" matched (args.n + 1 == 3)
        calc.add bot {"n":5} - => approve "-": no rule matched; the policy default tier is approve
        refund.create support-bot {} - => approve "small refunds": the condition of rule "small refunds" could not be evaluated (no such key: amount (use has(...) to test for optional fields)), so the action is treated as if that rule matched, and needs approval at least (2 rules might have matched; the strictest review settings of them all apply)
        calc.add bot {} - => approve "arith": the condition of rule "arith" could not be evaluated (no such key: n (use has(...) to test for optional fields)), so the action is treated as if that rule matched, and needs approval at least
        calc.add bot {"n":"two"} - => approve "arith": the condition of rule "arith" could not be evaluated (Unsupported binary operator 'add': String("two"), Int(1)), so the action is treated as if that rule matched, and needs approval at least
    "#]].assert_eq(&table);
}

#[test]
fn failed_conditions_take_the_strictest_rule_they_might_have_hit() {
    let policy = Policy::parse(
        r#"version = 1
[[rules]]
name = "maybe deny"
when = "args.flag"
tier = "deny"
[[rules]]
name = "everything else"
tier = "auto"
"#,
    )
    .unwrap();
    let c = policy.classify(&request("x.y", "bot", json!({}), None), now());
    assert_eq!(
        c.tier,
        Tier::Deny,
        "an error on a deny rule must not let the action through"
    );
    assert_eq!(policy.rule_name(&c), Some("maybe deny"));
    let c = policy.classify(&request("x.y", "bot", json!({"flag": false}), None), now());
    assert_eq!(c.tier, Tier::Auto);
}

#[test]
fn review_settings_follow_rule_then_defaults() {
    let policy = Policy::parse(POLICY).unwrap();
    let c = policy.classify(
        &request(
            "refund.create",
            "support-bot",
            json!({"amount": 500}),
            Some(0.95),
        ),
        now(),
    );
    let s = policy.review_settings(&c);
    assert_eq!(
        s.approvers,
        Approvers::Groups(vec![Name::parse("support-leads").unwrap()])
    );
    assert_eq!(s.approvals_required, 1);
    assert_eq!(s.sla.to_string(), "15m");
    assert_eq!(s.on_timeout, OnTimeout::Escalate);
    assert_eq!(s.escalate_to, ["finance"]);
    assert_eq!(s.escalation_sla.to_string(), "1h");
    let c = policy.classify(&request("account.close", "bot", json!({}), None), now());
    let s = policy.review_settings(&c);
    assert_eq!((s.approvals_required, s.on_timeout), (2, OnTimeout::Reject));
    assert_eq!(s.sla.to_string(), "30m");
}

#[test]
fn auto_approve_on_timeout_only_when_allowed_and_never_after_escalation_for_safety() {
    let policy = Policy::parse(
        r#"version = 1
[defaults]
min_confidence = 0.5
[[rules]]
name = "pings"
actions = ["net.ping"]
when = "args.n > 0"
tier = "approve"
on_timeout = "approve"
allow_auto_approve = true
"#,
    )
    .unwrap();
    let settings = |args: Value, confidence| {
        let c = policy.classify(&request("net.ping", "bot", args, confidence), now());
        policy.review_settings(&c).on_timeout
    };
    assert_eq!(settings(json!({"n": 1}), None), OnTimeout::Approve);
    assert_eq!(
        settings(json!({"n": 1}), Some(0.1)),
        OnTimeout::Reject,
        "low confidence"
    );
    assert_eq!(
        settings(json!({}), None),
        OnTimeout::Reject,
        "failed condition"
    );
}

#[test]
fn builtin_policy_reads_are_auto_everything_else_needs_approval() {
    let policy = Policy::builtin();
    for (action, tier) in [
        ("order.get", Tier::Auto),
        ("customer.list", Tier::Auto),
        ("kb.search", Tier::Auto),
        ("file.read", Tier::Auto),
        ("instance.describe", Tier::Auto),
        ("refund.create", Tier::Approve),
        ("get", Tier::Auto),
        ("list", Tier::Auto),
        ("describe", Tier::Auto),
        ("delete", Tier::Approve),
        ("forget", Tier::Approve),
        ("order.getter", Tier::Approve),
        ("get.all", Tier::Approve),
    ] {
        let c = policy.classify(&request(action, "bot", json!({}), None), now());
        assert_eq!(c.tier, tier, "{action}");
    }
}

#[test]
fn example_policy_and_its_cases_pass() {
    let source = include_str!("../../../examples/support-desk.toml");
    let checked = policy::check(source);
    assert_eq!(checked.diagnostics, [], "the example policy is clean");
    let policy = checked.policy.unwrap();
    let cases = include_str!("../../../examples/support-desk.cases.toml");
    let report = policy::run_cases(&policy, cases, now()).unwrap();
    assert!(report.total >= 10);
    assert_eq!(report.failures, [], "{}", report.render("cases"));
}

#[test]
fn policy_test_reports_failures_as_a_diff() {
    let policy = Policy::parse(POLICY).unwrap();
    let cases = r#"
[[cases]]
name = "wrong expectation"
action = "refund.create"
agent = "support-bot"
args = { amount = 5000 }
confidence = 0.95
tier = "logged"
rule = "small refunds"

[[cases]]
action = "order.get"
tier = "auto"
rule = "lookups"
"#;
    let report = policy::run_cases(&policy, cases, now()).unwrap();
    assert_eq!((report.total, report.failures.len()), (2, 1));
    expect![[r#"
        FAIL "wrong expectation" (cases.toml:2)
            tier: - logged
                  + approve
            rule: - "small refunds"
                  + "large refunds"
            reason: rule "large refunds" matched (args.amount > 100)
        1 passed, 1 failed
    "#]]
    .assert_eq(&report.render("cases.toml"));

    let bad = "[[cases]]\naction = \"a b\"\ntier = \"auto\"\n[[cases]]\naction = \"x\"\ntier = \"sometimes\"\n";
    let errors = policy::run_cases(&policy, bad, now()).unwrap_err();
    let positions: Vec<(usize, usize)> = errors.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(positions, [(2, 10), (6, 8)]);
    let unknown = policy::run_cases(
        &policy,
        "[[cases]]\naction = \"x\"\ntier = \"auto\"\nexpect = 1\n",
        now(),
    )
    .unwrap_err();
    assert_eq!((unknown[0].line, unknown[0].code), (4, "cases-syntax"));
}

// --- the fast engine agrees with the naive baseline on random policies -------------------

const ACTION_PATTERNS: &[&str] = &[
    "a.get", "a.put", "b.get", "b.del", "c", "*.get", "a.*", "*", "?.get", "b*",
];
const AGENT_PATTERNS: &[&str] = &["bot-1", "bot-*", "*", "x"];
const CONDITIONS: &[&str] = &[
    "args.n > 5",
    "args.n + 1 == 3",
    "args.s == 'x'",
    "has(args.n)",
    "confidence < 0.5",
    "hints.destructive",
    "args.missing > 1",
    "context.k == 1",
    "action.startsWith('a')",
    "agent.endsWith('1')",
    "true",
    "false",
    "args.n",
    "has(args.n) && args.n >= 2",
    "args.s != 'y' || args.n < 0",
    "!(args.n <= 3)",
    "has(hints.destructive) && hints.destructive",
    "args.n == 2.5",
    "args.s > 'w'",
];
const TIERS: &[&str] = &["auto", "logged", "approve", "confirm", "deny"];

const GROUPS: &[&str] = &["leads", "finance", "ops"];
const SLAS: &[&str] = &["5m", "15m", "1h"];
const ON_TIMEOUT: &[&str] = &["reject", "escalate", "approve"];

#[derive(Clone, Debug)]
struct GenRule {
    actions: Vec<usize>,
    agents: Option<Vec<usize>>,
    when: Option<usize>,
    tier: usize,
    min_confidence: Option<u8>,
    settings: GenSettings,
}

/// A rule's review settings.
#[derive(Clone, Debug)]
struct GenSettings {
    approvers: Option<Vec<usize>>,
    approvals: Option<u32>,
    sla: Option<usize>,
    on_timeout: Option<usize>,
    escalate_to: Vec<usize>,
}

fn settings_strategy() -> impl Strategy<Value = GenSettings> {
    (
        prop::option::weighted(0.5, prop::collection::vec(0..GROUPS.len(), 1..3)),
        prop::option::weighted(0.3, 1u32..4),
        prop::option::weighted(0.5, 0..SLAS.len()),
        prop::option::weighted(0.5, 0..ON_TIMEOUT.len()),
        prop::collection::vec(0..GROUPS.len(), 1..3),
    )
        .prop_map(
            |(approvers, approvals, sla, on_timeout, escalate_to)| GenSettings {
                approvers,
                approvals,
                sla,
                on_timeout,
                escalate_to,
            },
        )
}

fn rule_strategy() -> impl Strategy<Value = GenRule> {
    (
        prop::collection::vec(0..ACTION_PATTERNS.len(), 1..3),
        prop::option::weighted(0.3, prop::collection::vec(0..AGENT_PATTERNS.len(), 1..3)),
        prop::option::weighted(0.8, 0..CONDITIONS.len()),
        0..TIERS.len(),
        prop::option::weighted(0.2, 0u8..=10),
        settings_strategy(),
    )
        .prop_map(
            |(actions, agents, when, tier, min_confidence, settings)| GenRule {
                actions,
                agents,
                when,
                tier,
                min_confidence,
                settings,
            },
        )
}

fn render(rules: &[GenRule], default_tier: usize) -> String {
    let mut out = format!(
        "version = 1\n[defaults]\ntier = \"{}\"\nmin_confidence = 0.3\n",
        TIERS[default_tier]
    );
    for (i, r) in rules.iter().enumerate() {
        let list = |idx: &[usize], names: &[&str]| {
            idx.iter()
                .map(|i| format!("\"{}\"", names[*i]))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!("[[rules]]\nname = \"r{i}\"\n"));
        out.push_str(&format!(
            "actions = [{}]\n",
            list(&r.actions, ACTION_PATTERNS)
        ));
        if let Some(agents) = &r.agents {
            out.push_str(&format!("agents = [{}]\n", list(agents, AGENT_PATTERNS)));
        }
        if let Some(w) = r.when {
            out.push_str(&format!("when = \"{}\"\n", CONDITIONS[w]));
        }
        out.push_str(&format!("tier = \"{}\"\n", TIERS[r.tier]));
        if let Some(m) = r.min_confidence {
            out.push_str(&format!("min_confidence = {}\n", f64::from(m) / 10.0));
        }
        let settings = &r.settings;
        let confirm = TIERS[r.tier] == "confirm";
        if let Some(approvers) = &settings.approvers {
            out.push_str(&format!("approvers = [{}]\n", list(approvers, GROUPS)));
        }
        if let Some(approvals) = settings.approvals {
            let approvals = if confirm { approvals.max(2) } else { approvals };
            out.push_str(&format!("approvals = {approvals}\n"));
        }
        if let Some(sla) = settings.sla {
            out.push_str(&format!("sla = \"{}\"\n", SLAS[sla]));
        }
        match settings.on_timeout.map(|t| ON_TIMEOUT[t]) {
            Some("approve") if confirm => {}
            Some("approve") => {
                out.push_str("on_timeout = \"approve\"\nallow_auto_approve = true\n")
            }
            Some("escalate") => out.push_str(&format!(
                "on_timeout = \"escalate\"\nescalate_to = [{}]\n",
                list(&settings.escalate_to, GROUPS)
            )),
            Some(other) => out.push_str(&format!("on_timeout = \"{other}\"\n")),
            None => {}
        }
    }
    out
}

/// A generated policy with the rules that the checker finds unreachable dropped.
fn build(mut rules: Vec<GenRule>, default_tier: usize) -> Policy {
    loop {
        let source = render(&rules, default_tier);
        let checked = policy::check(&source);
        if let Some(policy) = checked.policy {
            return policy;
        }
        let dead: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                assert_eq!(
                    d.code, "unreachable-rule",
                    "generated policy error: {d}\n{source}"
                );
                d.message.split('"').nth(1).unwrap().to_owned()
            })
            .collect();
        let mut i = 0;
        rules.retain(|_| {
            i += 1;
            !dead.contains(&format!("r{}", i - 1))
        });
    }
}

fn request_strategy() -> impl Strategy<Value = ProposedAction> {
    (
        prop::sample::select(vec![
            "a.get", "a.put", "b.get", "b.del", "c", "z.get", "ab", "bb.x",
        ]),
        prop::sample::select(vec!["bot-1", "bot-2", "x"]),
        prop::option::of(-3i64..8),
        prop::option::of(prop::sample::select(vec!["x", "y"])),
        prop::option::of(0u8..=10),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(|(action, agent, n, s, confidence, destructive, k)| {
            let mut args = serde_json::Map::new();
            if let Some(n) = n {
                args.insert("n".into(), json!(n));
            }
            if let Some(s) = s {
                args.insert("s".into(), json!(s));
            }
            let mut r = request(
                action,
                agent,
                Value::Object(args),
                confidence.map(|c| f64::from(c) / 10.0),
            );
            r.hints.destructive = destructive;
            if k {
                r.context.insert("k".into(), json!(1));
            }
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fast_engine_agrees_with_naive_baseline(
        rules in prop::collection::vec(rule_strategy(), 0..25),
        default_tier in 0..TIERS.len(),
        requests in prop::collection::vec(request_strategy(), 1..12),
    ) {
        let policy = build(rules, default_tier);
        let naive = NaivePolicy::new(&policy);
        for r in &requests {
            let fast = policy.classify(r, now());
            let slow = naive.classify(r, now());
            prop_assert_eq!(fast.tier, slow.tier, "tier for {:?}", r);
            prop_assert_eq!(fast.rule, slow.rule, "rule for {:?}", r);
            prop_assert_eq!(fast.matched, slow.matched);
            prop_assert_eq!(fast.failure.map(|f| f.rule), slow.failure.map(|f| f.rule));
            prop_assert_eq!(fast.low_confidence, slow.low_confidence);
            let explained = policy.explain(r, now()).classification;
            prop_assert_eq!(explained.tier, fast.tier);
            prop_assert_eq!(explained.rule, fast.rule);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A condition that fails to evaluate never loosens review: every rule that might have
    /// matched (each failing rule, and the rule that did match or `[defaults]`) is a
    /// candidate, and the settings given are at least as strict, setting by setting, as each
    /// candidate's own — and never an auto-approval.
    #[test]
    fn failing_conditions_never_loosen_review_settings(
        rules in prop::collection::vec(rule_strategy(), 1..20),
        default_tier in 0..TIERS.len(),
        requests in prop::collection::vec(request_strategy(), 1..12),
    ) {
        let policy = build(rules, default_tier);
        for r in &requests {
            let c = policy.classify(r, now());
            // A denied action is never reviewed; nothing to loosen.
            if c.failed.is_empty() || c.tier == Tier::Deny {
                continue;
            }
            let given = policy.review_settings(&c);
            prop_assert_ne!(given.on_timeout, OnTimeout::Approve);
            prop_assert!(c.tier >= Tier::Approve);
            let base_tier = c.matched.map_or(policy.defaults.tier, |i| policy.rules[i].tier);
            let candidates = c.failed.iter().map(|&i| (Some(i), policy.rules[i].tier))
                .chain([(c.matched, base_tier)]);
            for (rule, tier) in candidates {
                prop_assert_ne!(tier, Tier::Deny, "a deny candidate makes the action denied");
                prop_assert!(c.tier >= tier, "tier {} below candidate {:?}'s {}", c.tier, rule, tier);
                let alone = policy.rule_settings(rule, tier.max(Tier::Approve), false);
                prop_assert!(
                    given.at_least_as_strict_as(&alone),
                    "for {:?}: {:?} is looser than candidate {:?}'s {:?}", r, given, rule, alone
                );
            }
        }
    }
}

#[test]
fn a_failing_condition_takes_the_strictest_settings_of_every_candidate() {
    // The story: `"amount": "2500"` (a string) makes both refund conditions fail. Before,
    // `small refunds` (any reviewer, 30m, reject) governed; now every candidate counts.
    let policy = Policy::parse(
        r#"version = 1
[defaults]
tier = "approve"
sla = "1h"
[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 100"
tier = "logged"
sla = "30m"
[[rules]]
name = "large refunds"
actions = ["refund.create"]
when = "args.amount > 100"
tier = "approve"
approvers = ["support-leads", "finance"]
approvals = 2
sla = "15m"
on_timeout = "escalate"
escalate_to = ["finance"]
[[rules]]
name = "refunds to leads"
actions = ["refund.create"]
when = "args.amount > 100 || args.vip"
tier = "approve"
approvers = ["support-leads"]
"#,
    )
    .unwrap();
    let c = policy.classify(
        &request("refund.create", "bot", json!({"amount": "2500"}), None),
        now(),
    );
    assert_eq!(c.tier, Tier::Approve);
    assert_eq!(c.failed, [0, 1, 2]);
    let s = policy.review_settings(&c);
    assert_eq!(
        s.approvers,
        Approvers::Groups(vec![Name::parse("support-leads").unwrap()])
    );
    assert_eq!(s.approvals_required, 2);
    assert_eq!(s.sla.to_string(), "15m");
    // `reject` (small refunds, refunds to leads) is stricter than `escalate`.
    assert_eq!(s.on_timeout, OnTimeout::Reject);
    // Candidates whose groups share none: only admins decide.
    let policy = Policy::parse(
        r#"version = 1
[[rules]]
name = "a"
actions = ["x.y"]
when = "args.n > 1"
tier = "approve"
approvers = ["finance"]
[[rules]]
name = "b"
actions = ["x.y"]
tier = "approve"
approvers = ["ops"]
"#,
    )
    .unwrap();
    let c = policy.classify(&request("x.y", "bot", json!({}), None), now());
    assert_eq!(policy.review_settings(&c).approvers, Approvers::AdminsOnly);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the file holds, `check` reports instead of panicking, positions stay inside
    /// the file, rendering works, and a policy that loads can classify.
    #[test]
    fn check_never_panics_on_damaged_policies(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(vec![
            "\"", "'", "[", "]", "=", "\n", "é", "{", "}", "#", "*", "args.", "&&", "\\", "1e999", " ", "tier",
        ])), 1..6),
    ) {
        let mut source = include_str!("../../../examples/support-desk.toml").to_owned();
        for (at, op, text) in edits {
            let boundaries: Vec<usize> = (0..=source.len()).filter(|i| source.is_char_boundary(*i)).collect();
            let i = boundaries[at.index(boundaries.len())];
            match op {
                0 => source.insert_str(i, text),
                1 => {
                    let end = boundaries.iter().copied().find(|&e| e > i + text.len()).unwrap_or(source.len());
                    source.replace_range(i..end, "");
                }
                _ => source.insert_str(i, "\n[[rules]]\n"),
            }
        }
        let checked = policy::check(&source);
        let lines = source.lines().count().max(1);
        for d in &checked.diagnostics {
            prop_assert!(d.line >= 1 && d.line <= lines + 1, "{d} outside {lines} lines");
            let _ = d.render("p.toml", &source);
        }
        if let Some(policy) = checked.policy {
            let r = request("refund.create", "support-bot", json!({"amount": 5}), Some(0.8));
            let _ = policy.classify(&r, now());
        }
    }
}

#[test]
fn comprehension_macros_and_type_names_are_not_variables() {
    let items = json!({"items": [{"price": 5}, {"price": 500}], "amount": 5, "tags": ["bot-1"]});
    // (condition, does it hold for `items` from agent bot-1)
    let cases: &[(&str, bool)] = &[
        ("args.items.exists(i, i.price > 100)", true),
        ("args.items.all(i, i.price > 100)", false),
        ("args.items.exists_one(i, i.price > 100)", true),
        ("args.items.map(i, i.price).exists(p, p > 400)", true),
        ("size(args.items.filter(i, i.price > 100)) == 1", true),
        ("args.items.exists(args, args.price > 1000)", false),
        ("args.tags.exists(t, t == agent)", true),
        (
            "args.items.exists(i, args.items.all(j, j.price <= i.price))",
            true,
        ),
        ("type(args.amount) == int", true),
        ("type(args.amount) == string", false),
        ("type(args.items) == list && type(args) == map", true),
    ];
    for (condition, holds) in cases {
        let source = format!(
            "version = 1\n[[rules]]\nname = \"r\"\nactions = [\"x.y\"]\nwhen = \"{condition}\"\ntier = \"deny\"\n"
        );
        let checked = policy::check(&source);
        assert!(
            checked.diagnostics.is_empty(),
            "{condition}: {:?}",
            checked.diagnostics
        );
        let c = checked
            .policy
            .unwrap()
            .classify(&request("x.y", "bot-1", items.clone(), None), now());
        let expected = if *holds { Tier::Deny } else { Tier::Approve };
        assert_eq!(
            (c.tier, c.failure.map(|f| f.error)),
            (expected, None),
            "{condition}"
        );
    }
    // A genuinely unknown name is still an error, at its position, bound names aside.
    let source = "version = 1\n[[rules]]\nname = \"r\"\nactions = [\"x.y\"]\nwhen = \"args.items.exists(i, j > 1)\"\ntier = \"deny\"\n";
    let column = source.lines().nth(4).unwrap().find('j').unwrap() + 1;
    check_diagnostics(source, &[("cel-unknown-variable", 5, column)]);
}

#[test]
fn explanations_render_every_rule_and_the_review_it_leads_to() {
    let policy = Policy::parse(POLICY).unwrap();
    let cases = [
        request(
            "refund.create",
            "support-bot",
            json!({"amount": 2500}),
            Some(0.62),
        ),
        request(
            "refund.create",
            "support-bot",
            json!({"amount": "2500"}),
            None,
        ),
        request("order.get", "support-bot", json!({}), None),
    ];
    let rendered: Vec<String> = cases
        .iter()
        .map(|r| policy.render_explanation(&policy.explain(r, now()), r))
        .collect();
    expect![[r#"
        tier:   approve
        rule:   "large refunds"
        reason: confidence 0.62 is below 0.9 (rule "large refunds")
        review: 1 approval(s) from members of support-leads; SLA 15m, then escalate

        rules:
          ✗ "lookups" (line 8): action "refund.create" matches none of ["*.get", "*.list"]
          ✗ "small refunds" (line 13): `when` is false: args.amount <= 100
          ✓ "large refunds" (line 20): matched (`when` is true: args.amount > 100)
          · "closures" (line 33): not reached: an earlier rule decided
          · "drops" (line 39): not reached: an earlier rule decided
          · "arith" (line 44): not reached: an earlier rule decided

        ---
        tier:   approve
        rule:   "small refunds"
        reason: the condition of rule "small refunds" could not be evaluated (found no matching overload for '_<=_' applied to '(string, int)'), so the action is treated as if that rule matched, and needs approval at least (2 rules might have matched; the strictest review settings of them all apply)
        review: 1 approval(s) from members of support-leads; SLA 15m, then reject

        rules:
          ✗ "lookups" (line 8): action "refund.create" matches none of ["*.get", "*.list"]
          ! "small refunds" (line 13): `when` could not be evaluated: found no matching overload for '_<=_' applied to '(string, int)'
          ! "large refunds" (line 20): `when` could not be evaluated: found no matching overload for '_>_' applied to '(string, int)'
          ✗ "closures" (line 33): action "refund.create" matches none of ["account.close"]
          ✗ "drops" (line 39): action "refund.create" matches none of ["db.drop"]
          ✗ "arith" (line 44): action "refund.create" matches none of ["calc.*"]

        ---
        tier:   auto
        rule:   "lookups"
        reason: rule "lookups" matched

        rules:
          ✓ "lookups" (line 8): matched
          · "small refunds" (line 13): not reached: an earlier rule decided
          · "large refunds" (line 20): not reached: an earlier rule decided
          · "closures" (line 33): not reached: an earlier rule decided
          · "drops" (line 39): not reached: an earlier rule decided
          · "arith" (line 44): not reached: an earlier rule decided
    "#]].assert_eq(&rendered.join("\n---\n"));
}
