//! `countersign stats`: approval metrics through the server, as a table (or `--json`): one
//! row per group and one for everything, the per-action signals, and with `--by reviewer`
//! each reviewer's approval-fatigue figures and rubber-stamp warnings.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use countersign_core::duration::ReviewDuration;
use countersign_server::stats_views::{FiguresView, GroupView, StatsView};

use crate::client::{Client, ServerArgs, block_on};
use crate::output::{print_json, table};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum By {
    Action,
    Agent,
    Rule,
    Reviewer,
    Tier,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            By::Action => "action",
            By::Agent => "agent",
            By::Rule => "rule",
            By::Reviewer => "reviewer",
            By::Tier => "tier",
        }
    }
}

#[derive(Args)]
pub struct StatsArgs {
    /// Actions submitted at or after this time: RFC 3339 (2026-11-25T12:00:00Z) or a
    /// duration ago (7d, 12h, 30m).
    #[arg(long)]
    since: Option<String>,
    /// ... and before this time (same forms).
    #[arg(long)]
    until: Option<String>,
    /// How to group the figures.
    #[arg(long, value_enum, default_value = "action")]
    by: By,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
}

/// A `--since`/`--until` value as RFC 3339: a time, or a duration before `now`.
pub fn time_flag(flag: &str, text: &str, now: DateTime<Utc>) -> anyhow::Result<String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    match text.parse::<ReviewDuration>() {
        Ok(ago) => Ok((now - ago.as_chrono()).to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Err(_) => bail!(
            "{flag} expects an RFC 3339 time like 2026-11-25T12:00:00Z or a duration ago like 7d or 12h, found {text:?}"
        ),
    }
}

/// The window's query pairs.
pub fn window_query(
    since: Option<&str>,
    until: Option<&str>,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let now = Utc::now();
    let mut query = Vec::new();
    if let Some(since) = since {
        query.push(("since", time_flag("--since", since, now)?));
    }
    if let Some(until) = until {
        query.push(("until", time_flag("--until", until, now)?));
    }
    Ok(query)
}

