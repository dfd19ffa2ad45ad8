//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys: the envelope a
//! checkpoint travels in, so that any signed-note tool (Go's `sumdb/note`, witnesses) can
//! check what Countersign signs. Pure: keys come in as bytes or text; generating one needs
//! randomness, which the caller brings.
//!
//! Key texts are the ones those tools use: a verifier key is `NAME+HASH+BASE64` where
//! `BASE64` is the algorithm byte `0x01` and the 32-byte public key, and a signer key is
//! `PRIVATE+KEY+NAME+HASH+BASE64` with the 32-byte seed in place of the public key. `HASH`
//! is the key ID in eight hex digits: the first four bytes of
//! `SHA-256(NAME || "\n" || 0x01 || public key)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;
/// The prefix of a signature line: em dash, space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// More signature lines than this make a note unreadable (the spec asks for at least 16).
const MAX_SIGNATURES: usize = 100;

/// Why a key text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "expected a verifier key NAME+HASH+BASE64 (as `countersign audit checkpoint --json` prints it), found {0:?}"
    )]
    VerifierShape(String),
    #[error("expected a signing key PRIVATE+KEY+NAME+HASH+BASE64, found something else")]
    SignerShape,
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    Name(String),
    #[error("the key hash {found:?} is not eight hex digits")]
    HashShape { found: String },
    #[error("the key data is not base64 of an Ed25519 key (0x01 then 32 bytes)")]
    Data,
    #[error("the key hash {found} does not match the key (expected {expected})")]
    HashMismatch { found: String, expected: String },
}

/// Why a note was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("line {line}: {what}")]
    Malformed { line: usize, what: String },
    #[error("the note is not signed by the key {expected} (its signatures are by: {found})")]
    UnknownKey { expected: String, found: String },
    #[error(
        "the signature by {key} does not verify: the note was changed or signed by another key"
    )]
    BadSignature { key: String },
}

/// The key ID of an Ed25519 public key under `name`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(KeyError::Name(name.to_owned()));
    }
    Ok(())
}

/// Splits `NAME+HASH+BASE64`, checks the name and the hash's shape, and decodes the key
/// data (`0x01` then 32 bytes).
fn split_key(text: &str) -> Result<(&str, u32, [u8; 32]), KeyError> {
    // The base64 part may itself contain '+': split off the name and hash only.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::VerifierShape(text.to_owned()));
    };
    check_name(name)?;
    if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::HashShape {
            found: hash.to_owned(),
        });
    }
    let id = u32::from_str_radix(hash, 16).map_err(|_| KeyError::HashShape {
        found: hash.to_owned(),
    })?;
    let bytes = BASE64.decode(data).map_err(|_| KeyError::Data)?;
    let Some((&ED25519, key)) = bytes.split_first() else {
        return Err(KeyError::Data);
    };
    let key: [u8; 32] = key.try_into().map_err(|_| KeyError::Data)?;
    Ok((name, id, key))
}

/// A key that verifies signatures of one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key `NAME+HASH+BASE64`.
    pub fn parse(text: &str) -> Result<NoteVerifier, KeyError> {
        let text = text.trim();
        let (name, id, key) = split_key(text)?;
        let expected = key_id(name, &key);
        if expected != id {
            return Err(KeyError::HashMismatch {
                found: format!("{id:08x}"),
                expected: format!("{expected:08x}"),
            });
        }
        let key = VerifyingKey::from_bytes(&key).map_err(|_| KeyError::Data)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key text `NAME+HASH+BASE64`.
    pub fn encode(&self) -> String {
        let mut data = vec![ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, BASE64.encode(data))
    }

    /// Checks `note`'s signature by this key and returns its text. Signatures by other keys
    /// are ignored, as the spec requires; a signature by this key that fails rejects the
    /// note.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let parsed = Note::parse(note)?;
        let mut found = Vec::new();
        for signature in &parsed.signatures {
            if signature.name != self.name || signature.id != self.id {
                found.push(format!("{}+{:08x}", signature.name, signature.id));
                continue;
            }
            let signature_bytes = ed25519_dalek::Signature::from_bytes(&signature.bytes);
            return self
                .key
                .verify_strict(parsed.text.as_bytes(), &signature_bytes)
                .map(|()| parsed.text)
                .map_err(|_| NoteError::BadSignature {
                    key: format!("{}+{:08x}", self.name, self.id),
                });
        }
        Err(NoteError::UnknownKey {
            expected: format!("{}+{:08x}", self.name, self.id),
            found: found.join(", "),
        })
    }
}

