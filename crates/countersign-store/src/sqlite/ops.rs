//! The write operations, each run by the writer inside its batch transaction (under its own
//! savepoint). Lifecycle rules come from `countersign_core`; this file only loads, applies
//! and stores, and records every change in the audit chain in the same transaction.

use chrono::{DateTime, Utc};
use countersign_core::lifecycle::{self, DecisionRequest, Reviewer, TimeoutPlan};
use countersign_core::sla::{self, SlaStep};
use countersign_core::{Approvers, Status, Tier};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::chain::{self, Head};
use super::rows::{self, ACTION_COLUMNS, millis, to_json};
use crate::audit_log::{ACTOR_TOKEN_FIELD, SYSTEM_ACTOR, kind};
use crate::error::StoreError;
use crate::ids;
use crate::record::{
    ActionRecord, Actor, Idempotency, NewAction, NewOutcome, NewReview, Outcome, Review,
    ReviewState, Submitted,
};

type Conn = Connection;

/// An entry's body with the token its actor presented next to the actor's name (entries by
/// `system` and `cli`, which present none, carry no such field).
pub(crate) fn with_token(mut body: Value, token_id: Option<&str>) -> String {
    if let (Value::Object(fields), Some(token_id)) = (&mut body, token_id) {
        fields.insert(ACTOR_TOKEN_FIELD.to_owned(), Value::from(token_id));
    }
    body.to_string()
}

pub(crate) fn load_action(conn: &Conn, id: &str) -> Result<ActionRecord, StoreError> {
    let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE id = ?");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([id])?;
    let row = rows
        .next()?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    rows::action_from_row(row)
}

/// Writes the fields that change after submission.
fn update_action(conn: &Conn, record: &ActionRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE actions SET tier = ?, status = ?, args = ?, original_args = ?, approvers = ?, \
         escalated_to = ?, escalated = ?, approvals_required = ?, decisions = ?, deadline = ?, \
         review_state = ?, review = ?, outcome = ?, decided_at = ?, version = ? WHERE id = ?",
    )?
    .execute(params![
        record.tier.as_str(),
        record.status.as_str(),
        to_json(&record.args),
        record.original_args.as_ref().map(to_json),
        to_json(&rows::approvers_value(&record.approvers)),
        to_json(&record.escalated_to),
        record.escalated,
        i64::from(record.approvals_required),
        rows::decisions_json(&record.decisions),
        record.deadline.map(millis),
        rows::review_state_column(&record.review),
        match &record.review {
            ReviewState::Reviewed(review) => Some(rows::review_json(review)),
            _ => None,
        },
        record.outcome.as_ref().map(rows::outcome_json),
        record.decided_at.map(millis),
        record.version as i64,
        &record.id,
    ])?;
    Ok(())
}

/// The first answer to a submission, rebuilt from the current record and what the
/// idempotency row kept of that answer.
pub(crate) fn first_answer(
    mut record: ActionRecord,
    response: &str,
) -> Result<ActionRecord, StoreError> {
    let first: Value = serde_json::from_str(response)
        .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
    record.status = first["status"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
    record.deadline = first["deadline"]
        .as_i64()
        .map(rows::from_millis)
        .transpose()?;
    record.decided_at = first["decided_at"]
        .as_i64()
        .map(rows::from_millis)
        .transpose()?;
    // A modify may have made the action stricter since (rows written before this was kept
    // have no such fields, and were never changed that way).
    if let Some(tier) = first["tier"].as_str() {
        record.tier = tier
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
    }
    if let Some(approvals) = first["approvals_required"].as_u64() {
        record.approvals_required = u32::try_from(approvals)
            .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
    }
    if let Some(approvers) = first.get("approvers") {
        record.approvers = rows::approvers_from_value(approvers.clone())?;
    }
    if let Some(original) = record.original_args.take() {
        record.args = original;
    }
    record.decisions.clear();
    record.escalated = false;
    record.escalated_to.clear();
    record.outcome = None;
    if record.review != ReviewState::NotSampled {
        record.review = ReviewState::Open;
    }
    record.version = 1;
    Ok(record)
}

/// Looks up an earlier submission under the same idempotency key.
pub(crate) fn find_replay(
    conn: &Conn,
    agent: &str,
    idempotency: &Idempotency,
) -> Result<Option<Submitted>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT body_hash, action_id, response FROM idempotency WHERE agent = ? AND key = ?",
        )?
        .query_row(params![agent, &idempotency.key], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    let Some((body_hash, action_id, response)) = row else {
        return Ok(None);
    };
    if body_hash != idempotency.body_hash {
        return Err(StoreError::IdempotencyMismatch {
            key: idempotency.key.clone(),
        });
    }
    let record = load_action(conn, &action_id)?;
    Ok(Some(Submitted {
        record: first_answer(record, &response)?,
        replayed: true,
    }))
}

