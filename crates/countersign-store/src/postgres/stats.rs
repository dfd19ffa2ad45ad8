//! The kept sums of approval metrics on PostgreSQL, and the training-data export: the same
//! sums as SQLite's (`sqlite::stats`), written in the transaction of every change, read by
//! windows, series and `/metrics` without scanning the history.
//!
//! Writes. A submission adds its counts in its own one statement ([`SUBMISSION_STATS`],
//! part of `ops::insert_submission`): a new action has no decision, so nothing to merge,
//! and the upsert adds deltas. Every other change (decisions, SLA steps, cancellations,
//! outcomes, reviews) adds `contribution(after) - contribution(before)` to the
//! connection's [`Pending`] sums, which `ops::transaction!` writes just before the commit,
//! merged by row and in key order: every transaction locks the rows of sums it touches in
//! the same order, so two never wait for each other in a cycle, and the action's own row
//! lock (taken first) makes each change counted exactly once, whichever instance makes it.
//! A latency histogram cannot be added by SQL, so a row with one is upserted (locking it)
//! and then rewritten with the merged histogram, under that lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use countersign_core::ActionName;
use countersign_core::lifecycle::Verdict;
use countersign_core::stats::{
    self, ActionKey, ActionTally, Change, Counts, RawSpan, ReviewerKey, ReviewerTally, Span,
    StatsData, Window,
};
use countersign_core::tier::Tier;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::pool::Conn;
use super::rows::{ACTION_COLUMNS, action_from_row, like_pattern};
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::ids;
use crate::record::{ActionRecord, Page, page_bytes, page_limit};
use crate::sqlite::rows::{from_millis, name};
use crate::sqlite::stats::{LIGHT_ACTION_COLUMNS, contribution_of, decode, encode};
use crate::stats_query::{ExportQuery, KeptSum, SeriesPoint, SeriesQuery, StatsTotals};
use countersign_core::learning::Label;

const HOURLY: i32 = 1;
const DAILY: i32 = 24;

/// How many rows of sums one group has per hour (and per day): see the migration.
const SHARDS: &str = "8";

/// An action's group as stored: action, agent, rule ('' for `[defaults]`), tier.
type ActionColumns = [String; 4];
/// A reviewer's group as stored: reviewer, tier, verdict.
type ReviewerColumns = [String; 3];

fn action_columns(key: &ActionKey) -> ActionColumns {
    [
        key.action.as_str().to_owned(),
        key.agent.as_str().to_owned(),
        key.rule.clone().unwrap_or_default(),
        key.tier.as_str().to_owned(),
    ]
}

fn reviewer_columns(key: &ReviewerKey) -> ReviewerColumns {
    [
        key.reviewer.as_str().to_owned(),
        key.tier.as_str().to_owned(),
        key.verdict.as_str().to_owned(),
    ]
}

/// What a transaction added to the sums and has not written yet, merged by row, in key
/// order (the order rows are locked in).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    actions: BTreeMap<(i32, i64, ActionColumns), ActionTally>,
    reviewers: BTreeMap<(i32, i64, ReviewerColumns), ReviewerTally>,
}

impl Pending {
    pub fn clear(&mut self) {
        self.actions.clear();
        self.reviewers.clear();
    }

    /// Adds `change` to the hour and the day of `submitted`.
    fn add(&mut self, submitted: DateTime<Utc>, change: &Change) {
        let hour = stats::hour_of(submitted);
        for (span, start) in [(HOURLY, hour), (DAILY, stats::day_of_hour(hour))] {
            for (key, tally) in &change.actions {
                self.actions
                    .entry((span, start, action_columns(key)))
                    .or_default()
                    .add(tally);
            }
            for (key, tally) in &change.reviewers {
                self.reviewers
                    .entry((span, start, reviewer_columns(key)))
                    .or_default()
                    .add(tally);
            }
        }
    }
}

/// Adds what changed in `record` since it contributed `before` to the transaction's sums.
pub(crate) fn record_change(conn: &mut Conn, before: &stats::Contribution, record: &ActionRecord) {
    let change = stats::change(Some(before), &contribution_of(record));
    if !change.is_empty() {
        conn.stats.add(record.created_at, &change);
    }
}

fn counts_columns() -> String {
    Counts::FIELDS.join(", ")
}

