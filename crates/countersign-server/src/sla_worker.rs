//! The SLA worker: applies the steps of `countersign_core::sla` (through the store, which
//! runs them inside its write transaction, together with the notifications they cause) to
//! pending actions whose next step — a reminder or the deadline — has come. It sleeps until
//! the earliest next step of any pending action (`next_step_at`, an index), wakes early when
//! told (a new pending action, a test that moved its clock), and runs once at start for
//! steps that fell due while the server was down. It never scans on a timer, and it never
//! waits on a notification receiver: deliveries are sent by the dispatcher
//! (`crate::notify::dispatch`).

use std::time::Duration;

use crate::state::{AppState, Stopping};

/// Actions handled per store transaction.
const BATCH: u32 = 256;
/// The longest sleep between looks, in case the clock jumps.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Pause after a store failure before trying again.
const RETRY: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, mut stopping: Stopping) {
    loop {
        let sleep = match sweep(&state).await {
            Ok(sleep) => sleep,
            Err(error) => {
                tracing::error!(%error, "SLA sweep failed; retrying");
                RETRY
            }
        };
        tokio::select! {
            () = stopping.wait() => return,
            () = state.sla_wake().notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Applies every step due now; returns how long to sleep until the next one.
pub async fn sweep(state: &AppState) -> Result<Duration, countersign_store::StoreError> {
    loop {
        let now = state.clock().now();
        let changed = state.store().sweep_sla(now, BATCH).await?;
        if !changed.is_empty() {
            state.metrics().sla_steps(changed.len());
            for record in &changed {
                tracing::info!(id = %record.id, status = %record.gate.status,
                    escalated = record.gate.escalated, "SLA step applied");
            }
        }
        if (changed.len() as u32) < BATCH {
            break;
        }
    }
    let now = state.clock().now();
    let sleep = match state.store().next_deadline().await? {
        Some(deadline) => (deadline - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP),
        None => MAX_SLEEP,
    };
    // A deadline already due (a step that leaves the action pending with a new deadline
    // that is due too) is handled on the next turn without a busy loop.
    Ok(sleep.max(Duration::from_millis(10)))
}
