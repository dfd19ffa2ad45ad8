//! The wire shapes of audit verification and checkpoints: the request and report of
//! `GET|POST /v1/audit/verify` (and `countersign audit verify --json`), and a checkpoint as
//! `GET /v1/audit/checkpoint` shows it.

use chrono::{DateTime, Utc};
use countersign_core::audit::hex;
use countersign_store::{AuditReport, StateMismatch, StoredCheckpoint};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /v1/audit/verify`: checkpoints kept outside the database, to check the log against.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// One signed checkpoint note, or several one after another (a publish file). Each
    /// note's signature must verify (`422 checkpoint_not_verified`), which no schema can
    /// state.
    #[schema(min_length = 1)]
    pub checkpoint: String,
    /// The verifier key (`NAME+HASH+BASE64`) that signed them; default: this server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}$")]
    pub key: Option<String>,
}

/// The result of verifying the audit log: the hash chain, the checkpoints it was checked
/// against, and every action's stored state re-derived from its entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    /// `true` only when the chain verifies, the log extends every checkpoint checked, every
    /// action agrees with its log and the file could be read to the end.
    pub ok: bool,
    /// Entries verified good.
    pub entries: u64,
    /// Hex hash of the last good entry.
    pub head: String,
    /// The first changed, removed or reordered entry, or the first entry cut from the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// The first problem, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Every problem, one sentence each.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Each checkpoint checked (in order of size).
    #[serde(default)]
    pub checkpoints: Vec<CheckpointCheckView>,
    /// Actions whose state was re-derived from the log and compared.
    #[serde(default)]
    pub actions: u64,
    /// All actions whose stored state disagrees with their log.
    #[serde(default)]
    pub state_mismatch_count: u64,
    /// The first hundred of them, in id order.
    #[serde(default)]
    pub state_mismatches: Vec<StateMismatchView>,
    /// Set when the database file could not be read to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<DamageView>,
}

/// One checkpoint checked against the log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointCheckView {
    /// Where the checkpoint came from.
    pub source: String,
    pub size: u64,
    /// Hex hash of entry `size` as the checkpoint has it.
    pub hash: String,
    /// Whether the log still extends it.
    pub ok: bool,
    pub message: String,
}

/// An action whose stored state disagrees with its log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateMismatchView {
    pub action_id: String,
    /// The field that differs; `row` when the row is missing or unreadable, `log` when the
    /// entries are.
    pub field: String,
    /// What the actions table holds (any JSON value).
    pub stored: Value,
    /// What the log entries say (any JSON value).
    pub derived: Value,
}

/// What is wrong with a damaged file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DamageView {
    pub message: String,
    /// What SQLite's `quick_check` says.
    pub integrity: Vec<String>,
}

impl VerifyView {
    /// The report, plus problems found before it (checkpoints whose signatures did not
    /// verify), which count against `ok` too.
    pub fn new(report: &AuditReport, unverified: Vec<CheckpointCheckView>) -> VerifyView {
        let mut problems: Vec<String> = unverified.iter().map(|c| c.message.clone()).collect();
        problems.extend(report.problems());
        let mut checkpoints = unverified;
        checkpoints.extend(report.checkpoints.iter().map(|check| CheckpointCheckView {
            source: check.claim.source.clone(),
            size: check.claim.size,
            hash: hex(&check.claim.hash),
            ok: check.ok(),
            message: check.describe(),
        }));
        VerifyView {
            ok: report.ok() && problems.is_empty(),
            entries: report.entries,
            head: report.head.clone(),
            first_bad_seq: report.first_bad_seq(),
            message: problems.first().cloned(),
            problems,
            checkpoints,
            actions: report.actions,
            state_mismatch_count: report.state_mismatch_count,
            state_mismatches: report.state_mismatches.iter().map(mismatch).collect(),
            damage: report.damage.as_ref().map(|d| DamageView {
                message: d.message.clone(),
                integrity: d.integrity.clone(),
            }),
        }
    }
}

impl From<&AuditReport> for VerifyView {
    fn from(report: &AuditReport) -> Self {
        VerifyView::new(report, Vec::new())
    }
}

fn mismatch(m: &StateMismatch) -> StateMismatchView {
    StateMismatchView {
        action_id: m.action_id.clone(),
        field: m.field.clone(),
        stored: m.stored.clone(),
        derived: m.derived.clone(),
    }
}

/// A signed checkpoint of the audit chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    /// The log's name: the signing key's.
    pub origin: String,
    /// Entries in the log when it was signed.
    pub size: u64,
    /// Hex hash of entry `size` (the note has it in base64).
    pub hash: String,
    /// The whole C2SP signed note: keep it outside the database.
    pub note: String,
    pub signed_at: DateTime<Utc>,
    /// The verifier key (`NAME+HASH+BASE64`) that checks it: give it to `countersign audit
    /// verify --key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl CheckpointView {
    pub fn new(checkpoint: &StoredCheckpoint, key: Option<String>) -> CheckpointView {
        CheckpointView {
            origin: checkpoint
                .note
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            size: checkpoint.size,
            hash: hex(&checkpoint.hash),
            note: checkpoint.note.clone(),
            signed_at: checkpoint.signed_at,
            key,
        }
    }
}
