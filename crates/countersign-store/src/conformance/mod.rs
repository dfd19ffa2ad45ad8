//! The backend-independent story every store must pass. Public (behind the `conformance`
//! feature) so that each backend's tests run the very same story: a SQLite file today, a
//! PostgreSQL database next.

mod grants;
mod history;
mod identity;
mod lifecycle;
mod outbox;
mod people;
mod records;
mod stats;

use chrono::{DateTime, Utc};
use countersign_core::Policy;
use countersign_core::action::{ActionName, AgentName, ProposedAction};
use countersign_core::glob::Glob;
use countersign_core::lifecycle::{DecisionRequest, Verdict};
use countersign_core::name::Name;
use serde_json::{Map, Value};

use crate::{Actor, NewAction, Store};

/// The policy the story classifies with.
pub const STORY_POLICY: &str = r#"
version = 1

[defaults]
tier = "approve"
sla = "30m"

[[rules]]
name = "lookups"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 100"
tier = "logged"
review_sample = 1.0

[[rules]]
name = "large refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]
sla = "15m"
on_timeout = "escalate"
escalate_to = ["finance"]
escalation_sla = "1h"

[[rules]]
name = "closures"
actions = ["account.close"]
tier = "confirm"

[[rules]]
name = "drops"
actions = ["db.drop"]
tier = "deny"
"#;

/// The story's starting time.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap()
}

/// The story's policy, parsed.
pub fn policy() -> Policy {
    Policy::parse(STORY_POLICY).unwrap()
}

/// A classified submission of `action` by `agent` with `args`, at `at`.
pub fn new_action(
    policy: &Policy,
    agent: &str,
    action: &str,
    args: Value,
    at: DateTime<Utc>,
) -> NewAction {
    let mut proposal = ProposedAction::new(
        ActionName::parse(action).unwrap(),
        AgentName::parse(agent).unwrap(),
    );
    proposal.args = object(args);
    let mut new = NewAction::classify(policy, proposal, at);
    new.owner = Some("olivia".into());
    new.token_id = Some(format!("token-of-{agent}"));
    new
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A reviewer presenting the token `token-of-NAME`.
fn reviewer(name: &str, groups: &[&str]) -> Actor {
    Actor {
        name: Name::parse(name).unwrap(),
        groups: groups.iter().map(|g| Name::parse(g).unwrap()).collect(),
        token_id: Some(format!("token-of-{name}")),
        admin: false,
    }
}

/// The story's agent, `support-bot`, presenting its token.
fn agent() -> Actor {
    reviewer("support-bot", &[])
}

fn verdict(verdict: Verdict) -> DecisionRequest {
    DecisionRequest {
        verdict,
        args: None,
        reason: None,
        confirm: None,
        reclassified: None,
    }
}

fn glob(pattern: &str) -> Glob {
    Glob::parse(
        pattern,
        countersign_core::action::is_action_name_char,
        countersign_core::action::ACTION_NAME_CHARS,
    )
    .unwrap()
}

/// Runs the story against `store`, which must be empty. Panics (as tests do) on the first
/// deviation.
pub async fn story(store: &dyn Store) {
    records::tokens(store).await;
    identity::identities(store).await;
    lifecycle::tiers(store).await;
    lifecycle::queue(store).await;
    lifecycle::decisions(store).await;
    lifecycle::confirm_and_modify(store).await;
    lifecycle::cancel_and_outcome(store).await;
    lifecycle::sla_ladder(store).await;
    records::post_hoc_review(store).await;
    identity::review_separation(store).await;
    records::idempotency(store).await;
    records::audit(store).await;
    records::checkpoints(store).await;
    // Last: it installs an event router, which the earlier parts do without.
    outbox::outbox(store).await;
    people::people(store).await;
    people::reviewer_reads(store).await;
    history::history(store).await;
    stats::statistics(store).await;
    grants::grants(store).await;
}