/// The record a submission creates.
fn new_record(new: NewAction) -> ActionRecord {
    let id = ids::new_id(new.at);
    let status = new.tier.initial_status();
    let gated = new.tier.is_human_gated();
    let settings = new.settings;
    let sampled = new.tier == Tier::Logged
        && status == Status::Allowed
        && ids::sampled(&id, settings.review_sample);
    ActionRecord {
        action: new.proposal.action.as_str().to_owned(),
        agent: new.proposal.agent.as_str().to_owned(),
        owner: new.owner,
        status,
        tier: new.tier,
        rule: new.rule,
        reason: new.reason,
        args: new.proposal.args,
        original_args: None,
        reasoning: new.proposal.reasoning.clone(),
        context: new.proposal.context,
        confidence: new.proposal.confidence.map(|c| c.value()),
        hints: new.proposal.hints,
        idempotency_key: new.idempotency.map(|i| i.key),
        approvers: if gated {
            settings.approvers
        } else {
            Approvers::Anyone
        },
        escalated_to: Vec::new(),
        escalated: false,
        approvals_required: if gated {
            settings.approvals_required
        } else {
            0
        },
        decisions: Vec::new(),
        deadline: gated.then(|| new.at + settings.sla.as_chrono()),
        timeout: gated.then_some(TimeoutPlan {
            on_timeout: settings.on_timeout,
            escalate_to: settings.escalate_to,
            escalation_sla: settings.escalation_sla,
        }),
        policy_hash: new.policy_hash,
        review_sample: settings.review_sample,
        review: if sampled {
            ReviewState::Open
        } else {
            ReviewState::NotSampled
        },
        outcome: None,
        created_at: new.at,
        decided_at: status.is_final().then_some(new.at),
        version: 1,
        id,
    }
}

