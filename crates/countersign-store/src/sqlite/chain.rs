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
    let seq = head.seq + 1;
    let at_millis = millis(at);
    let hash = entry_hash(
        &head.hash,
        &EntryFields {
            seq,
            at_millis,
            kind,
            actor,
            action_id,
            body: &body,
        },
    );
    sqlx::query(
        "INSERT INTO audit (seq, at, kind, actor, action_id, body, prev, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq as i64)
    .bind(at_millis)
    .bind(kind)
    .bind(actor)
    .bind(action_id)
    .bind(&body)
    .bind(&head.hash[..])
    .bind(&hash[..])
    .execute(&mut *conn)
    .await?;
    let entry = AuditEntry {
        seq,
        at: super::rows::from_millis(at_millis)?,
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        action_id: action_id.to_owned(),
        body,
        prev: countersign_core::audit::hex(&head.hash),
        hash: countersign_core::audit::hex(&hash),
    };
    *head = Head { seq, hash };
    Ok(entry)
}
