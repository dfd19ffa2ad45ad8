//! The backend-independent story every store must pass. Public (behind the `conformance`
//! feature) so that each backend's tests run the very same story.

use crate::Store;

/// Runs the story against `store`, which must be empty. Panics (as tests do) on the first
/// deviation.
pub async fn story(store: &dyn Store) {
    let _ = store;
}
