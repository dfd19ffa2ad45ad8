//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): every webhook and
//! callback carries `webhook-id` (the event's stable id), `webhook-timestamp` (unix
//! seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with
//! the secret's bytes), so that a receiver verifies it with any Standard Webhooks library,
//! refuses old timestamps, and de-duplicates retries on the id.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix Standard Webhooks secrets carry.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing key: the bytes a `whsec_...` secret encodes.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

impl WebhookKey {
    /// Parses `whsec_` + base64 of 24 to 64 random bytes (the specification's range).
    pub fn parse(secret: &str) -> Result<WebhookKey, String> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("expected a Standard Webhooks secret starting with {SECRET_PREFIX:?}")
        })?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| format!("the part after {SECRET_PREFIX:?} must be base64"))?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "the secret must encode 24 to 64 bytes, found {}",
                bytes.len()
            ));
        }
        Ok(WebhookKey(bytes))
    }

    /// The `webhook-signature` header for a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    /// Whether one of the space-separated signatures in `header` is this key's for the
    /// message (compared in constant time). The caller checks the timestamp's age.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|candidate| {
            let Some(encoded) = candidate.strip_prefix("v1,") else {
                return false;
            };
            let Ok(signature) = BASE64.decode(encoded) else {
                return false;
            };
            let mut mac = self.mac();
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn the_specifications_example() {
        let key = WebhookKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(key.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bm90IHRoaXM= {signature}")
        ));
        assert!(!key.verify("msg_other", 1614265330, body, &signature));
        assert!(!key.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, &signature));
    }

    #[test]
    fn secrets() {
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(WebhookKey::parse(bad).is_err(), "{bad}");
        }
    }
}
