//! Finds the first key that appears twice in one JSON object, at any depth.
//!
//! serde keeps the last of two equal keys in a map and refuses them only in a struct, so
//! `{"args": {"amount": 99999, "amount": 1}}` would be classified as `amount = 1` while a
//! log or a proxy that reads the first occurrence sees 99999. A body whose meaning depends on
//! the reader is refused before anything reads it. Keys compare after unescaping: `"a"` and
//! `"\u0061"` are the same key.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A key found twice, and the object it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub key: String,
    /// Where the object is, e.g. `args.items[2]`; empty for the top-level object.
    pub path: String,
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = shorten(&self.key);
        if self.path.is_empty() {
            write!(f, "the key {key:?} appears twice in the top-level object")
        } else {
            write!(
                f,
                "the key {key:?} appears twice in the object at {}",
                shorten(&self.path)
            )
        }
    }
}

/// A message names a key, not a megabyte of one.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// The first duplicate key in `json`, in document order. For text that is not JSON the
/// answer means nothing (`None` if the error comes first): the caller parses first and
/// reports syntax errors in its own words.
pub fn first_duplicate(json: &[u8]) -> Option<Duplicate> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let seed = Check {
        path: &mut Vec::new(),
        found: &mut found,
    };
    // An error either carries the duplicate out (in `found`) or is the parser's own.
    let _ = seed.deserialize(&mut deserializer);
    found
}

enum Segment {
    Key(String),
    Index(usize),
}

fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if out.is_empty() => out.push_str(key),
            Segment::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// Walks one JSON value, keeping the path to it.
struct Check<'a> {
    path: &'a mut Vec<Segment>,
    found: &'a mut Option<Duplicate>,
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                *self.found = Some(Duplicate {
                    key,
                    path: render(self.path),
                });
                return Err(de::Error::custom("duplicate key"));
            }
            self.path.push(Segment::Key(key.clone()));
            let result = map.next_value_seed(Check {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            result?;
            seen.insert(key);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            self.path.push(Segment::Index(index));
            let item = seq.next_element_seed(Check {
                path: self.path,
                found: self.found,
            });
            self.path.pop();
            if item?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    // Scalars: nothing to check.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_at_any_depth() {
        #[rustfmt::skip]
        let cases: [(&str, Option<(&str, &str)>); 12] = [
            (r#"{"a": 1, "b": 2}"#, None),
            (r#"{"amount": 99999, "amount": 1}"#, Some(("amount", ""))),
            (r#"{"args": {"amount": 99999, "amount": 1}}"#, Some(("amount", "args"))),
            (r#"{"a": [{"x": 1}, {"x": 1, "y": [1, {"z": 0, "z": 0}]}]}"#, Some(("z", "a[1].y[1]"))),
            // Equal after unescaping.
            (r#"{"a": 1, "\u0061": 2}"#, Some(("a", ""))),
            // The same key in sibling objects is fine.
            (r#"{"a": {"k": 1}, "b": {"k": 2}, "k": 3}"#, None),
            (r#"[{"k": 1}, {"k": 2}]"#, None),
            (r#"[{"k": 1, "k": 2}]"#, Some(("k", "[0]"))),
            // Not JSON: left to the body parser.
            (r#"{"a": 1,, "a": 2}"#, None),
            ("", None),
            // The first duplicate in document order.
            (r#"{"o": {"p": 1, "p": 2}, "o": 3}"#, Some(("p", "o"))),
            (r#"{"x": null, "y": true, "y": false}"#, Some(("y", ""))),
        ];
        for (json, expected) in cases {
            let got = first_duplicate(json.as_bytes());
            let got = got.as_ref().map(|d| (d.key.as_str(), d.path.as_str()));
            assert_eq!(got, expected, "{json}");
        }
    }

    #[test]
    fn messages_name_the_key_and_where() {
        let found = first_duplicate(br#"{"args": {"amount": 1, "amount": 2}}"#).unwrap();
        assert_eq!(
            found.to_string(),
            r#"the key "amount" appears twice in the object at args"#
        );
        let long = format!(r#"{{"{0}": 1, "{0}": 2}}"#, "k".repeat(1000));
        let message = first_duplicate(long.as_bytes()).unwrap().to_string();
        assert!(message.len() < 200, "{message}");
    }
}
