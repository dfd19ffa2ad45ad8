//! What statistics and the training-data export ask of a store, whatever the backend. The
//! figures themselves are `countersign_core::stats`'s; a store keeps the sums
//! ([`countersign_core::stats::change`] in the transaction of every change) and answers
//! windows from them ([`countersign_core::stats::plan`]).

use chrono::{DateTime, Utc};
use countersign_core::glob::Glob;
use countersign_core::learning::Label;
use countersign_core::stats::{ActionKey, ActionTally, ReviewerKey, ReviewerTally, Window};

/// The step of a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesStep {
    Hour,
    /// A UTC day.
    Day,
}

impl SeriesStep {
    pub fn hours(self) -> i64 {
        match self {
            SeriesStep::Hour => 1,
            SeriesStep::Day => 24,
        }
    }
}

/// All groups summed per hour or per day of submission, for steps starting in
/// `[from, to)` (each end rounded down to its step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: SeriesStep,
}

/// One step of a series: the step's start and its sums (steps without actions are left
/// out).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoint {
    pub start: DateTime<Utc>,
    pub tally: ActionTally,
}

/// The all-time sum of one group, with the first day (since the epoch) it had actions:
/// `/metrics` keeps its own label for the first action names seen and counts later ones
/// as "other", so that the set of series only grows and counters never go back.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptSum {
    pub key: ActionKey,
    pub first_day: i64,
    pub tally: ActionTally,
}

/// Every kept sum, all time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsTotals {
    pub actions: Vec<KeptSum>,
    pub reviewers: Vec<(ReviewerKey, ReviewerTally)>,
}

/// Actions that are training cases, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportQuery {
    /// Submitted within.
    pub window: Window,
    pub action: Option<Glob>,
    /// Classified by this rule.
    pub rule: Option<String>,
    /// Only cases with these labels (`countersign_core::learning::case`); empty means none.
    pub labels: Vec<Label>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// At most this many (clamped to 1..=1000; 0 means 50).
    pub limit: u32,
    /// The page ends early once its items hold more than this many stored bytes (0 means
    /// [`crate::DEFAULT_PAGE_BYTES`]).
    pub max_bytes: usize,
}
