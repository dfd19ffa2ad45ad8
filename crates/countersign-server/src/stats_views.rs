//! The wire shape of `GET /v1/stats` (SPEC §6): the core's report, explicitly converted.

use chrono::{DateTime, Utc};
use countersign_core::stats::{
    Fatigue, Figures, Group, Percentiles, Report, Signal, SignalKind, StatsSettings,
};
use countersign_store::ActiveRegression;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::stats_params::GroupByView;

/// Approval metrics of the actions submitted in a window.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// The window's start (inclusive); `null`: from the first action.
    pub since: Option<DateTime<Utc>>,
    /// Its end (exclusive); `null`: up to now.
    pub until: Option<DateTime<Utc>>,
    pub group_by: GroupByView,
    /// Every action in the window.
    pub overall: FiguresView,
    /// One entry per group, by key. With `group_by=reviewer`, a reviewer (not an admin)
    /// sees their own entry only.
    pub groups: Vec<GroupView>,
    /// Per action name: a high rejection or modification rate.
    pub signals: Vec<SignalView>,
    /// Graduated rules whose post-hoc flag rate crossed the target and that are still in
    /// force as they were (whatever the window: a regression is a warning about now).
    #[serde(default)]
    pub regressions: Vec<RegressionWarningView>,
    /// The thresholds in force (`[stats]` in the server's config).
    pub thresholds: ThresholdsView,
}

/// SPEC §6's figures. Rates are shares of the actions that reached a human-gated end
/// (`approved`, `rejected`, `expired`) and `null` when none did; `approved` includes
/// `modified`; an expiry is nobody's decision and never a rejection.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct FiguresView {
    pub total: i64,
    pub allowed: i64,
    pub denied: i64,
    pub pending: i64,
    pub approved: i64,
    pub modified: i64,
    pub rejected: i64,
    pub expired: i64,
    pub cancelled: i64,
    /// Allowed without asking because a reviewer's grant covered them (counted in
    /// `allowed`, in no rate and no latency: nobody decided the action itself).
    pub granted: i64,
    pub approval_rate: Option<f64>,
    pub rejection_rate: Option<f64>,
    pub modification_rate: Option<f64>,
    pub timeout_rate: Option<f64>,
    /// From submission to the verdict that decided it, for actions people decided (within
    /// 10% below: latencies are kept in buckets of two significant digits).
    pub review_latency_seconds: LatencyView,
    pub sla: SlaView,
    pub post_hoc: PostHocView,
}

/// Latency percentiles in seconds; `null` without latencies.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct LatencyView {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// What the review SLA did, apart from people's decisions.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct SlaView {
    /// Actions reminded at least once before a deadline.
    pub reminded: i64,
    /// Actions escalated to more approvers.
    pub escalated: i64,
    /// Actions nobody decided in time.
    pub expired: i64,
    /// Actions approved by the SLA because their rule allows it (counted in `approved`).
    pub auto_approved: i64,
}

/// Post-hoc reviews of actions that ran.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PostHocView {
    pub reviewed: i64,
    /// Reviewed and flagged: the policy let through what it should not have.
    pub flagged: i64,
}

/// One group. For `group_by=reviewer` the figures count that reviewer's verdicts: `total`
/// their decisions, `approved` their approvals (a modify included), rates shares of their
/// decisions, latency from submission to their verdict; `fatigue` is there too.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    /// The action, agent, rule, reviewer or tier; `null` for the rule group of the
    /// policy's `[defaults]`.
    pub key: Option<String>,
    #[serde(flatten)]
    pub figures: FiguresView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fatigue: Option<FatigueView>,
}

/// Approval-fatigue figures of one reviewer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct FatigueView {
    pub decisions: i64,
    pub approval_rate: Option<f64>,
    /// From submission to this reviewer's verdicts.
    pub time_to_decision_seconds: FatigueLatencyView,
    /// Approvals (approve or modify) on `approve` and `confirm` actions.
    pub high_risk_approvals: i64,
    /// ... given within `fast_approval_seconds` of submission.
    pub fast_approvals: i64,
    pub fast_approval_share: Option<f64>,
    pub fast_approval_seconds: u64,
    /// Post-hoc flags on actions this reviewer approved.
    pub flagged_after_approval: i64,
    /// Near-100% approvals in a few seconds on high-risk tiers.
    pub rubber_stamp: bool,
    /// Why, in words, when `rubber_stamp`.
    pub warning: Option<String>,
}

/// A reviewer's median and fastest-tenth time to decision, in seconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct FatigueLatencyView {
    pub p10: Option<f64>,
    pub p50: Option<f64>,
}

/// A per-action signal.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignalView {
    pub action: String,
    pub signal: SignalKindView,
    pub rate: f64,
    pub threshold: f64,
    /// The actions that reached a human-gated end: what the rate is a share of.
    pub human_gated: i64,
    pub message: String,
}

/// A graduated rule that regressed: reviewers were told (`graduation_regressed`), and the
/// revert is ready (`countersign policy suggest`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RegressionWarningView {
    pub rule: String,
    pub action: String,
    /// When reviewers were told.
    pub since: DateTime<Utc>,
    /// Post-hoc reviews in the evidence window, and how many flagged the action.
    pub reviewed: i64,
    pub flagged: i64,
    pub flag_rate: Option<f64>,
    pub message: String,
}

