//! The kept sums of approval metrics: written by the writer in the transaction of every
//! change to an action, read by windows, series and `/metrics` without scanning history.
//!
//! A change adds `contribution(after) - contribution(before)` (the core decides both) to
//! the rows of the hour and of the day the action was submitted in. The writer collects a
//! batch's changes and writes them merged by row just before the batch commits ([`Batch`]):
//! one upsert per row per batch. Counts are added by the upsert; a latency histogram is
//! read, merged and written back, which only decisions (not submissions) need.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use countersign_core::ActionName;
use countersign_core::lifecycle::Verdict;
use countersign_core::stats::{
    self, ActionKey, ActionTally, Change, Contribution, Counts, Histogram, RawSpan, ReviewerKey,
    ReviewerTally, Span, StatsData, Window,
};
use countersign_core::tier::Tier;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::rows::{self, from_millis};
use crate::error::StoreError;
use crate::ids;
use crate::record::ActionRecord;
use crate::stats_query::{KeptSum, SeriesPoint, SeriesQuery, StatsTotals};

type Conn = Connection;

const HOURLY: i64 = 1;
const DAILY: i64 = 24;

/// What an action adds to the figures now.
pub(crate) fn contribution_of(record: &ActionRecord) -> Contribution {
    stats::contribution(&record.gate, record.rule.as_deref(), record.created_at)
}

/// Adds a new action to the sums.
pub(crate) fn record_new(conn: &Conn, record: &ActionRecord) -> Result<(), StoreError> {
    add(
        conn,
        record.created_at,
        &stats::change(None, &contribution_of(record)),
    )
}

/// Adds what changed in `record` since it contributed `before`.
pub(crate) fn record_change(
    conn: &Conn,
    before: &Contribution,
    record: &ActionRecord,
) -> Result<(), StoreError> {
    let change = stats::change(Some(before), &contribution_of(record));
    if change.is_empty() {
        return Ok(());
    }
    add(conn, record.created_at, &change)
}

/// Adds `change` to the hour and the day of `submitted`: inside a writer batch, to the
/// batch's pending sums (written once, just before the commit); otherwise at once.
fn add(conn: &Conn, submitted: DateTime<Utc>, change: &Change) -> Result<(), StoreError> {
    let hour = stats::hour_of(submitted);
    let deferred = PENDING.with_borrow_mut(|pending| {
        if pending.active {
            pending.log.push((hour, change.clone()));
        }
        pending.active
    });
    if deferred {
        return Ok(());
    }
    write_now(conn, hour, change)
}

fn write_now(conn: &Conn, hour: i64, change: &Change) -> Result<(), StoreError> {
    for (span, start) in [(HOURLY, hour), (DAILY, stats::day_of_hour(hour))] {
        for (key, tally) in &change.actions {
            add_action_row(conn, span, start, key, tally)?;
        }
        for (key, tally) in &change.reviewers {
            add_reviewer_row(conn, span, start, key, tally)?;
        }
    }
    Ok(())
}

/// What the jobs of the writer's current batch added, in order. Kept on the writer's
/// thread and written by [`Batch::flush`] in the batch's transaction, before its commit:
/// under load a batch holds hundreds of submissions of a few kinds, and each row of sums
/// is then written once per batch instead of once per submission (the cost that mattered
/// on the submission path: BENCHMARKS.md).
#[derive(Default)]
struct Pending {
    active: bool,
    log: Vec<(i64, Change)>,
}

thread_local! {
    static PENDING: std::cell::RefCell<Pending> = std::cell::RefCell::new(Pending::default());
}

/// The writer's batch of statistics: begun with the transaction; a refused job's
/// additions are dropped with its savepoint ([`Batch::mark`], [`Batch::rollback_to`]);
/// flushed before the commit; dropped unwritten if the batch fails.
pub(crate) struct Batch(());

impl Batch {
    pub fn begin() -> Batch {
        PENDING.with_borrow_mut(|pending| {
            pending.active = true;
            pending.log.clear();
        });
        Batch(())
    }

    /// Where the next job's additions start.
    pub fn mark(&self) -> usize {
        PENDING.with_borrow(|pending| pending.log.len())
    }

