//! Reads on PostgreSQL: the API's listings (keyset-paginated on the same indexes as SQLite's,
//! ending early at their byte bound), tokens, the SLA ladder's look-ahead, the reviewer UI's
//! reads, and the linked audit log.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::pool::Conn;
use super::rows::{
    ACTION_COLUMNS, AUDIT_COLUMNS, TOKEN_COLUMNS, action_from_row, audit_from_row, like_pattern,
    row_bytes, token_from_row,
};
use crate::audit_log::AuditEntry;
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::record::{
    ActionQuery, ActionRecord, DueDeadline, Page, QueueQuery, ReviewQuery, page_bytes, page_limit,
};
use crate::sqlite::rows::{from_millis, millis};
use crate::token::{self, Token};
use crate::ui_query::{
    AuditFilter, AuditWindow, LastApproved, PendingPage, PendingQuery, TierCounts,
};

/// Query values, owned, for SQL built from fixed fragments.
#[derive(Default)]
struct Values(Vec<Box<dyn ToSql + Sync + Send>>);

impl Values {
    /// Adds a value; returns its placeholder.
    fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
    }
}

pub(crate) async fn queue(
    conn: &mut Conn,
    query: &QueueQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut values = Values::default();
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'pending'");
    if let Some(glob) = &query.action {
        match glob.literal() {
            Some(literal) => {
                sql += &format!(" AND action = {}", values.push(literal.to_owned()));
            }
            None => {
                sql += &format!(
                    " AND action LIKE {} ESCAPE '\\'",
                    values.push(like_pattern(glob.as_str()))
                );
            }
        }
    }
    if let Some(after) = &after {
        let key = values.push(after.key);
        let id = values.push(after.id.to_owned());
        sql += &format!(" AND (deadline, id) > ({key}, {id})");
    }
    sql += &format!(
        " ORDER BY deadline, id LIMIT {}",
        values.push(i64::from(limit) + 1)
    );
    action_page(conn, &sql, &values, limit, query.max_bytes, |r| {
        Cursor::after(r.gate.deadline.map(millis).unwrap_or_default(), &r.id)
    })
    .await
}

pub(crate) async fn actions(
    conn: &mut Conn,
    query: &ActionQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let before = query.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut values = Values::default();
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE true");
    if let Some(agent) = &query.agent {
        sql += &format!(" AND agent = {}", values.push(agent.as_str().to_owned()));
    }
    if let Some(status) = query.status {
        sql += &format!(" AND status = {}", values.push(status.as_str()));
    }
    if let Some(glob) = &query.action {
        sql += &format!(
            " AND action LIKE {} ESCAPE '\\'",
            values.push(like_pattern(glob.as_str()))
        );
    }
    if let Some(before) = &before {
        sql += &format!(" AND id < {}", values.push(before.id.to_owned()));
    }
    sql += &format!(
        " ORDER BY id DESC LIMIT {}",
        values.push(i64::from(limit) + 1)
    );
    action_page(conn, &sql, &values, limit, query.max_bytes, by_id).await
}

pub(crate) async fn reviews(
    conn: &mut Conn,
    query: &ReviewQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut values = Values::default();
    let state = values.push(if query.reviewed { "done" } else { "open" });
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE review_state = {state}");
    if let Some(after) = &after {
        sql += &format!(" AND id > {}", values.push(after.id.to_owned()));
    }
    sql += &format!(" ORDER BY id LIMIT {}", values.push(i64::from(limit) + 1));
    action_page(conn, &sql, &values, limit, query.max_bytes, by_id).await
}

fn by_id(r: &ActionRecord) -> String {
    Cursor::after(millis(r.created_at), &r.id)
}

