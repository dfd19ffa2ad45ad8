//! People and sessions in SQLite: the writes (run by the writer inside its batch
//! transaction, each with its audit entry) and the reads (on reader connections).

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::identity::{self, Claim, Kind, Known};
use countersign_core::name::Name;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

use super::chain::{self, Head};
use super::rows::{self, from_millis, millis, to_json};
use crate::entries::with_token;
use crate::error::StoreError;
use crate::people::{NewSession, NewUser, Session, SignedIn, StartedSession, User, people_kind};
use crate::record::Actor;
use crate::{ids, token};

type Conn = Connection;

/// Ended or long-idle sessions are deleted after this (they are not evidence: the audit
/// log has the sign-ins and sign-outs).
const SESSION_RETENTION: TimeDelta = TimeDelta::days(30);

const USER_COLUMNS: &str =
    "name, groups, admin, password, created_at, password_changed_at, disabled_at";
const SESSION_COLUMNS: &str = "id, name, created_at, last_seen_at, authenticated_at, ended_at";

fn user_from_row(row: &Row<'_>, at: usize) -> Result<User, StoreError> {
    let groups: Vec<String> = serde_json::from_str(&row.get::<_, String>(at + 1)?)
        .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?;
    Ok(User {
        name: rows::name(&row.get::<_, String>(at)?, "user name")?,
        groups: groups
            .iter()
            .map(|g| rows::name(g, "group"))
            .collect::<Result<_, _>>()?,
        admin: row.get(at + 2)?,
        password_hash: row.get(at + 3)?,
        created_at: from_millis(row.get(at + 4)?)?,
        password_changed_at: from_millis(row.get(at + 5)?)?,
        disabled: row.get::<_, Option<i64>>(at + 6)?.is_some(),
    })
}

fn session_from_row(row: &Row<'_>) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.get(0)?,
        name: rows::name(&row.get::<_, String>(1)?, "session name")?,
        created_at: from_millis(row.get(2)?)?,
        last_seen_at: from_millis(row.get(3)?)?,
        authenticated_at: from_millis(row.get(4)?)?,
        ended: row.get::<_, Option<i64>>(5)?.is_some(),
    })
}

pub(crate) fn user(conn: &Conn, name: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut found = statement.query([name.to_ascii_lowercase()])?;
    found.next()?.map(|row| user_from_row(row, 0)).transpose()
}

pub(crate) fn users(conn: &Conn) -> Result<Vec<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
    let mut statement = conn.prepare_cached(&sql)?;
    let mut found = statement.query([])?;
    let mut users = Vec::new();
    while let Some(row) = found.next()? {
        users.push(user_from_row(row, 0)?);
    }
    Ok(users)
}

/// The live or ended session whose secret this is, with its person.
pub(crate) fn signed_in(conn: &Conn, secret: &str) -> Result<Option<SignedIn>, StoreError> {
    let computed = token::secret_hash(secret);
    let sql = format!(
        "SELECT s.id, s.name, s.created_at, s.last_seen_at, s.authenticated_at, s.ended_at, \
         s.secret_hash, u.{} FROM sessions s JOIN users u ON u.name = s.name \
         WHERE s.secret_hash = ?",
        USER_COLUMNS.replace(", ", ", u.")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut found = statement.query([&computed[..]])?;
    let Some(row) = found.next()? else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.get(6)?;
    if !token::hashes_match(&stored, &computed) {
        return Ok(None);
    }
    Ok(Some(SignedIn {
        session: session_from_row(row)?,
        user: user_from_row(row, 7)?,
    }))
}

pub(crate) fn create_user(conn: &Conn, head: &mut Head, new: NewUser) -> Result<User, StoreError> {
    if user(conn, new.name.as_str())?.is_some() {
        return Err(StoreError::UserExists(new.name.to_string()));
    }
    // The same identity rules as a token of a person: one spelling, one kind, no reserved
    // name; decided here, in the transaction that inserts the row.
    let related = super::admin_ops::related_tokens(conn, new.name.as_str(), None)?;
    let known: Vec<Known<'_>> = related
        .iter()
        .map(|(name, role, owner, live)| Known {
            name,
            kind: role.identity_kind(),
            owner: owner.as_deref(),
            live: *live,
        })
        .collect();
    let claim = Claim {
        name: new.name.as_str(),
        kind: Kind::Person,
        owner: None,
    };
    identity::admit(&claim, &known)?;
    conn.prepare_cached(
        "INSERT INTO users (name, groups, admin, password, created_at, password_changed_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        new.name.as_str(),
        to_json(&rows::names(&new.groups)),
        new.admin,
        &new.password_hash,
        millis(new.at),
        millis(new.at),
    ])?;
    let body = json!({
        "name": new.name.as_str(),
        "groups": rows::names(&new.groups),
        "admin": new.admin,
    });
    chain::append(
        conn,
        head,
        new.at,
        people_kind::USER_CREATED,
        new.created_by.name.as_str(),
        "",
        with_token(body, new.created_by.token_id.as_deref()),
    )?;
    user(conn, new.name.as_str())?.ok_or_else(|| StoreError::UserNotFound(new.name.to_string()))
}

fn existing_user(conn: &Conn, name: &Name) -> Result<User, StoreError> {
    user(conn, name.as_str())?.ok_or_else(|| StoreError::UserNotFound(name.to_string()))
}

