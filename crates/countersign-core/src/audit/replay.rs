//! An action's state re-derived from its audit entries: every change to an action is an
//! entry whose body says what changed, so folding the entries in order gives what the
//! action's stored row must hold. Comparing the two finds a row edited behind the log's back
//! (a status flipped to `approved`, arguments swapped after approval) even when the chain
//! itself is intact.
//!
//! States are compared as the JSON the log writes (the store encodes its rows the same
//! way), field by field. A field the log does not mention (entries written before the
//! field was added to the bodies) is not compared.

use serde_json::{Map, Value, json};

use crate::tier::Status;

/// The compared fields of an action. `None`: the log does not say (only on the derived
/// side).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionState {
    pub action: Option<Value>,
    pub agent: Option<Value>,
    pub owner: Option<Value>,
    pub args: Option<Value>,
    pub original_args: Option<Value>,
    pub reasoning: Option<Value>,
    pub context: Option<Value>,
    pub confidence: Option<Value>,
    pub hints: Option<Value>,
    pub idempotency_key: Option<Value>,
    pub tier: Option<Value>,
    pub status: Option<Value>,
    pub rule: Option<Value>,
    pub reason: Option<Value>,
    pub policy_hash: Option<Value>,
    pub approvers: Option<Value>,
    pub approvals_required: Option<Value>,
    pub deadline: Option<Value>,
    pub on_timeout: Option<Value>,
    pub escalate_to: Option<Value>,
    pub escalation_sla: Option<Value>,
    pub review_sample: Option<Value>,
    pub escalated: Option<Value>,
    pub escalated_to: Option<Value>,
    pub decisions: Option<Value>,
    pub review: Option<Value>,
    pub outcome: Option<Value>,
    pub created_at: Option<Value>,
    pub decided_at: Option<Value>,
    pub remind_at: Option<Value>,
    pub reminders: Option<Value>,
    pub escalated_at: Option<Value>,
    /// How many reminders were sent: the log's `reminded` entries.
    pub reminded: Option<Value>,
    /// The grant that let the action run without asking.
    pub grant: Option<Value>,
}

impl ActionState {
    /// Every field with its name, in a fixed order.
    pub fn fields(&self) -> [(&'static str, &Option<Value>); 34] {
        [
            ("action", &self.action),
            ("agent", &self.agent),
            ("owner", &self.owner),
            ("args", &self.args),
            ("original_args", &self.original_args),
            ("reasoning", &self.reasoning),
            ("context", &self.context),
            ("confidence", &self.confidence),
            ("hints", &self.hints),
            ("idempotency_key", &self.idempotency_key),
            ("tier", &self.tier),
            ("status", &self.status),
            ("rule", &self.rule),
            ("reason", &self.reason),
            ("policy_hash", &self.policy_hash),
            ("approvers", &self.approvers),
            ("approvals_required", &self.approvals_required),
            ("deadline", &self.deadline),
            ("on_timeout", &self.on_timeout),
            ("escalate_to", &self.escalate_to),
            ("escalation_sla", &self.escalation_sla),
            ("review_sample", &self.review_sample),
            ("escalated", &self.escalated),
            ("escalated_to", &self.escalated_to),
            ("decisions", &self.decisions),
            ("review", &self.review),
            ("outcome", &self.outcome),
            ("created_at", &self.created_at),
            ("decided_at", &self.decided_at),
            ("remind_at", &self.remind_at),
            ("reminders", &self.reminders),
            ("escalated_at", &self.escalated_at),
            ("reminded", &self.reminded),
            ("grant", &self.grant),
        ]
    }
}

/// A field whose stored value disagrees with the log.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMismatch {
    pub field: &'static str,
    pub stored: Value,
    pub derived: Value,
}

/// The fields of `stored` that disagree with `derived` (fields the log does not mention are
/// skipped).
pub fn compare(stored: &ActionState, derived: &ActionState) -> Vec<FieldMismatch> {
    stored
        .fields()
        .into_iter()
        .zip(derived.fields())
        .filter_map(|((field, stored), (_, derived))| {
            let derived = derived.as_ref()?;
            let stored = stored.clone().unwrap_or(Value::Null);
            (&stored != derived).then(|| FieldMismatch {
                field,
                stored,
                derived: derived.clone(),
            })
        })
        .collect()
}

/// One audit entry about the action, as replay reads it.
#[derive(Clone, Copy, Debug)]
pub struct LogEntry<'a> {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_millis: i64,
    pub kind: &'a str,
    pub actor: &'a str,
    pub body: &'a str,
}

