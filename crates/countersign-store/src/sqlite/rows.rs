//! Row wrappers: SQL rows to domain records and back. Keeps SQL types (millis, JSON text,
//! status strings) out of everything else.

use chrono::{DateTime, Utc};
use countersign_core::action::{ActionName, Hints};
use countersign_core::duration::ReviewDuration;
use countersign_core::lifecycle::{Decision, TimeoutPlan, Verdict};
use countersign_core::lifecycle::{
    Gate, Outcome, OutcomeStatus, Review, ReviewState, ReviewVerdict,
};
use countersign_core::name::Name;
use countersign_core::policy::OnTimeout;
use countersign_core::sla::RemindAt;
use countersign_core::{Approvers, Status, Tier};
use rusqlite::Row;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::audit_log::AuditEntry;
use crate::error::StoreError;
use crate::record::ActionRecord;
use crate::token::{Role, Token};

/// The columns of `actions`, in the order [`action_from_row`] reads them.
pub(crate) const ACTION_COLUMNS: &str = "id, action, agent, owner, status, tier, rule, reason, args, \
     original_args, reasoning, context, confidence, hints, idempotency_key, approvers, \
     escalated_to, escalated, approvals_required, decisions, deadline, timeout_plan, \
     policy_hash, review_sample, review_state, review, outcome, created_at, decided_at, version, \
     grant_id, reminders, escalated_at, next_step_at, reminded";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt(format!("time {millis}")))
}

pub(crate) fn opt_time(millis: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    millis.map(from_millis).transpose()
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising plain data (maps, strings, numbers) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(
    text: &str,
    column: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("column {column}: {e}")))
}

pub(crate) fn object(text: &str, column: &str) -> Result<Map<String, Value>, StoreError> {
    from_json(text, column)
}

/// A stored name, parsed (and so folded: rows written before names were folded read as
/// their one identity).
pub(crate) fn name(text: &str, what: &str) -> Result<Name, StoreError> {
    Name::parse(text).map_err(|e| corrupt(format!("{what} {text:?}: {e}")))
}

pub(crate) fn names_from(list: Vec<String>, what: &str) -> Result<Vec<Name>, StoreError> {
    list.iter().map(|n| name(n, what)).collect()
}

/// Names as text, for JSON columns and audit bodies.
pub(crate) fn names(list: &[Name]) -> Vec<&str> {
    list.iter().map(Name::as_str).collect()
}

/// A decision as stored in the `decisions` JSON array.
#[derive(Serialize, Deserialize)]
struct DecisionJson {
    reviewer: String,
    verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: i64,
}

pub(crate) fn decisions_json(decisions: &[Decision]) -> String {
    let list: Vec<DecisionJson> = decisions
        .iter()
        .map(|d| DecisionJson {
            reviewer: d.reviewer.to_string(),
            verdict: d.verdict.as_str().to_owned(),
            args: d.args.clone(),
            reason: d.reason.clone(),
            at: millis(d.at),
        })
        .collect();
    to_json(&list)
}

