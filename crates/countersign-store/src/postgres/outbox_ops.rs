//! The outbox on PostgreSQL: events and their deliveries written in the transaction of the
//! change that caused them, deliveries claimed by one instance at a time, the record of each
//! try, and the Slack links. The same rows and audit entries as SQLite's `outbox_ops`.
//!
//! Several instances share one outbox. A pending delivery is tried by the instance that
//! claims it: [`due`] locks due rows `FOR UPDATE SKIP LOCKED` (instances claiming at once
//! share the rows instead of queueing on them) and moves their `next_attempt_at` to the end
//! of a lease ([`DELIVERY_LEASE`]), in one statement. No other instance finds them due
//! meanwhile; the claimer records the try, which ends the claim. An instance killed
//! mid-delivery records nothing, and its claims come due again for any instance when their
//! lease ends: the delivery is retried, with the same message id for receivers to
//! de-duplicate on.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use countersign_core::identity::IdentityError;
use countersign_core::name::Name;
use countersign_core::notify::EventKind;
use tokio_postgres::Row;

use super::chain;
use super::pool::Conn;
use crate::audit_log::SYSTEM_ACTOR;
use crate::entries::{self, Draft};
use crate::error::StoreError;
use crate::outbox::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, Event, EventRouter, NO_ACTION, OutboxSignal,
    Person, RegressionEvent, Routed, SlackLink, Tried, outbox_kind,
};
use crate::record::{ActionRecord, Actor, Page, page_limit};
use crate::sqlite::rows::{self, from_millis, millis};
use crate::token::Role;

/// How long a claimed delivery stays with the instance that claimed it before another
/// instance may try it again: longer than any try takes (a target's `timeout` is at most a
/// day, but the defaults are seconds; a try that outlives its lease may be made twice, and
/// receivers de-duplicate on the message id).
pub const DELIVERY_LEASE: Duration = Duration::from_secs(600);

/// What a write emits events through: the router in force when the write started, and the
/// lanes that got deliveries, published once the transaction committed.
pub(crate) struct Emitter {
    pub router: Option<Arc<dyn EventRouter>>,
    lanes: Mutex<BTreeSet<String>>,
}

impl Emitter {
    pub fn new(router: Option<Arc<dyn EventRouter>>) -> Emitter {
        Emitter {
            router,
            lanes: Mutex::new(BTreeSet::new()),
        }
    }

    /// Tells the dispatcher about the lanes this write filled; call after the commit.
    pub fn publish(self, signal: &OutboxSignal) {
        let lanes = self
            .lanes
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !lanes.is_empty() {
            signal.publish(lanes);
        }
    }

