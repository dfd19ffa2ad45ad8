//! Names of people and agents: identities, which compare without regard to case.
//!
//! `Olivia` and `olivia` are one person (SPEC section 4). A [`Name`] is folded to ASCII
//! lowercase when it is parsed, so names created from now on are stored in one canonical
//! spelling and compare with plain equality. Records written by earlier versions may still
//! hold other spellings, so every comparison of *stored* names goes through [`same`], here,
//! and nowhere else: the lifecycle, the post-hoc review, the identity rules for new tokens
//! and the server's read check all call it.
//!
//! Names are ASCII (the characters of [`AGENT_NAME_CHARS`]), so folding is ASCII
//! lowercasing: no locale, no Unicode case tables, and SQLite's `lower()` folds the same way.

use std::fmt;

use crate::action::{ACTION_NAME_MAX, AGENT_NAME_CHARS, NameError, check_name, is_agent_name_char};

/// Names the system itself writes as actors in the audit log (`system` for SLA steps and
/// classifications, `cli` for commands run directly on the database). No token may take
/// them, in any case: an entry by `system` must never be a person's doing.
pub const RESERVED_NAMES: [&str; 2] = ["system", "cli"];

/// The name of a person or an agent, case-folded: `Olivia` parses as `olivia`. Equality,
/// ordering and hashing are on the folded form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Parses a name (the characters of [`AGENT_NAME_CHARS`], 1 to 200 of them) and folds it
    /// to lowercase. Reserved names parse: whether one may be *taken* is
    /// [`crate::identity`]'s rule, and `system` is a name the audit log does hold.
    pub fn parse(text: &str) -> Result<Name, NameError> {
        check_name(text, ACTION_NAME_MAX, is_agent_name_char, AGENT_NAME_CHARS)?;
        Ok(Name(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Is this one of the [`RESERVED_NAMES`]?
    pub fn is_reserved(&self) -> bool {
        RESERVED_NAMES.contains(&self.0.as_str())
    }

    /// Does `stored` (a name as some record holds it, perhaps in another case) name this
    /// identity?
    pub fn is(&self, stored: &str) -> bool {
        same(&self.0, stored)
    }
}

/// For names the program spells itself, as literals (`"system"`, test fixtures): folded
/// like any other.
///
/// # Panics
///
/// When the literal is not a valid name. Input from outside goes through [`Name::parse`].
impl From<&'static str> for Name {
    fn from(literal: &'static str) -> Name {
        Name::parse(literal).unwrap_or_else(|e| panic!("invalid name literal {literal:?}: {e}"))
    }
}

/// A name reads as its (folded) text.
impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A name equals the text of its folded spelling (`Name::parse("Rita") == "rita"`), for
/// tests and literals; input from outside is parsed, never compared as text.
impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Do two stored names name the same identity? The one comparison of names as records hold
/// them: without regard to (ASCII) case.
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(input, parsed)`: the canonical name, or the error's text.
    const CASES: &[(&str, Result<&str, &str>)] = &[
        ("olivia", Ok("olivia")),
        ("Olivia", Ok("olivia")),
        ("SUPPORT-Bot", Ok("support-bot")),
        ("ops@Example.COM", Ok("ops@example.com")),
        ("team/bot:2.v_1", Ok("team/bot:2.v_1")),
        ("", Err("a name must not be empty")),
        ("olivia ", Err("character ' ' at position 7")),
        ("Émile", Err("character 'É' at position 1")),
        ("ſystem", Err("character 'ſ' at position 1")),
    ];

    #[test]
    fn names_parse_to_their_folded_form() {
        for (input, expected) in CASES {
            let parsed = Name::parse(input);
            match (expected, &parsed) {
                (Ok(folded), Ok(name)) => assert_eq!(name.as_str(), *folded, "{input:?}"),
                (Err(message), Err(error)) => {
                    assert!(error.to_string().contains(message), "{input:?}: {error}")
                }
                _ => panic!("{input:?}: expected {expected:?}, found {parsed:?}"),
            }
        }
        assert!(Name::parse(&"a".repeat(200)).is_ok());
        assert!(Name::parse(&"a".repeat(201)).is_err());
    }

    #[test]
    fn equality_is_on_the_folded_form() {
        assert_eq!(Name::parse("Rita").unwrap(), Name::parse("rita").unwrap());
        assert_ne!(Name::parse("rita").unwrap(), Name::parse("rita2").unwrap());
        assert!(Name::parse("rita").unwrap().is("RiTa"));
        assert!(!Name::parse("rita").unwrap().is("rita "));
    }

    /// `(a, b, same)`.
    const SAME: &[(&str, &str, bool)] = &[
        ("olivia", "olivia", true),
        ("Olivia", "olivia", true),
        ("OLIVIA", "oLiViA", true),
        ("olivia", "olivia2", false),
        ("olivia", "", false),
        // Only ASCII folds: names hold nothing else, and a Unicode look-alike is another name.
        ("kelvin", "\u{212a}elvin", false),
    ];

    #[test]
    fn stored_names_compare_without_regard_to_case() {
        for (a, b, expected) in SAME {
            assert_eq!(same(a, b), *expected, "{a:?} vs {b:?}");
            assert_eq!(same(b, a), *expected, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn reserved_names_in_any_case() {
        for reserved in ["system", "System", "CLI", "cli"] {
            assert!(Name::parse(reserved).unwrap().is_reserved(), "{reserved}");
        }
        for free in ["systems", "cli2", "client", "olivia"] {
            assert!(!Name::parse(free).unwrap().is_reserved(), "{free}");
        }
    }
}
