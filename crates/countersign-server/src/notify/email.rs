//! Email notifications over SMTP with lettre: STARTTLS (required) or implicit TLS, with
//! credentials from the config or the environment; a plain-text and an HTML part with the
//! same essentials and the link to the action (which opens it; it decides nothing).

use chrono::{DateTime, Utc};
use countersign_core::notify::time_left;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::config::{Email, SmtpTls};

/// A target's SMTP connection pool and addresses.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    pub fn new(
        email: &Email,
        timeout: std::time::Duration,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Mailer, String> {
        let builder = match email.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&email.host)
                .map_err(|e| format!("SMTP server {}: {e}", email.host))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&email.host)
                .map_err(|e| format!("SMTP server {}: {e}", email.host))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host),
        };
        let mut builder = builder.port(email.port).timeout(Some(timeout));
        if let (Some(username), Some(password)) = (&email.username, &email.password) {
            builder = builder.credentials(Credentials::new(
                username.resolve(var)?,
                password.resolve(var)?,
            ));
        }
        let parse = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| format!("{text:?} is not an address ({e})"))
        };
        Ok(Mailer {
            transport: builder.build(),
            from: parse(&email.from)?,
            to: email
                .to
                .iter()
                .map(|t| parse(t))
                .collect::<Result<_, _>>()?,
        })
    }

    pub async fn send(
        &self,
        event_id: &str,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let (subject, plain, html) = render(payload, now);
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            // The stable event id: a retried message is recognisably the same one.
            .message_id(Some(format!("<{event_id}@countersign>")));
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .multipart(MultiPart::alternative_plain_html(plain, html))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Subject, plain text and HTML of an event payload.
pub fn render(payload: &Value, now: DateTime<Utc>) -> (String, String, String) {
    let data = &payload["data"];
    if data["event"] == "graduation_regressed" {
        return render_regression(data);
    }
    let action = &data["action"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let headline: String = text(&data["text"]).chars().take(200).collect();
    // One line: an agent's text must not add header lines.
    let subject = format!("[Countersign] {}", headline.replace(['\r', '\n'], " "));
    let open = matches!(
        data["event"].as_str(),
        Some("pending" | "reminder" | "escalated")
    );
    let mut rows: Vec<(&str, String)> = vec![
        ("Action", text(&action["action"])),
        ("Agent", text(&action["agent"])),
        (
            "Tier",
            match action["rule"].as_str() {
                Some(rule) => format!("{} (rule \"{rule}\")", text(&action["tier"])),
                None => format!("{} (policy default)", text(&action["tier"])),
            },
        ),
        ("Status", text(&data["status_detail"])),
        ("Arguments", text(&data["args_summary"])),
        ("Why it needs a person", text(&action["reason"])),
    ];
    if open
        && let Some(deadline) = action["deadline"]
            .as_str()
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
    {
        rows.push(("Time left", time_left(deadline.with_timezone(&Utc), now)));
    }
    if let Some(reasoning) = action["reasoning"].as_str() {
        rows.push(("The agent's reasoning", reasoning.to_owned()));
    }
    if action["context"].as_object().is_some_and(|c| !c.is_empty()) {
        rows.push(("Context", text(&data["context_summary"])));
    }
    let url = data["url"].as_str();
    let mut plain = format!("{headline}\n\n");
    for (key, value) in &rows {
        plain.push_str(&format!("{key}: {value}\n"));
    }
    let mut html = format!(
        "<!doctype html><html><body><p><strong>{}</strong></p><table>",
        html_escape(&headline)
    );
    for (key, value) in &rows {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html_escape(key),
            html_escape(value)
        ));
    }
    html.push_str("</table>");
    if let Some(url) = url {
        let verb = if open { "Review it" } else { "Open it" };
        plain.push_str(&format!(
            "\n{verb} in Countersign (you sign in there): {url}\n"
        ));
        html.push_str(&format!(
            "<p><a href=\"{}\">{verb} in Countersign</a> (you sign in there; the link decides nothing by itself)</p>",
            html_escape(url)
        ));
    }
    html.push_str("</body></html>");
    (subject, plain, html)
}

/// A graduated rule regressed: the evidence, and the revert's diff ready to apply.
fn render_regression(data: &Value) -> (String, String, String) {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let headline: String = text(&data["text"]).chars().take(200).collect();
    let subject = format!("[Countersign] {}", headline.replace(['\r', '\n'], " "));
    let revert = &data["revert"];
    let rows = [
        ("Rule", text(&data["rule"])),
        ("Action", text(&data["action"])),
        ("Evidence", text(&data["evidence_text"])),
        ("Why", text(&data["summary"])),
        (
            "Revert",
            format!("{} → {}", text(&revert["from"]), text(&revert["to"])),
        ),
    ];
    let diff = match revert["diff"].as_str() {
        Some(diff) => diff.to_owned(),
        None => format!(
            "the revert could not be drafted: {}",
            revert["error"].as_str().unwrap_or("unknown")
        ),
    };
    let mut plain = format!("{headline}\n\n");
    let mut html = format!(
        "<!doctype html><html><body><p><strong>{}</strong></p><table>",
        html_escape(&headline)
    );
    for (key, value) in &rows {
        plain.push_str(&format!("{key}: {value}\n"));
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            html_escape(key),
            html_escape(value)
        ));
    }
    plain.push_str(&format!(
        "\nThe revert, ready to apply (`countersign policy suggest` writes it):\n\n{diff}\n"
    ));
    html.push_str(&format!(
        "</table><p>The revert, ready to apply (<code>countersign policy suggest</code> writes it):</p><pre>{}</pre>",
        html_escape(&diff)
    ));
    if let Some(url) = data["url"].as_str() {
        plain.push_str(&format!("\nOpen Countersign (you sign in there): {url}\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\">Open Countersign</a> (you sign in there)</p>",
            html_escape(url)
        ));
    }
    html.push_str("</body></html>");
    (subject, plain, html)
}
