//! A window's statistics as a team lead reads them: figures overall and per group, the
//! seed's two per-action signals (a high rejection rate: "the agent needs better prompting
//! or guardrails"; a high modification rate: "close, but needs refinement"), and each
//! reviewer's approval-fatigue figures with a rubber-stamp warning.

use std::collections::BTreeMap;

use super::figures::{Fatigue, FatigueSettings, Figures, ReviewerSums, percent};
use super::tally::{ActionKey, ActionTally, ReviewerKey, ReviewerTally};
use crate::name::Name;

crate::vocabulary! {
    /// What statistics are grouped by.
    pub enum GroupBy {
        Action = "action",
        Agent = "agent",
        Rule = "rule",
        Reviewer = "reviewer",
        Tier = "tier",
    }
}

crate::vocabulary! {
    /// A per-action signal.
    pub enum SignalKind {
        /// The agent needs better prompting or guardrails.
        HighRejectionRate = "high_rejection_rate",
        /// Close, but needs refinement.
        HighModificationRate = "high_modification_rate",
    }
}

/// Thresholds of the signals and of the fatigue figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatsSettings {
    /// An action name whose rejection rate reaches this raises [`SignalKind::HighRejectionRate`].
    pub high_rejection_rate: f64,
    /// ... whose modification rate reaches this, [`SignalKind::HighModificationRate`].
    pub high_modification_rate: f64,
    /// No signal on fewer actions that reached a human-gated end than this.
    pub signal_min_actions: i64,
    pub fatigue: FatigueSettings,
}

impl Default for StatsSettings {
    fn default() -> Self {
        StatsSettings {
            high_rejection_rate: 0.3,
            high_modification_rate: 0.3,
            signal_min_actions: 10,
            fatigue: FatigueSettings::default(),
        }
    }
}

/// The kept sums of a window, by the finest keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsData {
    pub actions: Vec<(ActionKey, ActionTally)>,
    pub reviewers: Vec<(ReviewerKey, ReviewerTally)>,
}

/// One group's figures. For reviewers, `fatigue` too, and `figures` count their decisions
/// (see [`ReviewerSums::figures`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The action, agent, rule, reviewer or tier; `None`: the policy's `[defaults]` (rule).
    pub key: Option<String>,
    pub figures: Figures,
    pub fatigue: Option<Fatigue>,
}

/// A per-action signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    pub action: String,
    pub kind: SignalKind,
    pub rate: f64,
    pub threshold: f64,
    /// Actions that reached a human-gated end: what the rate is a share of.
    pub human_gated: i64,
    pub message: String,
}

/// A window's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub overall: Figures,
    /// By key; the `[defaults]` group (`None`) first.
    pub groups: Vec<Group>,
    pub signals: Vec<Signal>,
}

/// The figures of `data` grouped by `group_by`, with the per-action signals.
pub fn report(data: &StatsData, group_by: GroupBy, settings: &StatsSettings) -> Report {
    let mut overall = ActionTally::default();
    let mut by_action: BTreeMap<String, ActionTally> = BTreeMap::new();
    for (key, tally) in &data.actions {
        overall.add(tally);
        by_action
            .entry(key.action.as_str().to_owned())
            .or_default()
            .add(tally);
    }
    let groups = match group_by {
        GroupBy::Reviewer => reviewer_groups(&data.reviewers, &settings.fatigue),
        GroupBy::Action => plain_groups(by_action.iter().map(|(k, t)| (Some(k.clone()), t))),
        other => {
            let mut sums: BTreeMap<Option<String>, ActionTally> = BTreeMap::new();
            for (key, tally) in &data.actions {
                let group = match other {
                    GroupBy::Agent => Some(key.agent.as_str().to_owned()),
                    GroupBy::Rule => key.rule.clone(),
                    _ => Some(key.tier.as_str().to_owned()),
                };
                sums.entry(group).or_default().add(tally);
            }
            plain_groups(sums.iter().map(|(k, t)| (k.clone(), t)))
        }
    };
    Report {
        overall: Figures::of(&overall),
        groups,
        signals: signals(&by_action, settings),
    }
}

fn plain_groups<'a>(sums: impl Iterator<Item = (Option<String>, &'a ActionTally)>) -> Vec<Group> {
    sums.map(|(key, tally)| Group {
        key,
        figures: Figures::of(tally),
        fatigue: None,
    })
    .collect()
}

fn reviewer_groups(
    tallies: &[(ReviewerKey, ReviewerTally)],
    settings: &FatigueSettings,
) -> Vec<Group> {
    let mut sums: BTreeMap<&Name, ReviewerSums> = BTreeMap::new();
    for (key, tally) in tallies {
        sums.entry(&key.reviewer)
            .or_default()
            .add(key.tier, key.verdict, tally);
    }
    sums.into_iter()
        .filter(|(_, sums)| sums.figures().counts.total > 0)
        .map(|(reviewer, sums)| Group {
            key: Some(reviewer.as_str().to_owned()),
            figures: sums.figures(),
            fatigue: Some(Fatigue::of(reviewer.clone(), &sums, settings)),
        })
        .collect()
}

/// The seed's two signals, per action name, once enough of its actions reached a
/// human-gated end to mean something.
fn signals(by_action: &BTreeMap<String, ActionTally>, settings: &StatsSettings) -> Vec<Signal> {
    let mut signals = Vec::new();
    for (action, tally) in by_action {
        let figures = Figures::of(tally);
        let ended = figures.human_gated();
        if ended < settings.signal_min_actions.max(1) {
            continue;
        }
        let checks = [
            (
                SignalKind::HighRejectionRate,
                figures.rejection_rate,
                settings.high_rejection_rate,
                "rejected",
                "the agent needs better prompting or guardrails",
            ),
            (
                SignalKind::HighModificationRate,
                figures.modification_rate,
                settings.high_modification_rate,
                "modified",
                "close, but it needs refinement",
            ),
        ];
        for (kind, rate, threshold, what, meaning) in checks {
            if let Some(rate) = rate.filter(|rate| *rate >= threshold) {
                signals.push(Signal {
                    action: action.clone(),
                    kind,
                    rate,
                    threshold,
                    human_gated: ended,
                    message: format!(
                        "{action}: {} of {ended} decided actions were {what} (threshold {}): {meaning}",
                        percent(rate),
                        percent(threshold),
                    ),
                });
            }
        }
    }
    signals
}