/// A key that signs notes. Its `Debug` form leaves the secret out.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a 32-byte Ed25519 seed (fresh random bytes for a new key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        Ok(NoteSigner {
            id: key_id(name, key.verifying_key().as_bytes()),
            name: name.to_owned(),
            key,
        })
    }

    /// Parses a signing key `PRIVATE+KEY+NAME+HASH+BASE64` (surrounding whitespace, such
    /// as the file's final newline, is ignored).
    pub fn parse(text: &str) -> Result<NoteSigner, KeyError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::SignerShape)?;
        let (name, id, seed) = split_key(rest).map_err(|error| match error {
            KeyError::VerifierShape(_) => KeyError::SignerShape,
            other => other,
        })?;
        let signer = NoteSigner::from_seed(name, seed)?;
        if signer.id != id {
            return Err(KeyError::HashMismatch {
                found: format!("{id:08x}"),
                expected: format!("{:08x}", signer.id),
            });
        }
        Ok(signer)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret key text `PRIVATE+KEY+NAME+HASH+BASE64`, as kept in the key file.
    pub fn encode(&self) -> String {
        let mut data = vec![ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            BASE64.encode(data)
        )
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline and hold no blank line or control
    /// character) and returns the whole note: the text, a blank line, one signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        if text.contains("\n\n") || text.starts_with('\n') {
            return Err(NoteError::Malformed {
                line: 1,
                what: "a note text this signer signs has no empty line".into(),
            });
        }
        let signature = self.key.sign(text.as_bytes());
        let mut data = self.id.to_be_bytes().to_vec();
        data.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(data)
        ))
    }
}

/// One signature line, parsed.
struct NoteSignature<'a> {
    name: &'a str,
    id: u32,
    bytes: [u8; 64],
}

/// A note split into its text and signature lines (not yet verified).
struct Note<'a> {
    text: &'a str,
    signatures: Vec<NoteSignature<'a>>,
}

/// UTF-8 is given (`&str`); the spec also forbids control characters other than newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    for (index, line) in text.split('\n').enumerate() {
        if let Some(c) = line.chars().find(|c| c.is_ascii_control()) {
            let what = if c == '\r' {
                "a carriage return: the note must use \\n line endings, not \\r\\n".to_owned()
            } else {
                format!("a control character (U+{:04X}) is not allowed", c as u32)
            };
            return Err(NoteError::Malformed {
                line: index + 1,
                what,
            });
        }
    }
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed {
            line: text.split('\n').count(),
            what: "the note must end with a newline".into(),
        });
    }
    Ok(())
}

impl<'a> Note<'a> {
    fn parse(note: &'a str) -> Result<Note<'a>, NoteError> {
        check_text(note)?;
        // The text ends at the last blank line: text, "\n", signature lines.
        let Some(split) = note.rfind("\n\n") else {
            return Err(NoteError::Malformed {
                line: note.split('\n').count(),
                what: "no blank line before the signature lines: this is not a signed note".into(),
            });
        };
        let text = &note[..=split];
        let first_line = text.split('\n').count();
        let mut signatures = Vec::new();
        let lines = note[split + 2..].strip_suffix('\n').unwrap_or_default();
        for (offset, line) in lines.split('\n').enumerate() {
            let number = first_line + offset;
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed {
                    line: number,
                    what: format!("more than {MAX_SIGNATURES} signatures"),
                });
            }
            signatures.push(
                parse_signature(line)
                    .map_err(|what| NoteError::Malformed { line: number, what })?,
            );
        }
        Ok(Note { text, signatures })
    }
}

fn parse_signature(line: &str) -> Result<NoteSignature<'_>, String> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| {
        format!("expected a signature line \"\u{2014} NAME SIGNATURE\", found {line:?}")
    })?;
    let (name, data) = rest
        .split_once(' ')
        .ok_or_else(|| format!("a signature line needs a key name and a signature: {line:?}"))?;
    check_name(name).map_err(|e| e.to_string())?;
    let bytes = BASE64
        .decode(data)
        .map_err(|_| format!("the signature of {name} is not base64"))?;
    if bytes.len() < 4 {
        return Err(format!("the signature of {name} is too short"));
    }
    let (id, signature) = bytes.split_at(4);
    let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    // Signatures of other algorithms have other lengths; they cannot be ours, so they are
    // kept with an all-zero signature that never verifies (and are skipped by key ID).
    let bytes = signature.try_into().unwrap_or([0; 64]);
    Ok(NoteSignature { name, id, bytes })
}

