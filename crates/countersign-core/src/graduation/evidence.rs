//! What the history says about one rule and action type: how often people decided, how
//! often they corrected the agent (rejected or modified), how often a post-hoc review
//! flagged what ran, and how recent all that is. The store fills it in with one aggregate
//! query; this module only reads it.

use chrono::{DateTime, Utc};

use super::wilson::{wilson_lower, wilson_upper};
use crate::tier::Tier;

/// A rule (by name; `None`: `[defaults]`) and an action name: the unit that graduates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub rule: Option<String>,
    pub action: String,
}

/// The evidence about one [`GroupKey`] within a window of time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evidence {
    pub key: GroupKey,
    /// Submissions in the window.
    pub submitted: u64,
    /// Submissions by recorded tier (`auto`, `logged`, `approve`, `confirm`, `deny`).
    pub by_tier: [u64; 5],
    pub approved: u64,
    /// Approved with a reviewer's arguments (not counted in `approved`).
    pub modified: u64,
    pub rejected: u64,
    pub expired: u64,
    /// Given a post-hoc review.
    pub reviewed: u64,
    /// Flagged in a post-hoc review.
    pub flagged: u64,
    /// The latest decision (approve, modify, reject) or post-hoc review.
    pub last_decided: Option<DateTime<Utc>>,
    pub first_submitted: Option<DateTime<Utc>>,
    pub last_submitted: Option<DateTime<Utc>>,
}

impl Evidence {
    pub fn new(key: GroupKey) -> Evidence {
        Evidence {
            key,
            ..Evidence::default()
        }
    }

    /// Submissions recorded at `tier`.
    pub fn at_tier(&self, tier: Tier) -> u64 {
        self.by_tier[tier_index(tier)]
    }

    /// Counts `n` submissions recorded at `tier`.
    pub fn add_tier(&mut self, tier: Tier, n: u64) {
        self.by_tier[tier_index(tier)] += n;
        self.submitted += n;
    }

    /// People's verdicts: approved, modified or rejected (an expiry is nobody's verdict).
    pub fn decisions(&self) -> u64 {
        self.approved + self.modified + self.rejected
    }

    /// Verdicts that corrected the agent.
    pub fn errors(&self) -> u64 {
        self.modified + self.rejected
    }

    /// `errors / decisions` (0 without decisions).
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors(), self.decisions())
    }

    /// The 95% Wilson upper bound of the error rate: how bad it may plausibly be.
    pub fn error_upper(&self) -> f64 {
        wilson_upper(self.errors(), self.decisions())
    }

    /// `flagged / reviewed` (0 without reviews).
    pub fn flag_rate(&self) -> f64 {
        ratio(self.flagged, self.reviewed)
    }

    /// The 95% Wilson lower bound of the flag rate: how good it can plausibly be.
    pub fn flag_lower(&self) -> f64 {
        wilson_lower(self.flagged, self.reviewed)
    }

    /// Adds another part of the same group (another recorded tier, say).
    pub fn merge(&mut self, other: &Evidence) {
        self.submitted += other.submitted;
        for (mine, theirs) in self.by_tier.iter_mut().zip(other.by_tier) {
            *mine += theirs;
        }
        self.approved += other.approved;
        self.modified += other.modified;
        self.rejected += other.rejected;
        self.expired += other.expired;
        self.reviewed += other.reviewed;
        self.flagged += other.flagged;
        self.last_decided = self.last_decided.max(other.last_decided);
        self.first_submitted = match (self.first_submitted, other.first_submitted) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_submitted = self.last_submitted.max(other.last_submitted);
    }

    /// One line: "212 decisions, 1 rejected, 3 modified (1.9%, at most 4.8%), 0 of 10 reviews flagged".
    pub fn summary(&self) -> String {
        format!(
            "{} decision(s): {} approved, {} modified, {} rejected (error rate {}, 95% upper bound {}); {} of {} post-hoc review(s) flagged",
            self.decisions(),
            self.approved,
            self.modified,
            self.rejected,
            percent(self.error_rate()),
            percent(self.error_upper()),
            self.flagged,
            self.reviewed,
        )
    }
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Auto => 0,
        Tier::Logged => 1,
        Tier::Approve => 2,
        Tier::Confirm => 3,
        Tier::Deny => 4,
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `0.0483` as `4.8%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}
