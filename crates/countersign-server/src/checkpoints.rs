//! Signed checkpoints of the audit chain: the server signs the chain head with its
//! checkpoint key periodically (when the head moved), on demand (`POST
//! /v1/audit/checkpoints`) and once more at shutdown; keeps each new checkpoint in the
//! store; and publishes it outside the database — appended to a file and/or POSTed to a
//! webhook — so that a copy survives whatever is done to the database.
//!
//! Publishing runs on one task fed by a bounded queue: it never blocks signing or the API,
//! keeps checkpoints in order in the file, and a failure is logged and counted, never
//! retried in a loop (the next checkpoint is published anyway, and covers this one).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use countersign_core::audit::checkpoint::Checkpoint;
use countersign_core::audit::note::{NoteSigner, NoteVerifier};
use countersign_store::{CheckpointClaim, NewCheckpoint, Store, StoreError, StoredCheckpoint};
use tokio::sync::mpsc;

use crate::audit_views::CheckpointCheckView;
use crate::config::CheckpointConfig;
use crate::state::{AppState, Stopping};

/// Checkpoints waiting to be published before new ones are dropped (and counted).
const PUBLISH_QUEUE: usize = 64;
/// How long a webhook may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where new checkpoints go besides the store.
#[derive(Clone, Debug, Default)]
pub struct Publish {
    pub file: Option<PathBuf>,
    pub webhook: Option<String>,
}

/// The server's checkpoint key, interval and publisher.
pub struct Checkpoints {
    signer: NoteSigner,
    interval: Duration,
    queue: Option<mpsc::Sender<String>>,
    signed: AtomicU64,
    publish_failures: std::sync::Arc<AtomicU64>,
}

impl Checkpoints {
    /// Starts the publisher task (when there is somewhere to publish). Call inside a tokio
    /// runtime.
    pub fn start(signer: NoteSigner, interval: Duration, publish: Publish) -> Checkpoints {
        let publish_failures = std::sync::Arc::new(AtomicU64::new(0));
        let queue = (publish.file.is_some() || publish.webhook.is_some()).then(|| {
            let (sender, receiver) = mpsc::channel(PUBLISH_QUEUE);
            tokio::spawn(publish_all(receiver, publish, publish_failures.clone()));
            sender
        });
        Checkpoints {
            signer,
            interval,
            queue,
            signed: AtomicU64::new(0),
            publish_failures,
        }
    }

    /// From the server configuration and a loaded key.
    pub fn from_config(signer: NoteSigner, config: &CheckpointConfig) -> Checkpoints {
        Checkpoints::start(
            signer,
            config.interval,
            Publish {
                file: config.publish_file.clone(),
                webhook: config.webhook.clone(),
            },
        )
    }

    /// The key that verifies this server's checkpoints.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// New checkpoints signed since start.
    pub fn signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    /// Checkpoints that could not be published since start.
    pub fn publish_failures(&self) -> u64 {
        self.publish_failures.load(Ordering::Relaxed)
    }

    /// The checkpoint counters in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        format!(
            "# HELP countersign_checkpoints_signed_total Audit checkpoints signed since start.\n\
             # TYPE countersign_checkpoints_signed_total counter\n\
             countersign_checkpoints_signed_total {}\n\
             # HELP countersign_checkpoint_publish_failures_total Checkpoints that could not be appended to the publish file or sent to the webhook.\n\
             # TYPE countersign_checkpoint_publish_failures_total counter\n\
             countersign_checkpoint_publish_failures_total {}\n",
            self.signed(),
            self.publish_failures()
        )
    }

    /// Signs the chain head now, keeps and publishes it; `false` when the latest checkpoint
    /// already covers the head (nothing new is signed or published), `None` while the log
    /// is empty (there is no head to sign).
    pub async fn sign_head(
        &self,
        store: &dyn Store,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(StoredCheckpoint, bool)>, StoreError> {
        let head = store.audit_head().await?;
        if head.size == 0 {
            return Ok(None);
        }
        if let Some(latest) = store.latest_checkpoint().await?
            && latest.size == head.size
            && latest.hash == head.hash
        {
            return Ok(Some((latest, false)));
        }
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size: head.size,
            hash: head.hash,
        };
        // Our own body always signs (no blank line, no control character).
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| StoreError::CheckpointMismatch(e.to_string()))?;
        let (stored, created) = store
            .add_checkpoint(NewCheckpoint {
                size: head.size,
                hash: head.hash,
                note,
                at: now,
            })
            .await?;
        if created {
            self.signed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(size = stored.size, "audit checkpoint signed");
            if let Some(queue) = &self.queue
                && queue.try_send(stored.note.clone()).is_err()
            {
                self.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    size = stored.size,
                    "checkpoint publishing is behind; this checkpoint is not published (the next one covers it)"
                );
            }
        }
        Ok(Some((stored, created)))
    }
}

