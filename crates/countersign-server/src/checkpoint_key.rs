//! The checkpoint signing key file: created at first start (mode 0600, a fresh Ed25519 seed
//! from the operating system), read at every later one. A file that exists but does not
//! hold a key is an error, never silently replaced: a new key would orphan every checkpoint
//! published before it.

use std::io::Write as _;
use std::path::Path;

use countersign_core::audit::hex;
use countersign_core::audit::note::NoteSigner;

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the checkpoint key {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(
        "the checkpoint key {path} is not a signing key ({error}); restore the right file, or move it away to have a new key created"
    )]
    Invalid {
        path: String,
        error: countersign_core::audit::note::KeyError,
    },
    #[error("cannot create the checkpoint key {path}: {error}")]
    Create { path: String, error: std::io::Error },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

/// A checkpoint key, and whether it was created just now.
pub struct LoadedKey {
    pub signer: NoteSigner,
    pub created: bool,
}

/// Reads the key at `path`, or creates one there if no file exists.
pub fn load_or_create(path: &Path) -> Result<LoadedKey, KeyFileError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let signer = NoteSigner::parse(&text)
                .map_err(|error| KeyFileError::Invalid { path: shown, error })?;
            Ok(LoadedKey {
                signer,
                created: false,
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let signer = new_key()?;
            write_new(path, &signer)
                .map_err(|error| KeyFileError::Create { path: shown, error })?;
            Ok(LoadedKey {
                signer,
                created: true,
            })
        }
        Err(error) => Err(KeyFileError::Read { path: shown, error }),
    }
}

/// A new key named `countersign/` and 12 random hex digits: stable for the life of the key,
/// and unlikely to collide with another installation's (C2SP recommends a URL-like name;
/// an operator who wants their own makes the key file with any signed-note tool).
fn new_key() -> Result<NoteSigner, KeyFileError> {
    let mut seed = [0u8; 32];
    let mut tag = [0u8; 6];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    getrandom::fill(&mut tag).map_err(|e| KeyFileError::Random(e.to_string()))?;
    let name = format!("countersign/{}", hex(&tag));
    // The name is built from hex digits: always valid.
    NoteSigner::from_seed(&name, seed).map_err(|e| KeyFileError::Random(e.to_string()))
}

/// Writes a new key file readable by its owner only, refusing to overwrite one that
/// appeared meanwhile.
fn write_new(path: &Path, signer: &NoteSigner) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", signer.encode()).as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_and_refuses_a_bad_file() {
        let dir = std::env::temp_dir().join(format!("countersign-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.key");
        let _ = std::fs::remove_file(&path);
        let first = load_or_create(&path).unwrap();
        assert!(first.created);
        assert!(first.signer.name().starts_with("countersign/"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_or_create(&path).unwrap();
        assert!(!again.created);
        assert_eq!(again.signer.verifier(), first.signer.verifier());

        std::fs::write(&path, "not a key\n").unwrap();
        let error = load_or_create(&path).err().unwrap();
        assert!(matches!(error, KeyFileError::Invalid { .. }), "{error}");
        assert!(
            error.to_string().contains("is not a signing key"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
