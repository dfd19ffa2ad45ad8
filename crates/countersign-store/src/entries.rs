//! What every backend writes the same way: the audit entries' bodies, the first answer an
//! idempotency row keeps, and the record a submission creates. `audit verify` re-derives an
//! action's state from these bodies (`countersign_core::audit::replay`), so a backend that
//! wrote them differently would fail verification; keeping them in one place keeps the
//! backends' logs interchangeable.

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::{Decided, FirstAnswer, Gate, NewGate};
use countersign_core::name::Name;
use countersign_core::sla::SlaStep;
use countersign_core::{Status, Tier};
use serde_json::{Value, json};

use crate::audit_log::{ACTOR_TOKEN_FIELD, SYSTEM_ACTOR, kind};
use crate::error::StoreError;
use crate::grants::{GrantRecord, NewGrant, grant_kind};
use crate::ids;
use crate::record::{ActionRecord, Actor, NewAction, ReviewState};
use crate::sqlite::rows::{self, millis};

/// An entry's body with the token its actor presented next to the actor's name (entries by
/// `system` and `cli`, which present none, carry no such field).
pub(crate) fn with_token(mut body: Value, token_id: Option<&str>) -> String {
    if let (Value::Object(fields), Some(token_id)) = (&mut body, token_id) {
        fields.insert(ACTOR_TOKEN_FIELD.to_owned(), Value::from(token_id));
    }
    body.to_string()
}

/// What the idempotency row keeps of a first answer, as JSON.
pub(crate) fn first_answer_json(first: &FirstAnswer) -> Value {
    json!({
        "status": first.status.as_str(),
        "deadline": first.deadline.map(millis),
        "decided_at": first.decided_at.map(millis),
        "tier": first.tier.map(Tier::as_str),
        "approvals_required": first.approvals_required,
        "approvers": first.approvers.as_ref().map(rows::approvers_value),
    })
}

/// The first answer as the idempotency row kept it (rows written by earlier versions kept
/// only status, deadline and decision time).
pub(crate) fn first_answer_from(response: &str) -> Result<FirstAnswer, StoreError> {
    let corrupt =
        |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("idempotency response: {e}"));
    let first: Value = serde_json::from_str(response).map_err(|e| corrupt(&e))?;
    let time = |key: &str| first[key].as_i64().map(rows::from_millis).transpose();
    Ok(FirstAnswer {
        status: first["status"]
            .as_str()
            .unwrap_or_default()
            .parse::<Status>()
            .map_err(|e| corrupt(&e))?,
        deadline: time("deadline")?,
        decided_at: time("decided_at")?,
        tier: first["tier"]
            .as_str()
            .map(str::parse::<Tier>)
            .transpose()
            .map_err(|e| corrupt(&e))?,
        approvals_required: first["approvals_required"]
            .as_u64()
            .map(u32::try_from)
            .transpose()
            .map_err(|e| corrupt(&e))?,
        approvers: match first.get("approvers") {
            None | Some(Value::Null) => None,
            Some(value) => Some(rows::approvers_from_value(value.clone())?),
        },
    })
}

/// The record a submission creates: its lifecycle is the core's [`Gate::new`].
pub(crate) fn new_record(
    new: NewAction,
    grant: Option<&GrantRecord>,
) -> Result<ActionRecord, StoreError> {
    let id = ids::new_id(new.at);
    let agent = rows::name(new.proposal.agent.as_str(), "agent")?;
    let gate = Gate::new(NewGate {
        action: new.proposal.action.clone(),
        agent,
        owner: new.owner,
        args: new.proposal.args,
        tier: new.tier,
        settings: &new.settings,
        at: new.at,
        sample_draw: ids::sample_draw(&id),
        granted: grant.is_some(),
    });
    let reason = match grant {
        Some(grant) => format!(
            "allowed without asking by grant {} (given by {}{}, until {}); the policy alone would have asked: {}",
            grant.id,
            grant.granted_by,
            match grant.max_uses {
                Some(max) => format!(", use {} of {max}", grant.uses),
                None => String::new(),
            },
            grant
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            new.reason
        ),
        None => new.reason,
    };
    Ok(ActionRecord {
        gate,
        rule: new.rule,
        reason,
        reasoning: new.proposal.reasoning,
        context: new.proposal.context,
        confidence: new.proposal.confidence.map(|c| c.value()),
        hints: new.proposal.hints,
        idempotency_key: new.idempotency.map(|i| i.key),
        policy_hash: new.policy_hash,
        review_sample: new.settings.review_sample,
        created_at: new.at,
        grant: grant.map(|g| g.id.clone()),
        version: 1,
        id,
    })
}

/// One entry to append: what happened, who did it, and its body.
pub(crate) struct Draft<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub body: String,
}

