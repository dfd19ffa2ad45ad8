//! Graduation's reads and writes on PostgreSQL (SQLite's `history_ops`): submissions
//! streamed through a server-side cursor on one snapshot, the evidence per rule and action
//! aggregated from the covering index `actions_history` (migration 5), the narrowing reads,
//! and policy loads and regression alerts decided under an advisory lock, so that several
//! instances on one database record each exactly once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use countersign_core::graduation::{Evidence, GroupKey, Recorded};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::chain;
use super::ops::transaction;
use super::outbox_ops::Emitter;
use super::pool::Conn;
use super::rows::{AUDIT_COLUMNS, audit_from_row};
use super::verify::Cursor;
use crate::audit_log::{AuditEntry, SYSTEM_ACTOR, kind};
use crate::entries::{self, Draft};
use crate::error::StoreError;
use crate::history::{
    ActiveRegression, DecisionsRow, HistoryVisitor, NewRegression, PolicyLoad, RecordedColumns,
    add_reviews,
};
use crate::sqlite::rows::{from_millis, millis};

/// The advisory lock under which policy loads and regression alerts are decided: whether a
/// load or a regression is new is read and written by one instance at a time.
const GRADUATION_LOCK: i64 = 0x0c05_1960_0005;

/// History reads aggregate or stream a whole window: they may run longer than a request's
/// statement; they take no row locks.
const HISTORY_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '10min'";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| corrupt(format!("column {}: {e}", row.columns()[i].name())))
}

/// Streams submissions since `since` to `visit`, batch by batch, the visitor on the blocking
/// pool; answers how many were visited.
pub(crate) async fn scan(
    conn: &mut Conn,
    since: DateTime<Utc>,
    visit: HistoryVisitor,
) -> Result<u64, StoreError> {
    conn.begin_snapshot().await?;
    let result = scan_in_snapshot(conn, since, visit).await;
    conn.rollback().await;
    result
}

async fn scan_in_snapshot(
    conn: &mut Conn,
    since: DateTime<Utc>,
    mut visit: HistoryVisitor,
) -> Result<u64, StoreError> {
    // The bound is a literal: a cursor is declared with simple-query text.
    let sql = format!(
        "SELECT id, action, agent, COALESCE(original_args, args), context, confidence, hints, \
         created_at, tier, rule, status, original_args IS NOT NULL, \
         COALESCE(review_state = 'done', false), \
         COALESCE((review::jsonb ->> 'verdict') = 'flag', false) \
         FROM actions WHERE created_at >= {}",
        millis(since)
    );
    let mut cursor = Cursor::open(conn, "history_scan", &sql).await?;
    let mut visited = 0;
    loop {
        let mut batch = Vec::new();
        while let Some(row) = cursor.next(conn).await? {
            batch.push(recorded(&row)?);
            if cursor.buffered() == 0 {
                break;
            }
        }
        if batch.is_empty() {
            return Ok(visited);
        }
        // Classification is CPU work: off the async workers, like SQLite's scan.
        let (back, seen, more) = tokio::task::spawn_blocking(move || {
            let mut seen = 0;
            for recorded in batch {
                seen += 1;
                if !visit(recorded) {
                    return (visit, seen, false);
                }
            }
            (visit, seen, true)
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("a history read stopped: {e}")))?;
        visit = back;
        visited += seen;
        if !more {
            return Ok(visited);
        }
    }
}

fn recorded(row: &Row) -> Result<Recorded, StoreError> {
    RecordedColumns {
        id: get(row, 0)?,
        action: get(row, 1)?,
        agent: get(row, 2)?,
        args: get(row, 3)?,
        context: get(row, 4)?,
        confidence: get(row, 5)?,
        hints: get(row, 6)?,
        created_at: get(row, 7)?,
        tier: get(row, 8)?,
        rule: get(row, 9)?,
        status: get(row, 10)?,
        modified: get(row, 11)?,
        reviewed: get(row, 12)?,
        flagged: get(row, 13)?,
    }
    .recorded()
}

/// The decisions' aggregate, from `actions_history` alone (an index-only scan: it holds
/// every column read here); hash-aggregated by group.
const DECISIONS: &str = "SELECT rule, action, tier, status, count(*), \
     count(*) FILTER (WHERE modified), min(created_at), max(created_at), max(decided_at) \
     FROM actions WHERE created_at >= $1";
const DECISIONS_GROUPS: &str = " GROUP BY rule, action, tier, status";

/// The post-hoc reviews' aggregate: only reviewed actions, found through `actions_reviews`.
const REVIEWS: &str = "SELECT rule, action, count(*), \
     count(*) FILTER (WHERE (review::jsonb ->> 'verdict') = 'flag'), \
     max((review::jsonb ->> 'at')::bigint) \
     FROM actions WHERE review_state = 'done' AND created_at >= $1 GROUP BY rule, action";

