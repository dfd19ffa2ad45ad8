//! Policy evaluation cost per decision at 10 / 100 / 1,000 / 10,000 rules, for the indexed
//! engine and, in the same run, the naive baseline (every rule's CEL program tried in order
//! against a fully bound context). The figures are compared as ratios in BENCHMARKS.md.
//!
//! Two shapes of condition: `args.amount > 1000`, which the native evaluator answers
//! (`indexed`), and `args.amount + 0 > 1000`, which only CEL can (`indexed-cel`: the
//! request's JSON is bound to CEL values and the program run).
//!
//! Run: `cargo bench -p countersign-core --bench policy`

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::policy::{NaivePolicy, Policy};
use countersign_core::{ActionName, AgentName, Confidence, ProposedAction};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

/// The two shapes of condition the engine runs.
struct Shape {
    /// On the wildcard rule every request meets.
    hints: &'static str,
    /// On each of the numbered rules.
    amount: &'static str,
}

const NATIVE: Shape = Shape {
    hints: "has(hints.destructive) && hints.destructive",
    amount: "args.amount > 1000",
};

/// The same conditions, written so that the native evaluator leaves them to CEL.
const CEL_ONLY: Shape = Shape {
    hints: "has(hints.destructive) == true && hints.destructive == true",
    amount: "args.amount + 0 > 1000",
};

/// `rules` rules of the shape `action == "tool_i" && args.amount > 1000`, plus a few wildcard
/// rules in front of them, as real policies have.
fn policy_text(rules: usize, shape: &Shape) -> String {
    let mut out = format!(
        "version = 1\n[defaults]\ntier = \"approve\"\nmin_confidence = 0.5\n\
         [[rules]]\nname = \"reads\"\nactions = [\"*.get\", \"*.list\"]\ntier = \"auto\"\n\
         [[rules]]\nname = \"destructive\"\nwhen = \"{}\"\ntier = \"confirm\"\n",
        shape.hints
    );
    for i in 0..rules {
        out.push_str(&format!(
            "[[rules]]\nname = \"rule {i}\"\nactions = [\"tool_{i}\"]\nwhen = \"{}\"\ntier = \"approve\"\n",
            shape.amount
        ));
    }
    out
}

/// A request that matches the last rule: the worst case for a scan.
fn request(rules: usize) -> ProposedAction {
    let mut r = ProposedAction::new(
        ActionName::parse(&format!("tool_{}", rules - 1)).unwrap(),
        AgentName::parse("support-bot").unwrap(),
    );
    r.args = json!({"amount": 1234, "to": "ana@example.com", "memo": "refund for order A-1"})
        .as_object()
        .unwrap()
        .clone();
    r.confidence = Some(Confidence::new(0.9).unwrap());
    r
}

fn bench(c: &mut Criterion) {
    let now: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let mut group = c.benchmark_group("classify");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(30);
    for rules in [10, 100, 1_000, 10_000] {
        let policy = Policy::parse(&policy_text(rules, &NATIVE)).unwrap();
        let cel_policy = Policy::parse(&policy_text(rules, &CEL_ONLY)).unwrap();
        let naive = NaivePolicy::new(&policy);
        let request = request(rules);
        let fast = policy.classify(&request, now);
        assert_eq!(fast, naive.classify(&request, now), "engines disagree");
        assert_eq!(
            policy.rule_name(&fast),
            Some(format!("rule {}", rules - 1).as_str())
        );
        group.bench_with_input(BenchmarkId::new("indexed", rules), &request, |b, r| {
            b.iter(|| black_box(policy.classify(black_box(r), now)))
        });
        assert_eq!(cel_policy.classify(&request, now), fast);
        group.bench_with_input(BenchmarkId::new("indexed-cel", rules), &request, |b, r| {
            b.iter(|| black_box(cel_policy.classify(black_box(r), now)))
        });
        group.bench_with_input(BenchmarkId::new("naive", rules), &request, |b, r| {
            b.iter(|| black_box(naive.classify(black_box(r), now)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