    /// Writes `kind`'s event about `record` and its deliveries, if the router sends it
    /// anywhere, in the caller's transaction. The message id is the action's id and version:
    /// one change, one event.
    pub async fn emit(
        &self,
        conn: &mut Conn,
        record: &ActionRecord,
        kind: EventKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(router) = &self.router else {
            return Ok(());
        };
        let callback_url = if EventKind::for_final_status(record.gate.status) == Some(kind) {
            conn.query_opt(
                "SELECT url FROM callbacks WHERE action_id = $1",
                &[&record.id],
            )
            .await?
            .map(|row| row.get::<_, String>(0))
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
        self.write(conn, &id, &record.id, kind, at, routed).await
    }

    /// Writes the event that the graduated rule of `regression` regressed, and its
    /// deliveries, if the router sends it anywhere, in the caller's transaction. `alert` is
    /// the alert's row id: the message id is made of it.
    pub async fn emit_regression(
        &self,
        conn: &mut Conn,
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
        self.write(conn, &id, NO_ACTION, kind, at, routed).await
    }

    async fn write(
        &self,
        conn: &mut Conn,
        id: &str,
        action_id: &str,
        kind: EventKind,
        at: DateTime<Utc>,
        routed: Routed,
    ) -> Result<(), StoreError> {
        if routed.destinations.is_empty() {
            return Ok(());
        }
        let targets: Vec<&str> = routed
            .destinations
            .iter()
            .map(|d| d.target.as_str())
            .collect();
        let lanes: Vec<&str> = routed
            .destinations
            .iter()
            .map(|d| d.lane.as_str())
            .collect();
        let urls: Vec<Option<&str>> = routed
            .destinations
            .iter()
            .map(|d| d.url.as_deref())
            .collect();
        conn.execute(
            "WITH event AS (INSERT INTO events (id, action_id, kind, at, body) \
             VALUES ($1, $2, $3, $4, $5) RETURNING seq) \
             INSERT INTO deliveries (event, target, lane, url, status, attempts, \
             next_attempt_at, created_at) \
             SELECT event.seq, d.target, d.lane, d.url, 'pending', 0, $4, $4 \
             FROM event, unnest($6::text[], $7::text[], $8::text[]) WITH ORDINALITY \
             AS d(target, lane, url, n) ORDER BY d.n",
            &[
                &id,
                &action_id,
                &kind.as_str(),
                &millis(at),
                &routed.body,
                &targets,
                &lanes,
                &urls,
            ],
        )
        .await?;
        let mut staged = self
            .lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for destination in routed.destinations {
            staged.insert(destination.lane);
        }
        Ok(())
    }
}

/// Keeps where the agent wants the final status of a pending action.
pub(crate) async fn save_callback(
    conn: &mut Conn,
    action_id: &str,
    url: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO callbacks (action_id, url) VALUES ($1, $2) \
         ON CONFLICT (action_id) DO UPDATE SET url = EXCLUDED.url",
        &[&action_id, &url],
    )
    .await?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "d.id, e.id, e.kind, e.action_id, d.target, d.lane, d.url, \
     d.status, d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.finished_at";

fn delivery_from_row(row: &Row, with_body: bool) -> Result<Delivery, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("delivery: {what}"));
    let time = |i: usize| row.get::<_, Option<i64>>(i).map(from_millis).transpose();
    Ok(Delivery {
        id: u64::try_from(row.get::<_, i64>(0)).map_err(|_| corrupt("id"))?,
        event_id: row.get(1),
        event_kind: row
            .get::<_, String>(2)
            .parse::<EventKind>()
            .map_err(|_| corrupt("event kind"))?,
        action_id: row.get(3),
        target: row.get(4),
        lane: row.get(5),
        url: row.get(6),
        status: row
            .get::<_, String>(7)
            .parse::<DeliveryStatus>()
            .map_err(|_| corrupt("status"))?,
        attempts: u32::try_from(row.get::<_, i64>(8)).map_err(|_| corrupt("attempts"))?,
        next_attempt_at: time(9)?,
        last_error: row.get(10),
        created_at: from_millis(row.get(11))?,
        finished_at: time(12)?,
        body: if with_body { Some(row.get(13)) } else { None },
    })
}

pub(crate) async fn pending_lanes(conn: &mut Conn) -> Result<Vec<String>, StoreError> {
    let rows = conn
        .query(
            "SELECT DISTINCT lane FROM deliveries WHERE status = 'pending'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Claims up to `limit` deliveries of `lane` due at `now` (leaving out `skip`) for this
/// instance, for [`DELIVERY_LEASE`]; see the module's documentation. Returned with their
/// `next_attempt_at` as it was before the claim.
pub(crate) async fn due(
    conn: &mut Conn,
    lane: &str,
    now: DateTime<Utc>,
    limit: u32,
    skip: &[u64],
) -> Result<Vec<Delivery>, StoreError> {
    let skip: Vec<i64> = skip.iter().map(|id| *id as i64).collect();
    let lease_end = millis(now) + DELIVERY_LEASE.as_millis() as i64;
    let sql = format!(
        "WITH claimed AS (SELECT id, next_attempt_at FROM deliveries \
         WHERE status = 'pending' AND lane = $1 AND next_attempt_at <= $2 \
         AND NOT (id = ANY($3)) ORDER BY next_attempt_at, id LIMIT $4 \
         FOR UPDATE SKIP LOCKED), \
         moved AS (UPDATE deliveries d SET next_attempt_at = $5 FROM claimed \
         WHERE d.id = claimed.id RETURNING d.*, claimed.next_attempt_at AS was_due) \
         SELECT {}, e.body FROM moved d JOIN events e ON e.seq = d.event \
         ORDER BY d.was_due, d.id",
        DELIVERY_COLUMNS.replace("d.next_attempt_at", "d.was_due")
    );
    let rows = conn
        .query(
            &sql,
            &[&lane, &millis(now), &skip, &i64::from(limit), &lease_end],
        )
        .await?;
    rows.iter()
        .map(|row| delivery_from_row(row, true))
        .collect()
}

pub(crate) async fn lane_state(
    conn: &mut Conn,
    lane: &str,
    now: DateTime<Utc>,
) -> Result<(bool, Option<DateTime<Utc>>), StoreError> {
    let row = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'pending' AND lane = $1), \
             (SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending' \
             AND lane = $1 AND next_attempt_at > $2)",
            &[&lane, &millis(now)],
        )
        .await?;
    let any: bool = row.get(0);
    let next: Option<i64> = row.get(1);
    Ok((any, next.map(from_millis).transpose()?))
}

async fn load(conn: &mut Conn, id: u64, lock: bool) -> Result<Delivery, StoreError> {
    let lock = if lock { " FOR UPDATE OF d" } else { "" };
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event \
         WHERE d.id = $1{lock}"
    );
    let row = conn
        .query_opt(&sql, &[&(id as i64)])
        .await?
        .ok_or(StoreError::DeliveryNotFound(id))?;
    delivery_from_row(&row, false)
}