fn additions() -> String {
    Counts::FIELDS
        .iter()
        .map(|f| format!("{f} = action_stats.{f} + excluded.{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The part of a submission's statement that adds the new action's counts to its hour's
/// and its day's sums. Its parameters: `$41` the hour, `$42` the day, then the counts from
/// `$40` in [`Counts::FIELDS`] order; the action's own `$2` (action), `$3` (agent), `$6`
/// (tier) and `$7` (rule).
pub(crate) fn submission_stats() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let counts: Vec<String> = (0..Counts::FIELDS.len())
            .map(|i| format!("${}::bigint", 43 + i))
            .collect();
        let counts = counts.join(", ");
        format!(
            "stats AS (INSERT INTO action_stats (span_hours, start, action, agent, rule, tier, \
             shard, {columns}, latency) VALUES \
             (1, $41, $2, $3, coalesce($7, ''), $6, pg_backend_pid() % {SHARDS}, {counts}, ''::bytea), \
             (24, $42, $2, $3, coalesce($7, ''), $6, pg_backend_pid() % {SHARDS}, {counts}, ''::bytea) \
             ON CONFLICT (span_hours, start, action, agent, rule, tier, shard) DO UPDATE SET {additions})",
            columns = counts_columns(),
            additions = additions(),
        )
    })
}

/// The values of [`submission_stats`]'s parameters for a new action: hour, day, counts.
pub(crate) fn submission_values(record: &ActionRecord) -> Vec<i64> {
    let contribution = contribution_of(record);
    // A new action has no decision yet: no latency, no reviewer's sums (Gate::new).
    debug_assert!(contribution.action.1.latency.is_empty() && contribution.reviewers.is_empty());
    let hour = stats::hour_of(record.created_at);
    let mut values = vec![hour, stats::day_of_hour(hour)];
    values.extend(contribution.action.1.counts.values());
    values
}

/// Writes the transaction's pending sums (called just before its commit).
pub(crate) async fn flush(conn: &mut Conn) -> Result<(), StoreError> {
    if conn.stats.actions.is_empty() && conn.stats.reviewers.is_empty() {
        return Ok(());
    }
    let pending = std::mem::take(&mut conn.stats);
    for ((span, start, key), tally) in &pending.actions {
        if !tally.is_zero() {
            add_action_row(conn, *span, *start, key, tally).await?;
        }
    }
    for ((span, start, key), tally) in &pending.reviewers {
        if !tally.is_zero() {
            add_reviewer_row(conn, *span, *start, key, tally).await?;
        }
    }
    Ok(())
}

async fn add_action_row(
    conn: &mut Conn,
    span: i32,
    start: i64,
    key: &ActionColumns,
    tally: &ActionTally,
) -> Result<(), StoreError> {
    static UPSERT: OnceLock<String> = OnceLock::new();
    let upsert = UPSERT.get_or_init(|| {
        let values: Vec<String> = (0..Counts::FIELDS.len())
            .map(|i| format!("${}::bigint", 7 + i))
            .collect();
        format!(
            "INSERT INTO action_stats (span_hours, start, action, agent, rule, tier, shard, \
             {}, latency) VALUES ($1, $2, $3, $4, $5, $6, pg_backend_pid() % {SHARDS}, {}, ''::bytea) \
             ON CONFLICT (span_hours, start, action, agent, rule, tier, shard) DO UPDATE SET {} \
             RETURNING shard, latency",
            counts_columns(),
            values.join(", "),
            additions(),
        )
    });
    let counts = tally.counts.values();
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&span, &start, &key[0], &key[1], &key[2], &key[3]];
    params.extend(counts.iter().map(|c| c as &(dyn ToSql + Sync)));
    let row = conn.query_one(upsert, &params).await?;
    if tally.latency.is_empty() {
        return Ok(());
    }
    // The row is locked by the upsert until the commit: merge its histogram.
    let shard: i16 = row.get(0);
    let mut latency = decode(row.get::<_, &[u8]>(1))?;
    latency.add(&tally.latency);
    conn.execute(
        "UPDATE action_stats SET latency = $1 WHERE span_hours = $2 AND start = $3 \
         AND action = $4 AND agent = $5 AND rule = $6 AND tier = $7 AND shard = $8",
        &[
            &encode(&latency),
            &span,
            &start,
            &key[0],
            &key[1],
            &key[2],
            &key[3],
            &shard,
        ],
    )
    .await?;
    Ok(())
}

