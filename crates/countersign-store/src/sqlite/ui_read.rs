//! The reviewer UI's reads: the filtered pending queue walked both ways, counts per tier,
//! the last approved action like another, and filtered windows of the audit log. Each is
//! answered from an index (migration 4) or, for the log, within a bounded scan.

use rusqlite::{Connection, ToSql, params};

use super::rows::{self, ACTION_COLUMNS, AUDIT_COLUMNS, millis};
use crate::error::StoreError;
use crate::record::{ActionRecord, page_bytes, page_limit};
use crate::ui_query::{
    AuditFilter, AuditWindow, LastApproved, PendingPage, PendingQuery, TierCounts,
};

type Conn = Connection;

pub(crate) fn pending(
    conn: &Conn,
    query: &PendingQuery,
) -> Result<PendingPage<ActionRecord>, StoreError> {
    let limit = page_limit(query.limit);
    // Only fixed fragments are spliced in; values are bound. Each filter is an equality on
    // the leading column of a partial index in (deadline, id) order, except a wildcard
    // action pattern, which filters the deadline-ordered scan.
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE status = 'pending'");
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(glob) = &query.action {
        match glob.literal() {
            Some(literal) => {
                sql.push_str(" AND action = ?");
                values.push(Box::new(literal.to_owned()));
            }
            None => {
                sql.push_str(" AND action GLOB ?");
                values.push(Box::new(glob.as_str().to_owned()));
            }
        }
    }
    if let Some(agent) = &query.agent {
        sql.push_str(" AND agent = ?");
        values.push(Box::new(agent.as_str().to_owned()));
    }
    if let Some(tier) = query.tier {
        sql.push_str(" AND tier = ?");
        values.push(Box::new(tier.as_str()));
    }
    if let Some(from) = &query.from {
        sql.push_str(if query.backwards {
            " AND (deadline, id) < (?, ?)"
        } else {
            " AND (deadline, id) > (?, ?)"
        });
        values.push(Box::new(millis(from.deadline)));
        values.push(Box::new(from.id.clone()));
    }
    sql.push_str(if query.backwards {
        " ORDER BY deadline DESC, id DESC LIMIT ?"
    } else {
        " ORDER BY deadline, id LIMIT ?"
    });
    values.push(Box::new(i64::from(limit) + 1));
    let max_bytes = page_bytes(query.max_bytes);
    let mut statement = conn.prepare_cached(&sql)?;
    let mut found = statement.query(rusqlite::params_from_iter(values))?;
    let mut items = Vec::new();
    let mut bytes = 0;
    let mut more = false;
    while let Some(row) = found.next()? {
        if items.len() >= limit as usize || bytes > max_bytes {
            more = true;
            break;
        }
        let record = rows::action_from_row(row)?;
        bytes += record.reasoning.as_ref().map_or(0, String::len) + 512;
        items.push(record);
    }
    if query.backwards {
        items.reverse();
    }
    Ok(PendingPage { items, more })
}

pub(crate) fn pending_counts(conn: &Conn) -> Result<TierCounts, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT tier, count(*) FROM actions INDEXED BY actions_pending_by_tier \
         WHERE status = 'pending' GROUP BY tier",
    )?;
    let mut counts = TierCounts::default();
    let found = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (tier, count) in found {
        let count = u64::try_from(count).unwrap_or(0);
        match tier.as_str() {
            "approve" => counts.approve += count,
            "confirm" => counts.confirm += count,
            _ => counts.other += count,
        }
    }
    Ok(counts)
}

pub(crate) fn last_approved(
    conn: &Conn,
    query: &LastApproved<'_>,
) -> Result<Option<ActionRecord>, StoreError> {
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM actions INDEXED BY actions_approved \
         WHERE status = 'approved' AND agent = ? AND action = ? AND id <> ? \
         ORDER BY id DESC LIMIT 1"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut found = statement.query(params![
        query.agent.as_str(),
        query.action.as_str(),
        query.except
    ])?;
    found.next()?.map(rows::action_from_row).transpose()
}

/// Entries looked at per request when the caller does not say.
const DEFAULT_SCAN: u64 = 50_000;

pub(crate) fn audit_window(conn: &Conn, filter: &AuditFilter) -> Result<AuditWindow, StoreError> {
    let total: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM audit")?
        .query_row([], |row| row.get(0))?;
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
    // The rowid range `[floor, before)` is all that is read, newest first: bounded work,
    // whatever the filter matches.
    let floor = before.saturating_sub(scan).max(1);
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq < ? AND seq >= ?");
    let mut values: Vec<Box<dyn ToSql>> = vec![
        Box::new(i64::try_from(before).unwrap_or(i64::MAX)),
        Box::new(i64::try_from(floor).unwrap_or(0)),
    ];
    if let Some(action_id) = &filter.action_id {
        sql.push_str(" AND action_id = ?");
        values.push(Box::new(action_id.clone()));
    }
    if let Some(actor) = &filter.actor {
        sql.push_str(" AND lower(actor) = ?");
        values.push(Box::new(actor.as_str().to_owned()));
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    values.push(Box::new(i64::from(limit)));
    let mut statement = conn.prepare_cached(&sql)?;
    let mut found = statement.query(rusqlite::params_from_iter(values))?;
    let mut entries = Vec::new();
    while let Some(row) = found.next()? {
        entries.push(rows::audit_from_row(row)?);
    }
    // A full page goes on below its last entry; a short one below the scanned range.
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