    /// Drops what was added after `mark` (the job was refused).
    pub fn rollback_to(&self, mark: usize) {
        PENDING.with_borrow_mut(|pending| pending.log.truncate(mark));
    }

    /// Writes the batch's additions, merged by row.
    pub fn flush(self, conn: &Conn) -> Result<(), StoreError> {
        let log = PENDING.with_borrow_mut(|pending| {
            pending.active = false;
            std::mem::take(&mut pending.log)
        });
        let mut actions: HashMap<(i64, i64, ActionKey), ActionTally> = HashMap::new();
        let mut reviewers: HashMap<(i64, i64, ReviewerKey), ReviewerTally> = HashMap::new();
        for (hour, change) in &log {
            for (span, start) in [(HOURLY, *hour), (DAILY, stats::day_of_hour(*hour))] {
                for (key, tally) in &change.actions {
                    actions
                        .entry((span, start, key.clone()))
                        .or_default()
                        .add(tally);
                }
                for (key, tally) in &change.reviewers {
                    reviewers
                        .entry((span, start, key.clone()))
                        .or_default()
                        .add(tally);
                }
            }
        }
        for ((span, start, key), tally) in &actions {
            if !tally.is_zero() {
                add_action_row(conn, *span, *start, key, tally)?;
            }
        }
        for ((span, start, key), tally) in &reviewers {
            if !tally.is_zero() {
                add_reviewer_row(conn, *span, *start, key, tally)?;
            }
        }
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        PENDING.with_borrow_mut(|pending| {
            pending.active = false;
            pending.log.clear();
        });
    }
}

/// The columns of `action_stats`, keys first.
const ACTION_KEY_COLUMNS: &str = "span_hours, start, action, agent, rule, tier";

fn counts_columns() -> String {
    Counts::FIELDS.join(", ")
}

/// `INSERT ... ON CONFLICT DO UPDATE` adding the counts; with `latency`, the histogram
/// given replaces the stored one (the caller merged them).
fn action_upsert(latency: bool) -> &'static str {
    static WITH: OnceLock<String> = OnceLock::new();
    static WITHOUT: OnceLock<String> = OnceLock::new();
    let build = || {
        let additions: Vec<String> = Counts::FIELDS
            .iter()
            .map(|f| format!("{f} = {f} + excluded.{f}"))
            .collect();
        format!(
            "INSERT INTO action_stats ({ACTION_KEY_COLUMNS}, {}, latency) VALUES ({}) \
             ON CONFLICT ({ACTION_KEY_COLUMNS}) DO UPDATE SET {}, latency = {}",
            counts_columns(),
            vec!["?"; 6 + Counts::FIELDS.len() + 1].join(", "),
            additions.join(", "),
            if latency {
                "excluded.latency"
            } else {
                "latency"
            },
        )
    };
    if latency {
        WITH.get_or_init(build)
    } else {
        WITHOUT.get_or_init(build)
    }
}

fn rule_column(rule: &Option<String>) -> &str {
    rule.as_deref().unwrap_or("")
}

fn add_action_row(
    conn: &Conn,
    span: i64,
    start: i64,
    key: &ActionKey,
    tally: &ActionTally,
) -> Result<(), StoreError> {
    let mut values: Vec<SqlValue> = vec![
        span.into(),
        start.into(),
        key.action.as_str().to_owned().into(),
        key.agent.as_str().to_owned().into(),
        rule_column(&key.rule).to_owned().into(),
        key.tier.as_str().to_owned().into(),
    ];
    values.extend(tally.counts.values().into_iter().map(SqlValue::from));
    let with_latency = !tally.latency.is_empty();
    let latency = if with_latency {
        let stored: Option<Vec<u8>> = conn
            .prepare_cached(
                "SELECT latency FROM action_stats WHERE span_hours = ? AND start = ? \
                 AND action = ? AND agent = ? AND rule = ? AND tier = ?",
            )?
            .query_row(params_from_iter(&values[..6]), |row| row.get(0))
            .optional()?;
        let mut merged = decode(stored.as_deref().unwrap_or_default())?;
        merged.add(&tally.latency);
        encode(&merged)
    } else {
        Vec::new()
    };
    values.push(latency.into());
    conn.prepare_cached(action_upsert(with_latency))?
        .execute(params_from_iter(values))?;
    Ok(())
}

