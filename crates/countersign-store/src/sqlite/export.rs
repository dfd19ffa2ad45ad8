//! Training cases for the export: actions in a submission window whose outcome carries a
//! label, oldest first, a page at a time (so that an export of millions is streamed in
//! bounded memory). The SQL narrows by status and review; `countersign_core::learning::case`
//! decides each label, and the caller keeps only the labels asked for.

use countersign_core::learning::Label;
use rusqlite::{Connection, ToSql};

use super::read::{action_page, by_id};
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::ids;
use crate::record::{ActionRecord, Page, page_limit};
use crate::stats_query::ExportQuery;

/// What a label needs of a row, in SQL (fixed fragments only).
fn condition(label: Label) -> &'static str {
    match label {
        Label::Rejected => "status = 'rejected'",
        Label::Modified => "(status = 'approved' AND original_args IS NOT NULL)",
        Label::Flagged => "(review_state = 'done' AND json_extract(review, '$.verdict') = 'flag')",
        Label::Expired => "status = 'expired'",
    }
}

pub(crate) fn export(
    conn: &Connection,
    query: &ExportQuery,
) -> Result<Page<ActionRecord>, StoreError> {
    if query.labels.is_empty() {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let limit = page_limit(query.limit);
    let after = query.cursor.as_deref().map(Cursor::parse).transpose()?;
    let mut sql = format!(
        "SELECT {} FROM actions WHERE id >= ? AND id < ?",
        super::rows::ACTION_COLUMNS
    );
    let since = query.window.since().map_or(0, |s| s.timestamp_millis());
    let until = query
        .window
        .until()
        .map_or(i64::MAX, |u| u.timestamp_millis());
    let mut values: Vec<Box<dyn ToSql>> = vec![
        Box::new(ids::floor_id(since)),
        Box::new(if until == i64::MAX {
            // Past every id: ids are 26 characters of lowercase base32.
            "~".to_owned()
        } else {
            ids::floor_id(until)
        }),
    ];
    if let Some(after) = after {
        sql.push_str(" AND id > ?");
        values.push(Box::new(after.id.to_owned()));
    }
    if let Some(glob) = &query.action {
        // Action-name globs use only `*` and `?`, which mean the same to SQLite's GLOB.
        sql.push_str(" AND action GLOB ?");
        values.push(Box::new(glob.as_str().to_owned()));
    }
    if let Some(rule) = &query.rule {
        sql.push_str(" AND rule = ?");
        values.push(Box::new(rule.clone()));
    }
    let conditions: Vec<&str> = query.labels.iter().map(|l| condition(*l)).collect();
    sql.push_str(&format!(
        " AND ({}) ORDER BY id LIMIT ?",
        conditions.join(" OR ")
    ));
    values.push(Box::new(i64::from(limit) + 1));
    action_page(conn, &sql, values, limit, query.max_bytes, by_id)
}
