//! Approval metrics (SPEC §6) as pure functions over values.
//!
//! - `tally.rs`: what one action adds to its group's sums ([`contribution`]), and what a
//!   transition adds ([`change`]: after minus before). The store keeps these sums per hour
//!   and per day of submission, updated in the transaction of each change.
//! - `histogram.rs`: review latencies in buckets of two significant digits, which add and
//!   subtract like counts.
//! - `window.rs`: which kept sums (days, hours) and which actions read one by one answer a
//!   window ([`plan`]).
//! - `figures.rs` and `report.rs`: rates, percentiles, groups, the per-action signals and
//!   each reviewer's approval-fatigue figures with the rubber-stamp warning.

mod figures;
mod histogram;
mod report;
mod tally;
mod window;

#[cfg(test)]
mod tests;

pub use figures::{Fatigue, FatigueSettings, Figures, Percentiles, ReviewerSums, percent};
pub use histogram::{Histogram, LAST_BUCKET};
pub use report::{Group, GroupBy, Report, Signal, SignalKind, StatsData, StatsSettings, report};
pub use tally::{
    ActionKey, ActionTally, Change, Contribution, Counts, ReviewerKey, ReviewerTally, change,
    contribution,
};
pub use window::{
    EmptyWindow, HOUR_MILLIS, Plan, RawSpan, Span, Window, day_of_hour, hour_of, hour_start, plan,
};
