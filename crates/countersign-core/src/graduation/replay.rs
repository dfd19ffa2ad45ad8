//! Replaying a candidate policy over recorded submissions: each one classified again with
//! [`Policy::classify`] (the server's engine, fail-closed rules included) on the request
//! exactly as the agent sent it, at the time it was sent. What the replay keeps is
//! aggregate — one counter set per (action, tier from → tier to, rule from → rule to) that
//! changed — plus the ids of the past mistakes the candidate would let through, so memory
//! does not grow with the history.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Outcomes, RealOutcome, Recorded};
use crate::policy::Policy;
use crate::tier::Tier;

/// How many let-through actions a report lists by default (all are counted).
pub const DEFAULT_LISTED: usize = 1000;

/// A candidate policy being replayed: feed it every recorded submission with
/// [`Replay::add`], then [`Replay::finish`].
pub struct Replay {
    policy: Arc<Policy>,
    /// By action name, then each distinct change of that action.
    changes: HashMap<String, Vec<Change>>,
    total: u64,
    unchanged: u64,
    let_through: Vec<LetThrough>,
    let_through_total: u64,
    listed: usize,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

/// Actions whose classification the candidate changes one way, with their real outcomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub action: String,
    /// The rule that classified them then (`None`: `[defaults]`).
    pub from_rule: Option<String>,
    pub from: Tier,
    /// The candidate's rule (`None`: its `[defaults]`).
    pub to_rule: Option<String>,
    pub to: Tier,
    /// What really happened to them.
    pub outcomes: Outcomes,
}

impl Change {
    /// The candidate needs less of people for these actions.
    pub fn relaxes(&self) -> bool {
        self.to < self.from
    }

    /// The candidate would let them run without a person deciding first.
    pub fn unreviewed(&self) -> bool {
        matches!(self.to, Tier::Auto | Tier::Logged)
    }
}

/// A past mistake (rejected, modified or flagged after the fact) that the candidate would
/// have let through without a person deciding first.
#[derive(Clone, Debug, PartialEq)]
pub struct LetThrough {
    pub id: String,
    pub action: String,
    pub agent: String,
    pub at: DateTime<Utc>,
    pub from_rule: Option<String>,
    pub from: Tier,
    pub to_rule: Option<String>,
    pub to: Tier,
    pub outcome: RealOutcome,
    pub flagged: bool,
}

/// What replaying a candidate policy found.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    /// SHA-256 of the candidate's text.
    pub policy_hash: String,
    /// Recorded submissions classified.
    pub total: u64,
    /// Of those, classified into the same tier as recorded.
    pub unchanged: u64,
    /// Into a less strict tier.
    pub relaxed: u64,
    /// Into a stricter tier.
    pub tightened: u64,
    /// Every change, relaxations first, then the largest first.
    pub changes: Vec<Change>,
    /// Past mistakes the candidate would let through, by id (at most the listing limit).
    pub let_through: Vec<LetThrough>,
    /// All of them, listed or not.
    pub let_through_total: u64,
    /// The earliest and latest submission replayed.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

impl Replay {
    pub fn new(policy: Arc<Policy>) -> Replay {
        Replay::listing(policy, DEFAULT_LISTED)
    }

    /// Lists at most `listed` let-through actions (counting them all).
    pub fn listing(policy: Arc<Policy>, listed: usize) -> Replay {
        Replay {
            policy,
            changes: HashMap::new(),
            total: 0,
            unchanged: 0,
            let_through: Vec::new(),
            let_through_total: 0,
            listed,
            first: None,
            last: None,
        }
    }

