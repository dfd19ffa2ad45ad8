//! Slack's request signature (`v0`): `X-Slack-Signature: v0=HEX` where HEX is the
//! HMAC-SHA256, keyed with the app's signing secret, of `v0:TIMESTAMP:BODY`, and
//! `X-Slack-Request-Timestamp` within five minutes of now. Anything else is refused before
//! the body is even parsed: a click counts only if Slack vouches for who clicked.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now, either way (Slack's own rule).
pub const WINDOW_SECONDS: i64 = 5 * 60;

/// Why a request is not Slack's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "missing X-Slack-Request-Timestamp or X-Slack-Signature header: this endpoint takes only requests signed by Slack"
    )]
    Missing,
    #[error("the X-Slack-Request-Timestamp header is not a unix time")]
    BadTimestamp,
    #[error(
        "the request is more than 5 minutes old (or from the future): refused as a possible replay"
    )]
    Stale,
    #[error(
        "the X-Slack-Signature does not match the request: not signed with this app's signing secret"
    )]
    Mismatch,
}

/// The signature Slack would send for `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let bytes = mac(secret, timestamp, body).finalize().into_bytes();
    let mut hex = String::with_capacity(67);
    hex.push_str("v0=");
    for byte in bytes {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Checks a request: the timestamp within the window of `now` (unix seconds), and the
/// signature, compared in constant time.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - at).abs() > WINDOW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let hex = signature
        .strip_prefix("v0=")
        .ok_or(SignatureError::Mismatch)?;
    let bytes = decode_hex(hex).ok_or(SignatureError::Mismatch)?;
    mac(secret, timestamp.trim(), body)
        .verify_slice(&bytes)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Slack's documentation ("Verifying requests from Slack").
    #[test]
    fn slacks_example() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(secret, "1531420618", body), expected);
        let now = 1531420618 + 10;
        assert_eq!(
            verify(secret, Some("1531420618"), Some(expected), body, now),
            Ok(())
        );
        let cases: &[(Option<&str>, Option<&str>, i64, SignatureError)] = &[
            (None, Some(expected), now, SignatureError::Missing),
            (Some("1531420618"), None, now, SignatureError::Missing),
            (
                Some("yesterday"),
                Some(expected),
                now,
                SignatureError::BadTimestamp,
            ),
            (
                Some("1531420618"),
                Some(expected),
                now + 301,
                SignatureError::Stale,
            ),
            (
                Some("1531420618"),
                Some(expected),
                1531420618 - 301,
                SignatureError::Stale,
            ),
            (
                Some("1531420618"),
                Some("v0=00"),
                now,
                SignatureError::Mismatch,
            ),
            (
                Some("1531420618"),
                Some("v1=a2114d"),
                now,
                SignatureError::Mismatch,
            ),
            (
                Some("1531420618"),
                Some("v0=zz"),
                now,
                SignatureError::Mismatch,
            ),
            (
                Some("1531420619"),
                Some(expected),
                now,
                SignatureError::Mismatch,
            ),
        ];
        for (timestamp, signature, now, error) in cases {
            assert_eq!(
                verify(secret, *timestamp, *signature, body, *now),
                Err(error.clone()),
                "{timestamp:?} {signature:?}"
            );
        }
        assert_eq!(
            verify(
                "another secret",
                Some("1531420618"),
                Some(expected),
                body,
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
