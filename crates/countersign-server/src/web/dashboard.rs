//! The dashboard: how the agents and the reviewers are doing, at a glance. Volume, rates
//! and review latency over time as charts drawn on the server, the per-rule and
//! per-reviewer tables, the per-action signals and the rubber-stamp warnings; all from the
//! store's kept sums, so a page costs the same after a year as after a day.
//!
//! Every signed-in person sees it; the per-reviewer figures of other people are for admins
//! (team leads), as in the API: a reviewer sees their own row.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use countersign_core::name;
use countersign_core::stats::{
    self, ActionTally, Figures, GroupBy, Report, Window, hour_of, hour_start, percent,
};
use countersign_store::{SeriesQuery, SeriesStep};
use serde::Deserialize;

use super::Chrome;
use super::chart::{self, Series};
use super::error::WebError;
use super::forms::WebQuery;
use super::session::Person;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    range: Option<String>,
}

/// The time ranges offered: (query value, label, step, steps).
const RANGES: [(&str, &str, SeriesStep, i64); 3] = [
    ("2d", "48 hours", SeriesStep::Hour, 48),
    ("14d", "14 days", SeriesStep::Day, 14),
    ("90d", "90 days", SeriesStep::Day, 90),
];
const DEFAULT_RANGE: &str = "14d";

pub struct RangeLink {
    pub value: &'static str,
    pub label: &'static str,
    pub current: bool,
}

pub struct Headline {
    pub label: &'static str,
    pub value: String,
}

/// A row of the per-rule table.
pub struct RuleRow {
    pub rule: String,
    pub cells: Vec<String>,
}

/// A row of the per-reviewer table.
pub struct ReviewerRow {
    pub reviewer: String,
    pub cells: Vec<String>,
    pub rubber_stamp: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    ranges: Vec<RangeLink>,
    since: String,
    headlines: Vec<Headline>,
    warnings: Vec<String>,
    /// Graduated rules that regressed, as `GET /v1/stats` words them.
    regressions: Vec<String>,
    signals: Vec<String>,
    charts_html: String,
    rule_columns: Vec<&'static str>,
    rules: Vec<RuleRow>,
    reviewer_columns: Vec<String>,
    reviewers: Vec<ReviewerRow>,
    others_hidden: bool,
}

fn rate(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), percent)
}

