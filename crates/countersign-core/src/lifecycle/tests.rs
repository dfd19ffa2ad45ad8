//! The lifecycle's rules as tables where they are tables: one case a line.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::*;
use crate::duration::ReviewDuration;
use crate::policy::OnTimeout;

fn n(name: &str) -> Name {
    Name::parse(name).unwrap()
}

fn gate(tier: Tier, approvers: &[&str], required: u32) -> Gate {
    Gate {
        action: crate::ActionName::parse("refund.create").unwrap(),
        agent: n("support-bot"),
        owner: Some(n("olivia")),
        tier,
        status: Status::Pending,
        approvers: Approvers::from_groups(groups(approvers)),
        escalated_to: vec![],
        approvals_required: required,
        decisions: vec![],
        args: json!({"amount": 2500}).as_object().unwrap().clone(),
        original_args: None,
        deadline: None,
        reminders: vec![],
        reminded: 0,
        timeout: None,
        escalated: false,
        escalated_at: None,
        decided_at: None,
        review: ReviewState::NotSampled,
        outcome: None,
    }
}

fn groups(names: &[&str]) -> Vec<Name> {
    names.iter().map(|s| n(s)).collect()
}

fn request(verdict: Verdict) -> DecisionRequest {
    DecisionRequest {
        verdict,
        args: None,
        reason: None,
        confirm: None,
        reclassified: None,
    }
}

/// What the policy says of modified arguments: `tier`, decided by members of
/// `approvers`, `approvals` of them.
fn classified(tier: Tier, approvers: &[&str], approvals: u32) -> Reclassified {
    Reclassified {
        tier,
        rule: Some("some rule".into()),
        reason: format!("rule \"some rule\" matched ({tier})"),
        settings: ReviewSettings {
            approvers: Approvers::from_groups(groups(approvers)),
            approvals_required: approvals,
            sla: ReviewDuration::from_seconds(1800).unwrap(),
            on_timeout: OnTimeout::Reject,
            escalate_to: vec![],
            escalation_sla: ReviewDuration::from_seconds(1800).unwrap(),
            review_sample: 0.0,
            remind_at: vec![],
        },
    }
}

fn modify(args: Value, reclassified: Reclassified) -> DecisionRequest {
    DecisionRequest {
        args: Some(args.as_object().unwrap().clone()),
        reclassified: Some(reclassified),
        ..request(Verdict::Modify)
    }
}

fn apply(
    gate: &mut Gate,
    who: &str,
    in_groups: &[&str],
    req: DecisionRequest,
) -> Result<Status, DecideError> {
    let g = groups(in_groups);
    let transition = decide(
        gate,
        &Reviewer {
            name: &n(who),
            groups: &g,
            admin: who == "ada",
        },
        req,
        Utc::now(),
    )?;
    gate.apply(&transition);
    Ok(gate.status)
}

#[test]
fn single_approval() {
    let mut g = gate(Tier::Approve, &[], 1);
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Approve)),
        Ok(Status::Approved)
    );
    assert_eq!(
        apply(&mut g, "sam", &[], request(Verdict::Approve)),
        Err(DecideError::NotPending(Status::Approved))
    );
}

#[test]
fn rejection_ends_it() {
    let mut g = gate(Tier::Approve, &[], 2);
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Approve)),
        Ok(Status::Pending)
    );
    assert_eq!(
        apply(&mut g, "sam", &[], request(Verdict::Reject)),
        Ok(Status::Rejected)
    );
}

#[test]
fn access_rules() {
    let mut g = gate(Tier::Approve, &["support-leads"], 2);
    assert!(matches!(
        apply(
            &mut g,
            "olivia",
            &["support-leads"],
            request(Verdict::Approve)
        ),
        Err(DecideError::OwnAgent { .. })
    ));
    assert!(matches!(
        apply(&mut g, "rita", &["sales"], request(Verdict::Approve)),
        Err(DecideError::NotAnApprover { .. })
    ));
    assert_eq!(
        apply(
            &mut g,
            "rita",
            &["support-leads"],
            request(Verdict::Approve)
        ),
        Ok(Status::Pending)
    );
    assert_eq!(
        apply(
            &mut g,
            "rita",
            &["support-leads"],
            request(Verdict::Approve)
        ),
        Err(DecideError::AlreadyApproved("rita".into()))
    );
    // Owners may not reject either: they may not decide at all.
    assert!(matches!(
        apply(
            &mut g,
            "olivia",
            &["support-leads"],
            request(Verdict::Reject)
        ),
        Err(DecideError::OwnAgent { .. })
    ));
}