pub(crate) fn submit(
    conn: &Conn,
    head: &mut Head,
    new: NewAction,
) -> Result<(Submitted, Option<ActionRecord>), StoreError> {
    let agent = new.proposal.agent.as_str().to_owned();
    if let Some(idempotency) = &new.idempotency
        && let Some(replay) = find_replay(conn, &agent, idempotency)?
    {
        return Ok((replay, None));
    }
    let idempotency = new.idempotency.clone();
    let at = new.at;
    let token_id = new.token_id.clone();
    let record = new_record(new);
    let sql = format!(
        "INSERT INTO actions ({ACTION_COLUMNS}) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    conn.prepare_cached(&sql)?.execute(params![
        &record.id,
        &record.action,
        &record.agent,
        &record.owner,
        record.status.as_str(),
        record.tier.as_str(),
        &record.rule,
        &record.reason,
        to_json(&record.args),
        Option::<String>::None,
        &record.reasoning,
        to_json(&record.context),
        record.confidence,
        to_json(&record.hints),
        &record.idempotency_key,
        to_json(&rows::approvers_value(&record.approvers)),
        to_json(&record.escalated_to),
        record.escalated,
        i64::from(record.approvals_required),
        rows::decisions_json(&record.decisions),
        record.deadline.map(millis),
        record.timeout.as_ref().map(rows::timeout_json),
        &record.policy_hash,
        record.review_sample,
        rows::review_state_column(&record.review),
        Option::<String>::None,
        Option::<String>::None,
        millis(record.created_at),
        record.decided_at.map(millis),
        record.version as i64,
    ])?;
    if let Some(idempotency) = &idempotency {
        let response = json!({
            "status": record.status.as_str(),
            "deadline": record.deadline.map(millis),
            "decided_at": record.decided_at.map(millis),
            "tier": record.tier.as_str(),
            "approvals_required": record.approvals_required,
            "approvers": rows::approvers_value(&record.approvers),
        });
        conn.prepare_cached(
            "INSERT INTO idempotency (agent, key, body_hash, action_id, response, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            &record.agent,
            &idempotency.key,
            &idempotency.body_hash,
            &record.id,
            response.to_string(),
            millis(at),
        ])?;
    }
    let submitted = json!({
        "action": record.action,
        "args": record.args,
        "reasoning": record.reasoning,
        "context": record.context,
        "confidence": record.confidence,
        "hints": record.hints,
        "idempotency_key": record.idempotency_key,
        "owner": record.owner,
    });
    let classified = json!({
        "tier": record.tier.as_str(),
        "status": record.status.as_str(),
        "rule": record.rule,
        "reason": record.reason,
        "policy_hash": record.policy_hash,
        "approvers": rows::approvers_value(&record.approvers),
        "approvals_required": record.approvals_required,
        "deadline": record.deadline.map(millis),
        "on_timeout": record.timeout.as_ref().map(|t| t.on_timeout.as_str()),
        "escalate_to": record.timeout.as_ref().map(|t| &t.escalate_to),
        "escalation_sla": record.timeout.as_ref().map(|t| t.escalation_sla.seconds()),
        "review_sampled": record.review == ReviewState::Open,
        "review_sample": record.review_sample,
    });
    let drafts = vec![
        chain::Draft {
            kind: kind::SUBMITTED,
            actor: &record.agent,
            body: with_token(submitted, token_id.as_deref()),
        },
        chain::Draft {
            kind: kind::CLASSIFIED,
            actor: SYSTEM_ACTOR,
            body: classified.to_string(),
        },
    ];
    chain::append_all(conn, head, at, &record.id, drafts)?;
    let answer = Submitted {
        record: record.clone(),
        replayed: false,
    };
    Ok((answer, Some(record)))
}

pub(crate) fn decide(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    reviewer: &Actor,
    request: DecisionRequest,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    let mut record = load_action(conn, id)?;
    // An escalation that fell due and was not applied yet comes first: it moves the
    // deadline and adds deciders. Any other due step (expiry) makes the core refuse the
    // decision, and the SLA worker applies it.
    if let Some(SlaStep::Escalate { .. }) = sla::due(&record.gate(), now)
        && let Some(escalated) = apply_sla(conn, head, id, now)?
    {
        record = escalated;
    }
    let before = record.gate();
    let reclassified = request.reclassified.clone();
    let decided = lifecycle::decide(
        &before,
        &Reviewer {
            name: &reviewer.name,
            groups: &reviewer.groups,
            admin: reviewer.admin,
        },
        request,
        now,
    )?;
    let mut body = json!({
        "verdict": decided.decision.verdict.as_str(),
        "args": decided.decision.args,
        "reason": decided.decision.reason,
        "status": decided.gate.status.as_str(),
    });
    if let Some(reclassified) = reclassified {
        // Both classifications, and what the action needs from now on.
        let requirement = |tier: Tier, approvers: &Approvers, approvals: u32| {
            json!({
                "tier": tier.as_str(),
                "approvers": rows::approvers_value(approvers),
                "approvals_required": approvals,
            })
        };
        body["classification"] = json!({
            "before": requirement(before.tier, &before.approvers, before.approvals_required),
            "modified_args": {
                "tier": reclassified.tier.as_str(),
                "rule": reclassified.rule,
                "reason": reclassified.reason,
                "approvers": rows::approvers_value(&reclassified.settings.approvers),
                "approvals_required": reclassified.settings.approvals_required,
            },
            "now_required": requirement(
                decided.gate.tier,
                &decided.gate.approvers,
                decided.gate.approvals_required,
            ),
        });
    }
    record.apply_gate(decided.gate);
    record.decided_at = decided.decided_at;
    record.version += 1;
    update_action(conn, &record)?;
    chain::append(
        conn,
        head,
        now,
        kind::DECIDED,
        &reviewer.name,
        id,
        with_token(body, reviewer.token_id.as_deref()),
    )?;
    Ok(record)
}

