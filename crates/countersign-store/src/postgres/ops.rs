//! The action writes on PostgreSQL. Each runs in its own transaction on a pooled
//! connection: it locks the action's row (`FOR UPDATE`), asks the core for the transition,
//! applies it, updates the row, inserts the audit entries and, for other instances'
//! watchers, a notification — all committed together. Two reviewers deciding at once on two
//! instances queue on the row lock, and the second is judged on the state the first left.
//! A submission is one statement (action, idempotency row and entries), so it commits in
//! one round trip; the idempotency key's primary key resolves concurrent duplicates.

use chrono::{DateTime, Utc};
use countersign_core::Status;
use countersign_core::lifecycle::{self, DecisionRequest, Reviewer, Transition};
use countersign_core::name::Name;
use countersign_core::notify::EventKind;
use countersign_core::sla::{self, SlaStep};

use super::chain;
use super::errors::is_unique_violation;
use super::grant_ops;
use super::listen::CHANNEL;
use super::outbox_ops::{self, Emitter};
use super::pool::Conn;
use super::rows::{ACTION_COLUMNS, action_from_row};
use crate::audit_log::{SYSTEM_ACTOR, kind};
use crate::entries::{self, Draft, first_answer_from, first_answer_json, new_record, with_token};
use crate::error::StoreError;
use crate::grants::GrantRecord;
use crate::record::{
    ActionRecord, Actor, Idempotency, NewAction, NewOutcome, NewReview, ReviewState, Submitted,
};
use crate::sqlite::rows::{self, millis, to_json};
use crate::sqlite::stats::contribution_of;

/// Runs `work` inside a transaction on `conn`: committed if it succeeds, rolled back if not.
macro_rules! transaction {
    ($conn:expr, $work:expr) => {{
        $conn.begin().await?;
        // The approval metrics the work added are written last, in key order (see
        // `stats`), and commit with it.
        let worked: Result<_, crate::error::StoreError> = $work.await;
        let worked = match worked {
            Ok(value) => crate::postgres::stats::flush(&mut *$conn)
                .await
                .map(|()| value),
            Err(error) => Err(error),
        };
        match worked {
            Ok(value) => {
                $conn.commit().await?;
                Ok(value)
            }
            Err(error) => {
                $conn.rollback().await;
                Err(error)
            }
        }
    }};
}
pub(crate) use transaction;

async fn load(conn: &mut Conn, id: &str, lock: bool) -> Result<ActionRecord, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE id = $1{lock}");
    let row = conn
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    action_from_row(&row)
}