/// Why an action's entries do not describe an action.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("entry {seq}: the body is not a JSON object")]
    Body { seq: u64 },
    #[error("the action's log does not start with its submission (entry {seq} is {kind:?})")]
    NoSubmission { seq: u64, kind: String },
    #[error("entry {seq}: a second submission of the same action")]
    Resubmitted { seq: u64 },
    #[error("the action's log has no classification after its submission")]
    NoClassification,
    #[error("entry {seq}: unknown status {status:?}")]
    Status { seq: u64, status: String },
}

/// Folds an action's entries, in order, into its state.
#[derive(Debug, Default)]
pub struct Replay {
    state: ActionState,
    submitted: bool,
    classified: bool,
}

fn field(body: &Map<String, Value>, name: &str) -> Value {
    body.get(name).cloned().unwrap_or(Value::Null)
}

/// `body[name]` when the body has it (newer entries carry more fields than older ones).
fn optional(body: &Map<String, Value>, name: &str) -> Option<Value> {
    body.get(name).cloned()
}

/// `object` without its null members (the store leaves absent optional members out).
fn without_nulls(object: Map<String, Value>) -> Value {
    Value::Object(object.into_iter().filter(|(_, v)| !v.is_null()).collect())
}

impl Replay {
    pub fn new() -> Replay {
        Replay::default()
    }