async fn add_reviewer_row(
    conn: &mut Conn,
    span: i32,
    start: i64,
    key: &ReviewerColumns,
    tally: &ReviewerTally,
) -> Result<(), StoreError> {
    let row = conn
        .query_one(
            "INSERT INTO reviewer_stats (span_hours, start, reviewer, tier, verdict, decisions, \
             flagged, time_to_decision) VALUES ($1, $2, $3, $4, $5, $6, $7, ''::bytea) \
             ON CONFLICT (span_hours, start, reviewer, tier, verdict) DO UPDATE SET \
             decisions = reviewer_stats.decisions + excluded.decisions, \
             flagged = reviewer_stats.flagged + excluded.flagged \
             RETURNING time_to_decision",
            &[
                &span,
                &start,
                &key[0],
                &key[1],
                &key[2],
                &tally.decisions,
                &tally.flagged,
            ],
        )
        .await?;
    if tally.time_to_decision.is_empty() {
        return Ok(());
    }
    let mut merged = decode(row.get::<_, &[u8]>(0))?;
    merged.add(&tally.time_to_decision);
    conn.execute(
        "UPDATE reviewer_stats SET time_to_decision = $1 WHERE span_hours = $2 AND start = $3 \
         AND reviewer = $4 AND tier = $5 AND verdict = $6",
        &[&encode(&merged), &span, &start, &key[0], &key[1], &key[2]],
    )
    .await?;
    Ok(())
}

/// Sums every action already stored: the migration that added the sums runs this once, in
/// its transaction. Actions are read a page at a time in id (submission) order.
pub(crate) async fn backfill(conn: &mut Conn) -> Result<(), StoreError> {
    let sql =
        format!("SELECT {LIGHT_ACTION_COLUMNS} FROM actions WHERE id > $1 ORDER BY id LIMIT 1000");
    let mut after = String::new();
    loop {
        let rows = conn.query(&sql, &[&after]).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.get(0);
        for row in &rows {
            let record = action_from_row(row)?;
            let change = stats::change(None, &contribution_of(&record));
            conn.stats.add(record.created_at, &change);
        }
    }
    flush(conn).await
}

// ---- reading -----------------------------------------------------------------------------

/// Sums read from rows, keyed by the rows' own text until the end.
#[derive(Default)]
struct Sums {
    actions: HashMap<ActionColumns, ActionTally>,
    reviewers: HashMap<ReviewerColumns, ReviewerTally>,
}

fn text(row: &Row, column: usize) -> Result<String, StoreError> {
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("statistics column {column}: {e}")))
}

