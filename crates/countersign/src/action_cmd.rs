//! The client commands about actions: `submit`, `show`, `queue`, `approve`, `reject` and
//! `modify`, with the exit codes of SPEC section 4 for `--wait`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use countersign_core::Status;
use countersign_server::views::{
    ActionPage, ActionView, DecisionBody, StatusView, SubmitBody, VerdictView,
};

use crate::client::{Client, ServerArgs, block_on, json_object};

use crate::output;

/// The longest single long-poll asked of the server; longer waits are several polls.
const POLL_SECONDS: u64 = 300;

#[derive(Args)]
pub struct SubmitArgs {
    /// The action name, e.g. refund.create.
    #[arg(long)]
    action: String,
    /// The arguments, a JSON object.
    #[arg(long)]
    args: Option<String>,
    /// Why the agent wants to do it.
    #[arg(long)]
    reasoning: Option<String>,
    /// Context for the reviewer, a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// The agent's confidence, 0 to 1.
    #[arg(long)]
    confidence: Option<f64>,
    /// Makes retries safe: the same key and body give the same action.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Where the server POSTs the final status (signed); must match the server's
    /// `callback_allow`.
    #[arg(long, value_name = "URL")]
    callback_url: Option<String>,
    /// Wait up to this many seconds for a decision. Exit 0: may run; 2: may not; 3: still
    /// pending.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the action as JSON.
    #[arg(long)]
    json: bool,
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let body = SubmitBody {
        action: args.action,
        args: args
            .args
            .as_deref()
            .map(|text| json_object("--args", text))
            .transpose()?,
        reasoning: args.reasoning,
        context: args
            .context
            .as_deref()
            .map(|text| json_object("--context", text))
            .transpose()?,
        confidence: args.confidence,
        hints: None,
        idempotency_key: args.idempotency_key,
        callback_url: args.callback_url,
    };
    let client = Client::new(&args.server)?;
    block_on(async {
        let action = client.post(&["v1", "actions"], &body).await?;
        finish(&client, action, args.wait, args.json).await
    })?
}

#[derive(Args)]
pub struct ShowArgs {
    /// The action id.
    id: String,
    /// Wait up to this many seconds for a decision. Exit 0: may run; 2: may not; 3: still
    /// pending.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the action as JSON.
    #[arg(long)]
    json: bool,
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    block_on(async {
        let action = client.get(&["v1", "actions", &args.id], &[]).await?;
        finish(&client, action, args.wait, args.json).await
    })?
}

/// Waits if asked, prints the action, and picks the exit code.
async fn finish(
    client: &Client,
    mut action: ActionView,
    wait: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(seconds) = wait {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while action.status == StatusView::Pending {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            if left == 0 {
                break;
            }
            let poll = left.min(POLL_SECONDS).to_string();
            action = client
                .get(&["v1", "actions", &action.id], &[("wait", &poll)])
                .await?;
        }
    }
    output::action(&action, json)?;
    if wait.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let status = Status::from(action.status);
    Ok(ExitCode::from(if status.may_run() {
        0
    } else if status == Status::Pending {
        3
    } else {
        2
    }))
}

#[derive(Args)]
pub struct QueueArgs {
    /// Only actions whose name matches this glob, e.g. 'refund.*'.
    #[arg(long)]
    action: Option<String>,
    /// At most this many a page.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Start after this page (the cursor a previous page printed).
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Every page, not just the first.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the actions as JSON (`{"items": [...], "next_cursor": ...}`).
    #[arg(long)]
    json: bool,
}

pub fn queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server)?;
    let limit = args.limit.to_string();
    let mut page: ActionPage = block_on(async {
        let mut cursor = args.cursor.clone();
        let mut all = ActionPage {
            items: Vec::new(),
            next_cursor: None,
        };
        loop {
            let mut query = vec![("status", "pending"), ("limit", limit.as_str())];
            if let Some(glob) = &args.action {
                query.push(("action", glob));
            }
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor));
            }
            let page: ActionPage = client.get(&["v1", "actions"], &query).await?;
            all.items.extend(page.items);
            all.next_cursor = page.next_cursor;
            match &all.next_cursor {
                Some(next) if args.all => cursor = Some(next.clone()),
                _ => return anyhow::Ok(all),
            }
        }
    })??;
    if args.all {
        page.next_cursor = None;
    }
    output::queue(&page, chrono::Utc::now(), args.json)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ApproveArgs {
    /// The action id.
    id: String,
    /// A note kept with the decision.
    #[arg(long)]
    comment: Option<String>,
    /// The action name, re-typed: required for confirm-tier actions.
    #[arg(long)]
    confirm: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RejectArgs {
    /// The action id.
    id: String,
    /// Why; shown to the agent.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ModifyArgs {
    /// The action id.
    id: String,
    /// The arguments you approve instead, a JSON object.
    #[arg(long)]
    args: String,
    #[arg(long)]
    comment: Option<String>,
    /// The action name, re-typed: required for confirm-tier actions.
    #[arg(long)]
    confirm: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    #[arg(long)]
    json: bool,
}

pub fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let body = DecisionBody {
        verdict: VerdictView::Approve,
        args: None,
        reason: args.comment,
        confirm: args.confirm,
    };
    decide(&args.server, &args.id, &body, args.json)
}

pub fn reject(args: RejectArgs) -> anyhow::Result<ExitCode> {
    let body = DecisionBody {
        verdict: VerdictView::Reject,
        args: None,
        reason: Some(args.reason),
        confirm: None,
    };
    decide(&args.server, &args.id, &body, args.json)
}

pub fn modify(args: ModifyArgs) -> anyhow::Result<ExitCode> {
    let body = DecisionBody {
        verdict: VerdictView::Modify,
        args: Some(json_object("--args", &args.args)?),
        reason: args.comment,
        confirm: args.confirm,
    };
    decide(&args.server, &args.id, &body, args.json)
}

fn decide(
    server: &ServerArgs,
    id: &str,
    body: &DecisionBody,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let action: ActionView = block_on(client.post(&["v1", "actions", id, "decisions"], body))??;
    output::action(&action, json)?;
    Ok(ExitCode::SUCCESS)
}
