//! The wire shapes of graduation: a replay's report, the evidence per rule and action, the
//! proposals with their diffs and replays, and the regressions told of. The CLI prints the
//! same shapes with `--json`.

use chrono::{DateTime, Utc};
use countersign_core::graduation::{
    Change, Evidence, LetThrough, Outcomes, ReplayReport, Thresholds,
};
use countersign_store::ActiveRegression;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::graduation::{ReplayRun, Suggested, Suggestions};
use crate::vocabulary::{ProposalKindView, RealOutcomeView, TierView};

/// `POST /v1/policy/replay`: a candidate policy to replay over the recorded history.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// The candidate policy's TOML text, as a policy file holds it.
    pub policy: String,
    /// How far back to replay: `30s`, `15m`, `2h`, `30d` (at most `3650d`; default `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]{1,10}[smhd]$")]
    pub since: Option<String>,
}

/// What really happened to a set of actions.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct OutcomesView {
    pub total: u64,
    pub allowed: u64,
    pub denied: u64,
    pub pending: u64,
    pub approved: u64,
    /// Approved with a reviewer's arguments (not in `approved`).
    pub modified: u64,
    pub rejected: u64,
    pub expired: u64,
    pub cancelled: u64,
    /// Flagged in a post-hoc review (besides their outcome).
    pub flagged: u64,
}

impl From<&Outcomes> for OutcomesView {
    fn from(o: &Outcomes) -> OutcomesView {
        OutcomesView {
            total: o.total,
            allowed: o.allowed,
            denied: o.denied,
            pending: o.pending,
            approved: o.approved,
            modified: o.modified,
            rejected: o.rejected,
            expired: o.expired,
            cancelled: o.cancelled,
            flagged: o.flagged,
        }
    }
}

/// Actions the candidate classifies differently one way.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ChangeView {
    pub action: String,
    /// The rule that classified them (`null`: `[defaults]`).
    pub from_rule: Option<String>,
    pub from: TierView,
    /// The candidate's rule (`null`: its `[defaults]`).
    pub to_rule: Option<String>,
    pub to: TierView,
    /// Whether the candidate needs less of people for them.
    pub relaxes: bool,
    pub outcomes: OutcomesView,
}

impl From<&Change> for ChangeView {
    fn from(c: &Change) -> ChangeView {
        ChangeView {
            action: c.action.clone(),
            from_rule: c.from_rule.clone(),
            from: c.from.into(),
            to_rule: c.to_rule.clone(),
            to: c.to.into(),
            relaxes: c.relaxes(),
            outcomes: (&c.outcomes).into(),
        }
    }
}

/// A past mistake the candidate would have let through without a person deciding first.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct LetThroughView {
    pub id: String,
    pub action: String,
    pub agent: String,
    pub submitted_at: DateTime<Utc>,
    pub from_rule: Option<String>,
    pub from: TierView,
    pub to_rule: Option<String>,
    pub to: TierView,
    pub outcome: RealOutcomeView,
    pub flagged: bool,
}

impl From<&LetThrough> for LetThroughView {
    fn from(l: &LetThrough) -> LetThroughView {
        LetThroughView {
            id: l.id.clone(),
            action: l.action.clone(),
            agent: l.agent.clone(),
            submitted_at: l.at,
            from_rule: l.from_rule.clone(),
            from: l.from.into(),
            to_rule: l.to_rule.clone(),
            to: l.to.into(),
            outcome: l.outcome.into(),
            flagged: l.flagged,
        }
    }
}

/// A candidate policy replayed over recorded submissions.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ReplayView {
    /// SHA-256 of the candidate's text.
    pub policy_hash: String,
    /// Submissions made at or after this time were replayed.
    pub since: Option<DateTime<Utc>>,
    /// `false` when the time limit stopped the replay before the end of the history.
    pub complete: bool,
    pub total: u64,
    pub unchanged: u64,
    pub relaxed: u64,
    pub tightened: u64,
    /// Every change, relaxations first, the largest first.
    pub changes: Vec<ChangeView>,
    /// Rejected, modified or flagged actions the candidate would let run unreviewed
    /// (`auto`/`logged`), by id; at most 1000 listed.
    pub let_through: Vec<LetThroughView>,
    /// All of them, listed or not.
    pub let_through_total: u64,
    pub first_submitted: Option<DateTime<Utc>>,
    pub last_submitted: Option<DateTime<Utc>>,
    /// How long the replay took.
    pub elapsed_ms: Option<u64>,
}

impl ReplayView {
    pub fn of(report: &ReplayReport, complete: bool) -> ReplayView {
        ReplayView {
            policy_hash: report.policy_hash.clone(),
            since: None,
            complete,
            total: report.total,
            unchanged: report.unchanged,
            relaxed: report.relaxed,
            tightened: report.tightened,
            changes: report.changes.iter().map(ChangeView::from).collect(),
            let_through: report
                .let_through
                .iter()
                .map(LetThroughView::from)
                .collect(),
            let_through_total: report.let_through_total,
            first_submitted: report.first,
            last_submitted: report.last,
            elapsed_ms: None,
        }
    }
}

impl From<&ReplayRun> for ReplayView {
    fn from(run: &ReplayRun) -> ReplayView {
        ReplayView {
            since: Some(run.since),
            elapsed_ms: Some(run.elapsed.as_millis() as u64),
            ..ReplayView::of(&run.report, run.complete)
        }
    }
}

