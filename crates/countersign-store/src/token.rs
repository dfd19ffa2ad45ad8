//! API tokens: `cs_` + 32 random bytes in base64url. Only the SHA-256 of a token is stored;
//! a presented token is hashed and looked up by that hash, and the stored hash is compared
//! again in constant time before it counts.

use std::fmt;

use chrono::{DateTime, Utc};
use countersign_core::name::Name;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids;

/// The prefix of every token (it makes leaked tokens easy to find by secret scanners).
pub const TOKEN_PREFIX: &str = "cs_";

countersign_core::vocabulary! {
    /// What a token may do (SPEC section 3).
    pub enum Role {
        /// Submits actions, reads its own, cancels them, reports outcomes.
        Agent = "agent",
        /// Reads and decides on actions, reviews.
        Reviewer = "reviewer",
        /// Everything, including tokens.
        Admin = "admin",
    }
}

impl Role {
    /// What a token of this role names: an agent, or a person (reviewers and admins).
    pub fn identity_kind(self) -> countersign_core::identity::Kind {
        use countersign_core::identity::Kind;
        match self {
            Role::Agent => Kind::Agent,
            Role::Reviewer | Role::Admin => Kind::Person,
        }
    }
}

/// A stored token (without its secret, which is never stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    /// The identity the audit log records for whoever uses the token.
    pub name: Name,
    pub role: Role,
    pub groups: Vec<Name>,
    /// For agent tokens: the person responsible for the agent.
    pub owner: Option<Name>,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
}

/// A token to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub name: Name,
    pub role: Role,
    pub groups: Vec<Name>,
    /// For agent tokens: the person responsible. Left out for an agent that already has
    /// tokens, the agent's owner (see `countersign_core::identity`).
    pub owner: Option<Name>,
    /// Who creates it, for the audit log (an admin with their token, or `cli`).
    pub created_by: crate::Actor,
    pub at: DateTime<Utc>,
}

/// A freshly created token: the secret is shown once, here, and never again.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedToken {
    pub secret: String,
    pub token: Token,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("secret", &"<redacted>")
            .field("token", &self.token)
            .finish()
    }
}

/// A new random token secret.
pub(crate) fn new_secret() -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        ids::base64url(&ids::random_bytes::<32>())
    )
}

/// The stored form of a token secret.
pub(crate) fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of a stored hash with a computed one.
pub(crate) fn hashes_match(stored: &[u8], computed: &[u8; 32]) -> bool {
    stored.len() == computed.len() && bool::from(stored.ct_eq(computed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_and_long() {
        let secret = new_secret();
        assert!(secret.starts_with("cs_"));
        assert_eq!(secret.len(), 3 + 43);
        assert_ne!(secret, new_secret());
    }

    #[test]
    fn roles_round_trip() {
        for &role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn hash_comparison() {
        let h = secret_hash("cs_x");
        assert!(hashes_match(&h, &h));
        assert!(!hashes_match(&h[..31], &h));
        assert!(!hashes_match(&secret_hash("cs_y"), &h));
    }
}
