//! Read queries, run on a read-only connection (and a few by the writer inside its
//! transaction). Every listing is keyset-paginated on an index, so the first page of a queue
//! of a million pending actions costs as much as the first page of ten; and a page ends
//! early once it holds its byte bound, so a thousand large actions are never one page.

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::rows::{self, ACTION_COLUMNS, AUDIT_COLUMNS, TOKEN_COLUMNS, millis};
use crate::audit_log::AuditEntry;
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::record::{
    ActionQuery, ActionRecord, DueDeadline, Page, QueueQuery, ReviewQuery, page_bytes, page_limit,
};
use crate::token::{self, Token};

type Conn = Connection;

pub(crate) fn action(conn: &Conn, id: &str) -> Result<Option<ActionRecord>, StoreError> {
    match super::ops::load_action(conn, id) {
        Ok(record) => Ok(Some(record)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn queue(conn: &Conn, query: &QueueQuery) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(Cursor::parse).transpose()?;
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
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(glob) = &query.action {
        // Action-name globs use only `*` and `?` as wildcards, and name characters are
        // never special to SQLite's GLOB, so the pattern means the same there.
        values.push(Box::new(literal.unwrap_or(glob.as_str()).to_owned()));
    }
    if let Some(after) = after {
        values.push(Box::new(after.key));
        values.push(Box::new(after.id.to_owned()));
    }
    values.push(Box::new(i64::from(limit) + 1));
    action_page(conn, &sql, values, limit, query.max_bytes, |r| {
        Cursor::after(r.gate.deadline.map(millis).unwrap_or_default(), &r.id)
    })
}

pub(crate) fn actions(conn: &Conn, query: &ActionQuery) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let before = query.cursor.as_deref().map(Cursor::parse).transpose()?;
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
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(agent) = &query.agent {
        values.push(Box::new(agent.as_str().to_owned()));
    }
    if let Some(status) = query.status {
        values.push(Box::new(status.as_str()));
    }
    if let Some(glob) = &query.action {
        values.push(Box::new(glob.as_str().to_owned()));
    }
    if let Some(before) = before {
        values.push(Box::new(before.id.to_owned()));
    }
    values.push(Box::new(i64::from(limit) + 1));
    action_page(conn, &sql, values, limit, query.max_bytes, by_id)
}

pub(crate) fn reviews(conn: &Conn, query: &ReviewQuery) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE review_state = ?");
    if after.is_some() {
        sql.push_str(" AND id > ?");
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    let mut values: Vec<Box<dyn ToSql>> =
        vec![Box::new(if query.reviewed { "done" } else { "open" })];
    if let Some(after) = after {
        values.push(Box::new(after.id.to_owned()));
    }
    values.push(Box::new(i64::from(limit) + 1));
    action_page(conn, &sql, values, limit, query.max_bytes, by_id)
}

/// The cursor of a listing ordered by id: keyed by the creation time, which the id's time
/// prefix repeats.
pub(crate) fn by_id(r: &ActionRecord) -> String {
    Cursor::after(millis(r.created_at), &r.id)
}

/// Runs a query selecting [`ACTION_COLUMNS`] (with `LIMIT limit + 1`) and reads a page:
/// `limit` rows, or fewer once they hold more than `max_bytes`. A row beyond the page means
/// there is more, and the last item's `cursor` says where to go on.
pub(crate) fn action_page(
    conn: &Conn,
    sql: &str,
    values: Vec<Box<dyn ToSql>>,
    limit: u32,
    max_bytes: usize,
    cursor: impl Fn(&ActionRecord) -> String,
) -> Result<Page<ActionRecord>, StoreError> {
    let max_bytes = page_bytes(max_bytes);
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values))?;
    let mut items = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        if items.len() >= limit as usize || bytes > max_bytes {
            return Ok(Page {
                next_cursor: items.last().map(&cursor),
                items,
            });
        }
        bytes += row_bytes(row);
        items.push(rows::action_from_row(row)?);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

/// The bytes a row holds: its text and blobs, and 8 for anything else.
fn row_bytes(row: &Row<'_>) -> usize {
    (0..row.as_ref().column_count())
        .map(|i| match row.get_ref(i) {
            Ok(ValueRef::Text(bytes) | ValueRef::Blob(bytes)) => bytes.len(),
            _ => 8,
        })
        .sum()
}

pub(crate) fn next_deadline(conn: &Conn) -> Result<Option<DateTime<Utc>>, StoreError> {
    let deadline: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT next_step_at FROM actions WHERE status = 'pending' \
             ORDER BY next_step_at, id LIMIT 1",
        )?
        .query_row([], |row| row.get(0))
        .optional()?;
    deadline.flatten().map(rows::from_millis).transpose()
}

pub(crate) fn due_deadlines(
    conn: &Conn,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DueDeadline>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, next_step_at FROM actions WHERE status = 'pending' AND next_step_at <= ? \
         ORDER BY next_step_at, id LIMIT ?",
    )?;
    let found = statement
        .query_map(params![millis(now), i64::from(page_limit(limit))], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    found
        .into_iter()
        .map(|(id, deadline)| {
            Ok(DueDeadline {
                id,
                deadline: rows::from_millis(deadline)?,
            })
        })
        .collect()
}

pub(crate) fn audit(
    conn: &Conn,
    after: u64,
    limit: u32,
    max_bytes: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let max_bytes = page_bytes(max_bytes);
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![
        i64::try_from(after).unwrap_or(i64::MAX),
        i64::from(page_limit(limit))
    ])?;
    let mut entries = Vec::new();
    let mut bytes = 0;
    while bytes <= max_bytes
        && let Some(row) = rows.next()?
    {
        let entry = rows::audit_from_row(row)?;
        bytes += entry.stored_bytes();
        entries.push(entry);
    }
    Ok(entries)
}

pub(crate) fn token(conn: &Conn, id: &str) -> Result<Option<Token>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([id])?;
    rows.next()?.map(rows::token_from_row).transpose()
}

pub(crate) fn authenticate(conn: &Conn, secret: &str) -> Result<Option<Token>, StoreError> {
    let computed = token::secret_hash(secret);
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([&computed[..]])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.get(7)?;
    if !token::hashes_match(&stored, &computed) {
        return Ok(None);
    }
    let mut token = rows::token_from_row(row)?;
    if token.revoked {
        return Ok(None);
    }
    // A person's login and tokens are one identity: the login's groups are the person's,
    // and a disabled person's tokens (revoked when disabled) authenticate nothing.
    if token.role != crate::Role::Agent
        && let Some(user) = super::people_ops::user(conn, token.name.as_str())?
    {
        if user.disabled {
            return Ok(None);
        }
        token.groups = user.groups;
    }
    Ok(Some(token))
}

pub(crate) fn tokens(conn: &Conn) -> Result<Vec<Token>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([])?;
    let mut tokens = Vec::new();
    while let Some(row) = rows.next()? {
        tokens.push(rows::token_from_row(row)?);
    }
    Ok(tokens)
}

/// Which of `ids` name revoked tokens. In chunks, to stay far below SQLite's limit on bound
/// parameters; each id is a primary-key lookup.
pub(crate) fn revoked_among(conn: &Conn, ids: &[String]) -> Result<Vec<String>, StoreError> {
    let mut revoked = Vec::new();
    for chunk in ids.chunks(256) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT id FROM tokens WHERE revoked_at IS NOT NULL AND id IN ({marks})");
        let mut statement = conn.prepare(&sql)?;
        let found = statement
            .query_map(rusqlite::params_from_iter(chunk), |row| {
                row.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        revoked.extend(found);
    }
    Ok(revoked)
}