fn add_reviewer_row(
    conn: &Conn,
    span: i64,
    start: i64,
    key: &ReviewerKey,
    tally: &ReviewerTally,
) -> Result<(), StoreError> {
    let keys = params![
        span,
        start,
        key.reviewer.as_str(),
        key.tier.as_str(),
        key.verdict.as_str()
    ];
    let stored: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT time_to_decision FROM reviewer_stats WHERE span_hours = ? AND start = ? \
             AND reviewer = ? AND tier = ? AND verdict = ?",
        )?
        .query_row(keys, |row| row.get(0))
        .optional()?;
    let mut merged = decode(stored.as_deref().unwrap_or_default())?;
    merged.add(&tally.time_to_decision);
    conn.prepare_cached(
        "INSERT INTO reviewer_stats (span_hours, start, reviewer, tier, verdict, decisions, \
         flagged, time_to_decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (span_hours, start, reviewer, tier, verdict) DO UPDATE SET \
         decisions = decisions + excluded.decisions, flagged = flagged + excluded.flagged, \
         time_to_decision = excluded.time_to_decision",
    )?
    .execute(params![
        span,
        start,
        key.reviewer.as_str(),
        key.tier.as_str(),
        key.verdict.as_str(),
        tally.decisions,
        tally.flagged,
        encode(&merged),
    ])?;
    Ok(())
}

// ---- histograms in a BLOB ----------------------------------------------------------------

