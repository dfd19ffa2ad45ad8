//! The ladder on a virtual clock: a scheduler that wakes at each action's next step (or, while
//! the server is "down", at the restart), one case a line of steps.

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::lifecycle::{DecisionRequest, NewGate, Reviewer, Transition, Verdict, decide};
use crate::notify::status_detail;
use crate::policy::Policy;

/// `[defaults]` of the policy each case runs under, as TOML lines.
struct Case {
    name: &'static str,
    defaults: &'static str,
    tier: &'static str,
    /// The server is down from the first to the second minute (inclusive start).
    downtime: Option<(i64, i64)>,
    /// A reviewer in every group rejects at this minute.
    reject_at: Option<i64>,
    /// `mm:ss step` lines, then the final status detail.
    expected: &'static [&'static str],
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(0, 0).unwrap()
}

fn clock(at: DateTime<Utc>) -> String {
    let seconds = (at - start()).num_seconds();
    format!("{:02}:{:02}", seconds / 60, seconds % 60)
}

fn describe(step: &SlaStep) -> String {
    let list = |moments: &[DateTime<Utc>]| {
        moments
            .iter()
            .map(|m| clock(*m))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match step {
        SlaStep::Remind { moment, skipped } if skipped.is_empty() => {
            format!("remind (due {})", clock(*moment))
        }
        SlaStep::Remind { moment, skipped } => {
            format!("remind (due {}, skipped {})", clock(*moment), list(skipped))
        }
        SlaStep::SkipReminders { skipped } => format!("skip stale reminders {}", list(skipped)),
        SlaStep::Escalate {
            groups,
            deadline,
            reminders,
        } => format!(
            "escalate to {} until {} reminding at [{}]",
            groups
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(","),
            clock(*deadline),
            list(reminders)
        ),
        SlaStep::Expire => "expire".to_owned(),
        SlaStep::AutoApprove => "auto-approve".to_owned(),
    }
}

fn run(case: &Case) -> Vec<String> {
    let text = format!(
        "version = 1\n[defaults]\n{}\n[[rules]]\nname = \"r\"\nactions = [\"refund.create\"]\ntier = \"{}\"\n",
        case.defaults, case.tier
    );
    let policy = Policy::parse(&text).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
    let proposal = crate::ProposedAction::new(
        crate::ActionName::parse("refund.create").unwrap(),
        crate::AgentName::parse("bot").unwrap(),
    );
    let classification = policy.classify(&proposal, start());
    let settings = policy.review_settings(&classification);
    let mut gate = Gate::new(NewGate {
        action: proposal.action,
        agent: crate::Name::parse("bot").unwrap(),
        owner: None,
        args: Default::default(),
        tier: classification.tier,
        settings: &settings,
        at: start(),
        sample_draw: 0.5,
        granted: false,
    });
    let mut log = Vec::new();
    let mut steps = 0;
    while let Some(next) = gate.next_step_at() {
        let wake = match case.downtime {
            Some((from, to))
                if next >= start() + TimeDelta::minutes(from)
                    && next < start() + TimeDelta::minutes(to) =>
            {
                start() + TimeDelta::minutes(to)
            }
            _ => next,
        };
        if let Some(minute) = case.reject_at
            && start() + TimeDelta::minutes(minute) < wake
        {
            let at = start() + TimeDelta::minutes(minute);
            let groups = [crate::Name::parse("finance").unwrap()];
            let transition = decide(
                &gate,
                &Reviewer {
                    name: &crate::Name::parse("rita").unwrap(),
                    groups: &groups,
                    admin: true,
                },
                DecisionRequest {
                    verdict: Verdict::Reject,
                    args: None,
                    reason: Some("duplicate of A-1".into()),
                    confirm: None,
                    reclassified: None,
                },
                at,
            )
            .unwrap();
            gate.apply(&transition);
            log.push(format!("{} rejected by rita", clock(at)));
            continue;
        }
        let step = due(&gate, wake)
            .unwrap_or_else(|| panic!("{}: nothing due at {}", case.name, clock(wake)));
        log.push(format!("{} {}", clock(wake), describe(&step)));
        gate.apply(&Transition::Sla { step, at: wake });
        // Each step once: asking again at the same instant gives the next step or nothing.
        steps += 1;
        assert!(steps < 20, "{}: the ladder does not end", case.name);
    }
    // The gate counts the reminders it was sent, stale ones skipped not included: the
    // approval metrics' `reminded` reads this count.
    let sent = log.iter().filter(|line| line.contains(" remind (")).count();
    assert_eq!(
        gate.reminded as usize, sent,
        "{}: reminders counted",
        case.name
    );
    log.push(status_detail(&gate, start()));
    log
}

const CASES: &[Case] = &[
    Case {
        name: "reject on timeout",
        defaults: "sla = \"30m\"",
        tier: "approve",
        downtime: None,
        reject_at: None,
        expected: &["30:00 expire", "expired: no reviewer answered within 30m"],
    },
    Case {
        name: "a person rejects",
        defaults: "sla = \"30m\"\nremind_at = [\"50%\"]",
        tier: "approve",
        downtime: None,
        reject_at: Some(5),
        expected: &[
            "05:00 rejected by rita",
            "rejected by rita at 00:05 UTC: duplicate of A-1",
        ],
    },
    Case {
        name: "escalate, then expire",
        defaults: "sla = \"15m\"\non_timeout = \"escalate\"\nescalate_to = [\"finance\"]\nescalation_sla = \"1h\"",
        tier: "approve",
        downtime: None,
        reject_at: None,
        expected: &[
            "15:00 escalate to finance until 75:00 reminding at []",
            "75:00 expire",
            "expired: no reviewer answered within 15m (escalated to finance at 00:15 UTC, then 1h more)",
        ],
    },
    Case {
        name: "escalate, then a person rejects",
        defaults: "sla = \"15m\"\non_timeout = \"escalate\"\nescalate_to = [\"finance\"]\nescalation_sla = \"1h\"",
        tier: "approve",
        downtime: None,
        reject_at: Some(20),
        expected: &[
            "15:00 escalate to finance until 75:00 reminding at []",
            "20:00 rejected by rita",
            "rejected by rita at 00:20 UTC: duplicate of A-1",
        ],
    },
    Case {
        name: "reminders",
        defaults: "sla = \"30m\"\nremind_at = [\"50%\", \"90%\"]",
        tier: "approve",
        downtime: None,
        reject_at: None,
        expected: &[
            "15:00 remind (due 15:00)",
            "27:00 remind (due 27:00)",
            "30:00 expire",
            "expired: no reviewer answered within 30m",
        ],
    },
    Case {
        name: "reminders in each stage",
        defaults: "sla = \"20m\"\nremind_at = [\"50%\", \"5m\"]\non_timeout = \"escalate\"\nescalate_to = [\"finance\"]\nescalation_sla = \"1h\"",
        tier: "approve",
        downtime: None,
        reject_at: None,
        expected: &[
            "10:00 remind (due 10:00)",
            "15:00 remind (due 15:00)",
            "20:00 escalate to finance until 80:00 reminding at [50:00 75:00]",
            "50:00 remind (due 50:00)",
            "75:00 remind (due 75:00)",
            "80:00 expire",
            "expired: no reviewer answered within 20m (escalated to finance at 00:20 UTC, then 1h more)",
        ],
    },
    Case {
        name: "approve on timeout, opted in",
        defaults: "sla = \"30m\"\non_timeout = \"approve\"\nallow_auto_approve = true",
        tier: "approve",
        downtime: None,
        reject_at: None,
        expected: &[
            "30:00 auto-approve",
            "approved by the system: no reviewer answered within 30m, and the policy approves on timeout",
        ],
    },
    Case {
        name: "down over a reminder, back soon: sent late",
        defaults: "sla = \"30m\"\nremind_at = [\"50%\", \"90%\"]",
        tier: "approve",
        downtime: Some((14, 20)),
        reject_at: None,
        expected: &[
            "20:00 remind (due 15:00)",
            "27:00 remind (due 27:00)",
            "30:00 expire",
            "expired: no reviewer answered within 30m",
        ],
    },
    Case {
        name: "down over a reminder, back late: skipped",
        defaults: "sla = \"30m\"\nremind_at = [\"50%\", \"90%\"]",
        tier: "approve",
        downtime: Some((14, 23)),
        reject_at: None,
        expected: &[
            "23:00 skip stale reminders 15:00",
            "27:00 remind (due 27:00)",
            "30:00 expire",
            "expired: no reviewer answered within 30m",
        ],
    },
    Case {
        name: "down over two reminders: one sent, not a burst",
        defaults: "sla = \"30m\"\nremind_at = [\"50%\", \"90%\"]",
        tier: "approve",
        downtime: Some((14, 28)),
        reject_at: None,
        expected: &[
            "28:00 remind (due 27:00, skipped 15:00)",
            "30:00 expire",
            "expired: no reviewer answered within 30m",
        ],
    },
    Case {
        name: "down over the deadline: acted on once at start",
        defaults: "sla = \"30m\"\nremind_at = [\"50%\", \"90%\"]",
        tier: "approve",
        downtime: Some((14, 35)),
        reject_at: None,
        expected: &["35:00 expire", "expired: no reviewer answered within 30m"],
    },
    Case {
        name: "down over the escalation: the new groups get their full time",
        defaults: "sla = \"15m\"\non_timeout = \"escalate\"\nescalate_to = [\"finance\"]\nescalation_sla = \"1h\"\nremind_at = [\"50%\"]",
        tier: "approve",
        downtime: Some((5, 40)),
        reject_at: None,
        expected: &[
            "40:00 escalate to finance until 100:00 reminding at [70:00]",
            "70:00 remind (due 70:00)",
            "100:00 expire",
            "expired: no reviewer answered within 40m (escalated to finance at 00:40 UTC, then 1h more)",
        ],
    },
];

#[test]
fn ladder_on_a_virtual_clock() {
    for case in CASES {
        assert_eq!(run(case), case.expected, "{}", case.name);
    }
}

#[test]
fn nothing_due_before_the_next_step() {
    let case = &CASES[4];
    let text = format!(
        "version = 1\n[defaults]\n{}\n[[rules]]\nname = \"r\"\nactions = [\"*\"]\ntier = \"{}\"\n",
        case.defaults, case.tier
    );
    let policy = Policy::parse(&text).unwrap();
    let proposal = crate::ProposedAction::new(
        crate::ActionName::parse("x").unwrap(),
        crate::AgentName::parse("bot").unwrap(),
    );
    let classification = policy.classify(&proposal, start());
    let settings = policy.review_settings(&classification);
    let gate = Gate::new(NewGate {
        action: proposal.action,
        agent: crate::Name::parse("bot").unwrap(),
        owner: None,
        args: Default::default(),
        tier: classification.tier,
        settings: &settings,
        at: start(),
        sample_draw: 0.5,
        granted: false,
    });
    let next = gate.next_step_at().unwrap();
    assert_eq!(clock(next), "15:00");
    assert_eq!(due(&gate, next - TimeDelta::milliseconds(1)), None);
    assert!(due(&gate, next).is_some());
}

/// A `confirm` action is never approved by the ladder, even with a plan that says so (an
/// action tightened to `confirm` by a modify, or a row written by hand).
#[test]
fn never_approves_confirm() {
    let mut gate = Gate {
        action: crate::ActionName::parse("refund.create").unwrap(),
        agent: crate::Name::parse("bot").unwrap(),
        owner: None,
        tier: Tier::Confirm,
        status: Status::Pending,
        approvers: crate::Approvers::Anyone,
        escalated_to: vec![],
        approvals_required: 2,
        decisions: vec![],
        args: Default::default(),
        original_args: None,
        deadline: Some(start()),
        reminders: vec![],
        reminded: 0,
        timeout: Some(crate::lifecycle::TimeoutPlan {
            on_timeout: OnTimeout::Approve,
            escalate_to: vec![],
            escalation_sla: crate::duration::ReviewDuration::from_seconds(60).unwrap(),
            remind_at: vec![],
        }),
        escalated: false,
        escalated_at: None,
        decided_at: None,
        review: crate::lifecycle::ReviewState::NotSampled,
        outcome: None,
    };
    assert_eq!(due(&gate, start()), Some(SlaStep::Expire));
    gate.tier = Tier::Approve;
    assert_eq!(due(&gate, start()), Some(SlaStep::AutoApprove));
    gate.escalated = true;
    assert_eq!(due(&gate, start()), Some(SlaStep::Expire));
}
