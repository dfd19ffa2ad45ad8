//! Grants on PostgreSQL: created, listed, revoked, and a use counted inside the
//! submission's transaction. The use is one `UPDATE ... WHERE uses < max_uses`: a second
//! instance racing for the last use waits on the row lock and finds the condition false
//! when PostgreSQL re-checks it, so `N` uses are `N` across instances.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::chain;
use super::ops::transaction;
use super::pool::Conn;
use crate::entries::{self, Draft};
use crate::error::StoreError;
use crate::grants::{GrantQuery, GrantRecord, NewGrant, grant_kind};
use crate::record::Actor;
use crate::sqlite::rows::{self, from_millis, millis, to_json};

const GRANT_COLUMNS: &str = "id, agent, actions, condition, expires_at, max_uses, uses, \
    granted_by, granted_by_groups, granted_by_admin, reason, created_at, revoked_at, revoked_by";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn grant_from_row(row: &Row) -> Result<GrantRecord, StoreError> {
    let count = |i: usize, what: &str| -> Result<Option<u32>, StoreError> {
        row.try_get::<_, Option<i64>>(i)
            .map_err(corrupt)?
            .map(|v| u32::try_from(v).map_err(|_| corrupt(format!("grant {what} {v}"))))
            .transpose()
    };
    let text = |i: usize| row.try_get::<_, String>(i).map_err(corrupt);
    let opt_text = |i: usize| row.try_get::<_, Option<String>>(i).map_err(corrupt);
    let groups: Vec<String> =
        serde_json::from_str(&text(8)?).map_err(|e| corrupt(format!("grant groups: {e}")))?;
    Ok(GrantRecord {
        id: text(0)?,
        agent: rows::name(&text(1)?, "grant agent")?,
        actions: text(2)?,
        condition: opt_text(3)?,
        expires_at: from_millis(row.try_get(4).map_err(corrupt)?)?,
        max_uses: count(5, "max_uses")?,
        uses: count(6, "uses")?.unwrap_or(0),
        granted_by: rows::name(&text(7)?, "grant giver")?,
        granted_by_groups: groups
            .iter()
            .map(|g| rows::name(g, "grant giver's group"))
            .collect::<Result<_, _>>()?,
        granted_by_admin: row.try_get(9).map_err(corrupt)?,
        reason: opt_text(10)?,
        created_at: from_millis(row.try_get(11).map_err(corrupt)?)?,
        revoked_at: row
            .try_get::<_, Option<i64>>(12)
            .map_err(corrupt)?
            .map(from_millis)
            .transpose()?,
        revoked_by: opt_text(13)?
            .map(|n| rows::name(&n, "grant revoker"))
            .transpose()?,
    })
}

pub(crate) async fn grant(conn: &mut Conn, id: &str) -> Result<Option<GrantRecord>, StoreError> {
    let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1");
    conn.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
}

pub(crate) async fn grants(
    conn: &mut Conn,
    query: &GrantQuery,
) -> Result<Vec<GrantRecord>, StoreError> {
    let agent = query.agent.as_ref().map(|a| a.as_str().to_owned());
    let at = query.live_at.map(millis);
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM grants \
         WHERE ($1::text IS NULL OR agent = $1) \
         AND ($2::bigint IS NULL OR (revoked_at IS NULL AND expires_at > $2 \
              AND (max_uses IS NULL OR uses < max_uses))) \
         ORDER BY created_at DESC, id DESC"
    );
    conn.query(&sql, &[&agent, &at])
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
}

pub(crate) async fn create_grant(
    conn: &mut Conn,
    new: NewGrant,
) -> Result<GrantRecord, StoreError> {
    let (record, giver) = entries::new_grant(new);
    transaction!(conn, async {
        conn.execute(
            "INSERT INTO grants (id, agent, actions, condition, expires_at, max_uses, uses, \
             granted_by, granted_by_groups, granted_by_admin, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11)",
            &[
                &record.id,
                &record.agent.as_str(),
                &record.actions,
                &record.condition,
                &millis(record.expires_at),
                &record.max_uses.map(i64::from),
                &record.granted_by.as_str(),
                &to_json(&rows::names(&record.granted_by_groups)),
                &record.granted_by_admin,
                &record.reason,
                &millis(record.created_at),
            ],
        )
        .await?;
        let draft = Draft {
            kind: grant_kind::GRANT_CREATED,
            actor: giver.name.as_str(),
            body: entries::grant_created_body(&record, &giver),
        };
        chain::insert(conn, millis(record.created_at), "", &[draft]).await?;
        Ok(record)
    })
}

pub(crate) async fn revoke_grant(
    conn: &mut Conn,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<GrantRecord, StoreError> {
    transaction!(conn, async {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 FOR UPDATE");
        let record = conn
            .query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(grant_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::GrantNotFound(id.to_owned()))?;
        if record.revoked_at.is_some() {
            return Ok(record);
        }
        conn.execute(
            "UPDATE grants SET revoked_at = $1, revoked_by = $2 WHERE id = $3",
            &[&millis(now), &actor.name.as_str(), &id],
        )
        .await?;
        let draft = Draft {
            kind: grant_kind::GRANT_REVOKED,
            actor: actor.name.as_str(),
            body: entries::grant_revoked_body(&record, actor),
        };
        chain::insert(conn, millis(now), "", &[draft]).await?;
        Ok(GrantRecord {
            revoked_at: Some(now),
            revoked_by: Some(actor.name.clone()),
            ..record
        })
    })
}

/// Counts one use of grant `id` at `at` if it is live then; the grant after the use, or
/// `None`. Call inside the submission's transaction.
pub(crate) async fn use_grant(
    conn: &mut Conn,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<GrantRecord>, StoreError> {
    let sql = format!(
        "UPDATE grants SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL \
         AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses) \
         RETURNING {GRANT_COLUMNS}"
    );
    conn.query_opt(&sql, &[&id, &millis(at)])
        .await?
        .as_ref()
        .map(grant_from_row)
        .transpose()
}
