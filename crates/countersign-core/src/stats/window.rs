//! Time windows of statistics, and which kept sums answer one: whole days and whole hours
//! of submissions from the sums the store keeps, and at each unaligned end at most half an
//! hour of actions read one by one — added when the window covers less than half of that
//! hour, otherwise the whole hour's sum minus the part outside. So a window's cost is
//! bounded by days + two days' hours + an hour of actions, whatever its length and
//! wherever it starts.

use chrono::{DateTime, Utc};

/// An hour in milliseconds.
pub const HOUR_MILLIS: i64 = 3_600_000;
const HALF_HOUR_MILLIS: i64 = HOUR_MILLIS / 2;
const HOURS_PER_DAY: i64 = 24;

/// The hour (since the Unix epoch) a time falls in.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis().div_euclid(HOUR_MILLIS)
}

/// The day (since the Unix epoch, UTC) an hour falls in.
pub fn day_of_hour(hour: i64) -> i64 {
    hour.div_euclid(HOURS_PER_DAY)
}

/// The start of an hour.
pub fn hour_start(hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(hour.saturating_mul(HOUR_MILLIS)).unwrap_or_default()
}

/// Actions submitted at or after `since` and before `until`; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

/// A window that holds nothing by construction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("since ({since}) must be before until ({until})")]
pub struct EmptyWindow {
    pub since: String,
    pub until: String,
}

impl Window {
    pub fn new(
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Window, EmptyWindow> {
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(EmptyWindow {
                since: s.to_rfc3339(),
                until: u.to_rfc3339(),
            });
        }
        Ok(Window { since, until })
    }

    /// Everything.
    pub fn all() -> Window {
        Window::default()
    }

    pub fn since(&self) -> Option<DateTime<Utc>> {
        self.since
    }

    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| s <= at) && self.until.is_none_or(|u| at < u)
    }
}

/// `[from, to)` in days or hours since the epoch; `None` is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Actions submitted in `[from, to)` (milliseconds), added (`sign` 1) or subtracted (-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSpan {
    pub from: i64,
    pub to: i64,
    pub sign: i64,
}

/// What adds up to a window's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Whole days of kept sums.
    pub days: Option<Span>,
    /// Whole hours of kept sums (at most two spans, each within a day).
    pub hours: Vec<Span>,
    /// Actions read one by one.
    pub raw: Vec<RawSpan>,
}

