//! Grants: time-boxed, bounded autonomy a reviewer gives an agent instead of approving the
//! same request fifty times. A grant lets an agent run actions matching a pattern (and
//! optionally a condition) without asking, until a time and for at most a number of uses.
//!
//! A grant never widens what its giver could have done: it covers an action only when the
//! policy in force would put that action in the `approve` tier (never `confirm`, never
//! `deny`, never an action raised for low confidence or a failed condition — those are
//! reviewed) and only when the giver, with the groups they had when they gave it, is one of
//! the people who could have approved it (and not the agent's owner). Whether it is still
//! live — not revoked, not expired, uses left — is checked again where its use is counted,
//! inside the store's write transaction, so `N` uses are `N` uses under any concurrency.

use chrono::{DateTime, Utc};

use crate::action::ProposedAction;
use crate::approvers::Approvers;
use crate::glob::Glob;
use crate::lifecycle::answers_for;
use crate::name::Name;
use crate::policy::{Classification, Condition, Policy, ReviewSettings};
use crate::tier::Tier;

/// A grant as the store keeps it.
#[derive(Debug)]
pub struct Grant {
    pub id: String,
    /// The agent it lets act.
    pub agent: Name,
    /// The actions it covers.
    pub actions: Glob,
    /// A condition on the request, e.g. `args.amount <= 50`.
    pub when: Option<Condition>,
    pub expires_at: DateTime<Utc>,
    /// At most this many uses (`None`: until it expires).
    pub max_uses: Option<u32>,
    pub uses: u32,
    /// Who gave it, with the groups and role they had then.
    pub granted_by: Name,
    pub granted_by_groups: Vec<Name>,
    pub granted_by_admin: bool,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
}

/// Why a grant does not cover a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotCovered {
    Revoked,
    Expired,
    UsedUp,
    OtherAgent,
    OtherAction,
    /// The request's arguments do not satisfy the grant's condition (or it failed).
    Condition,
    /// The policy does not put the action in `approve`: `confirm` and `deny` are never
    /// granted, `auto`/`logged` need no grant.
    NotApproveTier,
    /// The action was raised for safety (a failed condition, low confidence): a person
    /// looks at it.
    Raised,
    /// The giver could not have approved it (groups, or they own the agent).
    GiverMayNotApprove,
    /// The policy asks for more than one approval: one person's grant cannot stand in for
    /// several people.
    SeveralApprovals,
}

impl Grant {
    /// Whether the grant is live at `now`: not revoked, not expired, uses left.
    pub fn live(&self, now: DateTime<Utc>) -> Result<(), NotCovered> {
        if self.revoked {
            return Err(NotCovered::Revoked);
        }
        if now >= self.expires_at {
            return Err(NotCovered::Expired);
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Err(NotCovered::UsedUp);
        }
        Ok(())
    }

    /// Whether the grant lets `request` (submitted by an agent owned by `owner`) run without
    /// asking, given the policy's `classification` and review `settings` for it.
    pub fn covers(
        &self,
        request: &ProposedAction,
        owner: Option<&Name>,
        classification: &Classification,
        settings: &ReviewSettings,
        now: DateTime<Utc>,
    ) -> Result<(), NotCovered> {
        self.live(now)?;
        if self.agent.as_str() != request.agent.as_str() {
            return Err(NotCovered::OtherAgent);
        }
        if !self.actions.matches(request.action.as_str()) {
            return Err(NotCovered::OtherAction);
        }
        if classification.tier != Tier::Approve {
            return Err(NotCovered::NotApproveTier);
        }
        if classification.failure.is_some() || classification.low_confidence.is_some() {
            return Err(NotCovered::Raised);
        }
        if settings.approvals_required > 1 {
            return Err(NotCovered::SeveralApprovals);
        }
        if !settings
            .approvers
            .admits(&self.granted_by_groups, self.granted_by_admin)
            || answers_for(&self.agent, owner, &self.granted_by)
        {
            return Err(NotCovered::GiverMayNotApprove);
        }
        if let Some(condition) = &self.when
            && condition.holds(request, now) != Ok(true)
        {
            return Err(NotCovered::Condition);
        }
        Ok(())
    }

    /// Uses left (`None`: unbounded until expiry).
    pub fn uses_left(&self) -> Option<u32> {
        self.max_uses.map(|max| max.saturating_sub(self.uses))
    }
}

/// What a grant may cover, found when it is given: the rules (or `defaults`) whose
/// `approve`-tier actions it lets run, and the overlapping rules it never covers, with why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub covers: Vec<String>,
    pub excluded: Vec<(String, String)>,
}

/// Why a grant may not be given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{giver} answers for agent {agent} (its owner, or the agent itself) and may not grant it anything"
    )]
    Owner { giver: Name, agent: Name },
    #[error(
        "{giver} may not approve what rule {rule:?} covers ({approvers} may), so may not grant it"
    )]
    NotAnApprover {
        giver: Name,
        rule: String,
        approvers: String,
    },
    #[error("nothing to grant: no action {pattern:?} matches is in the approve tier for agent {agent} ({})", describe(.excluded))]
    NothingToGrant {
        agent: Name,
        pattern: String,
        excluded: Vec<(String, String)>,
    },
}

