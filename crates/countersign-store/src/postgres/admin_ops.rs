//! Tokens, people and sessions on PostgreSQL, and caller-appended audit entries: the same
//! operations as SQLite's `admin_ops` and `people_ops`, each in its own transaction with
//! its audit entry. Who may take a name (`countersign_core::identity::admit`) is decided
//! under one transaction-scoped advisory lock, so two instances creating tokens or logins
//! at once decide one after the other, each on what the other committed.

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::identity::{self, Claim, Kind, Known};
use countersign_core::name::Name;
use serde_json::json;

use super::chain;
use super::ops::transaction;
use super::pool::Conn;
use super::rows::{TOKEN_COLUMNS, token_from_row};
use crate::audit_log::{NewAuditEntry, kind};
use crate::entries::{Draft, with_token};
use crate::error::StoreError;
use crate::ids;
use crate::people::{NewSession, NewUser, Session, SignedIn, StartedSession, User, people_kind};
use crate::record::Actor;
use crate::sqlite::rows::{self, from_millis, millis, to_json};
use crate::token::{self, CreatedToken, NewToken, Role, Token};

/// The advisory lock under which identities are admitted.
const IDENTITY_LOCK: i64 = 0x0c05_1960_0002;

/// Ended or long-idle sessions are deleted after this, as on SQLite.
const SESSION_RETENTION: TimeDelta = TimeDelta::days(30);

/// Inserts one entry not about an action, in the caller's transaction; returns its id.
async fn log(
    conn: &mut Conn,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    body: String,
) -> Result<(), StoreError> {
    chain::insert(conn, millis(at), "", &[Draft { kind, actor, body }]).await
}

