//! Hand-written Prometheus counters: few enough that a metrics library would cost more
//! build time than it saves.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use countersign_core::Tier;
use countersign_core::lifecycle::Verdict;
use countersign_store::CommitStats;

#[derive(Default)]
pub struct Metrics {
    /// New submissions by tier (index: `Tier::ALL` order).
    submitted: [AtomicU64; 5],
    replayed: AtomicU64,
    /// Decisions by verdict: approve, reject, modify.
    decisions: [AtomicU64; 3],
    sla_steps: AtomicU64,
    rejected_requests: AtomicU64,
}

impl Metrics {
    pub fn submitted(&self, tier: Tier) {
        let index = Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0);
        self.submitted[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decided(&self, verdict: Verdict) {
        let index = match verdict {
            Verdict::Approve => 0,
            Verdict::Reject => 1,
            Verdict::Modify => 2,
        };
        self.decisions[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn sla_steps(&self, count: usize) {
        self.sla_steps.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub fn client_error(&self) {
        self.rejected_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, commits: CommitStats, watched_actions: usize) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        counter(
            &mut out,
            "countersign_actions_submitted_total",
            "New action submissions, by the tier the policy gave them.",
        );
        for (tier, count) in Tier::ALL.iter().zip(&self.submitted) {
            let _ = writeln!(
                out,
                "countersign_actions_submitted_total{{tier=\"{tier}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "countersign_idempotent_replays_total",
            "Submissions answered from an earlier one with the same idempotency key.",
        );
        let _ = writeln!(
            out,
            "countersign_idempotent_replays_total {}",
            self.replayed.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "countersign_decisions_total",
            "Reviewer verdicts recorded, by verdict.",
        );
        for (verdict, count) in ["approve", "reject", "modify"].iter().zip(&self.decisions) {
            let _ = writeln!(
                out,
                "countersign_decisions_total{{verdict=\"{verdict}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "countersign_sla_steps_total",
            "SLA steps (escalations, expiries) applied to overdue actions.",
        );
        let _ = writeln!(
            out,
            "countersign_sla_steps_total {}",
            self.sla_steps.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "countersign_client_errors_total",
            "Requests answered with a 4xx error.",
        );
        let _ = writeln!(
            out,
            "countersign_client_errors_total {}",
            self.rejected_requests.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "countersign_store_commits_total",
                "Write transactions committed (one fsync each).",
                commits.commits,
            ),
            (
                "countersign_store_commands_total",
                "Store commands executed inside those transactions.",
                commits.commands,
            ),
            (
                "countersign_store_failed_batches_total",
                "Write batches whose commit failed.",
                commits.failed_batches,
            ),
        ] {
            counter(&mut out, name, help);
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP countersign_watched_actions Actions that long-polls or event streams are waiting on now.\n\
             # TYPE countersign_watched_actions gauge\n\
             countersign_watched_actions {watched_actions}"
        );
        out
    }
}