/// Runs `work` in a read-only snapshot with the history reads' statement timeout.
async fn snapshot<T>(
    conn: &mut Conn,
    work: impl AsyncFnOnce(&mut Conn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.begin_snapshot().await?;
    let result = async {
        conn.batch(HISTORY_STATEMENT_TIMEOUT).await?;
        work(conn).await
    }
    .await;
    conn.rollback().await;
    result
}

fn decisions_row(row: &Row) -> Result<DecisionsRow, StoreError> {
    Ok(DecisionsRow {
        rule: get(row, 0)?,
        action: get(row, 1)?,
        tier: get(row, 2)?,
        status: get(row, 3)?,
        count: get(row, 4)?,
        modified: get(row, 5)?,
        first_submitted: get(row, 6)?,
        last_submitted: get(row, 7)?,
        last_decided: get(row, 8)?,
    })
}

pub(crate) async fn evidence(
    conn: &mut Conn,
    since: DateTime<Utc>,
) -> Result<Vec<Evidence>, StoreError> {
    let since = millis(since);
    snapshot(conn, async |conn| {
        let mut groups: BTreeMap<GroupKey, Evidence> = BTreeMap::new();
        let sql = format!("{DECISIONS}{DECISIONS_GROUPS}");
        for row in conn.query(&sql, &[&since]).await? {
            decisions_row(&row)?.add_to(&mut groups)?;
        }
        for row in conn.query(REVIEWS, &[&since]).await? {
            let key = GroupKey {
                rule: get(&row, 0)?,
                action: get(&row, 1)?,
            };
            add_reviews(
                &mut groups,
                key,
                get(&row, 2)?,
                get(&row, 3)?,
                get(&row, 4)?,
            )?;
        }
        Ok(groups.into_values().collect())
    })
    .await
}

/// The condition naming one group; `rule IS NULL` for the defaults' group (so that both
/// are a range of `actions_history`). `$2` is the rule when there is one, else unused.
fn group_condition(key: &GroupKey) -> &'static str {
    match key.rule {
        Some(_) => "rule = $2",
        None => "rule IS NULL AND $2::text IS NULL",
    }
}

