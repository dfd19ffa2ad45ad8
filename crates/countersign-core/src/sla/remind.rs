//! Reminders before a review deadline: `remind_at = ["50%", "90%"]` (shares of the time a
//! stage gives reviewers) or `["10m"]` (durations before the deadline), in `[defaults]` and
//! per rule. Each stage of the ladder (the first review SLA, then the escalation SLA) gets
//! its own moments, computed once when the stage starts and kept on the action, so that a
//! restart neither forgets nor repeats one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::duration::{DurationError, ReviewDuration};

/// One reminder point of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RemindAt {
    /// This percentage of the stage's time has passed (1 to 99).
    Percent(u8),
    /// This long before the stage's deadline.
    Before(ReviewDuration),
}

/// Why a reminder point was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemindAtError {
    #[error("expected a percentage from 1% to 99% (like \"50%\"), found {0:?}")]
    Percent(String),
    #[error("{0} (or a percentage like \"50%\")")]
    Duration(DurationError),
}

impl FromStr for RemindAt {
    type Err = RemindAtError;
    fn from_str(text: &str) -> Result<RemindAt, RemindAtError> {
        if let Some(number) = text.strip_suffix('%') {
            return match number.parse::<u8>() {
                Ok(percent @ 1..=99) if number.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(RemindAt::Percent(percent))
                }
                _ => Err(RemindAtError::Percent(text.to_owned())),
            };
        }
        text.parse::<ReviewDuration>()
            .map(RemindAt::Before)
            .map_err(RemindAtError::Duration)
    }
}

impl fmt::Display for RemindAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemindAt::Percent(percent) => write!(f, "{percent}%"),
            RemindAt::Before(duration) => write!(f, "{duration}"),
        }
    }
}

/// The moments at which a stage from `start` to `deadline` reminds its approvers: strictly
/// between the two, ascending, each once. Points that fall outside the stage (a duration
/// longer than the stage) are dropped.
pub fn moments(
    remind_at: &[RemindAt],
    start: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let span = deadline - start;
    let mut out: Vec<DateTime<Utc>> = remind_at
        .iter()
        .map(|point| match point {
            // Whole milliseconds, the precision the store keeps.
            RemindAt::Percent(percent) => {
                start
                    + chrono::TimeDelta::milliseconds(
                        span.num_milliseconds() * i64::from(*percent) / 100,
                    )
            }
            RemindAt::Before(duration) => deadline - duration.as_chrono(),
        })
        .filter(|moment| start < *moment && *moment < deadline)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, expected) in [
            ("50%", RemindAt::Percent(50)),
            ("1%", RemindAt::Percent(1)),
            ("99%", RemindAt::Percent(99)),
            (
                "10m",
                RemindAt::Before(ReviewDuration::from_seconds(600).unwrap()),
            ),
        ] {
            assert_eq!(text.parse::<RemindAt>(), Ok(expected), "{text}");
            assert_eq!(expected.to_string(), text);
        }
        for bad in [
            "0%", "100%", "150%", "%", "+5%", "5.5%", "half", "", "0s", "-1m",
        ] {
            assert!(bad.parse::<RemindAt>().is_err(), "{bad}");
        }
        assert_eq!(
            "100%".parse::<RemindAt>().unwrap_err().to_string(),
            "expected a percentage from 1% to 99% (like \"50%\"), found \"100%\""
        );
    }

    #[test]
    fn moments_of_a_stage() {
        let start = DateTime::from_timestamp(0, 0).unwrap();
        let deadline = start + chrono::TimeDelta::minutes(30);
        let at = |minutes: i64| start + chrono::TimeDelta::minutes(minutes);
        let points = |texts: &[&str]| -> Vec<RemindAt> {
            texts.iter().map(|t| t.parse().unwrap()).collect()
        };
        let cases: &[(&[&str], Vec<DateTime<Utc>>)] = &[
            (&[], vec![]),
            (&["50%", "90%"], vec![at(15), at(27)]),
            // Out of order, duplicated (15m before a 30m deadline is 50%), or outside.
            (&["90%", "15m", "50%", "30m", "1h"], vec![at(15), at(27)]),
            (&["5m"], vec![at(25)]),
        ];
        for (texts, expected) in cases {
            assert_eq!(
                &moments(&points(texts), start, deadline),
                expected,
                "{texts:?}"
            );
        }
    }
}
