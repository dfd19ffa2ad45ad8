//! Who a new token may be: the rules that keep one person one person (SPEC section 4).
//!
//! A token's name is an identity. Three rules keep identities apart:
//!
//! - **One spelling.** Names compare without regard to case, so a name that differs from an
//!   existing one only by case would be a second spelling of the same identity; it is
//!   refused (new names are lowercase, but earlier versions stored names as typed).
//! - **One kind.** A name is a person's (reviewer and admin tokens, and the owners agents
//!   name) or an agent's, never both: a person never shares a name, and with it an audit
//!   trail and a read scope, with an agent.
//! - **One owner.** Every token of an agent shares the agent's owner. A new token for a
//!   known agent takes that owner when it names none, and is refused when it names another.
//!   Revoked tokens count (past actions were filed under the name), except that a revoked
//!   token without an owner no longer speaks for the agent.
//!
//! The store applies [`admit`] inside its write transaction, to the tokens it finds under
//! the new name and owner, so that two concurrent creations cannot both pass.

use crate::lifecycle::RefusalKind;
use crate::name::{RESERVED_NAMES, same};

/// What a name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Decides and reviews (reviewer and admin tokens), or answers for an agent (an owner).
    Person,
    /// Proposes actions (agent tokens).
    Agent,
}

/// An existing token, as the identity rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known<'a> {
    /// As stored: earlier versions kept names as typed, in any case.
    pub name: &'a str,
    pub kind: Kind,
    pub owner: Option<&'a str>,
    /// Not revoked.
    pub live: bool,
}

/// A token about to be created, as the identity rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub name: &'a str,
    pub kind: Kind,
    /// The owner the request names (agents only).
    pub owner: Option<&'a str>,
}

/// Why a token may not take the identity it asks for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "{field} {name:?} is reserved: the system records its own steps under \"system\" and \"cli\""
    )]
    Reserved { field: &'static str, name: String },
    #[error("only agent tokens have an owner")]
    OwnerOfPerson,
    #[error("the agent {0:?} cannot own itself: its owner is the person who answers for it")]
    OwnsItself(String),
    #[error(
        "{field} {claimed:?} differs from the existing name {existing:?} only by case; names compare without regard to case, so this would be a second spelling of one identity: choose another name"
    )]
    OtherCase {
        field: &'static str,
        claimed: String,
        existing: String,
    },
    #[error(
        "{field} {name:?} is an agent's name; a person cannot share a name with an agent: choose another name"
    )]
    NameIsAgent { field: &'static str, name: String },
    #[error(
        "{0:?} is a person's name (a reviewer, an admin or an agent's owner); an agent needs a name of its own"
    )]
    NameIsPerson(String),
    #[error(
        "the agent {agent:?} is owned by {existing:?}; every token of an agent shares its owner: leave the owner out to get {existing:?}, or choose another agent name"
    )]
    OwnerConflict { agent: String, existing: String },
    #[error(
        "the agent {agent:?} has a live token without an owner; revoke its ownerless tokens before giving the agent an owner, or leave the owner out"
    )]
    OwnerlessAgent { agent: String },
    #[error(
        "the agent {agent:?} already has tokens with different owners ({owners}), which an earlier version allowed; choose another agent name"
    )]
    SeveralOwners { agent: String, owners: String },
}

impl IdentityError {
    /// Invalid whatever else exists, or in conflict with an existing identity.
    pub fn kind(&self) -> RefusalKind {
        match self {
            IdentityError::Reserved { .. }
            | IdentityError::OwnerOfPerson
            | IdentityError::OwnsItself(_) => RefusalKind::Invalid,
            IdentityError::OtherCase { .. }
            | IdentityError::NameIsAgent { .. }
            | IdentityError::NameIsPerson(_)
            | IdentityError::OwnerConflict { .. }
            | IdentityError::OwnerlessAgent { .. }
            | IdentityError::SeveralOwners { .. } => RefusalKind::Conflict,
        }
    }
}

/// The rules that need no knowledge of other tokens: no reserved name (as name or owner),
/// an owner only for agents, and not the agent itself.
pub fn check_claim(claim: &Claim<'_>) -> Result<(), IdentityError> {
    let reserved = |name: &str| RESERVED_NAMES.iter().any(|r| same(r, name));
    if reserved(claim.name) {
        return Err(IdentityError::Reserved {
            field: "name",
            name: claim.name.to_owned(),
        });
    }
    let Some(owner) = claim.owner else {
        return Ok(());
    };
    if claim.kind != Kind::Agent {
        return Err(IdentityError::OwnerOfPerson);
    }
    if reserved(owner) {
        return Err(IdentityError::Reserved {
            field: "owner",
            name: owner.to_owned(),
        });
    }
    if same(owner, claim.name) {
        return Err(IdentityError::OwnsItself(claim.name.to_owned()));
    }
    Ok(())
}

