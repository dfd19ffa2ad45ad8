//! The wire shapes of the API: request bodies as callers send them and the objects the API
//! answers with. Conversion from and to the domain types is explicit and lives here, so
//! that no JSON detail leaks into the core or the store.

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::Decision;
use countersign_store::{ActionRecord, AuditEntry, Outcome, ReviewState, Token};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

pub use crate::error::{ErrorBody, ErrorDetail};
pub use crate::vocabulary::{
    OutcomeStatusView, ReviewQueue, ReviewStateView, ReviewVerdictView, RoleView, StatusView,
    TierView, VerdictView,
};

/// `POST /v1/actions`: a proposed action.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "action": "refund.create",
    "args": {"amount": 2500, "currency": "USD", "order": "A-1"},
    "reasoning": "Customer was charged twice for order A-1",
    "context": {"customer": {"id": "c_9", "tier": "gold"}},
    "confidence": 0.62,
    "hints": {"destructive": false, "open_world": true},
    "idempotency_key": "run-77/step-4"
}))]
pub struct SubmitBody {
    /// Letters, digits and `._-:/`, at most 200 characters, e.g. `refund.create`.
    #[schema(
        pattern = r"^[A-Za-z0-9._:/-]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    pub action: String,
    /// The arguments the agent wants to run the action with; default `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub args: Option<Map<String, Value>>,
    /// Why the agent wants to do it, for the reviewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Anything the reviewer should see alongside (customer, ticket...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The agent's confidence, 0 to 1. Below the policy's minimum, the action needs approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "hints_object"
    )]
    pub hints: Option<HintsBody>,
    /// The same as the `Idempotency-Key` header: 1 to 255 printable ASCII characters. When
    /// both are sent they must be the same key (`422 invalid_idempotency_key`). A key used
    /// before by the same agent with another body answers `422 idempotency_mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[\x20-\x7e]{1,255}$", min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// What the caller says about the tool, as MCP tool annotations have it.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HintsBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

/// `hints` from a JSON object only: serde would also read the struct from an array, by
/// position, so `[true]` would claim `read_only`.
pub(crate) fn hints_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<HintsBody>, D::Error> {
    let Some(map) = Option::<Map<String, Value>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    HintsBody::deserialize(Value::Object(map))
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl From<HintsBody> for countersign_core::Hints {
    fn from(h: HintsBody) -> Self {
        countersign_core::Hints {
            read_only: h.read_only,
            destructive: h.destructive,
            idempotent: h.idempotent,
            open_world: h.open_world,
        }
    }
}

/// `POST /v1/actions/{id}/decisions`. Its schema is written out below: which fields a
/// verdict takes (`args` with `modify` only, and then required) is one rule the derived
/// schema could not state.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub verdict: VerdictView,
    /// With `modify` only: the arguments approved instead of the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// Why; shown to the agent and kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The action name, re-typed: required to approve a `confirm`-tier action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

impl PartialSchema for DecisionBody {
    fn schema() -> RefOr<Schema> {
        let shape = |verdict: &str, args: Value, required: &[&str]| {
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": {
                    "verdict": {"type": "string", "enum": [verdict]},
                    "args": args,
                    "reason": {"type": ["string", "null"], "description": "Why; shown to the agent and kept in the audit log."},
                    "confirm": {"type": ["string", "null"], "description": "The action name, re-typed: required to approve a `confirm`-tier action."},
                },
            })
        };
        let no_args = json!({"type": "null", "description": "Only `modify` takes arguments."});
        let new_args = json!({"type": "object", "description": "The arguments approved instead of the agent's."});
        schema_from_json(json!({
            "description": "A reviewer's verdict: `approve` or `reject`, or `modify` with the arguments approved instead.",
            "oneOf": [
                shape("approve", no_args.clone(), &["verdict"]),
                shape("reject", no_args, &["verdict"]),
                shape("modify", new_args, &["verdict", "args"]),
            ],
            "examples": [
                {"verdict": "approve", "reason": "checked the order"},
                {"verdict": "modify", "args": {"amount": 100}, "reason": "refund the overcharge only"},
            ],
        }))
    }
}

impl ToSchema for DecisionBody {}

/// A schema written as JSON. The JSON is this crate's own constant text, so a failure is a
/// bug that the OpenAPI test finds at once.
fn schema_from_json(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).expect("a hand-written schema that utoipa reads")
}

