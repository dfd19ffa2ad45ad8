//! Classifying hypothetical actions without storing them: what the policy in force would
//! answer to a submission. The MCP gating proxy asks this for every tool a server lists, so
//! that it can hide the tools the policy denies; nothing is audited, because nothing runs.

use axum::Json;
use axum::extract::State;
use countersign_core::{ActionName, AgentName, Confidence, ProposedAction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{AppError, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::actions::check_args_size;
use crate::state::AppState;
use crate::views::HintsBody;

/// The most actions one request may classify: a server listing more tools than this is
/// asked about in several requests.
pub const MAX_CLASSIFY_ACTIONS: usize = 1000;

/// `POST /v1/policy/classify`: the actions to classify, as they would be submitted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyBody {
    /// At most 1000 hypothetical actions.
    #[schema(max_items = 1000)]
    pub actions: Vec<HypotheticalAction>,
}

/// One hypothetical submission: the fields of `POST /v1/actions` that the policy reads.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HypotheticalAction {
    #[schema(
        pattern = r"^[A-Za-z0-9._:/-]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    pub action: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub args: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: Option<f64>,
    #[serde(default, deserialize_with = "crate::views::hints_object")]
    pub hints: Option<HintsBody>,
}

/// The answer: one classification per action, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClassifyAnswer {
    pub results: Vec<ClassificationView>,
}

/// What a submission of that action would get now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClassificationView {
    pub action: String,
    /// `auto`, `logged`, `approve`, `confirm` or `deny`.
    pub tier: String,
    /// The status a submission would start in: `allowed`, `pending` or `denied`.
    pub status: String,
    pub rule: Option<String>,
    pub reason: String,
}

/// Classifies hypothetical actions of the calling agent by the policy in force, storing
/// nothing.
#[utoipa::path(
    post, path = "/v1/policy/classify", tag = "actions",
    request_body = ClassifyBody,
    responses(
        (status = 200, description = "One classification per action, in order", body = ClassifyAnswer),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Only agent tokens classify (as themselves)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "An invalid action name or confidence, arguments too large, more than 1000 actions, or a body of the wrong shape", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn classify(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ClassifyBody>,
) -> Result<Json<ClassifyAnswer>, AppError> {
    caller.require_agent("classifying actions")?;
    if body.actions.len() > MAX_CLASSIFY_ACTIONS {
        return Err(AppError::invalid(
            "too_many_actions",
            format!(
                "{} actions in one request; at most {MAX_CLASSIFY_ACTIONS} are classified at once",
                body.actions.len()
            ),
        ));
    }
    let agent = AgentName::parse(caller.name()).map_err(|e| {
        AppError::invalid(
            "invalid_agent_name",
            format!("this token's name cannot name an agent: {e}"),
        )
    })?;
    let policy = state.policy().current();
    let now = state.clock().now();
    let mut results = Vec::with_capacity(body.actions.len());
    for (index, item) in body.actions.into_iter().enumerate() {
        let action = ActionName::parse(&item.action).map_err(|e| {
            AppError::invalid(
                "invalid_action_name",
                format!(
                    "actions[{index}]: invalid action name {:?}: {e}",
                    item.action
                ),
            )
        })?;
        let confidence = item
            .confidence
            .map(Confidence::new)
            .transpose()
            .map_err(|e| {
                AppError::invalid("invalid_confidence", format!("actions[{index}]: {e}"))
            })?;
        let args = item.args.unwrap_or_default();
        check_args_size(&state, &args)?;
        let proposal = ProposedAction {
            action,
            agent: agent.clone(),
            args,
            reasoning: None,
            context: item.context.unwrap_or_default(),
            confidence,
            hints: item.hints.unwrap_or_default().into(),
            idempotency_key: None,
        };
        let classification = policy.classify(&proposal, now);
        results.push(ClassificationView {
            action: item.action,
            tier: classification.tier.as_str().to_owned(),
            status: classification.tier.initial_status().as_str().to_owned(),
            rule: policy.rule_name(&classification).map(str::to_owned),
            reason: policy.reason(&classification),
        });
    }
    Ok(Json(ClassifyAnswer { results }))
}
