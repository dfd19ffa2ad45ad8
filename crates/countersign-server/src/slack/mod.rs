//! Approving from Slack, safely: the interactivity endpoint of a Slack app.
//!
//! A click is trusted only as far as Slack's signature vouches for it (`signature.rs`):
//! which Slack user clicked which button. Who that user is here comes from Countersign's
//! own links (`countersign user link NAME --slack U0123`), and what they may do from the
//! person's live tokens; the verdict then goes through [`crate::decision::decide`], the
//! function behind `POST /v1/actions/{id}/decisions`, so approver groups, the owner rule,
//! one approval per person, `confirm`'s re-typed name and a modify's reclassification are
//! checked exactly as for the API — on the server, whoever can see the message (a Slack
//! approval handler elsewhere let "any channel member" approve; landscape §6).
//!
//! An unknown or unauthorised user gets an ephemeral refusal and nothing changes. Reject
//! asks for a reason, `confirm` for the re-typed name and Modify for the new arguments, in
//! a modal (`views.open`, which needs the bot token); without one, the user is sent to the
//! action's page. The original message is replaced with the outcome once the action is
//! decided. The audit entry of the decision records the channel (`slack`) and the Slack
//! workspace and user next to the person's name.

pub mod signature;
mod views;

use countersign_core::lifecycle::{Reviewer, Verdict};
use countersign_core::name::Name;
use countersign_core::notify::status_detail;
use countersign_core::tier::{Status, Tier};
use countersign_store::{ActionRecord, Actor};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::decision::{self, VerdictRequest};
use crate::error::AppError;
use crate::notify::slack_message::{APPROVE, MODIFY, OPEN, REJECT};
use crate::notify::{Notifications, Slack};
use crate::state::AppState;

/// What Slack posts, as far as Countersign reads it.
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    team: Option<Id>,
    user: Option<Id>,
    trigger_id: Option<String>,
    response_url: Option<String>,
    #[serde(default)]
    actions: Vec<Clicked>,
    view: Option<View>,
}

#[derive(Debug, Deserialize)]
struct Id {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Clicked {
    action_id: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct View {
    callback_id: String,
    #[serde(default)]
    private_metadata: String,
    state: Option<ViewState>,
}

#[derive(Debug, Deserialize)]
struct ViewState {
    #[serde(default)]
    values: Map<String, Value>,
}

/// What a modal carries from the click to its submission (set by Countersign, returned by
/// Slack inside a signed request).
#[derive(Debug, serde::Serialize, Deserialize)]
struct Metadata {
    action: String,
    response_url: Option<String>,
}

/// The parsed form: `payload=<JSON>`.
fn payload(body: &[u8]) -> Result<Interaction, AppError> {
    let text = form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| {
            AppError::bad_request("invalid_payload", "expected a form with a `payload` field")
        })?;
    serde_json::from_str(&text).map_err(|e| {
        AppError::bad_request(
            "invalid_payload",
            format!("the payload is not an interaction Countersign understands: {e}"),
        )
    })
}

/// Handles a request whose signature was verified; answers the JSON Slack gets back.
pub(crate) async fn handle(
    state: &AppState,
    notifications: &Notifications,
    slack: &Slack,
    body: &[u8],
) -> Result<Value, AppError> {
    let interaction = payload(body)?;
    let team = interaction.team.as_ref().map_or("", |t| t.id.as_str());
    let Some(user) = interaction.user.as_ref().map(|u| u.id.clone()) else {
        return Err(AppError::bad_request(
            "invalid_payload",
            "the interaction names no user",
        ));
    };
    let context = Context {
        state,
        notifications,
        slack,
        team: team.to_owned(),
        user,
    };
    match interaction.kind.as_str() {
        "block_actions" => {
            let response_url = interaction
                .response_url
                .as_deref()
                .and_then(|u| context.response_url(u));
            if let Some(text) = context.refusal_for_workspace() {
                context.reply(response_url.as_ref(), views::refusal(&text));
                return Ok(json!({}));
            }
            for clicked in &interaction.actions {
                context
                    .clicked(
                        clicked,
                        interaction.trigger_id.as_deref(),
                        response_url.as_ref(),
                    )
                    .await?;
            }
            Ok(json!({}))
        }
        "view_submission" => {
            let view = interaction.view.as_ref().ok_or_else(|| {
                AppError::bad_request("invalid_payload", "a view submission without its view")
            })?;
            if let Some(text) = context.refusal_for_workspace() {
                return Ok(views::errors("reason", &text));
            }
            context.submitted(view).await
        }
        // Other interactions (a modal closed, a shortcut) change nothing.
        _ => Ok(json!({})),
    }
}

struct Context<'a> {
    state: &'a AppState,
    notifications: &'a Notifications,
    slack: &'a Slack,
    team: String,
    user: String,
}

/// Who a click is, once linked: the person, with the authority of their live tokens.
enum Who {
    Person(Actor),
    Refused(String),
}

