//! The outbox in SQL: events and their deliveries written inside the writer's job for the
//! change that caused them, the dispatcher's lane queries, the record of each try, and the
//! Slack links. Writes run in the writer's transaction; reads on read-only connections.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use countersign_core::identity::IdentityError;
use countersign_core::name::Name;
use countersign_core::notify::EventKind;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::chain::{self, Head};
use super::rows::{self, from_millis, millis};
use crate::audit_log::SYSTEM_ACTOR;
use crate::entries;
use crate::error::StoreError;
use crate::outbox::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, Event, EventRouter, NO_ACTION, OutboxSignal,
    Person, RegressionEvent, Routed, SlackLink, Tried, outbox_kind,
};
use crate::record::{ActionRecord, Actor, Page, page_limit};
use crate::token::Role;

type Conn = Connection;

/// What a write job emits events through: the router in force when the job was queued,
/// and the signal that publishes new lanes after the commit.
#[derive(Clone)]
pub(crate) struct Emitter {
    pub router: Option<Arc<dyn EventRouter>>,
    pub signal: Arc<OutboxSignal>,
}

impl Emitter {
    /// Writes `kind`'s event about `record` and its deliveries, if the router sends it
    /// anywhere. The message id is the action's id and version: one change, one event.
    pub fn emit(
        &self,
        conn: &Conn,
        record: &ActionRecord,
        kind: EventKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(router) = &self.router else {
            return Ok(());
        };
        let callback_url = if EventKind::for_final_status(record.gate.status) == Some(kind) {
            conn.prepare_cached("SELECT url FROM callbacks WHERE action_id = ?")?
                .query_row([&record.id], |row| row.get::<_, String>(0))
                .optional()?
        } else {
            None
        };
        let id = format!("msg_{}_{}", record.id, record.version);
        let event = Event {
            id: &id,
            kind,
            record,
            at,
            callback_url: callback_url.as_deref(),
        };
        let Some(routed) = router.route(&event) else {
            return Ok(());
        };
        self.write(conn, &id, &record.id, kind, at, routed)
    }

    /// Writes the event that the graduated rule of `regression` regressed, and its
    /// deliveries, if the router sends it anywhere. `alert` is the alert's row id: the
    /// message id is made of it.
    pub fn emit_regression(
        &self,
        conn: &Conn,
        regression: &crate::NewRegression,
        alert: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(router) = &self.router else {
            return Ok(());
        };
        let id = format!("msg_graduation_{alert}");
        let event = RegressionEvent {
            id: &id,
            regression,
            at,
        };
        let Some(routed) = router.route_regression(&event) else {
            return Ok(());
        };
        let kind = EventKind::GraduationRegressed;
        self.write(conn, &id, NO_ACTION, kind, at, routed)
    }

    fn write(
        &self,
        conn: &Conn,
        id: &str,
        action_id: &str,
        kind: EventKind,
        at: DateTime<Utc>,
        routed: Routed,
    ) -> Result<(), StoreError> {
        if routed.destinations.is_empty() {
            return Ok(());
        }
        conn.prepare_cached(
            "INSERT INTO events (id, action_id, kind, at, body) VALUES (?, ?, ?, ?, ?)",
        )?
        .execute(params![
            id,
            action_id,
            kind.as_str(),
            millis(at),
            routed.body
        ])?;
        let event_seq = conn.last_insert_rowid();
        let mut insert = conn.prepare_cached(
            "INSERT INTO deliveries (event, target, lane, url, status, attempts, \
             next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
        )?;
        for destination in &routed.destinations {
            insert.execute(params![
                event_seq,
                destination.target,
                destination.lane,
                destination.url,
                millis(at),
                millis(at),
            ])?;
            self.signal.stage(&destination.lane);
        }
        Ok(())
    }
}

/// Keeps where the agent wants the final status of a pending action.
pub(crate) fn save_callback(conn: &Conn, action_id: &str, url: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO callbacks (action_id, url) VALUES (?, ?)")?
        .execute(params![action_id, url])?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "d.id, e.id, e.kind, e.action_id, d.target, d.lane, d.url, \
     d.status, d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.finished_at";

fn delivery_from_row(row: &Row<'_>, with_body: bool) -> Result<Delivery, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("delivery: {what}"));
    let time = |i: usize| -> Result<Option<DateTime<Utc>>, StoreError> {
        row.get::<_, Option<i64>>(i)?.map(from_millis).transpose()
    };
    Ok(Delivery {
        id: u64::try_from(row.get::<_, i64>(0)?).map_err(|_| corrupt("id"))?,
        event_id: row.get(1)?,
        event_kind: row
            .get::<_, String>(2)?
            .parse::<EventKind>()
            .map_err(|_| corrupt("event kind"))?,
        action_id: row.get(3)?,
        target: row.get(4)?,
        lane: row.get(5)?,
        url: row.get(6)?,
        status: row
            .get::<_, String>(7)?
            .parse::<DeliveryStatus>()
            .map_err(|_| corrupt("status"))?,
        attempts: u32::try_from(row.get::<_, i64>(8)?).map_err(|_| corrupt("attempts"))?,
        next_attempt_at: time(9)?,
        last_error: row.get(10)?,
        created_at: from_millis(row.get(11)?)?,
        finished_at: time(12)?,
        body: if with_body { Some(row.get(13)?) } else { None },
    })
}

pub(crate) fn pending_lanes(conn: &Conn) -> Result<Vec<String>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT DISTINCT lane FROM deliveries WHERE status = 'pending'")?;
    let lanes = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lanes)
}

