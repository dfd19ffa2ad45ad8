//! People who sign in to the reviewer web UI, and their sessions. A person's login and their
//! reviewer or admin tokens are one identity: the same folded [`Name`], the same groups (a
//! login's groups are also its tokens' groups), the same separation-of-duty rules; disabling
//! the person ends their sessions and revokes their tokens.
//!
//! The store keeps password hashes (Argon2id PHC strings made by the server, never the
//! password) and the SHA-256 of session secrets; hashing a password is slow on purpose, so
//! it happens outside the writer.

use std::fmt;

use chrono::{DateTime, Utc};
use countersign_core::name::Name;

use crate::Actor;

/// Audit entry kinds for changes to people and sessions.
pub mod people_kind {
    pub const USER_CREATED: &str = "user_created";
    pub const PASSWORD_CHANGED: &str = "user_password_changed";
    pub const USER_DISABLED: &str = "user_disabled";
    pub const SIGNED_IN: &str = "signed_in";
    pub const SIGNED_OUT: &str = "signed_out";
}

/// A person with a web login.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: Name,
    pub groups: Vec<Name>,
    pub admin: bool,
    /// The Argon2id hash of the password, as a PHC string.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
    pub disabled: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("groups", &self.groups)
            .field("admin", &self.admin)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("password_changed_at", &self.password_changed_at)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A person to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: Name,
    pub groups: Vec<Name>,
    pub admin: bool,
    pub password_hash: String,
    /// Who creates it, for the audit log.
    pub created_by: Actor,
    pub at: DateTime<Utc>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("groups", &self.groups)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// A web session (without its secret, which is never stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// A public handle, recorded in the audit log next to the person's name.
    pub id: String,
    pub name: Name,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// When the person last typed their password in this session.
    pub authenticated_at: DateTime<Utc>,
    /// Signed out, or revoked by a password change or by disabling the person.
    pub ended: bool,
}

impl Session {
    /// The actor a signed-in person acts as: their name and groups, their admin flag, and
    /// `web:SESSION` where tokens put their id.
    pub fn actor(&self, user: &User) -> Actor {
        Actor {
            name: user.name.clone(),
            groups: user.groups.clone(),
            token_id: Some(format!("web:{}", self.id)),
            admin: user.admin,
        }
    }
}

/// A session and the person it belongs to, as a cookie's secret finds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub session: Session,
    pub user: User,
}

/// A new session, started by a sign-in whose password the server verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    pub name: Name,
    pub at: DateTime<Utc>,
    /// The address the sign-in came from, for the audit log.
    pub address: Option<String>,
}

/// A started session: the secret goes into the cookie, once, and is never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StartedSession {
    pub secret: String,
    pub session: Session,
}

impl fmt::Debug for StartedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartedSession")
            .field("secret", &"<redacted>")
            .field("session", &self.session)
            .finish()
    }
}