/// The evidence about one rule and action type in the window.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct EvidenceView {
    /// `null`: the policy's `[defaults]`.
    pub rule: Option<String>,
    pub action: String,
    pub submitted: u64,
    /// Approved + modified + rejected: people's verdicts.
    pub decisions: u64,
    pub approved: u64,
    pub modified: u64,
    pub rejected: u64,
    pub expired: u64,
    /// (rejected + modified) / decisions.
    pub error_rate: f64,
    /// The 95% Wilson upper bound of the error rate.
    pub error_upper_bound: f64,
    pub reviewed: u64,
    pub flagged: u64,
    pub flag_rate: f64,
    /// The 95% Wilson lower bound of the flag rate.
    pub flag_lower_bound: f64,
    pub first_submitted: Option<DateTime<Utc>>,
    pub last_submitted: Option<DateTime<Utc>>,
    /// The latest approval, modification or rejection.
    pub last_decided: Option<DateTime<Utc>>,
}

impl From<&Evidence> for EvidenceView {
    fn from(e: &Evidence) -> EvidenceView {
        EvidenceView {
            rule: e.key.rule.clone(),
            action: e.key.action.clone(),
            submitted: e.submitted,
            decisions: e.decisions(),
            approved: e.approved,
            modified: e.modified,
            rejected: e.rejected,
            expired: e.expired,
            error_rate: e.error_rate(),
            error_upper_bound: e.error_upper(),
            reviewed: e.reviewed,
            flagged: e.flagged,
            flag_rate: e.flag_rate(),
            flag_lower_bound: e.flag_lower(),
            first_submitted: e.first_submitted,
            last_submitted: e.last_submitted,
            last_decided: e.last_decided,
        }
    }
}

/// A proposed change of the policy, with its evidence, its diff and its replay.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ProposalView {
    pub kind: ProposalKindView,
    pub rule: Option<String>,
    pub action: String,
    pub from: TierView,
    pub to: TierView,
    /// The narrowing condition (`args.amount < 500`), for `narrow`.
    pub when: Option<String>,
    pub review_sample: Option<f64>,
    /// Why, in one sentence.
    pub reason: String,
    pub evidence: EvidenceView,
    /// For `narrow`: the evidence below the bound.
    pub below: Option<EvidenceView>,
    /// The change as a unified diff of the policy file.
    pub diff: Option<String>,
    /// Why the change could not be written into the file (edit it by hand).
    pub edit_error: Option<String>,
    /// The changed policy replayed over this action's submissions in the window.
    pub replay: Option<ReplayView>,
}

impl ProposalView {
    pub fn of(s: &Suggested, replay_complete: bool) -> ProposalView {
        let p = &s.proposal;
        ProposalView {
            kind: p.kind.into(),
            rule: p.key.rule.clone(),
            action: p.key.action.clone(),
            from: p.from.into(),
            to: p.to.into(),
            when: p.narrowing.as_ref().map(|(n, _)| n.condition()),
            review_sample: p.review_sample,
            reason: p.reason.clone(),
            evidence: (&p.evidence).into(),
            below: p.narrowing.as_ref().map(|(_, e)| e.into()),
            diff: s.diff.clone(),
            edit_error: s.edit_error.clone(),
            replay: s
                .replay
                .as_ref()
                .map(|r| ReplayView::of(r, replay_complete)),
        }
    }
}

/// The bars evidence must clear.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct GraduationThresholdsView {
    /// Relax when the error rate's 95% upper bound is under this; tighten when the flag
    /// rate's 95% lower bound is over it.
    pub target: f64,
    pub min_decisions: u64,
    pub min_reviews: u64,
    pub review_sample: f64,
    pub window_days: u32,
}

impl From<&Thresholds> for GraduationThresholdsView {
    fn from(t: &Thresholds) -> GraduationThresholdsView {
        GraduationThresholdsView {
            target: t.target,
            min_decisions: t.min_decisions,
            min_reviews: t.min_reviews,
            review_sample: t.review_sample,
            window_days: t.window_days,
        }
    }
}

/// A graduated rule's regression that reviewers were told of and that still holds.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct RegressionView {
    pub rule: String,
    pub action: String,
    pub policy_hash: String,
    pub fired_at: DateTime<Utc>,
    /// The `graduation_regressed` audit entry.
    pub audit_seq: u64,
    /// The evidence and the revert proposal (`revert.diff`), as in the audit entry.
    #[schema(value_type = Object)]
    pub body: Value,
}

impl From<&ActiveRegression> for RegressionView {
    fn from(r: &ActiveRegression) -> RegressionView {
        RegressionView {
            rule: r.rule.clone(),
            action: r.action.clone(),
            policy_hash: r.policy_hash.clone(),
            fired_at: r.fired_at,
            audit_seq: r.audit_seq,
            body: r.body.clone(),
        }
    }
}

/// `GET /v1/graduation`: the evidence and what it supports against the policy in force.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct GraduationView {
    pub policy_hash: String,
    /// The window's start.
    pub since: DateTime<Utc>,
    pub thresholds: GraduationThresholdsView,
    pub evidence: Vec<EvidenceView>,
    pub proposals: Vec<ProposalView>,
    /// Whether every proposal's replay ran to the end within the time limit.
    pub replay_complete: bool,
    /// Regressions of graduated rules told of and not cleared.
    pub regressions: Vec<RegressionView>,
}

impl GraduationView {
    pub fn of(s: &Suggestions, regressions: &[ActiveRegression]) -> GraduationView {
        GraduationView {
            policy_hash: s.policy_hash.clone(),
            since: s.since,
            thresholds: (&s.thresholds).into(),
            evidence: s.evidence.iter().map(EvidenceView::from).collect(),
            proposals: s
                .suggested
                .iter()
                .map(|x| ProposalView::of(x, s.replay_complete))
                .collect(),
            replay_complete: s.replay_complete,
            regressions: regressions.iter().map(RegressionView::from).collect(),
        }
    }
}
