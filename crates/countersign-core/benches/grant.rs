//! What an active grant adds to classifying a submission: the policy's classification and
//! review settings (what every `approve`-tier submission costs) with no grant, with one
//! grant that covers the request, with one whose condition the native evaluator answers,
//! one whose condition only CEL can, and with ten grants of which the last covers it. The
//! request matches the last of 1,000 rules. The figures are compared in BENCHMARKS.md.
//!
//! Run: `cargo bench -p countersign-core --bench grant`

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::action::{ACTION_NAME_CHARS, is_action_name_char};
use countersign_core::glob::Glob;
use countersign_core::grant::Grant;
use countersign_core::name::Name;
use countersign_core::policy::{Condition, Policy};
use countersign_core::{ActionName, AgentName, Confidence, ProposedAction, Tier};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const RULES: usize = 1_000;

fn policy_text() -> String {
    let mut out = String::from(
        "version = 1\n[defaults]\ntier = \"approve\"\nmin_confidence = 0.5\n\
         [[rules]]\nname = \"reads\"\nactions = [\"*.get\", \"*.list\"]\ntier = \"auto\"\n",
    );
    for i in 0..RULES {
        out.push_str(&format!(
            "[[rules]]\nname = \"rule {i}\"\nactions = [\"tool_{i}\"]\nwhen = \"args.amount > 1000\"\ntier = \"approve\"\napprovers = [\"leads\"]\n"
        ));
    }
    out
}

fn request() -> ProposedAction {
    let mut r = ProposedAction::new(
        ActionName::parse(&format!("tool_{}", RULES - 1)).unwrap(),
        AgentName::parse("support-bot").unwrap(),
    );
    r.args = json!({"amount": 1234, "to": "ana@example.com", "memo": "refund for order A-1"})
        .as_object()
        .unwrap()
        .clone();
    r.confidence = Some(Confidence::new(0.9).unwrap());
    r
}

fn grant(actions: &str, when: Option<&str>, now: DateTime<Utc>) -> Grant {
    Grant {
        id: "01grant".into(),
        agent: Name::from("support-bot"),
        actions: Glob::parse(actions, is_action_name_char, ACTION_NAME_CHARS).unwrap(),
        when: when.map(|w| Condition::compile(w).unwrap()),
        expires_at: now + TimeDelta::hours(1),
        max_uses: Some(100),
        uses: 3,
        granted_by: Name::from("rita"),
        granted_by_groups: vec![Name::from("leads")],
        granted_by_admin: false,
        reason: None,
        created_at: now,
        revoked: false,
    }
}

/// Classification as a submission does it: the class, the review settings, and the first
/// grant that covers the request.
fn classify(
    policy: &Policy,
    request: &ProposedAction,
    grants: &[Grant],
    now: DateTime<Utc>,
) -> usize {
    let classification = policy.classify(request, now);
    let settings = policy.review_settings(&classification);
    let owner = Name::from("olivia");
    let covering = if classification.tier == Tier::Approve {
        grants
            .iter()
            .position(|g| {
                g.covers(request, Some(&owner), &classification, &settings, now)
                    .is_ok()
            })
            .map_or(0, |i| i + 1)
    } else {
        0
    };
    black_box(&settings);
    covering
}

fn bench(c: &mut Criterion) {
    let now: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let policy = Policy::parse(&policy_text()).unwrap();
    let request = request();
    let action = format!("tool_{}", RULES - 1);
    let cases: Vec<(&str, Vec<Grant>)> = vec![
        ("no grant (baseline)", vec![]),
        ("one grant", vec![grant(&action, None, now)]),
        (
            "one grant, native condition",
            vec![grant(&action, Some("args.amount <= 5000"), now)],
        ),
        (
            "one grant, CEL-only condition",
            vec![grant(&action, Some("args.amount + 0 <= 5000"), now)],
        ),
        ("ten grants, the last covers", {
            let mut grants: Vec<Grant> = (0..9)
                .map(|i| grant(&format!("other_{i}.*"), None, now))
                .collect();
            grants.push(grant("tool_*", None, now));
            grants
        }),
    ];
    let mut group = c.benchmark_group("grant");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(30);
    for (name, grants) in &cases {
        let expected = if grants.is_empty() { 0 } else { grants.len() };
        assert_eq!(classify(&policy, &request, grants, now), expected, "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(classify(&policy, black_box(&request), grants, now)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