pub(crate) async fn corrected_args(
    conn: &mut Conn,
    key: &GroupKey,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Map<String, Value>>, StoreError> {
    let sql = format!(
        "SELECT COALESCE(original_args, args) FROM actions \
         WHERE {} AND action = $3 AND created_at >= $1 \
         AND (status = 'rejected' OR (status = 'approved' AND modified)) \
         LIMIT $4",
        group_condition(key)
    );
    let since = millis(since);
    let limit = i64::from(limit);
    let rows = snapshot(conn, async |conn| {
        conn.query(&sql, &[&since, &key.rule, &key.action, &limit])
            .await
    })
    .await?;
    rows.iter()
        .map(|row| {
            let text: String = get(row, 0)?;
            serde_json::from_str(&text).map_err(|e| corrupt(format!("args: {e}")))
        })
        .collect()
}

pub(crate) async fn evidence_below(
    conn: &mut Conn,
    key: &GroupKey,
    since: DateTime<Utc>,
    arg: &str,
    below: f64,
) -> Result<Evidence, StoreError> {
    // A CASE, not AND: PostgreSQL does not promise to test the type before the cast.
    let sql = format!(
        "{DECISIONS} AND {} AND action = $3 \
         AND CASE WHEN jsonb_typeof(COALESCE(original_args, args)::jsonb -> $4) = 'number' \
         THEN (COALESCE(original_args, args)::jsonb ->> $4)::float8 < $5 ELSE false END\
         {DECISIONS_GROUPS}",
        group_condition(key)
    );
    let since = millis(since);
    let params: [&(dyn ToSql + Sync); 5] = [&since, &key.rule, &key.action, &arg, &below];
    let rows = snapshot(conn, async |conn| conn.query(&sql, &params).await).await?;
    let mut groups = BTreeMap::new();
    for row in rows {
        decisions_row(&row)?.add_to(&mut groups)?;
    }
    Ok(groups
        .remove(key)
        .unwrap_or_else(|| Evidence::new(key.clone())))
}

/// Records a policy load when its hash differs from the last one recorded, under the
/// advisory lock (two instances starting with one file record it once); answers the audit
/// entry's id in the log table.
pub(crate) async fn record_policy_load(
    conn: &mut Conn,
    load: PolicyLoad,
) -> Result<Option<i64>, StoreError> {
    transaction!(conn, async {
        conn.execute("SELECT pg_advisory_xact_lock($1)", &[&GRADUATION_LOCK])
            .await?;
        let previous: Option<String> = conn
            .query_opt(
                "SELECT hash FROM policy_loads ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|row| get(&row, 0))
            .transpose()?;
        if previous.as_deref() == Some(load.hash.as_str()) {
            return Ok(None);
        }
        let draft = Draft {
            kind: kind::POLICY_LOADED,
            actor: &load.actor,
            body: entries::policy_loaded_body(&load, previous.as_deref()),
        };
        let id = insert_entry(conn, millis(load.at), &draft).await?;
        conn.execute(
            "INSERT INTO policy_loads (hash, path, source, loaded_at, audit_id) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&load.hash, &load.path, &load.source, &millis(load.at), &id],
        )
        .await?;
        Ok(Some(id))
    })
}

/// Inserts one entry not about an action (unlinked, like every entry); answers its id.
async fn insert_entry(conn: &mut Conn, at: i64, draft: &Draft<'_>) -> Result<i64, StoreError> {
    let row = conn
        .query_one(
            "INSERT INTO audit (at, kind, actor, action_id, body) VALUES ($1, $2, $3, '', $4) \
             RETURNING id",
            &[&at, &draft.kind, &draft.actor, &draft.body],
        )
        .await?;
    get(&row, 0)
}

/// Brings the alerts in line with the regressions holding now, under the advisory lock:
/// instances checking at once see each other's alerts, so each regression is told once.
/// Answers the new entries' ids in the log table.
pub(crate) async fn sync_regressions(
    conn: &mut Conn,
    out: &Emitter,
    policy_hash: &str,
    holding: Vec<NewRegression>,
    at: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let at = millis(at);
    transaction!(conn, async {
        conn.execute("SELECT pg_advisory_xact_lock($1)", &[&GRADUATION_LOCK])
            .await?;
        // An instance left behind by a rolling deploy changes nothing (Store docs).
        let latest: Option<String> = conn
            .query_opt(
                "SELECT hash FROM policy_loads ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|row| get(&row, 0))
            .transpose()?;
        if latest.is_some_and(|latest| latest != policy_hash) {
            return Ok(Vec::new());
        }
        let live: Vec<(String, String, String)> = conn
            .query(
                "SELECT rule, action, policy_hash FROM graduation_alerts WHERE cleared_at IS NULL",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?)))
            .collect::<Result<_, StoreError>>()?;
        let same = |(rule, action, hash): &(String, String, String), h: &NewRegression| {
            *rule == h.rule && *action == h.action && *hash == h.policy_hash
        };
        for gone in live.iter().filter(|l| !holding.iter().any(|h| same(l, h))) {
            conn.execute(
                "UPDATE graduation_alerts SET cleared_at = $1 WHERE rule = $2 AND action = $3 \
                 AND policy_hash = $4 AND cleared_at IS NULL",
                &[&at, &gone.0, &gone.1, &gone.2],
            )
            .await?;
        }
        let mut fired = Vec::new();
        for regression in holding {
            if live.iter().any(|l| same(l, &regression)) {
                continue;
            }
            let body = entries::graduation_regressed_body(&regression);
            let draft = Draft {
                kind: kind::GRADUATION_REGRESSED,
                actor: SYSTEM_ACTOR,
                body,
            };
            let id = insert_entry(conn, at, &draft).await?;
            let alert = conn
                .query_one(
                "INSERT INTO graduation_alerts (rule, action, policy_hash, fired_at, audit_id, body) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &regression.rule,
                    &regression.action,
                    &regression.policy_hash,
                    &at,
                    &id,
                    &draft.body,
                ],
            )
            .await?;
            // The notification rides the transaction that records the regression: told
            // once, across restarts and instances (the advisory lock above).
            out.emit_regression(conn, &regression, get(&alert, 0)?, from_millis(at)?)
                .await?;
            fired.push(id);
        }
        Ok(fired)
    })
}

/// The entries with these ids in the log table, linked (the caller linked them first).
pub(crate) async fn entries_by_id(
    conn: &mut Conn,
    ids: &[i64],
) -> Result<Vec<AuditEntry>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    chain::link(conn).await?;
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE id = ANY($1) ORDER BY id");
    conn.query(&sql, &[&ids])
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
}

pub(crate) async fn active(conn: &mut Conn) -> Result<Vec<ActiveRegression>, StoreError> {
    // The alerts' entries get their seq from the linker: link what is committed first.
    chain::link(conn).await?;
    let rows = conn
        .query(
            "SELECT g.rule, g.action, g.policy_hash, g.fired_at, a.seq, g.body \
             FROM graduation_alerts g JOIN audit a ON a.id = g.audit_id \
             WHERE g.cleared_at IS NULL ORDER BY g.fired_at DESC, g.id DESC",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let body: String = get(row, 5)?;
            Ok(ActiveRegression {
                rule: get(row, 0)?,
                action: get(row, 1)?,
                policy_hash: get(row, 2)?,
                fired_at: from_millis(get(row, 3)?)?,
                audit_seq: get::<Option<i64>>(row, 4)?.unwrap_or(0).max(0) as u64,
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
            })
        })
        .collect()
}
