//! Query parameters parsed at the edge, each with the bounds the API document states and
//! refused (`400 invalid_query`) outside them: page sizes, waits and audit positions are
//! integers in a stated range, cursors match the store's one grammar, and action patterns
//! are globs of action-name characters. The schema of each type is written from the same
//! constants its parser checks, so document and server cannot disagree.

use std::fmt;

use countersign_core::action::{ACTION_NAME_CHARS, is_action_name_char};
use countersign_core::glob::Glob;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// The largest page any listing returns.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The longest `?wait=` a request may ask for, in seconds. The server ends a wait sooner
/// when its `max_wait_seconds` is lower; this bound is what the protocol allows at all.
pub const MAX_WAIT_SECONDS: u64 = 3600;

/// An integer from `MIN` to `MAX`, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

/// A page size: 1 to [`MAX_PAGE_SIZE`].
pub type PageSize = Bounded<1, MAX_PAGE_SIZE>;
/// A wait in seconds: 0 (none) to [`MAX_WAIT_SECONDS`].
pub type WaitSeconds = Bounded<0, MAX_WAIT_SECONDS>;
/// An audit sequence number: what SQLite's signed 64-bit integers hold.
pub type Seq = Bounded<0, { i64::MAX as u64 }>;

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<const MAX: u64> Bounded<1, MAX> {
    /// As a `u32` (page sizes are far below its range).
    pub fn as_u32(self) -> u32 {
        u32::try_from(self.0).unwrap_or(u32::MAX)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        if !(MIN..=MAX).contains(&value) {
            return Err(D::Error::custom(format!(
                "expected an integer from {MIN} to {MAX}, found {value}"
            )));
        }
        Ok(Bounded(value))
    }
}

impl<const MIN: u64, const MAX: u64> PartialSchema for Bounded<MIN, MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(MIN))
            .maximum(Some(MAX))
            .into()
    }
}

impl<const MIN: u64, const MAX: u64> ToSchema for Bounded<MIN, MAX> {}

/// A listing cursor, as the previous page's `next_cursor` gave it. The store parses it
/// (`countersign_store::CURSOR_PATTERN` is its grammar) and answers `400 invalid_cursor`
/// for one that does not match.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct CursorParam(pub String);

impl PartialSchema for CursorParam {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(countersign_store::CURSOR_PATTERN))
            .into()
    }
}

impl ToSchema for CursorParam {}

/// The pattern of action-name globs: name characters, `*` (any run) and `?` (any one).
pub const ACTION_GLOB_PATTERN: &str = r"^[A-Za-z0-9._:/*?-]+$";

/// A glob on action names, e.g. `refund.*`.
#[derive(Clone, Debug)]
pub struct ActionGlob(pub Glob);

impl<'de> Deserialize<'de> for ActionGlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Glob::parse(&text, is_action_name_char, ACTION_NAME_CHARS)
            .map(ActionGlob)
            .map_err(|e| D::Error::custom(format!("action pattern {text:?}: {e}")))
    }
}

impl PartialSchema for ActionGlob {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(ACTION_GLOB_PATTERN))
            .into()
    }
}

impl ToSchema for ActionGlob {}

impl fmt::Display for ActionGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        #[derive(Deserialize)]
        struct Q<T> {
            v: T,
        }
        serde_urlencoded_like(text).map(|q: Q<T>| q.v)
    }

    /// What axum's `Query` does: `serde_urlencoded` on the query string.
    fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        axum::extract::Query::<T>::try_from_uri(&format!("/?{text}").parse().unwrap())
            .map(|q| q.0)
            .map_err(|e| e.body_text())
    }

    #[test]
    fn bounds_are_inclusive_and_refused_outside() {
        // (query, parsed page size or the error's tail)
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("v=1", Ok(1)),
            ("v=1000", Ok(1000)),
            ("v=0", Err("expected an integer from 1 to 1000, found 0")),
            (
                "v=1001",
                Err("expected an integer from 1 to 1000, found 1001"),
            ),
            ("v=-1", Err("invalid digit found in string")),
            ("v=many", Err("invalid digit found in string")),
        ];
        for (text, expected) in cases {
            let got = query::<PageSize>(text).map(PageSize::get);
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, *expected, "{text}"),
                (Err(got), Err(expected)) => assert!(got.ends_with(expected), "{text}: {got}"),
                (got, expected) => panic!("{text}: {got:?}, expected {expected:?}"),
            }
        }
        assert_eq!(
            query::<Seq>("v=9223372036854775807").map(Seq::get),
            Ok(i64::MAX as u64)
        );
        assert!(query::<Seq>("v=9223372036854775808").is_err());
        assert!(query::<WaitSeconds>("v=3601").is_err());
    }

    #[test]
    fn action_globs_are_parsed() {
        assert_eq!(
            query::<ActionGlob>("v=refund.*").unwrap().to_string(),
            "refund.*"
        );
        for bad in ["v=", "v=a%20b", "v=a%25"] {
            assert!(query::<ActionGlob>(bad).is_err(), "{bad}");
        }
    }
}