fn counts_of(row: &Row, first: usize) -> Result<Counts, StoreError> {
    let values = (0..Counts::FIELDS.len())
        .map(|i| {
            row.try_get::<_, i64>(first + i)
                .map_err(|e| StoreError::Corrupt(format!("statistics column {}: {e}", first + i)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Counts::from_values(&values))
}

fn bytes(row: &Row, column: usize) -> Result<&[u8], StoreError> {
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("statistics column {column}: {e}")))
}

impl Sums {
    /// Adds the kept rows of `span_hours` whose start is in `within`.
    async fn add_rows(
        &mut self,
        conn: &mut Conn,
        span_hours: i32,
        within: Span,
    ) -> Result<(), StoreError> {
        let (from, to) = (
            within.from.unwrap_or(i64::MIN),
            within.to.unwrap_or(i64::MAX),
        );
        let sql = format!(
            "SELECT action, agent, rule, tier, {}, latency FROM action_stats \
             WHERE span_hours = $1 AND start >= $2 AND start < $3",
            counts_columns()
        );
        let fields = Counts::FIELDS.len();
        for row in conn.query(&sql, &[&span_hours, &from, &to]).await? {
            let key = [
                text(&row, 0)?,
                text(&row, 1)?,
                text(&row, 2)?,
                text(&row, 3)?,
            ];
            let tally = self.actions.entry(key).or_default();
            tally.counts.add(&counts_of(&row, 4)?);
            tally.latency.add(&decode(bytes(&row, 4 + fields)?)?);
        }
        let rows = conn
            .query(
                "SELECT reviewer, tier, verdict, decisions, flagged, time_to_decision \
                 FROM reviewer_stats WHERE span_hours = $1 AND start >= $2 AND start < $3",
                &[&span_hours, &from, &to],
            )
            .await?;
        for row in rows {
            let added = ReviewerTally {
                decisions: row.get(3),
                flagged: row.get(4),
                time_to_decision: decode(bytes(&row, 5)?)?,
            };
            let key = [text(&row, 0)?, text(&row, 1)?, text(&row, 2)?];
            self.reviewers.entry(key).or_default().add(&added);
        }
        Ok(())
    }

    /// Adds (or subtracts) what the actions submitted in `raw` contribute.
    async fn add_raw(&mut self, conn: &mut Conn, raw: RawSpan) -> Result<(), StoreError> {
        let sql = format!("SELECT {LIGHT_ACTION_COLUMNS} FROM actions WHERE id >= $1 AND id < $2");
        let rows = conn
            .query(&sql, &[&ids::floor_id(raw.from), &ids::floor_id(raw.to)])
            .await?;
        for row in &rows {
            let record = action_from_row(row)?;
            let contribution = contribution_of(&record);
            let (key, tally) = &contribution.action;
            let entry = self.actions.entry(action_columns(key)).or_default();
            if raw.sign > 0 {
                entry.add(tally);
            } else {
                entry.subtract(tally);
            }
            for (key, tally) in &contribution.reviewers {
                let entry = self.reviewers.entry(reviewer_columns(key)).or_default();
                if raw.sign > 0 {
                    entry.add(tally);
                } else {
                    entry.subtract(tally);
                }
            }
        }
        Ok(())
    }

    fn into_data(self) -> Result<StatsData, StoreError> {
        let mut data = StatsData::default();
        for (key, tally) in self.actions {
            if !tally.is_zero() {
                data.actions.push((action_key(&key)?, tally));
            }
        }
        for (key, tally) in self.reviewers {
            if !tally.is_zero() {
                data.reviewers.push((reviewer_key(&key)?, tally));
            }
        }
        data.actions.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(data)
    }
}

fn corrupt_key(key: &[String]) -> StoreError {
    StoreError::Corrupt(format!("statistics key {key:?}"))
}

fn action_key(key: &ActionColumns) -> Result<ActionKey, StoreError> {
    let [action, agent, rule, tier] = key;
    Ok(ActionKey {
        action: ActionName::parse(action).map_err(|_| corrupt_key(key))?,
        agent: name(agent, "agent")?,
        rule: (!rule.is_empty()).then(|| rule.clone()),
        tier: tier.parse::<Tier>().map_err(|_| corrupt_key(key))?,
    })
}

fn reviewer_key(key: &ReviewerColumns) -> Result<ReviewerKey, StoreError> {
    let [reviewer, tier, verdict] = key;
    Ok(ReviewerKey {
        reviewer: name(reviewer, "reviewer")?,
        tier: tier.parse::<Tier>().map_err(|_| corrupt_key(key))?,
        verdict: verdict.parse::<Verdict>().map_err(|_| corrupt_key(key))?,
    })
}

/// Runs `work` in a read-only transaction on one snapshot.
macro_rules! snapshot {
    ($conn:expr, $work:expr) => {{
        $conn.begin_snapshot().await?;
        let result = $work.await;
        $conn.rollback().await;
        result
    }};
}

/// The kept sums of `window` at `now`, read in one snapshot.
pub(crate) async fn window(
    conn: &mut Conn,
    window: &Window,
    now: DateTime<Utc>,
) -> Result<StatsData, StoreError> {
    let plan = stats::plan(window, now);
    snapshot!(conn, async {
        let mut sums = Sums::default();
        if let Some(days) = plan.days {
            sums.add_rows(conn, DAILY, days).await?;
        }
        for hours in plan.hours {
            sums.add_rows(conn, HOURLY, hours).await?;
        }
        for raw in plan.raw {
            sums.add_raw(conn, raw).await?;
        }
        sums.into_data()
    })
}

/// All groups summed per step.
pub(crate) async fn series(
    conn: &mut Conn,
    query: &SeriesQuery,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let span = query.step.hours();
    let start_of = |at: DateTime<Utc>| stats::hour_of(at).div_euclid(span);
    let sql = format!(
        "SELECT start, {}, latency FROM action_stats \
         WHERE span_hours = $1 AND start >= $2 AND start < $3",
        counts_columns()
    );
    let fields = Counts::FIELDS.len();
    let rows = conn
        .query(
            &sql,
            &[&(span as i32), &start_of(query.from), &start_of(query.to)],
        )
        .await?;
    let mut points: BTreeMap<i64, ActionTally> = BTreeMap::new();
    for row in &rows {
        let point = points.entry(row.get(0)).or_default();
        point.counts.add(&counts_of(row, 1)?);
        point.latency.add(&decode(bytes(row, 1 + fields)?)?);
    }
    points
        .into_iter()
        .filter(|(_, tally)| !tally.is_zero())
        .map(|(start, tally)| {
            Ok(SeriesPoint {
                start: from_millis(start.saturating_mul(span * stats::HOUR_MILLIS))?,
                tally,
            })
        })
        .collect()
}

/// Every day's sums added up, with each group's first day.
pub(crate) async fn totals(conn: &mut Conn) -> Result<StatsTotals, StoreError> {
    snapshot!(conn, async {
        let mut first_days: HashMap<ActionColumns, i64> = HashMap::new();
        let rows = conn
            .query(
                "SELECT action, agent, rule, tier, MIN(start) FROM action_stats \
                 WHERE span_hours = 24 GROUP BY action, agent, rule, tier",
                &[],
            )
            .await?;
        for row in &rows {
            let key = [text(row, 0)?, text(row, 1)?, text(row, 2)?, text(row, 3)?];
            first_days.insert(key, row.get(4));
        }
        let mut sums = Sums::default();
        let all = Span {
            from: None,
            to: None,
        };
        sums.add_rows(conn, DAILY, all).await?;
        let mut totals = StatsTotals::default();
        for (key, tally) in sums.actions {
            if tally.is_zero() {
                continue;
            }
            totals.actions.push(KeptSum {
                first_day: first_days.get(&key).copied().unwrap_or_default(),
                key: action_key(&key)?,
                tally,
            });
        }
        for (key, tally) in sums.reviewers {
            if !tally.is_zero() {
                totals.reviewers.push((reviewer_key(&key)?, tally));
            }
        }
        totals.actions.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(totals)
    })
}

// ---- the export --------------------------------------------------------------------------

/// What a label needs of a row, in SQL (fixed fragments only): as SQLite's `export`.
fn condition(label: Label) -> &'static str {
    match label {
        Label::Rejected => "status = 'rejected'",
        Label::Modified => "(status = 'approved' AND original_args IS NOT NULL)",
        Label::Flagged => "(review_state = 'done' AND (review::jsonb ->> 'verdict') = 'flag')",
        Label::Expired => "status = 'expired'",
    }
}