pub(crate) fn cancel(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    let mut record = load_action(conn, id)?;
    record.status = lifecycle::cancel(&record.gate())?;
    record.decided_at = Some(now);
    record.version += 1;
    update_action(conn, &record)?;
    let body = json!({"status": record.status.as_str()});
    chain::append(
        conn,
        head,
        now,
        kind::CANCELLED,
        &actor.name,
        id,
        with_token(body, actor.token_id.as_deref()),
    )?;
    Ok(record)
}

pub(crate) fn record_outcome(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    actor: &Actor,
    outcome: NewOutcome,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    let mut record = load_action(conn, id)?;
    lifecycle::check_outcome(record.status)?;
    if record.outcome.is_some() {
        return Err(StoreError::OutcomeAlreadyRecorded);
    }
    let body = json!({"status": outcome.status.as_str(), "detail": outcome.detail});
    record.outcome = Some(Outcome {
        status: outcome.status,
        detail: outcome.detail,
        reported_by: actor.name.clone(),
        at: now,
    });
    record.version += 1;
    update_action(conn, &record)?;
    chain::append(
        conn,
        head,
        now,
        kind::OUTCOME,
        &actor.name,
        id,
        with_token(body, actor.token_id.as_deref()),
    )?;
    Ok(record)
}

pub(crate) fn apply_sla(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<ActionRecord>, StoreError> {
    let mut record = load_action(conn, id)?;
    let Some(step) = sla::due(&record.gate(), now) else {
        return Ok(None);
    };
    let missed = record.deadline.map(millis);
    let (kind, mut body) = match &step {
        SlaStep::Escalate { groups, deadline } => {
            for group in groups {
                if !record.escalated_to.contains(group) {
                    record.escalated_to.push(group.clone());
                }
            }
            record.escalated = true;
            record.deadline = Some(*deadline);
            (
                kind::ESCALATED,
                json!({"groups": groups, "missed_deadline": missed, "deadline": millis(*deadline)}),
            )
        }
        SlaStep::Expire => (kind::EXPIRED, json!({"missed_deadline": missed})),
        SlaStep::AutoApprove => (kind::AUTO_APPROVED, json!({"missed_deadline": missed})),
    };
    // Every entry that moves an action says where to: verification re-derives the row.
    body["status"] = json!(step.status().as_str());
    record.status = step.status();
    if record.status.is_final() {
        record.decided_at = Some(now);
    }
    record.version += 1;
    update_action(conn, &record)?;
    chain::append(conn, head, now, kind, SYSTEM_ACTOR, id, body.to_string())?;
    Ok(Some(record))
}

pub(crate) fn sweep_sla(
    conn: &Conn,
    head: &mut Head,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let due = super::read::due_deadlines(conn, now, limit)?;
    let mut changed = Vec::with_capacity(due.len());
    for item in due {
        if let Some(record) = apply_sla(conn, head, &item.id, now)? {
            changed.push(record);
        }
    }
    Ok(changed)
}

pub(crate) fn review(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    reviewer: &Actor,
    review: NewReview,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    let mut record = load_action(conn, id)?;
    match record.review {
        ReviewState::NotSampled => return Err(StoreError::NotInReviewQueue),
        ReviewState::Reviewed(_) => return Err(StoreError::AlreadyReviewed),
        ReviewState::Open => {}
    }
    lifecycle::may_review(&record.agent, record.owner.as_deref(), &reviewer.name)?;
    let body = json!({"verdict": review.verdict.as_str(), "note": review.note});
    record.review = ReviewState::Reviewed(Review {
        reviewer: reviewer.name.clone(),
        verdict: review.verdict,
        note: review.note,
        at: now,
    });
    record.version += 1;
    update_action(conn, &record)?;
    chain::append(
        conn,
        head,
        now,
        kind::REVIEWED,
        &reviewer.name,
        id,
        with_token(body, reviewer.token_id.as_deref()),
    )?;
    Ok(record)
}