/// Inserts a caller's entry and commits it; returns its id in the log table.
pub(crate) async fn append_audit(conn: &mut Conn, entry: NewAuditEntry) -> Result<i64, StoreError> {
    let row = conn
        .query_one(
            "INSERT INTO audit (at, kind, actor, action_id, body) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id",
            &[
                &millis(entry.at),
                &entry.kind,
                &entry.actor,
                &entry.action_id.as_deref().unwrap_or(""),
                &entry.body.to_string(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// A stored token as the identity rules see it: name, role, owner, live.
type Related = (String, Role, Option<String>, bool);

/// Every token or login whose name or owner is `name` or `owner` in any case (see
/// SQLite's `related_tokens`).
async fn related(
    conn: &mut Conn,
    name: &str,
    owner: Option<&str>,
) -> Result<Vec<Related>, StoreError> {
    let name = name.to_ascii_lowercase();
    let owner = owner.map_or_else(|| name.clone(), str::to_ascii_lowercase);
    let rows = conn
        .query(
            "SELECT name, role, owner, revoked_at IS NULL FROM tokens \
             WHERE lower(name) IN ($1, $2) OR lower(owner) IN ($1, $2) \
             UNION ALL SELECT name, 'reviewer', NULL, disabled_at IS NULL FROM users \
             WHERE name IN ($1, $2)",
            &[&name, &owner],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let role = row
                .get::<_, String>(1)
                .parse::<Role>()
                .map_err(|e| StoreError::Corrupt(format!("token role: {e}")))?;
            Ok((row.get(0), role, row.get(2), row.get(3)))
        })
        .collect()
}

async fn admit(conn: &mut Conn, claim: Claim<'_>) -> Result<Option<Name>, StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&IDENTITY_LOCK])
        .await?;
    let related = related(conn, claim.name, claim.owner).await?;
    let known: Vec<Known<'_>> = related
        .iter()
        .map(|(name, role, owner, live)| Known {
            name,
            kind: role.identity_kind(),
            owner: owner.as_deref(),
            live: *live,
        })
        .collect();
    identity::admit(&claim, &known)?
        .map(|owner| {
            Name::parse(owner).map_err(|e| StoreError::Corrupt(format!("token owner: {e}")))
        })
        .transpose()
}

pub(crate) async fn create_token(
    conn: &mut Conn,
    new: NewToken,
) -> Result<CreatedToken, StoreError> {
    transaction!(conn, async {
        let owner = admit(
            conn,
            Claim {
                name: new.name.as_str(),
                kind: new.role.identity_kind(),
                owner: new.owner.as_ref().map(Name::as_str),
            },
        )
        .await?;
        let secret = token::new_secret();
        let token = Token {
            id: ids::new_id(new.at),
            name: new.name.clone(),
            role: new.role,
            groups: new.groups.clone(),
            owner,
            created_at: new.at,
            revoked: false,
        };
        conn.execute(
            "INSERT INTO tokens (id, name, role, groups, owner, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &token.id,
                &token.name.as_str(),
                &token.role.as_str(),
                &to_json(&rows::names(&token.groups)),
                &token.owner.as_ref().map(Name::as_str),
                &&token::secret_hash(&secret)[..],
                &millis(token.created_at),
            ],
        )
        .await?;
        let body = json!({
            "token_id": token.id,
            "name": token.name.as_str(),
            "role": token.role.as_str(),
            "groups": rows::names(&token.groups),
            "owner": token.owner.as_ref().map(Name::as_str),
        });
        log(
            conn,
            new.at,
            kind::TOKEN_CREATED,
            new.created_by.name.as_str(),
            with_token(body, new.created_by.token_id.as_deref()),
        )
        .await?;
        Ok(CreatedToken { secret, token })
    })
}

pub(crate) async fn revoke_token(
    conn: &mut Conn,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Token, StoreError> {
    transaction!(conn, async {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1 FOR UPDATE");
        let token = conn
            .query_opt(&sql, &[&id])
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::TokenNotFound(id.to_owned()))?;
        if token.revoked {
            return Ok(token);
        }
        conn.execute(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2",
            &[&millis(now), &id],
        )
        .await?;
        let body = json!({"token_id": token.id, "name": token.name.as_str()});
        log(
            conn,
            now,
            kind::TOKEN_REVOKED,
            actor.name.as_str(),
            with_token(body, actor.token_id.as_deref()),
        )
        .await?;
        Ok(Token {
            revoked: true,
            ..token
        })
    })
}

const USER_COLUMNS: &str =
    "name, groups, admin, password, created_at, password_changed_at, disabled_at";
const SESSION_COLUMNS: &str = "id, name, created_at, last_seen_at, authenticated_at, ended_at";

fn user_from_row(row: &tokio_postgres::Row, at: usize) -> Result<User, StoreError> {
    let groups: Vec<String> = serde_json::from_str(&row.get::<_, String>(at + 1))
        .map_err(|e| StoreError::Corrupt(format!("user groups: {e}")))?;
    Ok(User {
        name: rows::name(&row.get::<_, String>(at), "user name")?,
        groups: groups
            .iter()
            .map(|g| rows::name(g, "group"))
            .collect::<Result<_, _>>()?,
        admin: row.get(at + 2),
        password_hash: row.get(at + 3),
        created_at: from_millis(row.get(at + 4))?,
        password_changed_at: from_millis(row.get(at + 5))?,
        disabled: row.get::<_, Option<i64>>(at + 6).is_some(),
    })
}

fn session_from_row(row: &tokio_postgres::Row) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.get(0),
        name: rows::name(&row.get::<_, String>(1), "session name")?,
        created_at: from_millis(row.get(2))?,
        last_seen_at: from_millis(row.get(3))?,
        authenticated_at: from_millis(row.get(4))?,
        ended: row.get::<_, Option<i64>>(5).is_some(),
    })
}

pub(crate) async fn user(conn: &mut Conn, name: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
    conn.query_opt(&sql, &[&name.to_ascii_lowercase()])
        .await?
        .map(|row| user_from_row(&row, 0))
        .transpose()
}

