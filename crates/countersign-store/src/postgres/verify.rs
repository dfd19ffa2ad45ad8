//! Verification of the audit log on PostgreSQL, on one snapshot (a repeatable-read
//! transaction), streaming through server-side cursors so that memory stays a batch of
//! rows however long the log is:
//!
//! 1. the linked chain in `seq` order, checking each given checkpoint as its entry passes;
//! 2. every action's row against its entries (linked ones in chain order, then any not
//!    linked yet in insertion order), folded by `countersign_core::audit::replay` — the
//!    same comparison as SQLite's, on the same encodings.
//!
//! And the checkpoints: a new one is stored only if the log holds its entry with its hash
//! and still extends the latest stored, under a lock, so that two instances signing at once
//! never store two inconsistent heads.

use countersign_core::audit::replay::{self, LogEntry, Replay};
use countersign_core::audit::{EntryFields, GENESIS, Verifier, hex};
use serde_json::{Value, json};
use tokio_postgres::Row;

use super::pool::Conn;
use super::rows::{ACTION_COLUMNS, action_from_row};
use crate::audit_log::{
    AuditHead, AuditReport, CheckpointCheck, CheckpointClaim, CheckpointOutcome,
    MAX_LISTED_MISMATCHES, NewCheckpoint, StateMismatch, StoredCheckpoint,
};
use crate::error::StoreError;
use crate::record::ActionRecord;
use crate::sqlite::rows::{from_millis, millis};
use crate::sqlite::verify::stored_state;

/// Rows fetched per round trip.
const FETCH: usize = 2000;

/// A server-side cursor over a query, read in batches.
struct Cursor {
    name: &'static str,
    rows: std::collections::VecDeque<Row>,
    done: bool,
}

impl Cursor {
    async fn open(conn: &mut Conn, name: &'static str, sql: &str) -> Result<Cursor, StoreError> {
        conn.batch(&format!("DECLARE {name} NO SCROLL CURSOR FOR {sql}"))
            .await?;
        Ok(Cursor {
            name,
            rows: Default::default(),
            done: false,
        })
    }

    async fn next(&mut self, conn: &mut Conn) -> Result<Option<Row>, StoreError> {
        if self.rows.is_empty() && !self.done {
            let fetched = conn
                .query(&format!("FETCH {FETCH} FROM {}", self.name), &[])
                .await?;
            self.done = fetched.len() < FETCH;
            self.rows.extend(fetched);
        }
        Ok(self.rows.pop_front())
    }
}

/// Verifies everything, on one snapshot. The caller links pending entries first if it may
/// write; entries still unlinked are replayed but not counted as chained.
pub(crate) async fn verify(
    conn: &mut Conn,
    claims: Vec<CheckpointClaim>,
) -> Result<AuditReport, StoreError> {
    conn.begin_snapshot().await?;
    let result = verify_in_snapshot(conn, claims).await;
    conn.rollback().await;
    result
}

async fn verify_in_snapshot(
    conn: &mut Conn,
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
    verify_chain(conn, claims, &mut report).await?;
    verify_states(conn, &mut report).await?;
    Ok(report)
}