/// Records tries, in the caller's transaction. Only a pending delivery takes a try's
/// result: one retried by an admin meanwhile, or reported twice, is left as the row says.
pub(crate) async fn finish(
    conn: &mut Conn,
    tried: Vec<Tried>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for Tried { id, attempt } in tried {
        let row_id = id as i64;
        match attempt {
            Attempt::Delivered => {
                conn.execute(
                    "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, \
                     next_attempt_at = NULL, last_error = NULL, finished_at = $1 \
                     WHERE id = $2 AND status = 'pending'",
                    &[&millis(now), &row_id],
                )
                .await?;
            }
            Attempt::Retry { error, at } => {
                conn.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, \
                     last_error = $2 WHERE id = $3 AND status = 'pending'",
                    &[&millis(at), &error, &row_id],
                )
                .await?;
            }
            Attempt::GaveUp { error } => {
                let delivery = match load(conn, id, true).await {
                    Ok(delivery) if delivery.status == DeliveryStatus::Pending => delivery,
                    Ok(_) | Err(StoreError::DeliveryNotFound(_)) => continue,
                    Err(error) => return Err(error),
                };
                let attempts = i64::from(delivery.attempts) + 1;
                conn.execute(
                    "UPDATE deliveries SET status = 'failed', attempts = $1, \
                     next_attempt_at = NULL, last_error = $2, finished_at = $3 WHERE id = $4",
                    &[&attempts, &error, &millis(now), &row_id],
                )
                .await?;
                let draft = Draft {
                    kind: outbox_kind::DELIVERY_FAILED,
                    actor: SYSTEM_ACTOR,
                    body: entries::delivery_failed_body(&delivery, attempts, &error),
                };
                chain::insert(conn, millis(now), &delivery.action_id, &[draft]).await?;
            }
        }
    }
    Ok(())
}

pub(crate) async fn list(
    conn: &mut Conn,
    query: &DeliveryQuery,
) -> Result<Page<Delivery>, StoreError> {
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
         WHERE ($1::text IS NULL OR d.status = $1) AND ($2::bigint IS NULL OR d.id < $2) \
         ORDER BY d.id DESC LIMIT $3"
    );
    let rows = conn
        .query(
            &sql,
            &[
                &query.status.map(|s| s.as_str()),
                &before,
                &(i64::from(limit) + 1),
            ],
        )
        .await?;
    let mut items = rows
        .iter()
        .map(|row| delivery_from_row(row, false))
        .collect::<Result<Vec<_>, _>>()?;
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

/// Puts a failed delivery back in its lane, in the caller's transaction; returns it and
/// its lane (to publish after the commit).
pub(crate) async fn retry(
    conn: &mut Conn,
    id: u64,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let delivery = load(conn, id, true).await?;
    if delivery.status != DeliveryStatus::Failed {
        return Err(StoreError::DeliveryNotFailed {
            id,
            status: delivery.status.as_str(),
        });
    }
    conn.execute(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, \
         finished_at = NULL WHERE id = $2",
        &[&millis(now), &(id as i64)],
    )
    .await?;
    let draft = Draft {
        kind: outbox_kind::DELIVERY_RETRIED,
        actor: actor.name.as_str(),
        body: entries::delivery_retried_body(&delivery, actor),
    };
    chain::insert(conn, millis(now), &delivery.action_id, &[draft]).await?;
    load(conn, id, false).await
}

