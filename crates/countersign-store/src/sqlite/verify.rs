//! Verification of the audit log on one read snapshot, in three passes that each stream
//! (memory stays one entry or one action's worth however large the log is):
//!
//! 1. the hash chain, in stored order, checking each given checkpoint as its entry passes;
//! 2. every action's state: the actions table (by id) merged with the log's entries by
//!    action, each action's entries folded by `countersign_core::audit::replay` and
//!    compared with its row. The log is walked by action through a sort of its (action id,
//!    seq) pairs, about 40 bytes an entry, which SQLite's sorter spills to temporary files
//!    past a few megabytes, and a lookup of each entry by seq: no index to maintain on the
//!    write path, and no copy of the bodies in the sort;
//! 3. on a read that fails because the file is damaged, SQLite's `quick_check`, so the
//!    report says what is wrong instead of the request failing.

use countersign_core::audit::replay::{self, ActionState, LogEntry, Replay};
use countersign_core::audit::{EntryFields, GENESIS, Verifier, hex};
use rusqlite::{Connection, Rows};
use serde_json::{Value, json};

use super::rows::{self, ACTION_COLUMNS, millis};
use crate::audit_log::{
    AuditReport, CheckpointCheck, CheckpointClaim, CheckpointOutcome, Damage,
    MAX_LISTED_MISMATCHES, StateMismatch,
};
use crate::error::StoreError;
use crate::record::{ActionRecord, ReviewState};

/// The most `quick_check` lines a damage report quotes.
const INTEGRITY_LINES: usize = 10;

/// Verifies everything. The caller runs it inside one read transaction (one snapshot).
/// A damaged file becomes the report's `damage`; other errors (a full temporary disk, a
/// lock, a bug) are returned, to be answered as such rather than as damage.
pub(crate) fn verify(
    conn: &Connection,
    claims: Vec<CheckpointClaim>,
) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport {
        entries: 0,
        head: hex(&GENESIS),
        broken: None,
        checkpoints: Vec::new(),
        actions: 0,
        state_mismatches: Vec::new(),
        state_mismatch_count: 0,
        damage: None,
    };
    let result =
        verify_chain(conn, claims, &mut report).and_then(|()| verify_states(conn, &mut report));
    match result {
        Ok(()) => Ok(report),
        Err(StoreError::Damaged(message)) => {
            report.damage = Some(Damage {
                message,
                integrity: integrity(conn),
            });
            Ok(report)
        }
        Err(error) => Err(error),
    }
}

/// What SQLite's `quick_check` finds (empty if it cannot run either).
pub(crate) fn integrity(conn: &Connection) -> Vec<String> {
    let check = || -> Result<Vec<String>, rusqlite::Error> {
        let mut statement = conn.prepare(&format!("PRAGMA quick_check({INTEGRITY_LINES})"))?;
        let lines = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines)
    };
    check().unwrap_or_else(|error| vec![error.to_string()])
}

/// Pass 1: the chain, and each claim when its entry passes.
fn verify_chain(
    conn: &Connection,
    mut claims: Vec<CheckpointClaim>,
    report: &mut AuditReport,
) -> Result<(), StoreError> {
    claims.sort_by_key(|claim| claim.size);
    let mut claims = claims.into_iter().peekable();
    let mut check = |claim: CheckpointClaim, outcome| {
        report.checkpoints.push(CheckpointCheck { claim, outcome });
    };
    let matched = |claim: &CheckpointClaim, hash: &[u8; 32]| {
        if claim.hash == *hash {
            CheckpointOutcome::Extended
        } else {
            CheckpointOutcome::Rewritten
        }
    };
    while let Some(claim) = claims.next_if(|c| c.size == 0) {
        let outcome = matched(&claim, &GENESIS);
        check(claim, outcome);
    }
    let mut verifier = Verifier::default();
    // By rowid (= seq unless someone renumbered rows), and the verifier checks that seq
    // follows on: a removed or reordered entry shows as a gap or a broken link.
    let mut statement = conn.prepare(
        "SELECT seq, at, kind, actor, action_id, body, prev, hash FROM audit ORDER BY rowid",
    )?;
    let mut rows = statement.query([])?;
    let mut broken = None;
    while let Some(row) = rows.next()? {
        // A value of the wrong type (a tampered file) is verified as empty: it cannot
        // match its hash unless it was empty, which the hash then says.
        let seq: i64 = row.get(0).unwrap_or(-1);
        let kind: String = row.get(2).unwrap_or_default();
        let actor: String = row.get(3).unwrap_or_default();
        let action_id: String = row.get(4).unwrap_or_default();
        let body: String = row.get(5).unwrap_or_default();
        let prev: Vec<u8> = row.get(6).unwrap_or_default();
        let hash: Vec<u8> = row.get(7).unwrap_or_default();
        let fields = EntryFields {
            seq: u64::try_from(seq).unwrap_or(0),
            at_millis: row.get(1).unwrap_or_default(),
            kind: &kind,
            actor: &actor,
            action_id: &action_id,
            body: &body,
        };
        if let Err(error) = verifier.check(&fields, &prev, &hash) {
            broken = Some(error);
            break;
        }
        while let Some(claim) = claims.next_if(|c| c.size == verifier.count()) {
            let outcome = matched(&claim, &verifier.head());
            check(claim, outcome);
        }
    }
    for claim in claims {
        let outcome = match &broken {
            Some(error) => CheckpointOutcome::Unverifiable {
                broken_at: error.seq(),
            },
            None => CheckpointOutcome::Truncated {
                entries: verifier.count(),
            },
        };
        check(claim, outcome);
    }
    report.entries = verifier.count();
    report.head = hex(&verifier.head());
    report.broken = broken;
    Ok(())
}