async fn verify_chain(
    conn: &mut Conn,
    mut claims: Vec<CheckpointClaim>,
    report: &mut AuditReport,
) -> Result<(), StoreError> {
    claims.sort_by_key(|claim| claim.size);
    let mut claims = claims.into_iter().peekable();
    let mut checks = Vec::new();
    let matched = |claim: &CheckpointClaim, hash: &[u8; 32]| {
        if claim.hash == *hash {
            CheckpointOutcome::Extended
        } else {
            CheckpointOutcome::Rewritten
        }
    };
    while let Some(claim) = claims.next_if(|c| c.size == 0) {
        let outcome = matched(&claim, &GENESIS);
        checks.push(CheckpointCheck { claim, outcome });
    }
    let mut verifier = Verifier::default();
    let mut chain = Cursor::open(
        conn,
        "chain",
        "SELECT seq, at, kind, actor, action_id, body, prev, hash FROM audit \
         WHERE seq IS NOT NULL ORDER BY seq",
    )
    .await?;
    let mut broken = None;
    while let Some(row) = chain.next(conn).await? {
        let seq: i64 = row.get(0);
        let prev: Vec<u8> = row.get(6);
        let hash: Vec<u8> = row.get(7);
        let fields = EntryFields {
            seq: u64::try_from(seq).unwrap_or(0),
            at_millis: row.get(1),
            kind: row.get(2),
            actor: row.get(3),
            action_id: row.get(4),
            body: row.get(5),
        };
        if let Err(error) = verifier.check(&fields, &prev, &hash) {
            broken = Some(error);
            break;
        }
        while let Some(claim) = claims.next_if(|c| c.size == verifier.count()) {
            let outcome = matched(&claim, &verifier.head());
            checks.push(CheckpointCheck { claim, outcome });
        }
    }
    conn.batch("CLOSE chain").await?;
    for claim in claims {
        let outcome = match &broken {
            Some(error) => CheckpointOutcome::Unverifiable {
                broken_at: error.seq(),
            },
            None => CheckpointOutcome::Truncated {
                entries: verifier.count(),
            },
        };
        checks.push(CheckpointCheck { claim, outcome });
    }
    report.checkpoints = checks;
    report.entries = verifier.count();
    report.head = hex(&verifier.head());
    report.broken = broken;
    Ok(())
}

/// One entry of the by-action walk.
struct EntryRow {
    action_id: String,
    seq: u64,
    at_millis: i64,
    kind: String,
    actor: String,
    body: String,
}

async fn next_entry(conn: &mut Conn, cursor: &mut Cursor) -> Result<Option<EntryRow>, StoreError> {
    Ok(cursor.next(conn).await?.map(|row| EntryRow {
        action_id: row.get(0),
        seq: row
            .get::<_, Option<i64>>(1)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
        at_millis: row.get(2),
        kind: row.get(3),
        actor: row.get(4),
        body: row.get(5),
    }))
}

type ActionRow = (String, Result<ActionRecord, StoreError>);

async fn next_action(
    conn: &mut Conn,
    cursor: &mut Cursor,
) -> Result<Option<ActionRow>, StoreError> {
    Ok(cursor
        .next(conn)
        .await?
        .map(|row| (row.get::<_, String>(0), action_from_row(&row))))
}

async fn verify_states(conn: &mut Conn, report: &mut AuditReport) -> Result<(), StoreError> {
    let mut actions = Cursor::open(
        conn,
        "actions_walk",
        &format!("SELECT {ACTION_COLUMNS} FROM actions ORDER BY id"),
    )
    .await?;
    let mut entries = Cursor::open(
        conn,
        "entries_walk",
        "SELECT action_id, seq, at, kind, actor, body FROM audit WHERE action_id <> '' \
         ORDER BY action_id, seq NULLS LAST, id",
    )
    .await?;
    let mut action = next_action(conn, &mut actions).await?;
    let mut entry = next_entry(conn, &mut entries).await?;
    loop {
        let order = match (&action, &entry) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((id, _)), Some(e)) => id.as_str().cmp(e.action_id.as_str()),
        };
        if order == std::cmp::Ordering::Less {
            let Some((id, record)) = action.take() else {
                break;
            };
            report.actions += 1;
            let stored = match record {
                Ok(record) => json!({"status": record.gate.status.as_str()}),
                Err(error) => json!(error.to_string()),
            };
            push(report, id, "log", stored, Value::Null);
            action = next_action(conn, &mut actions).await?;
            continue;
        }
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
            current = next_entry(conn, &mut entries).await?;
        }
        entry = current;
        let derived = match replay_error {
            Some(error) => Err(error),
            None => replay.finish(),
        };
        report.actions += 1;
        if order == std::cmp::Ordering::Greater {
            let status = derived
                .as_ref()
                .ok()
                .and_then(|d| d.status.clone())
                .unwrap_or(Value::Null);
            push(
                report,
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
        action = next_action(conn, &mut actions).await?;
        match (record, derived) {
            (Err(error), _) => push(report, id, "row", json!(error.to_string()), Value::Null),
            (Ok(_), Err(error)) => push(report, id, "log", Value::Null, json!(error.to_string())),
            (Ok(record), Ok(derived)) => {
                for mismatch in replay::compare(&stored_state(&record), &derived) {
                    push(
                        report,
                        id.clone(),
                        mismatch.field,
                        mismatch.stored,
                        mismatch.derived,
                    );
                }
            }
        }
    }
    conn.batch("CLOSE actions_walk; CLOSE entries_walk").await?;
    Ok(())
}

