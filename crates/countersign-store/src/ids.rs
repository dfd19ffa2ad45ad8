//! Fresh identifiers and secrets: time-ordered action ids, random token secrets, and the
//! review-sample draw derived from an id.

use chrono::{DateTime, Utc};

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not recoverable in any useful way; falling back to a
    // weaker source would be worse than stopping.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// A new id: 48 bits of milliseconds then 80 random bits, in lowercase Crockford base32
/// (26 characters). Ids sort by creation time, which keeps index inserts local.
pub(crate) fn new_id(now: DateTime<Utc>) -> String {
    let millis = now.timestamp_millis().max(0) as u128 & ((1 << 48) - 1);
    let random = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[6..].copy_from_slice(&random_bytes::<10>());
        b
    });
    let value = (millis << 80) | random;
    let mut out = String::with_capacity(26);
    for i in (0..26).rev() {
        let digit = (value >> (i * 5)) & 31;
        out.push(CROCKFORD[digit as usize] as char);
    }
    out
}

/// A number in `[0, 1)` fixed by the action `id` (its SHA-256): the core samples an
/// allowed `logged` action for post-hoc review when it falls below the rate, so the draw is
/// reproducible from the id.
pub(crate) fn sample_draw(id: &str) -> f64 {
    let digest = countersign_core::audit::sha256_hex(id.as_bytes());
    let bits = u64::from_str_radix(&digest[..16], 16).unwrap_or(0) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// Unpadded base64url.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = new_id(DateTime::from_timestamp_millis(1_000).unwrap());
        let b = new_id(DateTime::from_timestamp_millis(2_000).unwrap());
        assert_eq!(a.len(), 26);
        assert!(a < b);
    }

    #[test]
    fn base64url_matches_rfc4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn sample_draws_are_fractions_fixed_by_the_id() {
        for id in ["x", "01J0000000000000000000000", ""] {
            let draw = sample_draw(id);
            assert!((0.0..1.0).contains(&draw), "{id}: {draw}");
            assert_eq!(draw, sample_draw(id));
        }
        assert_ne!(sample_draw("a"), sample_draw("b"));
    }
}
