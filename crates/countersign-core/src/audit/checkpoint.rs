//! Checkpoints of the audit chain in the C2SP tlog-checkpoint shape
//! (<https://c2sp.org/tlog-checkpoint>): a signed note whose text is the log's origin, its
//! size (the number of entries) and, base64-encoded, the hash of entry `size` — the chain
//! head, which commits to every entry before it. A checkpoint kept outside the database
//! proves later that the log held at least `size` entries ending in that hash: cutting
//! entries from the end, or rewriting any of them, no longer matches it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::note::{NoteError, NoteSigner, NoteVerifier, split_notes};

/// A checkpoint's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log: the signing key's name.
    pub origin: String,
    /// Entries in the log (the sequence number of the last).
    pub size: u64,
    /// The hash of entry `size`.
    pub hash: [u8; 32],
}

/// Why a checkpoint was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note around it is malformed or its signature does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note verifies but its text is not a checkpoint.
    #[error("line {line} of the checkpoint text: {what}")]
    Body { line: usize, what: String },
}

impl Checkpoint {
    /// The note text: origin, size and base64 hash, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.hash)
        )
    }

    /// Parses a checkpoint's note text. Extension lines after the third are allowed by the
    /// format and ignored.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = |line: usize, what: String| CheckpointError::Body { line, what };
        let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(body(1, "the origin line is empty".into()));
        }
        let size_text = lines.next().unwrap_or_default();
        let size: u64 = size_text
            .parse()
            .ok()
            .filter(|_| {
                size_text.bytes().all(|b| b.is_ascii_digit())
                    && (size_text == "0" || !size_text.starts_with('0'))
            })
            .ok_or_else(|| {
                body(
                    2,
                    format!("expected the log size in decimal digits, found {size_text:?}"),
                )
            })?;
        let hash_text = lines.next().unwrap_or_default();
        let hash: [u8; 32] = BASE64
            .decode(hash_text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                body(
                    3,
                    format!("expected the base64 of a 32-byte hash, found {hash_text:?}"),
                )
            })?;
        if let Some(index) = lines.position(str::is_empty) {
            return Err(body(4 + index, "an extension line is empty".into()));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            hash,
        })
    }

    /// Signs the checkpoint: the whole note, ready to store and publish.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        Ok(signer.sign(&self.body())?)
    }

    /// Verifies one note's signature with `verifier` and reads the checkpoint in it.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, CheckpointError> {
        let text = verifier.open(note)?;
        Checkpoint::parse_body(text)
    }
}

/// A checkpoint read from a file of several, with its place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiledCheckpoint {
    /// 1-based position of the note in the file.
    pub index: usize,
    pub checkpoint: Checkpoint,
}

/// Why a file of checkpoints was refused: which note, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {index} of {count}: {error}")]
pub struct FileError {
    pub index: usize,
    pub count: usize,
    pub error: CheckpointError,
}

/// Verifies and reads every checkpoint in `text` (one note, or notes one after another as
/// the server appends them to its publish file). All must verify: a file that mixes in a
/// forged or damaged one is refused whole, with the note that failed.
pub fn open_all(text: &str, verifier: &NoteVerifier) -> Result<Vec<FiledCheckpoint>, FileError> {
    let notes = split_notes(text).map_err(|error| FileError {
        index: 1,
        count: 1,
        error: error.into(),
    })?;
    let count = notes.len();
    notes
        .into_iter()
        .enumerate()
        .map(|(i, note)| {
            Checkpoint::open(note, verifier)
                .map(|checkpoint| FiledCheckpoint {
                    index: i + 1,
                    checkpoint,
                })
                .map_err(|error| FileError {
                    index: i + 1,
                    count,
                    error,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("countersign/test", [3; 32]).unwrap()
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: "countersign/test".into(),
            size,
            hash: [size as u8; 32],
        }
    }

    #[test]
    fn round_trips_through_a_signed_note() {
        let signer = signer();
        let note = checkpoint(20).sign(&signer).unwrap();
        assert_eq!(
            note.lines().take(3).collect::<Vec<_>>(),
            [
                "countersign/test",
                "20",
                "FBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQ="
            ]
        );
        let verifier = signer.verifier();
        assert_eq!(Checkpoint::open(&note, &verifier), Ok(checkpoint(20)));
        let file = format!("{note}{}", checkpoint(25).sign(&signer).unwrap());
        let all = open_all(&file, &verifier).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].checkpoint.size, 25);
    }

    #[test]
    fn refuses_what_is_not_a_checkpoint() {
        let signer = signer();
        let verifier = signer.verifier();
        let cases = [
            ("countersign/test\n20\n", 3),
            ("countersign/test\n020\nFBQU\n", 2),
            ("countersign/test\n-1\nFBQU\n", 2),
            ("countersign/test\n20\nFBQU\n", 3),
        ];
        for (text, line) in cases {
            let note = signer.sign(text).unwrap();
            match Checkpoint::open(&note, &verifier) {
                Err(CheckpointError::Body { line: found, .. }) => {
                    assert_eq!(found, line, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // A changed size no longer verifies.
        let note = checkpoint(20)
            .sign(&signer)
            .unwrap()
            .replacen("\n20\n", "\n19\n", 1);
        assert!(matches!(
            Checkpoint::open(&note, &verifier),
            Err(CheckpointError::Note(NoteError::BadSignature { .. }))
        ));
        // One bad note in a file names its place.
        let good = checkpoint(1).sign(&signer).unwrap();
        let error = open_all(&format!("{good}{note}"), &verifier).unwrap_err();
        assert_eq!((error.index, error.count), (2, 2));
    }
}