/// Admits `claim` among the `known` tokens (at least every token whose name or owner is the
/// claim's name or owner, in any case). Returns the owner the new token gets: the one it
/// named, or, for a known agent named without one, the agent's owner.
pub fn admit<'a>(claim: &Claim<'a>, known: &[Known<'a>]) -> Result<Option<&'a str>, IdentityError> {
    check_claim(claim)?;
    let fields = [("name", Some(claim.name)), ("owner", claim.owner)];
    for (field, claimed) in fields {
        let Some(claimed) = claimed else { continue };
        let spellings = known.iter().flat_map(|k| [Some(k.name), k.owner]).flatten();
        if let Some(existing) = spellings
            .clone()
            .find(|s| same(s, claimed) && *s != claimed)
        {
            return Err(IdentityError::OtherCase {
                field,
                claimed: claimed.to_owned(),
                existing: existing.to_owned(),
            });
        }
    }
    let is_agent = |name: &str| {
        known
            .iter()
            .any(|k| k.kind == Kind::Agent && same(k.name, name))
    };
    let is_person = |name: &str| {
        known.iter().any(|k| {
            (k.kind == Kind::Person && same(k.name, name)) || k.owner.is_some_and(|o| same(o, name))
        })
    };
    match claim.kind {
        Kind::Person if is_agent(claim.name) => {
            return Err(IdentityError::NameIsAgent {
                field: "name",
                name: claim.name.to_owned(),
            });
        }
        Kind::Person => return Ok(None),
        Kind::Agent if is_person(claim.name) => {
            return Err(IdentityError::NameIsPerson(claim.name.to_owned()));
        }
        Kind::Agent => {}
    }
    if let Some(owner) = claim.owner
        && is_agent(owner)
    {
        return Err(IdentityError::NameIsAgent {
            field: "owner",
            name: owner.to_owned(),
        });
    }
    // The agent's owners so far: one value per distinct owner, `None` for a live token that
    // has none (a revoked ownerless token submits nothing any more).
    let mut owners: Vec<Option<&'a str>> = Vec::new();
    for token in known
        .iter()
        .filter(|k| k.kind == Kind::Agent && same(k.name, claim.name))
        .filter(|k| k.owner.is_some() || k.live)
    {
        let known_already = owners.iter().any(|o| match (o, token.owner) {
            (Some(a), Some(b)) => same(a, b),
            (a, b) => a.is_none() && b.is_none(),
        });
        if !known_already {
            owners.push(token.owner);
        }
    }
    let agent = || claim.name.to_owned();
    match (owners.as_slice(), claim.owner) {
        ([], claimed) => Ok(claimed),
        ([existing], None) => Ok(*existing),
        ([Some(existing)], Some(claimed)) if same(existing, claimed) => Ok(Some(existing)),
        ([Some(existing)], Some(_)) => Err(IdentityError::OwnerConflict {
            agent: agent(),
            existing: (*existing).to_owned(),
        }),
        ([None], Some(_)) => Err(IdentityError::OwnerlessAgent { agent: agent() }),
        (several, _) => Err(IdentityError::SeveralOwners {
            agent: agent(),
            owners: several
                .iter()
                .map(|o| o.map_or("no owner".to_owned(), |o| format!("{o:?}")))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Kind::{Agent, Person};

    /// The tokens every case starts from: `support-bot` owned by `olivia` (one live token,
    /// one revoked), `old-bot` ownerless and revoked, `lone-bot` ownerless and live, a
    /// reviewer `rita`, and `Sam` and `Legacy-Bot` stored by an earlier version as typed.
    const KNOWN: &[Known<'static>] = &[
        known("support-bot", Agent, Some("olivia"), true),
        known("support-bot", Agent, Some("olivia"), false),
        known("old-bot", Agent, None, false),
        known("lone-bot", Agent, None, true),
        known("rita", Person, None, true),
        known("Sam", Person, None, true),
        known("Legacy-Bot", Agent, Some("Olivia2"), true),
        known("mixed-bot", Agent, Some("olivia"), false),
        known("mixed-bot", Agent, Some("rita"), false),
    ];

    const fn known(
        name: &'static str,
        kind: Kind,
        owner: Option<&'static str>,
        live: bool,
    ) -> Known<'static> {
        Known {
            name,
            kind,
            owner,
            live,
        }
    }

    type Expected = Result<Option<&'static str>, &'static str>;

    /// `(name, kind, owner, expected)`: the owner the token gets, or the error's start.
    const CASES: &[(&str, Kind, Option<&str>, Expected)] = &[
        // New names.
        ("new-bot", Agent, Some("olivia"), Ok(Some("olivia"))),
        ("new-bot", Agent, None, Ok(None)),
        ("tom", Person, None, Ok(None)),
        // Another token for a known person or agent.
        ("rita", Person, None, Ok(None)),
        ("olivia", Person, None, Ok(None)),
        ("support-bot", Agent, Some("olivia"), Ok(Some("olivia"))),
        ("support-bot", Agent, None, Ok(Some("olivia"))),
        ("old-bot", Agent, Some("tom"), Ok(Some("tom"))),
        ("lone-bot", Agent, None, Ok(None)),
        // One owner per agent.
        (
            "support-bot",
            Agent,
            Some("tom"),
            Err("the agent \"support-bot\" is owned by \"olivia\""),
        ),
        (
            "lone-bot",
            Agent,
            Some("tom"),
            Err("the agent \"lone-bot\" has a live token without an owner"),
        ),
        (
            "mixed-bot",
            Agent,
            None,
            Err(
                "the agent \"mixed-bot\" already has tokens with different owners (\"olivia\", \"rita\")",
            ),
        ),
        // One spelling: stored names in another case.
        (
            "sam",
            Person,
            None,
            Err("name \"sam\" differs from the existing name \"Sam\" only by case"),
        ),
        (
            "legacy-bot",
            Agent,
            None,
            Err("name \"legacy-bot\" differs from the existing name \"Legacy-Bot\""),
        ),
        (
            "new-bot",
            Agent,
            Some("olivia2"),
            Err("owner \"olivia2\" differs from the existing name \"Olivia2\""),
        ),
        ("new-bot", Agent, Some("sam"), Err("owner \"sam\" differs")),
        // One kind.
        (
            "support-bot",
            Person,
            None,
            Err("name \"support-bot\" is an agent's name"),
        ),
        ("rita", Agent, None, Err("\"rita\" is a person's name")),
        (
            "olivia",
            Agent,
            Some("tom"),
            Err("\"olivia\" is a person's name"),
        ),
        (
            "new-bot",
            Agent,
            Some("support-bot"),
            Err("owner \"support-bot\" is an agent's name"),
        ),
        // Reserved names, and owners only for agents, never themselves.
        ("system", Person, None, Err("name \"system\" is reserved")),
        ("CLI", Agent, None, Err("name \"CLI\" is reserved")),
        (
            "new-bot",
            Agent,
            Some("System"),
            Err("owner \"System\" is reserved"),
        ),
        (
            "tom",
            Person,
            Some("olivia"),
            Err("only agent tokens have an owner"),
        ),
        (
            "new-bot",
            Agent,
            Some("New-Bot"),
            Err("the agent \"new-bot\" cannot own itself"),
        ),
    ];

    #[test]
    fn identity_rules() {
        for (name, kind, owner, expected) in CASES {
            let claim = Claim {
                name,
                kind: *kind,
                owner: *owner,
            };
            let found = admit(&claim, KNOWN);
            match (expected, &found) {
                (Ok(owner), Ok(found)) => assert_eq!(found, owner, "{claim:?}"),
                (Err(start), Err(error)) => assert!(
                    error.to_string().starts_with(start),
                    "{claim:?}: {error}\n expected it to start with: {start}"
                ),
                _ => panic!("{claim:?}: expected {expected:?}, found {found:?}"),
            }
        }
    }

    #[test]
    fn refusals_are_invalid_or_conflicts() {
        let claim = |name, kind, owner| Claim { name, kind, owner };
        let kind = |c: Claim<'static>| admit(&c, KNOWN).unwrap_err().kind();
        assert_eq!(kind(claim("cli", Person, None)), RefusalKind::Invalid);
        assert_eq!(kind(claim("x", Person, Some("y"))), RefusalKind::Invalid);
        assert_eq!(kind(claim("sam", Person, None)), RefusalKind::Conflict);
        assert_eq!(
            kind(claim("support-bot", Agent, Some("tom"))),
            RefusalKind::Conflict
        );
    }
}
