//! The figures of a small history, computed by hand, and the sums of changes held equal to
//! the sums of final contributions.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::*;
use crate::lifecycle::{Decision, Gate, Review, ReviewState, ReviewVerdict, Verdict};
use crate::name::Name;
use crate::tier::{Status, Tier};
use crate::{ActionName, Approvers};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
        .unwrap()
        .to_utc()
}

fn n(name: &str) -> Name {
    Name::parse(name).unwrap()
}

/// An action of `tier` in `status`, submitted at [`t0`].
fn gate(action: &str, tier: Tier, status: Status) -> Gate {
    Gate {
        action: ActionName::parse(action).unwrap(),
        agent: n("support-bot"),
        owner: Some(n("olivia")),
        tier,
        status,
        approvers: Approvers::Anyone,
        escalated_to: vec![],
        approvals_required: tier.default_approvals(),
        decisions: vec![],
        args: json!({"amount": 2500}).as_object().unwrap().clone(),
        original_args: None,
        deadline: None,
        timeout: None,
        escalated: false,
        escalated_at: None,
        reminders: vec![],
        reminded: 0,
        decided_at: status.is_final().then(t0),
        review: ReviewState::NotSampled,
        outcome: None,
    }
}

/// `gate` with a verdict by `who`, `seconds` after submission; the last one decides.
fn with(mut gate: Gate, who: &str, verdict: Verdict, seconds: i64) -> Gate {
    let at = t0() + TimeDelta::seconds(seconds);
    if verdict == Verdict::Modify {
        gate.original_args = Some(gate.args.clone());
        gate.args = json!({"amount": 250}).as_object().unwrap().clone();
    }
    gate.decisions.push(Decision {
        reviewer: n(who),
        verdict,
        args: None,
        reason: None,
        at,
    });
    gate.decided_at = Some(at);
    gate
}

fn reviewed(mut gate: Gate, verdict: ReviewVerdict) -> Gate {
    gate.review = ReviewState::Reviewed(Review {
        reviewer: n("sam"),
        verdict,
        note: None,
        at: t0() + TimeDelta::hours(1),
    });
    gate
}

/// (rule, gate): the history the expectations below are computed from by hand.
fn history() -> Vec<(Option<&'static str>, Gate)> {
    use Verdict::{Approve, Modify, Reject};
    let refund = |status| gate("refund.create", Tier::Approve, status);
    let mut expired = refund(Status::Expired);
    expired.escalated = true;
    // Reminded twice before it escalated: one reminded action.
    expired.reminded = 2;
    vec![
        (
            Some("large refunds"),
            with(refund(Status::Approved), "rita", Approve, 30),
        ),
        (
            Some("large refunds"),
            with(refund(Status::Approved), "rita", Approve, 2),
        ),
        (
            Some("large refunds"),
            with(refund(Status::Approved), "sam", Modify, 90),
        ),
        (
            Some("large refunds"),
            with(refund(Status::Rejected), "sam", Reject, 600),
        ),
        (Some("large refunds"), expired),
        (Some("large refunds"), refund(Status::Cancelled)),
        (Some("large refunds"), refund(Status::Pending)),
        // Approved by the SLA: no decision.
        (Some("large refunds"), refund(Status::Approved)),
        (
            Some("closures"),
            with(
                with(
                    gate("account.close", Tier::Confirm, Status::Approved),
                    "rita",
                    Approve,
                    4,
                ),
                "sam",
                Approve,
                60,
            ),
        ),
        (
            None,
            reviewed(
                gate("email.send", Tier::Logged, Status::Allowed),
                ReviewVerdict::Flag,
            ),
        ),
        (
            None,
            reviewed(
                gate("email.send", Tier::Logged, Status::Allowed),
                ReviewVerdict::Ok,
            ),
        ),
        (Some("drops"), gate("db.drop", Tier::Deny, Status::Denied)),
    ]
}

fn data() -> StatsData {
    let mut sums = Change::default();
    for (rule, gate) in history() {
        sums.add(&contribution(&gate, rule, t0()));
    }
    StatsData {
        actions: sums.actions,
        reviewers: sums.reviewers,
    }
}

