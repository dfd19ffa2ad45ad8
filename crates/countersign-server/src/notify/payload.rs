//! What an event says, and where it goes: the [`EventRouter`] the store calls inside the
//! write transaction of each change. It picks the targets whose audience hears the event
//! (and the agent's callback, for final events) and renders the payload once, in the shape
//! Standard Webhooks recommends (`type`, `timestamp`, `data`); Slack and email messages are
//! rendered from the same payload when they are sent.

use countersign_core::notify::{EventKind, status_detail, when};
use countersign_core::summary::args_summary;
use countersign_store::{Destination, Event, EventRouter, RegressionEvent, Routed};
use reqwest::Url;
use serde_json::{Value, json};

use super::config::Target;
use crate::views::ActionView;

/// The lane of callbacks to one origin: each agent endpoint has its own concurrency, so a
/// hanging one holds up no other.
pub fn callback_lane(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => format!("callback {}", url.origin().ascii_serialization()),
        Err(_) => "callback".to_owned(),
    }
}

/// The targets of the configuration, as the writer consults them.
pub struct Router {
    pub targets: Vec<Target>,
    /// Where reviewers open an action (`public_url`), if configured.
    pub public_url: Option<Url>,
    /// Whether callbacks are sent at all.
    pub callbacks: bool,
}

impl Router {
    /// The page where a reviewer opens the action (signed in): links decide nothing.
    pub fn action_url(&self, id: &str) -> Option<String> {
        let base = self.public_url.as_ref()?;
        base.join(&format!("actions/{id}")).ok().map(String::from)
    }
}

impl EventRouter for Router {
    fn route(&self, event: &Event<'_>) -> Option<Routed> {
        let gate = &event.record.gate;
        let mut destinations: Vec<Destination> = self
            .targets
            .iter()
            .filter(|target| target.audience.hears(event.kind, gate))
            .map(|target| Destination {
                target: target.name.clone(),
                lane: target.name.clone(),
                url: None,
            })
            .collect();
        if self.callbacks
            && let Some(url) = event.callback_url
        {
            destinations.push(Destination {
                target: "callback".to_owned(),
                lane: callback_lane(url),
                url: Some(url.to_owned()),
            });
        }
        if destinations.is_empty() {
            return None;
        }
        Some(Routed {
            body: render(event, self.action_url(&event.record.id)).to_string(),
            destinations,
        })
    }

    fn route_regression(&self, event: &RegressionEvent<'_>) -> Option<Routed> {
        let destinations: Vec<Destination> = self
            .targets
            .iter()
            .filter(|target| target.audience.hears_regression(&event.regression.action))
            .map(|target| Destination {
                target: target.name.clone(),
                lane: target.name.clone(),
                url: None,
            })
            .collect();
        if destinations.is_empty() {
            return None;
        }
        // The queue, where signed-in reviewers see the regression's warning.
        let url = self.public_url.as_ref().map(|u| u.as_str().to_owned());
        Some(Routed {
            body: render_regression(event, url).to_string(),
            destinations,
        })
    }
}

/// The payload of a regression: the evidence and the revert as the audit entry records
/// them (`graduation_watch::regression_body`), and the words for them.
pub fn render_regression(event: &RegressionEvent<'_>, url: Option<String>) -> Value {
    let regression = event.regression;
    let body = &regression.body;
    let revert = &body["revert"];
    let (from, to) = (
        revert["from"].as_str().unwrap_or("logged"),
        revert["to"].as_str().unwrap_or("approve"),
    );
    let text = format!(
        "Graduated rule “{}” regressed for {}: post-hoc reviewers flagged too many of its actions; the revert ({from} → {to}) is ready",
        regression.rule, regression.action
    );
    json!({
        "type": "graduation.regressed",
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "event": EventKind::GraduationRegressed.as_str(),
            "text": text,
            "rule": regression.rule,
            "action": regression.action,
            "policy_hash": regression.policy_hash,
            "evidence": {
                "reviewed": body["reviewed"],
                "flagged": body["flagged"],
                "flag_rate": body["flag_rate"],
                "flag_lower_bound": body["flag_lower_bound"],
                "target": body["target"],
                "min_reviews": body["min_reviews"],
                "window_days": body["window_days"],
            },
            "evidence_text": evidence_text(body),
            "summary": body["summary"],
            "revert": revert,
            "url": url,
        }
    })
}

/// The evidence in one sentence: "5 of 20 reviewed actions flagged (25%; at least 9% with
/// 95% confidence) over 30 days, target 5%".
fn evidence_text(body: &Value) -> String {
    let number = |key: &str| body[key].as_f64().unwrap_or(0.0);
    let percent = |key: &str| format!("{:.0}%", number(key) * 100.0);
    format!(
        "{} of {} reviewed actions flagged ({}; at least {} with 95% confidence) over {} days, target {}",
        number("flagged"),
        number("reviewed"),
        percent("flag_rate"),
        percent("flag_lower_bound"),
        number("window_days"),
        percent("target"),
    )
}

/// The payload: the event, the action as the API shows it, and the words for it.
pub fn render(event: &Event<'_>, url: Option<String>) -> Value {
    let record = event.record;
    let gate = &record.gate;
    let detail = status_detail(gate, record.created_at);
    let subject = format!("{} by {}", gate.action, gate.agent);
    let deadline = gate.deadline.map(when).unwrap_or_default();
    let text = match event.kind {
        EventKind::Pending => format!(
            "{subject} waits for {}; deadline {deadline}",
            gate.deciders()
        ),
        EventKind::Reminder => format!(
            "Reminder: {subject} still waits for {}; deadline {deadline}",
            gate.deciders()
        ),
        EventKind::Escalated => format!(
            "Escalated: nobody answered {subject} in time; {} may decide now, deadline {deadline}",
            gate.deciders()
        ),
        EventKind::Expired
        | EventKind::Decided
        | EventKind::Cancelled
        | EventKind::GraduationRegressed => format!("{subject}: {detail}"),
    };
    json!({
        "type": format!("action.{}", event.kind),
        "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "event": event.kind.as_str(),
            "text": text,
            "status_detail": detail,
            "args_summary": args_summary(&gate.args, 200),
            "context_summary": args_summary(&record.context, 200),
            "url": url,
            "action": ActionView::from(record),
        }
    })
}