/// One action, without locking it.
pub(crate) async fn action(conn: &mut Conn, id: &str) -> Result<Option<ActionRecord>, StoreError> {
    match load(conn, id, false).await {
        Ok(record) => Ok(Some(record)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Tells the other instances' listeners which actions changed, when this transaction
/// commits (PostgreSQL delivers a notification only on commit, and then always).
pub(crate) async fn notify(
    conn: &mut Conn,
    instance: &str,
    ids: &[&str],
) -> Result<(), StoreError> {
    for payload in payloads(instance, ids.iter().copied()) {
        conn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await?;
    }
    Ok(())
}

/// Notification payloads: the instance, then action ids, space-separated, each payload
/// below PostgreSQL's 8,000-byte limit.
pub(crate) fn payloads<'a>(instance: &str, ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = instance.to_owned();
    for id in ids {
        if current.len() + id.len() + 1 > 7000 {
            payloads.push(std::mem::replace(&mut current, instance.to_owned()));
        }
        current.push(' ');
        current.push_str(id);
    }
    if current.len() > instance.len() {
        payloads.push(current);
    }
    payloads
}

/// Writes the fields that change after submission.
async fn update_action(conn: &mut Conn, record: &ActionRecord) -> Result<(), StoreError> {
    let gate = &record.gate;
    let review = match &gate.review {
        ReviewState::Reviewed(review) => Some(rows::review_json(review)),
        _ => None,
    };
    conn.execute(
        "UPDATE actions SET tier = $1, status = $2, args = $3, original_args = $4, \
         approvers = $5, escalated_to = $6, escalated = $7, approvals_required = $8, \
         decisions = $9, deadline = $10, timeout_plan = $11, review_state = $12, review = $13, \
         outcome = $14, decided_at = $15, version = $16, reminders = $17, escalated_at = $18, \
         next_step_at = $19, reminded = $20, changed_at = now() WHERE id = $21",
        &[
            &gate.tier.as_str(),
            &gate.status.as_str(),
            &to_json(&gate.args),
            &gate.original_args.as_ref().map(to_json),
            &to_json(&rows::approvers_value(&gate.approvers)),
            &to_json(&rows::names(&gate.escalated_to)),
            &gate.escalated,
            &i64::from(gate.approvals_required),
            &rows::decisions_json(&gate.decisions),
            &gate.deadline.map(millis),
            &gate.timeout.as_ref().map(rows::timeout_json),
            &rows::review_state_column(&gate.review),
            &review,
            &gate.outcome.as_ref().map(rows::outcome_json),
            &gate.decided_at.map(millis),
            &(record.version as i64),
            &to_json(&rows::moments(&gate.reminders)),
            &gate.escalated_at.map(millis),
            &gate.next_step_at().map(millis),
            &i64::from(gate.reminded),
            &record.id,
        ],
    )
    .await?;
    Ok(())
}

/// The audit entry of a change.
struct Entry<'a> {
    kind: &'a str,
    actor: &'a str,
    token_id: Option<&'a str>,
    body: serde_json::Value,
    at: DateTime<Utc>,
}

/// Applies `transition` (which the core allowed) to `record`, stores it, adds what it
/// changed to the transaction's approval metrics, and inserts its entry, in the caller's
/// transaction.
async fn commit_change(
    conn: &mut Conn,
    record: &mut ActionRecord,
    transition: &Transition,
    entry: Entry<'_>,
) -> Result<(), StoreError> {
    let before = contribution_of(record);
    record.gate.apply(transition);
    record.version += 1;
    update_action(conn, record).await?;
    super::stats::record_change(conn, &before, record);
    let draft = Draft {
        kind: entry.kind,
        actor: entry.actor,
        body: with_token(entry.body, entry.token_id),
    };
    chain::insert(conn, millis(entry.at), &record.id, &[draft]).await
}

/// Looks up an earlier submission under the same idempotency key.
pub(crate) async fn find_replay(
    conn: &mut Conn,
    agent: &str,
    idempotency: &Idempotency,
) -> Result<Option<Submitted>, StoreError> {
    let Some(row) = conn
        .query_opt(
            "SELECT body_hash, action_id, response FROM idempotency WHERE agent = $1 AND key = $2",
            &[&agent, &idempotency.key],
        )
        .await?
    else {
        return Ok(None);
    };
    let body_hash: String = row.get(0);
    let action_id: String = row.get(1);
    let response: String = row.get(2);
    if body_hash != idempotency.body_hash {
        return Err(StoreError::IdempotencyMismatch {
            key: idempotency.key.clone(),
        });
    }
    let mut record = load(conn, &action_id, false).await?;
    record.gate = record
        .gate
        .as_first_answered(&first_answer_from(&response)?);
    record.version = 1;
    Ok(Some(Submitted {
        record,
        replayed: true,
    }))
}

/// Stores a submission in one statement (autocommit: one round trip, one commit). A
/// duplicate idempotency key, committed meanwhile by anyone, fails the statement as a
/// whole, and the caller gets the first submission's answer.
///
/// With grants to try (`NewAction::grants`), the first one still live is used in the same
/// transaction as the insert ([`grant_ops::use_grant`]), and the use's entry goes with it.
///
/// An action that will wait for people (its `pending` event, its callback) takes a
/// transaction too, so that its event and deliveries commit with it or not at all.
pub(crate) async fn submit(
    conn: &mut Conn,
    out: &Emitter,
    new: NewAction,
) -> Result<Submitted, StoreError> {
    let agent = new.proposal.agent.as_str().to_owned();
    let idempotency = new.idempotency.clone();
    let may_wait =
        new.tier.is_human_gated() && (out.router.is_some() || new.callback_url.is_some());
    let inserted = if new.grants.is_empty() && !may_wait {
        insert_submission(conn, out, new, None).await?
    } else {
        conn.begin().await?;
        let attempt = async {
            let mut used = None;
            for id in &new.grants {
                if let Some(grant) = grant_ops::use_grant(conn, id, new.at).await? {
                    used = Some(grant);
                    break;
                }
            }
            insert_submission(conn, out, new, used).await
        }
        .await;
        match attempt {
            Ok(Ok(submitted)) => {
                conn.commit().await?;
                Ok(submitted)
            }
            Ok(Err(duplicate)) => {
                // The use goes with the failed insert.
                conn.rollback().await;
                Err(duplicate)
            }
            Err(error) => {
                conn.rollback().await;
                return Err(error);
            }
        }
    };
    match inserted {
        Ok(submitted) => Ok(submitted),
        Err(error) if is_unique_violation(&error) && idempotency.is_some() => {
            let idempotency = idempotency.as_ref().expect("checked above");
            find_replay(conn, &agent, idempotency)
                .await?
                .ok_or_else(|| StoreError::Database(error.to_string()))
        }
        Err(error) => Err(error.into()),
    }
}

/// The insert itself: the action, its idempotency row and its first two entries in one
/// statement, then a grant's use entry if one let it run. `Ok(Err(_))`: the database
/// refused the statement (a duplicate idempotency key, say).
async fn insert_submission(
    conn: &mut Conn,
    out: &Emitter,
    new: NewAction,
    used: Option<GrantRecord>,
) -> Result<Result<Submitted, tokio_postgres::Error>, StoreError> {
    let agent = new.proposal.agent.as_str().to_owned();
    let idempotency = new.idempotency.clone();
    let at = millis(new.at);
    let now = new.at;
    let token_id = new.token_id.clone();
    let callback_url = new.callback_url.clone();
    let record = new_record(new, used.as_ref())?;
    let gate = &record.gate;
    let drafts = entries::submission(
        &record,
        token_id.as_deref(),
        used.as_ref(),
        callback_url.as_deref(),
    );
    let first = idempotency
        .as_ref()
        .map(|_| first_answer_json(&gate.first_answer()).to_string());
    // The statement also adds the action to the approval metrics' sums.
    let stats_values = super::stats::submission_values(&record);
    let sql = format!(
        "WITH new_action AS (INSERT INTO actions (id, action, agent, owner, status, tier, \
             rule, reason, args, original_args, reasoning, context, confidence, hints, \
             idempotency_key, approvers, escalated_to, escalated, approvals_required, \
             decisions, deadline, timeout_plan, policy_hash, review_sample, review_state, \
             review, outcome, created_at, decided_at, version, grant_id, reminders, \
             escalated_at, next_step_at) VALUES ($1, $2, $3, $4, \
             $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24, NULL, NULL, $25, $26, 1, $37, $38, $39, $40)), \
             key AS (INSERT INTO idempotency (agent, key, body_hash, action_id, response, \
             created_at) SELECT $27, $28, $29, $1, $30, $25 WHERE $28::text IS NOT NULL), \
             {} \
             INSERT INTO audit (at, kind, actor, action_id, body) \
             VALUES ($25, $31, $32, $1, $33), ($25, $34, $35, $1, $36)",
        super::stats::submission_stats()
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 40] = [
        &record.id,
        &gate.action.as_str(),
        &gate.agent.as_str(),
        &gate.owner.as_ref().map(Name::as_str),
        &gate.status.as_str(),
        &gate.tier.as_str(),
        &record.rule,
        &record.reason,
        &to_json(&gate.args),
        &record.reasoning,
        &to_json(&record.context),
        &record.confidence,
        &to_json(&record.hints),
        &record.idempotency_key,
        &to_json(&rows::approvers_value(&gate.approvers)),
        &to_json(&rows::names(&gate.escalated_to)),
        &gate.escalated,
        &i64::from(gate.approvals_required),
        &rows::decisions_json(&gate.decisions),
        &gate.deadline.map(millis),
        &gate.timeout.as_ref().map(rows::timeout_json),
        &record.policy_hash,
        &record.review_sample,
        &rows::review_state_column(&gate.review),
        &at,
        &gate.decided_at.map(millis),
        &agent,
        &idempotency.as_ref().map(|i| i.key.as_str()),
        &idempotency.as_ref().map(|i| i.body_hash.as_str()),
        &first,
        &drafts[0].kind,
        &drafts[0].actor,
        &drafts[0].body,
        &drafts[1].kind,
        &drafts[1].actor,
        &drafts[1].body,
        &record.grant,
        &to_json(&rows::moments(&gate.reminders)),
        &gate.escalated_at.map(millis),
        &gate.next_step_at().map(millis),
    ];
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .into_iter()
        .chain(
            stats_values
                .iter()
                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)),
        )
        .collect();
    let result = conn.query_raw_error(&sql, &params).await?;
    if let Err(error) = result {
        return Ok(Err(error));
    }
    if drafts.len() > 2 {
        chain::insert(conn, at, &record.id, &drafts[2..]).await?;
    }
    if record.gate.status == Status::Pending {
        if let Some(url) = &callback_url {
            outbox_ops::save_callback(conn, &record.id, url).await?;
        }
        out.emit(conn, &record, EventKind::Pending, now).await?;
    }
    Ok(Ok(Submitted {
        record,
        replayed: false,
    }))
}

