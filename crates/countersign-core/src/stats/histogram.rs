//! Latencies counted in buckets of two significant digits: exact below 100 ms, then 100,
//! 110, ... 990 ms, 1.0, 1.1, ... 9.9 s, 10, 11, ... 99 s, and so on up to decades of
//! years. A bucket is at most 10% wide, so a percentile read from it is within 10% of the
//! true one (below it, never above), and every latency with two significant digits — 5 s,
//! 30 s, 90 s, 15 min, 1 h — is a bucket boundary, read exactly.
//!
//! Why buckets and not the latencies themselves: a window's percentiles must come from
//! sums kept as decisions happen (two rows an hour per group, not one row per action), and
//! histograms add and subtract. The sparse map stays small: human review times fall into a
//! few dozen buckets.

use std::collections::BTreeMap;

/// Exponents beyond this are clamped into the last bucket (99 × 10^10 ms, ~31 years).
const MAX_EXPONENT: u32 = 10;
/// The last bucket: 99 × 10^10 ms and above.
pub const LAST_BUCKET: u16 = 100 + (MAX_EXPONENT as u16 - 1) * 90 + 89;

/// Counts of latencies per bucket. Counts are signed so that a change (what an action
/// adds minus what it added before) is a histogram too; stored sums are never negative.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    buckets: BTreeMap<u16, i64>,
}

impl Histogram {
    /// The bucket of a latency in milliseconds.
    pub fn bucket(millis: u64) -> u16 {
        if millis < 100 {
            return millis as u16;
        }
        let mut mantissa = millis;
        let mut exponent = 0u32;
        while mantissa >= 100 {
            mantissa /= 10;
            exponent += 1;
        }
        if exponent > MAX_EXPONENT {
            exponent = MAX_EXPONENT;
            mantissa = 99;
        }
        (100 + (exponent - 1) * 90 + (mantissa as u32 - 10)) as u16
    }

    /// The smallest latency (milliseconds) of a bucket.
    pub fn floor(bucket: u16) -> u64 {
        if bucket < 100 {
            return u64::from(bucket);
        }
        if bucket > LAST_BUCKET {
            return u64::MAX;
        }
        let k = u32::from(bucket) - 100;
        let exponent = k / 90 + 1;
        let mantissa = u64::from(k % 90 + 10);
        mantissa * 10u64.pow(exponent)
    }

    /// One latency.
    pub fn of(millis: u64) -> Histogram {
        let mut histogram = Histogram::default();
        histogram.record(millis);
        histogram
    }

    pub fn record(&mut self, millis: u64) {
        self.add_to(Histogram::bucket(millis), 1);
    }

    /// Adds `count` to a bucket (a negative count subtracts).
    pub fn add_to(&mut self, bucket: u16, count: i64) {
        let entry = self.buckets.entry(bucket).or_insert(0);
        *entry += count;
        if *entry == 0 {
            self.buckets.remove(&bucket);
        }
    }

    pub fn add(&mut self, other: &Histogram) {
        for (&bucket, &count) in &other.buckets {
            self.add_to(bucket, count);
        }
    }

    pub fn subtract(&mut self, other: &Histogram) {
        for (&bucket, &count) in &other.buckets {
            self.add_to(bucket, -count);
        }
    }

    /// Every non-empty bucket with its count, smallest first.
    pub fn iter(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.buckets.iter().map(|(&bucket, &count)| (bucket, count))
    }

    /// How many latencies it holds.
    pub fn count(&self) -> i64 {
        self.buckets.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The `q`-quantile (0 < q ≤ 1) by nearest rank: the smallest bucket floor such that at
    /// least `q` of the latencies are in it or below. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (&bucket, &count) in &self.buckets {
            seen += count;
            if seen >= rank {
                return Some(Histogram::floor(bucket));
            }
        }
        self.buckets.keys().last().map(|&b| Histogram::floor(b))
    }

    /// How many latencies are below `millis`: exact when `millis` is a bucket boundary (two
    /// significant digits); otherwise the bucket that holds `millis` is left out.
    pub fn count_below(&self, millis: u64) -> i64 {
        self.buckets
            .iter()
            .filter(|(bucket, _)| Histogram::floor(**bucket + 1) <= millis)
            .map(|(_, count)| count)
            .sum()
    }
}

impl FromIterator<(u16, i64)> for Histogram {
    fn from_iter<I: IntoIterator<Item = (u16, i64)>>(pairs: I) -> Histogram {
        let mut histogram = Histogram::default();
        for (bucket, count) in pairs {
            histogram.add_to(bucket, count);
        }
        histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_two_significant_digits() {
        // (latency in ms, its bucket's floor)
        let cases: &[(u64, u64)] = &[
            (0, 0),
            (99, 99),
            (100, 100),
            (109, 100),
            (110, 110),
            (999, 990),
            (1_000, 1_000),
            (4_999, 4_900),
            (5_000, 5_000),
            (30_000, 30_000),
            (3_600_000, 3_600_000),
            (3_659_999, 3_600_000),
            (86_400_000, 86_000_000),
            (u64::MAX, 990_000_000_000),
        ];
        for &(millis, floor) in cases {
            assert_eq!(
                Histogram::floor(Histogram::bucket(millis)),
                floor,
                "{millis}"
            );
        }
        // Every bucket's floor is in it, and buckets are in order.
        for bucket in 0..LAST_BUCKET {
            assert_eq!(Histogram::bucket(Histogram::floor(bucket)), bucket);
            assert!(Histogram::floor(bucket) < Histogram::floor(bucket + 1));
        }
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let seconds = |list: &[u64]| -> Histogram {
            let mut h = Histogram::default();
            for s in list {
                h.record(s * 1000);
            }
            h
        };
        // Ten latencies 1..10 s: p50 is the 5th (5 s), p90 the 9th, p99 the 10th, p10 the 1st.
        let ten = seconds(&[3, 1, 2, 10, 9, 8, 7, 6, 5, 4]);
        let q = |h: &Histogram, q: f64| h.quantile(q).map(|ms| ms / 1000);
        assert_eq!(q(&ten, 0.10), Some(1));
        assert_eq!(q(&ten, 0.50), Some(5));
        assert_eq!(q(&ten, 0.90), Some(9));
        assert_eq!(q(&ten, 0.99), Some(10));
        assert_eq!(q(&seconds(&[42]), 0.5), Some(42));
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(ten.count_below(5_000), 4);
        assert_eq!(ten.count_below(1_000), 0);
        assert_eq!(ten.count_below(60_000), 10);
    }

    #[test]
    fn changes_add_and_subtract() {
        let mut sum = Histogram::of(5_000);
        sum.add(&Histogram::of(7_000));
        let mut change = Histogram::default();
        change.subtract(&Histogram::of(5_000));
        sum.add(&change);
        assert_eq!(sum, Histogram::of(7_000));
        sum.subtract(&Histogram::of(7_000));
        assert!(sum.is_empty());
        let pairs: Histogram = [(3, 2), (3, -2), (7, 1)].into_iter().collect();
        assert_eq!(pairs.iter().collect::<Vec<_>>(), [(7, 1)]);
    }
}