/// Per bucket: the bucket (u16, little-endian) and its count (zigzag LEB128).
pub(crate) fn encode(histogram: &Histogram) -> Vec<u8> {
    let mut out = Vec::new();
    for (bucket, count) in histogram.iter() {
        out.extend_from_slice(&bucket.to_le_bytes());
        let mut zigzag = ((count << 1) ^ (count >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Histogram, StoreError> {
    let corrupt = || StoreError::Corrupt("a latency histogram is cut short".into());
    let mut histogram = Histogram::default();
    let mut at = 0;
    while at < bytes.len() {
        let bucket = u16::from_le_bytes([
            *bytes.get(at).ok_or_else(corrupt)?,
            *bytes.get(at + 1).ok_or_else(corrupt)?,
        ]);
        at += 2;
        let mut zigzag = 0u64;
        let mut shift = 0;
        loop {
            let byte = *bytes.get(at).ok_or_else(corrupt)?;
            at += 1;
            zigzag |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(corrupt());
            }
        }
        let count = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        histogram.add_to(bucket, count);
    }
    Ok(histogram)
}

// ---- reading -----------------------------------------------------------------------------

/// The columns of `actions` in [`rows::ACTION_COLUMNS`] order, without the arguments,
/// reasoning, context, outcome and pending reminders, which statistics never read: a light
/// copy of the record for windows' ends. It names as many columns as [`rows::ACTION_COLUMNS`]
/// (the reader reads them by position): the SLA ladder's `escalated_at` and `reminded` are
/// figures' inputs.
pub(crate) const LIGHT_ACTION_COLUMNS: &str = "id, action, agent, owner, status, tier, rule, reason, '{}', \
     CASE WHEN original_args IS NULL THEN NULL ELSE '{}' END, NULL, '{}', confidence, hints, \
     idempotency_key, approvers, escalated_to, escalated, approvals_required, decisions, \
     deadline, timeout_plan, policy_hash, review_sample, review_state, review, NULL, \
     created_at, decided_at, version, grant_id, '[]', escalated_at, NULL, reminded";

/// Sums read from rows, keyed by the rows' own text until the end.
#[derive(Default)]
struct Sums {
    actions: HashMap<String, ActionTally>,
    reviewers: HashMap<String, ReviewerTally>,
    key: String,
}

const SEPARATOR: char = '\u{1f}';

impl Sums {
    fn action_entry(&mut self, parts: [&str; 4]) -> &mut ActionTally {
        self.key.clear();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                self.key.push(SEPARATOR);
            }
            self.key.push_str(part);
        }
        if !self.actions.contains_key(&self.key) {
            self.actions
                .insert(self.key.clone(), ActionTally::default());
        }
        self.actions.get_mut(&self.key).expect("inserted above")
    }

    fn reviewer_entry(&mut self, parts: [&str; 3]) -> &mut ReviewerTally {
        self.key.clear();
        self.key.push_str(parts[0]);
        self.key.push(SEPARATOR);
        self.key.push_str(parts[1]);
        self.key.push(SEPARATOR);
        self.key.push_str(parts[2]);
        if !self.reviewers.contains_key(&self.key) {
            self.reviewers
                .insert(self.key.clone(), ReviewerTally::default());
        }
        self.reviewers.get_mut(&self.key).expect("inserted above")
    }

    /// Adds the kept rows of `span_hours` whose start is in `within`.
    fn add_rows(&mut self, conn: &Conn, span_hours: i64, within: Span) -> Result<(), StoreError> {
        let (from, to) = (
            within.from.unwrap_or(i64::MIN),
            within.to.unwrap_or(i64::MAX),
        );
        let sql = format!(
            "SELECT action, agent, rule, tier, {}, latency FROM action_stats \
             WHERE span_hours = ? AND start >= ? AND start < ?",
            counts_columns()
        );
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params![span_hours, from, to])?;
        let fields = Counts::FIELDS.len();
        let mut values = vec![0i64; fields];
        while let Some(row) = rows.next()? {
            for (i, value) in values.iter_mut().enumerate() {
                *value = row.get(4 + i)?;
            }
            let latency = decode(blob(row, 4 + fields)?)?;
            let tally =
                self.action_entry([text(row, 0)?, text(row, 1)?, text(row, 2)?, text(row, 3)?]);
            tally.counts.add(&Counts::from_values(&values));
            tally.latency.add(&latency);
        }
        let mut statement = conn.prepare_cached(
            "SELECT reviewer, tier, verdict, decisions, flagged, time_to_decision \
             FROM reviewer_stats WHERE span_hours = ? AND start >= ? AND start < ?",
        )?;
        let mut rows = statement.query(params![span_hours, from, to])?;
        while let Some(row) = rows.next()? {
            let added = ReviewerTally {
                decisions: row.get(3)?,
                flagged: row.get(4)?,
                time_to_decision: decode(blob(row, 5)?)?,
            };
            self.reviewer_entry([text(row, 0)?, text(row, 1)?, text(row, 2)?])
                .add(&added);
        }
        Ok(())
    }

    /// Adds (or subtracts) what the actions submitted in `raw` contribute.
    fn add_raw(&mut self, conn: &Conn, raw: RawSpan) -> Result<(), StoreError> {
        let sql = format!("SELECT {LIGHT_ACTION_COLUMNS} FROM actions WHERE id >= ? AND id < ?");
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params![ids::floor_id(raw.from), ids::floor_id(raw.to)])?;
        while let Some(row) = rows.next()? {
            let record = rows::action_from_row(row)?;
            let contribution = contribution_of(&record);
            let (key, tally) = &contribution.action;
            let entry = self.action_entry([
                key.action.as_str(),
                key.agent.as_str(),
                rule_column(&key.rule),
                key.tier.as_str(),
            ]);
            if raw.sign > 0 {
                entry.add(tally);
            } else {
                entry.subtract(tally);
            }
            for (key, tally) in &contribution.reviewers {
                let entry = self.reviewer_entry([
                    key.reviewer.as_str(),
                    key.tier.as_str(),
                    key.verdict.as_str(),
                ]);
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

fn text<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r str, StoreError> {
    row.get_ref(column)?
        .as_str()
        .map_err(|e| StoreError::Corrupt(format!("statistics column {column}: {e}")))
}

fn blob<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(column)?
        .as_blob()
        .map_err(|e| StoreError::Corrupt(format!("statistics column {column}: {e}")))
}

fn corrupt_key(key: &str) -> StoreError {
    StoreError::Corrupt(format!("statistics key {key:?}"))
}

fn action_key(key: &str) -> Result<ActionKey, StoreError> {
    let parts: Vec<&str> = key.split(SEPARATOR).collect();
    let [action, agent, rule, tier] = parts[..] else {
        return Err(corrupt_key(key));
    };
    Ok(ActionKey {
        action: ActionName::parse(action).map_err(|_| corrupt_key(key))?,
        agent: rows::name(agent, "agent")?,
        rule: (!rule.is_empty()).then(|| rule.to_owned()),
        tier: tier.parse::<Tier>().map_err(|_| corrupt_key(key))?,
    })
}

fn reviewer_key(key: &str) -> Result<ReviewerKey, StoreError> {
    let parts: Vec<&str> = key.split(SEPARATOR).collect();
    let [reviewer, tier, verdict] = parts[..] else {
        return Err(corrupt_key(key));
    };
    Ok(ReviewerKey {
        reviewer: rows::name(reviewer, "reviewer")?,
        tier: tier.parse::<Tier>().map_err(|_| corrupt_key(key))?,
        verdict: verdict.parse::<Verdict>().map_err(|_| corrupt_key(key))?,
    })
}

/// The kept sums of `window` at `now`, read in one snapshot.
pub(crate) fn window(
    conn: &mut Conn,
    window: &Window,
    now: DateTime<Utc>,
) -> Result<StatsData, StoreError> {
    let plan = stats::plan(window, now);
    let tx = conn.transaction()?;
    let mut sums = Sums::default();
    if let Some(days) = plan.days {
        sums.add_rows(&tx, DAILY, days)?;
    }
    for hours in plan.hours {
        sums.add_rows(&tx, HOURLY, hours)?;
    }
    for raw in plan.raw {
        sums.add_raw(&tx, raw)?;
    }
    sums.into_data()
}

/// All groups summed per step.
pub(crate) fn series(conn: &Conn, query: &SeriesQuery) -> Result<Vec<SeriesPoint>, StoreError> {
    let span = query.step.hours();
    let start_of = |at: DateTime<Utc>| stats::hour_of(at).div_euclid(span);
    let sql = format!(
        "SELECT start, {}, latency FROM action_stats \
         WHERE span_hours = ? AND start >= ? AND start < ?",
        counts_columns()
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![span, start_of(query.from), start_of(query.to)])?;
    let fields = Counts::FIELDS.len();
    let mut values = vec![0i64; fields];
    let mut points: BTreeMap<i64, ActionTally> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        for (i, value) in values.iter_mut().enumerate() {
            *value = row.get(1 + i)?;
        }
        let point = points.entry(row.get(0)?).or_default();
        point.counts.add(&Counts::from_values(&values));
        point.latency.add(&decode(blob(row, 1 + fields)?)?);
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
pub(crate) fn totals(conn: &mut Conn) -> Result<StatsTotals, StoreError> {
    let tx = conn.transaction()?;
    let mut first_days: HashMap<String, i64> = HashMap::new();
    {
        let mut statement = tx.prepare_cached(
            "SELECT action, agent, rule, tier, MIN(start) FROM action_stats \
             WHERE span_hours = 24 GROUP BY action, agent, rule, tier",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let key = [text(row, 0)?, text(row, 1)?, text(row, 2)?, text(row, 3)?];
            first_days.insert(key.join(&SEPARATOR.to_string()), row.get(4)?);
        }
    }
    let mut sums = Sums::default();
    sums.add_rows(
        &tx,
        DAILY,
        Span {
            from: None,
            to: None,
        },
    )?;
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
}

/// Sums every action already stored (the migration that added the sums runs this once),
/// an hour at a time: actions are read in id order, which is submission order.
pub(crate) fn backfill(conn: &Conn) -> Result<(), StoreError> {
    let sql = format!("SELECT {LIGHT_ACTION_COLUMNS} FROM actions ORDER BY id");
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query([])?;
    let mut hour: Option<i64> = None;
    let mut pending: HashMap<ActionKey, ActionTally> = HashMap::new();
    let mut pending_reviewers: HashMap<ReviewerKey, ReviewerTally> = HashMap::new();
    let flush = |hour: i64,
                 actions: &mut HashMap<ActionKey, ActionTally>,
                 reviewers: &mut HashMap<ReviewerKey, ReviewerTally>|
     -> Result<(), StoreError> {
        let change = Change {
            actions: actions.drain().collect(),
            reviewers: reviewers.drain().collect(),
        };
        add(conn, stats::hour_start(hour), &change)
    };
    while let Some(row) = rows.next()? {
        let record = rows::action_from_row(row)?;
        let this_hour = stats::hour_of(record.created_at);
        if let Some(previous) = hour
            && previous != this_hour
        {
            flush(previous, &mut pending, &mut pending_reviewers)?;
        }
        hour = Some(this_hour);
        let contribution = contribution_of(&record);
        let (key, tally) = contribution.action;
        pending.entry(key).or_default().add(&tally);
        for (key, tally) in contribution.reviewers {
            pending_reviewers.entry(key).or_default().add(&tally);
        }
    }
    if let Some(hour) = hour {
        flush(hour, &mut pending, &mut pending_reviewers)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_round_trip_through_their_blob() {
        let mut histogram: Histogram = [(0, 1), (5, 300), (999, -2), (120, i64::MAX)]
            .into_iter()
            .collect();
        histogram.add_to(7, i64::MIN + 1);
        assert_eq!(decode(&encode(&histogram)).unwrap(), histogram);
        assert!(decode(&[]).unwrap().is_empty());
        assert!(decode(&[1]).is_err());
        assert!(decode(&[1, 0, 0x80]).is_err());
    }

    /// The light copy reads every column `action_from_row` reads (the SLA ladder's three
    /// were missing: every window not aligned on hours, and the backfill of a database
    /// migrated with actions in it, failed with "Invalid column index: 31").
    #[test]
    fn the_light_columns_are_the_action_columns() {
        let conn = migrated();
        let count = |columns: &str| {
            conn.prepare(&format!("SELECT {columns} FROM actions"))
                .unwrap()
                .column_count()
        };
        assert_eq!(
            count(LIGHT_ACTION_COLUMNS),
            count(super::super::rows::ACTION_COLUMNS)
        );
    }

    fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        conn
    }

    /// (total, latencies) of the hourly and the daily row.
    fn sums(conn: &Connection) -> Vec<(i64, i64, usize)> {
        conn.prepare("SELECT span_hours, total, latency FROM action_stats ORDER BY span_hours")
            .unwrap()
            .query_map([], |row| {
                let latency: Vec<u8> = row.get(2)?;
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    decode(&latency).unwrap().count() as usize,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_batch_writes_its_sums_once_and_drops_a_refused_jobs() {
        let conn = migrated();
        let at = DateTime::parse_from_rfc3339("2026-11-25T12:30:00Z")
            .unwrap()
            .to_utc();
        let change = |total: i64| Change {
            actions: vec![(
                ActionKey {
                    action: ActionName::parse("refund.create").unwrap(),
                    agent: "bot".into(),
                    rule: None,
                    tier: Tier::Approve,
                },
                ActionTally {
                    counts: Counts {
                        total,
                        ..Counts::default()
                    },
                    latency: Histogram::of(5_000),
                },
            )],
            reviewers: vec![],
        };
        let batch = Batch::begin();
        add(&conn, at, &change(1)).unwrap();
        add(&conn, at, &change(2)).unwrap();
        let mark = batch.mark();
        add(&conn, at, &change(4)).unwrap();
        batch.rollback_to(mark);
        assert_eq!(sums(&conn), [], "nothing is written before the flush");
        batch.flush(&conn).unwrap();
        assert_eq!(sums(&conn), [(1, 3, 2), (24, 3, 2)]);
        // Outside a batch (a migration's backfill), at once.
        add(&conn, at, &change(10)).unwrap();
        assert_eq!(sums(&conn), [(1, 13, 3), (24, 13, 3)]);
        // A batch dropped without a flush (it failed) leaves nothing behind.
        let batch = Batch::begin();
        add(&conn, at, &change(100)).unwrap();
        drop(batch);
        add(&conn, at, &change(1)).unwrap();
        assert_eq!(sums(&conn), [(1, 14, 4), (24, 14, 4)]);
    }

    #[test]
    fn the_table_has_the_cores_count_columns() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('action_stats')")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let counts: Vec<&str> = columns[6..columns.len() - 1]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(counts, Counts::FIELDS);
    }
}
