//! `countersign policy replay | suggest | init`: earned autonomy from the command line.
//! Replay and suggest read the history directly from the database (`--db`: a SQLite file or
//! a `postgres://` URL), with the
//! same code the server's `/v1/policy/replay` and `/v1/graduation` run.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use countersign_core::duration::ReviewDuration;
use countersign_core::graduation::{STAGES, Stage, Thresholds, percent};
use countersign_server::graduation;
use countersign_server::graduation_views::{
    ChangeView, GraduationView, LetThroughView, ProposalView, ReplayView,
};

use crate::client::block_on;
use crate::policy_cmd::load;

/// The database a command reads when neither `--db` nor `COUNTERSIGN_DB` names one.
const DEFAULT_DB: &str = "sqlite://countersign.db";

#[derive(Args)]
pub struct ReplayArgs {
    /// The candidate policy file.
    file: PathBuf,
    /// How far back to replay: 30s, 15m, 2h, 30d.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    since: String,
    /// The database [default: $COUNTERSIGN_DB, else sqlite://countersign.db].
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Print the report as JSON (the shape of `POST /v1/policy/replay`).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SuggestArgs {
    /// The policy file the proposals are diffs against.
    file: PathBuf,
    /// The database [default: $COUNTERSIGN_DB, else sqlite://countersign.db].
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Write the policy with every proposal applied next to FILE (FILE.suggested.toml);
    /// FILE itself is never changed.
    #[arg(long)]
    write: bool,
    /// Print the evidence and proposals as JSON (the shape of `GET /v1/graduation`).
    #[arg(long)]
    json: bool,
    /// Relax when the error rate's 95% upper bound is under this; tighten when the flag
    /// rate's 95% lower bound is over it.
    #[arg(long, default_value_t = Thresholds::default().target)]
    target: f64,
    /// The fewest decisions in the window that can justify a relaxation.
    #[arg(long, default_value_t = Thresholds::default().min_decisions)]
    min_decisions: u64,
    /// The fewest post-hoc reviews in the window that can justify a tightening.
    #[arg(long, default_value_t = Thresholds::default().min_reviews)]
    min_reviews: u64,
    /// The review sample a relaxed rule gets.
    #[arg(long, default_value_t = Thresholds::default().review_sample)]
    review_sample: f64,
    /// The evidence window: 7d, 30d, 90d.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    window: String,
    /// Skip replaying each proposal over the history.
    #[arg(long)]
    no_replay: bool,
}

#[derive(Args)]
pub struct InitArgs {
    /// The step of the graduation path: launch, early or mature.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["launch", "early", "mature"]))]
    stage: String,
    /// Where to write it ("-": standard output).
    #[arg(default_value = "policy.toml")]
    file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

fn database(db: Option<String>) -> String {
    db.or_else(|| {
        std::env::var("COUNTERSIGN_DB")
            .ok()
            .filter(|v| !v.is_empty())
    })
    .unwrap_or_else(|| DEFAULT_DB.to_owned())
}

fn window(text: &str, flag: &str) -> anyhow::Result<ReviewDuration> {
    text.parse::<ReviewDuration>()
        .map_err(|e| anyhow::anyhow!("invalid {flag} {text:?}: {e}"))
}

/// Counts on stderr while a long read runs, when stderr is a terminal.
struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(seen: Arc<AtomicU64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        let n = seen.load(Ordering::Relaxed);
                        let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-3);
                        eprint!("\rreplaying: {n} submissions ({rate:.0}/s)   ");
                        let _ = std::io::stderr().flush();
                    }
                }
            }
            eprint!("\r\x1b[2K");
        });
        Progress {
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let candidate = Arc::new(load(&args.file)?);
    let since_window = window(&args.since, "--since")?;
    let url = database(args.db);
    let run = block_on(async {
        let store = countersign_store::open_existing(&url)
            .await
            .with_context(|| format!("cannot open the database {url}"))?;
        let since = Utc::now() - since_window.as_chrono();
        let seen = Arc::new(AtomicU64::new(0));
        let progress = Progress::start(seen.clone());
        let run = graduation::replay(store.as_ref(), candidate, since, None, seen).await;
        progress.finish().await;
        store.close().await;
        anyhow::Ok(run?)
    })??;
    let view = ReplayView::from(&run);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", replay_text(&view, &args.file.display().to_string()));
    }
    Ok(ExitCode::SUCCESS)
}

