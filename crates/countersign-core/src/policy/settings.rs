//! Review settings: who may decide an action, how many must approve, by when, and what
//! happens when nobody does — and how the settings of several rules combine.
//!
//! Settings combine whenever more than one rule might govern an action: when a condition
//! could not be evaluated (the failing rule might have matched, and so might the rule that
//! did match, or `[defaults]`), and when a reviewer modifies the arguments into another
//! rule's reach. The combination is the strictest setting by setting, so that no candidate
//! is ever loosened:
//!
//! - approvers: the groups every candidate admits (see [`Approvers::strictest`]); none in
//!   common means only admins decide;
//! - approvals required: the most;
//! - SLA and escalation SLA: the shortest;
//! - on timeout: `reject` over `escalate` over `approve` (expiry never lets an action run,
//!   escalation widens who may approve, auto-approval runs it); escalation groups are those
//!   every escalating candidate names, and none in common means `reject`;
//! - review sample: the largest;
//! - reminders: every point any candidate names.

use super::{OnTimeout, Policy};
use crate::approvers::Approvers;
use crate::duration::ReviewDuration;
use crate::name::Name;
use crate::policy::Classification;
use crate::sla::remind::RemindAt;
use crate::tier::Tier;

/// What a classification means for review: who may decide, how many, and by when.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewSettings {
    pub approvers: Approvers,
    pub approvals_required: u32,
    pub sla: ReviewDuration,
    pub on_timeout: OnTimeout,
    pub escalate_to: Vec<Name>,
    pub escalation_sla: ReviewDuration,
    /// Share of allowed `logged` actions sent to post-hoc review.
    pub review_sample: f64,
    /// When each stage of the SLA reminds the approvers, ascending.
    pub remind_at: Vec<RemindAt>,
}

impl OnTimeout {
    /// How strict a timeout step is: expiry over escalation over auto-approval.
    fn strictness(self) -> u8 {
        match self {
            OnTimeout::Approve => 0,
            OnTimeout::Escalate => 1,
            OnTimeout::Reject => 2,
        }
    }

    /// The stricter of two timeout steps.
    pub fn stricter(self, other: OnTimeout) -> OnTimeout {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }
}

impl ReviewSettings {
    /// Settings that satisfy both `self` and `other`, setting by setting.
    pub fn strictest(&self, other: &ReviewSettings) -> ReviewSettings {
        let (on_timeout, escalate_to) = strictest_timeout(
            (self.on_timeout, &self.escalate_to),
            (other.on_timeout, &other.escalate_to),
        );
        ReviewSettings {
            approvers: self.approvers.strictest(&other.approvers),
            approvals_required: self.approvals_required.max(other.approvals_required),
            sla: self.sla.min(other.sla),
            on_timeout,
            escalate_to,
            escalation_sla: self.escalation_sla.min(other.escalation_sla),
            review_sample: self.review_sample.max(other.review_sample),
            remind_at: union(&self.remind_at, &other.remind_at),
        }
    }

    /// Whether `self` is at least as strict as `other` in every setting: the property that
    /// combining settings must keep.
    pub fn at_least_as_strict_as(&self, other: &ReviewSettings) -> bool {
        let approvers = match (&self.approvers, &other.approvers) {
            (_, Approvers::Anyone) | (Approvers::AdminsOnly, _) => true,
            (Approvers::Groups(mine), Approvers::Groups(theirs)) => {
                mine.iter().all(|g| theirs.contains(g))
            }
            _ => false,
        };
        // Escalating to fewer groups is stricter; to others, looser.
        let escalation = match (self.on_timeout, other.on_timeout) {
            (OnTimeout::Escalate, OnTimeout::Escalate) => self
                .escalate_to
                .iter()
                .all(|g| other.escalate_to.contains(g)),
            _ => true,
        };
        approvers
            && escalation
            && self.on_timeout.strictness() >= other.on_timeout.strictness()
            && self.approvals_required >= other.approvals_required
            && self.sla <= other.sla
            && self.escalation_sla <= other.escalation_sla
            && self.review_sample >= other.review_sample
            && other.remind_at.iter().all(|r| self.remind_at.contains(r))
    }
}

