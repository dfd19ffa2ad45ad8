//! Printing what the server answered: JSON with `--json`, otherwise a short human-readable
//! form (key-value lines for one action, a table for a list).

use std::io::Write as _;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use countersign_core::lifecycle::Verdict;
use countersign_core::summary::args_summary;
use countersign_core::{Status, Tier};
use countersign_server::views::{ActionPage, ActionView, TokenList, VerdictView};
use serde::Serialize;

/// One action.
pub fn action(action: &ActionView, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(action);
    }
    let tier = Tier::from(action.tier);
    let mut lines = vec![
        ("id", action.id.clone()),
        ("action", action.action.clone()),
        ("agent", action.agent.clone()),
        ("status", Status::from(action.status).to_string()),
        (
            "tier",
            match &action.rule {
                Some(rule) => format!("{tier} (rule {rule:?})"),
                None => format!("{tier} (policy default)"),
            },
        ),
        ("reason", action.reason.clone()),
        ("args", serde_json::to_string(&action.args)?),
    ];
    if let Some(grant) = &action.grant {
        lines.push(("grant", format!("{grant} (allowed without asking)")));
    }
    if let Some(original) = &action.original_args {
        lines.push(("original args", serde_json::to_string(original)?));
    }
    if Status::from(action.status) == Status::Pending {
        let approvals = action
            .decisions
            .iter()
            .filter(|d| d.verdict != VerdictView::Reject)
            .count();
        lines.push((
            "approvals",
            format!("{approvals} of {}", action.approvals_required),
        ));
        lines.push(("deadline", action.deadline.map_or("-".to_owned(), rfc3339)));
    }
    for decision in &action.decisions {
        let reason = decision
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        lines.push((
            "decision",
            format!(
                "{} by {}{reason}",
                Verdict::from(decision.verdict).as_str(),
                decision.reviewer
            ),
        ));
    }
    let mut out = std::io::stdout().lock();
    for (key, value) in lines {
        writeln!(out, "{key:<14}{value}")?;
    }
    Ok(())
}

/// A page of the queue, as a table: most urgent first, with the time left and a one-line
/// summary of the arguments.
pub fn queue(page: &ActionPage, now: DateTime<Utc>, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(page);
    }
    let mut out = std::io::stdout().lock();
    if page.items.is_empty() {
        writeln!(out, "no pending actions")?;
        return Ok(());
    }
    let rows: Vec<[String; 7]> = page
        .items
        .iter()
        .map(|a| {
            [
                a.id.clone(),
                a.action.clone(),
                a.agent.clone(),
                Tier::from(a.tier).to_string(),
                a.deadline.map_or("-".to_owned(), |d| time_left(d - now)),
                a.confidence.map_or("-".to_owned(), |c| format!("{c:.2}")),
                args_summary(&a.args, 48),
            ]
        })
        .collect();
    table(
        &mut out,
        ["ID", "ACTION", "AGENT", "TIER", "LEFT", "CONF", "ARGS"],
        &rows,
    )?;
    if let Some(cursor) = &page.next_cursor {
        writeln!(out, "(more: --cursor {cursor}, or --all)")?;
    }
    Ok(())
}

/// `12m left`, `1h05m left`, `overdue 3m`: the largest two units, rounded down.
fn time_left(left: TimeDelta) -> String {
    let seconds = left.num_seconds();
    let span = seconds.unsigned_abs();
    let text = match span {
        0..60 => format!("{span}s"),
        60..3600 => format!("{}m", span / 60),
        3600..86400 => format!("{}h{:02}m", span / 3600, span % 3600 / 60),
        _ => format!("{}d{:02}h", span / 86400, span % 86400 / 3600),
    };
    if seconds < 0 {
        format!("overdue {text}")
    } else {
        format!("{text} left")
    }
}

/// Tokens, as a table.
pub fn tokens(list: &TokenList, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(list);
    }
    let rows: Vec<[String; 6]> = list
        .items
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.name.clone(),
                countersign_store::Role::from(t.role).to_string(),
                if t.groups.is_empty() {
                    "-".to_owned()
                } else {
                    t.groups.join(",")
                },
                t.owner.clone().unwrap_or_else(|| "-".to_owned()),
                if t.revoked { "revoked" } else { "active" }.to_owned(),
            ]
        })
        .collect();
    table(
        &mut std::io::stdout().lock(),
        ["ID", "NAME", "ROLE", "GROUPS", "OWNER", "STATE"],
        &rows,
    )?;
    Ok(())
}

pub(crate) fn table<const N: usize>(
    out: &mut impl std::io::Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// A time as the API writes it (RFC 3339, UTC).
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_at_a_glance() {
        let cases: &[(i64, &str)] = &[
            (0, "0s left"),
            (59, "59s left"),
            (61, "1m left"),
            (3599, "59m left"),
            (3900, "1h05m left"),
            (90_000, "1d01h left"),
            (-180, "overdue 3m"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(time_left(TimeDelta::seconds(*seconds)), *expected);
        }
    }
}
