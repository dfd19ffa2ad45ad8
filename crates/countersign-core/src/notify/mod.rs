//! Who hears about what: the events an action's life sends to reviewers' channels and to
//! the agent's callback, which configured audiences hear each one, how a failed delivery is
//! retried, and the words every message uses (`text.rs`).
//!
//! Pure like the rest of the core: the store asks [`Audience::hears`] inside the write
//! transaction that causes an event, so that the deliveries are decided and stored with it;
//! the server only transports them.

mod text;

use chrono::TimeDelta;

pub use text::{human_duration, status_detail, time_left, when};

use crate::action::{ACTION_NAME_CHARS, is_action_name_char};
use crate::glob::{Glob, GlobError};
use crate::lifecycle::Gate;
use crate::name::Name;
use crate::tier::Status;

crate::vocabulary! {
    /// What happened to an action, as notification targets subscribe to it.
    pub enum EventKind {
        /// A new action waits for people.
        Pending = "pending",
        /// Its deadline is getting close.
        Reminder = "reminder",
        /// Its deadline passed and more people may decide now.
        Escalated = "escalated",
        /// Its last deadline passed unanswered: nobody decided, the agent may not run it.
        Expired = "expired",
        /// It was approved or rejected (by people, or approved by the system where the
        /// policy allows it).
        Decided = "decided",
        /// The agent withdrew it (callbacks only).
        Cancelled = "cancelled",
        /// A graduated rule's post-hoc flag rate crossed its target: reviewers are told with
        /// the evidence and the revert. About a rule and an action name, not one action.
        GraduationRegressed = "graduation_regressed",
    }
}

impl EventKind {
    /// The events a notification target may subscribe to (`cancelled` goes only to the
    /// agent's callback: reviewers are not asked to do anything).
    pub const SUBSCRIBABLE: &'static [EventKind] = &[
        EventKind::Pending,
        EventKind::Reminder,
        EventKind::Escalated,
        EventKind::Expired,
        EventKind::Decided,
        EventKind::GraduationRegressed,
    ];

    /// The final-status event the agent's callback gets for an action that just reached
    /// `status`, if any.
    pub fn for_final_status(status: Status) -> Option<EventKind> {
        match status {
            Status::Approved | Status::Rejected => Some(EventKind::Decided),
            Status::Expired => Some(EventKind::Expired),
            Status::Cancelled => Some(EventKind::Cancelled),
            Status::Allowed | Status::Denied | Status::Pending => None,
        }
    }
}

/// Which events a notification target hears: a kind it subscribes to, about an action whose
/// name matches one of its `actions` globs (none: every action), that one of its `groups`
/// may decide now (none: whoever decides).
#[derive(Clone, Debug, PartialEq)]
pub struct Audience {
    pub events: Vec<EventKind>,
    pub actions: Vec<Glob>,
    pub groups: Vec<Name>,
}

impl Audience {
    /// Parses an `actions` filter entry.
    pub fn action_glob(pattern: &str) -> Result<Glob, GlobError> {
        Glob::parse(pattern, is_action_name_char, ACTION_NAME_CHARS)
    }

    /// Whether this audience hears `kind` about the action `gate` describes (after the
    /// change). A group hears about an action its members may decide on: for `finance`,
    /// only once escalation added it, if the rule names `support-leads`; never one that only
    /// admins may decide.
    pub fn hears(&self, kind: EventKind, gate: &Gate) -> bool {
        self.events.contains(&kind)
            && (self.actions.is_empty()
                || self.actions.iter().any(|g| g.matches(gate.action.as_str())))
            && (self.groups.is_empty() || gate.deciders().admits(&self.groups, false))
    }

    /// Whether this audience hears that the graduated rule for `action` regressed. Its
    /// `actions` globs filter as for an action's events; its `groups` do not, since nobody
    /// decides a regression: a target subscribed to `graduation_regressed` hears every
    /// regression of the actions it follows.
    pub fn hears_regression(&self, action: &str) -> bool {
        self.events.contains(&EventKind::GraduationRegressed)
            && (self.actions.is_empty() || self.actions.iter().any(|g| g.matches(action)))
    }
}