pub(crate) async fn decide(
    conn: &mut Conn,
    instance: &str,
    out: &Emitter,
    id: &str,
    reviewer: &Actor,
    request: DecisionRequest,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    transaction!(conn, async {
        let mut record = load(conn, id, true).await?;
        // An escalation that fell due and was not applied yet comes first: it moves the
        // deadline and adds deciders. Any other due step (expiry) makes the core refuse the
        // decision, and the SLA worker applies it.
        if let Some(step @ SlaStep::Escalate { .. }) = sla::due(&record.gate, now) {
            apply_step(conn, out, &mut record, step, now).await?;
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
        let entry = Entry {
            kind: kind::DECIDED,
            actor: reviewer.name.as_str(),
            token_id: reviewer.token_id.as_deref(),
            body: entries::decision_body(&before, &after, decided, reviewer.channel()),
            at: now,
        };
        commit_change(conn, &mut record, &transition, entry).await?;
        if record.gate.status.is_final() {
            out.emit(conn, &record, EventKind::Decided, now).await?;
        }
        notify(conn, instance, &[&record.id]).await?;
        Ok(record)
    })
}

pub(crate) async fn cancel(
    conn: &mut Conn,
    instance: &str,
    out: &Emitter,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    transaction!(conn, async {
        let mut record = load(conn, id, true).await?;
        let transition = lifecycle::cancel(&record.gate, now)?;
        let entry = Entry {
            kind: kind::CANCELLED,
            actor: actor.name.as_str(),
            token_id: actor.token_id.as_deref(),
            body: entries::cancel_body(),
            at: now,
        };
        commit_change(conn, &mut record, &transition, entry).await?;
        out.emit(conn, &record, EventKind::Cancelled, now).await?;
        notify(conn, instance, &[&record.id]).await?;
        Ok(record)
    })
}

pub(crate) async fn record_outcome(
    conn: &mut Conn,
    instance: &str,
    id: &str,
    actor: &Actor,
    outcome: NewOutcome,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    transaction!(conn, async {
        let mut record = load(conn, id, true).await?;
        let body = serde_json::json!({"status": outcome.status.as_str(), "detail": outcome.detail});
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
        commit_change(conn, &mut record, &transition, entry).await?;
        notify(conn, instance, &[&record.id]).await?;
        Ok(record)
    })
}

pub(crate) async fn review(
    conn: &mut Conn,
    instance: &str,
    id: &str,
    reviewer: &Actor,
    review: NewReview,
    now: DateTime<Utc>,
) -> Result<ActionRecord, StoreError> {
    transaction!(conn, async {
        let mut record = load(conn, id, true).await?;
        let body = serde_json::json!({"verdict": review.verdict.as_str(), "note": review.note});
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
        commit_change(conn, &mut record, &transition, entry).await?;
        notify(conn, instance, &[&record.id]).await?;
        Ok(record)
    })
}

/// Applies an SLA step to a locked record, in the caller's transaction.
/// Applies an SLA step to a locked record, in the caller's transaction, with the event it
/// notifies (a reminder, an escalation, an expiry).
async fn apply_step(
    conn: &mut Conn,
    out: &Emitter,
    record: &mut ActionRecord,
    step: SlaStep,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let transition = Transition::Sla {
        step: step.clone(),
        at: now,
    };
    let mut after = record.gate.clone();
    after.apply(&transition);
    let (kind, body, event) = entries::sla_entry(&step, record, &after);
    let entry = Entry {
        kind,
        actor: SYSTEM_ACTOR,
        token_id: None,
        body,
        at: now,
    };
    commit_change(conn, record, &transition, entry).await?;
    if let Some(event) = event {
        out.emit(conn, record, event, now).await?;
    }
    Ok(())
}

pub(crate) async fn apply_sla(
    conn: &mut Conn,
    instance: &str,
    out: &Emitter,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<ActionRecord>, StoreError> {
    transaction!(conn, async {
        let mut record = load(conn, id, true).await?;
        let Some(step) = sla::due(&record.gate, now) else {
            return Ok(None);
        };
        apply_step(conn, out, &mut record, step, now).await?;
        notify(conn, instance, &[&record.id]).await?;
        Ok(Some(record))
    })
}

/// Applies the steps due at `now` to up to `limit` actions, in one transaction. The due
/// rows are locked with `SKIP LOCKED`: instances sweeping at once share the due work
/// instead of queueing on it, and each step is decided again on the locked row, so a step
/// another instance applied first is not applied twice. An instance killed mid-sweep
/// leaves nothing: its transaction rolls back with its connection, and the rows it held are
/// due again for the next sweep anywhere.
pub(crate) async fn sweep_sla(
    conn: &mut Conn,
    instance: &str,
    out: &Emitter,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ActionRecord>, StoreError> {
    let limit = i64::from(crate::record::page_limit(limit));
    transaction!(conn, async {
        let rows = conn
            .query(
                &format!(
                    "SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'pending' \
                     AND next_step_at <= $1 ORDER BY next_step_at, id LIMIT $2 \
                     FOR UPDATE SKIP LOCKED"
                ),
                &[&millis(now), &limit],
            )
            .await?;
        let mut changed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut record = action_from_row(row)?;
            if let Some(step) = sla::due(&record.gate, now) {
                apply_step(conn, out, &mut record, step, now).await?;
                changed.push(record);
            }
        }
        let ids: Vec<&str> = changed.iter().map(|r| r.id.as_str()).collect();
        notify(conn, instance, &ids).await?;
        Ok(changed)
    })
}