/// Ends every live session of `name`; returns how many.
fn end_sessions_of(conn: &Conn, name: &Name, now: DateTime<Utc>) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE sessions SET ended_at = ? WHERE name = ? AND ended_at IS NULL")?
        .execute(params![millis(now), name.as_str()])?)
}

pub(crate) fn change_password(
    conn: &Conn,
    head: &mut Head,
    name: &Name,
    password_hash: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    existing_user(conn, name)?;
    conn.prepare_cached("UPDATE users SET password = ?, password_changed_at = ? WHERE name = ?")?
        .execute(params![password_hash, millis(now), name.as_str()])?;
    // Whoever knew the old password may hold a session: it ends with it.
    let ended = end_sessions_of(conn, name, now)?;
    let body = json!({"name": name.as_str(), "sessions_ended": ended});
    chain::append(
        conn,
        head,
        now,
        people_kind::PASSWORD_CHANGED,
        actor.name.as_str(),
        "",
        with_token(body, actor.token_id.as_deref()),
    )?;
    existing_user(conn, name)
}

/// Disables `name`: no sign-in, every session ended, every live token of that name revoked.
/// Returns the person and the ids of the tokens revoked now.
pub(crate) fn disable_user(
    conn: &Conn,
    head: &mut Head,
    name: &Name,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(User, Vec<String>), StoreError> {
    let before = existing_user(conn, name)?;
    if before.disabled {
        return Ok((before, Vec::new()));
    }
    conn.prepare_cached("UPDATE users SET disabled_at = ? WHERE name = ?")?
        .execute(params![millis(now), name.as_str()])?;
    let ended = end_sessions_of(conn, name, now)?;
    let revoked: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM tokens WHERE lower(name) = ? AND revoked_at IS NULL ORDER BY id",
        )?
        .query_map([name.as_str()], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    conn.prepare_cached(
        "UPDATE tokens SET revoked_at = ? WHERE lower(name) = ? AND revoked_at IS NULL",
    )?
    .execute(params![millis(now), name.as_str()])?;
    let body = json!({
        "name": name.as_str(),
        "sessions_ended": ended,
        "tokens_revoked": revoked,
    });
    chain::append(
        conn,
        head,
        now,
        people_kind::USER_DISABLED,
        actor.name.as_str(),
        "",
        with_token(body, actor.token_id.as_deref()),
    )?;
    Ok((existing_user(conn, name)?, revoked))
}

pub(crate) fn start_session(
    conn: &Conn,
    head: &mut Head,
    new: NewSession,
) -> Result<StartedSession, StoreError> {
    let user = existing_user(conn, &new.name)?;
    if user.disabled {
        return Err(StoreError::UserDisabled(user.name.to_string()));
    }
    // Old sessions of this person go: nothing reads them any more.
    conn.prepare_cached(
        "DELETE FROM sessions WHERE name = ? AND (ended_at IS NOT NULL OR last_seen_at < ?)",
    )?
    .execute(params![
        new.name.as_str(),
        millis(new.at - SESSION_RETENTION)
    ])?;
    let secret = ids::base64url(&ids::random_bytes::<32>());
    let session = Session {
        id: ids::new_id(new.at),
        name: user.name.clone(),
        created_at: new.at,
        last_seen_at: new.at,
        authenticated_at: new.at,
        ended: false,
    };
    conn.prepare_cached(
        "INSERT INTO sessions (id, secret_hash, name, created_at, last_seen_at, authenticated_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &session.id,
        &token::secret_hash(&secret)[..],
        session.name.as_str(),
        millis(new.at),
        millis(new.at),
        millis(new.at),
    ])?;
    let body = json!({"session_id": session.id, "address": new.address});
    chain::append(
        conn,
        head,
        new.at,
        people_kind::SIGNED_IN,
        user.name.as_str(),
        "",
        body.to_string(),
    )?;
    Ok(StartedSession { secret, session })
}

fn session(conn: &Conn, id: &str) -> Result<Session, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?");
    conn.prepare_cached(&sql)?
        .query_row([id], |row| Ok(session_from_row(row)))
        .optional()?
        .ok_or_else(|| StoreError::SessionNotFound(id.to_owned()))?
}

/// Marks a live session as seen at `now` (and, `reauthenticated`, as having had its
/// password typed again). An ended session stays ended: [`StoreError::SessionEnded`].
pub(crate) fn touch_session(
    conn: &Conn,
    id: &str,
    now: DateTime<Utc>,
    reauthenticated: bool,
) -> Result<Session, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET last_seen_at = max(last_seen_at, ?1), \
             authenticated_at = CASE WHEN ?2 THEN max(authenticated_at, ?1) ELSE authenticated_at END \
             WHERE id = ?3 AND ended_at IS NULL",
        )?
        .execute(params![millis(now), reauthenticated, id])?;
    if changed == 0 {
        session(conn, id)?;
        return Err(StoreError::SessionEnded(id.to_owned()));
    }
    session(conn, id)
}

pub(crate) fn end_session(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Session, StoreError> {
    let found = session(conn, id)?;
    if found.ended {
        return Ok(found);
    }
    conn.prepare_cached("UPDATE sessions SET ended_at = ? WHERE id = ?")?
        .execute(params![millis(now), id])?;
    let body = json!({"session_id": id});
    chain::append(
        conn,
        head,
        now,
        people_kind::SIGNED_OUT,
        found.name.as_str(),
        "",
        body.to_string(),
    )?;
    session(conn, id)
}
