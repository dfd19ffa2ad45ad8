//! `countersign policy check | explain | test`: the policy file as code, checked the way a
//! compiler checks source.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use countersign_core::policy::{self, Diagnostic, Policy};
use countersign_core::{ActionName, AgentName, Confidence, Hints, ProposedAction};
use serde_json::{Value, json};

use crate::client::json_object;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Report every problem in a policy file, with line and column.
    Check(CheckArgs),
    /// Show which tier an action gets, which rule decided, and why earlier rules did not.
    Explain(ExplainArgs),
    /// Run a table of test cases against a policy and report each failure with a diff.
    Test(TestArgs),
    /// Replay a candidate policy over the recorded history: what would change, what really
    /// happened to those actions, and which past mistakes it would let through.
    Replay(crate::graduation_cmd::ReplayArgs),
    /// Propose relaxations and tightenings the history supports, as diffs with evidence.
    Suggest(crate::graduation_cmd::SuggestArgs),
    /// Write a starting policy for a step of the graduation path.
    Init(crate::graduation_cmd::InitArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The policy file.
    file: PathBuf,
    /// Print the diagnostics as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The policy file.
    file: PathBuf,
    /// The action name, e.g. refund.create.
    #[arg(long)]
    action: String,
    /// The agent name.
    #[arg(long, default_value = "agent")]
    agent: String,
    /// The action's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// The context, a JSON object.
    #[arg(long, default_value = "{}")]
    context: String,
    /// The agent's confidence, from 0 to 1.
    #[arg(long)]
    confidence: Option<f64>,
    /// Hints as a JSON object, e.g. '{"read_only": true}'.
    #[arg(long)]
    hints: Option<String>,
    /// The time of the request (RFC 3339), for conditions on `now`.
    #[arg(long)]
    now: Option<String>,
    /// Print {"tier", "rule", "reason", ...} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct TestArgs {
    /// The policy file.
    file: PathBuf,
    /// The cases file (TOML, `[[cases]]` tables).
    cases: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check(args) => check(args),
        PolicyCommand::Explain(args) => explain(args),
        PolicyCommand::Test(args) => test(args),
        PolicyCommand::Replay(args) => crate::graduation_cmd::replay(args),
        PolicyCommand::Suggest(args) => crate::graduation_cmd::suggest(args),
        PolicyCommand::Init(args) => crate::graduation_cmd::init(args),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn diagnostics_json(path: &Path, diagnostics: &[Diagnostic]) -> Value {
    Value::Array(
        diagnostics
            .iter()
            .map(|d| {
                json!({
                    "file": path.display().to_string(),
                    "severity": if d.is_error() { "error" } else { "warning" },
                    "code": d.code,
                    "line": d.line,
                    "column": d.column,
                    "message": d.message,
                    "help": d.help,
                })
            })
            .collect(),
    )
}

fn print_diagnostics(path: &Path, source: &str, diagnostics: &[Diagnostic]) {
    let name = path.display().to_string();
    for d in diagnostics {
        eprintln!("{}", d.render(&name, source));
    }
}

/// Loads a policy, printing its diagnostics and failing on errors.
pub(crate) fn load(path: &Path) -> anyhow::Result<Policy> {
    let source = read(path)?;
    let checked = policy::check(&source);
    match checked.policy {
        Some(policy) => {
            print_diagnostics(path, &source, &checked.diagnostics);
            Ok(policy)
        }
        None => {
            print_diagnostics(path, &source, &checked.diagnostics);
            let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
            bail!(
                "{} has {errors} error(s); run `countersign policy check {}`",
                path.display(),
                path.display()
            )
        }
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let source = read(&args.file)?;
    let checked = policy::check(&source);
    let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = checked.diagnostics.len() - errors;
    if args.json {
        let report = json!({
            "ok": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diagnostics_json(&args.file, &checked.diagnostics),
            "hash": checked.policy.as_ref().map(|p| p.hash().to_owned()),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_diagnostics(&args.file, &source, &checked.diagnostics);
        match &checked.policy {
            Some(policy) => println!(
                "{}: ok ({} rule(s), {warnings} warning(s))",
                args.file.display(),
                policy.rules.len()
            ),
            None => eprintln!(
                "{}: {errors} error(s), {warnings} warning(s)",
                args.file.display()
            ),
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn parse_now(now: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    match now {
        None => Ok(Utc::now()),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .with_context(|| {
                format!("--now must be an RFC 3339 time like 2026-11-25T12:00:00Z, found {text:?}")
            }),
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let policy = load(&args.file)?;
    let action =
        ActionName::parse(&args.action).with_context(|| format!("--action {:?}", args.action))?;
    let agent =
        AgentName::parse(&args.agent).with_context(|| format!("--agent {:?}", args.agent))?;
    let mut request = ProposedAction::new(action, agent);
    request.args = json_object("--args", &args.args)?;
    request.context = json_object("--context", &args.context)?;
    request.confidence = args
        .confidence
        .map(Confidence::new)
        .transpose()
        .context("--confidence")?;
    if let Some(hints) = &args.hints {
        request.hints = serde_json::from_value::<Hints>(Value::Object(json_object(
            "--hints", hints,
        )?))
        .context(
            "--hints takes read_only, destructive, idempotent and open_world, each true or false",
        )?;
    }
    let now = parse_now(args.now.as_deref())?;
    let explanation = policy.explain(&request, now);
    let classification = &explanation.classification;
    if args.json {
        let settings = policy.review_settings(classification);
        let rules: Vec<Value> = explanation
            .trace
            .iter()
            .map(|step| {
                json!({
                    "rule": policy.rule(step.rule).name,
                    "line": policy.rule(step.rule).line,
                    "outcome": policy.describe_outcome(step, &request),
                })
            })
            .collect();
        let out = json!({
            "tier": classification.tier.as_str(),
            "rule": policy.rule_name(classification),
            "reason": policy.reason(classification),
            "approvals_required": settings.approvals_required,
            "approvers": settings.approvers.groups(),
            "admins_only": settings.approvers.admins_only(),
            "sla": classification.tier.is_human_gated().then(|| settings.sla.to_string()),
            "on_timeout": classification.tier.is_human_gated().then(|| settings.on_timeout.as_str()),
            "rules": rules,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", policy.render_explanation(&explanation, &request));
    }
    Ok(ExitCode::SUCCESS)
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let policy = load(&args.file)?;
    let source = read(&args.cases)?;
    let report = match policy::run_cases(&policy, &source, Utc::now()) {
        Ok(report) => report,
        Err(diagnostics) => {
            print_diagnostics(&args.cases, &source, &diagnostics);
            bail!("{} is not a valid cases file", args.cases.display());
        }
    };
    if args.json {
        let failures: Vec<Value> = report
            .failures
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "line": f.line,
                    "reason": f.reason,
                    "differences": f.differences.iter().map(|(field, expected, actual)| {
                        json!({"field": field, "expected": expected, "actual": actual})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({"total": report.total, "passed": report.passed(), "failed": report.failures.len(), "failures": failures});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", report.render(&args.cases.display().to_string()));
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
