//! The audit chain's head as the writer keeps it, and appending entries inside the
//! writer's transaction.

use chrono::{DateTime, Utc};
use countersign_core::audit::{EntryFields, GENESIS, entry_hash};
use rusqlite::{Connection, OptionalExtension, ToSql, params_from_iter};

use super::rows::millis;
use crate::audit_log::AuditEntry;
use crate::error::StoreError;

/// The last entry of the chain: its sequence number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Head {
    pub const GENESIS: Head = Head {
        seq: 0,
        hash: GENESIS,
    };
}

/// Reads the head from the database. The writer does this once per batch, inside its
/// write transaction: a microsecond-cheap primary-key lookup that keeps the chain right even
/// when another process (e.g. `token create --db`) appended entries meanwhile.
pub(crate) fn load_head(conn: &Connection) -> Result<Head, StoreError> {
    let row = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    let Some((seq, hash)) = row else {
        return Ok(Head::GENESIS);
    };
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit seq".into()))?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("audit entry {seq}: hash length")))?,
    })
}

pub(crate) use crate::entries::Draft;

/// Appends one entry after `head` and moves `head` to it.
pub(crate) fn append(
    conn: &Connection,
    head: &mut Head,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    action_id: &str,
    body: String,
) -> Result<AuditEntry, StoreError> {
    let mut entries = append_all(conn, head, at, action_id, vec![Draft { kind, actor, body }])?;
    Ok(entries.remove(0))
}

/// Appends `drafts` in order after `head`, all about `action_id` at `at`, in one statement,
/// and moves `head` to the last.
pub(crate) fn append_all(
    conn: &Connection,
    head: &mut Head,
    at: DateTime<Utc>,
    action_id: &str,
    drafts: Vec<Draft<'_>>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let at_millis = millis(at);
    let at = super::rows::from_millis(at_millis)?;
    let mut entries = Vec::with_capacity(drafts.len());
    let mut links = Vec::with_capacity(drafts.len());
    let mut next = *head;
    for draft in drafts {
        let seq = next.seq + 1;
        let hash = entry_hash(
            &next.hash,
            &EntryFields {
                seq,
                at_millis,
                kind: draft.kind,
                actor: draft.actor,
                action_id,
                body: &draft.body,
            },
        );
        entries.push(AuditEntry {
            seq,
            at,
            kind: draft.kind.to_owned(),
            actor: draft.actor.to_owned(),
            action_id: action_id.to_owned(),
            body: draft.body,
            prev: countersign_core::audit::hex(&next.hash),
            hash: countersign_core::audit::hex(&hash),
        });
        links.push((next.hash, hash));
        next = Head { seq, hash };
    }
    if entries.is_empty() {
        return Ok(entries);
    }
    let mut sql = String::from(
        "INSERT INTO audit (seq, at, kind, actor, action_id, body, prev, hash) VALUES ",
    );
    for i in 0..entries.len() {
        sql.push_str(if i == 0 { "" } else { ", " });
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?)");
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq as i64).collect();
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(entries.len() * 8);
    for ((entry, (prev, hash)), seq) in entries.iter().zip(&links).zip(&seqs) {
        values.extend([
            seq as &dyn ToSql,
            &at_millis,
            &entry.kind,
            &entry.actor,
            &action_id,
            &entry.body,
            prev,
            hash,
        ]);
    }
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    *head = next;
    Ok(entries)
}
