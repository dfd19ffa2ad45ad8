//! Every rejected or modified action is a training signal (the seed): which actions are,
//! what each one teaches, and in whose words. The export formats that carry them to a
//! fine-tuning job are the server's (only the edge knows the wire); what counts as a case,
//! and what its label is, is decided here once.
//!
//! An expired action is nobody's judgment: it is labelled `expired`, never `rejected`, and
//! it carries no reason, no accepted call and no refusal.

use serde_json::{Map, Value};

use crate::lifecycle::{Gate, ReviewState, ReviewVerdict, Verdict};
use crate::name::Name;
use crate::tier::Status;

crate::vocabulary! {
    /// What a person (or nobody) made of an action.
    pub enum Label {
        /// A person said no before it ran.
        Rejected = "rejected",
        /// A person approved it with other arguments.
        Modified = "modified",
        /// It ran, and a post-hoc review said it should not have.
        Flagged = "flagged",
        /// Nobody decided before the SLA ended.
        Expired = "expired",
    }
}

impl Label {
    /// Does a person's judgment stand behind it? (Not for `expired`.)
    pub fn is_judgment(self) -> bool {
        self != Label::Expired
    }
}

/// What one action teaches.
#[derive(Clone, Debug, PartialEq)]
pub struct Case<'a> {
    pub label: Label,
    /// What the agent proposed.
    pub proposed_args: &'a Map<String, Value>,
    /// What a person accepted instead (`modified`).
    pub accepted_args: Option<&'a Map<String, Value>>,
    /// Who judged it (`None` for `expired`).
    pub judged_by: Option<&'a Name>,
    /// In their words: the rejection's reason, the modification's comment, the flag's note.
    pub reason: Option<&'a str>,
}

/// The case `gate` makes, if any. A flag after the fact outranks how the action was
/// decided before it ran: it is the later and the graver judgment.
pub fn case(gate: &Gate) -> Option<Case<'_>> {
    let proposed_args = gate.original_args.as_ref().unwrap_or(&gate.args);
    if let ReviewState::Reviewed(review) = &gate.review
        && review.verdict == ReviewVerdict::Flag
    {
        return Some(Case {
            label: Label::Flagged,
            proposed_args,
            accepted_args: None,
            judged_by: Some(&review.reviewer),
            reason: review.note.as_deref(),
        });
    }
    let last = |verdict: Verdict| gate.decisions.iter().rev().find(|d| d.verdict == verdict);
    match gate.status {
        Status::Rejected => {
            let decision = last(Verdict::Reject);
            Some(Case {
                label: Label::Rejected,
                proposed_args,
                accepted_args: None,
                judged_by: decision.map(|d| &d.reviewer),
                reason: decision.and_then(|d| d.reason.as_deref()),
            })
        }
        Status::Approved if gate.original_args.is_some() => {
            let decision = last(Verdict::Modify);
            Some(Case {
                label: Label::Modified,
                proposed_args,
                accepted_args: Some(&gate.args),
                judged_by: decision.map(|d| &d.reviewer),
                reason: decision.and_then(|d| d.reason.as_deref()),
            })
        }
        Status::Expired => Some(Case {
            label: Label::Expired,
            proposed_args,
            accepted_args: None,
            judged_by: None,
            reason: None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::lifecycle::{Decision, Review};
    use crate::tier::Tier;
    use crate::{ActionName, Approvers};

    fn n(name: &str) -> Name {
        Name::parse(name).unwrap()
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn gate(status: Status) -> Gate {
        Gate {
            action: ActionName::parse("refund.create").unwrap(),
            agent: n("bot"),
            owner: None,
            tier: Tier::Approve,
            status,
            approvers: Approvers::Anyone,
            escalated_to: vec![],
            approvals_required: 1,
            decisions: vec![],
            args: object(json!({"amount": 2500})),
            original_args: None,
            deadline: None,
            timeout: None,
            escalated: false,
            escalated_at: None,
            reminders: vec![],
            reminded: 0,
            decided_at: None,
            review: ReviewState::NotSampled,
            outcome: None,
        }
    }

    fn decision(who: &str, verdict: Verdict, reason: &str) -> Decision {
        Decision {
            reviewer: n(who),
            verdict,
            args: None,
            reason: Some(reason.into()),
            at: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    /// The label, who judged, their reason, the accepted amount.
    type Expected = (
        Label,
        Option<&'static str>,
        Option<&'static str>,
        Option<i64>,
    );

    #[test]
    fn cases_and_their_labels() {
        let mut rejected = gate(Status::Rejected);
        rejected.decisions = vec![
            decision("sam", Verdict::Approve, "fine by me"),
            decision("rita", Verdict::Reject, "refunded by the bank already"),
        ];
        let mut modified = gate(Status::Approved);
        modified.original_args = Some(object(json!({"amount": 2500})));
        modified.args = object(json!({"amount": 250}));
        modified.decisions = vec![decision("rita", Verdict::Modify, "one item, not ten")];
        let mut flagged = gate(Status::Allowed);
        flagged.tier = Tier::Logged;
        flagged.review = ReviewState::Reviewed(Review {
            reviewer: n("sam"),
            verdict: ReviewVerdict::Flag,
            note: Some("should have asked".into()),
            at: DateTime::from_timestamp(0, 0).unwrap(),
        });
        let approved = {
            let mut g = gate(Status::Approved);
            g.decisions = vec![decision("rita", Verdict::Approve, "ok")];
            g
        };
        // (gate, label, judged by, reason, accepted amount)
        let cases: Vec<(Gate, Option<Expected>)> = vec![
            (
                rejected,
                Some((
                    Label::Rejected,
                    Some("rita"),
                    Some("refunded by the bank already"),
                    None,
                )),
            ),
            (
                modified,
                Some((
                    Label::Modified,
                    Some("rita"),
                    Some("one item, not ten"),
                    Some(250),
                )),
            ),
            (
                flagged,
                Some((Label::Flagged, Some("sam"), Some("should have asked"), None)),
            ),
            (
                gate(Status::Expired),
                Some((Label::Expired, None, None, None)),
            ),
            (approved, None),
            (gate(Status::Pending), None),
            (gate(Status::Cancelled), None),
            (gate(Status::Denied), None),
        ];
        for (g, expected) in &cases {
            let got = case(g).map(|c| {
                assert_eq!(c.proposed_args["amount"], 2500, "the agent's own arguments");
                (
                    c.label,
                    c.judged_by.map(Name::as_str),
                    c.reason,
                    c.accepted_args.map(|a| a["amount"].as_i64().unwrap()),
                )
            });
            assert_eq!(&got, expected, "{:?}", g.status);
        }
        assert!(!Label::Expired.is_judgment());
        assert!(Label::Rejected.is_judgment());
    }
}
