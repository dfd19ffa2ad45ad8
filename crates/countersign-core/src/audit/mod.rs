//! The audit chain's hashing: each entry carries the SHA-256 of its predecessor over a
//! canonical encoding, so that changing, removing or reordering any entry breaks every link
//! after it. The store persists entries; this module only says what the links are.
//!
//! What the chain alone cannot show, its submodules add: [`checkpoint`] (signed chain heads
//! kept elsewhere, which expose entries cut from the end), [`note`] (the C2SP signed-note
//! envelope they travel in) and [`replay`] (an action's state re-derived from its entries,
//! which exposes a stored row edited behind the log's back).

pub mod checkpoint;
pub mod note;
pub mod replay;

use sha2::{Digest, Sha256};

/// The `prev` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The 32 bytes a 64-digit hex string (upper or lower case) spells; `None` for anything else.
pub fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The fields of an audit entry that the chain covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFields<'a> {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_millis: i64,
    pub kind: &'a str,
    pub actor: &'a str,
    pub action_id: &'a str,
    /// The entry's JSON body exactly as stored (hashing the stored text, not a
    /// re-serialisation, keeps the hash independent of JSON map ordering).
    pub body: &'a str,
}

/// The hash of an entry: SHA-256 over `prev` and a length-prefixed encoding of the fields,
/// so that no two different entries encode to the same bytes.
pub fn entry_hash(prev: &[u8; 32], entry: &EntryFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"countersign-audit-v1\0");
    hasher.update(prev);
    hasher.update(entry.seq.to_be_bytes());
    hasher.update(entry.at_millis.to_be_bytes());
    for field in [entry.kind, entry.actor, entry.action_id, entry.body] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

/// Where verification of a chain stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// Entry `seq` does not follow its predecessor (missing or reordered entries).
    Gap { expected_seq: u64, found_seq: u64 },
    /// Entry `seq`'s stored `prev` is not the hash of the entry before it.
    PrevMismatch { seq: u64 },
    /// Entry `seq`'s stored hash does not match its contents (the entry was changed).
    HashMismatch { seq: u64 },
}

impl ChainBreak {
    pub fn seq(&self) -> u64 {
        match self {
            ChainBreak::Gap { expected_seq, .. } => *expected_seq,
            ChainBreak::PrevMismatch { seq } | ChainBreak::HashMismatch { seq } => *seq,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ChainBreak::Gap {
                expected_seq,
                found_seq,
            } => format!(
                "entry {expected_seq} is missing or out of order (found entry {found_seq} in its place)"
            ),
            ChainBreak::PrevMismatch { seq } => format!(
                "entry {seq} does not link to the entry before it (an earlier entry was changed, removed or reordered)"
            ),
            ChainBreak::HashMismatch { seq } => {
                format!("entry {seq} was changed after it was written")
            }
        }
    }
}

/// Checks entries one by one, in stored order. Sequence numbers start at 1.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: u64,
    prev: [u8; 32],
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev: GENESIS,
        }
    }
}

impl Verifier {
    /// Checks the next entry, given its stored `prev` and `hash`.
    pub fn check(
        &mut self,
        entry: &EntryFields<'_>,
        stored_prev: &[u8],
        stored_hash: &[u8],
    ) -> Result<(), ChainBreak> {
        if entry.seq != self.expected_seq {
            return Err(ChainBreak::Gap {
                expected_seq: self.expected_seq,
                found_seq: entry.seq,
            });
        }
        if stored_prev != self.prev {
            return Err(ChainBreak::PrevMismatch { seq: entry.seq });
        }
        let hash = entry_hash(&self.prev, entry);
        if stored_hash != hash {
            return Err(ChainBreak::HashMismatch { seq: entry.seq });
        }
        self.prev = hash;
        self.expected_seq += 1;
        Ok(())
    }

    /// Entries verified so far.
    pub fn count(&self) -> u64 {
        self.expected_seq - 1
    }

    /// The hash of the last verified entry.
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, body: &str) -> EntryFields<'_> {
        EntryFields {
            seq,
            at_millis: 1_700_000_000_000 + seq as i64,
            kind: "submitted",
            actor: "bot",
            action_id: "a1",
            body,
        }
    }

    #[test]
    fn detects_change_removal_and_reordering() {
        let bodies = ["{}", "{\"x\":1}", "{\"y\":2}", "{}"];
        let mut prev = GENESIS;
        let mut chain = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let e = entry(i as u64 + 1, body);
            let hash = entry_hash(&prev, &e);
            chain.push((e, prev, hash));
            prev = hash;
        }
        let verify = |chain: &[(EntryFields<'_>, [u8; 32], [u8; 32])]| {
            let mut v = Verifier::default();
            for (e, p, h) in chain {
                v.check(e, p, h)?;
            }
            Ok::<u64, ChainBreak>(v.count())
        };
        assert_eq!(verify(&chain), Ok(4));
        let head = chain[3].2;
        assert_eq!(hash_from_hex(&hex(&head)), Some(head));
        assert_eq!(hash_from_hex("ab"), None);

        let mut changed = chain.clone();
        changed[1].0.body = "{\"x\":2}";
        assert_eq!(verify(&changed), Err(ChainBreak::HashMismatch { seq: 2 }));

        let mut removed = chain.clone();
        removed.remove(2);
        assert_eq!(verify(&removed).unwrap_err().seq(), 3);

        let mut reordered = chain.clone();
        reordered.swap(1, 2);
        assert_eq!(verify(&reordered).unwrap_err().seq(), 2);

        // Renumbering after a removal still breaks the link.
        let mut renumbered = chain.clone();
        renumbered.remove(1);
        renumbered[1].0.seq = 2;
        renumbered[2].0.seq = 3;
        assert_eq!(
            verify(&renumbered),
            Err(ChainBreak::PrevMismatch { seq: 2 })
        );
    }
}
