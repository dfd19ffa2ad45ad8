//! Passwords: hashed with Argon2id (the `argon2` crate's default parameters, m=19 MiB, t=2,
//! p=1, ~25 ms a hash on these machines) into a PHC string with its own random salt, and
//! verified against one. Both are slow on purpose, so callers run them on the blocking pool.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest: hashing cost does not depend on it much, but a megabyte "password" is not
/// one.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password that may be set: long enough, not absurdly long, with no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    /// Checks a password someone chose.
    pub fn parse(text: &str) -> Result<NewPassword, String> {
        let chars = text.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!(
                "a password needs at least {MIN_PASSWORD_CHARS} characters; this one has {chars}"
            ));
        }
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "a password may have at most {MAX_PASSWORD_BYTES} bytes; this one has {}",
                text.len()
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("a password may not contain control characters (a stray newline?)".into());
        }
        Ok(NewPassword(text.to_owned()))
    }

    /// The password itself, to send to the server that hashes it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The Argon2id PHC string of this password, with a fresh random salt.
    pub fn hash(&self) -> Result<String, String> {
        hash(self.0.as_bytes())
    }
}

fn hash(password: &[u8]) -> Result<String, String> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Does `password` match the PHC string `hash`? A malformed hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES
        && Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
}

/// Spends the time a verification takes without anything to verify against, so that a
/// sign-in for an unknown or disabled name takes as long as one with a wrong password and
/// does not tell which names exist.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash(b"countersign-dummy-password").unwrap_or_default());
    let _ = verify(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_hashed_and_verified() {
        #[rustfmt::skip]
        let cases: &[(&str, Result<(), &str>)] = &[
            ("correct horse battery", Ok(())),
            ("short", Err("a password needs at least 10 characters; this one has 5")),
            ("ten chars!", Ok(())),
            ("line\nbreak in it", Err("a password may not contain control characters")),
        ];
        for (text, expected) in cases {
            match (NewPassword::parse(text), expected) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(start)) => assert!(e.starts_with(start), "{text:?}: {e}"),
                (found, _) => panic!("{text:?}: {found:?}"),
            }
        }
        let hash = NewPassword::parse("correct horse battery")
            .unwrap()
            .hash()
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify("correct horse battery", &hash));
        assert!(!verify("correct horse batterY", &hash));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(
            hash,
            NewPassword::parse("correct horse battery")
                .unwrap()
                .hash()
                .unwrap()
        );
    }
}
