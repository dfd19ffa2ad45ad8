//! What a client may hold of the server: bytes per request field and per page, connections,
//! open waits, and how long a connection may take to send a request or sit idle. Every
//! number here comes from the configuration, with a default; none is left to the client.

use std::time::Duration;

/// Descriptors kept back from connections for the database (writer, readers, their WAL and
/// journal files), the log, the policy file and a refused connection's brief socket.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The connection cap when the configuration does not set one and the descriptor limit
/// allows it: each connection costs a descriptor and some 20 KiB of buffers and task state,
/// so this bounds the memory idle clients can tie up to well under 100 MB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Limits on what callers may send and hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; larger answers `413`.
    pub max_body_bytes: usize,
    /// Largest `args` (as JSON) a person can be asked to review; larger answers `422`.
    pub max_args_bytes: usize,
    /// Largest `reasoning` (UTF-8 bytes); larger answers `422`.
    pub max_reasoning_bytes: usize,
    /// Largest `context` (as JSON); larger answers `422`.
    pub max_context_bytes: usize,
    /// A listing page stops early, with a `next_cursor`, once its items hold more than this
    /// many bytes of stored data (a page always holds at least one item).
    pub max_page_bytes: usize,
    /// Longest `?wait=` honoured, in seconds; longer waits are shortened to this.
    pub max_wait_seconds: u64,
    /// Long-polls and event streams one token may have open at once; more answer `429`.
    pub max_waits_per_token: usize,
    /// Connections served at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// From the first byte of a request to the end of its header.
    pub header_timeout: Duration,
    /// From the end of a request's header to the end of its body.
    pub body_timeout: Duration,
    /// How long a connection may wait for its next request, or leave a response unread.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_args_bytes: 64 * 1024,
            max_reasoning_bytes: 32 * 1024,
            max_context_bytes: 64 * 1024,
            max_page_bytes: 1024 * 1024,
            max_wait_seconds: 300,
            max_waits_per_token: 100,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The connection cap: the configured one if the process has the descriptors for it, else
/// the default shrunk to fit. `descriptors` is the process's open-file limit (`None`:
/// unknown, the configured value or the default is taken as it is).
pub fn connection_cap(
    configured: Option<usize>,
    descriptors: Option<u64>,
) -> Result<usize, String> {
    let room = descriptors
        .map(|d| usize::try_from(d.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX));
    match (configured, room) {
        (Some(0), _) => Err("expected at least 1, found 0".to_owned()),
        (_, Some(0)) => Err(format!(
            "this process may open only {} files (ulimit -n); the server needs more than {RESERVED_DESCRIPTORS}",
            descriptors.unwrap_or_default()
        )),
        (Some(wanted), Some(room)) if wanted > room => Err(format!(
            "{wanted} connections need {} open files, but this process may open only {} \
             (ulimit -n); lower max_connections or raise the limit",
            wanted as u64 + RESERVED_DESCRIPTORS,
            descriptors.unwrap_or_default()
        )),
        (Some(wanted), _) => Ok(wanted),
        (None, Some(room)) => Ok(DEFAULT_MAX_CONNECTIONS.min(room)),
        (None, None) => Ok(DEFAULT_MAX_CONNECTIONS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Configured cap, descriptor limit, and the cap or (part of) the error.
    type Case = (Option<usize>, Option<u64>, Result<usize, &'static str>);

    #[test]
    fn connection_caps() {
        #[rustfmt::skip]
        let cases: [Case; 8] = [
            (None, None, Ok(DEFAULT_MAX_CONNECTIONS)),
            (None, Some(1_048_576), Ok(DEFAULT_MAX_CONNECTIONS)),
            (None, Some(1024), Ok(960)),
            (None, Some(256), Ok(192)),
            (Some(100), Some(256), Ok(100)),
            (Some(500), Some(256), Err("500 connections need 564 open files, but this process may open only 256")),
            (Some(0), None, Err("expected at least 1")),
            (None, Some(64), Err("may open only 64 files")),
        ];
        for (configured, descriptors, expected) in cases {
            let got = connection_cap(configured, descriptors);
            match (&got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(*got, expected),
                (Err(got), Err(expected)) => assert!(got.contains(expected), "{got}"),
                _ => panic!("{configured:?} {descriptors:?}: {got:?}"),
            }
        }
    }
}
