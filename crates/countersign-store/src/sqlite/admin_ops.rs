//! The write operations outside an action's lifecycle: tokens and caller-appended audit
//! entries. Run by the writer inside its batch transaction, like `ops`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde_json::json;

use super::chain::{self, Head};
use super::rows::{millis, to_json};
use crate::audit_log::{AuditEntry, NewAuditEntry, kind};
use crate::error::StoreError;
use crate::ids;
use crate::token::{self, CreatedToken, NewToken, Token};

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

pub(crate) fn create_token(
    conn: &Conn,
    head: &mut Head,
    new: NewToken,
) -> Result<CreatedToken, StoreError> {
    let secret = token::new_secret();
    let token = Token {
        id: ids::new_id(new.at),
        name: new.name,
        role: new.role,
        groups: new.groups,
        owner: new.owner,
        created_at: new.at,
        revoked: false,
    };
    conn.prepare_cached(
        "INSERT INTO tokens (id, name, role, groups, owner, secret_hash, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        &token.id,
        &token.name,
        token.role.as_str(),
        to_json(&token.groups),
        &token.owner,
        &token::secret_hash(&secret)[..],
        millis(token.created_at),
    ])?;
    let body = json!({
        "token_id": token.id,
        "name": token.name,
        "role": token.role.as_str(),
        "groups": token.groups,
        "owner": token.owner,
    });
    chain::append(
        conn,
        head,
        new.at,
        kind::TOKEN_CREATED,
        &new.created_by,
        "",
        body.to_string(),
    )?;
    Ok(CreatedToken { secret, token })
}

pub(crate) fn revoke_token(
    conn: &Conn,
    head: &mut Head,
    id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Token, StoreError> {
    let token =
        super::read::token(conn, id)?.ok_or_else(|| StoreError::TokenNotFound(id.to_owned()))?;
    if token.revoked {
        return Ok(token);
    }
    conn.prepare_cached("UPDATE tokens SET revoked_at = ? WHERE id = ?")?
        .execute(params![millis(now), id])?;
    let body = json!({"token_id": token.id, "name": token.name});
    chain::append(
        conn,
        head,
        now,
        kind::TOKEN_REVOKED,
        actor,
        "",
        body.to_string(),
    )?;
    Ok(Token {
        revoked: true,
        ..token
    })
}
