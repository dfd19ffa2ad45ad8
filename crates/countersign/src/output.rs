//! Printing what the server answered: JSON with `--json`, otherwise a short human-readable
//! form (key-value lines for one action, a table for a list).

use std::io::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::summary::args_summary;
use countersign_server::DeliveryPage;
use countersign_server::views::ActionPage;
use serde_json::Value;

/// One action.
pub fn action(action: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(action);
    }
    let text = |key: &str| action[key].as_str().unwrap_or("-").to_owned();
    let mut lines = vec![
        ("id", text("id")),
        ("action", text("action")),
        ("agent", text("agent")),
        ("status", text("status")),
        ("detail", text("status_detail")),
        (
            "tier",
            match action["rule"].as_str() {
                Some(rule) => format!("{} (rule {rule:?})", text("tier")),
                None => format!("{} (policy default)", text("tier")),
            },
        ),
        ("reason", text("reason")),
        ("args", action["args"].to_string()),
    ];
    if !action["original_args"].is_null() {
        lines.push(("original args", action["original_args"].to_string()));
    }
    if action["status"] == "pending" {
        let approvals = action["decisions"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["verdict"] != "reject").count());
        lines.push((
            "approvals",
            format!("{approvals} of {}", action["approvals_required"]),
        ));
        lines.push(("deadline", text("deadline")));
    }
    for decision in action["decisions"].as_array().into_iter().flatten() {
        let reason = decision["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        lines.push((
            "decision",
            format!(
                "{} by {}{reason}",
                decision["verdict"].as_str().unwrap_or("?"),
                decision["reviewer"].as_str().unwrap_or("?")
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
        return print_json(&serde_json::to_value(page)?);
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
                a.tier.clone(),
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

/// Deliveries, as a table.
pub fn deliveries(page: &DeliveryPage, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::to_value(page)?);
    }
    let mut out = std::io::stdout().lock();
    if page.items.is_empty() {
        writeln!(out, "no deliveries")?;
        return Ok(());
    }
    let rows: Vec<[String; 7]> = page
        .items
        .iter()
        .map(|d| {
            [
                d.id.clone(),
                d.event.clone(),
                d.action_id.clone(),
                d.target.clone(),
                format!("{:?}", d.status).to_lowercase(),
                d.attempts.to_string(),
                d.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    table(
        &mut out,
        [
            "ID",
            "EVENT",
            "ACTION",
            "TARGET",
            "STATUS",
            "TRIES",
            "LAST ERROR",
        ],
        &rows,
    )?;
    if let Some(cursor) = &page.next_cursor {
        writeln!(out, "(more: --cursor {cursor})")?;
    }
    Ok(())
}

/// Tokens, as a table.
pub fn tokens(list: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(list);
    }
    let rows: Vec<[String; 6]> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let cell = |key: &str| t[key].as_str().unwrap_or("-").to_owned();
            let groups: Vec<&str> = t["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            [
                cell("id"),
                cell("name"),
                cell("role"),
                if groups.is_empty() {
                    "-".to_owned()
                } else {
                    groups.join(",")
                },
                cell("owner"),
                if t["revoked"] == true {
                    "revoked".to_owned()
                } else {
                    "active".to_owned()
                },
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

fn table<const N: usize>(
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

pub fn print_json(value: &Value) -> anyhow::Result<()> {
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
