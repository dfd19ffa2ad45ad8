//! The story's statistics and training-data chapter: a history with every ending (approved,
//! modified, rejected, escalated then expired, cancelled, pending, two-person confirm,
//! post-hoc ok and flag, denied), on a day of its own so that the earlier chapters' actions
//! stay out of its windows; figures computed by hand, windows whose ends fall inside hours
//! both ways, series, all-time totals, and the export's pages and filters.

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::Status;
use countersign_core::learning::Label;
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_core::stats::{self, GroupBy, StatsSettings, Window};
use serde_json::json;

use super::{agent, glob, new_action, object, policy, reviewer, t0, verdict};
use crate::{ExportQuery, NewReview, ReviewVerdict, SeriesQuery, SeriesStep, Store};

/// The chapter's day: 200 days after the story's start, at midnight UTC.
fn day() -> DateTime<Utc> {
    let start = t0().timestamp().div_euclid(86_400) * 86_400;
    DateTime::from_timestamp(start, 0).unwrap() + TimeDelta::days(200)
}

fn at(minutes: i64) -> DateTime<Utc> {
    day() + TimeDelta::minutes(minutes)
}

fn after(from: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    from + TimeDelta::seconds(seconds)
}

/// The story's policy with `from` replaced by `to` in its text.
fn policy_with(from: &str, to: &str) -> countersign_core::Policy {
    let text = super::STORY_POLICY.replacen(from, to, 1);
    assert_ne!(
        text,
        super::STORY_POLICY,
        "{from:?} is in the story's policy"
    );
    countersign_core::Policy::parse(&text).unwrap()
}

async fn submit(store: &dyn Store, action: &str, amount: i64, when: DateTime<Utc>) -> String {
    store
        .submit(new_action(
            &policy(),
            "stats-bot",
            action,
            json!({"amount": amount}),
            when,
        ))
        .await
        .unwrap()
        .record
        .id
}

async fn decide(
    store: &dyn Store,
    id: &str,
    who: &str,
    request: DecisionRequest,
    when: DateTime<Utc>,
) {
    let leads = reviewer(who, &["support-leads"]);
    store
        .decide(id.to_owned(), leads, request, when)
        .await
        .unwrap();
}

fn with_reason(verdict_: Verdict, reason: &str) -> DecisionRequest {
    DecisionRequest {
        reason: Some(reason.into()),
        ..verdict(verdict_)
    }
}

/// Counts in `Counts::FIELDS` order: total allowed denied pending approved modified
/// rejected expired cancelled auto_approved escalated reminded reviewed flagged.
fn counts(values: [i64; 14]) -> stats::Counts {
    stats::Counts::from_values(&values)
}