/// One entry of the by-action walk.
struct EntryRow {
    seq: u64,
    at_millis: i64,
    kind: String,
    actor: String,
    action_id: String,
    body: String,
}

/// The next entry in (action id, seq) order: the next key from the sorted walk, then the
/// entry itself by seq.
fn next_entry(
    keys: &mut Rows<'_>,
    entry: &mut rusqlite::Statement<'_>,
) -> Result<Option<EntryRow>, StoreError> {
    let Some(key) = keys.next()? else {
        return Ok(None);
    };
    let action_id: String = key.get(0).unwrap_or_default();
    let seq: i64 = key.get(1)?;
    let mut rows = entry.query([seq])?;
    let Some(row) = rows.next()? else {
        return Err(StoreError::Damaged(format!(
            "audit entry {seq} vanished while it was read"
        )));
    };
    Ok(Some(EntryRow {
        seq: u64::try_from(seq).unwrap_or(0),
        at_millis: row.get(0).unwrap_or_default(),
        kind: row.get(1).unwrap_or_default(),
        actor: row.get(2).unwrap_or_default(),
        action_id,
        body: row.get(3).unwrap_or_default(),
    }))
}

/// An action row: its id, and the record if the row decodes.
type ActionRow = (String, Result<ActionRecord, StoreError>);

fn next_action(rows: &mut Rows<'_>) -> Result<Option<ActionRow>, StoreError> {
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let id: String = row.get(0).unwrap_or_default();
    let record = rows::action_from_row(row);
    // A storage failure is not a row problem: it ends the walk.
    if let Err(error) = &record
        && error.is_storage_failure()
    {
        return Err(record.unwrap_err());
    }
    Ok(Some((id, record)))
}

/// Pass 2: every action's row against its entries, merged by id.
fn verify_states(conn: &Connection, report: &mut AuditReport) -> Result<(), StoreError> {
    let mut actions = conn.prepare(&format!("SELECT {ACTION_COLUMNS} FROM actions ORDER BY id"))?;
    let mut action_rows = actions.query([])?;
    let mut keys = conn.prepare(
        "SELECT action_id, seq FROM audit WHERE action_id <> '' ORDER BY action_id, seq",
    )?;
    let mut key_rows = keys.query([])?;
    let mut by_seq = conn.prepare("SELECT at, kind, actor, body FROM audit WHERE seq = ?")?;
    let mut action = next_action(&mut action_rows)?;
    let mut entry = next_entry(&mut key_rows, &mut by_seq)?;
    let mut mismatches = Mismatches { report };
    loop {
        let order = match (&action, &entry) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((id, _)), Some(e)) => id.as_str().cmp(e.action_id.as_str()),
        };
        if order == std::cmp::Ordering::Less {
            // A row without entries: inserted behind the log's back.
            let Some((id, record)) = action.take() else {
                break;
            };
            mismatches.report.actions += 1;
            let stored = match record {
                Ok(record) => json!({"status": record.gate.status.as_str()}),
                Err(error) => json!(error.to_string()),
            };
            mismatches.push(id, "log", stored, Value::Null);
            action = next_action(&mut action_rows)?;
            continue;
        }
        // Fold this action's entries.
        let Some(first) = entry.take() else {
            break;
        };
        let id = first.action_id.clone();
        let mut replay = Replay::new();
        let mut replay_error = None;
        let mut count = 0u64;
        let mut current = Some(first);
        while let Some(e) = current.take_if(|e| e.action_id == id) {
            count += 1;
            if replay_error.is_none()
                && let Err(error) = replay.apply(&LogEntry {
                    seq: e.seq,
                    at_millis: e.at_millis,
                    kind: &e.kind,
                    actor: &e.actor,
                    body: &e.body,
                })
            {
                replay_error = Some(error);
            }
            current = next_entry(&mut key_rows, &mut by_seq)?;
        }
        entry = current;
        let derived = match replay_error {
            Some(error) => Err(error),
            None => replay.finish(),
        };
        mismatches.report.actions += 1;
        if order == std::cmp::Ordering::Greater {
            // Entries without a row: the row was deleted.
            let status = derived
                .as_ref()
                .ok()
                .and_then(|d| d.status.clone())
                .unwrap_or(Value::Null);
            mismatches.push(
                id,
                "row",
                Value::Null,
                json!({"entries": count, "status": status}),
            );
            continue;
        }
        let Some((_, record)) = action.take() else {
            break;
        };
        action = next_action(&mut action_rows)?;
        match (record, derived) {
            (Err(error), _) => mismatches.push(id, "row", json!(error.to_string()), Value::Null),
            (Ok(_), Err(error)) => {
                mismatches.push(id, "log", Value::Null, json!(error.to_string()))
            }
            (Ok(record), Ok(derived)) => {
                for mismatch in replay::compare(&stored_state(&record), &derived) {
                    mismatches.push(
                        id.clone(),
                        mismatch.field,
                        mismatch.stored,
                        mismatch.derived,
                    );
                }
            }
        }
    }
    Ok(())
}

