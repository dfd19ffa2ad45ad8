//! The Wilson score interval of a rate (95%): how high (or low) the true error rate may
//! plausibly be, given `errors` of `n` observed. Unlike the plain rate it says something
//! useful at 0 of 50 (at most 7.1%) and does not promise 0% from three clean decisions.

/// z for a two-sided 95% interval.
const Z: f64 = 1.959_963_984_540_054;

/// The upper bound of the 95% Wilson score interval of `errors / n`; 1 when `n` is 0
/// (no evidence allows any rate).
pub fn wilson_upper(errors: u64, n: u64) -> f64 {
    bounds(errors, n).1
}

/// The lower bound of the 95% Wilson score interval of `errors / n`; 0 when `n` is 0.
pub fn wilson_lower(errors: u64, n: u64) -> f64 {
    bounds(errors, n).0
}

fn bounds(errors: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = (errors as f64 / n).min(1.0);
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let spread = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denominator = 1.0 + z2 / n;
    (
        ((centre - spread) / denominator).max(0.0),
        ((centre + spread) / denominator).min(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-4, "{a} != {b}");
    }

    #[test]
    fn known_values() {
        // 0 of n: z² / (n + z²).
        close(wilson_upper(0, 50), 0.071_348);
        close(wilson_upper(0, 100), 0.036_995);
        // 5 of 100: the textbook interval 0.0215 .. 0.1118.
        close(wilson_upper(5, 100), 0.111_750);
        close(wilson_lower(5, 100), 0.021_540);
        close(wilson_upper(1, 10), 0.404_150);
        close(wilson_lower(1, 10), 0.017_875);
        close(wilson_lower(10, 10), 0.722_467);
        close(wilson_upper(10, 10), 1.0);
        close(wilson_lower(0, 10), 0.0);
    }

    #[test]
    fn no_evidence_allows_anything() {
        assert_eq!(wilson_upper(0, 0), 1.0);
        assert_eq!(wilson_lower(0, 0), 0.0);
    }

    #[test]
    fn more_clean_evidence_lowers_the_bound() {
        assert!(wilson_upper(0, 50) > wilson_upper(0, 51));
        assert!(wilson_upper(1, 100) < wilson_upper(1, 50));
    }
}
