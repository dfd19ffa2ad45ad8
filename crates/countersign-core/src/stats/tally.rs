//! What one action adds to the figures of its group, and what a change to it adds: the
//! store keeps sums of these per hour and per day of submission, in the transaction of the
//! change, and a window's figures are sums of sums.
//!
//! Everything is derived from the action's [`Gate`] alone, before and after a transition:
//! [`change`] is `contribution(after) - contribution(before)`, so the sums can never drift
//! from what the actions say, whatever the order of events, and an action decided a week
//! after it was submitted moves the figures of the hour it was submitted in.

use chrono::{DateTime, Utc};

use super::histogram::Histogram;
use crate::action::ActionName;
use crate::lifecycle::{Gate, ReviewState, ReviewVerdict, Verdict};
use crate::name::Name;
use crate::tier::{Status, Tier};

macro_rules! counts {
    ($($(#[$doc:meta])* $field:ident),+ $(,)?) => {
        /// How many actions are in each state, or went through each step. A change's counts
        /// may be negative (an action leaving `pending`).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counts {
            $($(#[$doc])* pub $field: i64,)+
        }

        impl Counts {
            /// The field names, in order: also the store's column names.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),+];

            /// The values in [`Counts::FIELDS`] order.
            pub fn values(&self) -> Vec<i64> {
                vec![$(self.$field),+]
            }

            /// From values in [`Counts::FIELDS`] order (missing ones are 0).
            pub fn from_values(values: &[i64]) -> Counts {
                let mut values = values.iter().copied();
                Counts { $($field: values.next().unwrap_or(0),)+ }
            }

            pub fn add(&mut self, other: &Counts) {
                $(self.$field += other.$field;)+
            }

            pub fn subtract(&mut self, other: &Counts) {
                $(self.$field -= other.$field;)+
            }

            pub fn is_zero(&self) -> bool {
                true $(&& self.$field == 0)+
            }
        }
    };
}

counts! {
    /// Actions submitted.
    total,
    /// Allowed at once (`auto`, `logged`).
    allowed,
    /// Denied at once (`deny`).
    denied,
    /// Waiting for people now.
    pending,
    /// Approved: by people (including `modified`) or by the SLA (`auto_approved`).
    approved,
    /// Approved with arguments a reviewer changed.
    modified,
    /// Rejected by a person.
    rejected,
    /// Nobody decided before the SLA ended: never a rejection.
    expired,
    /// Withdrawn by the agent while pending.
    cancelled,
    /// Approved by the SLA because the rule allowed it (`allow_auto_approve`).
    auto_approved,
    /// Escalated by the SLA to more approvers.
    escalated,
    /// Reminded at least once before a deadline.
    reminded,
    /// Reviewed after the fact (post-hoc review).
    reviewed,
    /// Flagged by the post-hoc review: the policy let through what it should not have.
    flagged,
    /// Allowed without asking because a reviewer's grant covered it (also in `allowed`):
    /// an `approve`-tier action that ran on a person's earlier, bounded say-so, not on a
    /// decision of its own, so it is in no approval rate and has no review latency.
    granted,
}

/// What an action adds to its group: counts, and its review latency (submission to the
/// verdict that decided it) when people decided it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionTally {
    pub counts: Counts,
    pub latency: Histogram,
}

impl ActionTally {
    pub fn add(&mut self, other: &ActionTally) {
        self.counts.add(&other.counts);
        self.latency.add(&other.latency);
    }

    pub fn subtract(&mut self, other: &ActionTally) {
        self.counts.subtract(&other.counts);
        self.latency.subtract(&other.latency);
    }

    pub fn is_zero(&self) -> bool {
        self.counts.is_zero() && self.latency.is_empty()
    }
}

/// The finest group an action's figures are kept in; coarser groupings (by action, agent,
/// rule or tier) are sums of these.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionKey {
    pub action: ActionName,
    pub agent: Name,
    /// `None`: the policy's `[defaults]`.
    pub rule: Option<String>,
    /// The tier the action has now (a `modify` may have raised it).
    pub tier: Tier,
}

/// What a reviewer's verdicts of one kind add: how many, how long after submission each
/// came, and how many of the actions they approved were flagged after the fact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewerTally {
    pub decisions: i64,
    /// Post-hoc flags on actions this verdict approved (approve and modify only).
    pub flagged: i64,
    pub time_to_decision: Histogram,
}

impl ReviewerTally {
    pub fn add(&mut self, other: &ReviewerTally) {
        self.decisions += other.decisions;
        self.flagged += other.flagged;
        self.time_to_decision.add(&other.time_to_decision);
    }

    pub fn subtract(&mut self, other: &ReviewerTally) {
        self.decisions -= other.decisions;
        self.flagged -= other.flagged;
        self.time_to_decision.subtract(&other.time_to_decision);
    }

    pub fn is_zero(&self) -> bool {
        self.decisions == 0 && self.flagged == 0 && self.time_to_decision.is_empty()
    }
}

/// A reviewer's verdicts of one kind on actions of one tier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReviewerKey {
    pub reviewer: Name,
    pub tier: Tier,
    pub verdict: Verdict,
}

/// Everything one action adds to the figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    pub action: (ActionKey, ActionTally),
    pub reviewers: Vec<(ReviewerKey, ReviewerTally)>,
}