/// Reads a page of a query with `LIMIT limit + 1` (see SQLite's `action_page`).
async fn action_page(
    conn: &mut Conn,
    sql: &str,
    values: &Values,
    limit: u32,
    max_bytes: usize,
    cursor: impl Fn(&ActionRecord) -> String,
) -> Result<Page<ActionRecord>, StoreError> {
    let max_bytes = page_bytes(max_bytes);
    let rows = conn.query(sql, &values.refs()).await?;
    let mut items = Vec::new();
    let mut bytes = 0;
    for row in &rows {
        if items.len() >= limit as usize || bytes > max_bytes {
            return Ok(Page {
                next_cursor: items.last().map(&cursor),
                items,
            });
        }
        bytes += row_bytes(row);
        items.push(action_from_row(row)?);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

pub(crate) async fn next_deadline(conn: &mut Conn) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = conn
        .query_opt(
            "SELECT deadline FROM actions WHERE status = 'pending' ORDER BY deadline, id LIMIT 1",
            &[],
        )
        .await?;
    row.and_then(|row| row.get::<_, Option<i64>>(0))
        .map(from_millis)
        .transpose()
}

pub(crate) async fn due_deadlines(
    conn: &mut Conn,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DueDeadline>, StoreError> {
    let rows = conn
        .query(
            "SELECT id, deadline FROM actions WHERE status = 'pending' AND deadline <= $1 \
             ORDER BY deadline, id LIMIT $2",
            &[&millis(now), &i64::from(page_limit(limit))],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DueDeadline {
                id: row.get(0),
                deadline: from_millis(row.get(1))?,
            })
        })
        .collect()
}

pub(crate) async fn audit(
    conn: &mut Conn,
    after: u64,
    limit: u32,
    max_bytes: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let max_bytes = page_bytes(max_bytes);
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2");
    let rows = conn
        .query(
            &sql,
            &[
                &i64::try_from(after).unwrap_or(i64::MAX),
                &i64::from(page_limit(limit)),
            ],
        )
        .await?;
    let mut entries = Vec::new();
    let mut bytes = 0;
    for row in &rows {
        if bytes > max_bytes {
            break;
        }
        let entry = audit_from_row(row)?;
        bytes += entry.stored_bytes();
        entries.push(entry);
    }
    Ok(entries)
}

pub(crate) async fn authenticate(
    conn: &mut Conn,
    secret: &str,
) -> Result<Option<Token>, StoreError> {
    let computed = token::secret_hash(secret);
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = $1");
    let Some(row) = conn.query_opt(&sql, &[&&computed[..]]).await? else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.get(7);
    if !token::hashes_match(&stored, &computed) {
        return Ok(None);
    }
    let mut token = token_from_row(&row)?;
    if token.revoked {
        return Ok(None);
    }
    if token.role != crate::Role::Agent
        && let Some(user) = super::admin_ops::user(conn, token.name.as_str()).await?
    {
        if user.disabled {
            return Ok(None);
        }
        token.groups = user.groups;
    }
    Ok(Some(token))
}

pub(crate) async fn tokens(conn: &mut Conn) -> Result<Vec<Token>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id");
    conn.query(&sql, &[])
        .await?
        .iter()
        .map(token_from_row)
        .collect()
}

