//! Read queries, run on the read-only pool (and a few by the writer inside its
//! transaction). Every listing is keyset-paginated on an index, so the first page of a queue
//! of a million pending actions costs as much as the first page of ten.

use chrono::{DateTime, Utc};
use countersign_core::audit::Verifier;
use countersign_core::audit::{EntryFields, hex};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use super::rows::{self, ACTION_COLUMNS, AUDIT_COLUMNS, TOKEN_COLUMNS, millis};
use crate::audit_log::{AuditEntry, ChainReport};
use crate::error::StoreError;
use crate::record::{
    ActionQuery, ActionRecord, DueDeadline, Page, QueueQuery, ReviewQuery, page_limit,
};
use crate::token::{self, Token};

type Conn = SqliteConnection;

pub(crate) async fn action(conn: &mut Conn, id: &str) -> Result<Option<ActionRecord>, StoreError> {
    match super::ops::load_action(conn, id).await {
        Ok(record) => Ok(Some(record)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Queue cursors are `DEADLINE_MILLIS.ID`.
fn queue_cursor(cursor: &str) -> Result<(i64, &str), StoreError> {
    let bad = || StoreError::BadCursor(cursor.to_owned());
    let (deadline, id) = cursor.split_once('.').ok_or_else(bad)?;
    let deadline = deadline.parse().map_err(|_| bad())?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok((deadline, id))
}

/// Listing cursors are an id.
fn id_cursor(cursor: &str) -> Result<&str, StoreError> {
    if cursor.is_empty() || !cursor.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(StoreError::BadCursor(cursor.to_owned()));
    }
    Ok(cursor)
}

/// Splits the one extra row a listing fetched off into a cursor.
fn page(
    mut items: Vec<ActionRecord>,
    limit: u32,
    cursor: impl Fn(&ActionRecord) -> String,
) -> Page<ActionRecord> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(cursor) } else { None };
    Page { items, next_cursor }
}

pub(crate) async fn queue(
    conn: &mut Conn,
    query: &QueueQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(queue_cursor).transpose()?;
    // Only fixed fragments are spliced in; values are bound.
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'pending'");
    // A literal name is an equality, which the `actions_pending_by_action` index answers in
    // order; a wildcard pattern filters the deadline-ordered scan.
    let literal = query.action.as_ref().and_then(|glob| glob.literal());
    match (&query.action, literal) {
        (_, Some(_)) => sql.push_str(" AND action = ?"),
        (Some(_), None) => sql.push_str(" AND action GLOB ?"),
        (None, None) => {}
    }
    if after.is_some() {
        sql.push_str(" AND (deadline, id) > (?, ?)");
    }
    sql.push_str(" ORDER BY deadline, id LIMIT ?");
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let Some(glob) = &query.action {
        // Action-name globs use only `*` and `?` as wildcards, and name characters are
        // never special to SQLite's GLOB, so the pattern means the same there.
        q = q.bind(literal.unwrap_or(glob.as_str()).to_owned());
    }
    if let Some((deadline, id)) = after {
        q = q.bind(deadline).bind(id.to_owned());
    }
    let rows = q.bind(i64::from(limit) + 1).fetch_all(&mut *conn).await?;
    let items = rows
        .iter()
        .map(rows::action_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(items, limit, |r| {
        format!("{}.{}", r.deadline.map(millis).unwrap_or_default(), r.id)
    }))
}

