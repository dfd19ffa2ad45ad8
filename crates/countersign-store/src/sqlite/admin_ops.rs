//! The write operations outside an action's lifecycle: tokens and caller-appended audit
//! entries. Run by the writer inside its batch transaction, like `ops`.

use chrono::{DateTime, Utc};
use countersign_core::identity::{self, Claim, Known};
use countersign_core::name::Name;
use rusqlite::{Connection, params};
use serde_json::json;

use super::chain::{self, Head};
use super::rows::{self, millis, to_json};
use crate::audit_log::{AuditEntry, NewAuditEntry, kind};
use crate::entries::with_token;
use crate::error::StoreError;
use crate::ids;
use crate::record::Actor;
use crate::token::{self, CreatedToken, NewToken, Role, Token};

type Conn = Connection;

pub(crate) fn append_audit(
    conn: &Conn,
    head: &mut Head,
    entry: NewAuditEntry,
) -> Result<AuditEntry, StoreError> {
    chain::append(
        conn,
        head,
        entry.at,
        &entry.kind,
        &entry.actor,
        entry.action_id.as_deref().unwrap_or(""),
        entry.body.to_string(),
    )
}

/// A stored token as the identity rules see it: name, role, owner, live.
type Related = (String, Role, Option<String>, bool);

/// Every token, revoked or not, whose name or owner is `name` or `owner` in any case: all
/// that the identity rules need to see. SQLite's `lower()` folds ASCII only, as names do.
/// A scan of the tokens table, which holds one row per token ever created, inside the
/// writer's transaction: what it finds cannot change before the new token is inserted.
/// People with a web login count as persons (live unless disabled): a login and a token
/// of one name are one identity.
pub(super) fn related_tokens(
    conn: &Conn,
    name: &str,
    owner: Option<&str>,
) -> Result<Vec<Related>, StoreError> {
    let name = name.to_ascii_lowercase();
    let owner = owner.map_or_else(|| name.clone(), str::to_ascii_lowercase);
    let mut statement = conn.prepare_cached(
        "SELECT name, role, owner, revoked_at IS NULL FROM tokens \
         WHERE lower(name) IN (?1, ?2) OR lower(owner) IN (?1, ?2) \
         UNION ALL SELECT name, 'reviewer', NULL, disabled_at IS NULL FROM users \
         WHERE name IN (?1, ?2)",
    )?;
    let rows = statement
        .query_map(params![name, owner], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(name, role, owner, live)| {
            let role = role
                .parse::<Role>()
                .map_err(|e| StoreError::Corrupt(format!("token role: {e}")))?;
            Ok((name, role, owner, live))
        })
        .collect()
}

/// The owner `new` gets, if `countersign_core::identity::admit` lets it take its name.
fn admit(conn: &Conn, new: &NewToken) -> Result<Option<Name>, StoreError> {
    let related = related_tokens(
        conn,
        new.name.as_str(),
        new.owner.as_ref().map(Name::as_str),
    )?;
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
        kind: new.role.identity_kind(),
        owner: new.owner.as_ref().map(Name::as_str),
    };
    identity::admit(&claim, &known)?
        .map(|owner| {
            Name::parse(owner).map_err(|e| StoreError::Corrupt(format!("token owner: {e}")))
        })
        .transpose()
}

pub(crate) fn create_token(
    conn: &Conn,
    head: &mut Head,
    new: NewToken,
) -> Result<CreatedToken, StoreError> {
    let owner = admit(conn, &new)?;
    let secret = token::new_secret();
    let token = Token {
        id: ids::new_id(new.at),
        name: new.name,
        role: new.role,
        groups: new.groups,
        owner,
        created_at: new.at,
        revoked: false,
    };
    conn.prepare_cached(
        "INSERT INTO tokens (id, name, role, groups, owner, secret_hash, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &token.id,
        token.name.as_str(),
        token.role.as_str(),
        to_json(&rows::names(&token.groups)),
        token.owner.as_ref().map(Name::as_str),
        &token::secret_hash(&secret)[..],
        millis(token.created_at),
    ])?;
    let body = json!({
        "token_id": token.id,
        "name": token.name.as_str(),
        "role": token.role.as_str(),
        "groups": rows::names(&token.groups),
        "owner": token.owner.as_ref().map(Name::as_str),
    });
    chain::append(
        conn,
        head,
        new.at,
        kind::TOKEN_CREATED,
        new.created_by.name.as_str(),
        "",
        with_token(body, new.created_by.token_id.as_deref()),
    )?;
    Ok(CreatedToken { secret, token })
}

pub(crate) fn revoke_token(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Token, StoreError> {
    let token =
        super::read::token(conn, id)?.ok_or_else(|| StoreError::TokenNotFound(id.to_owned()))?;
    if token.revoked {
        return Ok(token);
    }
    conn.prepare_cached("UPDATE tokens SET revoked_at = ? WHERE id = ?")?
        .execute(params![millis(now), id])?;
    let body = json!({"token_id": token.id, "name": token.name.as_str()});
    chain::append(
        conn,
        head,
        now,
        kind::TOKEN_REVOKED,
        actor.name.as_str(),
        "",
        with_token(body, actor.token_id.as_deref()),
    )?;
    Ok(Token {
        revoked: true,
        ..token
    })
}