fn rule(name: &Option<String>) -> String {
    match name {
        Some(n) => format!("rule {n:?}"),
        None => "[defaults]".to_owned(),
    }
}

fn outcomes_text(c: &ChangeView) -> String {
    let o = &c.outcomes;
    let mut parts = Vec::new();
    for (n, what) in [
        (o.allowed, "allowed"),
        (o.denied, "denied"),
        (o.pending, "pending"),
        (o.approved, "approved"),
        (o.modified, "modified"),
        (o.rejected, "rejected"),
        (o.expired, "expired"),
        (o.cancelled, "cancelled"),
        (o.flagged, "flagged after the fact"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

fn let_through_line(l: &LetThroughView) -> String {
    format!(
        "  {}  {} by {} at {}: {}{} ({} -> {}, {})\n",
        l.id,
        l.action,
        l.agent,
        l.submitted_at.format("%Y-%m-%d %H:%M"),
        serde_json::to_value(l.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        if l.flagged { ", flagged" } else { "" },
        tier(l.from),
        tier(l.to),
        rule(&l.to_rule),
    )
}

fn tier<T: serde::Serialize>(t: T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn replay_text(view: &ReplayView, name: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{name} (policy {}) over {} submission(s){}{}\n",
        &view.policy_hash[..12.min(view.policy_hash.len())],
        view.total,
        view.since
            .map(|s| format!(" since {}", s.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default(),
        view.elapsed_ms
            .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
            .unwrap_or_default(),
    ));
    if !view.complete {
        out.push_str("INCOMPLETE: the replay stopped at its time limit\n");
    }
    out.push_str(&format!(
        "  {} unchanged, {} relaxed, {} tightened\n",
        view.unchanged, view.relaxed, view.tightened
    ));
    for c in &view.changes {
        out.push_str(&format!(
            "\n{}: {} would be {} instead of {} ({} -> {})\n    what really happened: {}\n",
            c.action,
            c.outcomes.total,
            tier(c.to),
            tier(c.from),
            rule(&c.from_rule),
            rule(&c.to_rule),
            outcomes_text(c),
        ));
    }
    if view.let_through_total > 0 {
        out.push_str(&format!(
            "\n{} past mistake(s) the candidate would let through without a person deciding first{}:\n",
            view.let_through_total,
            if (view.let_through.len() as u64) < view.let_through_total {
                format!(" (the first {} listed)", view.let_through.len())
            } else {
                String::new()
            }
        ));
        for l in &view.let_through {
            out.push_str(&let_through_line(l));
        }
    } else {
        out.push_str("\nNo rejected, modified or flagged action would have run unreviewed.\n");
    }
    out
}

pub fn suggest(args: SuggestArgs) -> anyhow::Result<ExitCode> {
    let policy = load(&args.file)?;
    let window_days = window(&args.window, "--window")?.seconds().div_ceil(86_400) as u32;
    for (name, value) in [
        ("--target", args.target),
        ("--review-sample", args.review_sample),
    ] {
        if !(value > 0.0 && value <= 1.0) {
            bail!("invalid {name} {value}: expected a number above 0 and at most 1");
        }
    }
    let thresholds = Thresholds {
        target: args.target,
        min_decisions: args.min_decisions.max(1),
        min_reviews: args.min_reviews.max(1),
        review_sample: args.review_sample,
        window_days,
    };
    let url = database(args.db);
    let name = args.file.display().to_string();
    let now = Utc::now();
    let (suggestions, regressions) = block_on(async {
        let store = countersign_store::open_existing(&url)
            .await
            .with_context(|| format!("cannot open the database {url}"))?;
        // No time limit on the command line: the operator asked and can interrupt.
        let deadline = (!args.no_replay).then(|| Instant::now() + Duration::from_secs(86_400));
        let suggestions =
            graduation::suggest(store.as_ref(), &policy, &name, thresholds, now, deadline).await;
        let regressions = store.active_regressions().await;
        store.close().await;
        anyhow::Ok((suggestions?, regressions?))
    })??;
    let view = GraduationView::of(&suggestions, &regressions);
    let written = match (&suggestions.changed_source, args.write) {
        (Some(text), true) => {
            let path = suggested_path(&args.file);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
        _ => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", suggest_text(&view, &name, now));
    }
    if let Some(path) = written {
        eprintln!(
            "wrote {} ({} is unchanged); check it, then move it into place",
            path.display(),
            name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `policy.toml` → `policy.suggested.toml`, beside it.
fn suggested_path(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or("policy".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.suggested.toml"))
}

fn suggest_text(view: &GraduationView, name: &str, now: DateTime<Utc>) -> String {
    let t = &view.thresholds;
    let mut out = format!(
        "{name}: evidence from {} to {} ({} day(s)); relax under {} (95% upper bound of the error rate, at least {} decisions), tighten over {} (95% lower bound of the flag rate, at least {} reviews)\n",
        view.since.format("%Y-%m-%d"),
        now.format("%Y-%m-%d"),
        t.window_days,
        percent(t.target),
        t.min_decisions,
        percent(t.target),
        t.min_reviews,
    );
    for r in &view.regressions {
        out.push_str(&format!(
            "\nREGRESSED: rule {:?}, action {} (told {}): {}\n",
            r.rule,
            r.action,
            r.fired_at.format("%Y-%m-%d %H:%M UTC"),
            r.body["summary"].as_str().unwrap_or_default()
        ));
    }
    if view.proposals.is_empty() {
        out.push_str("\nNo change is supported by the evidence yet.\n");
    }
    for (i, p) in view.proposals.iter().enumerate() {
        out.push_str(&proposal_text(i + 1, p));
    }
    out
}

fn proposal_text(n: usize, p: &ProposalView) -> String {
    let mut out = format!(
        "\n#{n} {} {} -> {}: {}, action {}{}\n  {}\n",
        tier(p.kind),
        tier(p.from),
        tier(p.to),
        rule(&p.rule),
        p.action,
        p.when
            .as_ref()
            .map(|w| format!(" when {w}"))
            .unwrap_or_default(),
        p.reason,
    );
    let e = &p.evidence;
    out.push_str(&format!(
        "  evidence: {} decision(s) ({} approved, {} modified, {} rejected, {} expired), error rate {} (at most {}), {} of {} review(s) flagged, last decision {}\n",
        e.decisions,
        e.approved,
        e.modified,
        e.rejected,
        e.expired,
        percent(e.error_rate),
        percent(e.error_upper_bound),
        e.flagged,
        e.reviewed,
        e.last_decided
            .map_or("none".to_owned(), |d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
    ));
    match (&p.diff, &p.edit_error) {
        (Some(diff), _) => {
            out.push('\n');
            for line in diff.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        (None, Some(error)) => out.push_str(&format!("  (not written into the file: {error})\n")),
        _ => {}
    }
    if let Some(replay) = &p.replay {
        out.push_str(&format!(
            "  replay over {} {} submission(s): {} would change{}\n",
            replay.total,
            p.action,
            replay.relaxed + replay.tightened,
            if replay.complete { "" } else { " (incomplete)" }
        ));
        for c in &replay.changes {
            out.push_str(&format!(
                "    {} -> {}: {} ({})\n",
                tier(c.from),
                tier(c.to),
                c.outcomes.total,
                outcomes_text(c)
            ));
        }
        if replay.let_through_total == 0 {
            out.push_str("    no rejected, modified or flagged action would have run unreviewed\n");
        } else {
            out.push_str(&format!(
                "    {} past mistake(s) it would have let through:\n",
                replay.let_through_total
            ));
            for l in &replay.let_through {
                out.push_str("  ");
                out.push_str(&let_through_line(l));
            }
        }
    }
    out
}

pub fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let stage: &Stage = Stage::named(&args.stage).with_context(|| {
        let names: Vec<&str> = STAGES.iter().map(|s| s.name).collect();
        format!(
            "unknown stage {:?}; expected one of {}",
            args.stage,
            names.join(", ")
        )
    })?;
    if args.file.as_os_str() == "-" {
        print!("{}", stage.policy);
        return Ok(ExitCode::SUCCESS);
    }
    if args.file.exists() && !args.force {
        bail!(
            "{} exists; pass --force to replace it, or name another file",
            args.file.display()
        );
    }
    std::fs::write(&args.file, stage.policy)
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    eprintln!(
        "wrote {} ({} stage: {})",
        args.file.display(),
        stage.name,
        stage.summary
    );
    Ok(ExitCode::SUCCESS)
}