/// Signed sums to add to the kept figures: a change to one action, or many actions at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Change {
    pub actions: Vec<(ActionKey, ActionTally)>,
    pub reviewers: Vec<(ReviewerKey, ReviewerTally)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.reviewers.is_empty()
    }
}

fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// Were the approvals that count enough? An `approved` action without them was approved by
/// the SLA (`allow_auto_approve`), not by people.
fn approved_by_people(gate: &Gate) -> bool {
    gate.status == Status::Approved
        && gate.counting_approvers().len() as u32 >= gate.approvals_required.max(1)
}

/// What `gate` (submitted at `created_at`, classified by `rule`) adds to the figures.
pub fn contribution(gate: &Gate, rule: Option<&str>, created_at: DateTime<Utc>) -> Contribution {
    let mut counts = Counts {
        total: 1,
        ..Counts::default()
    };
    let by_people = approved_by_people(gate);
    match gate.status {
        Status::Allowed => {
            counts.allowed = 1;
            // Only a grant lets an action of a human-gated tier start allowed.
            counts.granted = i64::from(gate.tier.initial_status() != Status::Allowed);
        }
        Status::Denied => counts.denied = 1,
        Status::Pending => counts.pending = 1,
        Status::Approved => {
            counts.approved = 1;
            if !by_people {
                counts.auto_approved = 1;
            } else if gate.original_args.is_some() {
                counts.modified = 1;
            }
        }
        Status::Rejected => counts.rejected = 1,
        Status::Expired => counts.expired = 1,
        Status::Cancelled => counts.cancelled = 1,
    }
    counts.escalated = i64::from(gate.escalated);
    // An action reminded several times is one reminded action: like `escalated`, the count
    // says how many actions the ladder had to chase, not how many messages it sent.
    counts.reminded = i64::from(gate.reminded > 0);
    let flagged =
        matches!(&gate.review, ReviewState::Reviewed(r) if r.verdict == ReviewVerdict::Flag);
    if let ReviewState::Reviewed(_) = &gate.review {
        counts.reviewed = 1;
        counts.flagged = i64::from(flagged);
    }
    let mut latency = Histogram::default();
    let decided_by_people = by_people || gate.status == Status::Rejected;
    if let (true, Some(decided_at)) = (decided_by_people, gate.decided_at) {
        latency.record(millis_between(created_at, decided_at));
    }
    let reviewers = gate
        .decisions
        .iter()
        .map(|decision| {
            let approving = matches!(decision.verdict, Verdict::Approve | Verdict::Modify);
            (
                ReviewerKey {
                    reviewer: decision.reviewer.clone(),
                    tier: gate.tier,
                    verdict: decision.verdict,
                },
                ReviewerTally {
                    decisions: 1,
                    flagged: i64::from(approving && flagged),
                    time_to_decision: Histogram::of(millis_between(created_at, decision.at)),
                },
            )
        })
        .collect();
    Contribution {
        action: (
            ActionKey {
                action: gate.action.clone(),
                agent: gate.agent.clone(),
                rule: rule.map(str::to_owned),
                tier: gate.tier,
            },
            ActionTally { counts, latency },
        ),
        reviewers,
    }
}

/// `after - before`, merged by key, without the keys whose sums did not move. `before` is
/// `None` for a new action.
pub fn change(before: Option<&Contribution>, after: &Contribution) -> Change {
    let mut change = Change::default();
    change.add(after);
    if let Some(before) = before {
        change.subtract(before);
    }
    change.actions.retain(|(_, tally)| !tally.is_zero());
    change.reviewers.retain(|(_, tally)| !tally.is_zero());
    change
}

impl Change {
    /// Adds another change's sums.
    pub fn merge(&mut self, other: &Change) {
        for (key, tally) in &other.actions {
            merge(&mut self.actions, key, |sum: &mut ActionTally| {
                sum.add(tally)
            });
        }
        for (key, tally) in &other.reviewers {
            merge(&mut self.reviewers, key, |sum: &mut ReviewerTally| {
                sum.add(tally)
            });
        }
    }

    /// Adds an action's contribution.
    pub fn add(&mut self, contribution: &Contribution) {
        let (key, tally) = &contribution.action;
        merge(&mut self.actions, key, |sum: &mut ActionTally| {
            sum.add(tally)
        });
        for (key, tally) in &contribution.reviewers {
            merge(&mut self.reviewers, key, |sum: &mut ReviewerTally| {
                sum.add(tally)
            });
        }
    }

    pub fn subtract(&mut self, contribution: &Contribution) {
        let (key, tally) = &contribution.action;
        merge(&mut self.actions, key, |sum: &mut ActionTally| {
            sum.subtract(tally)
        });
        for (key, tally) in &contribution.reviewers {
            merge(&mut self.reviewers, key, |sum: &mut ReviewerTally| {
                sum.subtract(tally)
            });
        }
    }
}

/// Applies `update` to the entry of `key`, adding it if missing. A linear search: a
/// change holds one or two actions' keys and a few reviewers'.
fn merge<K: PartialEq + Clone, T: Default>(
    list: &mut Vec<(K, T)>,
    key: &K,
    update: impl FnOnce(&mut T),
) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some((_, sum)) => update(sum),
        None => {
            let mut sum = T::default();
            update(&mut sum);
            list.push((key.clone(), sum));
        }
    }
}