pub(super) async fn statistics(store: &dyn Store) {
    let now = at(24 * 60 + 30);
    // Before the window (the day before) and after it: never counted in it.
    let early = submit(store, "refund.create", 2500, at(-30)).await;
    decide(store, &early, "rita", verdict(Verdict::Approve), at(-29)).await;

    let approved = submit(store, "refund.create", 2500, at(10)).await;
    decide(
        store,
        &approved,
        "rita",
        verdict(Verdict::Approve),
        after(at(10), 30),
    )
    .await;
    let fast = submit(store, "refund.create", 2500, at(20)).await;
    decide(
        store,
        &fast,
        "rita",
        verdict(Verdict::Approve),
        after(at(20), 2),
    )
    .await;
    let modified = submit(store, "refund.create", 2500, at(30)).await;
    let record = store.action(&modified).await.unwrap().unwrap();
    let new_args = object(json!({"amount": 250}));
    let modify = DecisionRequest {
        args: Some(new_args.clone()),
        reclassified: Some(record.reclassify(&policy(), new_args, at(30)).unwrap()),
        ..with_reason(Verdict::Modify, "one item, not ten")
    };
    decide(store, &modified, "sam", modify, after(at(30), 90)).await;
    let rejected = submit(store, "refund.create", 2500, at(40)).await;
    let reject = with_reason(Verdict::Reject, "refunded by the bank already");
    decide(store, &rejected, "sam", reject, after(at(40), 600)).await;
    // 15 minutes to decide with a reminder half-way, then escalated to finance for an hour
    // with another reminder half-way, then expired: reminded twice, one reminded action.
    let reminding = policy_with(
        "escalation_sla = \"1h\"",
        "escalation_sla = \"1h\"\nremind_at = [\"50%\"]",
    );
    let expired = store
        .submit(new_action(
            &reminding,
            "stats-bot",
            "refund.create",
            json!({"amount": 2500}),
            at(50),
        ))
        .await
        .unwrap()
        .record
        .id;
    for (minute, reminded) in [(58, 1), (65, 1), (96, 2)] {
        let record = store
            .apply_sla(expired.clone(), at(minute))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.gate.reminded, reminded, "at minute {minute}");
        let stored = store.action(&expired).await.unwrap().unwrap();
        assert_eq!(stored.gate.reminded, reminded, "stored at minute {minute}");
    }
    let expiry = store
        .apply_sla(expired.clone(), at(125))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expiry.gate.status, Status::Expired);
    let cancelled = submit(store, "refund.create", 2500, at(60)).await;
    store
        .cancel(cancelled, agent_of_stats(), at(61))
        .await
        .unwrap();
    let _pending = submit(store, "refund.create", 2500, at(70)).await;
    let closure = submit(store, "account.close", 0, at(80)).await;
    let confirm = DecisionRequest {
        confirm: Some("account.close".into()),
        ..verdict(Verdict::Approve)
    };
    decide(store, &closure, "rita", confirm.clone(), after(at(80), 4)).await;
    decide(store, &closure, "sam", confirm, after(at(80), 60)).await;
    let flagged = submit(store, "refund.create", 50, at(90)).await;
    let looked_at = submit(store, "refund.create", 60, at(100)).await;
    for (id, review) in [
        (&flagged, ReviewVerdict::Flag),
        (&looked_at, ReviewVerdict::Ok),
    ] {
        let note = Some("a new card, not the one charged".into());
        let review = NewReview {
            verdict: review,
            note,
        };
        store
            .review(id.clone(), reviewer("sam", &[]), review, at(200))
            .await
            .unwrap();
    }
    submit(store, "db.drop", 0, at(110)).await;
    let late = submit(store, "refund.create", 2500, at(180)).await;
    decide(
        store,
        &late,
        "rita",
        verdict(Verdict::Reject),
        after(at(180), 5),
    )
    .await;

    // The window [00:00, 03:00): everything but `early` and `late`.
    let window = Window::new(Some(at(0)), Some(at(180))).unwrap();
    let data = store.stats(window, now).await.unwrap();
    let report = stats::report(&data, GroupBy::Action, &StatsSettings::default());
    let overall = &report.overall;
    assert_eq!(
        overall.counts,
        counts([11, 2, 1, 1, 4, 1, 1, 1, 1, 0, 1, 1, 2, 1])
    );
    // 4 approved + 1 rejected + 1 expired reached a human-gated end.
    assert_eq!(overall.approval_rate, Some(4.0 / 6.0));
    assert_eq!(overall.rejection_rate, Some(1.0 / 6.0));
    assert_eq!(overall.modification_rate, Some(1.0 / 6.0));
    assert_eq!(overall.timeout_rate, Some(1.0 / 6.0));
    // People decided after 30, 2, 90, 600 s and (the second confirmation) 60 s.
    let latency = overall.review_latency;
    assert_eq!(
        (latency.p10, latency.p50, latency.p90, latency.p99),
        (Some(2.0), Some(60.0), Some(600.0), Some(600.0))
    );
    let by_reviewer = stats::report(&data, GroupBy::Reviewer, &StatsSettings::default());
    let reviewers: Vec<(Option<&str>, i64, i64, i64)> = by_reviewer
        .groups
        .iter()
        .map(|g| {
            let c = &g.figures.counts;
            (g.key.as_deref(), c.total, c.approved, c.rejected)
        })
        .collect();
    assert_eq!(reviewers, [(Some("rita"), 3, 3, 0), (Some("sam"), 3, 2, 1)]);

    // Windows with ends inside hours, both ways: (since, until) in minutes, actions in it.
    let windows: &[(i64, i64, i64)] = &[
        (15, 45, 3),        // 00:20, 00:30, 00:40, read one by one
        (5, 55, 5),         // the hour less its first 5 and last 5 minutes
        (15, 75, 6),        // 00:20 to 01:10: the hour less 15 minutes, plus 15 minutes
        (-60, 35, 4),       // the day before's last hour, and three of this one
        (-60, 24 * 60, 13), // the whole day and the hour before it
    ];
    for &(since, until, total) in windows {
        let window = Window::new(Some(at(since)), Some(at(until))).unwrap();
        let data = store.stats(window, now).await.unwrap();
        let report = stats::report(&data, GroupBy::Tier, &StatsSettings::default());
        assert_eq!(
            report.overall.counts.total, total,
            "from {since} to {until} minutes"
        );
    }

    // Series: per hour, and per day.
    let hourly = store
        .stats_series(SeriesQuery {
            from: at(0),
            to: at(240),
            step: SeriesStep::Hour,
        })
        .await
        .unwrap();
    let points: Vec<(DateTime<Utc>, i64)> = hourly
        .iter()
        .map(|p| (p.start, p.tally.counts.total))
        .collect();
    assert_eq!(points, [(at(0), 5), (at(60), 6), (at(180), 1)]);
    let daily = store
        .stats_series(SeriesQuery {
            from: at(-24 * 60),
            to: at(24 * 60),
            step: SeriesStep::Day,
        })
        .await
        .unwrap();
    let points: Vec<(DateTime<Utc>, i64)> = daily
        .iter()
        .map(|p| (p.start, p.tally.counts.total))
        .collect();
    assert_eq!(points, [(at(-24 * 60), 1), (at(0), 12)]);

    // All time: the same sums as the open window, with each group's first day.
    let totals = store.stats_totals().await.unwrap();
    let everything = store.stats(Window::all(), now).await.unwrap();
    let mut summed = stats::ActionTally::default();
    for kept in &totals.actions {
        summed.add(&kept.tally);
    }
    let all = stats::report(&everything, GroupBy::Action, &StatsSettings::default());
    assert_eq!(summed.counts, all.overall.counts);
    let first_day = |action: &str| {
        totals
            .actions
            .iter()
            .filter(|k| k.key.action.as_str() == action && k.key.agent.as_str() == "stats-bot")
            .map(|k| k.first_day)
            .min()
    };
    let chapter_day = stats::day_of_hour(stats::hour_of(day()));
    assert_eq!(first_day("refund.create"), Some(chapter_day - 1));
    assert_eq!(first_day("account.close"), Some(chapter_day));

    export(store, &[&modified, &rejected, &expired, &flagged]).await;
}