impl From<&ActiveRegression> for RegressionWarningView {
    fn from(r: &ActiveRegression) -> Self {
        let summary = r.body["summary"].as_str().unwrap_or_default();
        RegressionWarningView {
            rule: r.rule.clone(),
            action: r.action.clone(),
            since: r.fired_at,
            reviewed: r.body["reviewed"].as_i64().unwrap_or(0),
            flagged: r.body["flagged"].as_i64().unwrap_or(0),
            flag_rate: r.body["flag_rate"].as_f64(),
            message: regression_message(&r.rule, &r.action, summary),
        }
    }
}

/// The warning's words, for the API, the CLI and the dashboard alike.
pub fn regression_message(rule: &str, action: &str, summary: &str) -> String {
    let summary = summary.trim_end_matches('.');
    let summary = if summary.is_empty() {
        String::new()
    } else {
        format!(": {summary}")
    };
    format!(
        "graduated rule “{rule}” regressed for {action}{summary}; the revert (logged → approve) is ready: `countersign policy suggest` shows it"
    )
}

/// The seed's two per-action signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SignalKind)]
pub enum SignalKindView {
    /// The agent needs better prompting or guardrails.
    HighRejectionRate,
    /// Close, but it needs refinement.
    HighModificationRate,
}

/// The thresholds the signals and warnings were judged by.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct ThresholdsView {
    pub high_rejection_rate: f64,
    pub high_modification_rate: f64,
    pub signal_min_actions: i64,
    pub fast_approval_seconds: u64,
    pub rubber_stamp_min_decisions: i64,
    pub rubber_stamp_approval_rate: f64,
    pub rubber_stamp_fast_share: f64,
}

impl From<&StatsSettings> for ThresholdsView {
    fn from(s: &StatsSettings) -> Self {
        ThresholdsView {
            high_rejection_rate: s.high_rejection_rate,
            high_modification_rate: s.high_modification_rate,
            signal_min_actions: s.signal_min_actions,
            fast_approval_seconds: s.fatigue.fast_approval_seconds,
            rubber_stamp_min_decisions: s.fatigue.rubber_stamp_min_decisions,
            rubber_stamp_approval_rate: s.fatigue.rubber_stamp_approval_rate,
            rubber_stamp_fast_share: s.fatigue.rubber_stamp_fast_share,
        }
    }
}

impl From<Percentiles> for LatencyView {
    fn from(p: Percentiles) -> Self {
        LatencyView {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
        }
    }
}

impl From<&Figures> for FiguresView {
    fn from(f: &Figures) -> Self {
        let c = &f.counts;
        FiguresView {
            total: c.total,
            allowed: c.allowed,
            denied: c.denied,
            pending: c.pending,
            approved: c.approved,
            modified: c.modified,
            rejected: c.rejected,
            expired: c.expired,
            cancelled: c.cancelled,
            granted: c.granted,
            approval_rate: f.approval_rate,
            rejection_rate: f.rejection_rate,
            modification_rate: f.modification_rate,
            timeout_rate: f.timeout_rate,
            review_latency_seconds: f.review_latency.into(),
            sla: SlaView {
                reminded: c.reminded,
                escalated: c.escalated,
                expired: c.expired,
                auto_approved: c.auto_approved,
            },
            post_hoc: PostHocView {
                reviewed: c.reviewed,
                flagged: c.flagged,
            },
        }
    }
}

impl FatigueView {
    pub fn new(f: &Fatigue, settings: &StatsSettings) -> FatigueView {
        FatigueView {
            decisions: f.decisions,
            approval_rate: f.approval_rate,
            time_to_decision_seconds: FatigueLatencyView {
                p10: f.time_to_decision.p10,
                p50: f.time_to_decision.p50,
            },
            high_risk_approvals: f.high_risk_approvals,
            fast_approvals: f.fast_approvals,
            fast_approval_share: f.fast_approval_share,
            fast_approval_seconds: settings.fatigue.fast_approval_seconds,
            flagged_after_approval: f.flagged_after_approval,
            rubber_stamp: f.rubber_stamp.is_some(),
            warning: f.rubber_stamp.clone(),
        }
    }
}

impl GroupView {
    pub fn new(group: &Group, settings: &StatsSettings) -> GroupView {
        GroupView {
            key: group.key.clone(),
            figures: (&group.figures).into(),
            fatigue: group
                .fatigue
                .as_ref()
                .map(|f| FatigueView::new(f, settings)),
        }
    }
}

impl From<&Signal> for SignalView {
    fn from(s: &Signal) -> Self {
        SignalView {
            action: s.action.clone(),
            signal: match s.kind {
                SignalKind::HighRejectionRate => SignalKindView::HighRejectionRate,
                SignalKind::HighModificationRate => SignalKindView::HighModificationRate,
            },
            rate: s.rate,
            threshold: s.threshold,
            human_gated: s.human_gated,
            message: s.message.clone(),
        }
    }
}

impl StatsView {
    pub fn new(
        report: &Report,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        group_by: GroupByView,
        settings: &StatsSettings,
        regressions: &[ActiveRegression],
    ) -> StatsView {
        StatsView {
            since,
            until,
            group_by,
            overall: (&report.overall).into(),
            groups: report
                .groups
                .iter()
                .map(|g| GroupView::new(g, settings))
                .collect(),
            signals: report.signals.iter().map(SignalView::from).collect(),
            regressions: regressions
                .iter()
                .map(RegressionWarningView::from)
                .collect(),
            thresholds: settings.into(),
        }
    }
}
