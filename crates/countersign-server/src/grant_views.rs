//! The wire shapes of grants: `POST /v1/grants`, the grant as listed and shown, and what a
//! new grant reaches.

use chrono::{DateTime, Utc};
use countersign_core::grant::Scope;
use countersign_store::GrantRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/grants`: let an agent run matching actions without asking, for a while.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "agent": "support-bot",
    "actions": "refund.create",
    "when": "args.amount <= 50",
    "duration": "1h",
    "max_uses": 20,
    "reason": "order-sync outage: duplicate charges being refunded"
}))]
pub struct GrantBody {
    /// The agent it lets act (an agent with a token).
    #[schema(
        pattern = r"^[A-Za-z0-9._:/@-]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    pub agent: String,
    /// A pattern of action names: `refund.create`, `refund.*` (`*` any run, `?` one
    /// character).
    #[schema(
        pattern = r"^[A-Za-z0-9._:/*?-]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    pub actions: String,
    /// A CEL condition the request must also meet, like a rule's `when`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub when: Option<String>,
    /// How long it runs: `30m`, `1h`, `7d`; at most `30d` (a zero or longer duration is
    /// refused with `422 invalid_duration`, which the pattern cannot say).
    #[schema(pattern = r"^[0-9]{1,7}[smhd]$")]
    pub duration: String,
    /// At most this many uses (default: until it expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_uses: Option<u32>,
    /// Why, for the audit log and the other reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub reason: Option<String>,
}

/// A grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub agent: String,
    pub actions: String,
    pub when: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    /// `true` while it can still be used: not revoked, not expired, uses left.
    pub live: bool,
    pub granted_by: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

impl GrantView {
    pub fn new(record: &GrantRecord, now: DateTime<Utc>) -> GrantView {
        GrantView {
            id: record.id.clone(),
            agent: record.agent.to_string(),
            actions: record.actions.clone(),
            when: record.condition.clone(),
            expires_at: record.expires_at,
            max_uses: record.max_uses,
            uses: record.uses,
            live: record.revoked_at.is_none()
                && now < record.expires_at
                && record.max_uses.is_none_or(|max| record.uses < max),
            granted_by: record.granted_by.to_string(),
            reason: record.reason.clone(),
            created_at: record.created_at,
            revoked_at: record.revoked_at,
            revoked_by: record.revoked_by.as_ref().map(ToString::to_string),
        }
    }
}

/// A rule a new grant overlaps but never covers, and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExcludedRuleView {
    /// The rule's name, or `defaults`.
    pub rule: String,
    pub why: String,
}

/// A new grant, with what it reaches under the policy in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedGrantView {
    #[serde(flatten)]
    pub grant: GrantView,
    /// The `approve` rules (or `defaults`) whose actions it lets run. Each use is checked
    /// again against the policy in force then.
    pub covers: Vec<String>,
    /// Rules the pattern overlaps whose actions it never lets run (`confirm`, `deny`, several
    /// approvals, or not reviewed anyway).
    pub excluded: Vec<ExcludedRuleView>,
}

impl CreatedGrantView {
    pub fn new(record: &GrantRecord, scope: Scope, now: DateTime<Utc>) -> CreatedGrantView {
        CreatedGrantView {
            grant: GrantView::new(record, now),
            covers: scope.covers,
            excluded: scope
                .excluded
                .into_iter()
                .map(|(rule, why)| ExcludedRuleView { rule, why })
                .collect(),
        }
    }
}

/// Grants, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantList {
    pub items: Vec<GrantView>,
}
