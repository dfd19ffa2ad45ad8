//! Graduation's reads and writes: recorded submissions streamed in one snapshot, the
//! evidence per rule and action aggregated from the `actions_history` index (migration
//! 8), corrected actions' arguments for narrowing, policy loads and regression alerts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use countersign_core::graduation::{Evidence, GroupKey, Recorded};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::chain::{self, Head};
use super::outbox_ops::Emitter;
use super::rows::{from_millis, millis};
use crate::audit_log::{AuditEntry, kind};
use crate::entries;
use crate::error::StoreError;
use crate::history::{
    ActiveRegression, DecisionsRow, HistoryVisitor, NewRegression, PolicyLoad, RecordedColumns,
    add_reviews,
};

type Conn = Connection;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Streams submissions since `since` to `visit`; answers how many were visited.
pub(crate) fn scan(
    conn: &Conn,
    since: DateTime<Utc>,
    mut visit: HistoryVisitor,
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare(
        "SELECT id, action, agent, COALESCE(original_args, args), context, confidence, hints, \
         created_at, tier, rule, status, original_args IS NOT NULL, review_state = 'done', \
         json_extract(review, '$.verdict') = 'flag' \
         FROM actions WHERE created_at >= ?",
    )?;
    let mut rows = statement.query(params![millis(since)])?;
    let mut visited = 0;
    while let Some(row) = rows.next()? {
        visited += 1;
        if !visit(recorded(row)?) {
            break;
        }
    }
    Ok(visited)
}

fn recorded(row: &Row<'_>) -> Result<Recorded, StoreError> {
    RecordedColumns {
        id: row.get(0)?,
        action: row.get(1)?,
        agent: row.get(2)?,
        args: row.get(3)?,
        context: row.get(4)?,
        confidence: row.get(5)?,
        hints: row.get(6)?,
        created_at: row.get(7)?,
        tier: row.get(8)?,
        rule: row.get(9)?,
        status: row.get(10)?,
        modified: row.get(11)?,
        reviewed: row.get::<_, Option<bool>>(12)?.unwrap_or(false),
        flagged: row.get::<_, Option<bool>>(13)?.unwrap_or(false),
    }
    .recorded()
}

/// The decisions' aggregate, grouped in the order of `actions_history` (which holds every
/// column it reads), so that SQLite streams the groups off the index without a sort and
/// computes one sum a row: the time is in the aggregate functions (~50 ns each a row, on
/// this project's machines), not in reading the index, so the status is a grouping key
/// rather than four `sum(status = ...)`. A condition on the row may follow the window
/// (`evidence_below`'s reads the arguments).
const DECISIONS: &str = "SELECT rule, action, tier, status, count(*), \
     sum(original_args IS NOT NULL), min(created_at), max(created_at), max(decided_at) \
     FROM actions INDEXED BY actions_history WHERE created_at >= ?1";
const DECISIONS_GROUPS: &str = " GROUP BY rule, action, tier, status";

/// The post-hoc reviews' aggregate: only reviewed actions, found through `actions_reviews`.
const REVIEWS: &str = "SELECT rule, action, count(*), \
     sum(json_extract(review, '$.verdict') = 'flag'), max(json_extract(review, '$.at')) \
     FROM actions WHERE review_state = 'done' AND created_at >= ?1";

pub(crate) fn evidence(conn: &Conn, since: DateTime<Utc>) -> Result<Vec<Evidence>, StoreError> {
    let mut groups: BTreeMap<GroupKey, Evidence> = BTreeMap::new();
    let sql = format!("{DECISIONS}{DECISIONS_GROUPS}");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![millis(since)])?;
    while let Some(row) = rows.next()? {
        add_decisions(&mut groups, row)?;
    }
    let sql = format!("{REVIEWS} GROUP BY rule, action");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![millis(since)])?;
    while let Some(row) = rows.next()? {
        let key = GroupKey {
            rule: row.get(0)?,
            action: row.get(1)?,
        };
        add_reviews(
            &mut groups,
            key,
            row.get::<_, Option<i64>>(2)?.unwrap_or(0),
            row.get::<_, Option<i64>>(3)?.unwrap_or(0),
            row.get(4)?,
        )?;
    }
    Ok(groups.into_values().collect())
}

/// Adds one `DECISIONS` row (a rule, action, tier and status) to its group.
fn add_decisions(
    groups: &mut BTreeMap<GroupKey, Evidence>,
    row: &Row<'_>,
) -> Result<(), StoreError> {
    DecisionsRow {
        rule: row.get(0)?,
        action: row.get(1)?,
        tier: row.get(2)?,
        status: row.get(3)?,
        count: row.get(4)?,
        modified: row.get::<_, Option<i64>>(5)?.unwrap_or(0),
        first_submitted: row.get(6)?,
        last_submitted: row.get(7)?,
        last_decided: row.get(8)?,
    }
    .add_to(groups)
}

