//! Tiers (how much human judgment an action needs) and statuses (where an action is in its
//! life). See SPEC section 1.

pub use crate::vocabulary::UnknownName;

crate::vocabulary! {
    /// How an action is handled. Ordered from least to most strict, so that `max` is "the
    /// stricter of": escalation and fail-closed evaluation only ever move up this order.
    #[derive(PartialOrd, Ord)]
    pub enum Tier {
        /// Read-only: allowed at once, audited.
        Auto = "auto",
        /// Low-risk write: allowed at once, audited, a sample reviewed after the fact.
        Logged = "logged",
        /// High-risk write: waits for approval.
        Approve = "approve",
        /// Irreversible: approval from two different people, each re-typing the action name.
        Confirm = "confirm",
        /// Never allowed.
        Deny = "deny",
    }
}

impl Tier {
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

crate::vocabulary! {
    /// Where an action is in its life.
    pub enum Status {
        Allowed = "allowed",
        Denied = "denied",
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
        Expired = "expired",
        Cancelled = "cancelled",
    }
}

impl Status {
    /// May the agent execute the action now?
    pub fn may_run(self) -> bool {
        matches!(self, Status::Allowed | Status::Approved)
    }

    /// Is this an end state (nothing more will be decided)?
    pub fn is_final(self) -> bool {
        self != Status::Pending
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
        for &tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
        }
        for &status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("tire".parse::<Tier>().is_err());
    }
}
