//! Tiers (how much human judgment an action needs) and statuses (where an action is in its
//! life). See SPEC section 1.

use std::fmt;
use std::str::FromStr;

/// How an action is handled. Ordered from least to most strict, so that `max` is "the
/// stricter of": escalation and fail-closed evaluation only ever move up this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Read-only: allowed at once, audited.
    Auto,
    /// Low-risk write: allowed at once, audited, a sample reviewed after the fact.
    Logged,
    /// High-risk write: waits for approval.
    Approve,
    /// Irreversible: approval from two different people, each re-typing the action name.
    Confirm,
    /// Never allowed.
    Deny,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Auto,
        Tier::Logged,
        Tier::Approve,
        Tier::Confirm,
        Tier::Deny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Auto => "auto",
            Tier::Logged => "logged",
            Tier::Approve => "approve",
            Tier::Confirm => "confirm",
            Tier::Deny => "deny",
        }
    }

    /// Does this tier wait for people?
    pub fn is_human_gated(self) -> bool {
        matches!(self, Tier::Approve | Tier::Confirm)
    }

    /// The number of approvals a tier needs when the rule does not say.
    pub fn default_approvals(self) -> u32 {
        match self {
            Tier::Confirm => 2,
            Tier::Approve => 1,
            _ => 0,
        }
    }

    /// The status an action of this tier starts in.
    pub fn initial_status(self) -> Status {
        match self {
            Tier::Auto | Tier::Logged => Status::Allowed,
            Tier::Approve | Tier::Confirm => Status::Pending,
            Tier::Deny => Status::Denied,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse error for names of tiers, statuses and other closed vocabularies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected one of {expected}, found {found:?}")]
pub struct UnknownName {
    pub expected: &'static str,
    pub found: String,
}

impl FromStr for Tier {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName {
                expected: "\"auto\", \"logged\", \"approve\", \"confirm\", \"deny\"",
                found: s.to_owned(),
            })
    }
}

/// Where an action is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Allowed,
    Denied,
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Allowed,
        Status::Denied,
        Status::Pending,
        Status::Approved,
        Status::Rejected,
        Status::Expired,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Allowed => "allowed",
            Status::Denied => "denied",
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
        }
    }

    /// May the agent execute the action now?
    pub fn may_run(self) -> bool {
        matches!(self, Status::Allowed | Status::Approved)
    }

    /// Is this an end state (nothing more will be decided)?
    pub fn is_final(self) -> bool {
        self != Status::Pending
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName {
                expected: "\"allowed\", \"denied\", \"pending\", \"approved\", \"rejected\", \"expired\", \"cancelled\"",
                found: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_order() {
        assert!(Tier::Auto < Tier::Logged);
        assert!(Tier::Logged < Tier::Approve);
        assert!(Tier::Approve < Tier::Confirm);
        assert!(Tier::Confirm < Tier::Deny);
        assert_eq!(Tier::Logged.max(Tier::Approve), Tier::Approve);
    }

    #[test]
    fn names_round_trip() {
        for tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
        }
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("tire".parse::<Tier>().is_err());
    }
}