fn refusal_code(error: &DecideError) -> &'static str {
    match error {
        DecideError::NotPending(_) => "not_pending",
        DecideError::OwnAgent { .. } => "own_agent",
        DecideError::NotAnApprover { .. } => "not_an_approver",
        DecideError::AlreadyApproved(_) => "already_approved",
        DecideError::ConfirmationMismatch { .. } => "confirmation_mismatch",
        DecideError::ModifyWithoutArgs => "modify_without_args",
        DecideError::ArgsWithoutModify => "args_without_modify",
        DecideError::DeadlinePassed { .. } => "expired",
        DecideError::ModifiedArgsDenied { .. } => "modified_args_denied",
        DecideError::Unclassified => "unclassified_args",
    }
}

type Access = (
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    Result<Status, &'static str>,
);

/// `(agent, owner, approved before, reviewer, reviewer's groups, expected)` on an action
/// that needs two approvals from `support-leads`. Names as an earlier version may have
/// stored them, in any case: the rules hold regardless.
const ACCESS: &[Access] = &[
    (
        "support-bot",
        Some("olivia"),
        &[],
        "rita",
        &["support-leads"],
        Ok(Status::Pending),
    ),
    (
        "support-bot",
        Some("olivia"),
        &[],
        "olivia",
        &["support-leads"],
        Err("own_agent"),
    ),
    (
        "support-bot",
        Some("olivia"),
        &[],
        "Olivia",
        &["support-leads"],
        Err("own_agent"),
    ),
    (
        "support-bot",
        Some("Olivia"),
        &[],
        "olivia",
        &["support-leads"],
        Err("own_agent"),
    ),
    (
        "support-bot",
        None,
        &[],
        "support-bot",
        &["support-leads"],
        Err("own_agent"),
    ),
    (
        "Support-Bot",
        None,
        &[],
        "support-bot",
        &["support-leads"],
        Err("own_agent"),
    ),
    (
        "support-bot",
        None,
        &[],
        "olivia",
        &["support-leads"],
        Ok(Status::Pending),
    ),
    (
        "support-bot",
        Some("olivia"),
        &["rita"],
        "rita",
        &["support-leads"],
        Err("already_approved"),
    ),
    (
        "support-bot",
        Some("olivia"),
        &["rita"],
        "Rita",
        &["support-leads"],
        Err("already_approved"),
    ),
    (
        "support-bot",
        Some("olivia"),
        &["RITA"],
        "rita",
        &["support-leads"],
        Err("already_approved"),
    ),
    (
        "support-bot",
        Some("olivia"),
        &["rita"],
        "sam",
        &["support-leads"],
        Ok(Status::Approved),
    ),
    (
        "support-bot",
        Some("olivia"),
        &[],
        "rita",
        &["sales"],
        Err("not_an_approver"),
    ),
    (
        "support-bot",
        Some("olivia"),
        &[],
        "rita",
        &["Support-Leads"],
        Ok(Status::Pending),
    ),
];

#[test]
fn access_rules_as_a_table() {
    for (agent, owner, before, reviewer, in_groups, expected) in ACCESS {
        let mut g = gate(Tier::Approve, &["support-leads"], 2);
        g.agent = n(agent);
        g.owner = owner.map(n);
        for earlier in *before {
            apply(
                &mut g,
                earlier,
                &["support-leads"],
                request(Verdict::Approve),
            )
            .unwrap();
        }
        let found = apply(&mut g, reviewer, in_groups, request(Verdict::Approve));
        let found = found.as_ref().map_err(refusal_code).copied();
        assert_eq!(
            found, *expected,
            "{reviewer} in {in_groups:?} on {agent}'s action (owner {owner:?}), after {before:?}"
        );
    }
}

#[test]
fn two_spellings_are_one_confirmer() {
    let mut g = gate(Tier::Confirm, &[], 2);
    let mut confirm = request(Verdict::Approve);
    confirm.confirm = Some("refund.create".into());
    assert_eq!(
        apply(&mut g, "rita", &[], confirm.clone()),
        Ok(Status::Pending)
    );
    assert_eq!(
        apply(&mut g, "Rita", &[], confirm.clone()),
        Err(DecideError::AlreadyApproved("rita".into()))
    );
    assert_eq!(g.counting_approvers(), [&n("rita")]);
    assert_eq!(apply(&mut g, "sam", &[], confirm), Ok(Status::Approved));
}