fn settings() -> StatsSettings {
    StatsSettings {
        high_rejection_rate: 0.15,
        high_modification_rate: 0.2,
        signal_min_actions: 5,
        fatigue: FatigueSettings {
            fast_approval_seconds: 5,
            rubber_stamp_min_decisions: 3,
            rubber_stamp_approval_rate: 0.95,
            rubber_stamp_fast_share: 0.5,
        },
    }
}

fn counts(values: [i64; 14]) -> Counts {
    Counts::from_values(&values)
}

#[test]
fn overall_figures_of_a_hand_computed_history() {
    let report = report(&data(), GroupBy::Action, &settings());
    let overall = &report.overall;
    // total allowed denied pending approved modified rejected expired cancelled
    // auto_approved escalated reminded reviewed flagged
    assert_eq!(
        overall.counts,
        counts([12, 2, 1, 1, 5, 1, 1, 1, 1, 1, 1, 1, 2, 1])
    );
    // Human-gated ends: 5 approved + 1 rejected + 1 expired = 7.
    assert_eq!(overall.approval_rate, Some(5.0 / 7.0));
    assert_eq!(overall.rejection_rate, Some(1.0 / 7.0));
    assert_eq!(overall.modification_rate, Some(1.0 / 7.0));
    assert_eq!(overall.timeout_rate, Some(1.0 / 7.0));
    // Latencies of the actions people decided: 2, 30, 60 (the second confirm), 90, 600 s.
    let latency = overall.review_latency;
    assert_eq!(
        (latency.p10, latency.p50, latency.p90, latency.p99),
        (Some(2.0), Some(60.0), Some(600.0), Some(600.0))
    );
}

#[test]
fn groups_by_each_key() {
    let data = data();
    let keys_and_totals = |group_by| -> Vec<(Option<String>, i64)> {
        report(&data, group_by, &settings())
            .groups
            .into_iter()
            .map(|g| (g.key, g.figures.counts.total))
            .collect()
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        keys_and_totals(GroupBy::Action),
        [
            (some("account.close"), 1),
            (some("db.drop"), 1),
            (some("email.send"), 2),
            (some("refund.create"), 8)
        ]
    );
    assert_eq!(
        keys_and_totals(GroupBy::Rule),
        [
            (None, 2),
            (some("closures"), 1),
            (some("drops"), 1),
            (some("large refunds"), 8)
        ]
    );
    assert_eq!(
        keys_and_totals(GroupBy::Tier),
        [
            (some("approve"), 8),
            (some("confirm"), 1),
            (some("deny"), 1),
            (some("logged"), 2)
        ]
    );
    assert_eq!(keys_and_totals(GroupBy::Agent), [(some("support-bot"), 12)]);
    // Reviewers: their decisions.
    assert_eq!(
        keys_and_totals(GroupBy::Reviewer),
        [(some("rita"), 3), (some("sam"), 3)]
    );
}