/// `POST /v1/actions/{id}/outcome`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "succeeded", "detail": {"refund": "r_1"}}))]
pub struct OutcomeBody {
    pub status: OutcomeStatusView,
    /// Anything the agent wants to record about the run.
    #[serde(default)]
    pub detail: Option<Value>,
}

/// `POST /v1/actions/{id}/review`: a post-hoc review of an allowed `logged` action.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"verdict": "flag", "note": "this refund needed a second look"}))]
pub struct ReviewBody {
    pub verdict: ReviewVerdictView,
    #[serde(default)]
    pub note: Option<String>,
}

/// The characters of a name (a token's, an owner's, a group's), 1 to 200 of them.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9._:/@-]{1,200}$";

/// A name a token may take: [`NAME_PATTERN`] less the reserved names `system` and `cli`, in
/// any case.
pub const IDENTITY_PATTERN: &str =
    r"^(?![Ss][Yy][Ss][Tt][Ee][Mm]$|[Cc][Ll][Ii]$)[A-Za-z0-9._:/@-]{1,200}$";

/// `POST /v1/tokens`. The role stays text here and is parsed with the rest of the request
/// by `countersign_store::NewToken::parse` (an unknown role answers `invalid_role`). Its
/// schema is written out below: only agent tokens take an `owner`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// `agent`, `reviewer` or `admin`.
    pub role: String,
    /// The identity the audit log records.
    pub name: String,
    /// Groups (stored in lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// For agent tokens only: the person responsible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl PartialSchema for TokenBody {
    fn schema() -> RefOr<Schema> {
        let shape = |roles: &[&str], owner: bool| {
            let mut properties = json!({
                "role": {"type": "string", "enum": roles},
                "name": {
                    "type": "string", "pattern": IDENTITY_PATTERN, "minLength": 1, "maxLength": 200,
                    "description": "The identity the audit log records: letters, digits and `._-:/@`, stored in lowercase (names compare without regard to case). `system` and `cli` are reserved.",
                },
                "groups": {
                    "type": "array",
                    "items": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 200},
                    "description": "Groups the token's holder is in (stored in lowercase; a group named twice is kept once).",
                },
            });
            if owner {
                properties["owner"] = json!({
                    "type": ["string", "null"], "pattern": IDENTITY_PATTERN, "minLength": 1, "maxLength": 200,
                    "description": "The person responsible for the agent, who may never approve or review its actions; not the agent itself (`422 invalid_owner`). Left out for an agent that has an owner, the token gets that owner; naming another is refused.",
                });
            }
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["role", "name"],
                "properties": properties,
            })
        };
        schema_from_json(json!({
            "description": "A token to create. Only agent tokens have an owner.",
            "oneOf": [shape(&["agent"], true), shape(&["reviewer", "admin"], false)],
            "examples": [
                {"role": "agent", "name": "support-bot", "owner": "olivia"},
                {"role": "reviewer", "name": "rita", "groups": ["support-leads"]},
            ],
        }))
    }
}

impl ToSchema for TokenBody {}

/// One Server-Sent Event of `GET /v1/actions/{id}/events` (documentation only: the stream
/// is written by axum's SSE support).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusEvent {
    /// Always `status`.
    pub event: String,
    /// The action's version: it grows with every change.
    pub id: String,
    /// The action object, as JSON text.
    pub data: String,
}

/// The action object: every response about an action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionView {
    pub id: String,
    pub action: String,
    /// The name of the agent token that submitted it.
    pub agent: String,
    pub status: StatusView,
    pub tier: TierView,
    /// The policy rule that decided; `null`: the policy's defaults.
    pub rule: Option<String>,
    pub reason: String,
    /// The arguments to run with (a reviewer's after `modify`).
    #[schema(value_type = Object)]
    pub args: Map<String, Value>,
    /// The agent's own arguments, after a `modify` replaced them.
    #[schema(value_type = Option<Object>)]
    pub original_args: Option<Map<String, Value>>,
    pub approvals_required: u32,
    pub decisions: Vec<DecisionView>,
    pub deadline: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reasoning: Option<String>,
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    pub confidence: Option<f64>,
    /// Groups whose members may decide (empty: any reviewer, unless `admins_only`),
    /// escalation groups included.
    pub approvers: Vec<String>,
    /// `true` when the rules that might govern the action name approver groups that no one
    /// group satisfies: only admins may decide.
    pub admins_only: bool,
    /// SHA-256 of the policy version that classified the action.
    pub policy_hash: String,
    /// Post-hoc review: `null` when not sampled.
    pub review: Option<ReviewStateView>,
    pub outcome: Option<OutcomeView>,
    /// The grant that let the action run without asking (`null`: none did; the policy's
    /// classification stands).
    pub grant: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub reviewer: String,
    pub verdict: VerdictView,
    #[schema(value_type = Option<Object>)]
    pub args: Option<Map<String, Value>>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutcomeView {
    pub status: OutcomeStatusView,
    pub detail: Option<Value>,
    pub at: DateTime<Utc>,
}