pub(crate) async fn revoked_among(
    conn: &mut Conn,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let rows = conn
        .query(
            "SELECT id FROM tokens WHERE revoked_at IS NOT NULL AND id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(crate) async fn pending(
    conn: &mut Conn,
    query: &PendingQuery,
) -> Result<PendingPage<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    let mut values = Values::default();
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'pending'");
    if let Some(glob) = &query.action {
        match glob.literal() {
            Some(literal) => sql += &format!(" AND action = {}", values.push(literal.to_owned())),
            None => {
                sql += &format!(
                    " AND action LIKE {} ESCAPE '\\'",
                    values.push(like_pattern(glob.as_str()))
                );
            }
        }
    }
    if let Some(agent) = &query.agent {
        sql += &format!(" AND agent = {}", values.push(agent.as_str().to_owned()));
    }
    if let Some(tier) = query.tier {
        sql += &format!(" AND tier = {}", values.push(tier.as_str()));
    }
    if let Some(from) = &query.from {
        let deadline = values.push(millis(from.deadline));
        let id = values.push(from.id.clone());
        let op = if query.backwards { "<" } else { ">" };
        sql += &format!(" AND (deadline, id) {op} ({deadline}, {id})");
    }
    let limit_value = values.push(i64::from(limit) + 1);
    sql += &if query.backwards {
        format!(" ORDER BY deadline DESC, id DESC LIMIT {limit_value}")
    } else {
        format!(" ORDER BY deadline, id LIMIT {limit_value}")
    };
    let max_bytes = page_bytes(query.max_bytes);
    let rows = conn.query(&sql, &values.refs()).await?;
    let mut items = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    for row in &rows {
        if items.len() >= limit as usize || bytes > max_bytes {
            more = true;
            break;
        }
        let record = action_from_row(row)?;
        bytes += record.reasoning.as_ref().map_or(0, String::len) + 512;
        items.push(record);
    }
    if query.backwards {
        items.reverse();
    }
    Ok(PendingPage { items, more })
}

pub(crate) async fn pending_counts(conn: &mut Conn) -> Result<TierCounts, StoreError> {
    let rows = conn
        .query(
            "SELECT tier, count(*) FROM actions WHERE status = 'pending' GROUP BY tier",
            &[],
        )
        .await?;
    let mut counts = TierCounts::default();
    for row in &rows {
        let count = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        match row.get::<_, &str>(0) {
            "approve" => counts.approve += count,
            "confirm" => counts.confirm += count,
            _ => counts.other += count,
        }
    }
    Ok(counts)
}

pub(crate) async fn last_approved(
    conn: &mut Conn,
    query: &LastApproved<'_>,
) -> Result<Option<ActionRecord>, StoreError> {
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM actions \
         WHERE status = 'approved' AND agent = $1 AND action = $2 AND id <> $3 \
         ORDER BY id DESC LIMIT 1"
    );
    conn.query_opt(
        &sql,
        &[&query.agent.as_str(), &query.action.as_str(), &query.except],
    )
    .await?
    .as_ref()
    .map(action_from_row)
    .transpose()
}

/// Entries looked at per request when the caller does not say.
const DEFAULT_SCAN: u64 = 50_000;

pub(crate) async fn audit_window(
    conn: &mut Conn,
    filter: &AuditFilter,
) -> Result<AuditWindow, StoreError> {
    let total: i64 = conn
        .query_one("SELECT seq FROM audit_head WHERE id = 1", &[])
        .await?
        .get(0);
    let total = u64::try_from(total).unwrap_or(0);
    let limit = match filter.limit {
        0 => 100,
        n => n.min(1000),
    };
    let scan = match filter.scan {
        0 => DEFAULT_SCAN,
        n => n,
    };
    let before = filter.before.unwrap_or(total + 1).min(total + 1);
    let floor = before.saturating_sub(scan).max(1);
    let mut values = Values::default();
    let mut sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit WHERE seq < {} AND seq >= {}",
        values.push(i64::try_from(before).unwrap_or(i64::MAX)),
        values.push(i64::try_from(floor).unwrap_or(0)),
    );
    if let Some(action_id) = &filter.action_id {
        sql += &format!(" AND action_id = {}", values.push(action_id.clone()));
    }
    if let Some(actor) = &filter.actor {
        sql += &format!(
            " AND lower(actor) = {}",
            values.push(actor.as_str().to_owned())
        );
    }
    sql += &format!(" ORDER BY seq DESC LIMIT {}", values.push(i64::from(limit)));
    let rows = conn.query(&sql, &values.refs()).await?;
    let entries = rows
        .iter()
        .map(audit_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_before = if entries.len() as u32 == limit {
        entries.last().map(|e| e.seq)
    } else {
        Some(floor)
    }
    .filter(|&seq| seq > 1);
    Ok(AuditWindow {
        entries,
        next_before,
        total,
    })
}