fn push(report: &mut AuditReport, action_id: String, field: &str, stored: Value, derived: Value) {
    report.state_mismatch_count += 1;
    if report.state_mismatches.len() < MAX_LISTED_MISMATCHES {
        report.state_mismatches.push(StateMismatch {
            action_id,
            field: field.to_owned(),
            stored,
            derived,
        });
    }
}

/// The chain's head as the linker left it.
pub(crate) async fn head(conn: &mut Conn) -> Result<AuditHead, StoreError> {
    let row = conn
        .query_one("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
        .await?;
    Ok(AuditHead {
        size: u64::try_from(row.get::<_, i64>(0))
            .map_err(|_| StoreError::Corrupt("audit head seq".into()))?,
        hash: row
            .get::<_, Vec<u8>>(1)
            .try_into()
            .map_err(|_| StoreError::Corrupt("audit head: hash length".into()))?,
    })
}

fn checkpoint_from_row(row: &Row) -> Result<StoredCheckpoint, StoreError> {
    let size: i64 = row.get(0);
    Ok(StoredCheckpoint {
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("checkpoint size {size}")))?,
        hash: row
            .get::<_, Vec<u8>>(1)
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {size}: hash length")))?,
        note: row.get(2),
        signed_at: from_millis(row.get(3))?,
    })
}

pub(crate) async fn latest_checkpoint(
    conn: &mut Conn,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    conn.query_opt(
        "SELECT size, hash, note, signed_at FROM checkpoints ORDER BY size DESC LIMIT 1",
        &[],
    )
    .await?
    .as_ref()
    .map(checkpoint_from_row)
    .transpose()
}

async fn entry_hash(conn: &mut Conn, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    Ok(conn
        .query_opt("SELECT hash FROM audit WHERE seq = $1", &[&seq])
        .await?
        .map(|row| row.get(0)))
}

/// Stores `new` if the log holds it and extends the latest stored (see SQLite's
/// `checkpoints::add`); `false` when the same one was stored already.
pub(crate) async fn add_checkpoint(
    conn: &mut Conn,
    new: NewCheckpoint,
) -> Result<(StoredCheckpoint, bool), StoreError> {
    super::ops::transaction!(conn, async {
        // One checkpoint decision at a time across instances.
        conn.batch("LOCK TABLE checkpoints IN SHARE ROW EXCLUSIVE MODE")
            .await?;
        if new.size == 0 {
            return Err(StoreError::CheckpointMismatch(
                "the audit log is empty: there is no head to sign yet".into(),
            ));
        }
        match entry_hash(conn, new.size).await? {
            Some(hash) if hash == new.hash => {}
            Some(_) => {
                return Err(StoreError::CheckpointMismatch(format!(
                    "entry {} has another hash",
                    new.size
                )));
            }
            None => {
                return Err(StoreError::CheckpointMismatch(format!(
                    "the log has no entry {}",
                    new.size
                )));
            }
        }
        if let Some(previous) = latest_checkpoint(conn).await? {
            if previous.size == new.size {
                return if previous.hash == new.hash {
                    Ok((previous, false))
                } else {
                    Err(StoreError::CheckpointMismatch(format!(
                        "a different checkpoint of size {} is already stored",
                        new.size
                    )))
                };
            }
            if entry_hash(conn, previous.size).await?.as_deref() != Some(&previous.hash[..]) {
                return Err(StoreError::CheckpointMismatch(format!(
                    "the log no longer extends the stored checkpoint of size {}: it was cut or rewritten, so it is not signed again",
                    previous.size
                )));
            }
        }
        let size = i64::try_from(new.size).unwrap_or(i64::MAX);
        conn.execute(
            "INSERT INTO checkpoints (size, hash, note, signed_at) VALUES ($1, $2, $3, $4)",
            &[&size, &&new.hash[..], &new.note, &millis(new.at)],
        )
        .await?;
        Ok((
            StoredCheckpoint {
                size: new.size,
                hash: new.hash,
                note: new.note.clone(),
                signed_at: from_millis(millis(new.at))?,
            },
            true,
        ))
    })
}