    pub fn apply(&mut self, entry: &LogEntry<'_>) -> Result<(), ReplayError> {
        let body = match serde_json::from_str::<Value>(entry.body) {
            Ok(Value::Object(body)) => body,
            _ => return Err(ReplayError::Body { seq: entry.seq }),
        };
        let at = json!(entry.at_millis);
        let state = &mut self.state;
        match entry.kind {
            "submitted" if self.submitted => {
                return Err(ReplayError::Resubmitted { seq: entry.seq });
            }
            "submitted" => {
                self.submitted = true;
                state.agent = Some(json!(entry.actor));
                for (slot, name) in [
                    (&mut state.action, "action"),
                    (&mut state.args, "args"),
                    (&mut state.reasoning, "reasoning"),
                    (&mut state.context, "context"),
                    (&mut state.confidence, "confidence"),
                    (&mut state.hints, "hints"),
                    (&mut state.idempotency_key, "idempotency_key"),
                ] {
                    *slot = Some(field(&body, name));
                }
                state.owner = optional(&body, "owner");
                state.original_args = Some(Value::Null);
                state.escalated = Some(json!(false));
                state.escalated_to = Some(json!([]));
                state.decisions = Some(json!([]));
                state.outcome = Some(Value::Null);
                state.review = Some(Value::Null);
                state.created_at = Some(at.clone());
                state.decided_at = Some(Value::Null);
                return Ok(());
            }
            kind if !self.submitted => {
                return Err(ReplayError::NoSubmission {
                    seq: entry.seq,
                    kind: kind.to_owned(),
                });
            }
            "classified" => {
                self.classified = true;
                for (slot, name) in [
                    (&mut state.tier, "tier"),
                    (&mut state.rule, "rule"),
                    (&mut state.reason, "reason"),
                    (&mut state.policy_hash, "policy_hash"),
                    (&mut state.approvers, "approvers"),
                    (&mut state.approvals_required, "approvals_required"),
                    (&mut state.deadline, "deadline"),
                    (&mut state.on_timeout, "on_timeout"),
                ] {
                    *slot = Some(field(&body, name));
                }
                state.escalate_to = optional(&body, "escalate_to");
                state.escalation_sla = optional(&body, "escalation_sla");
                state.review_sample = optional(&body, "review_sample");
                // Entries written since reminders exist carry the ladder's plan.
                if body.contains_key("reminders") {
                    state.remind_at = optional(&body, "remind_at");
                    state.reminders = optional(&body, "reminders");
                    state.escalated_at = Some(Value::Null);
                    state.reminded = Some(json!(0));
                }
                state.grant = optional(&body, "grant");
                if body.get("review_sampled") == Some(&Value::Bool(true)) {
                    state.review = Some(json!("open"));
                }
            }
            _ if !self.classified => return Err(ReplayError::NoClassification),
            "decided" => {
                let verdict = field(&body, "verdict");
                let mut decision = Map::new();
                decision.insert("reviewer".into(), json!(entry.actor));
                decision.insert("verdict".into(), verdict.clone());
                decision.insert("args".into(), field(&body, "args"));
                decision.insert("reason".into(), field(&body, "reason"));
                decision.insert("at".into(), at.clone());
                if let Some(Value::Array(list)) = &mut state.decisions {
                    list.push(without_nulls(decision));
                }
                if verdict == "modify" {
                    if state.original_args == Some(Value::Null) {
                        state.original_args = state.args.clone();
                    }
                    state.args = Some(field(&body, "args"));
                }
                // A decision that changed what the action needs (modified arguments
                // classified again) says what it needs from now on.
                if let Some(Value::Object(now)) = body
                    .get("classification")
                    .and_then(|c| c.get("now_required"))
                {
                    for (slot, name) in [
                        (&mut state.tier, "tier"),
                        (&mut state.approvers, "approvers"),
                        (&mut state.approvals_required, "approvals_required"),
                        (&mut state.on_timeout, "on_timeout"),
                        (&mut state.escalate_to, "escalate_to"),
                        (&mut state.escalation_sla, "escalation_sla"),
                    ] {
                        if let Some(value) = now.get(name) {
                            *slot = Some(value.clone());
                        }
                    }
                }
            }
            "escalated" => {
                if let (Some(Value::Array(list)), Some(Value::Array(groups))) =
                    (&mut state.escalated_to, body.get("groups"))
                {
                    for group in groups {
                        if !list.contains(group) {
                            list.push(group.clone());
                        }
                    }
                }
                state.escalated = Some(json!(true));
                state.deadline = Some(field(&body, "deadline"));
                if body.contains_key("reminders") {
                    state.reminders = optional(&body, "reminders");
                    state.escalated_at = Some(at.clone());
                }
            }
            "reminded" | "reminders_skipped" => {
                state.reminders = optional(&body, "reminders");
                if entry.kind == "reminded"
                    && let Some(Value::Number(sent)) = &state.reminded
                {
                    state.reminded = Some(json!(sent.as_u64().unwrap_or(0) + 1));
                }
            }
            "outcome" => {
                let mut outcome = Map::new();
                outcome.insert("status".into(), field(&body, "status"));
                outcome.insert("detail".into(), field(&body, "detail"));
                outcome.insert("reported_by".into(), json!(entry.actor));
                outcome.insert("at".into(), at.clone());
                state.outcome = Some(without_nulls(outcome));
                // An outcome's `status` is the execution's, not the action's.
                return Ok(());
            }
            "reviewed" => {
                let mut review = Map::new();
                review.insert("reviewer".into(), json!(entry.actor));
                review.insert("verdict".into(), field(&body, "verdict"));
                review.insert("note".into(), field(&body, "note"));
                review.insert("at".into(), at.clone());
                state.review = Some(without_nulls(review));
                return Ok(());
            }
            _ => {}
        }
        // The status after the entry: its body's, or (for entries written before SLA steps
        // recorded it) what the kind implies.
        let status = match (body.get("status"), entry.kind) {
            (Some(Value::String(status)), _) => Some(status.as_str()),
            (_, "expired") => Some("expired"),
            (_, "auto_approved") => Some("approved"),
            (_, "cancelled") => Some("cancelled"),
            (_, "escalated") => Some("pending"),
            _ => None,
        };
        if let Some(text) = status {
            let parsed: Status = text.parse().map_err(|_| ReplayError::Status {
                seq: entry.seq,
                status: text.to_owned(),
            })?;
            state.status = Some(json!(text));
            if parsed.is_final() {
                state.decided_at = Some(at);
                // A finished action has nothing left to remind of.
                state.reminders = Some(json!([]));
            }
        }
        Ok(())
    }

