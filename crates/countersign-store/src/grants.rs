//! Grants as the store keeps them: what a reviewer allowed an agent to do without asking,
//! until when, how many times, and how many of those uses are spent. The rule of what a
//! grant covers is the core's (`countersign_core::grant`); the store counts uses inside its
//! write transaction.

use chrono::{DateTime, Utc};
use countersign_core::glob::Glob;
use countersign_core::grant::Grant;
use countersign_core::name::Name;
use countersign_core::policy::Condition;

use crate::Actor;

/// The audit entry kinds of grants.
pub mod grant_kind {
    pub const GRANT_CREATED: &str = "grant_created";
    pub const GRANT_REVOKED: &str = "grant_revoked";
    pub const GRANT_USED: &str = "grant_used";
}

/// A stored grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub agent: Name,
    /// The action pattern, as given.
    pub actions: String,
    /// The CEL condition, as given.
    pub condition: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub granted_by: Name,
    pub granted_by_groups: Vec<Name>,
    pub granted_by_admin: bool,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Name>,
}

impl GrantRecord {
    /// The grant as the core judges it (pattern and condition compiled). `None` if either no
    /// longer compiles, which only an edited file or a changed CEL library can cause: such a
    /// grant covers nothing.
    pub fn to_grant(&self) -> Option<Grant> {
        let actions = Glob::parse(
            &self.actions,
            countersign_core::action::is_action_name_char,
            countersign_core::action::ACTION_NAME_CHARS,
        )
        .ok()?;
        let when = match &self.condition {
            Some(source) => Some(Condition::compile(source).ok()?),
            None => None,
        };
        Some(Grant {
            id: self.id.clone(),
            agent: self.agent.clone(),
            actions,
            when,
            expires_at: self.expires_at,
            max_uses: self.max_uses,
            uses: self.uses,
            granted_by: self.granted_by.clone(),
            granted_by_groups: self.granted_by_groups.clone(),
            granted_by_admin: self.granted_by_admin,
            reason: self.reason.clone(),
            created_at: self.created_at,
            revoked: self.revoked_at.is_some(),
        })
    }
}

/// A grant to create (checked by the caller against the policy and the giver's rights).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewGrant {
    pub agent: Name,
    pub actions: Glob,
    /// A CEL condition that compiled.
    pub condition: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub reason: Option<String>,
    /// Who gives it: their name, groups and role are kept with the grant.
    pub granted_by: Actor,
    pub at: DateTime<Utc>,
}

/// Which grants to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantQuery {
    /// Only this agent's.
    pub agent: Option<Name>,
    /// Only those live at this time (not revoked, not expired, uses left).
    pub live_at: Option<DateTime<Utc>>,
}