pub(crate) fn corrected_args(
    conn: &Conn,
    key: &GroupKey,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Map<String, Value>>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT COALESCE(original_args, args) FROM actions INDEXED BY actions_history \
         WHERE rule IS ?1 AND action = ?2 AND created_at >= ?3 \
         AND (status = 'rejected' OR (status = 'approved' AND (original_args IS NOT NULL))) \
         LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![key.rule, key.action, millis(since), i64::from(limit)],
        |row| row.get::<_, String>(0),
    )?;
    let mut out = Vec::new();
    for text in rows {
        let text = text?;
        out.push(serde_json::from_str(&text).map_err(|e| corrupt(format!("args: {e}")))?);
    }
    Ok(out)
}

pub(crate) fn evidence_below(
    conn: &Conn,
    key: &GroupKey,
    since: DateTime<Utc>,
    arg: &str,
    below: f64,
) -> Result<Evidence, StoreError> {
    let sql = format!(
        "{DECISIONS} AND rule IS ?2 AND action = ?3 \
         AND json_type(COALESCE(original_args, args), ?4) IN ('integer', 'real') \
         AND json_extract(COALESCE(original_args, args), ?4) < ?5{DECISIONS_GROUPS}"
    );
    let path = format!("$.\"{}\"", arg.replace('"', ""));
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![millis(since), key.rule, key.action, path, below])?;
    let mut groups = BTreeMap::new();
    while let Some(row) = rows.next()? {
        add_decisions(&mut groups, row)?;
    }
    Ok(groups
        .remove(key)
        .unwrap_or_else(|| Evidence::new(key.clone())))
}

/// The hash of the policy most recently put in force, if any was recorded.
fn latest_load(conn: &Conn) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT hash FROM policy_loads ORDER BY seq DESC LIMIT 1")?
        .query_row([], |row| row.get(0))
        .optional()?)
}

pub(crate) fn record_policy_load(
    conn: &Conn,
    head: &mut Head,
    load: PolicyLoad,
) -> Result<Option<AuditEntry>, StoreError> {
    let previous = latest_load(conn)?;
    if previous.as_deref() == Some(load.hash.as_str()) {
        return Ok(None);
    }
    let body = entries::policy_loaded_body(&load, previous.as_deref());
    let entry = chain::append(
        conn,
        head,
        load.at,
        kind::POLICY_LOADED,
        &load.actor,
        "",
        body,
    )?;
    conn.prepare_cached(
        "INSERT INTO policy_loads (hash, path, source, loaded_at, audit_seq) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![
        load.hash,
        load.path,
        load.source,
        millis(load.at),
        entry.seq as i64
    ])?;
    Ok(Some(entry))
}

pub(crate) fn sync_regressions(
    conn: &Conn,
    head: &mut Head,
    out: &Emitter,
    policy_hash: &str,
    holding: Vec<NewRegression>,
    at: DateTime<Utc>,
) -> Result<Vec<AuditEntry>, StoreError> {
    if latest_load(conn)?.is_some_and(|latest| latest != policy_hash) {
        return Ok(Vec::new());
    }
    let live = active(conn)?;
    let holds = |a: &ActiveRegression| {
        holding
            .iter()
            .any(|h| h.rule == a.rule && h.action == a.action && h.policy_hash == a.policy_hash)
    };
    for gone in live.iter().filter(|a| !holds(a)) {
        conn.prepare_cached(
            "UPDATE graduation_alerts SET cleared_at = ? WHERE rule = ? AND action = ? \
             AND policy_hash = ? AND cleared_at IS NULL",
        )?
        .execute(params![
            millis(at),
            gone.rule,
            gone.action,
            gone.policy_hash
        ])?;
    }
    let mut fired = Vec::new();
    for regression in holding {
        let told = live.iter().any(|a| {
            a.rule == regression.rule
                && a.action == regression.action
                && a.policy_hash == regression.policy_hash
        });
        if told {
            continue;
        }
        let body = entries::graduation_regressed_body(&regression);
        let entry = chain::append(
            conn,
            head,
            at,
            kind::GRADUATION_REGRESSED,
            crate::SYSTEM_ACTOR,
            "",
            body.clone(),
        )?;
        conn.prepare_cached(
            "INSERT INTO graduation_alerts (rule, action, policy_hash, fired_at, audit_seq, body) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            regression.rule,
            regression.action,
            regression.policy_hash,
            millis(at),
            entry.seq as i64,
            body
        ])?;
        // The notification rides the transaction that records the regression: told once.
        out.emit_regression(conn, &regression, conn.last_insert_rowid(), at)?;
        fired.push(entry);
    }
    Ok(fired)
}

pub(crate) fn active(conn: &Conn) -> Result<Vec<ActiveRegression>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT rule, action, policy_hash, fired_at, audit_seq, body FROM graduation_alerts \
         WHERE cleared_at IS NULL ORDER BY fired_at DESC, id DESC",
    )?;
    let mut rows = statement.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let body: String = row.get(5)?;
        out.push(ActiveRegression {
            rule: row.get(0)?,
            action: row.get(1)?,
            policy_hash: row.get(2)?,
            fired_at: from_millis(row.get(3)?)?,
            audit_seq: row.get::<_, i64>(4)?.max(0) as u64,
            body: serde_json::from_str(&body).unwrap_or(Value::Null),
        });
    }
    Ok(out)
}