/// How long to wait before try `attempt + 1` after `attempt` tries failed (`attempt` ≥ 1):
/// `base` doubled each time up to `cap`, then "equal jitter" — half of it fixed, half drawn
/// with `jitter` (a number in `[0, 1)` the caller draws) — so that receivers that come back
/// are not hit by every sender at the same instant, and no wait is shorter than half its
/// step.
pub fn retry_delay(attempt: u32, base: TimeDelta, cap: TimeDelta, jitter: f64) -> TimeDelta {
    let doublings = attempt.saturating_sub(1).min(30);
    let step = base
        .checked_mul(1 << doublings)
        .map_or(cap, |d| d.min(cap))
        .max(TimeDelta::zero());
    let half = step / 2;
    let jitter = jitter.clamp(0.0, 1.0);
    half + TimeDelta::milliseconds((half.num_milliseconds() as f64 * jitter) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{NewGate, ReviewState};
    use crate::policy::Policy;

    fn n(text: &str) -> Name {
        Name::parse(text).unwrap()
    }

    #[test]
    fn retry_delays_double_up_to_the_cap_with_jitter() {
        let s = TimeDelta::seconds;
        let cases: &[(u32, f64, TimeDelta)] = &[
            (1, 0.0, TimeDelta::milliseconds(500)),
            (1, 0.999, TimeDelta::milliseconds(999)),
            (2, 0.0, s(1)),
            (3, 0.5, s(3)),
            (10, 0.0, s(30)),
            (10, 0.5, s(45)),
            (u32::MAX, 0.0, s(30)),
        ];
        for (attempt, jitter, expected) in cases {
            assert_eq!(
                retry_delay(*attempt, s(1), s(60), *jitter),
                *expected,
                "attempt {attempt}, jitter {jitter}"
            );
        }
    }

    #[test]
    fn audiences() {
        let policy = Policy::parse(
            r#"
version = 1
[[rules]]
name = "large refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]
on_timeout = "escalate"
escalate_to = ["finance"]
[[rules]]
name = "anyone"
actions = ["ticket.close"]
tier = "approve"
"#,
        )
        .unwrap();
        let gate = |action: &str| {
            let proposal = crate::ProposedAction::new(
                crate::ActionName::parse(action).unwrap(),
                crate::AgentName::parse("bot").unwrap(),
            );
            let classification = policy.classify(&proposal, chrono::Utc::now());
            let settings = policy.review_settings(&classification);
            Gate::new(NewGate {
                action: proposal.action,
                agent: n("bot"),
                owner: None,
                args: Default::default(),
                tier: classification.tier,
                settings: &settings,
                at: chrono::Utc::now(),
                sample_draw: 0.5,
                granted: false,
            })
        };
        let refund = gate("refund.create");
        let mut escalated = refund.clone();
        escalated.escalated_to = vec![n("finance")];
        let ticket = gate("ticket.close");
        assert_eq!(ticket.review, ReviewState::NotSampled);

        let audience = |events: &[EventKind], actions: &[&str], groups: &[&str]| Audience {
            events: events.to_vec(),
            actions: actions
                .iter()
                .map(|a| Audience::action_glob(a).unwrap())
                .collect(),
            groups: groups.iter().map(|g| n(g)).collect(),
        };
        use EventKind::*;
        let all = EventKind::SUBSCRIBABLE;
        // (audience, event, action, hears)
        let cases: &[(Audience, EventKind, &Gate, bool)] = &[
            (audience(all, &[], &[]), Pending, &refund, true),
            (audience(&[Decided], &[], &[]), Pending, &refund, false),
            (audience(all, &["refund.*"], &[]), Pending, &refund, true),
            (audience(all, &["refund.*"], &[]), Pending, &ticket, false),
            (audience(all, &[], &["finance"]), Pending, &refund, false),
            (
                audience(all, &[], &["finance"]),
                Escalated,
                &escalated,
                true,
            ),
            (
                audience(all, &[], &["support-leads"]),
                Escalated,
                &escalated,
                true,
            ),
            (audience(all, &[], &["finance"]), Pending, &ticket, true),
            (audience(all, &[], &["sales"]), Pending, &refund, false),
        ];
        for (i, (audience, kind, gate, hears)) in cases.iter().enumerate() {
            assert_eq!(audience.hears(*kind, gate), *hears, "case {i}");
        }
        // (audience, regressed action, hears): groups do not filter regressions.
        let regressions: &[(Audience, &str, bool)] = &[
            (audience(all, &[], &[]), "refund.create", true),
            (
                audience(&[Pending, Decided], &[], &[]),
                "refund.create",
                false,
            ),
            (
                audience(&[GraduationRegressed], &["refund.*"], &[]),
                "refund.create",
                true,
            ),
            (
                audience(&[GraduationRegressed], &["ticket.*"], &[]),
                "refund.create",
                false,
            ),
            (
                audience(&[GraduationRegressed], &[], &["sales"]),
                "refund.create",
                true,
            ),
        ];
        for (i, (audience, action, hears)) in regressions.iter().enumerate() {
            assert_eq!(
                audience.hears_regression(action),
                *hears,
                "regression case {i}"
            );
        }
        let mut admins_only = refund.clone();
        admins_only.approvers = crate::Approvers::AdminsOnly;
        assert!(!audience(all, &[], &["finance"]).hears(Pending, &admins_only));
        assert!(audience(all, &[], &[]).hears(Pending, &admins_only));
    }
}
