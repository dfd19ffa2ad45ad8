//! Listing cursors: where the next page of a listing starts. One grammar for every listing,
//! so that any well-formed cursor is a position in any of them, and the API document can
//! state exactly which strings it takes ([`CURSOR_PATTERN`]).
//!
//! A cursor is `KEY.ID`: the last item's sort key in milliseconds and its id. The queue is
//! ordered by deadline, so its key is the deadline *as it was when the page was read*: an
//! escalation that moves that action's deadline later cannot make the next page skip the
//! actions in between. Other listings are ordered by id, which already orders by creation
//! time; their key is the creation time, and only the id decides.

use crate::error::StoreError;

/// The pattern of every cursor, as the API document states it.
pub const CURSOR_PATTERN: &str = r"^[0-9]{1,15}\.[0-9a-hjkmnp-tv-z]{26}$";

/// The longest key: 15 digits of milliseconds reach the year 33658, and fit an `i64`.
const KEY_DIGITS: usize = 15;
/// Ids are 26 characters of lowercase Crockford base32 (ULIDs).
const ID_LENGTH: usize = 26;

/// A parsed cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor<'a> {
    /// The last item's sort key, in milliseconds.
    pub key: i64,
    /// The last item's id.
    pub id: &'a str,
}

impl<'a> Cursor<'a> {
    pub fn parse(text: &'a str) -> Result<Cursor<'a>, StoreError> {
        let bad = || StoreError::BadCursor(text.to_owned());
        let (key, id) = text.split_once('.').ok_or_else(bad)?;
        let key_ok =
            (1..=KEY_DIGITS).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_digit());
        let id_ok = id.len() == ID_LENGTH && id.bytes().all(is_id_byte);
        if !key_ok || !id_ok {
            return Err(bad());
        }
        Ok(Cursor {
            key: key.parse().map_err(|_| bad())?,
            id,
        })
    }

    /// The cursor after an item with this key and id.
    pub fn after(key: i64, id: &str) -> String {
        format!("{}.{id}", key.max(0))
    }
}

/// Lowercase Crockford base32: digits and letters but `i`, `l`, `o`, `u`.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_digit() || (b.is_ascii_lowercase() && !matches!(b, b'i' | b'l' | b'o' | b'u'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01kav9ft00041061050r3gg28a";

    #[test]
    fn cursors_parse_as_the_pattern_says() {
        let good = format!("1764000000000.{ID}");
        assert_eq!(
            Cursor::parse(&good).unwrap(),
            Cursor {
                key: 1_764_000_000_000,
                id: ID
            }
        );
        assert_eq!(Cursor::parse(&Cursor::after(5, ID)).unwrap().key, 5);
        let upper = ID.to_ascii_uppercase();
        let refused = [
            String::new(),
            ID.to_owned(),
            format!(".{ID}"),
            format!("-1.{ID}"),
            format!("+1.{ID}"),
            format!("1234567890123456.{ID}"),
            format!("1.{upper}"),
            format!("1.{}", &ID[1..]),
            format!("1.{ID}0"),
            format!("1.{}i", &ID[1..]),
            format!("1.{ID}.2"),
            "forged".to_owned(),
        ];
        for cursor in refused {
            assert!(
                matches!(Cursor::parse(&cursor), Err(StoreError::BadCursor(_))),
                "{cursor:?}"
            );
        }
    }
}