/// The entries of a new action: what was submitted (by the agent, with its token), how the
/// policy classified it, and, when a grant let it run, the grant's use (every use is an
/// entry naming the grant).
pub(crate) fn submission<'a>(
    record: &'a ActionRecord,
    token_id: Option<&str>,
    grant: Option<&GrantRecord>,
) -> Vec<Draft<'a>> {
    let gate = &record.gate;
    let submitted = json!({
        "action": gate.action.as_str(),
        "args": gate.args,
        "reasoning": record.reasoning,
        "context": record.context,
        "confidence": record.confidence,
        "hints": record.hints,
        "idempotency_key": record.idempotency_key,
        "owner": gate.owner.as_ref().map(Name::as_str),
    });
    let classified = json!({
        "tier": gate.tier.as_str(),
        "status": gate.status.as_str(),
        "rule": record.rule,
        "reason": record.reason,
        "policy_hash": record.policy_hash,
        "approvers": rows::approvers_value(&gate.approvers),
        "approvals_required": gate.approvals_required,
        "deadline": gate.deadline.map(millis),
        "on_timeout": gate.timeout.as_ref().map(|t| t.on_timeout.as_str()),
        "escalate_to": gate.timeout.as_ref().map(|t| rows::names(&t.escalate_to)),
        "escalation_sla": gate.timeout.as_ref().map(|t| t.escalation_sla.seconds()),
        "review_sampled": gate.review == ReviewState::Open,
        "review_sample": record.review_sample,
        "grant": record.grant,
    });
    let mut drafts = vec![
        Draft {
            kind: kind::SUBMITTED,
            actor: gate.agent.as_str(),
            body: with_token(submitted, token_id),
        },
        Draft {
            kind: kind::CLASSIFIED,
            actor: SYSTEM_ACTOR,
            body: classified.to_string(),
        },
    ];
    if let Some(grant) = grant {
        drafts.push(Draft {
            kind: grant_kind::GRANT_USED,
            actor: SYSTEM_ACTOR,
            body: json!({
                "grant_id": grant.id,
                "granted_by": grant.granted_by.as_str(),
                "uses": grant.uses,
                "max_uses": grant.max_uses,
                "expires_at": millis(grant.expires_at),
            })
            .to_string(),
        });
    }
    drafts
}

/// The body of a decision's entry: the verdict, the status after it, and for a `modify`
/// both classifications and what the action needs from now on.
pub(crate) fn decision_body(before: &Gate, after: &Gate, decided: &Decided) -> Value {
    let mut body = json!({
        "verdict": decided.decision.verdict.as_str(),
        "args": decided.decision.args,
        "reason": decided.decision.reason,
        "status": after.status.as_str(),
    });
    if let Some(reclassified) = &decided.reclassified {
        let requirement = |gate: &Gate| {
            json!({
                "tier": gate.tier.as_str(),
                "approvers": rows::approvers_value(&gate.approvers),
                "approvals_required": gate.approvals_required,
            })
        };
        // What the timeout plan is from now on (a modify never loosens it).
        let timeout = after.timeout.as_ref();
        let mut now_required = requirement(after);
        now_required["on_timeout"] = json!(timeout.map(|t| t.on_timeout.as_str()));
        now_required["escalate_to"] = json!(timeout.map(|t| rows::names(&t.escalate_to)));
        now_required["escalation_sla"] = json!(timeout.map(|t| t.escalation_sla.seconds()));
        body["classification"] = json!({
            "before": requirement(before),
            "modified_args": {
                "tier": reclassified.tier.as_str(),
                "rule": reclassified.rule,
                "reason": reclassified.reason,
                "approvers": rows::approvers_value(&reclassified.settings.approvers),
                "approvals_required": reclassified.settings.approvals_required,
            },
            "now_required": now_required,
        });
    }
    body
}

/// The kind and body of an SLA step's entry; `missed` is the deadline it acts on.
pub(crate) fn sla_entry(step: &SlaStep, missed: Option<DateTime<Utc>>) -> (&'static str, Value) {
    let missed = missed.map(millis);
    let (kind, mut body) = match step {
        SlaStep::Escalate { groups, deadline } => (
            kind::ESCALATED,
            json!({"groups": rows::names(groups), "missed_deadline": missed, "deadline": millis(*deadline)}),
        ),
        SlaStep::Expire => (kind::EXPIRED, json!({"missed_deadline": missed})),
        SlaStep::AutoApprove => (kind::AUTO_APPROVED, json!({"missed_deadline": missed})),
    };
    // Every entry that moves an action says where to: verification re-derives the row.
    body["status"] = json!(step.status().as_str());
    (kind, body)
}

/// The body of a cancellation's entry.
pub(crate) fn cancel_body() -> Value {
    json!({"status": Status::Cancelled.as_str()})
}

/// The grant a [`NewGrant`] stores: no use yet, the giver's groups and role kept.
pub(crate) fn new_grant(new: NewGrant) -> (GrantRecord, Actor) {
    let record = GrantRecord {
        id: ids::new_id(new.at),
        agent: new.agent,
        actions: new.actions.as_str().to_owned(),
        condition: new.condition,
        expires_at: new.expires_at,
        max_uses: new.max_uses,
        uses: 0,
        granted_by: new.granted_by.name.clone(),
        granted_by_groups: new.granted_by.groups.clone(),
        granted_by_admin: new.granted_by.admin,
        reason: new.reason,
        created_at: new.at,
        revoked_at: None,
        revoked_by: None,
    };
    (record, new.granted_by)
}

/// The body of a `grant_created` entry.
pub(crate) fn grant_created_body(record: &GrantRecord, giver: &Actor) -> String {
    let body = json!({
        "grant_id": record.id,
        "agent": record.agent.as_str(),
        "actions": record.actions,
        "when": record.condition,
        "expires_at": millis(record.expires_at),
        "max_uses": record.max_uses,
        "groups": rows::names(&record.granted_by_groups),
        "admin": record.granted_by_admin,
        "reason": record.reason,
    });
    with_token(body, giver.token_id.as_deref())
}

/// The body of a `grant_revoked` entry.
pub(crate) fn grant_revoked_body(record: &GrantRecord, actor: &Actor) -> String {
    let body = json!({"grant_id": record.id, "agent": record.agent.as_str()});
    with_token(body, actor.token_id.as_deref())
}