pub fn run(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let mut query = window_query(args.since.as_deref(), args.until.as_deref())?;
    query.push(("group_by", args.by.as_str().to_owned()));
    let client = Client::new(&args.server)?;
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let view: StatsView = block_on(client.get(&["v1", "stats"], &pairs))??;
    if args.json {
        print_json(&view)?;
    } else {
        print(&view, args.by, &mut std::io::stdout().lock()).context("cannot write to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `0.666` as `67%`; `-` without a rate.
fn rate(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

/// Seconds as `2s`, `1m30s`, `10m`, `1h05m`, `2d03h`; `-` without a value.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return "-".to_owned();
    };
    if seconds < 10.0 && seconds.fract() != 0.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn figure_row(name: String, f: &FiguresView) -> [String; 13] {
    let latency = &f.review_latency_seconds;
    [
        name,
        f.total.to_string(),
        f.approved.to_string(),
        f.modified.to_string(),
        f.rejected.to_string(),
        f.expired.to_string(),
        f.pending.to_string(),
        rate(f.approval_rate),
        rate(f.rejection_rate),
        rate(f.modification_rate),
        rate(f.timeout_rate),
        duration(latency.p50),
        duration(latency.p90),
    ]
}

fn group_name(group: &GroupView, by: By) -> String {
    match (&group.key, by) {
        (Some(key), _) => key.clone(),
        (None, By::Rule) => "(defaults)".to_owned(),
        (None, _) => "-".to_owned(),
    }
}

pub fn print(view: &StatsView, by: By, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let window = match (view.since, view.until) {
        (None, None) => "all actions".to_owned(),
        (Some(s), None) => format!(
            "actions since {}",
            s.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
        (None, Some(u)) => format!(
            "actions before {}",
            u.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
        (Some(s), Some(u)) => format!(
            "actions from {} to {}",
            s.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            u.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    };
    writeln!(out, "{window}, by {}", by.as_str())?;
    if let By::Reviewer = by {
        reviewers(view, out)?;
    } else {
        let mut rows: Vec<[String; 13]> = view
            .groups
            .iter()
            .map(|g| figure_row(group_name(g, by), &g.figures))
            .collect();
        rows.push(figure_row("(all)".to_owned(), &view.overall));
        let header = [
            by.as_str().to_uppercase(),
            "TOTAL".into(),
            "APPROVED".into(),
            "MODIFIED".into(),
            "REJECTED".into(),
            "EXPIRED".into(),
            "PENDING".into(),
            "APPROVE%".into(),
            "REJECT%".into(),
            "MODIFY%".into(),
            "TIMEOUT%".into(),
            "P50".into(),
            "P90".into(),
        ];
        table(out, header.each_ref().map(String::as_str), &rows)?;
        let o = &view.overall;
        writeln!(
            out,
            "review latency p99 {}; SLA: {} reminded, {} escalated, {} expired, {} auto-approved; post-hoc: {} reviewed, {} flagged; {} allowed by grants",
            duration(o.review_latency_seconds.p99),
            o.sla.reminded,
            o.sla.escalated,
            o.sla.expired,
            o.sla.auto_approved,
            o.post_hoc.reviewed,
            o.post_hoc.flagged,
            o.granted,
        )?;
    }
    for signal in &view.signals {
        writeln!(out, "signal: {}", signal.message)?;
    }
    for regression in &view.regressions {
        writeln!(out, "warning: {}", regression.message)?;
    }
    Ok(())
}

fn reviewers(view: &StatsView, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let fast = view.thresholds.fast_approval_seconds;
    let rows: Vec<[String; 10]> = view
        .groups
        .iter()
        .map(|g| {
            let f = &g.figures;
            let fatigue = g.fatigue.as_ref();
            [
                group_name(g, By::Reviewer),
                f.total.to_string(),
                f.approved.to_string(),
                f.modified.to_string(),
                f.rejected.to_string(),
                rate(f.approval_rate),
                duration(fatigue.and_then(|x| x.time_to_decision_seconds.p50)),
                duration(fatigue.and_then(|x| x.time_to_decision_seconds.p10)),
                fatigue.map_or("-".to_owned(), |x| {
                    format!("{} ({})", x.fast_approvals, rate(x.fast_approval_share))
                }),
                fatigue.map_or("-".to_owned(), |x| x.flagged_after_approval.to_string()),
            ]
        })
        .collect();
    let fast_header = format!("FAST<{fast}s");
    table(
        out,
        [
            "REVIEWER",
            "DECISIONS",
            "APPROVED",
            "MODIFIED",
            "REJECTED",
            "APPROVE%",
            "MEDIAN",
            "P10",
            &fast_header,
            "FLAGGED",
        ],
        &rows,
    )?;
    for group in &view.groups {
        if let Some(warning) = group.fatigue.as_ref().and_then(|f| f.warning.as_ref()) {
            writeln!(out, "rubber stamp? {warning}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        let cases: &[(Option<f64>, &str)] = &[
            (None, "-"),
            (Some(2.0), "2s"),
            (Some(4.5), "4.5s"),
            (Some(59.0), "59s"),
            (Some(90.0), "1m30s"),
            (Some(600.0), "10m"),
            (Some(3900.0), "1h05m"),
            (Some(97_200.0), "1d03h"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(duration(*seconds), *expected, "{seconds:?}");
        }
    }

    #[test]
    fn time_flags() {
        let now: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
        assert_eq!(
            time_flag("--since", "7d", now).unwrap(),
            "2026-11-18T12:00:00Z"
        );
        assert_eq!(
            time_flag("--since", "2026-11-25T14:00:00+02:00", now).unwrap(),
            "2026-11-25T12:00:00Z"
        );
        assert_eq!(
            time_flag("--since", "last week", now)
                .unwrap_err()
                .to_string(),
            "--since expects an RFC 3339 time like 2026-11-25T12:00:00Z or a duration ago like 7d or 12h, found \"last week\""
        );
    }
}
