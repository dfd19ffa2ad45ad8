//! A request for a new token, parsed: a known role, names usable as identities, groups
//! without repeats, and the rules about names that need no other token
//! (`countersign_core::identity::check_claim`). The HTTP route and `countersign token
//! create --db` both come through here, so a token means the same whichever way it was
//! made. Whether the name is free is decided later, in the writer's transaction.

use chrono::{DateTime, Utc};
use countersign_core::Name;
use countersign_core::action::NameError;
use countersign_core::identity::{self, Claim, IdentityError};
use countersign_core::tier::UnknownName;

use crate::{Actor, NewToken, Role};

/// Why a token request was refused, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NewTokenError {
    #[error("role: {0}")]
    Role(UnknownName),
    #[error("name {name:?}: {error}")]
    Name { name: String, error: NameError },
    #[error("group {group:?}: {error}")]
    Group { group: String, error: NameError },
    #[error("owner {owner:?}: {error}")]
    Owner { owner: String, error: NameError },
    /// A reserved name, an owner for a person, or an agent named as its own owner.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl NewToken {
    /// Parses a token request as a caller gives it. Names, owners and groups are folded to
    /// lowercase here, once, so that new names are stored in one canonical spelling; a
    /// group named twice (in any case) is kept once.
    pub fn parse(
        role: &str,
        name: &str,
        groups: &[String],
        owner: Option<&str>,
        created_by: Actor,
        at: DateTime<Utc>,
    ) -> Result<NewToken, NewTokenError> {
        let role: Role = role.parse().map_err(NewTokenError::Role)?;
        let name = Name::parse(name).map_err(|error| NewTokenError::Name {
            name: name.to_owned(),
            error,
        })?;
        let mut parsed_groups: Vec<Name> = Vec::with_capacity(groups.len());
        for group in groups {
            let parsed = Name::parse(group).map_err(|error| NewTokenError::Group {
                group: group.clone(),
                error,
            })?;
            if !parsed_groups.contains(&parsed) {
                parsed_groups.push(parsed);
            }
        }
        // The owner is compared with reviewers' names, so it must be a name they could
        // have: an owner like "olivia " would never match and never keep olivia from
        // approving.
        let owner = owner
            .map(|owner| {
                Name::parse(owner).map_err(|error| NewTokenError::Owner {
                    owner: owner.to_owned(),
                    error,
                })
            })
            .transpose()?;
        identity::check_claim(&Claim {
            name: name.as_str(),
            kind: role.identity_kind(),
            owner: owner.as_ref().map(Name::as_str),
        })?;
        Ok(NewToken {
            name,
            role,
            groups: parsed_groups,
            owner,
            created_by,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        role: &str,
        name: &str,
        groups: &[&str],
        owner: Option<&str>,
    ) -> Result<NewToken, String> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        NewToken::parse(role, name, &groups, owner, Actor::named("cli"), Utc::now())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn names_are_folded_and_groups_kept_once() {
        let token = parse(
            "agent",
            "Support-Bot",
            &["Ops", "ops", "finance"],
            Some("Olivia"),
        )
        .unwrap();
        assert_eq!(token.role, Role::Agent);
        assert_eq!(token.name, "support-bot");
        assert_eq!(token.groups, ["ops", "finance"]);
        assert_eq!(token.owner.as_deref(), Some("olivia"));
    }

    #[test]
    fn each_field_is_refused_by_name() {
        /// (role, name, groups, owner, the error's text)
        type Case<'a> = (&'a str, &'a str, &'a [&'a str], Option<&'a str>, &'a str);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("root", "x", &[], None, r#"role: expected one of "agent", "reviewer", "admin", found "root""#),
            ("agent", "a b", &[], None, r#"name "a b": character ' ' at position 2 is not allowed (allowed: letters, digits, '.', '_', '-', ':', '/', '@')"#),
            ("agent", "", &[], None, r#"name "": a name must not be empty"#),
            ("reviewer", "rita", &[""], None, r#"group "": a name must not be empty"#),
            ("agent", "bot", &[], Some("olivia "), r#"owner "olivia ": character ' ' at position 7 is not allowed (allowed: letters, digits, '.', '_', '-', ':', '/', '@')"#),
            ("agent", "System", &[], None, r#"name "system" is reserved: the system records its own steps under "system" and "cli""#),
            ("reviewer", "rita", &[], Some("olivia"), "only agent tokens have an owner"),
            ("agent", "bot", &[], Some("BOT"), r#"the agent "bot" cannot own itself: its owner is the person who answers for it"#),
        ];
        for (role, name, groups, owner, expected) in cases {
            assert_eq!(
                parse(role, name, groups, *owner).unwrap_err(),
                *expected,
                "{role} {name:?}"
            );
        }
    }
}
