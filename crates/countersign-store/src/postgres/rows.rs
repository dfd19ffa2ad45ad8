//! PostgreSQL rows to records, with the SQLite backend's encodings (`sqlite::rows`): the same
//! JSON text in the same columns, read by the same decoders, so that both backends read and
//! verify the same data the same way.

use countersign_core::action::{ActionName, Hints};
use countersign_core::lifecycle::Gate;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::audit_log::AuditEntry;
use crate::error::StoreError;
use crate::record::ActionRecord;
use crate::sqlite::rows::{
    approvers_from, decisions_from, from_json, from_millis, moments_from, name, names_from, object,
    opt_time, outcome_from, review_from, timeout_from,
};
use crate::token::{Role, Token};

pub(crate) use crate::sqlite::rows::ACTION_COLUMNS;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A column's value, or the row is corrupt.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| corrupt(format!("column {}: {e}", row.columns()[i].name())))
}

/// Reads a row selected with [`ACTION_COLUMNS`].
pub(crate) fn action_from_row(row: &Row) -> Result<ActionRecord, StoreError> {
    let text = |i: usize| get::<String>(row, i);
    let opt_text = |i: usize| get::<Option<String>>(row, i);
    let original_args = opt_text(9)?;
    let timeout = opt_text(21)?;
    let review_state = opt_text(24)?;
    let review = opt_text(25)?;
    let outcome = opt_text(26)?;
    let gate = Gate {
        action: ActionName::parse(&text(1)?).map_err(|e| corrupt(format!("action: {e}")))?,
        agent: name(&text(2)?, "agent")?,
        owner: opt_text(3)?.map(|o| name(&o, "owner")).transpose()?,
        status: text(4)?.parse().map_err(corrupt)?,
        tier: text(5)?.parse().map_err(corrupt)?,
        args: object(&text(8)?, "args")?,
        original_args: original_args
            .map(|t| object(&t, "original_args"))
            .transpose()?,
        approvers: approvers_from(&text(15)?)?,
        escalated_to: names_from(from_json(&text(16)?, "escalated_to")?, "escalation group")?,
        escalated: get::<bool>(row, 17)?,
        approvals_required: u32::try_from(get::<i64>(row, 18)?)
            .map_err(|_| corrupt("approvals_required"))?,
        decisions: decisions_from(&text(19)?)?,
        deadline: opt_time(get::<Option<i64>>(row, 20)?)?,
        reminders: moments_from(&text(31)?)?,
        timeout: timeout.map(|t| timeout_from(&t)).transpose()?,
        escalated_at: opt_time(get::<Option<i64>>(row, 32)?)?,
        reminded: u32::try_from(get::<i64>(row, 34)?).map_err(|_| corrupt("reminded"))?,
        review: review_from(review_state.as_deref(), review.as_deref())?,
        outcome: outcome.map(|t| outcome_from(&t)).transpose()?,
        decided_at: opt_time(get::<Option<i64>>(row, 28)?)?,
    };
    Ok(ActionRecord {
        id: text(0)?,
        gate,
        rule: opt_text(6)?,
        reason: text(7)?,
        reasoning: opt_text(10)?,
        context: object(&text(11)?, "context")?,
        confidence: get::<Option<f64>>(row, 12)?,
        hints: from_json::<Hints>(&text(13)?, "hints")?,
        idempotency_key: opt_text(14)?,
        policy_hash: text(22)?,
        review_sample: get::<f64>(row, 23)?,
        created_at: from_millis(get::<i64>(row, 27)?)?,
        version: u64::try_from(get::<i64>(row, 29)?).map_err(|_| corrupt("version"))?,
        grant: opt_text(30)?,
    })
}

/// The bytes a row holds: its text and byte strings, and 8 for anything else.
pub(crate) fn row_bytes(row: &Row) -> usize {
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            if *ty == Type::TEXT || *ty == Type::VARCHAR {
                row.try_get::<_, Option<&str>>(i)
                    .ok()
                    .flatten()
                    .map_or(0, str::len)
            } else if *ty == Type::BYTEA {
                row.try_get::<_, Option<&[u8]>>(i)
                    .ok()
                    .flatten()
                    .map_or(0, <[u8]>::len)
            } else {
                8
            }
        })
        .sum()
}

pub(crate) use crate::sqlite::rows::TOKEN_COLUMNS;

pub(crate) fn token_from_row(row: &Row) -> Result<Token, StoreError> {
    Ok(Token {
        id: get(row, 0)?,
        name: name(&get::<String>(row, 1)?, "token name")?,
        role: get::<String>(row, 2)?.parse::<Role>().map_err(corrupt)?,
        groups: names_from(from_json(&get::<String>(row, 3)?, "groups")?, "group")?,
        owner: get::<Option<String>>(row, 4)?
            .map(|o| name(&o, "token owner"))
            .transpose()?,
        created_at: from_millis(get(row, 5)?)?,
        revoked: get::<Option<i64>>(row, 6)?.is_some(),
    })
}

/// The columns of a linked audit entry, in the order [`audit_from_row`] reads them.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, kind, actor, action_id, body, prev, hash";

pub(crate) fn audit_from_row(row: &Row) -> Result<AuditEntry, StoreError> {
    let prev: Vec<u8> = get(row, 6)?;
    let hash: Vec<u8> = get(row, 7)?;
    Ok(AuditEntry {
        seq: u64::try_from(get::<i64>(row, 0)?).map_err(|_| corrupt("seq"))?,
        at: from_millis(get(row, 1)?)?,
        kind: get(row, 2)?,
        actor: get(row, 3)?,
        action_id: get(row, 4)?,
        body: get(row, 5)?,
        prev: countersign_core::audit::hex(&prev),
        hash: countersign_core::audit::hex(&hash),
    })
}

/// An action-name glob as a `LIKE` pattern (with `\` as the escape): `*` any run, `?` one
/// character, and LIKE's own `%`, `_` and `\` taken literally.
pub(crate) fn like_pattern(glob: &str) -> String {
    let mut pattern = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => pattern.push('%'),
            '?' => pattern.push('_'),
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            other => pattern.push(other),
        }
    }
    pattern
}
