//! What every handler shares: the store, the policy in force, the clock, the limits, the
//! metrics and the shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use countersign_store::Store;
use tokio::sync::{Notify, broadcast, watch};

use crate::checkpoints::Checkpoints;
use crate::clock::Clock;
use crate::config::Limits;
use crate::graduation::GraduationSettings;
use crate::graduation_watch::GraduationRegressed;
use crate::grants::LiveGrants;
use crate::metrics::Metrics;
use crate::notify::Notifications;
use crate::policy_source::PolicySource;
use crate::revocation::Revocations;
use crate::stats_config::StatsConfig;
use crate::wait_caps::WaitCaps;
use crate::watch::Watchers;
use crate::web::{WebSettings, WebShared};

/// The shared state of the API. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    policy: Arc<PolicySource>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    metrics_public: bool,
    metrics: Metrics,
    /// The checkpoint key and publisher; `None` when not configured (some tests).
    checkpoints: Option<Arc<Checkpoints>>,
    /// Who waits for which action's changes.
    watchers: Arc<Watchers>,
    /// Which tokens have open waits, to end them when the token is revoked.
    revocations: Arc<Revocations>,
    /// Open long-polls and event streams per token.
    wait_caps: Arc<WaitCaps>,
    /// Notification targets, callbacks and Slack; `None` when none are configured.
    notifications: Option<Arc<Notifications>>,
    /// Wakes the SLA worker early (a new deadline, or a test that moved the clock).
    sla_wake: Notify,
    /// Graduation's thresholds and intervals.
    graduation: GraduationSettings,
    /// Wakes the regression watcher (a post-hoc review was recorded).
    graduation_wake: Notify,
    /// Regressions of graduated rules, sent once each (the notification hook).
    regressions: broadcast::Sender<Arc<GraduationRegressed>>,
    /// One replay through the API at a time: it takes a core for seconds.
    replay_running: std::sync::atomic::AtomicBool,
    stop_sender: watch::Sender<bool>,
    /// The web UI's session settings.
    web_settings: WebSettings,
    /// The web UI's in-memory state: the sign-in throttle, the last verification.
    web: Arc<WebShared>,
    /// Statistics' thresholds and `/metrics` label caps.
    stats: StatsConfig,
    /// The live grants per agent.
    grants: LiveGrants,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicySource>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> AppState {
        let (stop_sender, _) = watch::channel(false);
        let watchers = Watchers::new(store.clone());
        let revocations = Revocations::new(store.clone());
        AppState {
            inner: Arc::new(Inner {
                watchers,
                revocations,
                wait_caps: WaitCaps::new(limits.max_waits_per_token),
                store,
                policy,
                clock,
                limits,
                metrics_public: true,
                metrics: Metrics::default(),
                checkpoints: None,
                notifications: None,
                sla_wake: Notify::new(),
                graduation: GraduationSettings::default(),
                graduation_wake: Notify::new(),
                regressions: broadcast::channel(64).0,
                replay_running: std::sync::atomic::AtomicBool::new(false),
                stop_sender,
                web_settings: WebSettings::default(),
                web: Arc::default(),
                stats: StatsConfig::default(),
                grants: LiveGrants::default(),
            }),
        }
    }

    /// Requires a token for `/metrics` (by default it is public).
    pub fn with_private_metrics(self) -> AppState {
        let inner = Arc::into_inner(self.inner).expect("configure state before sharing it");
        AppState {
            inner: Arc::new(Inner {
                metrics_public: false,
                ..inner
            }),
        }
    }

    /// Signs audit checkpoints with `checkpoints` (`countersign serve` always does).
    pub fn with_checkpoints(self, checkpoints: Checkpoints) -> AppState {
        let inner = Arc::into_inner(self.inner).expect("configure state before sharing it");
        AppState {
            inner: Arc::new(Inner {
                checkpoints: Some(Arc::new(checkpoints)),
                ..inner
            }),
        }
    }

    /// Sends notifications and callbacks as `notifications` says, and takes Slack
    /// interactions if it configures Slack: installs its router in the store, so that
    /// every change's events are written with it from now on.
    pub fn with_notifications(self, notifications: Notifications) -> AppState {
        let inner = Arc::into_inner(self.inner).expect("configure state before sharing it");
        inner.store.set_router(notifications.router());
        AppState {
            inner: Arc::new(Inner {
                notifications: Some(Arc::new(notifications)),
                ..inner
            }),
        }
    }

    /// Sets the web UI's session settings (cookies, expiry, re-authentication).
    pub fn with_web_settings(self, web_settings: WebSettings) -> AppState {
        let inner = Arc::into_inner(self.inner).expect("configure state before sharing it");
        AppState {
            inner: Arc::new(Inner {
                web_settings,
                ..inner
            }),
        }
    }

    /// Sets graduation's thresholds and intervals (`[graduation]` in the config).
    pub fn with_graduation(self, graduation: GraduationSettings) -> AppState {
        let inner = Arc::into_inner(self.inner).expect("configure state before sharing it");
        AppState {
            inner: Arc::new(Inner {
                graduation,
                ..inner
            }),
        }
    }

    pub fn graduation_settings(&self) -> GraduationSettings {
        self.inner.graduation
    }

    /// Regressions of graduated rules as they are announced, each once: the hook for
    /// notifications (see [`crate::graduation_watch`]).
    pub fn subscribe_graduation(&self) -> broadcast::Receiver<Arc<GraduationRegressed>> {
        self.inner.regressions.subscribe()
    }

    pub(crate) fn publish_graduation(&self, event: Arc<GraduationRegressed>) {
        let _ = self.inner.regressions.send(event);
    }

    /// Asks the regression watcher to look soon (a post-hoc review changed the evidence).
    pub fn nudge_graduation(&self) {
        self.inner.graduation_wake.notify_one();
    }

    pub(crate) fn graduation_wake(&self) -> &Notify {
        &self.inner.graduation_wake
    }

    /// Marks an API replay as running; `None` when one already is. The guard clears it.
    pub(crate) fn start_replay(&self) -> Option<ReplayGuard> {
        use std::sync::atomic::Ordering;
        self.inner
            .replay_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| ReplayGuard(self.clone()))
    }

    pub fn notifications(&self) -> Option<&Arc<Notifications>> {
        self.inner.notifications.as_ref()
    }

    /// Sets the statistics' thresholds and `/metrics` label caps (`[stats]`).
    pub fn with_stats_config(self, stats: StatsConfig) -> AppState {
        let inner = Arc::into_inner(self.inner).expect("configure state before sharing it");
        AppState {
            inner: Arc::new(Inner { stats, ..inner }),
        }
    }

    pub fn stats_config(&self) -> StatsConfig {
        self.inner.stats
    }

    pub fn web_settings(&self) -> WebSettings {
        self.inner.web_settings
    }

    /// The live grants per agent.
    pub(crate) fn grants(&self) -> &LiveGrants {
        &self.inner.grants
    }

    pub(crate) fn web(&self) -> &WebShared {
        &self.inner.web
    }

    pub fn checkpoints(&self) -> Option<&Checkpoints> {
        self.inner.checkpoints.as_deref()
    }

    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub fn policy(&self) -> Arc<PolicySource> {
        self.inner.policy.clone()
    }

    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub(crate) fn metrics_public(&self) -> bool {
        self.inner.metrics_public
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn watchers(&self) -> &Arc<Watchers> {
        &self.inner.watchers
    }

    pub(crate) fn revocations(&self) -> &Arc<Revocations> {
        &self.inner.revocations
    }

    /// How often open long-polls and event streams look for their token's revocation by
    /// another process on the same database (default 1 s; revocations through this server
    /// end them at once). For tests and tuning.
    pub fn set_revocation_check_interval(&self, every: Duration) {
        self.inner.revocations.set_check_interval(every);
    }

    pub(crate) fn wait_caps(&self) -> &Arc<WaitCaps> {
        &self.inner.wait_caps
    }

    /// Asks the SLA worker to look at deadlines now.
    pub fn nudge_sla(&self) {
        self.inner.sla_wake.notify_one();
    }

    pub(crate) fn sla_wake(&self) -> &Notify {
        &self.inner.sla_wake
    }

    /// Ends long-polls, event streams and workers.
    pub fn begin_shutdown(&self) {
        self.inner.stop_sender.send_replace(true);
    }

    pub(crate) fn stopping(&self) -> Stopping {
        Stopping(self.inner.stop_sender.subscribe())
    }
}

/// An API replay in progress; dropping it lets the next one run.
pub(crate) struct ReplayGuard(AppState);

impl Drop for ReplayGuard {
    fn drop(&mut self) {
        self.0
            .inner
            .replay_running
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Resolves when the server begins to shut down.
#[derive(Clone)]
pub(crate) struct Stopping(watch::Receiver<bool>);

impl Stopping {
    pub async fn wait(&mut self) {
        // An error means the sender is gone: the state was dropped, which is a stop too.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    pub async fn wait_owned(mut self) {
        self.wait().await;
    }
}
