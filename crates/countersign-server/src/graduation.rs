//! Graduation over the store: replaying a candidate policy over the history, and the
//! proposals the evidence supports, each as a diff of the policy file with the replay of
//! the changed policy. Shared by the API (`/v1/policy/replay`, `/v1/graduation`), the
//! regression watcher and the CLI (`countersign policy replay|suggest --db`), so that all
//! of them compute the same thing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::Policy;
use countersign_core::graduation::{
    self, Edit, Evidence, Proposal, Replay, ReplayReport, Thresholds,
};
use countersign_store::{Store, StoreError};

/// Graduation's settings (`[graduation]` in the server config; flags on the CLI).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraduationSettings {
    pub thresholds: Thresholds,
    /// How often the server looks for regressions of graduated rules.
    pub check_interval: Duration,
    /// The longest a replay may run (through the API, and per `/v1/graduation` answer).
    pub replay_time_limit: Duration,
}

impl Default for GraduationSettings {
    fn default() -> Self {
        GraduationSettings {
            thresholds: Thresholds::default(),
            check_interval: Duration::from_secs(60),
            replay_time_limit: Duration::from_secs(60),
        }
    }
}

impl GraduationSettings {
    /// The start of the evidence window at `now`.
    pub fn since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - TimeDelta::days(i64::from(self.thresholds.window_days))
    }
}

/// How far a replay got.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayRun {
    pub report: ReplayReport,
    /// `false` when the time limit stopped it before the end of the history.
    pub complete: bool,
    pub since: DateTime<Utc>,
    pub elapsed: Duration,
}

/// Replays `candidate` over every submission since `since`. `seen` counts the
/// submissions as they pass (for progress); `deadline` stops the scan (the report then
/// says it is incomplete).
pub async fn replay(
    store: &dyn Store,
    candidate: Arc<Policy>,
    since: DateTime<Utc>,
    deadline: Option<Instant>,
    seen: Arc<AtomicU64>,
) -> Result<ReplayRun, StoreError> {
    replay_until(store, candidate, since, deadline, seen, Arc::default()).await
}

/// [`replay`], stopping early (incomplete) once `cancelled` is set.
pub async fn replay_until(
    store: &dyn Store,
    candidate: Arc<Policy>,
    since: DateTime<Utc>,
    deadline: Option<Instant>,
    seen: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
) -> Result<ReplayRun, StoreError> {
    let started = Instant::now();
    let replay = Arc::new(Mutex::new(Replay::new(candidate)));
    let stopped = Arc::new(AtomicBool::new(false));
    let visitor = {
        let replay = replay.clone();
        let stopped = stopped.clone();
        let mut n: u64 = 0;
        Box::new(move |recorded: graduation::Recorded| {
            n += 1;
            if n.is_multiple_of(256) {
                seen.store(n, Ordering::Relaxed);
            }
            // Every row: one row of a hostile candidate can cost milliseconds (~25 ns for
            // the clock, against ~1 µs a row). A single condition's evaluation cannot be
            // cut short, so the bound is the limit plus one row's evaluation.
            if cancelled.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                stopped.store(true, Ordering::Relaxed);
                return false;
            }
            replay
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(&recorded);
            true
        })
    };
    let visited = store.scan_history(since, visitor).await?;
    let replay = Arc::into_inner(replay)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .ok_or_else(|| StoreError::Stopped("the replay's visitor outlived the scan".into()))?;
    let _ = visited;
    Ok(ReplayRun {
        report: replay.finish(),
        complete: !stopped.load(Ordering::Relaxed),
        since,
        elapsed: started.elapsed(),
    })
}

/// One proposal as the policy file's change, with its replay.
#[derive(Clone, Debug)]
pub struct Suggested {
    pub proposal: Proposal,
    /// The edits of the policy text, empty when the proposal could not be written.
    pub edits: Vec<Edit>,
    /// The unified diff against the file.
    pub diff: Option<String>,
    /// Why it could not be written into the file.
    pub edit_error: Option<String>,
    /// The changed policy replayed over the window (this action's submissions only:
    /// nothing else can change).
    pub replay: Option<ReplayReport>,
}

/// Everything `policy suggest` and `GET /v1/graduation` show.
#[derive(Clone, Debug)]
pub struct Suggestions {
    pub policy_hash: String,
    pub since: DateTime<Utc>,
    pub thresholds: Thresholds,
    /// Every rule and action type with submissions in the window.
    pub evidence: Vec<Evidence>,
    pub suggested: Vec<Suggested>,
    /// The policy with every written proposal applied (`None`: there is none).
    pub changed_source: Option<String>,
    /// Whether every proposal's replay ran to the end within the time limit.
    pub replay_complete: bool,
}

/// How many groups with corrections are looked at for a narrowing, and how many corrected
/// actions' arguments each: bounded, so that a history full of errors costs no more.
const NARROWABLE_GROUPS: usize = 50;
const CORRECTED_ARGS: u32 = 1000;