/// The chapter's agent, with its token.
fn agent_of_stats() -> crate::Actor {
    let mut actor = agent();
    actor.name = "stats-bot".into();
    actor
}

async fn export(store: &dyn Store, cases: &[&String]) {
    let query = |labels: Vec<Label>| ExportQuery {
        window: Window::new(Some(at(0)), Some(at(180))).unwrap(),
        action: None,
        rule: None,
        labels,
        cursor: None,
        limit: 0,
        max_bytes: 0,
    };
    let every = vec![
        Label::Rejected,
        Label::Modified,
        Label::Flagged,
        Label::Expired,
    ];
    // Two at a time: every case once, oldest first.
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .export(ExportQuery {
                limit: 2,
                cursor: cursor.clone(),
                ..query(every.clone())
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        ids.extend(page.items.iter().map(|r| r.id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(ids.iter().collect::<Vec<_>>(), cases);
    // Filters: a label, a rule, an action pattern.
    let ids_of = |page: crate::Page<crate::ActionRecord>| -> Vec<String> {
        page.items.into_iter().map(|r| r.id).collect()
    };
    let rejected = store.export(query(vec![Label::Rejected])).await.unwrap();
    assert_eq!(ids_of(rejected), [cases[1].clone()]);
    let by_rule = ExportQuery {
        rule: Some("large refunds".into()),
        ..query(every.clone())
    };
    assert_eq!(
        ids_of(store.export(by_rule).await.unwrap()),
        [cases[0].clone(), cases[1].clone(), cases[2].clone()]
    );
    let by_action = ExportQuery {
        action: Some(glob("account.*")),
        ..query(every.clone())
    };
    assert!(store.export(by_action).await.unwrap().items.is_empty());
    assert!(store.export(query(vec![])).await.unwrap().items.is_empty());
}
