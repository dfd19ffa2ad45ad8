//! Signed checkpoints in the database: kept beside the log they sign (the published copies
//! outside the database are what proves completeness; these make the latest one easy to
//! find and let verification check it). A checkpoint is stored only if the log holds its
//! entry with its hash and still extends the latest one stored before it, so the store
//! never keeps two inconsistent checkpoints.

use rusqlite::{Connection, OptionalExtension, params};

use super::chain::load_head;
use super::rows::{from_millis, millis};
use crate::audit_log::{AuditHead, NewCheckpoint, StoredCheckpoint};
use crate::error::StoreError;

pub(crate) fn head(conn: &Connection) -> Result<AuditHead, StoreError> {
    let head = load_head(conn)?;
    Ok(AuditHead {
        size: head.seq,
        hash: head.hash,
    })
}

/// The hash of entry `seq`, if the log has it.
fn entry_hash(conn: &Connection, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached("SELECT hash FROM audit WHERE seq = ?")?
        .query_row([seq], |row| row.get(0))
        .optional()?)
}

fn from_row(row: &rusqlite::Row<'_>) -> Result<StoredCheckpoint, StoreError> {
    let size: i64 = row.get(0)?;
    let hash: Vec<u8> = row.get(1)?;
    Ok(StoredCheckpoint {
        size: u64::try_from(size)
            .map_err(|_| StoreError::Corrupt(format!("checkpoint size {size}")))?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {size}: hash length")))?,
        note: row.get(2)?,
        signed_at: from_millis(row.get(3)?)?,
    })
}

pub(crate) fn latest(conn: &Connection) -> Result<Option<StoredCheckpoint>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT size, hash, note, signed_at FROM checkpoints ORDER BY size DESC LIMIT 1",
    )?;
    let mut rows = statement.query([])?;
    rows.next()?.map(from_row).transpose()
}

/// Stores `new` (in the writer's transaction); `false` when the same checkpoint was already
/// stored.
pub(crate) fn add(
    conn: &Connection,
    new: NewCheckpoint,
) -> Result<(StoredCheckpoint, bool), StoreError> {
    if new.size == 0 {
        return Err(StoreError::CheckpointMismatch(
            "the audit log is empty: there is no head to sign yet".into(),
        ));
    }
    match entry_hash(conn, new.size)? {
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
    if let Some(previous) = latest(conn)? {
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
        // The log must still extend the last checkpoint: signing a head of a log rewritten
        // since would vouch for the rewrite.
        if entry_hash(conn, previous.size)?.as_deref() != Some(&previous.hash[..]) {
            return Err(StoreError::CheckpointMismatch(format!(
                "the log no longer extends the stored checkpoint of size {}: it was cut or rewritten, so it is not signed again",
                previous.size
            )));
        }
    }
    let size = i64::try_from(new.size).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO checkpoints (size, hash, note, signed_at) VALUES (?, ?, ?, ?)",
    )?
    .execute(params![size, &new.hash[..], &new.note, millis(new.at)])?;
    Ok((
        StoredCheckpoint {
            size: new.size,
            hash: new.hash,
            note: new.note,
            signed_at: from_millis(millis(new.at))?,
        },
        true,
    ))
}
