//! Fresh identifiers and secrets: time-ordered action and token ids (ULIDs), random bytes
//! for token secrets, and the review-sample draw derived from an id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ulid::Ulid;

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator failing is not recoverable in any useful way; falling back to a
    // weaker source would be worse than stopping.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// A new id: a ULID (48 bits of milliseconds, then 80 random bits) in lowercase Crockford
/// base32, 26 characters. Ids sort by creation time, which keeps index inserts local and
/// lets listings page by id. Lowercase because every id written before ULIDs were adopted
/// is: an uppercase id would sort before all of them, whatever its time.
pub(crate) fn new_id(now: DateTime<Utc>) -> String {
    id_from_parts(now, random_bytes::<10>())
}

/// The smallest id of an action created at `millis` or later: ids sort by creation time,
/// so the actions created in `[a, b)` are those whose ids are in `[floor_id(a),
/// floor_id(b))`, a range of the primary key.
pub(crate) fn floor_id(millis: i64) -> String {
    let millis = millis.clamp(0, (1 << 48) - 1) as u64;
    Ulid::from_parts(millis, 0).to_string().to_ascii_lowercase()
}

fn id_from_parts(at: DateTime<Utc>, random: [u8; 10]) -> String {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let random = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[6..].copy_from_slice(&random);
        b
    });
    Ulid::from_parts(millis, random)
        .to_string()
        .to_ascii_lowercase()
}

/// A number in `[0, 1)` fixed by the action `id` (its SHA-256): the core samples an
/// allowed `logged` action for post-hoc review when it falls below the rate, so the draw is
/// reproducible from the id.
pub(crate) fn sample_draw(id: &str) -> f64 {
    let digest = countersign_core::audit::sha256_hex(id.as_bytes());
    let bits = u64::from_str_radix(&digest[..16], 16).unwrap_or(0) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// Unpadded base64url (RFC 4648 section 5): the token secret's alphabet.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
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
        assert_eq!(a, a.to_ascii_lowercase());
    }

    #[test]
    fn floor_ids_bound_the_ids_of_their_millisecond() {
        let at = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap();
        let id = new_id(at);
        assert!(floor_id(at.timestamp_millis()) <= id);
        assert!(id < floor_id(at.timestamp_millis() + 1));
        assert_eq!(floor_id(-5), floor_id(0));
        assert_eq!(floor_id(0), "00000000000000000000000000");
    }

    #[test]
    fn ids_keep_the_layout_of_earlier_versions() {
        // What the hand-written encoder of earlier versions made of the same time and
        // random bytes: old and new ids are one format, and sort together by time.
        let at = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap();
        let random = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(id_from_parts(at, random), "01kav9ft00041061050r3gg28a");
    }

    #[test]
    fn base64url_matches_rfc4648() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (&[0xfb, 0xff], "-_8"),
        ];
        for (bytes, encoded) in cases {
            assert_eq!(base64url(bytes), *encoded);
        }
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

    #[test]
    fn the_sample_draw_depends_on_the_id_alone() {
        // Recorded draws: a change here would re-sample every stored action on replay.
        let cases: &[(&str, f64, bool)] = &[
            ("01kay7z0v8q3yj1m0c8w1a2b3c", 0.81, true),
            ("01kay7z0v8q3yj1m0c8w1a2b3c", 0.80, false),
            ("01kay7z0v8q3yj1m0c8w1a2b3d", 0.67, true),
            ("01kay7z0v8q3yj1m0c8w1a2b3d", 0.66, false),
        ];
        for (id, rate, drawn) in cases {
            assert_eq!(sample_draw(id) < *rate, *drawn, "{id}");
        }
    }
}
