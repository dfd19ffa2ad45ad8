//! The dispatcher: delivers the outbox lane by lane.
//!
//! A lane is one receiver (a configured target, or one callback origin) with its own cap on
//! tries in flight. The dispatcher sleeps until a commit publishes new deliveries, a try
//! finishes, or a lane's next retry falls due — it never scans on a timer — and then asks the
//! store, per lane with free slots, for the deliveries due now. A receiver that hangs fills
//! its own lane's slots until its timeout and delays nothing else: not the other lanes (each
//! is queried on its own, through an index on the lane), not the API or the SLA ladder
//! (tries run on their own tasks; the dispatcher only reads and records).
//!
//! A finished try frees its lane's slot at once, but its delivery stays out of the lane's
//! queries until its result is recorded, so a delivery is never sent twice at once. Results
//! are recorded in batches (at most [`RECORD_EVERY`] after the first waits): one write for
//! many tries keeps the writer's commits for the API and the SLA ladder. A crash between a
//! send and its record sends it again after restart, with the same `webhook-id`, for the
//! receiver to de-duplicate.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use countersign_core::notify::retry_delay;
use countersign_store::{Attempt, Delivery, Tried};
use tokio::sync::mpsc;

use super::Notifications;
use crate::state::{AppState, Stopping};

/// The longest sleep with nothing due, in case the clock jumps.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Pause after a store failure before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// Tries recorded per store write, at most.
const RECORD_BATCH: usize = 512;
/// How long a finished try's result may wait to be recorded with others.
const RECORD_EVERY: Duration = Duration::from_millis(20);

struct Lane {
    cap: usize,
    /// Being sent now: these take the lane's slots.
    in_flight: HashSet<u64>,
    /// Sent, their results not recorded yet: no slot, but not to be picked again.
    recording: HashSet<u64>,
    /// Look for due deliveries on the next turn (new ones, a freed slot, a retry).
    stale: bool,
    /// The earliest future attempt, when no delivery is due now.
    next: Option<DateTime<Utc>>,
}

/// A finished try.
struct Done {
    lane: String,
    tried: Tried,
}

/// Starts the dispatcher on its own thread, with a single-threaded runtime, at the lowest
/// CPU priority the system grants (left as it is where it cannot be lowered). It ends when
/// the server stops.
pub(crate) fn spawn(
    state: AppState,
    notifications: Arc<Notifications>,
    stopping: Stopping,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("countersign-deliveries".into())
        .spawn(move || {
            use thread_priority::{ThreadPriority, set_current_thread_priority};
            if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
                tracing::debug!(?error, "cannot lower the delivery thread's priority");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the delivery runtime; nothing will be sent");
                    return;
                }
            };
            runtime.block_on(run(state, notifications, stopping));
        })
}

