//! The durable outbox: events an action's life sends to reviewers' channels and to the
//! agent's callback, and the Slack accounts linked to people.
//!
//! An event's deliveries are written in the same transaction as the change that causes it
//! (inside the store's writer job for that change), so a committed change always has its
//! deliveries and a rolled-back one never does. Which destinations an event has, and what
//! its payload says, is the server's to decide (it knows the configuration and the wire):
//! it installs an [`EventRouter`] that the writer calls, without IO, for each event. The
//! server's dispatcher then reads due deliveries lane by lane, sends them, and reports each
//! try back with [`Notifications::finish_deliveries`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use countersign_core::name::Name;
pub use countersign_core::notify::EventKind;
use tokio::sync::Notify;

use crate::record::{ActionRecord, Actor, Page};
use crate::{BoxFuture, StoreResult};

/// An event, as the router sees it.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Stable across retries and restarts: receivers de-duplicate on it.
    pub id: &'a str,
    pub kind: EventKind,
    /// The action after the change.
    pub record: &'a ActionRecord,
    pub at: DateTime<Utc>,
    /// Where the agent asked for the final status, for final events.
    pub callback_url: Option<&'a str>,
}

/// A graduated rule regressed (`graduation_regressed`), as the router sees it: an event
/// about a rule and an action name rather than one action, written in the transaction that
/// records the regression (`Store::sync_regressions`), so it is sent once whatever the
/// restarts and however many instances share the database.
#[derive(Clone, Copy, Debug)]
pub struct RegressionEvent<'a> {
    /// Stable: `msg_graduation_` and the alert's row id.
    pub id: &'a str,
    pub regression: &'a crate::NewRegression,
    pub at: DateTime<Utc>,
}

/// Decides where an event goes and renders its payload. Called by the store's writer inside
/// the write transaction of the change: it must be quick and do no IO.
pub trait EventRouter: Send + Sync + 'static {
    fn route(&self, event: &Event<'_>) -> Option<Routed>;

    /// Where a regression's event goes, and what it says; nowhere unless the router says.
    fn route_regression(&self, event: &RegressionEvent<'_>) -> Option<Routed> {
        let _ = event;
        None
    }
}

/// The `action_id` of an event's row (and its deliveries) for events about no one action:
/// `graduation_regressed`.
pub const NO_ACTION: &str = "";

/// What the router made of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    /// The payload (JSON), the same for every destination; each channel renders it.
    pub body: String,
    pub destinations: Vec<Destination>,
}

/// One place an event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The configured target's name, or `callback`.
    pub target: String,
    /// The queue it waits in: deliveries of one lane share a receiver.
    pub lane: String,
    /// For callbacks, the agent's URL (targets' URLs come from the configuration).
    pub url: Option<String>,
}

countersign_core::vocabulary! {
    /// Where a delivery stands.
    pub enum DeliveryStatus {
        /// To be tried (again) at its next attempt time.
        Pending = "pending",
        Delivered = "delivered",
        /// Every try failed; an admin may retry it.
        Failed = "failed",
    }
}

/// One event on its way to one destination.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: u64,
    /// The stable message id (`webhook-id`).
    pub event_id: String,
    pub event_kind: EventKind,
    /// The action the event is about; [`NO_ACTION`] (empty) for a `graduation_regressed`.
    pub action_id: String,
    pub target: String,
    pub lane: String,
    pub url: Option<String>,
    pub status: DeliveryStatus,
    /// Tries made so far.
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The payload; only loaded for sending.
    pub body: Option<String>,
}

/// What one try of a delivery came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    Delivered,
    /// Failed; try again at `at`.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// Failed, and it was the last try.
    GaveUp {
        error: String,
    },
}

/// The result of one try, reported back to the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Tried {
    pub id: u64,
    pub attempt: Attempt,
}

/// `GET /v1/deliveries`: newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    /// 0 means 50; at most 1000.
    pub limit: u32,
    pub cursor: Option<String>,
}

/// A Slack account linked to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackLink {
    pub slack_user: String,
    pub name: Name,
    pub linked_at: DateTime<Utc>,
}

/// A person as a channel without tokens (Slack) acts for them: their name, and the groups
/// and admin role of their live reviewer and admin tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub name: Name,
    pub groups: Vec<Name>,
    pub admin: bool,
    /// Whether the person has a live (not revoked) reviewer or admin token: a person whose
    /// tokens were all revoked decides nothing, wherever they click.
    pub active: bool,
}

/// Audit entry kinds of the outbox and the Slack links.
pub mod outbox_kind {
    /// Every try of a delivery failed (the body says which, where, and the last error).
    pub const DELIVERY_FAILED: &str = "delivery_failed";
    /// An admin put a failed delivery back in its lane.
    pub const DELIVERY_RETRIED: &str = "delivery_retried";
    pub const SLACK_LINKED: &str = "slack_linked";
    pub const SLACK_UNLINKED: &str = "slack_unlinked";
}