/// A page of training cases, oldest first (see `Store::export`).
pub(crate) async fn export(
    conn: &mut Conn,
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
    let since = query.window.since().map_or(0, |s| s.timestamp_millis());
    let until = query.window.until().map(|u| u.timestamp_millis());
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(ids::floor_id(since)),
        // Past every id: ids are 26 characters of lowercase base32 (and compared as "C").
        Box::new(until.map_or_else(|| "~".to_owned(), ids::floor_id)),
    ];
    let mut sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE id >= $1 AND id < $2");
    if let Some(after) = after {
        values.push(Box::new(after.id.to_owned()));
        sql += &format!(" AND id > ${}", values.len());
    }
    if let Some(glob) = &query.action {
        values.push(Box::new(like_pattern(glob.as_str())));
        sql += &format!(" AND action LIKE ${} ESCAPE '\\'", values.len());
    }
    if let Some(rule) = &query.rule {
        values.push(Box::new(rule.clone()));
        sql += &format!(" AND rule = ${}", values.len());
    }
    let conditions: Vec<&str> = query.labels.iter().map(|l| condition(*l)).collect();
    values.push(Box::new(i64::from(limit) + 1));
    sql += &format!(
        " AND ({}) ORDER BY id LIMIT ${}",
        conditions.join(" OR "),
        values.len()
    );
    let refs: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
    let rows = conn.query(&sql, &refs).await?;
    let max_bytes = page_bytes(query.max_bytes);
    let mut items = Vec::new();
    let mut bytes = 0;
    for row in &rows {
        if items.len() >= limit as usize || bytes > max_bytes {
            return Ok(Page {
                next_cursor: items.last().map(crate::sqlite::read::by_id),
                items,
            });
        }
        bytes += super::rows::row_bytes(row);
        items.push(action_from_row(row)?);
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}