impl From<&Decision> for DecisionView {
    fn from(d: &Decision) -> Self {
        DecisionView {
            reviewer: d.reviewer.to_string(),
            verdict: d.verdict.into(),
            args: d.args.clone(),
            reason: d.reason.clone(),
            at: d.at,
        }
    }
}

impl From<&Outcome> for OutcomeView {
    fn from(o: &Outcome) -> Self {
        OutcomeView {
            status: o.status.into(),
            detail: o.detail.clone(),
            at: o.at,
        }
    }
}

impl From<&ActionRecord> for ActionView {
    fn from(r: &ActionRecord) -> Self {
        ActionView {
            id: r.id.clone(),
            action: r.gate.action.to_string(),
            agent: r.gate.agent.to_string(),
            status: r.gate.status.into(),
            tier: r.gate.tier.into(),
            rule: r.rule.clone(),
            reason: r.reason.clone(),
            args: r.gate.args.clone(),
            original_args: r.gate.original_args.clone(),
            approvals_required: r.gate.approvals_required,
            decisions: r.gate.decisions.iter().map(DecisionView::from).collect(),
            deadline: r.gate.deadline,
            created_at: r.created_at,
            decided_at: r.gate.decided_at,
            reasoning: r.reasoning.clone(),
            context: r.context.clone(),
            confidence: r.confidence,
            approvers: r
                .gate
                .deciders()
                .groups()
                .iter()
                .map(|g| g.to_string())
                .collect(),
            admins_only: r.gate.deciders().admins_only(),
            policy_hash: r.policy_hash.clone(),
            review: match &r.gate.review {
                ReviewState::NotSampled => None,
                ReviewState::Open => Some(ReviewStateView::Open),
                ReviewState::Reviewed(review) => Some(review.verdict.into()),
            },
            outcome: r.gate.outcome.as_ref().map(OutcomeView::from),
            grant: r.grant.clone(),
        }
    }
}

/// A page of actions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionPage {
    pub items: Vec<ActionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    /// Empty for entries not about an action.
    pub action_id: String,
    /// The entry's JSON body.
    pub body: Value,
    /// Hex SHA-256 of the previous entry.
    pub prev: String,
    /// Hex SHA-256 of this entry.
    pub hash: String,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        AuditEntryView {
            seq: e.seq,
            at: e.at,
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            action_id: e.action_id.clone(),
            body: e.body_json(),
            prev: e.prev.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryView>,
    /// Pass as `after` for the next page; `null` when this page was not full (neither
    /// `limit` entries nor the server's byte bound).
    pub next_after: Option<u64>,
}

pub use crate::audit_views::{CheckpointView, VerifyView};

/// A token as created: the secret is shown here once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedTokenView {
    /// The bearer secret. It is not stored and cannot be shown again.
    pub token: String,
    pub id: String,
    pub name: String,
    pub role: RoleView,
    pub groups: Vec<String>,
    pub owner: Option<String>,
}

impl CreatedTokenView {
    pub fn new(secret: String, token: &Token) -> CreatedTokenView {
        CreatedTokenView {
            token: secret,
            id: token.id.clone(),
            name: token.name.to_string(),
            role: token.role.into(),
            groups: token.groups.iter().map(|g| g.to_string()).collect(),
            owner: token.owner.as_ref().map(|o| o.to_string()),
        }
    }
}

/// A token as admins see it: never its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: RoleView,
    pub groups: Vec<String>,
    pub owner: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A revoked token authenticates nothing.
    pub revoked: bool,
}

impl From<&Token> for TokenView {
    fn from(token: &Token) -> TokenView {
        TokenView {
            id: token.id.clone(),
            name: token.name.to_string(),
            role: token.role.into(),
            groups: token.groups.iter().map(|g| g.to_string()).collect(),
            owner: token.owner.as_ref().map(|o| o.to_string()),
            created_at: token.created_at,
            revoked: token.revoked,
        }
    }
}

/// `GET /v1/tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
}