pub(crate) async fn users(conn: &mut Conn) -> Result<Vec<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
    conn.query(&sql, &[])
        .await?
        .iter()
        .map(|row| user_from_row(row, 0))
        .collect()
}

pub(crate) async fn signed_in(
    conn: &mut Conn,
    secret: &str,
) -> Result<Option<SignedIn>, StoreError> {
    let computed = token::secret_hash(secret);
    let sql = format!(
        "SELECT s.id, s.name, s.created_at, s.last_seen_at, s.authenticated_at, s.ended_at, \
         s.secret_hash, u.{} FROM sessions s JOIN users u ON u.name = s.name \
         WHERE s.secret_hash = $1",
        USER_COLUMNS.replace(", ", ", u.")
    );
    let Some(row) = conn.query_opt(&sql, &[&&computed[..]]).await? else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.get(6);
    if !token::hashes_match(&stored, &computed) {
        return Ok(None);
    }
    Ok(Some(SignedIn {
        session: session_from_row(&row)?,
        user: user_from_row(&row, 7)?,
    }))
}

async fn existing_user(conn: &mut Conn, name: &Name) -> Result<User, StoreError> {
    user(conn, name.as_str())
        .await?
        .ok_or_else(|| StoreError::UserNotFound(name.to_string()))
}

pub(crate) async fn create_user(conn: &mut Conn, new: NewUser) -> Result<User, StoreError> {
    transaction!(conn, async {
        conn.execute("SELECT pg_advisory_xact_lock($1)", &[&IDENTITY_LOCK])
            .await?;
        if user(conn, new.name.as_str()).await?.is_some() {
            return Err(StoreError::UserExists(new.name.to_string()));
        }
        admit(
            conn,
            Claim {
                name: new.name.as_str(),
                kind: Kind::Person,
                owner: None,
            },
        )
        .await?;
        conn.execute(
            "INSERT INTO users (name, groups, admin, password, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
            &[
                &new.name.as_str(),
                &to_json(&rows::names(&new.groups)),
                &new.admin,
                &new.password_hash,
                &millis(new.at),
            ],
        )
        .await?;
        let body = json!({
            "name": new.name.as_str(),
            "groups": rows::names(&new.groups),
            "admin": new.admin,
        });
        log(
            conn,
            new.at,
            people_kind::USER_CREATED,
            new.created_by.name.as_str(),
            with_token(body, new.created_by.token_id.as_deref()),
        )
        .await?;
        existing_user(conn, &new.name).await
    })
}

async fn end_sessions_of(
    conn: &mut Conn,
    name: &Name,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    conn.execute(
        "UPDATE sessions SET ended_at = $1 WHERE name = $2 AND ended_at IS NULL",
        &[&millis(now), &name.as_str()],
    )
    .await
}

pub(crate) async fn change_password(
    conn: &mut Conn,
    name: &Name,
    password_hash: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    transaction!(conn, async {
        existing_user(conn, name).await?;
        conn.execute(
            "UPDATE users SET password = $1, password_changed_at = $2 WHERE name = $3",
            &[&password_hash, &millis(now), &name.as_str()],
        )
        .await?;
        let ended = end_sessions_of(conn, name, now).await?;
        let body = json!({"name": name.as_str(), "sessions_ended": ended});
        log(
            conn,
            now,
            people_kind::PASSWORD_CHANGED,
            actor.name.as_str(),
            with_token(body, actor.token_id.as_deref()),
        )
        .await?;
        existing_user(conn, name).await
    })
}

