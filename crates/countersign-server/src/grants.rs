//! Grants on the server: giving one (checked against the policy in force and the giver's
//! rights) and the live ones per agent, kept in memory so that a submission finds the grants
//! that might cover it without a query.
//!
//! The cache only proposes: whether a grant is still live (not revoked, not expired, uses
//! left) is decided again by the store where the use is counted, inside its write
//! transaction. A grant revoked or used up elsewhere (another server on the same database)
//! is therefore never used; a grant given elsewhere is seen within [`FRESH_FOR`], and until
//! then the action is asked about, as without it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use countersign_core::action::{ACTION_NAME_CHARS, AgentName, is_action_name_char};
use countersign_core::duration::ReviewDuration;
use countersign_core::glob::Glob;
use countersign_core::grant::{Grant, Refused, Scope, may_give};
use countersign_core::policy::Condition;
use countersign_store::{Actor, GrantQuery, GrantRecord, NewGrant, Role, Store, StoreError};

use crate::error::AppError;
use crate::state::AppState;

/// How long the cache is trusted before it is read again from the store.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// The longest a grant may run.
pub const MAX_GRANT_SECONDS: u64 = 30 * 86_400;

/// The most uses a grant may be given.
pub const MAX_GRANT_USES: u32 = 1_000_000;

/// Live grants one agent may hold at once: each is looked at on every submission.
pub const MAX_LIVE_GRANTS_PER_AGENT: usize = 100;

/// The longest action pattern accepted (as long as an action name).
pub const MAX_PATTERN_BYTES: usize = 200;

/// The longest condition and reason accepted.
pub const MAX_CONDITION_BYTES: usize = 2048;
pub const MAX_REASON_BYTES: usize = 2048;

/// The live grants per agent.
#[derive(Default)]
pub struct LiveGrants {
    cache: RwLock<Cache>,
    reload: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    /// By agent name; each list soonest-expiring first, the order in which they are used.
    by_agent: HashMap<String, Vec<Arc<Grant>>>,
    loaded_at: Option<Instant>,
}