    /// Classifies one recorded submission with the candidate.
    pub fn add(&mut self, recorded: &Recorded) {
        let classification = self.policy.classify(&recorded.request, recorded.at);
        let to = classification.tier;
        let to_rule = self.policy.rule_name(&classification);
        self.total += 1;
        self.first = Some(self.first.map_or(recorded.at, |f| f.min(recorded.at)));
        self.last = Some(self.last.map_or(recorded.at, |l| l.max(recorded.at)));
        let unreviewed = matches!(to, Tier::Auto | Tier::Logged);
        if unreviewed && (recorded.outcome.is_error() || recorded.flagged) {
            self.let_through_total += 1;
            if self.let_through.len() < self.listed {
                self.let_through.push(LetThrough {
                    id: recorded.id.clone(),
                    action: recorded.request.action.as_str().to_owned(),
                    agent: recorded.request.agent.as_str().to_owned(),
                    at: recorded.at,
                    from_rule: recorded.rule.clone(),
                    from: recorded.tier,
                    to_rule: to_rule.map(str::to_owned),
                    to,
                    outcome: recorded.outcome,
                    flagged: recorded.flagged,
                });
            }
        }
        if to == recorded.tier {
            self.unchanged += 1;
            return;
        }
        let action = recorded.request.action.as_str();
        let list = match self.changes.get_mut(action) {
            Some(list) => list,
            None => self.changes.entry(action.to_owned()).or_default(),
        };
        let found = list.iter_mut().find(|c| {
            c.from == recorded.tier
                && c.to == to
                && c.from_rule == recorded.rule
                && c.to_rule.as_deref() == to_rule
        });
        let change = match found {
            Some(change) => change,
            None => {
                list.push(Change {
                    action: action.to_owned(),
                    from_rule: recorded.rule.clone(),
                    from: recorded.tier,
                    to_rule: to_rule.map(str::to_owned),
                    to,
                    outcomes: Outcomes::default(),
                });
                list.last_mut().expect("just pushed")
            }
        };
        change.outcomes.add(recorded.outcome, recorded.flagged);
    }

    /// Submissions classified so far.
    pub fn seen(&self) -> u64 {
        self.total
    }

    pub fn finish(self) -> ReplayReport {
        let mut changes: Vec<Change> = self.changes.into_values().flatten().collect();
        changes.sort_by(|a, b| {
            b.relaxes()
                .cmp(&a.relaxes())
                .then(b.outcomes.total.cmp(&a.outcomes.total))
                .then_with(|| a.action.cmp(&b.action))
                .then_with(|| a.from_rule.cmp(&b.from_rule))
                .then_with(|| a.to_rule.cmp(&b.to_rule))
        });
        let relaxed = changes
            .iter()
            .filter(|c| c.relaxes())
            .map(|c| c.outcomes.total)
            .sum();
        let tightened = self.total - self.unchanged - relaxed;
        let mut let_through = self.let_through;
        let_through.sort_by(|a, b| a.id.cmp(&b.id));
        ReplayReport {
            policy_hash: self.policy.hash().to_owned(),
            total: self.total,
            unchanged: self.unchanged,
            relaxed,
            tightened,
            changes,
            let_through,
            let_through_total: self.let_through_total,
            first: self.first,
            last: self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActionName, AgentName, ProposedAction};
    use serde_json::json;

    const CANDIDATE: &str = r#"
version = 1
[defaults]
tier = "approve"
[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 50"
tier = "logged"
review_sample = 0.1
"#;

    fn recorded(id: &str, amount: i64, outcome: RealOutcome) -> Recorded {
        let mut request = ProposedAction::new(
            ActionName::parse("refund.create").unwrap(),
            AgentName::parse("bot").unwrap(),
        );
        request.args = json!({"amount": amount}).as_object().unwrap().clone();
        Recorded {
            id: id.to_owned(),
            request,
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            tier: Tier::Approve,
            rule: None,
            outcome,
            flagged: false,
            reviewed: false,
        }
    }

    #[test]
    fn counts_changes_and_lists_mistakes_let_through() {
        let policy = Arc::new(Policy::parse(CANDIDATE).unwrap());
        let mut replay = Replay::new(policy);
        replay.add(&recorded("a", 10, RealOutcome::Approved));
        replay.add(&recorded("b", 20, RealOutcome::Rejected));
        replay.add(&recorded("c", 30, RealOutcome::Modified));
        replay.add(&recorded("d", 500, RealOutcome::Rejected));
        let report = replay.finish();
        assert_eq!((report.total, report.unchanged, report.relaxed), (4, 1, 3));
        assert_eq!(report.changes.len(), 1);
        let change = &report.changes[0];
        assert_eq!((change.from, change.to), (Tier::Approve, Tier::Logged));
        assert_eq!(change.to_rule.as_deref(), Some("small refunds"));
        assert_eq!(
            (
                change.outcomes.approved,
                change.outcomes.rejected,
                change.outcomes.modified
            ),
            (1, 1, 1)
        );
        let ids: Vec<&str> = report.let_through.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn a_failing_condition_never_relaxes() {
        let policy = Arc::new(Policy::parse(CANDIDATE).unwrap());
        let mut replay = Replay::new(policy);
        let mut missing = recorded("e", 0, RealOutcome::Rejected);
        missing.request.args.clear();
        replay.add(&missing);
        let report = replay.finish();
        assert_eq!(report.unchanged, 1);
        assert!(report.let_through.is_empty());
    }
}
