//! The one crate that knows HTTP: the Countersign API of SPEC section 3, its access rules,
//! long-poll and Server-Sent Events, policy hot-reload and the SLA worker.
//!
//! [`app`] builds the router (tests drive it with `oneshot` or on port 0); [`serve`] runs
//! it with its background workers until a shutdown signal. Everything the API decides about
//! the domain is `countersign_core`'s; everything it keeps is the store's.

mod accept;
pub mod audit_views;
mod auth;
pub mod checkpoint_key;
pub mod checkpoints;
pub mod clock;
pub mod config;
mod connection;
pub mod decision;
mod duplicate_keys;
mod error;
mod event_stream;
mod export_formats;
mod extract;
pub mod graduation;
pub mod graduation_views;
pub mod graduation_watch;
pub mod grant_views;
pub mod grants;
pub mod limits;
mod metrics;
pub mod notify;
mod openapi;
mod params;
pub mod policy_source;
mod revocation;
mod routes;
/// The wire shapes of `GET /v1/deliveries`, for the command line.
pub use routes::deliveries::{DeliveryPage, DeliveryStatusBody, DeliveryView};
mod sla_worker;
pub mod slack;
mod state;
pub mod stats_config;
mod stats_metrics;
mod stats_params;
pub mod stats_views;
pub mod user_views;
pub mod views;
mod vocabulary;
mod wait_caps;
mod watch;
pub mod web;

use std::future::Future;

use tokio::net::TcpListener;

pub use checkpoints::{Checkpoints, Publish};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Limits, ServerConfig};
pub use error::AppError;
pub use graduation::GraduationSettings;
pub use graduation_watch::GraduationRegressed;
pub use notify::Notifications;
pub use policy_source::{PolicyLoadError, PolicySource};
pub use state::AppState;

/// The HTTP API as a router.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}

/// The OpenAPI 3.1 document of the API, as served at `/v1/openapi.json`.
pub fn openapi_json() -> String {
    openapi::document_json()
}

/// Serves the API on `listener` until `shutdown` resolves, with the SLA worker and policy
/// hot-reload running alongside, within the connection limits and timeouts of the state's
/// [`Limits`]. In-flight requests finish; long-polls and event streams end at once; then the
/// store finishes its queued writes and closes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = state.stopping();
    let sla = tokio::spawn(sla_worker::run(state.clone(), stopping.clone()));
    let deliveries = match state.notifications() {
        Some(notifications) => Some(notify::dispatch::spawn(
            state.clone(),
            notifications.clone(),
            stopping.clone(),
        )?),
        None => None,
    };
    let checkpoints = tokio::spawn(checkpoints::run(state.clone(), stopping.clone()));
    let policy = tokio::spawn(state.policy().watch(stopping.clone().wait_owned()));
    let policy_audit = tokio::spawn(policy_source::audit_loads(state.clone(), stopping.clone()));
    let graduation = tokio::spawn(graduation_watch::run(state.clone(), stopping.clone()));
    let signal = tokio::spawn({
        let state = state.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            state.begin_shutdown();
        }
    });
    accept::run(listener, app(state.clone()), state.clone()).await;
    signal.abort();
    state.begin_shutdown();
    let _ = sla.await;
    if let Some(deliveries) = deliveries {
        let _ = tokio::task::spawn_blocking(move || deliveries.join()).await;
    }
    let _ = policy.await;
    let _ = policy_audit.await;
    let _ = graduation.await;
    // After the SLA worker's last step: the final checkpoint covers everything written.
    let _ = checkpoints.await;
    state.store().close().await;
    Ok(())
}