/// `(role, groups, live)` of every token named `name` in any case.
async fn tokens_named(
    conn: &mut Conn,
    name: &Name,
) -> Result<Vec<(Role, Vec<Name>, bool)>, StoreError> {
    let rows = conn
        .query(
            "SELECT role, groups, revoked_at IS NULL FROM tokens WHERE lower(name) = $1",
            &[&name.as_str()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let role = row
                .get::<_, String>(0)
                .parse::<Role>()
                .map_err(|e| StoreError::Corrupt(format!("token role: {e}")))?;
            let groups: Vec<String> = serde_json::from_str(&row.get::<_, String>(1))
                .map_err(|e| StoreError::Corrupt(format!("token groups: {e}")))?;
            Ok((role, rows::names_from(groups, "group")?, row.get(2)))
        })
        .collect()
}

/// Links a Slack user to a person, in the caller's transaction, under the identity lock
/// that token creation takes: an agent token of that name cannot appear meanwhile.
pub(crate) async fn link_slack(
    conn: &mut Conn,
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
    conn.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&super::admin_ops::IDENTITY_LOCK],
    )
    .await?;
    if tokens_named(conn, name)
        .await?
        .iter()
        .any(|(role, _, _)| *role == Role::Agent)
    {
        return Err(IdentityError::NameIsAgent {
            field: "name",
            name: name.to_string(),
        }
        .into());
    }
    conn.execute(
        "INSERT INTO slack_links (slack_user, name, linked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (slack_user) DO UPDATE SET name = EXCLUDED.name, \
         linked_at = EXCLUDED.linked_at",
        &[&slack_user, &name.as_str(), &millis(now)],
    )
    .await?;
    let draft = Draft {
        kind: outbox_kind::SLACK_LINKED,
        actor: actor.name.as_str(),
        body: entries::slack_link_body(slack_user, name, actor),
    };
    chain::insert(conn, millis(now), "", &[draft]).await?;
    Ok(SlackLink {
        slack_user: slack_user.to_owned(),
        name: name.clone(),
        linked_at: now,
    })
}

pub(crate) async fn unlink_slack(
    conn: &mut Conn,
    slack_user: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<SlackLink, StoreError> {
    let row = conn
        .query_opt(
            "DELETE FROM slack_links WHERE slack_user = $1 RETURNING name, linked_at",
            &[&slack_user],
        )
        .await?
        .ok_or_else(|| StoreError::SlackLinkNotFound(slack_user.to_owned()))?;
    let link = SlackLink {
        slack_user: slack_user.to_owned(),
        name: rows::name(&row.get::<_, String>(0), "linked person")?,
        linked_at: from_millis(row.get(1))?,
    };
    let draft = Draft {
        kind: outbox_kind::SLACK_UNLINKED,
        actor: actor.name.as_str(),
        body: entries::slack_link_body(slack_user, &link.name, actor),
    };
    chain::insert(conn, millis(now), "", &[draft]).await?;
    Ok(link)
}

async fn slack_link(conn: &mut Conn, slack_user: &str) -> Result<Option<SlackLink>, StoreError> {
    let row = conn
        .query_opt(
            "SELECT name, linked_at FROM slack_links WHERE slack_user = $1",
            &[&slack_user],
        )
        .await?;
    row.map(|row| {
        Ok(SlackLink {
            slack_user: slack_user.to_owned(),
            name: rows::name(&row.get::<_, String>(0), "linked person")?,
            linked_at: from_millis(row.get(1))?,
        })
    })
    .transpose()
}

pub(crate) async fn slack_links(conn: &mut Conn) -> Result<Vec<SlackLink>, StoreError> {
    let rows = conn
        .query(
            "SELECT slack_user, name, linked_at FROM slack_links ORDER BY name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SlackLink {
                slack_user: row.get(0),
                name: rows::name(&row.get::<_, String>(1), "linked person")?,
                linked_at: from_millis(row.get(2))?,
            })
        })
        .collect()
}

pub(crate) async fn slack_person(
    conn: &mut Conn,
    slack_user: &str,
) -> Result<Option<Person>, StoreError> {
    let Some(link) = slack_link(conn, slack_user).await? else {
        return Ok(None);
    };
    let login = super::admin_ops::user(conn, link.name.as_str()).await?;
    let tokens = tokens_named(conn, &link.name).await?;
    Ok(Some(Person::from_parts(link.name, login.as_ref(), tokens)))
}
