//! The write operations, each run by the writer inside its batch transaction (under its own
//! savepoint). Lifecycle rules come from `countersign_core`; this file only loads, applies
//! and stores, and records every change in the audit chain in the same transaction.

use chrono::{DateTime, Utc};
use countersign_core::Status;
use countersign_core::lifecycle::{self, DecisionRequest, Reviewer, Transition};
use countersign_core::name::Name;
use countersign_core::notify::EventKind;
use countersign_core::sla::{self, SlaStep};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::chain::{self, Head};
use super::outbox_ops::{self, Emitter};
use super::rows::{self, ACTION_COLUMNS, millis, to_json};
use crate::audit_log::{SYSTEM_ACTOR, kind};
use crate::entries::{self, first_answer_from, first_answer_json, new_record, with_token};
use crate::error::StoreError;
use crate::record::{
    ActionRecord, Actor, Idempotency, NewAction, NewOutcome, NewReview, ReviewState, Submitted,
};

type Conn = Connection;

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
    let gate = &record.gate;
    conn.prepare_cached(
        "UPDATE actions SET tier = ?, status = ?, args = ?, original_args = ?, approvers = ?, \
         escalated_to = ?, escalated = ?, approvals_required = ?, decisions = ?, deadline = ?, \
         timeout_plan = ?, review_state = ?, review = ?, outcome = ?, decided_at = ?, \
         version = ?, reminders = ?, escalated_at = ?, next_step_at = ?, reminded = ? \
         WHERE id = ?",
    )?
    .execute(params![
        gate.tier.as_str(),
        gate.status.as_str(),
        to_json(&gate.args),
        gate.original_args.as_ref().map(to_json),
        to_json(&rows::approvers_value(&gate.approvers)),
        to_json(&rows::names(&gate.escalated_to)),
        gate.escalated,
        i64::from(gate.approvals_required),
        rows::decisions_json(&gate.decisions),
        gate.deadline.map(millis),
        gate.timeout.as_ref().map(rows::timeout_json),
        rows::review_state_column(&gate.review),
        match &gate.review {
            ReviewState::Reviewed(review) => Some(rows::review_json(review)),
            _ => None,
        },
        gate.outcome.as_ref().map(rows::outcome_json),
        gate.decided_at.map(millis),
        record.version as i64,
        to_json(&rows::moments(&gate.reminders)),
        gate.escalated_at.map(millis),
        gate.next_step_at().map(millis),
        i64::from(gate.reminded),
        &record.id,
    ])?;
    Ok(())
}

/// Applies `transition` (which the core allowed) to `record`, stores it, adds what it
/// changed to the kept statistics, and appends the entry that records it, all in the
/// writer's transaction.
fn commit(
    conn: &Conn,
    head: &mut Head,
    record: &mut ActionRecord,
    transition: &Transition,
    entry: Entry<'_>,
) -> Result<(), StoreError> {
    let before = super::stats::contribution_of(record);
    record.gate.apply(transition);
    record.version += 1;
    update_action(conn, record)?;
    super::stats::record_change(conn, &before, record)?;
    chain::append(
        conn,
        head,
        entry.at,
        entry.kind,
        entry.actor,
        &record.id,
        with_token(entry.body, entry.token_id),
    )?;
    Ok(())
}

/// The audit entry of a change.
struct Entry<'a> {
    kind: &'a str,
    actor: &'a str,
    token_id: Option<&'a str>,
    body: Value,
    at: DateTime<Utc>,
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
    let mut record = load_action(conn, &action_id)?;
    record.gate = record
        .gate
        .as_first_answered(&first_answer_from(&response)?);
    record.version = 1;
    Ok(Some(Submitted {
        record,
        replayed: true,
    }))
}

pub(crate) fn submit(
    conn: &Conn,
    head: &mut Head,
    out: &Emitter,
    new: NewAction,
) -> Result<Submitted, StoreError> {
    let agent = new.proposal.agent.as_str().to_owned();
    if let Some(idempotency) = &new.idempotency
        && let Some(replay) = find_replay(conn, &agent, idempotency)?
    {
        return Ok(replay);
    }
    let idempotency = new.idempotency.clone();
    let at = new.at;
    let token_id = new.token_id.clone();
    // The first grant the caller found that is still live now counts one use and lets the
    // action run: checked and counted here, in the writer, so N uses are N uses.
    let mut used = None;
    for id in &new.grants {
        if let Some(grant) = super::grant_ops::use_grant(conn, id, at)? {
            used = Some(grant);
            break;
        }
    }
    let callback_url = new.callback_url.clone();
    let record = new_record(new, used.as_ref())?;
    let gate = &record.gate;
    let sql = format!(
        "INSERT INTO actions ({ACTION_COLUMNS}) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
         ?, ?, ?, ?, ?)"
    );
    conn.prepare_cached(&sql)?.execute(params![
        &record.id,
        gate.action.as_str(),
        gate.agent.as_str(),
        gate.owner.as_ref().map(Name::as_str),
        gate.status.as_str(),
        gate.tier.as_str(),
        &record.rule,
        &record.reason,
        to_json(&gate.args),
        Option::<String>::None,
        &record.reasoning,
        to_json(&record.context),
        record.confidence,
        to_json(&record.hints),
        &record.idempotency_key,
        to_json(&rows::approvers_value(&gate.approvers)),
        to_json(&rows::names(&gate.escalated_to)),
        gate.escalated,
        i64::from(gate.approvals_required),
        rows::decisions_json(&gate.decisions),
        gate.deadline.map(millis),
        gate.timeout.as_ref().map(rows::timeout_json),
        &record.policy_hash,
        record.review_sample,
        rows::review_state_column(&gate.review),
        Option::<String>::None,
        Option::<String>::None,
        millis(record.created_at),
        gate.decided_at.map(millis),
        record.version as i64,
        &record.grant,
        to_json(&rows::moments(&gate.reminders)),
        gate.escalated_at.map(millis),
        gate.next_step_at().map(millis),
        i64::from(gate.reminded),
    ])?;
    if let Some(idempotency) = &idempotency {
        conn.prepare_cached(
            "INSERT INTO idempotency (agent, key, body_hash, action_id, response, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            &agent,
            &idempotency.key,
            &idempotency.body_hash,
            &record.id,
            first_answer_json(&gate.first_answer()).to_string(),
            millis(at),
        ])?;
    }
    let drafts = entries::submission(
        &record,
        token_id.as_deref(),
        used.as_ref(),
        callback_url.as_deref(),
    );
    chain::append_all(conn, head, at, &record.id, drafts)?;
    if record.gate.status == Status::Pending {
        if let Some(url) = &callback_url {
            outbox_ops::save_callback(conn, &record.id, url)?;
        }
        out.emit(conn, &record, EventKind::Pending, at)?;
    }
    super::stats::record_new(conn, &record)?;
    Ok(Submitted {
        record,
        replayed: false,
    })
}

