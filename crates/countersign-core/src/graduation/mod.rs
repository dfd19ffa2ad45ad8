//! Earned autonomy (the seed's graduation path): replaying a candidate policy over recorded
//! submissions, the evidence per rule and action type, and the policy changes that evidence
//! supports. Pure like the rest of the core: the store streams or aggregates history, the
//! server and the CLI show what this module computes.
//!
//! - `wilson.rs`: the 95% Wilson score interval of an error rate;
//! - `replay.rs`: a candidate policy over recorded submissions, with the real outcomes of
//!   every action whose tier would change;
//! - `evidence.rs`: what the history says about one rule and action type;
//! - `suggest.rs`: relax `approve` → `logged`, narrow the relaxation with a `when`, tighten
//!   `logged` → `approve` (and the regression of a graduated rule);
//! - `edit.rs`: each proposal as an edit of the policy's TOML text, and its diff;
//! - `stages.rs`: the starting policies of each step of the graduation path.

mod edit;
mod evidence;
mod replay;
mod stages;
mod suggest;
mod wilson;

use chrono::{DateTime, Utc};

pub use edit::{Edit, EditError, apply, apply_checked, plan, unified_diff};
pub use evidence::{Evidence, GroupKey, percent};
pub use replay::{Change, DEFAULT_LISTED, LetThrough, Replay, ReplayReport};
pub use stages::{STAGES, Stage};
pub use suggest::{
    Narrowing, Proposal, ProposalKind, Regression, Suggestions, Thresholds, narrowed, narrowings,
    regressions, suggest,
};
pub use wilson::{wilson_lower, wilson_upper};

use crate::action::ProposedAction;
use crate::tier::{Status, Tier};

/// One recorded submission with what really became of it: the request exactly as the agent
/// submitted it (the agent's arguments, not a reviewer's after a `modify`), and how the
/// policy in force then classified it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub id: String,
    pub request: ProposedAction,
    /// When it was submitted: the CEL variable `now` the policy saw.
    pub at: DateTime<Utc>,
    /// The recorded tier. A `modify` that reached a stricter rule's reach may have raised it
    /// after submission (from `approve` to `confirm`); it never lowers it.
    pub tier: Tier,
    /// The recorded rule; `None`: the policy's `[defaults]`.
    pub rule: Option<String>,
    pub outcome: RealOutcome,
    /// A post-hoc reviewer flagged it.
    pub flagged: bool,
    /// It was given a post-hoc review (ok or flag).
    pub reviewed: bool,
}

crate::vocabulary! {
    /// What really happened to an action.
    #[derive(PartialOrd, Ord)]
    pub enum RealOutcome {
        Allowed = "allowed",
        Denied = "denied",
        Pending = "pending",
        Approved = "approved",
        /// Approved with a reviewer's arguments.
        Modified = "modified",
        Rejected = "rejected",
        Expired = "expired",
        Cancelled = "cancelled",
    }
}

impl RealOutcome {
    /// The outcome of an action with this status, `modified` when a reviewer replaced its
    /// arguments.
    pub fn of(status: Status, modified: bool) -> RealOutcome {
        match status {
            Status::Allowed => RealOutcome::Allowed,
            Status::Denied => RealOutcome::Denied,
            Status::Pending => RealOutcome::Pending,
            Status::Approved if modified => RealOutcome::Modified,
            Status::Approved => RealOutcome::Approved,
            Status::Rejected => RealOutcome::Rejected,
            Status::Expired => RealOutcome::Expired,
            Status::Cancelled => RealOutcome::Cancelled,
        }
    }

    /// A person said the agent got it wrong: rejected, or approved only with other
    /// arguments.
    pub fn is_error(self) -> bool {
        matches!(self, RealOutcome::Rejected | RealOutcome::Modified)
    }
}

/// How many actions ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub total: u64,
    pub allowed: u64,
    pub denied: u64,
    pub pending: u64,
    pub approved: u64,
    pub modified: u64,
    pub rejected: u64,
    pub expired: u64,
    pub cancelled: u64,
    /// Flagged in a post-hoc review (counted besides the outcome).
    pub flagged: u64,
}

impl Outcomes {
    pub fn add(&mut self, outcome: RealOutcome, flagged: bool) {
        self.total += 1;
        *match outcome {
            RealOutcome::Allowed => &mut self.allowed,
            RealOutcome::Denied => &mut self.denied,
            RealOutcome::Pending => &mut self.pending,
            RealOutcome::Approved => &mut self.approved,
            RealOutcome::Modified => &mut self.modified,
            RealOutcome::Rejected => &mut self.rejected,
            RealOutcome::Expired => &mut self.expired,
            RealOutcome::Cancelled => &mut self.cancelled,
        } += 1;
        if flagged {
            self.flagged += 1;
        }
    }

    /// People rejected or modified them, or flagged them after the fact.
    pub fn mistakes(&self) -> u64 {
        self.rejected + self.modified + self.flagged
    }
}
