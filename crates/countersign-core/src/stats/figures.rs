//! The figures of SPEC §6 computed from summed tallies, and a reviewer's approval-fatigue
//! figures.
//!
//! Rates are shares of the actions that reached a human-gated end (`approved`, `rejected`,
//! `expired`): an expiry is in the denominator of every rate and counted as `timeout_rate`,
//! never as a rejection — "nobody decided" read as "a person said no" would inflate the
//! very figure a team lead trusts (landscape §6).

use super::histogram::Histogram;
use super::tally::{ActionTally, Counts, ReviewerTally};
use crate::lifecycle::Verdict;
use crate::name::Name;
use crate::tier::Tier;

/// Latency percentiles in seconds (`None` without latencies).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p10: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    pub fn of(histogram: &Histogram) -> Percentiles {
        let seconds = |q: f64| histogram.quantile(q).map(|ms| ms as f64 / 1000.0);
        Percentiles {
            p10: seconds(0.10),
            p50: seconds(0.50),
            p90: seconds(0.90),
            p99: seconds(0.99),
        }
    }
}

fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// SPEC §6's figures for a group of actions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub counts: Counts,
    /// `approved / (approved + rejected + expired)`; `None` when nothing reached such an end.
    pub approval_rate: Option<f64>,
    pub rejection_rate: Option<f64>,
    /// `modified / (approved + rejected + expired)`: `approved` includes `modified`.
    pub modification_rate: Option<f64>,
    /// `expired / (approved + rejected + expired)`.
    pub timeout_rate: Option<f64>,
    /// Submission to the verdict that decided it, for actions people decided.
    pub review_latency: Percentiles,
}

impl Figures {
    pub fn of(tally: &ActionTally) -> Figures {
        let c = &tally.counts;
        let ended = c.approved + c.rejected + c.expired;
        Figures {
            approval_rate: share(c.approved, ended),
            rejection_rate: share(c.rejected, ended),
            modification_rate: share(c.modified, ended),
            timeout_rate: share(c.expired, ended),
            review_latency: Percentiles::of(&tally.latency),
            counts: c.clone(),
        }
    }

    /// Actions that reached a human-gated end.
    pub fn human_gated(&self) -> i64 {
        self.counts.approved + self.counts.rejected + self.counts.expired
    }
}

/// What the approval-fatigue figures are judged against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FatigueSettings {
    /// An approval within this many seconds of submission is "fast".
    pub fast_approval_seconds: u64,
    /// A reviewer is not judged a rubber stamp on fewer decisions on `approve`/`confirm`
    /// actions than this.
    pub rubber_stamp_min_decisions: i64,
    /// ... and is one when at least this share of those decisions approve,
    pub rubber_stamp_approval_rate: f64,
    /// ... and at least this share of those approvals are fast.
    pub rubber_stamp_fast_share: f64,
}

impl Default for FatigueSettings {
    fn default() -> Self {
        FatigueSettings {
            fast_approval_seconds: 5,
            rubber_stamp_min_decisions: 20,
            rubber_stamp_approval_rate: 0.95,
            rubber_stamp_fast_share: 0.5,
        }
    }
}

/// One reviewer's verdicts summed: by verdict, and on the high-risk tiers apart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReviewerSums {
    pub approvals: ReviewerTally,
    pub modifications: ReviewerTally,
    pub rejections: ReviewerTally,
    /// Approvals (approve and modify) on `approve` and `confirm` actions.
    pub high_risk_approvals: ReviewerTally,
    /// Every decision on `approve` and `confirm` actions.
    pub high_risk_decisions: i64,
}

impl ReviewerSums {
    pub fn add(&mut self, tier: Tier, verdict: Verdict, tally: &ReviewerTally) {
        match verdict {
            Verdict::Approve => self.approvals.add(tally),
            Verdict::Modify => self.modifications.add(tally),
            Verdict::Reject => self.rejections.add(tally),
        }
        if tier.is_human_gated() {
            self.high_risk_decisions += tally.decisions;
            if verdict != Verdict::Reject {
                self.high_risk_approvals.add(tally);
            }
        }
    }

    /// The reviewer's decisions as SPEC §6 figures: `total` is their decisions, `approved`
    /// their approvals (a `modify` included), rates are shares of their decisions, latency is
    /// from submission to their verdict. Timeouts are nobody's decision: `expired` is 0.
    pub fn figures(&self) -> Figures {
        let mut time = self.approvals.time_to_decision.clone();
        time.add(&self.modifications.time_to_decision);
        time.add(&self.rejections.time_to_decision);
        let approved = self.approvals.decisions + self.modifications.decisions;
        Figures::of(&ActionTally {
            counts: Counts {
                total: approved + self.rejections.decisions,
                approved,
                modified: self.modifications.decisions,
                rejected: self.rejections.decisions,
                flagged: self.approvals.flagged + self.modifications.flagged,
                ..Counts::default()
            },
            latency: time,
        })
    }
}

/// A reviewer's approval-fatigue figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Fatigue {
    pub reviewer: Name,
    pub decisions: i64,
    pub approval_rate: Option<f64>,
    /// Submission to this reviewer's verdicts: median and the fastest tenth.
    pub time_to_decision: Percentiles,
    /// Approvals on `approve`/`confirm` actions.
    pub high_risk_approvals: i64,
    /// ... given in under [`FatigueSettings::fast_approval_seconds`].
    pub fast_approvals: i64,
    pub fast_approval_share: Option<f64>,
    /// Post-hoc flags on actions this reviewer approved.
    pub flagged_after_approval: i64,
    /// Why this reviewer looks like a rubber stamp, if they do.
    pub rubber_stamp: Option<String>,
}

impl Fatigue {
    pub fn of(reviewer: Name, sums: &ReviewerSums, settings: &FatigueSettings) -> Fatigue {
        let figures = sums.figures();
        let fast = sums
            .high_risk_approvals
            .time_to_decision
            .count_below(settings.fast_approval_seconds.saturating_mul(1000));
        let high_risk_approvals = sums.high_risk_approvals.decisions;
        let fast_share = share(fast, high_risk_approvals);
        let high_risk_rate = share(high_risk_approvals, sums.high_risk_decisions);
        let rubber_stamp = match (high_risk_rate, fast_share) {
            (Some(rate), Some(fast_share))
                if sums.high_risk_decisions >= settings.rubber_stamp_min_decisions
                    && rate >= settings.rubber_stamp_approval_rate
                    && fast_share >= settings.rubber_stamp_fast_share =>
            {
                Some(format!(
                    "{reviewer} approved {} of {} decisions on approve and confirm actions, {} of those approvals in under {} s: approvals this fast may not have been read",
                    percent(rate),
                    sums.high_risk_decisions,
                    percent(fast_share),
                    settings.fast_approval_seconds,
                ))
            }
            _ => None,
        };
        Fatigue {
            decisions: figures.counts.total,
            approval_rate: figures.approval_rate,
            time_to_decision: figures.review_latency,
            high_risk_approvals,
            fast_approvals: fast,
            fast_approval_share: fast_share,
            flagged_after_approval: figures.counts.flagged,
            rubber_stamp,
            reviewer,
        }
    }
}

/// `0.956` as `96%`.
pub fn percent(rate: f64) -> String {
    format!("{:.0}%", rate * 100.0)
}
