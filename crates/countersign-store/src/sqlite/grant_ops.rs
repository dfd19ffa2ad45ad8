//! Grants on SQLite: created, listed, revoked, and a use counted inside the writer's
//! transaction that allows the action it covers.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, ToSql, params};

use super::chain::{self, Head};
use super::rows::{self, from_millis, millis, to_json};
use crate::entries;
use crate::error::StoreError;
use crate::grants::{GrantQuery, GrantRecord, NewGrant, grant_kind};
use crate::record::Actor;

type Conn = Connection;

const GRANT_COLUMNS: &str = "id, agent, actions, condition, expires_at, max_uses, uses, \
    granted_by, granted_by_groups, granted_by_admin, reason, created_at, revoked_at, revoked_by";

fn grant_from_row(row: &Row<'_>) -> Result<GrantRecord, StoreError> {
    let count = |value: Option<i64>, what: &str| {
        value
            .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("grant {what} {v}"))))
            .transpose()
    };
    let groups: Vec<String> = serde_json::from_str(&row.get::<_, String>(8)?)
        .map_err(|e| StoreError::Corrupt(format!("grant groups: {e}")))?;
    Ok(GrantRecord {
        id: row.get(0)?,
        agent: rows::name(&row.get::<_, String>(1)?, "grant agent")?,
        actions: row.get(2)?,
        condition: row.get(3)?,
        expires_at: from_millis(row.get(4)?)?,
        max_uses: count(row.get(5)?, "max_uses")?,
        uses: count(Some(row.get(6)?), "uses")?.unwrap_or(0),
        granted_by: rows::name(&row.get::<_, String>(7)?, "grant giver")?,
        granted_by_groups: groups
            .iter()
            .map(|g| rows::name(g, "grant giver's group"))
            .collect::<Result<_, _>>()?,
        granted_by_admin: row.get(9)?,
        reason: row.get(10)?,
        created_at: from_millis(row.get(11)?)?,
        revoked_at: row
            .get::<_, Option<i64>>(12)?
            .map(from_millis)
            .transpose()?,
        revoked_by: row
            .get::<_, Option<String>>(13)?
            .map(|n| rows::name(&n, "grant revoker"))
            .transpose()?,
    })
}

pub(crate) fn grant(conn: &Conn, id: &str) -> Result<Option<GrantRecord>, StoreError> {
    let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = ?");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query([id])?;
    rows.next()?.map(grant_from_row).transpose()
}

pub(crate) fn grants(conn: &Conn, query: &GrantQuery) -> Result<Vec<GrantRecord>, StoreError> {
    let mut sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE 1 = 1");
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(agent) = &query.agent {
        sql.push_str(" AND agent = ?");
        values.push(Box::new(agent.as_str().to_owned()));
    }
    if let Some(at) = query.live_at {
        sql.push_str(
            " AND revoked_at IS NULL AND expires_at > ? AND (max_uses IS NULL OR uses < max_uses)",
        );
        values.push(Box::new(millis(at)));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        found.push(grant_from_row(row)?);
    }
    Ok(found)
}

pub(crate) fn create_grant(
    conn: &Conn,
    head: &mut Head,
    new: NewGrant,
) -> Result<GrantRecord, StoreError> {
    let (record, giver) = entries::new_grant(new);
    conn.prepare_cached(
        "INSERT INTO grants (id, agent, actions, condition, expires_at, max_uses, uses, \
         granted_by, granted_by_groups, granted_by_admin, reason, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &record.id,
        record.agent.as_str(),
        &record.actions,
        &record.condition,
        millis(record.expires_at),
        record.max_uses,
        record.granted_by.as_str(),
        to_json(&rows::names(&record.granted_by_groups)),
        record.granted_by_admin,
        &record.reason,
        millis(record.created_at),
    ])?;
    chain::append(
        conn,
        head,
        record.created_at,
        grant_kind::GRANT_CREATED,
        giver.name.as_str(),
        "",
        entries::grant_created_body(&record, &giver),
    )?;
    Ok(record)
}

pub(crate) fn revoke_grant(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<GrantRecord, StoreError> {
    let record = grant(conn, id)?.ok_or_else(|| StoreError::GrantNotFound(id.to_owned()))?;
    if record.revoked_at.is_some() {
        return Ok(record);
    }
    conn.prepare_cached("UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ?")?
        .execute(params![millis(now), actor.name.as_str(), id])?;
    chain::append(
        conn,
        head,
        now,
        grant_kind::GRANT_REVOKED,
        actor.name.as_str(),
        "",
        entries::grant_revoked_body(&record, actor),
    )?;
    Ok(GrantRecord {
        revoked_at: Some(now),
        revoked_by: Some(actor.name.clone()),
        ..record
    })
}

/// Counts one use of grant `id` at `at` if it is live then (not revoked, not expired, uses
/// left): the grant after the use, or `None` if it covers nothing any more. Runs in the
/// writer's transaction, so concurrent submissions cannot both take the last use.
pub(crate) fn use_grant(
    conn: &Conn,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<GrantRecord>, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE grants SET uses = uses + 1 WHERE id = ? AND revoked_at IS NULL \
             AND expires_at > ? AND (max_uses IS NULL OR uses < max_uses)",
        )?
        .execute(params![id, millis(at)])?;
    if changed == 0 {
        return Ok(None);
    }
    grant(conn, id)
}