pub(crate) fn decisions_from(text: &str) -> Result<Vec<Decision>, StoreError> {
    let list: Vec<DecisionJson> = from_json(text, "decisions")?;
    list.into_iter()
        .map(|d| {
            Ok(Decision {
                verdict: d.verdict.parse::<Verdict>().map_err(corrupt)?,
                reviewer: name(&d.reviewer, "reviewer")?,
                args: d.args,
                reason: d.reason,
                at: from_millis(d.at)?,
            })
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct TimeoutJson {
    on_timeout: String,
    escalate_to: Vec<String>,
    escalation_sla_seconds: u64,
    /// Absent in plans written before reminders existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    remind_at: Vec<String>,
}

pub(crate) fn timeout_json(plan: &TimeoutPlan) -> String {
    to_json(&TimeoutJson {
        on_timeout: plan.on_timeout.as_str().to_owned(),
        escalate_to: names(&plan.escalate_to)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        escalation_sla_seconds: plan.escalation_sla.seconds(),
        remind_at: plan.remind_at.iter().map(ToString::to_string).collect(),
    })
}

pub(crate) fn timeout_from(text: &str) -> Result<TimeoutPlan, StoreError> {
    let t: TimeoutJson = from_json(text, "timeout_plan")?;
    Ok(TimeoutPlan {
        on_timeout: t.on_timeout.parse::<OnTimeout>().map_err(corrupt)?,
        escalate_to: names_from(t.escalate_to, "escalation group")?,
        escalation_sla: ReviewDuration::from_seconds(t.escalation_sla_seconds)
            .ok_or_else(|| corrupt("escalation sla"))?,
        remind_at: t
            .remind_at
            .iter()
            .map(|r| r.parse::<RemindAt>().map_err(corrupt))
            .collect::<Result<_, _>>()?,
    })
}

/// Reminder moments as stored in the `reminders` column and shown in audit bodies: unix
/// milliseconds.
pub(crate) fn moments(list: &[DateTime<Utc>]) -> Vec<i64> {
    list.iter().map(|m| millis(*m)).collect()
}

pub(crate) fn moments_from(text: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
    from_json::<Vec<i64>>(text, "reminders")?
        .into_iter()
        .map(from_millis)
        .collect()
}

#[derive(Serialize, Deserialize)]
struct ReviewJson {
    reviewer: String,
    verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    at: i64,
}

pub(crate) fn review_json(review: &Review) -> String {
    to_json(&ReviewJson {
        reviewer: review.reviewer.to_string(),
        verdict: review.verdict.as_str().to_owned(),
        note: review.note.clone(),
        at: millis(review.at),
    })
}

/// The `review_state` column for a state.
pub(crate) fn review_state_column(state: &ReviewState) -> Option<&'static str> {
    match state {
        ReviewState::NotSampled => None,
        ReviewState::Open => Some("open"),
        ReviewState::Reviewed(_) => Some("done"),
    }
}

pub(crate) fn review_from(
    state: Option<&str>,
    review: Option<&str>,
) -> Result<ReviewState, StoreError> {
    match (state, review) {
        (None, _) => Ok(ReviewState::NotSampled),
        (Some("open"), _) => Ok(ReviewState::Open),
        (Some("done"), Some(text)) => {
            let r: ReviewJson = from_json(text, "review")?;
            Ok(ReviewState::Reviewed(Review {
                verdict: r.verdict.parse::<ReviewVerdict>().map_err(corrupt)?,
                reviewer: name(&r.reviewer, "reviewer")?,
                note: r.note,
                at: from_millis(r.at)?,
            }))
        }
        (Some(other), _) => Err(corrupt(format!("review state {other:?}"))),
    }
}

#[derive(Serialize, Deserialize)]
struct OutcomeJson {
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<Value>,
    reported_by: String,
    at: i64,
}

pub(crate) fn outcome_json(outcome: &Outcome) -> String {
    to_json(&OutcomeJson {
        status: outcome.status.as_str().to_owned(),
        detail: outcome.detail.clone(),
        reported_by: outcome.reported_by.to_string(),
        at: millis(outcome.at),
    })
}

pub(crate) fn outcome_from(text: &str) -> Result<Outcome, StoreError> {
    let o: OutcomeJson = from_json(text, "outcome")?;
    Ok(Outcome {
        status: o.status.parse::<OutcomeStatus>().map_err(corrupt)?,
        detail: o.detail,
        reported_by: name(&o.reported_by, "outcome reporter")?,
        at: from_millis(o.at)?,
    })
}

/// Who may decide, as stored in the `approvers` column and shown in audit bodies: a JSON
/// array of groups (empty: any reviewer), or the string `"admins"` when only admins decide.
pub(crate) fn approvers_value(approvers: &Approvers) -> Value {
    match approvers {
        Approvers::AdminsOnly => Value::from("admins"),
        other => Value::from(names(other.groups())),
    }
}

pub(crate) fn approvers_from(text: &str) -> Result<Approvers, StoreError> {
    approvers_from_value(from_json::<Value>(text, "approvers")?)
}

pub(crate) fn approvers_from_value(value: Value) -> Result<Approvers, StoreError> {
    match value {
        Value::String(s) if s == "admins" => Ok(Approvers::AdminsOnly),
        other => Ok(Approvers::from_groups(names_from(
            serde_json::from_value(other).map_err(|e| corrupt(format!("column approvers: {e}")))?,
            "approver group",
        )?)),
    }
}

/// Reads a row selected with [`ACTION_COLUMNS`].
pub(crate) fn action_from_row(row: &Row<'_>) -> Result<ActionRecord, StoreError> {
    let text = |i: usize| row.get::<_, String>(i);
    let opt_text = |i: usize| row.get::<_, Option<String>>(i);
    let original_args = opt_text(9)?;
    let timeout = opt_text(21)?;
    let review_state = opt_text(24)?;
    let review = opt_text(25)?;
    let outcome = opt_text(26)?;
    let gate = Gate {
        action: ActionName::parse(&text(1)?).map_err(|e| corrupt(format!("action: {e}")))?,
        agent: name(&text(2)?, "agent")?,
        owner: opt_text(3)?.map(|o| name(&o, "owner")).transpose()?,
        status: text(4)?.parse::<Status>().map_err(corrupt)?,
        tier: text(5)?.parse::<Tier>().map_err(corrupt)?,
        args: object(&text(8)?, "args")?,
        original_args: original_args
            .map(|t| object(&t, "original_args"))
            .transpose()?,
        approvers: approvers_from(&text(15)?)?,
        escalated_to: names_from(from_json(&text(16)?, "escalated_to")?, "escalation group")?,
        escalated: row.get::<_, bool>(17)?,
        approvals_required: u32::try_from(row.get::<_, i64>(18)?)
            .map_err(|_| corrupt("approvals_required"))?,
        decisions: decisions_from(&text(19)?)?,
        deadline: opt_time(row.get::<_, Option<i64>>(20)?)?,
        reminders: moments_from(&text(31)?)?,
        timeout: timeout.map(|t| timeout_from(&t)).transpose()?,
        escalated_at: opt_time(row.get::<_, Option<i64>>(32)?)?,
        reminded: u32::try_from(row.get::<_, i64>(34)?).map_err(|_| corrupt("reminded"))?,
        review: review_from(review_state.as_deref(), review.as_deref())?,
        outcome: outcome.map(|t| outcome_from(&t)).transpose()?,
        decided_at: opt_time(row.get::<_, Option<i64>>(28)?)?,
    };
    Ok(ActionRecord {
        id: text(0)?,
        gate,
        rule: opt_text(6)?,
        reason: text(7)?,
        reasoning: opt_text(10)?,
        context: object(&text(11)?, "context")?,
        confidence: row.get::<_, Option<f64>>(12)?,
        hints: from_json::<Hints>(&text(13)?, "hints")?,
        idempotency_key: opt_text(14)?,
        policy_hash: text(22)?,
        review_sample: row.get::<_, f64>(23)?,
        created_at: from_millis(row.get::<_, i64>(27)?)?,
        version: u64::try_from(row.get::<_, i64>(29)?).map_err(|_| corrupt("version"))?,
        grant: opt_text(30)?,
    })
}

/// The columns of `tokens`, in the order [`token_from_row`] reads them.
pub(crate) const TOKEN_COLUMNS: &str =
    "id, name, role, groups, owner, created_at, revoked_at, secret_hash";

pub(crate) fn token_from_row(row: &Row<'_>) -> Result<Token, StoreError> {
    Ok(Token {
        id: row.get(0)?,
        name: name(&row.get::<_, String>(1)?, "token name")?,
        role: row.get::<_, String>(2)?.parse::<Role>().map_err(corrupt)?,
        groups: names_from(from_json(&row.get::<_, String>(3)?, "groups")?, "group")?,
        owner: row
            .get::<_, Option<String>>(4)?
            .map(|o| name(&o, "token owner"))
            .transpose()?,
        created_at: from_millis(row.get(5)?)?,
        revoked: row.get::<_, Option<i64>>(6)?.is_some(),
    })
}

/// The columns of `audit`, in the order [`audit_from_row`] reads them.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, kind, actor, action_id, body, prev, hash";

pub(crate) fn audit_from_row(row: &Row<'_>) -> Result<AuditEntry, StoreError> {
    let prev: Vec<u8> = row.get(6)?;
    let hash: Vec<u8> = row.get(7)?;
    Ok(AuditEntry {
        seq: u64::try_from(row.get::<_, i64>(0)?).map_err(|_| corrupt("seq"))?,
        at: from_millis(row.get(1)?)?,
        kind: row.get(2)?,
        actor: row.get(3)?,
        action_id: row.get(4)?,
        body: row.get(5)?,
        prev: countersign_core::audit::hex(&prev),
        hash: countersign_core::audit::hex(&hash),
    })
}
