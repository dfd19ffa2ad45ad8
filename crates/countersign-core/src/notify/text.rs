//! The words messages use about an action, the same in the API, the command line, webhook
//! and Slack and email messages, callbacks and the audit log. Above all they never let an
//! expiry read as a person's rejection (landscape §6: agents told "the user denied" when
//! nobody answered, and metrics inflated by it): an expired action says nobody answered,
//! within what, and what the ladder did; a rejected one says who rejected it and why.

use chrono::{DateTime, TimeDelta, Utc};

use crate::lifecycle::{Gate, Verdict};
use crate::tier::Status;

/// A time as messages show it: `12:15 UTC`.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%H:%M UTC").to_string()
}

/// A span as people say it: `15m`, `1h30m`, `45s`, `2d3h` — the two largest units, cut
/// (not rounded) below them.
pub fn human_duration(span: TimeDelta) -> String {
    let seconds = span.num_seconds().max(0);
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (size, unit) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            // A zero in the middle ends the reading: "1h" rather than "1h0m".
            break;
        }
        if parts.len() == 2 || (rest == 0 && !parts.is_empty()) {
            break;
        }
    }
    parts.concat()
}

/// `12m left`, or `overdue by 3m`.
pub fn time_left(deadline: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if deadline >= now {
        format!("{} left", human_duration(deadline - now))
    } else {
        format!("overdue by {}", human_duration(now - deadline))
    }
}

/// Why the action stands where it does, in one sentence: who decided, or that nobody did in
/// time and what the ladder did meanwhile.
pub fn status_detail(gate: &Gate, created_at: DateTime<Utc>) -> String {
    match gate.status {
        Status::Allowed => "allowed by the policy".to_owned(),
        Status::Denied => "denied by the policy".to_owned(),
        Status::Pending => pending(gate),
        Status::Approved => approved(gate, created_at),
        Status::Rejected => rejected(gate),
        Status::Expired => format!("expired: {}", unanswered(gate, created_at)),
        Status::Cancelled => match gate.decided_at {
            Some(at) => format!("cancelled by the agent at {}", when(at)),
            None => "cancelled by the agent".to_owned(),
        },
    }
}

fn approvals(gate: &Gate) -> String {
    let counting = gate.counting_approvers();
    let names: Vec<&str> = counting.iter().map(|n| n.as_str()).collect();
    let mut text = format!(
        "{} of {} approvals",
        counting.len(),
        gate.approvals_required.max(1)
    );
    if !names.is_empty() {
        text.push_str(&format!(" ({})", names.join(", ")));
    }
    text
}

fn pending(gate: &Gate) -> String {
    let mut text = format!("waiting for {}: {}", gate.deciders(), approvals(gate));
    if let Some(deadline) = gate.deadline {
        text.push_str(&format!(", deadline {}", when(deadline)));
    }
    if let (true, Some(at)) = (gate.escalated, gate.escalated_at) {
        text.push_str(&format!(" (escalated to {} at {})", groups(gate), when(at)));
    }
    text
}

fn approved(gate: &Gate, created_at: DateTime<Utc>) -> String {
    let counting = gate.counting_approvers();
    if (counting.len() as u32) < gate.approvals_required.max(1) {
        // Nobody gave the approvals: the SLA did, where the policy allows it.
        return format!(
            "approved by the system: {}, and the policy approves on timeout",
            unanswered(gate, created_at)
        );
    }
    let start = gate
        .decisions
        .iter()
        .rposition(|d| d.verdict == Verdict::Modify)
        .unwrap_or(0);
    let mut parts = Vec::new();
    for decision in &gate.decisions[start..] {
        if decision.verdict == Verdict::Reject {
            continue;
        }
        let what = if decision.verdict == Verdict::Modify {
            "approved with modified arguments"
        } else {
            "approved"
        };
        parts.push(format!(
            "{what} by {} at {}",
            decision.reviewer,
            when(decision.at)
        ));
    }
    parts.join(", ")
}

fn rejected(gate: &Gate) -> String {
    match gate
        .decisions
        .iter()
        .rev()
        .find(|d| d.verdict == Verdict::Reject)
    {
        Some(decision) => match decision.reason.as_deref().filter(|r| !r.trim().is_empty()) {
            Some(reason) => format!(
                "rejected by {} at {}: {reason}",
                decision.reviewer,
                when(decision.at)
            ),
            None => format!(
                "rejected by {} at {} (no reason given)",
                decision.reviewer,
                when(decision.at)
            ),
        },
        None => "rejected".to_owned(),
    }
}

fn groups(gate: &Gate) -> String {
    let names: Vec<&str> = gate.escalated_to.iter().map(|g| g.as_str()).collect();
    names.join(", ")
}

/// "no reviewer answered within 15m (escalated to finance at 12:15 UTC, then 1h more)".
fn unanswered(gate: &Gate, created_at: DateTime<Utc>) -> String {
    let counting = gate.counting_approvers().len();
    let subject = if counting == 0 {
        "no reviewer answered".to_owned()
    } else {
        format!("only {} arrived", approvals(gate))
    };
    let end = gate.deadline.or(gate.decided_at).unwrap_or(created_at);
    match (gate.escalated, gate.escalated_at) {
        (true, Some(escalated_at)) => format!(
            "{subject} within {} (escalated to {} at {}, then {} more)",
            human_duration(escalated_at - created_at),
            groups(gate),
            when(escalated_at),
            human_duration(end - escalated_at)
        ),
        (true, None) => format!(
            "{subject} within {} (escalated to {} on the way)",
            human_duration(end - created_at),
            groups(gate)
        ),
        (false, _) => format!("{subject} within {}", human_duration(end - created_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (900, "15m"),
            (930, "15m30s"),
            (3600, "1h"),
            (5400, "1h30m"),
            (3601, "1h"),
            (86_400 + 7_200, "1d2h"),
            (-5, "0s"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(
                human_duration(TimeDelta::seconds(*seconds)),
                *expected,
                "{seconds}"
            );
        }
        let noon = DateTime::from_timestamp(43_200, 0).unwrap();
        assert_eq!(when(noon), "12:00 UTC");
        assert_eq!(time_left(noon, noon - TimeDelta::minutes(12)), "12m left");
        assert_eq!(
            time_left(noon, noon + TimeDelta::minutes(3)),
            "overdue by 3m"
        );
    }
}