#[test]
fn reviewers_fatigue_and_the_rubber_stamp() {
    let report = report(&data(), GroupBy::Reviewer, &settings());
    let [rita, sam] = &report.groups[..] else {
        panic!("two reviewers: {:?}", report.groups)
    };
    let rita_fatigue = rita.fatigue.as_ref().unwrap();
    // rita: approvals after 30, 2 (approve tier) and 4 s (confirm): 2 of 3 under 5 s.
    assert_eq!(rita_fatigue.decisions, 3);
    assert_eq!(rita_fatigue.approval_rate, Some(1.0));
    assert_eq!(rita_fatigue.time_to_decision.p50, Some(4.0));
    assert_eq!(rita_fatigue.time_to_decision.p10, Some(2.0));
    assert_eq!(
        (
            rita_fatigue.high_risk_approvals,
            rita_fatigue.fast_approvals
        ),
        (3, 2)
    );
    assert_eq!(rita_fatigue.fast_approval_share, Some(2.0 / 3.0));
    assert_eq!(
        rita_fatigue.rubber_stamp.as_deref(),
        Some(
            "rita approved 100% of 3 decisions on approve and confirm actions, 67% of those approvals in under 5 s: approvals this fast may not have been read"
        )
    );
    // sam: modify after 90 s, reject after 600 s, approve after 60 s.
    let sam_fatigue = sam.fatigue.as_ref().unwrap();
    assert_eq!(
        sam.figures.counts,
        counts([3, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(sam_fatigue.approval_rate, Some(2.0 / 3.0));
    assert_eq!(sam_fatigue.time_to_decision.p50, Some(90.0));
    assert_eq!(sam_fatigue.fast_approvals, 0);
    assert_eq!(sam_fatigue.rubber_stamp, None);
}

#[test]
fn signals_per_action() {
    let report = report(&data(), GroupBy::Tier, &settings());
    // refund.create: 6 human-gated ends (4 approved, 1 rejected, 1 expired); 1/6 = 17%
    // rejected reaches 15%, 1/6 modified stays below 20%. account.close: 1 end, too few.
    let signals: Vec<_> = report
        .signals
        .iter()
        .map(|s| (s.action.as_str(), s.kind, s.human_gated, s.message.as_str()))
        .collect();
    assert_eq!(
        signals,
        [(
            "refund.create",
            SignalKind::HighRejectionRate,
            6,
            "refund.create: 17% of 6 decided actions were rejected (threshold 15%): the agent needs better prompting or guardrails"
        )]
    );
}

#[test]
fn changes_sum_to_the_final_contribution() {
    // pending -> reminded -> reminded again -> escalated -> modified by sam (tier raised to
    // confirm) -> approved by rita
    let mut steps = Vec::new();
    let mut g = gate("refund.create", Tier::Approve, Status::Pending);
    steps.push(g.clone());
    g.reminded = 1;
    steps.push(g.clone());
    g.reminded = 2;
    steps.push(g.clone());
    g.escalated = true;
    steps.push(g.clone());
    g.tier = Tier::Confirm;
    g.approvals_required = 2;
    g = with(g, "sam", Verdict::Modify, 100);
    g.status = Status::Pending;
    g.decided_at = None;
    steps.push(g.clone());
    g = with(g, "rita", Verdict::Approve, 200);
    g.status = Status::Approved;
    steps.push(g.clone());
    let mut sums = Change::default();
    let mut before: Option<Contribution> = None;
    for step in &steps {
        let after = contribution(step, Some("large refunds"), t0());
        sums.merge(&change(before.as_ref(), &after));
        before = Some(after);
    }
    let mut expected = Change::default();
    expected.add(&contribution(&g, Some("large refunds"), t0()));
    sums.actions.retain(|(_, t)| !t.is_zero());
    sums.reviewers.retain(|(_, t)| !t.is_zero());
    assert_eq!(sums, expected);
    // The action moved tiers: nothing is left under `approve`.
    assert!(sums.actions.iter().all(|(k, _)| k.tier == Tier::Confirm));
    // The first reminder counts the action as reminded; the second adds nothing.
    let reminders: Vec<_> = steps[..3]
        .windows(2)
        .map(|pair| {
            let change = change(
                Some(&contribution(&pair[0], None, t0())),
                &contribution(&pair[1], None, t0()),
            );
            change
                .actions
                .iter()
                .map(|(_, t)| t.counts.reminded)
                .sum::<i64>()
        })
        .collect();
    assert_eq!(reminders, [1, 0]);
    // What the last step changed: pending -1, approved +1, modified +1, a latency of 200 s.
    let last = change(
        Some(&contribution(&steps[4], None, t0())),
        &contribution(&steps[5], None, t0()),
    );
    let (_, tally) = &last.actions[0];
    assert_eq!(
        tally.counts,
        counts([0, 0, 0, -1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(tally.latency, Histogram::of(200_000));
    assert_eq!(last.reviewers.len(), 1, "only rita's verdict is new");
}

#[test]
fn flags_on_approved_actions_count_against_their_approvers() {
    let g = reviewed(
        with(
            gate("refund.create", Tier::Approve, Status::Approved),
            "rita",
            Verdict::Approve,
            10,
        ),
        ReviewVerdict::Flag,
    );
    let c = contribution(&g, None, t0());
    assert_eq!(c.reviewers[0].1.flagged, 1);
    let mut sums = ReviewerSums::default();
    sums.add(Tier::Approve, Verdict::Approve, &c.reviewers[0].1);
    let fatigue = Fatigue::of(n("rita"), &sums, &FatigueSettings::default());
    assert_eq!(fatigue.flagged_after_approval, 1);
}
