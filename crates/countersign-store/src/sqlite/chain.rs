//! The audit chain's head as the writer keeps it, and appending an entry inside the
//! writer's transaction.

use chrono::{DateTime, Utc};
use countersign_core::audit::{EntryFields, GENESIS, entry_hash};
use sqlx::{Row, SqliteConnection};

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
pub(crate) async fn load_head(conn: &mut SqliteConnection) -> Result<Head, StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Head::GENESIS);
    };
    let seq: i64 = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(1)?;
    Ok(Head {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit seq".into()))?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("audit entry {seq}: hash length")))?,
    })
}

/// One entry to append: what happened, who did it, and its body.
pub(crate) struct Draft<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub body: String,
}

/// Appends one entry after `head` and moves `head` to it.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    head: &mut Head,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    action_id: &str,
    body: String,
) -> Result<AuditEntry, StoreError> {
    let mut entries =
        append_all(conn, head, at, action_id, vec![Draft { kind, actor, body }]).await?;
    Ok(entries.remove(0))
}

/// Appends `drafts` in order after `head`, all about `action_id` at `at`, in one
/// statement, and moves `head` to the last. One statement rather than one per entry
/// because every statement is a round trip to SQLite's connection thread, and the writer
/// runs them one after another.
pub(crate) async fn append_all(
    conn: &mut SqliteConnection,
    head: &mut Head,
    at: DateTime<Utc>,
    action_id: &str,
    drafts: Vec<Draft<'_>>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let at_millis = millis(at);
    let at = super::rows::from_millis(at_millis)?;
    let mut entries = Vec::with_capacity(drafts.len());
    let mut hashes = Vec::with_capacity(drafts.len());
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
        hashes.push((next.hash, hash));
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
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (entry, (prev, hash)) in entries.iter().zip(&hashes) {
        query = query
            .bind(entry.seq as i64)
            .bind(at_millis)
            .bind(entry.kind.as_str())
            .bind(entry.actor.as_str())
            .bind(action_id)
            .bind(entry.body.as_str())
            .bind(prev.to_vec())
            .bind(hash.to_vec());
    }
    query.execute(&mut *conn).await?;
    *head = next;
    Ok(entries)
}