pub(crate) fn due(
    conn: &Conn,
    lane: &str,
    now: DateTime<Utc>,
    limit: u32,
    skip: &[u64],
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, e.body FROM deliveries d JOIN events e ON e.seq = d.event \
         WHERE d.status = 'pending' AND d.lane = ? AND d.next_attempt_at <= ? \
         ORDER BY d.next_attempt_at, d.id LIMIT ?"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![
        lane,
        millis(now),
        i64::from(limit) + skip.len() as i64
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let delivery = delivery_from_row(row, true)?;
        if !skip.contains(&delivery.id) && out.len() < limit as usize {
            out.push(delivery);
        }
    }
    Ok(out)
}

pub(crate) fn lane_state(
    conn: &Conn,
    lane: &str,
    now: DateTime<Utc>,
) -> Result<(bool, Option<DateTime<Utc>>), StoreError> {
    let any: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND lane = ?)",
        )?
        .query_row([lane], |row| row.get(0))?;
    if !any {
        return Ok((false, None));
    }
    let next: Option<i64> = conn
        .prepare_cached(
            "SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND lane = ? \
             AND next_attempt_at > ? ORDER BY next_attempt_at LIMIT 1",
        )?
        .query_row(params![lane, millis(now)], |row| row.get(0))
        .optional()?;
    Ok((true, next.map(from_millis).transpose()?))
}

fn load(conn: &Conn, id: u64) -> Result<Delivery, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event \
         WHERE d.id = ?"
    );
    conn.prepare_cached(&sql)?
        .query_row([id as i64], |row| Ok(delivery_from_row(row, false)))
        .optional()?
        .transpose()?
        .ok_or(StoreError::DeliveryNotFound(id))
}

pub(crate) fn finish(
    conn: &Conn,
    head: &mut Head,
    tried: Vec<Tried>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Only a pending delivery takes a try's result: one retried by an admin meanwhile, or
    // reported twice, is left as the row says. Delivered and retried tries are one update
    // each (the common path, thousands a second); a last failed try loads the delivery for
    // its audit entry.
    for Tried { id, attempt } in tried {
        let id = id as i64;
        match attempt {
            Attempt::Delivered => {
                conn.prepare_cached(
                    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, \
                     next_attempt_at = NULL, last_error = NULL, finished_at = ? \
                     WHERE id = ? AND status = 'pending'",
                )?
                .execute(params![millis(now), id])?;
            }
            Attempt::Retry { error, at } => {
                conn.prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, \
                     last_error = ? WHERE id = ? AND status = 'pending'",
                )?
                .execute(params![millis(at), error, id])?;
            }
            Attempt::GaveUp { error } => {
                let delivery = match load(conn, id as u64) {
                    Ok(delivery) if delivery.status == DeliveryStatus::Pending => delivery,
                    Ok(_) | Err(StoreError::DeliveryNotFound(_)) => continue,
                    Err(error) => return Err(error),
                };
                let attempts = i64::from(delivery.attempts) + 1;
                conn.prepare_cached(
                    "UPDATE deliveries SET status = 'failed', attempts = ?, \
                     next_attempt_at = NULL, last_error = ?, finished_at = ? WHERE id = ?",
                )?
                .execute(params![attempts, error, millis(now), id])?;
                chain::append(
                    conn,
                    head,
                    now,
                    outbox_kind::DELIVERY_FAILED,
                    SYSTEM_ACTOR,
                    &delivery.action_id,
                    entries::delivery_failed_body(&delivery, attempts, &error),
                )?;
            }
        }
    }
    Ok(())
}

pub(crate) fn list(conn: &Conn, query: &DeliveryQuery) -> Result<Page<Delivery>, StoreError> {
    let before = match &query.cursor {
        Some(cursor) => Some(
            cursor
                .parse::<u64>()
                .ok()
                .filter(|id| *id <= i64::MAX as u64)
                .ok_or_else(|| StoreError::BadCursor(cursor.clone()))? as i64,
        ),
        None => None,
    };
    let limit = page_limit(query.limit);
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event \
         WHERE (?1 IS NULL OR d.status = ?1) AND (?2 IS NULL OR d.id < ?2) \
         ORDER BY d.id DESC LIMIT ?3"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params![
        query.status.map(|s| s.as_str()),
        before,
        i64::from(limit) + 1
    ])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(delivery_from_row(row, false)?);
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    Ok(Page {
        next_cursor: if more {
            items.last().map(|d| d.id.to_string())
        } else {
            None
        },
        items,
    })
}