/// The latest stored checkpoint as a claim to verify the log against, once its signature
/// verifies with `verifier` and its note agrees with its row; otherwise the failed check,
/// for the report (a row changed or forged in the database).
pub fn stored_claim(
    latest: &StoredCheckpoint,
    verifier: &NoteVerifier,
) -> Result<CheckpointClaim, CheckpointCheckView> {
    let source = "the latest stored checkpoint".to_owned();
    let failed = |message: String| CheckpointCheckView {
        source: source.clone(),
        size: latest.size,
        hash: countersign_core::audit::hex(&latest.hash),
        ok: false,
        message,
    };
    match Checkpoint::open(&latest.note, verifier) {
        Ok(found) if found.size == latest.size && found.hash == latest.hash => {
            Ok(CheckpointClaim {
                source: source.clone(),
                size: found.size,
                hash: found.hash,
            })
        }
        Ok(_) => Err(failed(format!(
            "{source} was changed: its signed note does not match its row"
        ))),
        Err(error) => Err(failed(format!(
            "{source} does not verify with the key {}: {error}",
            verifier.encode()
        ))),
    }
}

/// The periodic signer: once at start (the head may have moved since the last run), then
/// every interval, and once more when the server stops.
pub(crate) async fn run(state: AppState, mut stopping: Stopping) {
    let Some(checkpoints) = state.checkpoints() else {
        return;
    };
    let interval = checkpoints.interval;
    loop {
        sign_logged(&state).await;
        tokio::select! {
            () = stopping.wait() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    sign_logged(&state).await;
}

async fn sign_logged(state: &AppState) {
    let Some(checkpoints) = state.checkpoints() else {
        return;
    };
    if let Err(error) = checkpoints
        .sign_head(state.store(), state.clock().now())
        .await
    {
        match error {
            StoreError::CheckpointMismatch(message) => {
                tracing::error!(%message, "the audit log does not extend its last checkpoint; run `countersign audit verify`");
            }
            error => tracing::error!(%error, "signing an audit checkpoint failed"),
        }
    }
}

/// Publishes queued checkpoints one at a time, in order.
async fn publish_all(
    mut queue: mpsc::Receiver<String>,
    publish: Publish,
    failures: std::sync::Arc<AtomicU64>,
) {
    let client = publish.webhook.as_ref().and_then(|_| {
        reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(|error| tracing::error!(%error, "cannot set up the checkpoint webhook client"))
            .ok()
    });
    while let Some(note) = queue.recv().await {
        if let Some(path) = &publish.file {
            let path = path.clone();
            let text = note.clone();
            let written = tokio::task::spawn_blocking(move || append(&path, &text)).await;
            if let Err(error) = written
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, file = %publish.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    "cannot append the checkpoint to its publish file");
            }
        }
        if let (Some(url), Some(client)) = (&publish.webhook, &client) {
            let sent = client
                .post(url)
                .header("content-type", "text/plain; charset=utf-8")
                .body(note)
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("the webhook answered {}", response.status())),
                Err(error) => Some(error.to_string()),
            };
            if let Some(error) = failure {
                failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, %url, "cannot publish the checkpoint to the webhook");
            }
        }
    }
}

/// Appends `note` to `path` and syncs it: a published checkpoint is on disk before the
/// next one is.
fn append(path: &std::path::Path, note: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(note.as_bytes())?;
    file.sync_data()
}