pub(crate) fn decide(
    conn: &Conn,
    head: &mut Head,
    out: &Emitter,
    id: &str,
    reviewer: &Actor,
    request: DecisionRequest,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    let mut record = load_action(conn, id)?;
    // An escalation that fell due and was not applied yet comes first: it moves the
    // deadline and adds deciders. Any other due step (expiry) makes the core refuse the
    // decision, and the SLA worker applies it.
    if let Some(SlaStep::Escalate { .. }) = sla::due(&record.gate, now)
        && let Some(escalated) = apply_sla(conn, head, out, id, now)?
    {
        record = escalated;
    }
    let before = record.gate.clone();
    let transition = lifecycle::decide(
        &before,
        &Reviewer {
            name: &reviewer.name,
            groups: &reviewer.groups,
            admin: reviewer.admin,
        },
        request,
        now,
    )?;
    let Transition::Decided(decided) = &transition else {
        unreachable!("lifecycle::decide gives a decision");
    };
    let mut after = before.clone();
    after.apply(&transition);
    let body = entries::decision_body(&before, &after, decided, reviewer.channel());
    let entry = Entry {
        kind: kind::DECIDED,
        actor: reviewer.name.as_str(),
        token_id: reviewer.token_id.as_deref(),
        body,
        at: now,
    };
    commit(conn, head, &mut record, &transition, entry)?;
    if record.gate.status.is_final() {
        out.emit(conn, &record, EventKind::Decided, now)?;
    }
    Ok(record)
}

pub(crate) fn cancel(
    conn: &Conn,
    head: &mut Head,
    out: &Emitter,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    let mut record = load_action(conn, id)?;
    let transition = lifecycle::cancel(&record.gate, now)?;
    let entry = Entry {
        kind: kind::CANCELLED,
        actor: actor.name.as_str(),
        token_id: actor.token_id.as_deref(),
        body: entries::cancel_body(),
        at: now,
    };
    commit(conn, head, &mut record, &transition, entry)?;
    out.emit(conn, &record, EventKind::Cancelled, now)?;
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
    let body = json!({"status": outcome.status.as_str(), "detail": outcome.detail});
    let transition = lifecycle::report_outcome(
        &record.gate,
        outcome.status,
        outcome.detail,
        &actor.name,
        now,
    )?;
    let entry = Entry {
        kind: kind::OUTCOME,
        actor: actor.name.as_str(),
        token_id: actor.token_id.as_deref(),
        body,
        at: now,
    };
    commit(conn, head, &mut record, &transition, entry)?;
    Ok(record)
}

pub(crate) fn apply_sla(
    conn: &Conn,
    head: &mut Head,
    out: &Emitter,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<ActionRecord>, StoreError> {
    let mut record = load_action(conn, id)?;
    let Some(step) = sla::due(&record.gate, now) else {
        return Ok(None);
    };
    let transition = Transition::Sla {
        step: step.clone(),
        at: now,
    };
    let mut after = record.gate.clone();
    after.apply(&transition);
    let (kind, body, event) = entries::sla_entry(&step, &record, &after);
    let entry = Entry {
        kind,
        actor: SYSTEM_ACTOR,
        token_id: None,
        body,
        at: now,
    };
    commit(conn, head, &mut record, &transition, entry)?;
    if let Some(event) = event {
        out.emit(conn, &record, event, now)?;
    }
    Ok(Some(record))
}

pub(crate) fn sweep_sla(
    conn: &Conn,
    head: &mut Head,
    out: &Emitter,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let due = super::read::due_deadlines(conn, now, limit)?;
    let mut changed = Vec::with_capacity(due.len());
    for item in due {
        if let Some(record) = apply_sla(conn, head, out, &item.id, now)? {
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
    let body = json!({"verdict": review.verdict.as_str(), "note": review.note});
    let transition = lifecycle::review(
        &record.gate,
        &reviewer.name,
        review.verdict,
        review.note,
        now,
    )?;
    let entry = Entry {
        kind: kind::REVIEWED,
        actor: reviewer.name.as_str(),
        token_id: reviewer.token_id.as_deref(),
        body,
        at: now,
    };
    commit(conn, head, &mut record, &transition, entry)?;
    Ok(record)
}
