//! A proposed action: what an agent asks to do, with its reasons. Parsed once at the edge;
//! everything inside Countersign can rely on the invariants of these types.

use std::fmt;

use serde_json::{Map, Value};

/// The characters of an action name, per SPEC section 3.
pub const ACTION_NAME_CHARS: &str = "letters, digits, '.', '_', '-', ':', '/'";
/// The longest action name accepted.
pub const ACTION_NAME_MAX: usize = 200;

pub fn is_action_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
}

/// Agent names are token names: the action-name characters plus `@` (for e-mail-like names).
pub const AGENT_NAME_CHARS: &str = "letters, digits, '.', '_', '-', ':', '/', '@'";

pub fn is_agent_name_char(c: char) -> bool {
    is_action_name_char(c) || c == '@'
}

/// A valid action name such as `refund.create`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionName(String);

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("a name is at most {max} characters, this one has {found}")]
    TooLong { max: usize, found: usize },
    #[error("character {found:?} at position {position} is not allowed (allowed: {allowed})")]
    BadCharacter {
        found: char,
        position: usize,
        allowed: &'static str,
    },
}

pub(crate) fn check_name(
    text: &str,
    max: usize,
    is_char: fn(char) -> bool,
    allowed: &'static str,
) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    let length = text.chars().count();
    if length > max {
        return Err(NameError::TooLong { max, found: length });
    }
    if let Some((index, found)) = text.chars().enumerate().find(|(_, c)| !is_char(*c)) {
        return Err(NameError::BadCharacter {
            found,
            position: index + 1,
            allowed,
        });
    }
    Ok(())
}

impl ActionName {
    pub fn parse(text: &str) -> Result<ActionName, NameError> {
        check_name(
            text,
            ACTION_NAME_MAX,
            is_action_name_char,
            ACTION_NAME_CHARS,
        )?;
        Ok(ActionName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last dot-separated segment: `get` for `order.get`. The built-in default policy
    /// classifies by it.
    pub fn verb(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid agent (token) name such as `support-bot`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentName(String);

impl AgentName {
    /// Parses an agent name, folded to lowercase: names are identities and compare without
    /// regard to case (see [`crate::name`]), so policies see one spelling.
    pub fn parse(text: &str) -> Result<AgentName, NameError> {
        check_name(text, ACTION_NAME_MAX, is_agent_name_char, AGENT_NAME_CHARS)?;
        Ok(AgentName(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the caller says about the tool, as MCP tool annotations have it. Absent means
/// unknown, never `false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

impl Hints {
    /// The hints that were sent, by name.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, bool)> {
        [
            ("read_only", self.read_only),
            ("destructive", self.destructive),
            ("idempotent", self.idempotent),
            ("open_world", self.open_world),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

/// The longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// A client's idempotency key: 1 to 255 printable ASCII characters (as the `Idempotency-Key`
/// header allows), e.g. `run-77/step-4` or a UUID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("an idempotency key must not be empty")]
    Empty,
    #[error("an idempotency key is at most {IDEMPOTENCY_KEY_MAX} characters, this one has {0}")]
    TooLong(usize),
    #[error("an idempotency key may hold printable ASCII only; found {0:?}")]
    BadCharacter(char),
}

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<IdempotencyKey, IdempotencyKeyError> {
        if text.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if let Some(c) = text.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
            return Err(IdempotencyKeyError::BadCharacter(c));
        }
        if text.len() > IDEMPOTENCY_KEY_MAX {
            return Err(IdempotencyKeyError::TooLong(text.len()));
        }
        Ok(IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A confidence in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Confidence(f64);

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("confidence must be a number from 0 to 1, found {0}")]
pub struct ConfidenceError(pub f64);

impl Confidence {
    pub fn new(value: f64) -> Result<Confidence, ConfidenceError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Confidence(value))
        } else {
            Err(ConfidenceError(value))
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

/// An action as the agent proposed it: the input of a policy evaluation and what reviewers
/// see. `args` and `context` are JSON objects (checked by the edge that parses them).
#[derive(Clone, Debug, PartialEq)]
pub struct ProposedAction {
    pub action: ActionName,
    pub agent: AgentName,
    pub args: Map<String, Value>,
    /// Why the agent wants to do this, in its own words, for the reviewer.
    pub reasoning: Option<String>,
    pub context: Map<String, Value>,
    pub confidence: Option<Confidence>,
    pub hints: Hints,
    /// The client's key for retries: the same key means the same proposal.
    pub idempotency_key: Option<IdempotencyKey>,
}

impl ProposedAction {
    /// A proposal with empty args and context, no confidence and no hints.
    pub fn new(action: ActionName, agent: AgentName) -> ProposedAction {
        ProposedAction {
            action,
            agent,
            args: Map::new(),
            reasoning: None,
            context: Map::new(),
            confidence: None,
            hints: Hints::default(),
            idempotency_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names() {
        assert!(ActionName::parse("refund.create").is_ok());
        assert!(ActionName::parse("mcp:files/read_file").is_ok());
        assert_eq!(ActionName::parse(""), Err(NameError::Empty));
        assert!(matches!(
            ActionName::parse("refund create"),
            Err(NameError::BadCharacter {
                found: ' ',
                position: 7,
                ..
            })
        ));
        assert!(matches!(
            ActionName::parse(&"a".repeat(201)),
            Err(NameError::TooLong {
                max: 200,
                found: 201
            })
        ));
        assert!(ActionName::parse(&"a".repeat(200)).is_ok());
        assert_eq!(ActionName::parse("order.get").unwrap().verb(), "get");
        assert_eq!(ActionName::parse("ping").unwrap().verb(), "ping");
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("run-77/step-4").is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(IdempotencyKeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse("a\nb"),
            Err(IdempotencyKeyError::BadCharacter('\n'))
        );
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(256)),
            Err(IdempotencyKeyError::TooLong(256))
        );
    }

    #[test]
    fn confidence_bounds() {
        assert!(Confidence::new(0.0).is_ok());
        assert!(Confidence::new(1.0).is_ok());
        assert!(Confidence::new(1.01).is_err());
        assert!(Confidence::new(f64::NAN).is_err());
        assert!(Confidence::new(-0.1).is_err());
    }
}