impl LiveGrants {
    /// The grants that may cover `agent`'s next submission (the caller checks which do).
    pub async fn for_agent(
        &self,
        store: &dyn Store,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Arc<Grant>>, StoreError> {
        if self.stale() {
            self.reload(store, now).await?;
        }
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        Ok(cache.by_agent.get(agent).cloned().unwrap_or_default())
    }

    fn stale(&self) -> bool {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.loaded_at.is_none_or(|at| at.elapsed() >= FRESH_FOR)
    }

    /// Reads every live grant from the store.
    async fn reload(&self, store: &dyn Store, now: DateTime<Utc>) -> Result<(), StoreError> {
        let _one_at_a_time = self.reload.lock().await;
        if !self.stale() {
            return Ok(());
        }
        let records = store
            .grants(GrantQuery {
                agent: None,
                live_at: Some(now),
            })
            .await?;
        let mut by_agent: HashMap<String, Vec<Arc<Grant>>> = HashMap::new();
        for record in &records {
            if let Some(grant) = record.to_grant() {
                by_agent
                    .entry(grant.agent.to_string())
                    .or_default()
                    .push(Arc::new(grant));
            }
        }
        for grants in by_agent.values_mut() {
            grants.sort_by_key(|g| g.expires_at);
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        *cache = Cache {
            by_agent,
            loaded_at: Some(Instant::now()),
        };
        Ok(())
    }

    /// A grant just given.
    pub fn put(&self, record: &GrantRecord) {
        let Some(grant) = record.to_grant() else {
            return;
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let grants = cache.by_agent.entry(grant.agent.to_string()).or_default();
        grants.push(Arc::new(grant));
        grants.sort_by_key(|g| g.expires_at);
    }

    /// Grants that cover nothing any more (revoked, or found used up or expired by the
    /// store).
    pub fn forget(&self, agent: &str, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if let Some(grants) = cache.by_agent.get_mut(agent) {
            grants.retain(|g| !ids.contains(&g.id));
        }
    }
}

/// A grant someone asks to give, as sent.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    pub agent: String,
    pub actions: String,
    pub when: Option<String>,
    /// How long it runs: `30m`, `1h`, `7d` (at most 30 days).
    pub duration: String,
    pub max_uses: Option<u32>,
    pub reason: Option<String>,
}

/// Gives a grant if `giver` may: a reviewer or admin who could approve what it covers under
/// the policy in force, who does not answer for the agent, for an agent that exists.
pub async fn give(
    state: &AppState,
    giver: Actor,
    role: Role,
    request: GrantRequest,
) -> Result<(GrantRecord, Scope), AppError> {
    if !matches!(role, Role::Reviewer | Role::Admin) {
        return Err(AppError::forbidden(
            "wrong_role",
            format!(
                "giving a grant needs a token with role reviewer or admin; this token's role is {role}"
            ),
        ));
    }
    let agent = AgentName::parse(&request.agent).map_err(|e| {
        AppError::invalid(
            "invalid_agent_name",
            format!("invalid agent name {:?}: {e}", request.agent),
        )
    })?;
    let agent = countersign_core::name::Name::parse(agent.as_str())
        .map_err(|e| AppError::invalid("invalid_agent_name", e.to_string()))?;
    if request.actions.len() > MAX_PATTERN_BYTES {
        return Err(AppError::invalid(
            "invalid_actions",
            format!(
                "the action pattern is {} bytes; at most {MAX_PATTERN_BYTES}",
                request.actions.len()
            ),
        ));
    }
    let actions =
        Glob::parse(&request.actions, is_action_name_char, ACTION_NAME_CHARS).map_err(|e| {
            AppError::invalid(
                "invalid_actions",
                format!("invalid action pattern {:?}: {e}", request.actions),
            )
        })?;
    if let Some(when) = &request.when {
        if when.len() > MAX_CONDITION_BYTES {
            return Err(AppError::invalid(
                "invalid_condition",
                format!(
                    "the condition is {} bytes; at most {MAX_CONDITION_BYTES}",
                    when.len()
                ),
            ));
        }
        Condition::compile(when).map_err(|errors| {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            AppError::invalid(
                "invalid_condition",
                format!("invalid condition {when:?}: {}", errors.join("; ")),
            )
        })?;
    }
    let duration: ReviewDuration = request.duration.parse().map_err(|e| {
        AppError::invalid("invalid_duration", format!("invalid grant duration: {e}"))
    })?;
    if duration.seconds() > MAX_GRANT_SECONDS {
        return Err(AppError::invalid(
            "invalid_duration",
            format!(
                "a grant runs at most 30d; {:?} is longer (give a new one when it ends)",
                request.duration
            ),
        ));
    }
    if let Some(uses) = request.max_uses
        && !(1..=MAX_GRANT_USES).contains(&uses)
    {
        return Err(AppError::invalid(
            "invalid_max_uses",
            format!("max_uses must be 1 to {MAX_GRANT_USES}, found {uses}"),
        ));
    }
    if let Some(reason) = &request.reason
        && reason.len() > MAX_REASON_BYTES
    {
        return Err(AppError::invalid(
            "reason_too_long",
            format!(
                "the reason is {} bytes; at most {MAX_REASON_BYTES}",
                reason.len()
            ),
        ));
    }

    // The agent must exist, and its owner may not give it anything.
    let tokens = state.store().tokens().await?;
    let agent_tokens: Vec<_> = tokens
        .iter()
        .filter(|t| t.role == Role::Agent && t.name == agent)
        .collect();
    if agent_tokens.is_empty() {
        return Err(AppError::invalid(
            "unknown_agent",
            format!("no agent is named {agent}: a grant names an agent that has a token"),
        ));
    }
    let owners: Vec<_> = agent_tokens
        .iter()
        .filter_map(|t| t.owner.clone())
        .collect();
    let policy = state.policy().current();
    let mut scope = None;
    // Every owner any of its tokens names is refused, not just the first.
    for owner in owners
        .iter()
        .map(Some)
        .chain(owners.is_empty().then_some(None))
    {
        scope = Some(
            may_give(
                &policy,
                &agent,
                owner,
                &actions,
                &giver.name,
                &giver.groups,
                giver.admin,
            )
            .map_err(refused)?,
        );
    }
    let scope = scope.expect("at least one pass");

    let now = state.clock().now();
    let live = state
        .store()
        .grants(GrantQuery {
            agent: Some(agent.clone()),
            live_at: Some(now),
        })
        .await?;
    if live.len() >= MAX_LIVE_GRANTS_PER_AGENT {
        return Err(AppError::conflict(
            "too_many_grants",
            format!(
                "agent {agent} holds {} live grants, the most it may; revoke one first",
                live.len()
            ),
        ));
    }
    let record = state
        .store()
        .create_grant(NewGrant {
            agent,
            actions,
            condition: request.when,
            expires_at: now + duration.as_chrono(),
            max_uses: request.max_uses,
            reason: request.reason,
            granted_by: giver,
            at: now,
        })
        .await?;
    state.grants().put(&record);
    tracing::info!(id = %record.id, agent = %record.agent, actions = %record.actions,
        by = %record.granted_by, "grant given");
    Ok((record, scope))
}

/// Revokes a grant: from the next submission on it covers nothing.
pub async fn revoke(state: &AppState, id: &str, actor: Actor) -> Result<GrantRecord, AppError> {
    let record = state
        .store()
        .revoke_grant(id.to_owned(), actor, state.clock().now())
        .await?;
    state
        .grants()
        .forget(record.agent.as_str(), std::slice::from_ref(&record.id));
    Ok(record)
}

fn refused(refusal: Refused) -> AppError {
    let message = refusal.to_string();
    match refusal {
        Refused::Owner { .. } => AppError::forbidden("owner_may_not_grant", message),
        Refused::NotAnApprover { .. } => AppError::forbidden("not_an_approver", message),
        Refused::NothingToGrant { .. } => AppError::invalid("nothing_to_grant", message),
    }
}