pub(crate) async fn disable_user(
    conn: &mut Conn,
    name: &Name,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(User, Vec<String>), StoreError> {
    transaction!(conn, async {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1 FOR UPDATE");
        let before = conn
            .query_opt(&sql, &[&name.as_str()])
            .await?
            .map(|row| user_from_row(&row, 0))
            .transpose()?
            .ok_or_else(|| StoreError::UserNotFound(name.to_string()))?;
        if before.disabled {
            return Ok((before, Vec::new()));
        }
        conn.execute(
            "UPDATE users SET disabled_at = $1 WHERE name = $2",
            &[&millis(now), &name.as_str()],
        )
        .await?;
        let ended = end_sessions_of(conn, name, now).await?;
        let revoked: Vec<String> = conn
            .query(
                "UPDATE tokens SET revoked_at = $1 WHERE lower(name) = $2 AND revoked_at IS NULL \
                 RETURNING id",
                &[&millis(now), &name.as_str()],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut revoked = revoked;
        revoked.sort();
        let body = json!({
            "name": name.as_str(),
            "sessions_ended": ended,
            "tokens_revoked": revoked,
        });
        log(
            conn,
            now,
            people_kind::USER_DISABLED,
            actor.name.as_str(),
            with_token(body, actor.token_id.as_deref()),
        )
        .await?;
        Ok((existing_user(conn, name).await?, revoked))
    })
}

pub(crate) async fn start_session(
    conn: &mut Conn,
    new: NewSession,
) -> Result<StartedSession, StoreError> {
    transaction!(conn, async {
        let user = existing_user(conn, &new.name).await?;
        if user.disabled {
            return Err(StoreError::UserDisabled(user.name.to_string()));
        }
        conn.execute(
            "DELETE FROM sessions WHERE name = $1 AND (ended_at IS NOT NULL OR last_seen_at < $2)",
            &[&new.name.as_str(), &millis(new.at - SESSION_RETENTION)],
        )
        .await?;
        let secret = ids::base64url(&ids::random_bytes::<32>());
        let session = Session {
            id: ids::new_id(new.at),
            name: user.name.clone(),
            created_at: new.at,
            last_seen_at: new.at,
            authenticated_at: new.at,
            ended: false,
        };
        conn.execute(
            "INSERT INTO sessions (id, secret_hash, name, created_at, last_seen_at, authenticated_at) \
             VALUES ($1, $2, $3, $4, $4, $4)",
            &[
                &session.id,
                &&token::secret_hash(&secret)[..],
                &session.name.as_str(),
                &millis(new.at),
            ],
        )
        .await?;
        let body = json!({"session_id": session.id, "address": new.address});
        log(
            conn,
            new.at,
            people_kind::SIGNED_IN,
            user.name.as_str(),
            body.to_string(),
        )
        .await?;
        Ok(StartedSession { secret, session })
    })
}

async fn session(conn: &mut Conn, id: &str) -> Result<Session, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
    conn.query_opt(&sql, &[&id])
        .await?
        .map(|row| session_from_row(&row))
        .transpose()?
        .ok_or_else(|| StoreError::SessionNotFound(id.to_owned()))
}

pub(crate) async fn touch_session(
    conn: &mut Conn,
    id: &str,
    now: DateTime<Utc>,
    reauthenticated: bool,
) -> Result<Session, StoreError> {
    let changed = conn
        .execute(
            "UPDATE sessions SET last_seen_at = greatest(last_seen_at, $1), \
             authenticated_at = CASE WHEN $2 THEN greatest(authenticated_at, $1) \
             ELSE authenticated_at END WHERE id = $3 AND ended_at IS NULL",
            &[&millis(now), &reauthenticated, &id],
        )
        .await?;
    if changed == 0 {
        session(conn, id).await?;
        return Err(StoreError::SessionEnded(id.to_owned()));
    }
    session(conn, id).await
}

pub(crate) async fn end_session(
    conn: &mut Conn,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Session, StoreError> {
    transaction!(conn, async {
        let found = session(conn, id).await?;
        if found.ended {
            return Ok(found);
        }
        let ended = conn
            .execute(
                "UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
                &[&millis(now), &id],
            )
            .await?;
        if ended == 1 {
            let body = json!({"session_id": id});
            log(
                conn,
                now,
                people_kind::SIGNED_OUT,
                found.name.as_str(),
                body.to_string(),
            )
            .await?;
        }
        session(conn, id).await
    })
}
