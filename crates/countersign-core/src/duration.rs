//! Review durations as policy authors write them: `30s`, `15m`, `2h`, `1d`.

use std::fmt;
use std::str::FromStr;

/// A whole number of seconds, at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReviewDuration {
    seconds: u64,
}

/// Why a duration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration like \"30s\", \"15m\", \"2h\" or \"1d\", found {0:?}")]
    Malformed(String),
    #[error("a duration must be longer than zero, found {0:?}")]
    Zero(String),
    #[error("duration {0:?} is too long (at most 3650d)")]
    TooLong(String),
}

const MAX_SECONDS: u64 = 3650 * 86_400;

impl ReviewDuration {
    pub fn from_seconds(seconds: u64) -> Option<ReviewDuration> {
        (1..=MAX_SECONDS)
            .contains(&seconds)
            .then_some(ReviewDuration { seconds })
    }

    pub fn seconds(self) -> u64 {
        self.seconds
    }

    pub fn as_chrono(self) -> chrono::TimeDelta {
        // In range by construction (at most ten years).
        chrono::TimeDelta::seconds(self.seconds as i64)
    }
}

impl FromStr for ReviewDuration {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || DurationError::Malformed(text.to_owned());
        // The unit is the last character, whatever its width: `"é"` is malformed, not a panic.
        let unit_at = text.char_indices().last().ok_or_else(malformed)?.0;
        let (digits, unit) = text.split_at(unit_at);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let multiplier = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(malformed()),
        };
        let count: u64 = digits
            .parse()
            .map_err(|_| DurationError::TooLong(text.to_owned()))?;
        let seconds = count
            .checked_mul(multiplier)
            .ok_or_else(|| DurationError::TooLong(text.to_owned()))?;
        if seconds == 0 {
            return Err(DurationError::Zero(text.to_owned()));
        }
        ReviewDuration::from_seconds(seconds).ok_or_else(|| DurationError::TooLong(text.to_owned()))
    }
}

impl fmt::Display for ReviewDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, seconds) in [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86_400)] {
            let d: ReviewDuration = text.parse().unwrap();
            assert_eq!(d.seconds(), seconds);
            assert_eq!(d.to_string(), text);
        }
        assert_eq!("90s".parse::<ReviewDuration>().unwrap().to_string(), "90s");
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in [
            "", "m", "15", "15 m", "1.5h", "-1m", "1w", "m15", "15M", "é", "15é", "1é",
        ] {
            assert!(
                matches!(
                    bad.parse::<ReviewDuration>(),
                    Err(DurationError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            "0s".parse::<ReviewDuration>(),
            Err(DurationError::Zero(_))
        ));
        assert!(matches!(
            "99999999999999999999d".parse::<ReviewDuration>(),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            "3651d".parse::<ReviewDuration>(),
            Err(DurationError::TooLong(_))
        ));
    }
}