pub(crate) fn retry(
    conn: &Conn,
    head: &mut Head,
    signal: &OutboxSignal,
    id: u64,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let delivery = load(conn, id)?;
    if delivery.status != DeliveryStatus::Failed {
        return Err(StoreError::DeliveryNotFailed {
            id,
            status: delivery.status.as_str(),
        });
    }
    conn.prepare_cached(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, \
         finished_at = NULL WHERE id = ?",
    )?
    .execute(params![millis(now), id as i64])?;
    chain::append(
        conn,
        head,
        now,
        outbox_kind::DELIVERY_RETRIED,
        actor.name.as_str(),
        &delivery.action_id,
        entries::delivery_retried_body(&delivery, actor),
    )?;
    signal.stage(&delivery.lane);
    load(conn, id)
}

/// `(role, live)` of every token named `name` in any case (SQLite's `lower()` folds ASCII,
/// as names do; earlier versions stored names as typed).
fn tokens_named(conn: &Conn, name: &Name) -> Result<Vec<(Role, String, bool)>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT role, groups, revoked_at IS NULL FROM tokens WHERE lower(name) = ?",
    )?;
    let rows = statement
        .query_map([name.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, bool>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(role, groups, live)| {
            Ok((
                role.parse::<Role>()
                    .map_err(|e| StoreError::Corrupt(format!("token role: {e}")))?,
                groups,
                live,
            ))
        })
        .collect()
}

pub(crate) fn link_slack(
    conn: &Conn,
    head: &mut Head,
    slack_user: &str,
    name: &Name,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<SlackLink, StoreError> {
    if name.is_reserved() {
        return Err(IdentityError::Reserved {
            field: "name",
            name: name.to_string(),
        }
        .into());
    }
    if tokens_named(conn, name)?
        .iter()
        .any(|(role, _, _)| *role == Role::Agent)
    {
        return Err(IdentityError::NameIsAgent {
            field: "name",
            name: name.to_string(),
        }
        .into());
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO slack_links (slack_user, name, linked_at) VALUES (?, ?, ?)",
    )?
    .execute(params![slack_user, name.as_str(), millis(now)])?;
    chain::append(
        conn,
        head,
        now,
        outbox_kind::SLACK_LINKED,
        actor.name.as_str(),
        "",
        entries::slack_link_body(slack_user, name, actor),
    )?;
    Ok(SlackLink {
        slack_user: slack_user.to_owned(),
        name: name.clone(),
        linked_at: now,
    })
}

pub(crate) fn unlink_slack(
    conn: &Conn,
    head: &mut Head,
    slack_user: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<SlackLink, StoreError> {
    let link = slack_link(conn, slack_user)?
        .ok_or_else(|| StoreError::SlackLinkNotFound(slack_user.to_owned()))?;
    conn.prepare_cached("DELETE FROM slack_links WHERE slack_user = ?")?
        .execute([slack_user])?;
    chain::append(
        conn,
        head,
        now,
        outbox_kind::SLACK_UNLINKED,
        actor.name.as_str(),
        "",
        entries::slack_link_body(slack_user, &link.name, actor),
    )?;
    Ok(link)
}

fn slack_link(conn: &Conn, slack_user: &str) -> Result<Option<SlackLink>, StoreError> {
    let row = conn
        .prepare_cached("SELECT name, linked_at FROM slack_links WHERE slack_user = ?")?
        .query_row([slack_user], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .optional()?;
    row.map(|(name, at)| {
        Ok(SlackLink {
            slack_user: slack_user.to_owned(),
            name: rows::name(&name, "linked person")?,
            linked_at: from_millis(at)?,
        })
    })
    .transpose()
}

pub(crate) fn slack_links(conn: &Conn) -> Result<Vec<SlackLink>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT slack_user, name, linked_at FROM slack_links ORDER BY name")?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(slack_user, name, at)| {
            Ok(SlackLink {
                slack_user,
                name: rows::name(&name, "linked person")?,
                linked_at: from_millis(at)?,
            })
        })
        .collect()
}

pub(crate) fn slack_person(conn: &Conn, slack_user: &str) -> Result<Option<Person>, StoreError> {
    let Some(link) = slack_link(conn, slack_user)? else {
        return Ok(None);
    };
    let login = super::people_ops::user(conn, link.name.as_str())?;
    let mut tokens = Vec::new();
    for (role, groups, live) in tokens_named(conn, &link.name)? {
        let groups: Vec<String> = serde_json::from_str(&groups)
            .map_err(|e| StoreError::Corrupt(format!("token groups: {e}")))?;
        tokens.push((role, rows::names_from(groups, "group")?, live));
    }
    Ok(Some(Person::from_parts(link.name, login.as_ref(), tokens)))
}