/// Seconds as `45 s`, `12 min`, `3.5 h`; `–` without a value.
fn seconds(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// The step's start and the label under it.
fn label(start: DateTime<Utc>, step: SeriesStep) -> String {
    match step {
        SeriesStep::Hour => start.format("%H:%M").to_string(),
        SeriesStep::Day => start.format("%b %-d").to_string(),
    }
}

pub async fn page(
    State(state): State<AppState>,
    person: Person,
    WebQuery(query): WebQuery<DashboardQuery>,
) -> Result<Response, WebError> {
    let chosen = query.range.as_deref().unwrap_or(DEFAULT_RANGE);
    let Some(&(_, _, step, steps)) = RANGES.iter().find(|(value, ..)| *value == chosen) else {
        return Err(WebError::bad_request(format!(
            "no such range {chosen:?}: the dashboard shows 2d, 14d or 90d"
        )));
    };
    let now = state.clock().now();
    let span = step.hours();
    let current = hour_of(now).div_euclid(span);
    let from = hour_start((current - steps + 1) * span);
    let to = hour_start((current + 1) * span);
    let store = state.store();
    let points = store.stats_series(SeriesQuery { from, to, step }).await?;
    let mut tallies = vec![ActionTally::default(); steps as usize];
    for point in points {
        let index = (hour_of(point.start).div_euclid(span) - (current - steps + 1)) as usize;
        if let Some(slot) = tallies.get_mut(index) {
            *slot = point.tally;
        }
    }
    let labels: Vec<String> = (0..steps)
        .map(|i| label(hour_start((current - steps + 1 + i) * span), step))
        .collect();
    let figures: Vec<Figures> = tallies.iter().map(Figures::of).collect();

    let settings = state.stats_config().settings;
    let data = store
        .stats(
            Window::new(Some(from), None).map_err(|e| WebError::bad_request(e.to_string()))?,
            now,
        )
        .await?;
    let by_rule = stats::report(&data, GroupBy::Rule, &settings);
    let regressions = store.active_regressions().await?;
    let mut by_reviewer = stats::report(&data, GroupBy::Reviewer, &settings);
    let others_hidden = !person.user.admin;
    if others_hidden {
        by_reviewer.groups.retain(|g| {
            g.key
                .as_deref()
                .is_some_and(|k| name::same(k, &person.user.name))
        });
    }
    let html = DashboardPage {
        chrome: Chrome::of(&person, "dashboard"),
        ranges: RANGES
            .iter()
            .map(|(value, label, ..)| RangeLink {
                value,
                label,
                current: *value == chosen,
            })
            .collect(),
        since: from.format("%b %-d, %H:%M UTC").to_string(),
        headlines: headlines(&by_rule),
        warnings: by_reviewer
            .groups
            .iter()
            .filter_map(|g| g.fatigue.as_ref()?.rubber_stamp.clone())
            .collect(),
        regressions: regressions
            .iter()
            .map(|r| crate::stats_views::RegressionWarningView::from(r).message)
            .collect(),
        signals: by_rule.signals.iter().map(|s| s.message.clone()).collect(),
        charts_html: charts(&labels, &tallies, &figures)?,
        rule_columns: vec![
            "Actions",
            "Approved",
            "Modified",
            "Rejected",
            "Expired",
            "Pending",
            "Approval",
            "Rejection",
            "Modification",
            "Timeout",
            "Latency p50",
            "p90",
        ],
        rules: by_rule
            .groups
            .iter()
            .map(|g| {
                let f = &g.figures;
                let c = &f.counts;
                RuleRow {
                    rule: g.key.clone().unwrap_or_else(|| "(defaults)".to_owned()),
                    cells: vec![
                        c.total.to_string(),
                        c.approved.to_string(),
                        c.modified.to_string(),
                        c.rejected.to_string(),
                        c.expired.to_string(),
                        c.pending.to_string(),
                        rate(f.approval_rate),
                        rate(f.rejection_rate),
                        rate(f.modification_rate),
                        rate(f.timeout_rate),
                        seconds(f.review_latency.p50),
                        seconds(f.review_latency.p90),
                    ],
                }
            })
            .collect(),
        reviewer_columns: vec![
            "Decisions".to_owned(),
            "Approval".to_owned(),
            "Median time".to_owned(),
            "Fastest 10%".to_owned(),
            format!(
                "Approvals under {} s",
                settings.fatigue.fast_approval_seconds
            ),
            "Flagged after approval".to_owned(),
        ],
        reviewers: by_reviewer
            .groups
            .iter()
            .filter_map(|g| {
                let fatigue = g.fatigue.as_ref()?;
                Some(ReviewerRow {
                    reviewer: fatigue.reviewer.to_string(),
                    rubber_stamp: fatigue.rubber_stamp.is_some(),
                    cells: vec![
                        fatigue.decisions.to_string(),
                        rate(fatigue.approval_rate),
                        seconds(fatigue.time_to_decision.p50),
                        seconds(fatigue.time_to_decision.p10),
                        format!(
                            "{} of {} ({})",
                            fatigue.fast_approvals,
                            fatigue.high_risk_approvals,
                            rate(fatigue.fast_approval_share)
                        ),
                        fatigue.flagged_after_approval.to_string(),
                    ],
                })
            })
            .collect(),
        others_hidden,
    }
    .render()
    .map_err(|e| crate::error::AppError::internal(&e))?;
    Ok(Html(html).into_response())
}

fn headlines(report: &Report) -> Vec<Headline> {
    let o = &report.overall;
    vec![
        Headline {
            label: "Actions",
            value: o.counts.total.to_string(),
        },
        Headline {
            label: "Approved",
            value: rate(o.approval_rate),
        },
        Headline {
            label: "Rejected",
            value: rate(o.rejection_rate),
        },
        Headline {
            label: "Modified",
            value: rate(o.modification_rate),
        },
        Headline {
            label: "Timed out",
            value: rate(o.timeout_rate),
        },
        Headline {
            label: "Review latency p50",
            value: seconds(o.review_latency.p50),
        },
        Headline {
            label: "Waiting now",
            value: o.counts.pending.to_string(),
        },
    ]
}

/// The three charts, rendered by their template.
fn charts(
    labels: &[String],
    tallies: &[ActionTally],
    figures: &[Figures],
) -> Result<String, WebError> {
    let volume: Vec<f64> = tallies.iter().map(|t| t.counts.total as f64).collect();
    let rate_series = |name: &str, class: &'static str, pick: fn(&Figures) -> Option<f64>| Series {
        name: name.to_owned(),
        class,
        values: figures.iter().map(pick).collect(),
    };
    let rates = [
        rate_series("Approved", "s-approved", |f| f.approval_rate),
        rate_series("Rejected", "s-rejected", |f| f.rejection_rate),
        rate_series("Modified", "s-modified", |f| f.modification_rate),
        rate_series("Timed out", "s-expired", |f| f.timeout_rate),
    ];
    let p50: Vec<Option<f64>> = figures.iter().map(|f| f.review_latency.p50).collect();
    let p90: Vec<Option<f64>> = figures.iter().map(|f| f.review_latency.p90).collect();
    let slowest = p90.iter().flatten().copied().fold(0.0, f64::max);
    // Minutes once anything takes over two minutes; seconds below.
    let (unit, divisor) = if slowest > 120.0 {
        ("min", 60.0)
    } else {
        ("s", 1.0)
    };
    let scaled = |values: &[Option<f64>]| values.iter().map(|v| v.map(|s| s / divisor)).collect();
    let latency = [
        Series {
            name: "Median (p50)".into(),
            class: "s-p50",
            values: scaled(&p50),
        },
        Series {
            name: "p90".into(),
            class: "s-p90",
            values: scaled(&p90),
        },
    ];
    let latency_max = chart::nice_max(slowest / divisor);
    let total: f64 = volume.iter().sum();
    let charts = [
        chart::bars(
            "volume",
            "Actions submitted",
            format!("Actions submitted per step, {total:.0} in all."),
            labels,
            &volume,
            "actions",
        ),
        chart::lines(
            "rates",
            "Outcomes of actions that needed a person",
            "Shares of the actions that reached a decision or a timeout, per step: approved (modified included), rejected, modified, timed out. Timeouts are nobody's decision.".into(),
            labels,
            &rates,
            1.0,
            &|v| format!("{:.0}%", v * 100.0),
        ),
        chart::lines(
            "latency",
            "Review latency",
            format!("From submission to the deciding verdict, median and 90th percentile per step, in {unit}."),
            labels,
            &latency,
            latency_max,
            &move |v| format!("{} {unit}", chart::short(v)),
        ),
    ];
    let mut html = String::new();
    for chart in charts {
        html.push_str(
            &chart
                .render()
                .map_err(|e| crate::error::AppError::internal(&e))?,
        );
    }
    Ok(html)
}

/// The dashboard's window start for `range` at `now`, for tests.
#[cfg(test)]
fn start_of(range: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let &(_, _, step, steps) = RANGES.iter().find(|(value, ..)| *value == range)?;
    let span = step.hours();
    let current = hour_of(now).div_euclid(span);
    Some(hour_start((current - steps + 1) * span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn ranges_end_with_the_current_step() {
        let now: DateTime<Utc> = "2026-11-25T14:20:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(start_of("2d", now), Some(at("2026-11-23T15:00:00Z")));
        assert_eq!(start_of("14d", now), Some(at("2026-11-12T00:00:00Z")));
        assert_eq!(
            start_of("90d", now),
            Some(now - TimeDelta::days(89) - TimeDelta::minutes(14 * 60 + 20))
        );
        assert_eq!(start_of("1y", now), None);
        assert_eq!(seconds(Some(45.0)), "45 s");
        assert_eq!(seconds(Some(720.0)), "12 min");
        assert_eq!(seconds(Some(12_600.0)), "3.5 h");
    }
}
