//! `countersign export`: training and evaluation data through the server (admins), written
//! to stdout as the server streams it, one JSON object per line. Progress goes to stderr
//! only when stderr is a terminal, so a pipe or a file gets the data and nothing else.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

use crate::client::{Client, ServerArgs, block_on};
use crate::stats_cmd::window_query;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Everything about each case.
    Jsonl,
    /// Chat fine-tuning lines (system, user, assistant).
    OpenaiChat,
    /// Preference pairs (prompt, chosen, rejected).
    Preference,
    /// Evaluation test cases.
    Eval,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::OpenaiChat => "openai-chat",
            Format::Preference => "preference",
            Format::Eval => "eval",
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// Actions submitted at or after this time: RFC 3339 or a duration ago (7d, 12h).
    #[arg(long)]
    since: Option<String>,
    /// ... and before this time (same forms).
    #[arg(long)]
    until: Option<String>,
    /// Only actions whose name matches this pattern (`*` any run, `?` any one character).
    #[arg(long, value_name = "GLOB")]
    action: Option<String>,
    /// Only actions classified by this rule.
    #[arg(long, value_name = "NAME")]
    rule: Option<String>,
    /// Which cases, comma-separated: rejected, modified, flagged, expired (default
    /// rejected,modified,flagged; expired only with --format jsonl).
    #[arg(long, value_name = "LIST")]
    verdict: Option<String>,
    /// The shape of each line.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    #[command(flatten)]
    server: ServerArgs,
}

/// The labels a `--verdict` list may name.
const LABELS: [&str; 4] = ["rejected", "modified", "flagged", "expired"];

fn check_verdicts(list: &str) -> anyhow::Result<()> {
    for part in list.split(',') {
        if !LABELS.contains(&part) {
            bail!(
                "--verdict takes a comma-separated list of {}, found {part:?}",
                LABELS.join(", ")
            );
        }
    }
    Ok(())
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let mut query = window_query(args.since.as_deref(), args.until.as_deref())?;
    query.push(("format", args.format.as_str().to_owned()));
    if let Some(verdict) = args.verdict {
        check_verdicts(&verdict)?;
        query.push(("verdict", verdict));
    }
    if let Some(action) = args.action {
        query.push(("action", action));
    }
    if let Some(rule) = args.rule {
        query.push(("rule", rule));
    }
    let client = Client::new(&args.server)?;
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lines = block_on(async {
        let mut response = client.get_streamed(&["v1", "export"], &pairs).await?;
        let mut stdout = std::io::stdout().lock();
        let mut progress = Progress::new(std::io::stderr().is_terminal());
        while let Some(chunk) = response
            .chunk()
            .await
            .context("the export stopped before its end (the output is incomplete)")?
        {
            stdout.write_all(&chunk).context("cannot write to stdout")?;
            progress.add(chunk.iter().filter(|&&b| b == b'\n').count());
        }
        stdout.flush().context("cannot write to stdout")?;
        progress.finish();
        anyhow::Ok(progress.lines)
    })??;
    if lines == 0 && std::io::stderr().is_terminal() {
        eprintln!("no case matched");
    }
    Ok(ExitCode::SUCCESS)
}

/// Lines written so far, shown on a terminal at most a few times a second.
struct Progress {
    shown: bool,
    lines: usize,
    last: Instant,
}

impl Progress {
    fn new(shown: bool) -> Progress {
        Progress {
            shown,
            lines: 0,
            last: Instant::now(),
        }
    }

    fn add(&mut self, lines: usize) {
        self.lines += lines;
        if self.shown && self.last.elapsed() >= Duration::from_millis(250) {
            eprint!("\rexported {} cases", self.lines);
            self.last = Instant::now();
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!("\rexported {} cases", self.lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lists_are_checked_before_asking() {
        assert!(check_verdicts("rejected,modified").is_ok());
        assert_eq!(
            check_verdicts("rejected,approved").unwrap_err().to_string(),
            "--verdict takes a comma-separated list of rejected, modified, flagged, expired, found \"approved\""
        );
    }
}