pub(crate) async fn actions(
    conn: &mut Conn,
    query: &ActionQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let before = query.cursor.as_deref().map(id_cursor).transpose()?;
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE 1 = 1");
    if query.agent.is_some() {
        sql.push_str(" AND agent = ?");
    }
    if query.status.is_some() {
        sql.push_str(" AND status = ?");
    }
    if query.action.is_some() {
        sql.push_str(" AND action GLOB ?");
    }
    if before.is_some() {
        sql.push_str(" AND id < ?");
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    let mut q = sqlx::query(AssertSqlSafe(sql));
    if let Some(agent) = &query.agent {
        q = q.bind(agent.clone());
    }
    if let Some(status) = query.status {
        q = q.bind(status.as_str());
    }
    if let Some(glob) = &query.action {
        q = q.bind(glob.as_str().to_owned());
    }
    if let Some(id) = before {
        q = q.bind(id.to_owned());
    }
    let rows = q.bind(i64::from(limit) + 1).fetch_all(&mut *conn).await?;
    let items = rows
        .iter()
        .map(rows::action_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(items, limit, |r| r.id.clone()))
}

pub(crate) async fn reviews(
    conn: &mut Conn,
    query: &ReviewQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(id_cursor).transpose()?;
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE review_state = ?");
    if after.is_some() {
        sql.push_str(" AND id > ?");
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(if query.reviewed { "done" } else { "open" });
    if let Some(id) = after {
        q = q.bind(id.to_owned());
    }
    let rows = q.bind(i64::from(limit) + 1).fetch_all(&mut *conn).await?;
    let items = rows
        .iter()
        .map(rows::action_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(items, limit, |r| r.id.clone()))
}

pub(crate) async fn next_deadline(conn: &mut Conn) -> Result<Option<DateTime<Utc>>, StoreError> {
    let deadline: Option<i64> = sqlx::query_scalar(
        "SELECT deadline FROM actions WHERE status = 'pending' ORDER BY deadline, id LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    deadline.map(rows::from_millis).transpose()
}

pub(crate) async fn due_deadlines(
    conn: &mut Conn,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DueDeadline>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, deadline FROM actions WHERE status = 'pending' AND deadline <= ? \
         ORDER BY deadline, id LIMIT ?",
    )
    .bind(millis(now))
    .bind(i64::from(page_limit(limit)))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DueDeadline {
                id: row.try_get(0)?,
                deadline: rows::from_millis(row.try_get(1)?)?,
            })
        })
        .collect()
}

pub(crate) async fn audit(
    conn: &mut Conn,
    after: u64,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::from(page_limit(limit)))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(rows::audit_from_row).collect()
}

/// Verifies the chain in stored order, a chunk at a time (memory stays flat however long
/// the log is). Run inside one read transaction so that the chunks see one snapshot.
pub(crate) async fn verify(conn: &mut Conn) -> Result<ChainReport, StoreError> {
    const CHUNK: i64 = 10_000;
    let mut verifier = Verifier::default();
    let mut last_rowid = i64::MIN;
    loop {
        // By rowid (= seq unless someone renumbered rows), and the verifier checks that seq
        // follows on: a removed or reordered entry shows as a gap or a broken link.
        let rows = sqlx::query(
            "SELECT rowid, seq, at, kind, actor, action_id, body, prev, hash FROM audit \
             WHERE rowid > ? ORDER BY rowid LIMIT ?",
        )
        .bind(last_rowid)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            last_rowid = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            let kind: String = row.try_get(3)?;
            let actor: String = row.try_get(4)?;
            let action_id: String = row.try_get(5)?;
            // A body that is not text (a tampered file) is verified as empty: it cannot
            // match its hash unless it was empty, which the hash then says.
            let body: String = row.try_get(6).unwrap_or_default();
            let prev: Vec<u8> = row.try_get(7).unwrap_or_default();
            let hash: Vec<u8> = row.try_get(8).unwrap_or_default();
            let fields = EntryFields {
                seq: u64::try_from(seq).unwrap_or(0),
                at_millis: row.try_get(2)?,
                kind: &kind,
                actor: &actor,
                action_id: &action_id,
                body: &body,
            };
            if let Err(broken) = verifier.check(&fields, &prev, &hash) {
                return Ok(ChainReport {
                    entries: verifier.count(),
                    head: hex(&verifier.head()),
                    broken: Some(broken),
                });
            }
        }
    }
    Ok(ChainReport {
        entries: verifier.count(),
        head: hex(&verifier.head()),
        broken: None,
    })
}

pub(crate) async fn token(conn: &mut Conn, id: &str) -> Result<Option<Token>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(rows::token_from_row).transpose()
}

pub(crate) async fn authenticate(
    conn: &mut Conn,
    secret: &str,
) -> Result<Option<Token>, StoreError> {
    let computed = token::secret_hash(secret);
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(&computed[..])
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: Vec<u8> = row.try_get(7)?;
    if !token::hashes_match(&stored, &computed) {
        return Ok(None);
    }
    let token = rows::token_from_row(&row)?;
    Ok((!token.revoked).then_some(token))
}

pub(crate) async fn tokens(conn: &mut Conn) -> Result<Vec<Token>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id");
    let rows = sqlx::query(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(rows::token_from_row).collect()
}