/// `(agent, owner, reviewer, may review)`: post-hoc review has the decisions' separation
/// of duties.
const REVIEW: &[(&str, Option<&str>, &str, bool)] = &[
    ("support-bot", Some("olivia"), "rita", true),
    ("support-bot", Some("olivia"), "olivia", false),
    ("support-bot", Some("olivia"), "OLIVIA", false),
    ("support-bot", Some("Olivia"), "olivia", false),
    ("support-bot", None, "olivia", true),
    ("support-bot", None, "support-bot", false),
    ("ada", None, "Ada", false),
];

#[test]
fn who_may_review() {
    for (agent, owner, reviewer, allowed) in REVIEW {
        let mut g = gate(Tier::Logged, &[], 0);
        g.status = Status::Allowed;
        g.review = ReviewState::Open;
        g.agent = n(agent);
        g.owner = owner.map(n);
        let found = review(&g, &n(reviewer), ReviewVerdict::Ok, None, Utc::now());
        assert_eq!(
            found.is_ok(),
            *allowed,
            "{reviewer} on {agent} (owner {owner:?})"
        );
        assert_eq!(
            answers_for(&n(agent), owner.map(n).as_ref(), &n(reviewer)),
            !allowed
        );
    }
}

#[test]
fn escalation_adds_groups() {
    let mut g = gate(Tier::Approve, &["support-leads"], 1);
    g.escalated_to = groups(&["finance"]);
    assert_eq!(
        apply(&mut g, "fin", &["finance"], request(Verdict::Approve)),
        Ok(Status::Approved)
    );
}

#[test]
fn confirm_needs_two_people_and_the_name() {
    let mut g = gate(Tier::Confirm, &[], 2);
    let mut approve = request(Verdict::Approve);
    assert!(matches!(
        apply(&mut g, "rita", &[], approve.clone()),
        Err(DecideError::ConfirmationMismatch { .. })
    ));
    approve.confirm = Some("refund.delete".into());
    assert!(apply(&mut g, "rita", &[], approve.clone()).is_err());
    approve.confirm = Some("refund.create".into());
    assert_eq!(
        apply(&mut g, "rita", &[], approve.clone()),
        Ok(Status::Pending)
    );
    assert_eq!(
        apply(&mut g, "rita", &[], approve.clone()),
        Err(DecideError::AlreadyApproved("rita".into()))
    );
    assert_eq!(apply(&mut g, "sam", &[], approve), Ok(Status::Approved));
}

#[test]
fn modify_replaces_args_and_resets_approvals() {
    let mut g = gate(Tier::Approve, &[], 2);
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Approve)),
        Ok(Status::Pending)
    );
    let modify = modify(json!({"amount": 100}), classified(Tier::Approve, &[], 1));
    assert_eq!(
        apply(&mut g, "sam", &[], modify),
        Ok(Status::Pending),
        "rita's approval no longer counts"
    );
    assert_eq!(g.args["amount"], json!(100));
    assert_eq!(g.original_args.as_ref().unwrap()["amount"], json!(2500));
    assert_eq!(g.counting_approvers(), [&n("sam")]);
    // Rita approved the old arguments; she may approve the new ones.
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Approve)),
        Ok(Status::Approved)
    );
}

#[test]
fn modify_alone_approves_with_quorum_one() {
    let mut g = gate(Tier::Approve, &[], 1);
    let mut modify = request(Verdict::Modify);
    assert_eq!(
        apply(&mut g, "rita", &[], modify.clone()),
        Err(DecideError::ModifyWithoutArgs)
    );
    modify.args = Some(Map::new());
    assert_eq!(
        apply(&mut g, "rita", &[], modify.clone()),
        Err(DecideError::Unclassified),
        "unclassified arguments are never approved"
    );
    modify.reclassified = Some(classified(Tier::Auto, &[], 0));
    assert_eq!(apply(&mut g, "rita", &[], modify), Ok(Status::Approved));
    let mut approve_with_args = request(Verdict::Approve);
    approve_with_args.args = Some(Map::new());
    let mut g = gate(Tier::Approve, &[], 1);
    assert_eq!(
        apply(&mut g, "rita", &[], approve_with_args),
        Err(DecideError::ArgsWithoutModify)
    );
}