fn describe(excluded: &[(String, String)]) -> String {
    if excluded.is_empty() {
        return "no rule matches it".to_owned();
    }
    excluded
        .iter()
        .map(|(rule, why)| format!("{rule}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// May `giver` (in `groups`, an admin or not) let `agent` (owned by `owner`) run actions
/// matching `actions` without asking, under `policy`? Every rule the pattern overlaps for
/// this agent (and the defaults, unless an unconditional rule takes every such action
/// first) is looked at: an `approve` rule must admit the giver; `confirm`, `deny`, rules
/// needing several approvals, `auto` and `logged` are left out of the grant's reach. The
/// check is repeated per action when the grant is used, under the policy then in force.
pub fn may_give(
    policy: &Policy,
    agent: &Name,
    owner: Option<&Name>,
    actions: &Glob,
    giver: &Name,
    groups: &[Name],
    admin: bool,
) -> Result<Scope, Refused> {
    if answers_for(agent, owner, giver) {
        return Err(Refused::Owner {
            giver: giver.clone(),
            agent: agent.clone(),
        });
    }
    let mut scope = Scope::default();
    let mut judge = |label: &str, tier: Tier, approvals: u32, approvers: Approvers| {
        let why = match tier {
            Tier::Approve if approvals > 1 => format!("needs {approvals} approvals"),
            Tier::Approve => {
                if !approvers.admits(groups, admin) {
                    return Err(Refused::NotAnApprover {
                        giver: giver.clone(),
                        rule: label.to_owned(),
                        approvers: approvers.to_string(),
                    });
                }
                scope.covers.push(label.to_owned());
                return Ok(());
            }
            Tier::Confirm | Tier::Deny => format!("{tier}: never granted"),
            Tier::Auto | Tier::Logged => format!("{tier}: runs without a grant"),
        };
        scope.excluded.push((label.to_owned(), why));
        Ok(())
    };
    let mut shadowed = false;
    for rule in &policy.rules {
        if !rule.matches_agent(agent) || !rule.actions.iter().any(|g| g.overlaps(actions)) {
            continue;
        }
        judge(
            &rule.name,
            rule.tier,
            rule.approvals.unwrap_or(1),
            Approvers::from_groups(rule.approvers.clone()),
        )?;
        if rule.when.is_none() && rule.actions.iter().any(|g| g.covers(actions)) {
            shadowed = true;
            break;
        }
    }
    if !shadowed {
        let defaults = &policy.defaults;
        judge(
            "defaults",
            defaults.tier,
            1,
            Approvers::from_groups(defaults.approvers.clone()),
        )?;
    }
    if scope.covers.is_empty() {
        return Err(Refused::NothingToGrant {
            agent: agent.clone(),
            pattern: actions.to_string(),
            excluded: scope.excluded,
        });
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ActionName, AgentName, Confidence};
    use crate::policy::Policy;
    use chrono::TimeDelta;
    use serde_json::json;

    const POLICY: &str = r#"
version = 1
[defaults]
tier = "approve"
min_confidence = 0.5
[[rules]]
name = "refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["leads"]
[[rules]]
name = "closures"
actions = ["account.close"]
tier = "confirm"
[[rules]]
name = "drops"
actions = ["db.drop"]
tier = "deny"
[[rules]]
name = "checked"
actions = ["email.send"]
when = "args.to.endsWith('@example.com')"
tier = "approve"
"#;

    fn n(name: &str) -> Name {
        Name::parse(name).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn grant(actions: &str, when: Option<&str>) -> Grant {
        Grant {
            id: "g1".into(),
            agent: n("bot"),
            actions: Glob::parse(
                actions,
                crate::action::is_action_name_char,
                crate::action::ACTION_NAME_CHARS,
            )
            .unwrap(),
            when: when.map(|w| Condition::compile(w).unwrap()),
            expires_at: now() + TimeDelta::hours(1),
            max_uses: Some(3),
            uses: 0,
            granted_by: n("rita"),
            granted_by_groups: vec![n("leads")],
            granted_by_admin: false,
            reason: None,
            created_at: now(),
            revoked: false,
        }
    }

    fn check(
        grant: &Grant,
        action: &str,
        agent: &str,
        args: serde_json::Value,
        confidence: Option<f64>,
    ) -> Result<(), NotCovered> {
        let policy = Policy::parse(POLICY).unwrap();
        let mut request = ProposedAction::new(
            ActionName::parse(action).unwrap(),
            AgentName::parse(agent).unwrap(),
        );
        request.args = args.as_object().unwrap().clone();
        request.confidence = confidence.map(|c| Confidence::new(c).unwrap());
        let classification = policy.classify(&request, now());
        let settings = policy.review_settings(&classification);
        grant.covers(
            &request,
            Some(&n("olivia")),
            &classification,
            &settings,
            now(),
        )
    }

    #[test]
    fn what_a_grant_covers() {
        let refunds = grant("refund.*", Some("args.amount <= 50"));
        type Case<'a> = (
            &'a Grant,
            &'a str,
            &'a str,
            serde_json::Value,
            Option<f64>,
            Result<(), NotCovered>,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (&refunds, "refund.create", "bot", json!({"amount": 20}), None, Ok(())),
            (&refunds, "refund.create", "Bot", json!({"amount": 20}), None, Ok(())),
            (&refunds, "refund.create", "bot", json!({"amount": 80}), None, Err(NotCovered::Condition)),
            (&refunds, "refund.create", "bot", json!({"amount": "20"}), None, Err(NotCovered::Condition)),
            (&refunds, "refund.create", "bot", json!({}), None, Err(NotCovered::Condition)),
            (&refunds, "refund.create", "bot", json!({"amount": 20}), Some(0.1), Err(NotCovered::Raised)),
            (&refunds, "refund.create", "other-bot", json!({"amount": 20}), None, Err(NotCovered::OtherAgent)),
            (&refunds, "email.send", "bot", json!({"to": "a@example.com"}), None, Err(NotCovered::OtherAction)),
            (&grant("email.*", None), "email.send", "bot", json!({"to": 5}), None, Err(NotCovered::Raised)),
        ];
        for (grant, action, agent, args, confidence, expected) in cases {
            assert_eq!(
                check(grant, action, agent, args.clone(), *confidence),
                *expected,
                "{action} by {agent} with {args}"
            );
        }
    }

    #[test]
    fn confirm_and_deny_are_never_granted() {
        let everything = grant("*", None);
        assert_eq!(
            check(&everything, "account.close", "bot", json!({}), None),
            Err(NotCovered::NotApproveTier)
        );
        assert_eq!(
            check(&everything, "db.drop", "bot", json!({}), None),
            Err(NotCovered::NotApproveTier)
        );
    }

    #[test]
    fn the_giver_must_be_one_who_could_approve() {
        let mut outsider = grant("refund.create", None);
        outsider.granted_by_groups = vec![n("sales")];
        assert_eq!(
            check(
                &outsider,
                "refund.create",
                "bot",
                json!({"amount": 1}),
                None
            ),
            Err(NotCovered::GiverMayNotApprove)
        );
        let mut owner = grant("refund.create", None);
        owner.granted_by = n("Olivia");
        assert_eq!(
            check(&owner, "refund.create", "bot", json!({"amount": 1}), None),
            Err(NotCovered::GiverMayNotApprove)
        );
    }

    #[test]
    fn who_may_give_what() {
        let policy = Policy::parse(POLICY).unwrap();
        let glob = |p: &str| {
            Glob::parse(
                p,
                crate::action::is_action_name_char,
                crate::action::ACTION_NAME_CHARS,
            )
            .unwrap()
        };
        let give = |pattern: &str, giver: &str, groups: &[&str]| {
            let groups: Vec<Name> = groups.iter().map(|g| n(g)).collect();
            may_give(
                &policy,
                &n("bot"),
                Some(&n("olivia")),
                &glob(pattern),
                &n(giver),
                &groups,
                false,
            )
        };
        let scope = give("refund.create", "rita", &["leads"]).unwrap();
        assert_eq!(
            scope.covers,
            ["refunds"],
            "an unconditional rule shadows the defaults"
        );
        let scope = give("*", "rita", &["leads"]).unwrap();
        assert_eq!(scope.covers, ["refunds", "checked", "defaults"]);
        assert_eq!(
            scope.excluded,
            [
                ("closures".to_owned(), "confirm: never granted".to_owned()),
                ("drops".to_owned(), "deny: never granted".to_owned()),
            ]
        );
        assert!(matches!(
            give("refund.*", "sam", &["sales"]),
            Err(Refused::NotAnApprover { rule, .. }) if rule == "refunds"
        ));
        assert!(matches!(
            give("account.close", "rita", &["leads"]),
            Err(Refused::NothingToGrant { .. })
        ));
        assert!(matches!(
            give("refund.create", "OLIVIA", &["leads"]),
            Err(Refused::Owner { .. })
        ));
        assert!(matches!(
            give("refund.create", "bot", &["leads"]),
            Err(Refused::Owner { .. })
        ));
    }

    #[test]
    fn a_grant_ends() {
        let mut g = grant("refund.create", None);
        assert_eq!(g.live(now()), Ok(()));
        assert_eq!(
            g.live(now() + TimeDelta::hours(1)),
            Err(NotCovered::Expired)
        );
        g.uses = 3;
        assert_eq!(
            (g.live(now()), g.uses_left()),
            (Err(NotCovered::UsedUp), Some(0))
        );
        g.uses = 0;
        g.revoked = true;
        assert_eq!(g.live(now()), Err(NotCovered::Revoked));
    }
}