/// Every reminder point either names, ascending: reminding more often never loosens review.
fn union(a: &[RemindAt], b: &[RemindAt]) -> Vec<RemindAt> {
    let mut all: Vec<RemindAt> = a.iter().chain(b).copied().collect();
    all.sort();
    all.dedup();
    all
}

/// The stricter of two timeout steps with their escalation groups: escalation goes only to
/// groups every escalating side names, and to none (so `reject`) when they share none.
pub(crate) fn strictest_timeout(
    (a, a_groups): (OnTimeout, &[Name]),
    (b, b_groups): (OnTimeout, &[Name]),
) -> (OnTimeout, Vec<Name>) {
    let groups: Vec<Name> = match (a, b) {
        (OnTimeout::Escalate, OnTimeout::Escalate) => a_groups
            .iter()
            .filter(|g| b_groups.contains(g))
            .cloned()
            .collect(),
        (OnTimeout::Escalate, _) => a_groups.to_vec(),
        (_, OnTimeout::Escalate) => b_groups.to_vec(),
        _ => Vec::new(),
    };
    match a.stricter(b) {
        OnTimeout::Escalate if !groups.is_empty() => (OnTimeout::Escalate, groups),
        OnTimeout::Escalate => (OnTimeout::Reject, Vec::new()),
        other => (other, Vec::new()),
    }
}

impl Policy {
    /// The review settings that apply to `classification`: the strictest, setting by
    /// setting, of every rule that might govern it — the matching rule (or `[defaults]`)
    /// and every rule whose condition could not be evaluated.
    pub fn review_settings(&self, classification: &Classification) -> ReviewSettings {
        let raised = classification.failure.is_some() || classification.low_confidence.is_some();
        let tier = classification.tier;
        let mut settings = self.rule_settings(classification.matched, tier, raised);
        for &failed in &classification.failed {
            settings = settings.strictest(&self.rule_settings(Some(failed), tier, raised));
        }
        settings
    }

    /// The settings of one rule (`None`: `[defaults]`) for an action of `tier`; `raised`
    /// when the tier was raised for safety (a failed condition, low confidence), which rules
    /// out auto-approval.
    pub fn rule_settings(&self, rule: Option<usize>, tier: Tier, raised: bool) -> ReviewSettings {
        let defaults = &self.defaults;
        let rule = rule.map(|i| &self.rules[i]);
        let pick = |own: Option<&Vec<Name>>, fallback: &Vec<Name>| -> Vec<Name> {
            match own {
                Some(groups) if !groups.is_empty() => groups.clone(),
                _ => fallback.clone(),
            }
        };
        let approvals_required = match tier {
            Tier::Approve | Tier::Confirm => {
                let asked = rule.and_then(|r| r.approvals).unwrap_or(0);
                asked.max(tier.default_approvals())
            }
            _ => 0,
        };
        let sla = rule.and_then(|r| r.sla).unwrap_or(defaults.sla);
        let (mut on_timeout, allowed) =
            match rule.and_then(|r| r.on_timeout.map(|t| (t, r.allow_auto_approve))) {
                Some(own) => own,
                None => (defaults.on_timeout, defaults.allow_auto_approve),
            };
        // Never approve on timeout what was raised for safety (a failed condition, low
        // confidence), what is `confirm`, or what nobody explicitly allowed.
        if on_timeout == OnTimeout::Approve && (!allowed || raised || tier == Tier::Confirm) {
            on_timeout = OnTimeout::Reject;
        }
        let escalate_to = pick(rule.map(|r| &r.escalate_to), &defaults.escalate_to);
        if on_timeout == OnTimeout::Escalate && escalate_to.is_empty() {
            on_timeout = OnTimeout::Reject;
        }
        ReviewSettings {
            approvers: Approvers::from_groups(pick(
                rule.map(|r| &r.approvers),
                &defaults.approvers,
            )),
            approvals_required,
            sla,
            on_timeout,
            escalate_to,
            escalation_sla: rule
                .and_then(|r| r.escalation_sla)
                .or(defaults.escalation_sla)
                .unwrap_or(sla),
            review_sample: rule
                .and_then(|r| r.review_sample)
                .unwrap_or(defaults.review_sample),
            remind_at: rule
                .and_then(|r| r.remind_at.clone())
                .unwrap_or_else(|| defaults.remind_at.clone()),
        }
    }
}