impl Person {
    /// The person named `name` as their web login (if any) and their tokens `(role, groups,
    /// live)` make them, the same on every backend. A login and tokens of one name are one
    /// person: a login's groups are the person's (as they are their tokens'), a disabled
    /// login makes the person decide nothing, and an admin token or login makes them admin.
    /// Without a login, the groups of their live reviewer and admin tokens count.
    pub(crate) fn from_parts(
        name: Name,
        login: Option<&crate::people::User>,
        tokens: Vec<(crate::token::Role, Vec<Name>, bool)>,
    ) -> Person {
        use crate::token::Role;
        let mut person = Person {
            name,
            groups: Vec::new(),
            admin: false,
            active: false,
        };
        let live = tokens
            .into_iter()
            .filter(|(role, _, live)| *live && *role != Role::Agent);
        match login {
            Some(user) if user.disabled => {}
            Some(user) => {
                person.active = true;
                person.admin = user.admin;
                person.groups = user.groups.clone();
                for (role, _, _) in live {
                    person.admin |= role == Role::Admin;
                }
            }
            None => {
                for (role, groups, _) in live {
                    person.active = true;
                    person.admin |= role == Role::Admin;
                    for group in groups {
                        if !person.groups.contains(&group) {
                            person.groups.push(group);
                        }
                    }
                }
            }
        }
        person
    }
}

/// Wakes the server's dispatcher after a commit that wrote deliveries, with the lanes
/// that got some. Lanes are published only after the commit (the writer stages them while
/// the transaction runs), so a dispatcher never looks for rows that are not visible yet.
#[derive(Debug, Default)]
pub struct OutboxSignal {
    notify: Notify,
    /// Written only by the writer thread, during a batch.
    staged: Mutex<BTreeSet<String>>,
    ready: Mutex<BTreeSet<String>>,
}

impl OutboxSignal {
    /// Resolves after a commit published lanes (or at once if some are waiting).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The lanes that got deliveries since the last call.
    pub fn take_lanes(&self) -> BTreeSet<String> {
        std::mem::take(&mut *lock(&self.ready))
    }

    /// Wakes the dispatcher without new lanes (tests, shutdown).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    pub(crate) fn stage(&self, lane: &str) {
        let mut staged = lock(&self.staged);
        if !staged.contains(lane) {
            staged.insert(lane.to_owned());
        }
    }

    /// After a commit: publish what the batch staged.
    pub(crate) fn committed(&self) {
        let staged = std::mem::take(&mut *lock(&self.staged));
        if !staged.is_empty() {
            lock(&self.ready).extend(staged);
            self.notify.notify_one();
        }
    }

    /// After a commit that wrote deliveries to `lanes` (backends that commit per write,
    /// like PostgreSQL, publish their own lanes rather than staging them).
    pub(crate) fn publish(&self, lanes: impl IntoIterator<Item = String>) {
        let mut ready = lock(&self.ready);
        let before = ready.len();
        ready.extend(lanes);
        let grew = ready.len() > before;
        drop(ready);
        if grew {
            self.notify.notify_one();
        }
    }

    /// After a failed batch: nothing it staged exists.
    pub(crate) fn rolled_back(&self) {
        lock(&self.staged).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A set of names cannot be left half-changed by a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The outbox and the Slack links, by domain operation (part of every [`crate::Store`]).
pub trait Notifications: Send + Sync {
    /// Installs the router events are routed with from now on (none: events go nowhere).
    fn set_router(&self, router: Arc<dyn EventRouter>);

    /// The signal the writer raises after a commit that wrote deliveries.
    fn outbox_signal(&self) -> Arc<OutboxSignal>;

    /// Every lane with pending deliveries (at start, to pick up what a crash left).
    fn pending_lanes(&self) -> BoxFuture<'_, StoreResult<Vec<String>>>;

    /// Pending deliveries of `lane` due at `now`, oldest first, with their payloads, leaving
    /// out those in `skip` (in flight already): at most `limit`.
    fn due_deliveries(
        &self,
        lane: String,
        now: DateTime<Utc>,
        limit: u32,
        skip: Vec<u64>,
    ) -> BoxFuture<'_, StoreResult<Vec<Delivery>>>;

    /// The earliest next attempt among `lane`'s pending deliveries after `now`, and whether
    /// the lane has pending deliveries at all.
    fn lane_state(
        &self,
        lane: String,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<(bool, Option<DateTime<Utc>>)>>;

    /// Records tries: delivered, to retry, or given up (which is audited).
    fn finish_deliveries(
        &self,
        tried: Vec<Tried>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<()>>;

    /// Deliveries, newest first.
    fn deliveries(&self, query: DeliveryQuery) -> BoxFuture<'_, StoreResult<Page<Delivery>>>;

    /// Puts a failed delivery back in its lane for a new round of tries (audited).
    fn retry_delivery(
        &self,
        id: u64,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<Delivery>>;

    /// Links a Slack user to a person (replacing an earlier link of that Slack user), if
    /// the name may be a person's (not an agent's, not reserved). Audited.
    fn link_slack(
        &self,
        slack_user: String,
        name: Name,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<SlackLink>>;

    /// Removes a Slack user's link. Audited.
    fn unlink_slack(
        &self,
        slack_user: String,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> BoxFuture<'_, StoreResult<SlackLink>>;

    fn slack_links(&self) -> BoxFuture<'_, StoreResult<Vec<SlackLink>>>;

    /// The person a Slack user is linked to, with their authority now; `None`: not linked.
    fn slack_person<'a>(
        &'a self,
        slack_user: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<Person>>>;
}