impl Context<'_> {
    fn refusal_for_workspace(&self) -> Option<String> {
        let expected = self.slack.team_id.as_deref()?;
        (expected != self.team).then(|| {
            "this Countersign takes approvals from one Slack workspace only; nothing was changed"
                .to_owned()
        })
    }

    /// Slack's `response_url`, if it goes where Slack's responses go (or to the configured
    /// API base, which tests point at a local fake): never anywhere a payload says.
    fn response_url(&self, text: &str) -> Option<Url> {
        let url = Url::parse(text).ok()?;
        let api = &self.slack.api_base_url;
        let slack_hooks = url.scheme() == "https" && url.host_str() == Some("hooks.slack.com");
        (slack_hooks || url.origin() == api.origin()).then_some(url)
    }

    async fn who(&self) -> Result<Who, AppError> {
        let person = self.state.store().slack_person(&self.user).await?;
        Ok(match person {
            None => Who::Refused(format!(
                "your Slack account ({}) is not linked to a Countersign reviewer, so you cannot decide here; an admin can link it with `countersign user link NAME --slack {}`; nothing was changed",
                self.user, self.user
            )),
            Some(person) if !person.active => Who::Refused(format!(
                "{} has no live reviewer token, so cannot decide; nothing was changed",
                person.name
            )),
            Some(person) => Who::Person(Actor {
                name: person.name,
                groups: person.groups,
                token_id: Some(format!("slack:{}:{}", self.team, self.user)),
                admin: person.admin,
            }),
        })
    }

    /// Whether `actor` may decide on `record` at all, before asking for more in a modal
    /// (the decision itself checks again, inside the store's writer).
    fn may_decide(actor: &Actor, record: &ActionRecord) -> Result<(), String> {
        record
            .gate
            .may_decide(&Reviewer {
                name: &actor.name,
                groups: &actor.groups,
                admin: actor.admin,
            })
            .map_err(|e| format!("{e}; nothing was changed"))
    }

    async fn clicked(
        &self,
        clicked: &Clicked,
        trigger_id: Option<&str>,
        response_url: Option<&Url>,
    ) -> Result<(), AppError> {
        if clicked.action_id == OPEN {
            return Ok(());
        }
        let verdict = match clicked.action_id.as_str() {
            APPROVE => Verdict::Approve,
            REJECT => Verdict::Reject,
            MODIFY => Verdict::Modify,
            _ => return Ok(()),
        };
        let id = clicked.value.clone().unwrap_or_default();
        let actor = match self.who().await? {
            Who::Person(actor) => actor,
            Who::Refused(text) => {
                self.reply(response_url, views::refusal(&text));
                return Ok(());
            }
        };
        let Some(record) = self.state.store().action(&id).await? else {
            self.reply(
                response_url,
                views::refusal(&format!("there is no action {id:?}; nothing was changed")),
            );
            return Ok(());
        };
        if let Err(text) = Self::may_decide(&actor, &record) {
            self.reply(response_url, views::refusal(&text));
            return Ok(());
        }
        let metadata = Metadata {
            action: id.clone(),
            response_url: response_url.map(|u| u.to_string()),
        };
        let modal = match verdict {
            Verdict::Approve if record.gate.tier != Tier::Confirm => {
                let request = VerdictRequest {
                    verdict,
                    args: None,
                    reason: None,
                    confirm: None,
                };
                // The outcome or the refusal goes to Slack through the response URL.
                let _outcome = self.decide(actor, id, request, response_url).await?;
                return Ok(());
            }
            Verdict::Approve => views::confirm_modal(&record, &metadata),
            Verdict::Reject => views::reject_modal(&record, &metadata),
            Verdict::Modify => views::modify_modal(&record, &metadata),
        };
        let opened = match (trigger_id, &self.slack.bot_token) {
            (Some(trigger), Some(token)) => self.open_view(token, trigger, modal).await,
            (_, None) => Err("this Countersign has no Slack bot token to open a form with".into()),
            (None, _) => Err("Slack sent no trigger to open a form with".into()),
        };
        if let Err(why) = opened {
            let what = match verdict {
                Verdict::Approve => "approving it needs its name re-typed",
                Verdict::Reject => "rejecting it needs a reason",
                Verdict::Modify => "modifying it needs the new arguments",
            };
            let link = self
                .notifications
                .action_url(&id)
                .map(|url| format!(": open it in Countersign, <{url}|here>"))
                .unwrap_or_default();
            self.reply(
                response_url,
                views::refusal(&format!("{what} ({why}){link}; nothing was changed")),
            );
        }
        Ok(())
    }

    async fn open_view(&self, token: &str, trigger_id: &str, view: Value) -> Result<(), String> {
        let url = self
            .slack
            .api_base_url
            .join("views.open")
            .map_err(|e| e.to_string())?;
        let answer = self
            .notifications
            .interactive_client()
            .post(url)
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(5))
            .json(&json!({"trigger_id": trigger_id, "view": view}))
            .send()
            .await
            .map_err(|e| format!("Slack's views.open failed: {}", e.without_url()))?;
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("Slack's views.open answered: {}", e.without_url()))?;
        if body["ok"] == true {
            Ok(())
        } else {
            Err(format!(
                "Slack's views.open answered {}",
                body["error"].as_str().unwrap_or("an error")
            ))
        }
    }

    /// Applies the verdict through the API's own path; refusals go back to the user alone.
    async fn decide(
        &self,
        actor: Actor,
        id: String,
        request: VerdictRequest,
        response_url: Option<&Url>,
    ) -> Result<Result<ActionRecord, String>, AppError> {
        let verdict = request.verdict;
        match decision::decide(self.state, actor.clone(), id, request).await {
            Ok(record) => {
                tracing::info!(id = %record.id, reviewer = %actor.name, slack_user = %self.user,
                    verdict = verdict.as_str(), "decision from Slack");
                if record.gate.status == Status::Pending {
                    let detail = status_detail(&record.gate, record.created_at);
                    self.reply(
                        response_url,
                        views::refusal(&format!("your {} is recorded; {detail}", verdict.as_str())),
                    );
                } else {
                    self.reply(response_url, views::outcome(&record, self.notifications));
                }
                Ok(Ok(record))
            }
            Err(error) if error.status.is_client_error() => {
                let text = format!("{}; nothing was changed", error.message);
                self.reply(response_url, views::refusal(&text));
                Ok(Err(text))
            }
            Err(error) => Err(error),
        }
    }

    async fn submitted(&self, view: &View) -> Result<Value, AppError> {
        let (verdict, main_block) = match view.callback_id.as_str() {
            views::REJECT_VIEW => (Verdict::Reject, "reason"),
            views::CONFIRM_VIEW => (Verdict::Approve, "confirm"),
            views::MODIFY_VIEW => (Verdict::Modify, "args"),
            _ => return Ok(json!({})),
        };
        let metadata: Metadata = serde_json::from_str(&view.private_metadata).map_err(|_| {
            AppError::bad_request(
                "invalid_payload",
                "the form's metadata is not Countersign's",
            )
        })?;
        let response_url = metadata
            .response_url
            .as_deref()
            .and_then(|u| self.response_url(u));
        let actor = match self.who().await? {
            Who::Person(actor) => actor,
            Who::Refused(text) => return Ok(views::errors(main_block, &text)),
        };
        let values = view.state.as_ref().map(|s| &s.values);
        let input = |block: &str| -> Option<String> {
            values?
                .get(block)?
                .get(block)?
                .get("value")?
                .as_str()
                .map(str::to_owned)
                .filter(|v| !v.trim().is_empty())
        };
        let args = match verdict {
            Verdict::Modify => {
                let text = input("args").unwrap_or_default();
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => Some(map),
                    _ => {
                        return Ok(views::errors(
                            "args",
                            "expected the arguments as one JSON object, like {\"amount\": 100}",
                        ));
                    }
                }
            }
            _ => None,
        };
        let reason = input("reason");
        if verdict == Verdict::Reject && reason.is_none() {
            return Ok(views::errors(
                "reason",
                "a rejection needs a reason: the agent reads it",
            ));
        }
        let request = VerdictRequest {
            verdict,
            args,
            reason,
            confirm: input("confirm"),
        };
        match self
            .decide(actor, metadata.action, request, response_url.as_ref())
            .await?
        {
            Ok(_) => Ok(json!({"response_action": "clear"})),
            Err(text) => Ok(views::errors(main_block, &text)),
        }
    }

    /// Posts to Slack's `response_url` on its own task: Slack wants its answer within three
    /// seconds, and a slow Slack must not hold the request.
    fn reply(&self, response_url: Option<&Url>, message: Value) {
        let Some(url) = response_url.cloned() else {
            return;
        };
        let http = self.notifications.interactive_client().clone();
        tokio::spawn(async move {
            let sent = http
                .post(url)
                .timeout(std::time::Duration::from_secs(10))
                .json(&message)
                .send()
                .await;
            if let Err(error) = sent {
                tracing::warn!(error = %error.without_url(), "cannot answer Slack");
            }
        });
    }
}

/// The person a Slack user id may be linked to: Slack's ids are upper-case letters and
/// digits starting with U or W.
pub fn parse_slack_user(text: &str) -> Result<String, String> {
    let valid = (3..=32).contains(&text.len())
        && (text.starts_with('U') || text.starts_with('W'))
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "expected a Slack user id like U0123ABCD (profile → ⋮ → Copy member ID), found {text:?}"
        ))
    }
}

/// A person's name as `user link` takes it.
pub fn parse_person(text: &str) -> Result<Name, String> {
    Name::parse(text).map_err(|e| format!("invalid name {text:?}: {e}"))
}
