//! Glob patterns over action and agent names: `*` matches any run of characters (dots
//! included), `?` exactly one; everything else is literal.
//!
//! Deliberately smaller than shell globs (no `[...]` classes, no `**`): policy authors write
//! `*.get` or `support-*`, and a pattern language with fewer corners is one whose overlaps
//! the checker can reason about (see [`Glob::covers`]).

use std::fmt;

/// A parsed glob pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Glob {
    source: String,
    kind: GlobKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum GlobKind {
    /// `*`: matches every name.
    Any,
    /// No wildcard at all: plain string equality, and the key of the policy's lookup index.
    Literal,
    /// `prefix*`.
    Prefix(String),
    /// `*suffix`.
    Suffix(String),
    /// Anything else, matched by the general backtracking matcher.
    General(Vec<Token>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty pattern: use \"*\" to match everything")]
    Empty,
    #[error(
        "character {found:?} at position {position} is not allowed in a name pattern (allowed: {allowed}, and the wildcards * and ?)"
    )]
    BadCharacter {
        found: char,
        position: usize,
        allowed: &'static str,
    },
}

impl Glob {
    /// Parses `pattern`, accepting name characters for which `is_name_char` is true plus the
    /// wildcards. `allowed` describes those characters in error messages.
    pub fn parse(
        pattern: &str,
        is_name_char: fn(char) -> bool,
        allowed: &'static str,
    ) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        for (position, c) in pattern.chars().enumerate() {
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                c if is_name_char(c) => Token::Char(c),
                found => {
                    return Err(GlobError::BadCharacter {
                        found,
                        position: position + 1,
                        allowed,
                    });
                }
            };
            // `**` means the same as `*`; collapsing keeps matching linear-ish.
            if token == Token::AnyRun && tokens.last() == Some(&Token::AnyRun) {
                continue;
            }
            tokens.push(token);
        }
        let wildcards = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Char(_)))
            .count();
        let literal_run = |ts: &[Token]| -> Option<String> {
            ts.iter()
                .map(|t| match t {
                    Token::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        let kind = if wildcards == 0 {
            GlobKind::Literal
        } else if tokens == [Token::AnyRun] {
            GlobKind::Any
        } else if wildcards == 1 && tokens.last() == Some(&Token::AnyRun) {
            GlobKind::Prefix(literal_run(&tokens[..tokens.len() - 1]).unwrap_or_default())
        } else if wildcards == 1 && tokens.first() == Some(&Token::AnyRun) {
            GlobKind::Suffix(literal_run(&tokens[1..]).unwrap_or_default())
        } else {
            GlobKind::General(tokens)
        };
        Ok(Glob {
            source: pattern.to_owned(),
            kind,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The name this pattern matches, if it matches exactly one.
    pub fn literal(&self) -> Option<&str> {
        matches!(self.kind, GlobKind::Literal).then_some(self.source.as_str())
    }

    /// True for `*`.
    pub fn matches_everything(&self) -> bool {
        matches!(self.kind, GlobKind::Any)
    }

    /// Does `name` match?
    pub fn matches(&self, name: &str) -> bool {
        match &self.kind {
            GlobKind::Any => true,
            GlobKind::Literal => self.source == name,
            GlobKind::Prefix(prefix) => name.starts_with(prefix.as_str()),
            GlobKind::Suffix(suffix) => name.ends_with(suffix.as_str()),
            GlobKind::General(tokens) => {
                let chars: Vec<char> = name.chars().collect();
                match_tokens(tokens, &chars, |t, c| match t {
                    Token::Char(x) => *x == c,
                    Token::AnyOne => true,
                    Token::AnyRun => unreachable!("runs are handled by the matcher"),
                })
            }
        }
    }

    /// Does every name that `other` matches also match `self`? A sound check: `true` is
    /// always right; for these patterns it is also complete except in contrived cases
    /// such as `a*` vs `a**` (collapsed on parse anyway).
    pub fn covers(&self, other: &Glob) -> bool {
        if self.matches_everything() {
            return true;
        }
        let mine = self.tokens();
        let theirs = other.tokens();
        // `self`'s `*` may absorb any of `other`'s tokens; `self`'s `?` any single token but a
        // run; literals only themselves.
        match_tokens(&mine, &theirs, |mine, theirs| match (mine, theirs) {
            (Token::Char(a), Token::Char(b)) => *a == b,
            (Token::AnyOne, Token::Char(_) | Token::AnyOne) => true,
            _ => false,
        })
    }

    /// Is there a name that both `self` and `other` match? Exact: a breadth-first search of
    /// the two patterns read side by side, at most `(n + 1) · (m + 1)` states.
    pub fn overlaps(&self, other: &Glob) -> bool {
        if self.matches_everything() || other.matches_everything() {
            return true;
        }
        let (a, b) = (self.tokens(), other.tokens());
        let width = b.len() + 1;
        let mut seen = vec![false; (a.len() + 1) * width];
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, j)) = stack.pop() {
            if std::mem::replace(&mut seen[i * width + j], true) {
                continue;
            }
            if i == a.len() && j == b.len() {
                return true;
            }
            let (x, y) = (a.get(i), b.get(j));
            // A run may match nothing.
            if x == Some(&Token::AnyRun) {
                stack.push((i + 1, j));
            }
            if y == Some(&Token::AnyRun) {
                stack.push((i, j + 1));
            }
            // Or both read one character they can agree on; a run stays where it is.
            if let (Some(x), Some(y)) = (x, y) {
                let agree = !matches!((x, y), (Token::Char(c), Token::Char(d)) if c != d);
                if agree {
                    let next = |t: &Token, k: usize| if *t == Token::AnyRun { k } else { k + 1 };
                    stack.push((next(x, i), next(y, j)));
                }
            }
        }
        false
    }

    fn tokens(&self) -> Vec<Token> {
        self.source
            .chars()
            .map(|c| match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                c => Token::Char(c),
            })
            .collect()
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Classic iterative wildcard matching with one backtrack point: O(n·m) worst case, O(n)
/// typical. `step` says whether a non-run pattern token consumes one subject item.
fn match_tokens<S: Copy>(
    pattern: &[Token],
    subject: &[S],
    step: impl Fn(&Token, S) -> bool,
) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while s < subject.len() {
        if p < pattern.len() && pattern[p] == Token::AnyRun {
            backtrack = Some((p, s));
            p += 1;
        } else if p < pattern.len() && step(&pattern[p], subject[s]) {
            p += 1;
            s += 1;
        } else if let Some((bp, bs)) = backtrack {
            p = bp + 1;
            s = bs + 1;
            backtrack = Some((bp, bs + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|t| *t == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob::parse(p, |c| c.is_ascii_alphanumeric() || "._-:/".contains(c), "x").unwrap()
    }

    #[test]
    fn overlapping() {
        let cases = [
            ("refund.*", "refund.create", true),
            ("refund.*", "*.create", true),
            ("refund.*", "email.*", false),
            ("a?c", "ab*", true),
            ("a?c", "abd", false),
            ("*x", "y*", true),
            ("a*b", "a*c", false),
            ("a*b*", "*c", true),
            ("ab", "a", false),
            ("a", "a*", true),
            ("?", "ab", false),
            ("??*", "a", false),
            ("*", "anything", true),
        ];
        for (a, b, expected) in cases {
            assert_eq!(glob(a).overlaps(&glob(b)), expected, "{a} and {b}");
            assert_eq!(glob(b).overlaps(&glob(a)), expected, "{b} and {a}");
        }
    }

    #[test]
    fn matching() {
        let cases = [
            ("*", "anything.at.all", true),
            ("refund.create", "refund.create", true),
            ("refund.create", "refund.created", false),
            ("*.get", "order.get", true),
            ("*.get", "order.get.all", false),
            ("*.get", "a.b.get", true),
            ("support-*", "support-bot", true),
            ("support-*", "sales-bot", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("order.?et", "order.get", true),
            ("order.?et", "order.et", false),
            ("*.*", "nodot", false),
            ("*.*", "one.dot", true),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(glob(pattern).matches(name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn covering() {
        let cases = [
            ("*", "a.b", true),
            ("*.get", "order.get", true),
            ("*.get", "*.get", true),
            ("*.get", "*.list", false),
            ("order.*", "order.get", true),
            ("order.*", "*.get", false),
            ("o*", "order.*", true),
            ("order.get", "order.*", false),
            ("?rder.get", "order.get", true),
            ("order.get", "?rder.get", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(glob(a).covers(&glob(b)), expected, "{a} covers {b}");
        }
    }

    #[test]
    fn refuses_bad_patterns() {
        let is_name = |c: char| c.is_ascii_alphanumeric() || "._-:/".contains(c);
        assert_eq!(Glob::parse("", is_name, "x"), Err(GlobError::Empty));
        assert!(matches!(
            Glob::parse("refund create", is_name, "x"),
            Err(GlobError::BadCharacter {
                found: ' ',
                position: 7,
                ..
            })
        ));
    }
}