    /// The state the entries describe.
    pub fn finish(self) -> Result<ActionState, ReplayError> {
        if !self.classified {
            return Err(ReplayError::NoClassification);
        }
        Ok(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays `(kind, actor, body)` entries one millisecond apart.
    fn replay(entries: &[(&str, &str, Value)]) -> Result<ActionState, ReplayError> {
        let mut replay = Replay::new();
        for (i, (kind, actor, body)) in entries.iter().enumerate() {
            let body = body.to_string();
            replay.apply(&LogEntry {
                seq: i as u64 + 1,
                at_millis: 1000 + i as i64,
                kind,
                actor,
                body: &body,
            })?;
        }
        replay.finish()
    }

    fn submitted() -> (&'static str, &'static str, Value) {
        (
            "submitted",
            "bot",
            json!({"action": "refund.create", "args": {"amount": 5}, "reasoning": null,
                   "context": {}, "confidence": null, "hints": {}, "idempotency_key": null,
                   "owner": "olivia"}),
        )
    }

    fn classified(status: &str) -> (&'static str, &'static str, Value) {
        (
            "classified",
            "system",
            json!({"tier": "approve", "status": status, "rule": null, "reason": "r",
                   "policy_hash": "h", "approvers": [], "approvals_required": 2,
                   "deadline": 5000, "on_timeout": "escalate", "review_sampled": false}),
        )
    }

    #[test]
    fn folds_the_lifecycle() {
        let state = replay(&[
            submitted(),
            classified("pending"),
            (
                "decided",
                "rita",
                json!({"verdict": "modify", "args": {"amount": 4}, "reason": null, "status": "pending",
                       "classification": {"now_required": {"tier": "confirm", "approvers": ["leads"], "approvals_required": 2}}}),
            ),
            (
                "escalated",
                "system",
                json!({"groups": ["finance"], "deadline": 9000}),
            ),
            (
                "decided",
                "sam",
                json!({"verdict": "approve", "args": null, "reason": "ok", "status": "approved"}),
            ),
            (
                "outcome",
                "bot",
                json!({"status": "succeeded", "detail": null}),
            ),
        ])
        .unwrap();
        assert_eq!(state.status, Some(json!("approved")));
        assert_eq!(state.tier, Some(json!("confirm")));
        assert_eq!(state.approvals_required, Some(json!(2)));
        assert_eq!(state.args, Some(json!({"amount": 4})));
        assert_eq!(state.original_args, Some(json!({"amount": 5})));
        assert_eq!(state.escalated_to, Some(json!(["finance"])));
        assert_eq!(state.deadline, Some(json!(9000)));
        assert_eq!(state.decided_at, Some(json!(1004)));
        assert_eq!(
            state.decisions,
            Some(json!([
                {"reviewer": "rita", "verdict": "modify", "args": {"amount": 4}, "at": 1002},
                {"reviewer": "sam", "verdict": "approve", "reason": "ok", "at": 1004},
            ]))
        );
        assert_eq!(
            state.outcome,
            Some(json!({"status": "succeeded", "reported_by": "bot", "at": 1005}))
        );
        assert_eq!(state.owner, Some(json!("olivia")));
        // Older bodies without the newer fields leave them uncompared.
        assert_eq!(state.escalate_to, None);
    }

    #[test]
    fn counts_the_reminders_sent() {
        let mut planned = classified("pending");
        planned.2["reminders"] = json!([2500, 4500]);
        planned.2["remind_at"] = json!(["50%", "90%"]);
        let reminded = |reminders: Value| {
            (
                "reminded",
                "system",
                json!({"status": "pending", "reminders": reminders}),
            )
        };
        let skipped = (
            "reminders_skipped",
            "system",
            json!({"status": "pending", "reminders": []}),
        );
        // (entries after the classification, reminders sent)
        let cases = [
            (vec![], 0),
            (vec![reminded(json!([4500]))], 1),
            (vec![reminded(json!([4500])), reminded(json!([]))], 2),
            (vec![skipped.clone()], 0),
            (vec![reminded(json!([4500])), skipped], 1),
        ];
        for (after, sent) in cases {
            let mut entries = vec![submitted(), planned.clone()];
            entries.extend(after);
            let state = replay(&entries).unwrap();
            assert_eq!(state.reminded, Some(json!(sent)), "{entries:?}");
        }
        // A log written before the ladder planned reminders says nothing about them.
        let state = replay(&[submitted(), classified("pending")]).unwrap();
        assert_eq!(state.reminded, None);
    }

    #[test]
    fn compares_field_by_field() {
        let derived = replay(&[submitted(), classified("pending")]).unwrap();
        let mut stored = derived.clone();
        stored.escalate_to = Some(json!(["x"]));
        assert_eq!(compare(&stored, &derived), vec![]);
        stored.status = Some(json!("approved"));
        assert_eq!(
            compare(&stored, &derived),
            vec![FieldMismatch {
                field: "status",
                stored: json!("approved"),
                derived: json!("pending"),
            }]
        );
    }

    #[test]
    fn refuses_logs_that_do_not_describe_an_action() {
        assert!(matches!(
            replay(&[classified("pending")]),
            Err(ReplayError::NoSubmission { seq: 1, .. })
        ));
        assert_eq!(replay(&[submitted()]), Err(ReplayError::NoClassification));
        assert!(matches!(
            replay(&[submitted(), classified("pending"), submitted()]),
            Err(ReplayError::Resubmitted { seq: 3 })
        ));
        assert!(matches!(
            replay(&[submitted(), classified("sideways")]),
            Err(ReplayError::Status { seq: 2, .. })
        ));
        assert!(matches!(
            replay(&[submitted(), ("classified", "system", json!([1]))]),
            Err(ReplayError::Body { seq: 2 })
        ));
    }
}