/// Counts every mismatch and lists the first few.
struct Mismatches<'a> {
    report: &'a mut AuditReport,
}

impl Mismatches<'_> {
    fn push(&mut self, action_id: String, field: &str, stored: Value, derived: Value) {
        self.report.state_mismatch_count += 1;
        if self.report.state_mismatches.len() < MAX_LISTED_MISMATCHES {
            self.report.state_mismatches.push(StateMismatch {
                action_id,
                field: field.to_owned(),
                stored,
                derived,
            });
        }
    }
}

/// A stored record in the encoding the log's bodies use (see `ops.rs`).
pub(crate) fn stored_state(record: &ActionRecord) -> ActionState {
    let parse = |text: String| serde_json::from_str(&text).unwrap_or(Value::Null);
    let gate = &record.gate;
    let timeout = gate.timeout.as_ref();
    ActionState {
        action: Some(json!(gate.action.as_str())),
        agent: Some(json!(gate.agent.as_str())),
        owner: Some(json!(gate.owner.as_ref().map(|o| o.as_str()))),
        args: Some(Value::Object(gate.args.clone())),
        original_args: Some(json!(gate.original_args)),
        reasoning: Some(json!(record.reasoning)),
        context: Some(Value::Object(record.context.clone())),
        confidence: Some(json!(record.confidence)),
        hints: Some(serde_json::to_value(record.hints).unwrap_or(Value::Null)),
        idempotency_key: Some(json!(record.idempotency_key)),
        tier: Some(json!(gate.tier.as_str())),
        status: Some(json!(gate.status.as_str())),
        rule: Some(json!(record.rule)),
        reason: Some(json!(record.reason)),
        policy_hash: Some(json!(record.policy_hash)),
        approvers: Some(rows::approvers_value(&gate.approvers)),
        approvals_required: Some(json!(gate.approvals_required)),
        deadline: Some(json!(gate.deadline.map(millis))),
        on_timeout: Some(json!(timeout.map(|t| t.on_timeout.as_str()))),
        escalate_to: Some(json!(timeout.map(|t| rows::names(&t.escalate_to)))),
        escalation_sla: Some(json!(timeout.map(|t| t.escalation_sla.seconds()))),
        review_sample: Some(json!(record.review_sample)),
        escalated: Some(json!(gate.escalated)),
        escalated_to: Some(json!(rows::names(&gate.escalated_to))),
        decisions: Some(parse(rows::decisions_json(&gate.decisions))),
        review: Some(match &gate.review {
            ReviewState::NotSampled => Value::Null,
            ReviewState::Open => json!("open"),
            ReviewState::Reviewed(review) => parse(rows::review_json(review)),
        }),
        outcome: Some(
            gate.outcome
                .as_ref()
                .map(|o| parse(rows::outcome_json(o)))
                .unwrap_or(Value::Null),
        ),
        created_at: Some(json!(millis(record.created_at))),
        decided_at: Some(json!(gate.decided_at.map(millis))),
        remind_at: Some(json!(timeout.map(|t| {
            t.remind_at
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        }))),
        reminders: Some(json!(rows::moments(&gate.reminders))),
        escalated_at: Some(json!(gate.escalated_at.map(millis))),
        reminded: Some(json!(gate.reminded)),
        grant: Some(json!(record.grant)),
    }
}
