//! Hand-written Prometheus counters of this process: few enough that a metrics library
//! would cost more build time than it saves. The approval metrics, kept in the database so
//! that they survive restarts, are `stats_metrics.rs`'s.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use countersign_core::Tier;
use countersign_store::CommitStats;

#[derive(Default)]
pub struct Metrics {
    /// New submissions by tier (index: `Tier::ALL` order).
    submitted: [AtomicU64; 5],
    replayed: AtomicU64,
    sla_steps: AtomicU64,
    rejected_requests: AtomicU64,
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    /// Connections closed by a timeout: header, idle, unread response.
    connections_timed_out: AtomicU64,
}

/// Gauges read from elsewhere as `/metrics` renders.
pub struct Gauges {
    pub watched_actions: usize,
    pub open_waits: usize,
}

impl Metrics {
    pub fn submitted(&self, tier: Tier) {
        let index = Tier::ALL.iter().position(|t| *t == tier).unwrap_or(0);
        self.submitted[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sla_steps(&self, count: usize) {
        self.sla_steps.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub fn client_error(&self) {
        self.rejected_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_timed_out(&self) {
        self.connections_timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, commits: CommitStats, gauges: Gauges) -> String {
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
            "countersign_sla_steps_total",
            "SLA steps applied (reminders, skipped stale reminders, escalations, expiries, approvals on timeout).",
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
            (
                "countersign_connections_refused_total",
                "Connections answered 503 and closed because max_connections were open.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
            (
                "countersign_connections_timed_out_total",
                "Connections closed for a slow header, idleness or a response left unread.",
                self.connections_timed_out.load(Ordering::Relaxed),
            ),
        ] {
            counter(&mut out, name, help);
            let _ = writeln!(out, "{name} {value}");
        }
        for (name, help, value) in [
            (
                "countersign_watched_actions",
                "Actions that long-polls or event streams are waiting on now.",
                gauges.watched_actions as u64,
            ),
            (
                "countersign_open_waits",
                "Long-polls and event streams open now.",
                gauges.open_waits as u64,
            ),
            (
                "countersign_open_connections",
                "Connections being served now.",
                self.connections_open.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