#[test]
fn cancel_and_outcome() {
    let now = Utc::now();
    let mut g = gate(Tier::Approve, &[], 1);
    let cancelled = cancel(&g, now).unwrap();
    let mut after = g.clone();
    after.apply(&cancelled);
    assert_eq!(
        (after.status, after.decided_at),
        (Status::Cancelled, Some(now))
    );
    g.status = Status::Approved;
    assert_eq!(
        cancel(&g, now),
        Err(StateError::NotCancellable(Status::Approved))
    );
    let bot = n("support-bot");
    let outcome = report_outcome(&g, OutcomeStatus::Succeeded, None, &bot, now).unwrap();
    g.apply(&outcome);
    assert_eq!(
        report_outcome(&g, OutcomeStatus::Failed, None, &bot, now),
        Err(StateError::OutcomeAlreadyReported)
    );
    g.status = Status::Rejected;
    g.outcome = None;
    assert_eq!(
        report_outcome(&g, OutcomeStatus::Succeeded, None, &bot, now),
        Err(StateError::MayNotRun(Status::Rejected))
    );
}

#[test]
fn decisions_after_the_deadline_are_refused() {
    let mut g = gate(Tier::Approve, &[], 1);
    let deadline = Utc::now() - chrono::TimeDelta::seconds(1);
    g.deadline = Some(deadline);
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Approve)),
        Err(DecideError::DeadlinePassed { deadline })
    );
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Reject)),
        Err(DecideError::DeadlinePassed { deadline })
    );
    g.deadline = Some(Utc::now() + chrono::TimeDelta::minutes(1));
    assert_eq!(
        apply(&mut g, "rita", &[], request(Verdict::Approve)),
        Ok(Status::Approved)
    );
}

/// A modify is an approval of the new arguments under the stricter of the two
/// classifications: one case a line (start: `approve` by `leads`, one approval).
#[test]
fn modify_needs_the_stricter_classification() {
    let big = json!({"amount": 10_000_000, "to": "attacker"});
    let confirm_named = |mut r: DecisionRequest| {
        r.confirm = Some("refund.create".into());
        r
    };
    type Case = (
        &'static str,
        &'static [&'static str],
        DecisionRequest,
        Result<Status, DecideError>,
    );
    let cases: Vec<Case> = vec![
        (
            "rita",
            &["leads"],
            modify(big.clone(), classified(Tier::Deny, &[], 0)),
            Err(DecideError::ModifiedArgsDenied {
                reason: "rule \"some rule\" matched (deny)".into(),
            }),
        ),
        (
            "rita",
            &["leads"],
            modify(big.clone(), classified(Tier::Approve, &["finance"], 1)),
            Err(DecideError::NotAnApprover {
                groups: "admins only".into(),
            }),
        ),
        (
            "ada",
            &["leads"],
            modify(big.clone(), classified(Tier::Approve, &["finance"], 1)),
            Ok(Status::Approved),
        ),
        (
            "rita",
            &["leads"],
            modify(
                big.clone(),
                classified(Tier::Approve, &["leads", "finance"], 1),
            ),
            Ok(Status::Approved),
        ),
        (
            "rita",
            &["leads"],
            modify(big.clone(), classified(Tier::Confirm, &[], 2)),
            Err(DecideError::ConfirmationMismatch {
                expected: "refund.create".into(),
            }),
        ),
        (
            "rita",
            &["leads"],
            confirm_named(modify(big.clone(), classified(Tier::Confirm, &[], 2))),
            Ok(Status::Pending),
        ),
        (
            "rita",
            &["leads"],
            modify(big.clone(), classified(Tier::Approve, &[], 3)),
            Ok(Status::Pending),
        ),
        (
            "rita",
            &["leads"],
            modify(big.clone(), classified(Tier::Auto, &["finance"], 0)),
            Ok(Status::Approved),
        ),
    ];
    for (who, in_groups, request, expected) in cases {
        let mut g = gate(Tier::Approve, &["leads"], 1);
        let described = format!("{who} {in_groups:?} {:?}", request.reclassified);
        assert_eq!(
            apply(&mut g, who, in_groups, request),
            expected,
            "{described}"
        );
    }
}

#[test]
fn a_modify_into_confirm_needs_a_second_person() {
    let mut g = gate(Tier::Approve, &[], 1);
    let mut request = modify(json!({"amount": 1}), classified(Tier::Confirm, &[], 2));
    request.confirm = Some("refund.create".into());
    assert_eq!(apply(&mut g, "rita", &[], request), Ok(Status::Pending));
    assert_eq!((g.tier, g.approvals_required), (Tier::Confirm, 2));
    let approve = request_confirmed(Verdict::Approve);
    assert_eq!(
        apply(&mut g, "rita", &[], approve.clone()),
        Err(DecideError::AlreadyApproved("rita".into()))
    );
    assert_eq!(apply(&mut g, "sam", &[], approve), Ok(Status::Approved));
}

fn request_confirmed(verdict: Verdict) -> DecisionRequest {
    DecisionRequest {
        confirm: Some("refund.create".into()),
        ..request(verdict)
    }
}
