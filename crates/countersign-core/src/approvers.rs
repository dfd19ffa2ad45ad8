//! Who may decide on an action: anyone, members of some groups, or (when the rules that might
//! apply name groups that no one group satisfies) only admins.
//!
//! Settings from several rules are combined when a condition could not be evaluated (every
//! rule that might have matched is a candidate) and when a reviewer's modified arguments fall
//! under another rule. The combination is the *intersection* of who each rule admits: a
//! group may decide only if every candidate rule lets it. A rule that admits any reviewer
//! restricts nothing; two rules whose group lists share no group leave no group that
//! satisfies both, and then only admins decide, rather than anyone. Group names compare
//! without regard to case, like every name.

use std::fmt;

use crate::name::Name;

/// Who may decide on an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approvers {
    /// Any reviewer.
    Anyone,
    /// Members of any of these groups (never empty).
    Groups(Vec<Name>),
    /// No group satisfies every rule that might apply: only people with the admin role.
    AdminsOnly,
}

impl Approvers {
    /// The approvers a rule's `approvers` list names: empty means any reviewer.
    pub fn from_groups(groups: Vec<Name>) -> Approvers {
        if groups.is_empty() {
            Approvers::Anyone
        } else {
            Approvers::Groups(groups)
        }
    }

    /// The groups named, if any (none for [`Approvers::Anyone`] and
    /// [`Approvers::AdminsOnly`]).
    pub fn groups(&self) -> &[Name] {
        match self {
            Approvers::Groups(groups) => groups,
            Approvers::Anyone | Approvers::AdminsOnly => &[],
        }
    }

    /// Whether only admins may decide.
    pub fn admins_only(&self) -> bool {
        matches!(self, Approvers::AdminsOnly)
    }

    /// Who satisfies both `self` and `other`: the groups both admit.
    pub fn strictest(&self, other: &Approvers) -> Approvers {
        match (self, other) {
            (Approvers::AdminsOnly, _) | (_, Approvers::AdminsOnly) => Approvers::AdminsOnly,
            (Approvers::Anyone, other) | (other, Approvers::Anyone) => other.clone(),
            (Approvers::Groups(a), Approvers::Groups(b)) => {
                let both: Vec<Name> = a.iter().filter(|g| b.contains(g)).cloned().collect();
                if both.is_empty() {
                    Approvers::AdminsOnly
                } else {
                    Approvers::Groups(both)
                }
            }
        }
    }

    /// Adds groups that may decide too (SLA escalation). Anyone stays anyone.
    pub fn widened(&self, extra: &[Name]) -> Approvers {
        match self {
            Approvers::Anyone => Approvers::Anyone,
            Approvers::Groups(groups) => {
                let mut groups = groups.clone();
                for g in extra {
                    if !groups.contains(g) {
                        groups.push(g.clone());
                    }
                }
                Approvers::Groups(groups)
            }
            Approvers::AdminsOnly if extra.is_empty() => Approvers::AdminsOnly,
            Approvers::AdminsOnly => Approvers::Groups(extra.to_vec()),
        }
    }

    /// Whether a person in `groups` (with the admin role when `admin`) may decide.
    pub fn admits(&self, groups: &[Name], admin: bool) -> bool {
        match self {
            Approvers::Anyone => true,
            // The admin role does not stand in for a group the policy names.
            Approvers::Groups(allowed) => allowed.iter().any(|g| groups.contains(g)),
            Approvers::AdminsOnly => admin,
        }
    }
}

impl fmt::Display for Approvers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Approvers::Anyone => f.write_str("any reviewer"),
            Approvers::Groups(groups) => {
                f.write_str("members of ")?;
                for (i, group) in groups.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(group.as_str())?;
                }
                Ok(())
            }
            Approvers::AdminsOnly => f.write_str("admins only"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(names: &[&str]) -> Approvers {
        Approvers::from_groups(names.iter().map(|s| n(s)).collect())
    }

    fn n(name: &str) -> Name {
        Name::parse(name).unwrap()
    }

    #[test]
    fn strictest_is_the_intersection() {
        let cases: &[(&[&str], &[&str], Approvers)] = &[
            (&[], &[], Approvers::Anyone),
            (&[], &["leads"], groups(&["leads"])),
            (&["leads"], &[], groups(&["leads"])),
            (
                &["leads", "finance"],
                &["finance", "ops"],
                groups(&["finance"]),
            ),
            (&["leads"], &["finance"], Approvers::AdminsOnly),
        ];
        for (a, b, expected) in cases {
            assert_eq!(
                &groups(a).strictest(&groups(b)),
                expected,
                "{a:?} and {b:?}"
            );
            assert_eq!(
                &groups(b).strictest(&groups(a)),
                expected,
                "{b:?} and {a:?}"
            );
        }
        assert_eq!(
            Approvers::AdminsOnly.strictest(&Approvers::Anyone),
            Approvers::AdminsOnly
        );
    }

    #[test]
    fn admits() {
        let leads = groups(&["leads"]);
        let cases: &[(&Approvers, &[&str], bool, bool)] = &[
            (&Approvers::Anyone, &[], false, true),
            (&leads, &["leads"], false, true),
            (&leads, &["sales"], false, false),
            (&leads, &["sales"], true, false),
            (&Approvers::AdminsOnly, &["leads"], false, false),
            (&Approvers::AdminsOnly, &[], true, true),
        ];
        for (approvers, in_groups, admin, expected) in cases {
            let in_groups: Vec<Name> = in_groups.iter().map(|s| n(s)).collect();
            assert_eq!(
                approvers.admits(&in_groups, *admin),
                *expected,
                "{approvers} admits {in_groups:?} (admin: {admin})"
            );
        }
    }

    #[test]
    fn escalation_widens() {
        assert_eq!(
            groups(&["leads"]).widened(&[n("finance")]),
            groups(&["leads", "finance"])
        );
        assert_eq!(
            Approvers::Anyone.widened(&[n("finance")]),
            Approvers::Anyone
        );
        assert_eq!(
            Approvers::AdminsOnly.widened(&[n("finance")]),
            groups(&["finance"])
        );
    }
}
