//! The audit chain on PostgreSQL: written in the change's transaction, linked after.
//!
//! A chain whose head is one row serialises every commit behind that row's lock, and the
//! lock is held across the commit's fsync, which defeats PostgreSQL's group commit
//! (measured here: ~1,000 commits/s at any concurrency). So a change's transaction only
//! *inserts* its entries (`seq`, `prev`, `hash` NULL) — concurrent transactions, on any
//! instance, commit together — and the linker gives committed entries their place in the
//! chain afterwards, many per transaction: it locks `audit_head`, reads the unlinked
//! entries in insertion order, hashes them onto the head and writes `seq`, `prev` and
//! `hash`. One linker at a time across the cluster (the head's row lock); each instance runs
//! one, woken by its own writes and every second, so entries of an instance that died are
//! linked by another.
//!
//! The order within one action is its order of events: a change to an action locks its row
//! first, so the transaction that wrote an action's earlier entry committed before the later
//! one inserted its own, with a larger id; the linker, taking entries by id among those
//! committed, links the earlier first. Entries of different actions may be linked in
//! another order than they were inserted, which nothing depends on.

use countersign_core::audit::{EntryFields, entry_hash};

use super::pool::Conn;
use crate::entries::Draft;
use crate::error::StoreError;

/// The most entries one linking transaction takes.
const LINK_BATCH: i64 = 4096;

/// Inserts `drafts`, in order, about `action_id` at `at_millis` (unlinked).
pub(crate) async fn insert(
    conn: &mut Conn,
    at_millis: i64,
    action_id: &str,
    drafts: &[Draft<'_>],
) -> Result<(), StoreError> {
    match drafts {
        [] => Ok(()),
        [one] => {
            conn.execute(
                "INSERT INTO audit (at, kind, actor, action_id, body) VALUES ($1, $2, $3, $4, $5)",
                &[&at_millis, &one.kind, &one.actor, &action_id, &one.body],
            )
            .await?;
            Ok(())
        }
        many => {
            let kinds: Vec<&str> = many.iter().map(|d| d.kind).collect();
            let actors: Vec<&str> = many.iter().map(|d| d.actor).collect();
            let bodies: Vec<&str> = many.iter().map(|d| d.body.as_str()).collect();
            // Inserted in the order given, so ids (and the chain) follow it.
            conn.execute(
                "INSERT INTO audit (at, kind, actor, action_id, body) \
                 SELECT $1, e.kind, e.actor, $2, e.body \
                 FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY \
                 AS e(kind, actor, body, n) ORDER BY e.n",
                &[&at_millis, &action_id, &kinds, &actors, &bodies],
            )
            .await?;
            Ok(())
        }
    }
}

/// Links every entry committed so far (in batches); returns how many it linked.
pub(crate) async fn link(conn: &mut Conn) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        conn.begin().await?;
        let linked = match link_batch(conn).await {
            Ok(linked) => linked,
            Err(error) => {
                conn.rollback().await;
                return Err(error);
            }
        };
        conn.commit().await?;
        total += linked;
        if linked < LINK_BATCH as u64 {
            return Ok(total);
        }
    }
}

async fn link_batch(conn: &mut Conn) -> Result<u64, StoreError> {
    // The head's lock first: from here on, this transaction's reads see every link made
    // before (read committed takes a new snapshot per statement).
    let head = conn
        .query_one(
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    let mut seq: i64 = head.get(0);
    let mut hash: [u8; 32] = head
        .get::<_, Vec<u8>>(1)
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit head: hash length".into()))?;
    let rows = conn
        .query(
            "SELECT id, at, kind, actor, action_id, body FROM audit WHERE seq IS NULL \
             ORDER BY id LIMIT $1",
            &[&LINK_BATCH],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    let mut prevs = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        seq += 1;
        let next = entry_hash(
            &hash,
            &EntryFields {
                seq: seq as u64,
                at_millis: row.get(1),
                kind: row.get(2),
                actor: row.get(3),
                action_id: row.get(4),
                body: row.get(5),
            },
        );
        ids.push(row.get::<_, i64>(0));
        seqs.push(seq);
        prevs.push(hash.to_vec());
        hashes.push(next.to_vec());
        hash = next;
    }
    conn.execute(
        "UPDATE audit SET seq = v.seq, prev = v.prev, hash = v.hash \
         FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS v(id, seq, prev, hash) \
         WHERE audit.id = v.id",
        &[&ids, &seqs, &prevs, &hashes],
    )
    .await?;
    conn.execute(
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[&seq, &hash.to_vec()],
    )
    .await?;
    Ok(rows.len() as u64)
}