/// What the evidence since `since` supports against `policy` (whose text is edited; it is
/// named `file_name` in diffs), with each proposal replayed unless `replay_deadline` is
/// `None`... or passed.
pub async fn suggest(
    store: &dyn Store,
    policy: &Policy,
    file_name: &str,
    thresholds: Thresholds,
    now: DateTime<Utc>,
    replay_deadline: Option<Instant>,
) -> Result<Suggestions, StoreError> {
    let since = now - TimeDelta::days(i64::from(thresholds.window_days));
    let evidence = store.evidence(since).await?;
    let found = graduation::suggest(policy, &evidence, &thresholds);
    let mut proposals = found.proposals;
    for group in found.narrowable.iter().take(NARROWABLE_GROUPS) {
        let corrected = store
            .corrected_args(&group.key, since, CORRECTED_ARGS)
            .await?;
        for narrowing in graduation::narrowings(&corrected).into_iter().take(5) {
            let below = store
                .evidence_below(&group.key, since, &narrowing.arg, narrowing.below_f64())
                .await?;
            if let Some(p) = graduation::narrowed(group, narrowing, below, &thresholds) {
                proposals.push(p);
                break;
            }
        }
    }
    let source = policy.source();
    let mut suggested = Vec::new();
    let mut all_edits = Vec::new();
    let mut written: Vec<&Proposal> = Vec::new();
    let mut changed: HashMap<String, Vec<(usize, Arc<Policy>)>> = HashMap::new();
    for (i, proposal) in proposals.iter().enumerate() {
        let planned = graduation::plan(source, policy, proposal, now).and_then(|edits| {
            graduation::apply_checked(source, &edits, &[proposal]).map(|(_, p)| (edits, p))
        });
        match planned {
            Ok((edits, changed_policy)) => {
                changed
                    .entry(proposal.key.action.clone())
                    .or_default()
                    .push((i, Arc::new(changed_policy)));
                suggested.push(Suggested {
                    diff: Some(graduation::unified_diff(
                        source,
                        &edits,
                        file_name,
                        &format!("{file_name} (suggested)"),
                    )),
                    edits,
                    edit_error: None,
                    replay: None,
                    proposal: proposal.clone(),
                });
            }
            Err(error) => suggested.push(Suggested {
                edits: Vec::new(),
                diff: None,
                edit_error: Some(error.to_string()),
                replay: None,
                proposal: proposal.clone(),
            }),
        }
    }
    for (s, proposal) in suggested.iter().zip(&proposals) {
        if !s.edits.is_empty() {
            all_edits.extend(s.edits.iter().cloned());
            written.push(proposal);
        }
    }
    let changed_source = if written.is_empty() {
        None
    } else {
        graduation::apply_checked(source, &all_edits, &written)
            .ok()
            .map(|(text, _)| text)
    };
    let mut replay_complete = true;
    if replay_deadline.is_some() && !changed.is_empty() {
        let (reports, complete) = replay_each(store, changed, since, replay_deadline).await?;
        replay_complete = complete;
        for (i, report) in reports {
            suggested[i].replay = Some(report);
        }
    }
    Ok(Suggestions {
        policy_hash: policy.hash().to_owned(),
        since,
        thresholds,
        evidence,
        suggested,
        changed_source,
        replay_complete,
    })
}

/// Replays each changed policy over its action's submissions, all in one pass.
async fn replay_each(
    store: &dyn Store,
    changed: HashMap<String, Vec<(usize, Arc<Policy>)>>,
    since: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<(Vec<(usize, ReplayReport)>, bool), StoreError> {
    type ByAction = HashMap<String, Vec<(usize, Replay)>>;
    let replays: ByAction = changed
        .into_iter()
        .map(|(action, policies)| {
            let replays = policies
                .into_iter()
                .map(|(i, policy)| (i, Replay::new(policy)))
                .collect();
            (action, replays)
        })
        .collect();
    let replays = Arc::new(Mutex::new(replays));
    let stopped = Arc::new(AtomicBool::new(false));
    let visitor = {
        let replays = replays.clone();
        let stopped = stopped.clone();
        Box::new(move |recorded: graduation::Recorded| {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stopped.store(true, Ordering::Relaxed);
                return false;
            }
            let mut replays = replays.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = replays.get_mut(recorded.request.action.as_str()) {
                for (_, replay) in list {
                    replay.add(&recorded);
                }
            }
            true
        })
    };
    store.scan_history(since, visitor).await?;
    let replays = Arc::into_inner(replays)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .ok_or_else(|| StoreError::Stopped("the replay's visitor outlived the scan".into()))?;
    let reports = replays
        .into_values()
        .flatten()
        .map(|(i, replay)| (i, replay.finish()))
        .collect();
    Ok((reports, !stopped.load(Ordering::Relaxed)))
}