/// How to answer `window` at `now`. Nothing is submitted after `now`, so an end at or past
/// it is open: the current hour and day are read from their sums, which hold everything
/// submitted so far.
pub fn plan(window: &Window, now: DateTime<Utc>) -> Plan {
    let now = now.timestamp_millis();
    let since = window.since.map(|s| s.timestamp_millis());
    let until = window
        .until
        .map(|u| u.timestamp_millis())
        .filter(|&u| u < now);
    let mut plan = Plan::default();
    let offset = |at: i64| at.rem_euclid(HOUR_MILLIS);
    if let (Some(s), Some(u)) = (since, until)
        && s.div_euclid(HOUR_MILLIS) == u.div_euclid(HOUR_MILLIS)
        && offset(s) != 0
    {
        // Both ends inside one hour.
        let start = s - offset(s);
        if u - s <= HALF_HOUR_MILLIS {
            plan.raw.push(RawSpan {
                from: s,
                to: u,
                sign: 1,
            });
        } else {
            let hour = s.div_euclid(HOUR_MILLIS);
            plan.hours.push(Span {
                from: Some(hour),
                to: Some(hour + 1),
            });
            plan.raw.push(RawSpan {
                from: start,
                to: s,
                sign: -1,
            });
            plan.raw.push(RawSpan {
                from: u,
                to: start + HOUR_MILLIS,
                sign: -1,
            });
        }
        return plan;
    }
    let first_hour = since.map(|s| {
        let hour = s.div_euclid(HOUR_MILLIS);
        let start = hour * HOUR_MILLIS;
        match s - start {
            0 => hour,
            into if HOUR_MILLIS - into <= HALF_HOUR_MILLIS => {
                plan.raw.push(RawSpan {
                    from: s,
                    to: start + HOUR_MILLIS,
                    sign: 1,
                });
                hour + 1
            }
            _ => {
                plan.raw.push(RawSpan {
                    from: start,
                    to: s,
                    sign: -1,
                });
                hour
            }
        }
    });
    let end_hour = until.map(|u| {
        let hour = u.div_euclid(HOUR_MILLIS);
        let start = hour * HOUR_MILLIS;
        match u - start {
            0 => hour,
            into if into <= HALF_HOUR_MILLIS => {
                plan.raw.push(RawSpan {
                    from: start,
                    to: u,
                    sign: 1,
                });
                hour
            }
            _ => {
                plan.raw.push(RawSpan {
                    from: u,
                    to: start + HOUR_MILLIS,
                    sign: -1,
                });
                hour + 1
            }
        }
    });
    let first_day = first_hour.map(|h| -(-h).div_euclid(HOURS_PER_DAY));
    let end_day = end_hour.map(|h| h.div_euclid(HOURS_PER_DAY));
    let whole_days = match (first_day, end_day) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    };
    if whole_days {
        plan.days = Some(Span {
            from: first_day,
            to: end_day,
        });
        if let (Some(h), Some(d)) = (first_hour, first_day)
            && h < d * HOURS_PER_DAY
        {
            plan.hours.push(Span {
                from: Some(h),
                to: Some(d * HOURS_PER_DAY),
            });
        }
        if let (Some(h), Some(d)) = (end_hour, end_day)
            && d * HOURS_PER_DAY < h
        {
            plan.hours.push(Span {
                from: Some(d * HOURS_PER_DAY),
                to: Some(h),
            });
        }
    } else if let (Some(a), Some(b)) = (first_hour, end_hour)
        && a < b
    {
        plan.hours.push(Span {
            from: Some(a),
            to: Some(b),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MILLIS;
    const M: i64 = 60_000;
    const DAY: i64 = 24 * H;
    /// A day boundary well after the epoch: day 20,000 (2024-10-04).
    const D: i64 = 20_000;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    fn span(from: Option<i64>, to: Option<i64>) -> Span {
        Span { from, to }
    }

    fn raw(from: i64, to: i64, sign: i64) -> RawSpan {
        RawSpan { from, to, sign }
    }

    /// Adds up which milliseconds a plan covers, over a range around the window, sampled
    /// every minute: each must be counted exactly once inside the window and never outside.
    fn covered(plan: &Plan, t: i64) -> i64 {
        let mut n = 0;
        let within = |s: &Span, unit: i64| {
            s.from.is_none_or(|f| f * unit <= t) && s.to.is_none_or(|e| t < e * unit)
        };
        if let Some(days) = &plan.days {
            n += i64::from(within(days, DAY));
        }
        for hours in &plan.hours {
            n += i64::from(within(hours, H));
        }
        for r in &plan.raw {
            if r.from <= t && t < r.to {
                n += r.sign;
            }
        }
        n
    }

    #[test]
    fn plans() {
        let start = D * DAY;
        let now = start + 100 * DAY;
        // (since, until, expected plan)
        #[rustfmt::skip]
        let cases: Vec<(Option<i64>, Option<i64>, Plan)> = vec![
            // Everything: the day sums alone.
            (None, None, Plan { days: Some(span(None, None)), ..Plan::default() }),
            // An end at or after now is open.
            (None, Some(now), Plan { days: Some(span(None, None)), ..Plan::default() }),
            // Aligned on days.
            (Some(start), Some(start + 2 * DAY),
             Plan { days: Some(span(Some(D), Some(D + 2))), ..Plan::default() }),
            // Aligned on hours, less than a day: hours only.
            (Some(start + 3 * H), Some(start + 5 * H),
             Plan { hours: vec![span(Some(D * 24 + 3), Some(D * 24 + 5))], ..Plan::default() }),
            // Hours around whole days.
            (Some(start - 2 * H), Some(start + DAY + 3 * H),
             Plan { days: Some(span(Some(D), Some(D + 1))),
                    hours: vec![span(Some(D * 24 - 2), Some(D * 24)), span(Some(D * 24 + 24), Some(D * 24 + 27))],
                    raw: vec![] }),
            // Ten minutes before an hour ends: those ten minutes one by one.
            (Some(start + 3 * H + 50 * M), Some(start + 5 * H),
             Plan { hours: vec![span(Some(D * 24 + 4), Some(D * 24 + 5))],
                    raw: vec![raw(start + 3 * H + 50 * M, start + 4 * H, 1)], ..Plan::default() }),
            // Ten minutes after an hour starts: the hour less those ten minutes.
            (Some(start + 3 * H + 10 * M), Some(start + 5 * H),
             Plan { hours: vec![span(Some(D * 24 + 3), Some(D * 24 + 5))],
                    raw: vec![raw(start + 3 * H, start + 3 * H + 10 * M, -1)], ..Plan::default() }),
            // The end likewise: twenty minutes in, or forty.
            (Some(start + 3 * H), Some(start + 5 * H + 20 * M),
             Plan { hours: vec![span(Some(D * 24 + 3), Some(D * 24 + 5))],
                    raw: vec![raw(start + 5 * H, start + 5 * H + 20 * M, 1)], ..Plan::default() }),
            (Some(start + 3 * H), Some(start + 5 * H + 40 * M),
             Plan { hours: vec![span(Some(D * 24 + 3), Some(D * 24 + 6))],
                    raw: vec![raw(start + 5 * H + 40 * M, start + 6 * H, -1)], ..Plan::default() }),
            // Inside one hour: short, one by one; long, the hour less both ends.
            (Some(start + 10 * M), Some(start + 30 * M),
             Plan { raw: vec![raw(start + 10 * M, start + 30 * M, 1)], ..Plan::default() }),
            (Some(start + 10 * M), Some(start + 50 * M),
             Plan { hours: vec![span(Some(D * 24), Some(D * 24 + 1))],
                    raw: vec![raw(start, start + 10 * M, -1), raw(start + 50 * M, start + H, -1)],
                    ..Plan::default() }),
            // Since alone: open days after the first whole one.
            (Some(start + 80 * M), None,
             Plan { days: Some(span(Some(D + 1), None)),
                    hours: vec![span(Some(D * 24 + 1), Some(D * 24 + 24))],
                    raw: vec![raw(start + H, start + 80 * M, -1)] }),
        ];
        for (since, until, expected) in &cases {
            let window = Window::new(since.map(at), until.map(at)).unwrap();
            let got = plan(&window, at(now));
            assert_eq!(&got, expected, "since {since:?} until {until:?}");
        }
    }

    #[test]
    fn every_plan_covers_its_window_once() {
        let start = D * DAY;
        let now = start + 10 * DAY;
        let points = [
            0,
            1,
            7 * M,
            29 * M,
            30 * M,
            31 * M,
            59 * M,
            H,
            3 * H + 1,
            23 * H,
            DAY,
            DAY + 5 * M,
            2 * DAY - 1,
            3 * DAY + 45 * M,
            10 * DAY,
            11 * DAY,
        ];
        for &a in &points {
            for &b in &points {
                let (since, until) = (start + a, start + b);
                let Ok(window) = Window::new(Some(at(since)), Some(at(until))) else {
                    continue;
                };
                let got = plan(&window, at(now));
                for raw in &got.raw {
                    assert!(raw.to - raw.from <= 30 * M, "{a} {b}: {raw:?}");
                }
                let mut t = start - DAY;
                while t < now + DAY {
                    let expected = i64::from(since <= t && t < until);
                    // Nothing is submitted after `now`: an end past it may count that or not.
                    if t < now {
                        assert_eq!(
                            covered(&got, t),
                            expected,
                            "since +{a} until +{b} at +{}",
                            t - start
                        );
                    }
                    t += M;
                }
            }
        }
    }

    #[test]
    fn windows_refuse_to_be_empty() {
        let a = at(1_000);
        assert!(Window::new(Some(a), Some(a)).is_err());
        assert!(Window::new(Some(at(2_000)), Some(a)).is_err());
        let w = Window::new(Some(a), None).unwrap();
        assert!(w.contains(at(5_000)));
        assert!(!w.contains(at(999)));
    }
}
