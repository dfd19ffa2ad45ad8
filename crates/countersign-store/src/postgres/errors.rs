//! PostgreSQL's errors in the store's terms: a lost or refused connection, a server shutting
//! down or out of resources is [`StoreError::Unavailable`] (answered `503`, retried by
//! clients); a lock or statement timeout, a serialization failure or a deadlock is
//! [`StoreError::Busy`]; anything else is a bug or a constraint, [`StoreError::Database`].
//! Opening adds what the operator has to fix: the URL, the password, the database's name.

use tokio_postgres::error::SqlState;

use crate::error::StoreError;

/// SQLSTATE classes that mean "the server cannot do it now": 08 connection exception,
/// 53 insufficient resources, 57 operator intervention (shutdown, cannot connect now),
/// 58 system error (I/O).
fn unavailable_class(code: &str) -> bool {
    ["08", "53", "57P", "58"]
        .iter()
        .any(|class| code.starts_with(class))
}

pub(crate) fn from_pg(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let message = db.message().to_owned();
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
        {
            return StoreError::Busy(message);
        }
        if unavailable_class(code.code()) || *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return StoreError::Unavailable(format!("PostgreSQL: {message}"));
        }
        return StoreError::Database(message);
    }
    let text = error.to_string();
    if text.contains("serializ") {
        // A value that does not convert to or from its column: a bug or a hand-edited row.
        return StoreError::Corrupt(text);
    }
    // A lost connection, an I/O error, a timeout: the database is not reachable now.
    StoreError::Unavailable(format!("cannot reach PostgreSQL: {text}"))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        from_pg(error)
    }
}

/// Whether an insert failed on a unique constraint (an idempotency key taken meanwhile).
pub(crate) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The URL with its password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Why a connection could not be opened, said as what to fix.
pub(crate) fn connect_error(url: &str, error: tokio_postgres::Error) -> StoreError {
    let path = redact(url);
    let reason = match error.as_db_error() {
        Some(db) if *db.code() == SqlState::INVALID_PASSWORD => {
            "the server refused the password (wrong user name or password)".to_owned()
        }
        Some(db) if *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "the server refused the login ({}): check the user name and pg_hba.conf",
            db.message()
        ),
        Some(db) if *db.code() == SqlState::INVALID_CATALOG_NAME => format!(
            "{}: create it first (createdb NAME, or CREATE DATABASE), or fix the name in the URL",
            db.message()
        ),
        Some(db) if unavailable_class(db.code().code()) => {
            return StoreError::Unavailable(format!(
                "PostgreSQL at {path} cannot take connections now: {}",
                db.message()
            ));
        }
        Some(db) => db.message().to_owned(),
        None => {
            // Refused, reset, timed out, closed during the handshake (a server shutting
            // down or starting): nothing the URL can fix, and passing.
            let source = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| error.to_string());
            let hint = if source.contains("refused") {
                ": is PostgreSQL running, and are the host and port right?"
            } else {
                ""
            };
            return StoreError::Unavailable(format!(
                "cannot reach PostgreSQL at {path} ({source}){hint}"
            ));
        }
    };
    StoreError::Open { path, reason }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://cs:secret@db.internal:5432/countersign"),
            "postgres://cs:***@db.internal:5432/countersign"
        );
        assert_eq!(
            redact("postgres://cs@localhost/countersign"),
            "postgres://cs@localhost/countersign"
        );
        assert_eq!(redact("postgresql://a:b@h"), "postgresql://a:***@h");
    }
}