/// Splits a text holding signed notes one after another (a file the server appends each
/// checkpoint to) into the notes. Blank lines between notes are allowed.
pub fn split_notes(text: &str) -> Result<Vec<&str>, NoteError> {
    let mut notes = Vec::new();
    let mut start: Option<usize> = None;
    let mut in_signatures = false;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let is_signature = bare.starts_with(SIGNATURE_PREFIX);
        match (start, is_signature) {
            (None, true) => {
                return Err(NoteError::Malformed {
                    line: index + 1,
                    what: "a signature line without a note text before it".into(),
                });
            }
            (None, false) if bare.is_empty() => {}
            (None, false) => {
                start = Some(offset);
                in_signatures = false;
            }
            (Some(_), true) => in_signatures = true,
            (Some(begin), false) if in_signatures => {
                // The signature lines ended: the note before ends here.
                notes.push(&text[begin..offset]);
                start = (!bare.is_empty()).then_some(offset);
                in_signatures = false;
            }
            (Some(_), false) => {}
        }
        offset += line.len();
    }
    match start {
        Some(begin) if in_signatures => notes.push(&text[begin..]),
        Some(_) => {
            return Err(NoteError::Malformed {
                line: text.split('\n').count(),
                what: "the last note has no signature line".into(),
            });
        }
        None => {}
    }
    if notes.is_empty() {
        return Err(NoteError::Malformed {
            line: 1,
            what: "no signed note found".into(),
        });
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("countersign/test", [7; 32]).unwrap()
    }

    #[test]
    fn signs_and_opens_a_note() {
        let signer = signer();
        let note = signer.sign("hello\nworld\n").unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} countersign/test "));
        let verifier = signer.verifier();
        assert_eq!(verifier.open(&note), Ok("hello\nworld\n"));
        // The key texts round-trip.
        let vkey = verifier.encode();
        assert_eq!(NoteVerifier::parse(&vkey), Ok(verifier.clone()));
        let again = NoteSigner::parse(&format!("{}\n", signer.encode())).unwrap();
        assert_eq!(again.verifier(), verifier);
        assert!(!format!("{signer:?}").contains(&signer.encode()[20..]));
    }

    /// The example of the C2SP spec, verified with the verifier key of Go's `note` package
    /// test vectors.
    #[test]
    fn opens_a_note_signed_by_go_sumdb_note() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let note = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n\
                    \n\
                    \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let verifier = NoteVerifier::parse(vkey).unwrap();
        assert_eq!(
            verifier.open(note),
            Ok(
                "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
            )
        );
        // Ed25519 is deterministic: the Go signer key signs to the same note, byte for byte.
        let signer = NoteSigner::parse(
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        )
        .unwrap();
        assert_eq!(signer.verifier().encode(), vkey);
        let text = verifier.open(note).unwrap();
        assert_eq!(signer.sign(text).unwrap(), note);
        let changed = note.replace("cryptography", "encryption");
        assert!(matches!(
            verifier.open(&changed),
            Err(NoteError::BadSignature { .. })
        ));
    }

    #[test]
    fn refuses_bad_keys_and_notes() {
        type Expect = fn(&KeyError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, KeyError::VerifierShape(_))),
            ("name+zz+AAAA", |e| matches!(e, KeyError::HashShape { .. })),
            ("na me+01234567+AAAA", |e| matches!(e, KeyError::Name(_))),
            ("name+01234567+!!!", |e| matches!(e, KeyError::Data)),
            ("name+01234567+AQID", |e| matches!(e, KeyError::Data)),
        ];
        for (text, expected) in cases {
            let error = NoteVerifier::parse(text).unwrap_err();
            assert!(expected(&error), "{text:?}: {error:?}");
        }
        let mut vkey = signer().verifier().encode();
        vkey.replace_range(17..18, if &vkey[17..18] == "0" { "1" } else { "0" });
        assert!(matches!(
            NoteVerifier::parse(&vkey),
            Err(KeyError::HashMismatch { .. })
        ));
        assert_eq!(
            NoteSigner::parse("nope").unwrap_err(),
            KeyError::SignerShape
        );

        let verifier = signer().verifier();
        let other = NoteSigner::from_seed("countersign/other", [8; 32]).unwrap();
        let note = other.sign("text\n").unwrap();
        assert!(matches!(
            verifier.open(&note),
            Err(NoteError::UnknownKey { .. })
        ));
        for bad in [
            "text\n",
            "text\n\n- countersign/test AAAA\n",
            "text\r\n\n\u{2014} countersign/test AAAA\n",
            "text\n\n\u{2014} countersign/test AAAA",
        ] {
            assert!(
                matches!(verifier.open(bad), Err(NoteError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn splits_a_file_of_notes() {
        let signer = signer();
        let a = signer.sign("a\n1\n").unwrap();
        let b = signer.sign("b\n2\n").unwrap();
        let file = format!("{a}{b}\n{a}");
        let notes = split_notes(&file).unwrap();
        assert_eq!(notes, vec![a.as_str(), b.as_str(), a.as_str()]);
        assert!(split_notes("").is_err());
        assert!(split_notes("a\n1\n").is_err());
        assert!(split_notes("\u{2014} x AAAA\n").is_err());
    }
}
