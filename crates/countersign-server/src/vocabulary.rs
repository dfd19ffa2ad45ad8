//! The closed vocabularies on the wire: statuses, tiers, verdicts, roles, review states and
//! outcome statuses as the API sends and reads them. Each is an enum, so the OpenAPI
//! document lists its values and serde refuses any other; each mirrors a domain enum of
//! the core or the store, converted both ways by an exhaustive match, so a variant added
//! there does not compile here until the wire says how it is spelled.

use countersign_core::lifecycle::Verdict;
use countersign_core::{Status, Tier};
use countersign_store::{OutcomeStatus, ReviewVerdict, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A wire enum mirroring a domain enum variant for variant, with its name in the document.
macro_rules! mirror {
    ($(#[$meta:meta])* $view:ident as $schema:ident <=> $domain:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "lowercase")]
        #[schema(as = $schema)]
        pub enum $view {
            $($variant),+
        }

        impl From<$domain> for $view {
            fn from(value: $domain) -> $view {
                match value {
                    $($domain::$variant => $view::$variant),+
                }
            }
        }

        impl From<$view> for $domain {
            fn from(value: $view) -> $domain {
                match value {
                    $($view::$variant => $domain::$variant),+
                }
            }
        }
    };
}

mirror! {
    /// Where an action is in its life. An agent may run it only when `allowed` or
    /// `approved`.
    StatusView as Status <=> Status {
        Allowed, Denied, Pending, Approved, Rejected, Expired, Cancelled,
    }
}

mirror! {
    /// How much human judgment an action needs, from least to most.
    TierView as Tier <=> Tier { Auto, Logged, Approve, Confirm, Deny }
}

mirror! {
    /// A reviewer's verdict on a pending action; `modify` approves other arguments.
    VerdictView as Verdict <=> Verdict { Approve, Reject, Modify }
}

mirror! {
    /// What a token may do.
    RoleView as Role <=> Role { Agent, Reviewer, Admin }
}

mirror! {
    /// A post-hoc review's verdict: `flag` says the policy let through what it should not
    /// have.
    ReviewVerdictView as ReviewVerdict <=> ReviewVerdict { Ok, Flag }
}

mirror! {
    /// How running an action went, as its agent reports it.
    OutcomeStatusView as OutcomeStatus <=> OutcomeStatus { Succeeded, Failed }
}

/// Where a sampled action is in post-hoc review (an action not sampled has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ReviewState)]
pub enum ReviewStateView {
    /// Waiting for a reviewer.
    Open,
    /// Reviewed: nothing wrong.
    Ok,
    /// Reviewed and flagged.
    Flag,
}

impl From<ReviewVerdict> for ReviewStateView {
    fn from(verdict: ReviewVerdict) -> ReviewStateView {
        match ReviewVerdictView::from(verdict) {
            ReviewVerdictView::Ok => ReviewStateView::Ok,
            ReviewVerdictView::Flag => ReviewStateView::Flag,
        }
    }
}

/// Which part of the post-hoc review queue to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewQueue {
    /// Sampled actions waiting for a reviewer.
    #[default]
    Open,
    /// Sampled actions already reviewed.
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire spelling of every variant is the domain's own (`as_str`), so the audit log,
    /// the metrics and the API say the same word.
    #[test]
    fn wire_names_are_the_domain_names() {
        for &status in Status::ALL {
            assert_eq!(wire(StatusView::from(status)), status.as_str());
        }
        for &tier in Tier::ALL {
            assert_eq!(wire(TierView::from(tier)), tier.as_str());
        }
        for verdict in [Verdict::Approve, Verdict::Reject, Verdict::Modify] {
            assert_eq!(wire(VerdictView::from(verdict)), verdict.as_str());
        }
        for &role in Role::ALL {
            assert_eq!(wire(RoleView::from(role)), role.as_str());
        }
        for verdict in [ReviewVerdict::Ok, ReviewVerdict::Flag] {
            assert_eq!(wire(ReviewVerdictView::from(verdict)), verdict.as_str());
            assert_eq!(wire(ReviewStateView::from(verdict)), verdict.as_str());
        }
        for status in [OutcomeStatus::Succeeded, OutcomeStatus::Failed] {
            assert_eq!(wire(OutcomeStatusView::from(status)), status.as_str());
        }
    }

    /// The JSON string a wire enum is sent as.
    fn wire(value: impl Serialize) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }
}
