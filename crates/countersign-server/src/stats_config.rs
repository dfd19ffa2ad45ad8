//! The `[stats]` table of the config file: when a per-action signal is raised, when a
//! reviewer looks like a rubber stamp, and how many action names and rules `/metrics` labels
//! before it counts the rest as `other`.
//!
//! ```toml
//! [stats]
//! high_rejection_rate = 0.3          # an action name rejected this often: a signal
//! high_modification_rate = 0.3       # ... modified this often: a signal
//! signal_min_actions = 10            # no signal on fewer human-gated ends
//! fast_approval_seconds = 5          # an approval this soon after submission is fast
//! rubber_stamp_min_decisions = 20    # no warning on fewer approve/confirm decisions
//! rubber_stamp_approval_rate = 0.95  # warning: approves at least this share...
//! rubber_stamp_fast_share = 0.5      # ... and at least this share of approvals is fast
//! metrics_max_actions = 100          # action names with their own /metrics label
//! metrics_max_rules = 100            # rules with their own /metrics label
//! ```

use countersign_core::stats::{FatigueSettings, StatsSettings};
use serde::Deserialize;

/// The default of `metrics_max_actions` and `metrics_max_rules`.
pub const DEFAULT_LABEL_CAP: usize = 100;

/// The statistics' settings, checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatsConfig {
    pub settings: StatsSettings,
    /// Action names with a label of their own at `/metrics`; the rest are `other`.
    pub max_action_labels: usize,
    /// Rules likewise.
    pub max_rule_labels: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            settings: StatsSettings::default(),
            max_action_labels: DEFAULT_LABEL_CAP,
            max_rule_labels: DEFAULT_LABEL_CAP,
        }
    }
}

/// `[stats]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsFile {
    high_rejection_rate: Option<f64>,
    high_modification_rate: Option<f64>,
    signal_min_actions: Option<u32>,
    fast_approval_seconds: Option<u32>,
    rubber_stamp_min_decisions: Option<u32>,
    rubber_stamp_approval_rate: Option<f64>,
    rubber_stamp_fast_share: Option<f64>,
    metrics_max_actions: Option<usize>,
    metrics_max_rules: Option<usize>,
}

impl StatsFile {
    /// The settings over the defaults; a bad value is `(its key, what is wrong)`.
    pub fn resolve(&self) -> Result<StatsConfig, (&'static str, String)> {
        let defaults = StatsConfig::default();
        let d = defaults.settings;
        let share = |name: &'static str, value: Option<f64>, default: f64| match value {
            None => Ok(default),
            Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
            Some(v) => Err((name, format!("expected a share from 0 to 1, found {v}"))),
        };
        let at_least_one = |name: &'static str, value: Option<usize>, default: usize| match value {
            None => Ok(default),
            Some(0) => Err((name, "expected at least 1, found 0".to_owned())),
            Some(v) => Ok(v),
        };
        Ok(StatsConfig {
            settings: StatsSettings {
                high_rejection_rate: share(
                    "stats.high_rejection_rate",
                    self.high_rejection_rate,
                    d.high_rejection_rate,
                )?,
                high_modification_rate: share(
                    "stats.high_modification_rate",
                    self.high_modification_rate,
                    d.high_modification_rate,
                )?,
                signal_min_actions: self
                    .signal_min_actions
                    .map_or(d.signal_min_actions, i64::from),
                fatigue: FatigueSettings {
                    fast_approval_seconds: self
                        .fast_approval_seconds
                        .map_or(d.fatigue.fast_approval_seconds, u64::from),
                    rubber_stamp_min_decisions: self
                        .rubber_stamp_min_decisions
                        .map_or(d.fatigue.rubber_stamp_min_decisions, i64::from),
                    rubber_stamp_approval_rate: share(
                        "stats.rubber_stamp_approval_rate",
                        self.rubber_stamp_approval_rate,
                        d.fatigue.rubber_stamp_approval_rate,
                    )?,
                    rubber_stamp_fast_share: share(
                        "stats.rubber_stamp_fast_share",
                        self.rubber_stamp_fast_share,
                        d.fatigue.rubber_stamp_fast_share,
                    )?,
                },
            },
            max_action_labels: at_least_one(
                "stats.metrics_max_actions",
                self.metrics_max_actions,
                defaults.max_action_labels,
            )?,
            max_rule_labels: at_least_one(
                "stats.metrics_max_rules",
                self.metrics_max_rules,
                defaults.max_rule_labels,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<StatsConfig, String> {
        toml::from_str::<StatsFile>(text)
            .map_err(|e| e.to_string())?
            .resolve()
            .map_err(|(name, message)| format!("{name}: {message}"))
    }

    #[test]
    fn settings_over_the_defaults_and_refusals() {
        assert_eq!(resolve("").unwrap(), StatsConfig::default());
        let set = resolve(
            "high_rejection_rate = 0.5\nfast_approval_seconds = 10\nmetrics_max_actions = 3\n\
             rubber_stamp_min_decisions = 4",
        )
        .unwrap();
        assert_eq!(set.settings.high_rejection_rate, 0.5);
        assert_eq!(set.settings.fatigue.fast_approval_seconds, 10);
        assert_eq!(set.settings.fatigue.rubber_stamp_min_decisions, 4);
        assert_eq!(set.max_action_labels, 3);
        assert_eq!(set.max_rule_labels, DEFAULT_LABEL_CAP);
        let refused = [
            (
                "high_rejection_rate = 1.5",
                "stats.high_rejection_rate: expected a share from 0 to 1, found 1.5",
            ),
            (
                "rubber_stamp_fast_share = -0.1",
                "stats.rubber_stamp_fast_share: expected a share from 0 to 1, found -0.1",
            ),
            (
                "metrics_max_actions = 0",
                "stats.metrics_max_actions: expected at least 1, found 0",
            ),
        ];
        for (text, expected) in refused {
            assert_eq!(resolve(text).unwrap_err(), expected, "{text}");
        }
        assert!(resolve("fast_approval_seconds = -1").is_err());
        assert!(resolve("bogus = 1").unwrap_err().contains("unknown field"));
    }
}