async fn run(state: AppState, notifications: Arc<Notifications>, mut stopping: Stopping) {
    let signal = state.store().outbox_signal();
    let (done_sender, mut done) = mpsc::unbounded_channel::<Done>();
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    // What a crash or a stop left pending.
    loop {
        match state.store().pending_lanes().await {
            Ok(found) => {
                for lane in found {
                    add_lane(&mut lanes, &notifications, lane);
                }
                break;
            }
            Err(error) => {
                tracing::error!(%error, "cannot read pending deliveries; retrying");
                tokio::select! {
                    () = stopping.wait() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
    let mut unrecorded: Vec<Done> = Vec::new();
    let mut record_by: Option<tokio::time::Instant> = None;
    loop {
        for lane in signal.take_lanes() {
            add_lane(&mut lanes, &notifications, lane);
        }
        let pause = match start_tries(&state, &notifications, &mut lanes, &done_sender).await {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, "delivery scan failed; retrying");
                Some(RETRY)
            }
        };
        let pause = pause.unwrap_or(MAX_SLEEP).min(MAX_SLEEP);
        let wake = match record_by {
            Some(at) => at.min(tokio::time::Instant::now() + pause),
            None => tokio::time::Instant::now() + pause,
        };
        tokio::select! {
            () = stopping.wait() => return,
            () = signal.notified() => {}
            Some(first) = done.recv() => {
                let mut batch = vec![first];
                while batch.len() < RECORD_BATCH {
                    match done.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                for finished in &batch {
                    if let Some(lane) = lanes.get_mut(&finished.lane) {
                        lane.in_flight.remove(&finished.tried.id);
                        lane.recording.insert(finished.tried.id);
                        lane.stale = true;
                    }
                }
                unrecorded.extend(batch);
                record_by.get_or_insert_with(|| tokio::time::Instant::now() + RECORD_EVERY);
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        let due = record_by.is_some_and(|at| at <= tokio::time::Instant::now());
        if due || unrecorded.len() >= RECORD_BATCH {
            record(
                &state,
                &mut lanes,
                std::mem::take(&mut unrecorded),
                &mut stopping,
            )
            .await;
            record_by = None;
        }
    }
}

fn add_lane(lanes: &mut HashMap<String, Lane>, notifications: &Notifications, lane: String) {
    let cap = notifications.lane_settings(&lane).concurrency;
    lanes
        .entry(lane)
        .or_insert_with(|| Lane {
            cap,
            in_flight: HashSet::new(),
            recording: HashSet::new(),
            stale: true,
            next: None,
        })
        .stale = true;
}

/// Starts the due tries of every lane with free slots; returns how long until a lane's
/// next retry falls due.
async fn start_tries(
    state: &AppState,
    notifications: &Arc<Notifications>,
    lanes: &mut HashMap<String, Lane>,
    done: &mpsc::UnboundedSender<Done>,
) -> Result<Option<Duration>, countersign_store::StoreError> {
    let now = state.clock().now();
    let mut finished = Vec::new();
    for (name, lane) in lanes.iter_mut() {
        let due_now = lane.stale || lane.next.is_some_and(|next| next <= now);
        let free = lane.cap.saturating_sub(lane.in_flight.len());
        if !due_now || free == 0 {
            continue;
        }
        let skip: Vec<u64> = lane
            .in_flight
            .iter()
            .chain(&lane.recording)
            .copied()
            .collect();
        let found = state
            .store()
            .due_deliveries(name.clone(), now, free as u32, skip)
            .await?;
        let drained = found.len() < free;
        for delivery in found {
            lane.in_flight.insert(delivery.id);
            tokio::spawn(attempt(
                notifications.clone(),
                name.clone(),
                delivery,
                state.clone(),
                done.clone(),
            ));
        }
        if drained {
            // Nothing more is due now: sleep until the lane's next retry.
            lane.stale = false;
            let (any, next) = state.store().lane_state(name.clone(), now).await?;
            lane.next = next;
            if !any && lane.in_flight.is_empty() && lane.recording.is_empty() {
                finished.push(name.clone());
            }
        } else {
            // More may be due: look again when a slot frees.
            lane.stale = true;
        }
    }
    for name in finished {
        lanes.remove(&name);
    }
    let next = lanes
        .values()
        .filter(|lane| lane.in_flight.len() < lane.cap)
        .filter_map(|lane| lane.next)
        .min();
    Ok(next.map(|next| (next - now).to_std().unwrap_or(Duration::ZERO)))
}

/// One try of one delivery, on its own task; the result goes back to the dispatcher.
async fn attempt(
    notifications: Arc<Notifications>,
    lane: String,
    delivery: Delivery,
    state: AppState,
    done: mpsc::UnboundedSender<Done>,
) {
    let result = notifications.send(&delivery, state.clock().now()).await;
    let settings = notifications.lane_settings(&lane);
    let attempts = delivery.attempts + 1;
    let attempt = match result {
        Ok(()) => Attempt::Delivered,
        Err(error) if attempts >= settings.max_attempts => Attempt::GaveUp {
            error: format!("{error} (try {attempts} of {})", settings.max_attempts),
        },
        Err(error) => {
            let delay = retry_delay(
                attempts,
                TimeDelta::from_std(settings.backoff).unwrap_or(TimeDelta::seconds(1)),
                TimeDelta::from_std(settings.backoff_max).unwrap_or(TimeDelta::minutes(5)),
                jitter(),
            );
            Attempt::Retry {
                error: format!("{error} (try {attempts} of {})", settings.max_attempts),
                at: state.clock().now() + delay,
            }
        }
    };
    notifications.count(&attempt);
    match &attempt {
        Attempt::Delivered => tracing::debug!(id = delivery.id, target = %delivery.target,
            event = %delivery.event_id, "delivered"),
        Attempt::Retry { error, at } => tracing::info!(id = delivery.id, target = %delivery.target,
            event = %delivery.event_id, %error, retry_at = %at, "delivery failed; will retry"),
        Attempt::GaveUp { error } => tracing::warn!(id = delivery.id, target = %delivery.target,
            event = %delivery.event_id, %error, "delivery failed for good"),
    }
    let _ = done.send(Done {
        lane,
        tried: Tried {
            id: delivery.id,
            attempt,
        },
    });
}

/// Records finished tries; then the lane may pick their deliveries again (a retry).
async fn record(
    state: &AppState,
    lanes: &mut HashMap<String, Lane>,
    batch: Vec<Done>,
    stopping: &mut Stopping,
) {
    let tried: Vec<Tried> = batch.iter().map(|d| d.tried.clone()).collect();
    let mut tries = 0;
    loop {
        match state
            .store()
            .finish_deliveries(tried.clone(), state.clock().now())
            .await
        {
            Ok(()) => break,
            Err(error) => {
                tries += 1;
                tracing::error!(%error, "cannot record delivery tries; retrying");
                // After a while the slots are freed anyway: the deliveries stay pending
                // and are sent again (receivers de-duplicate on the message id).
                if tries == 5 {
                    break;
                }
                tokio::select! {
                    () = stopping.wait() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
    for done in batch {
        if let Some(lane) = lanes.get_mut(&done.lane) {
            lane.recording.remove(&done.tried.id);
            lane.stale = true;
        }
    }
}

/// A number in `[0, 1)` for the retry jitter.
fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
