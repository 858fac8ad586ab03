//! Where directory changes land: the [`DirectoryTarget`] trait.

use async_trait::async_trait;

use super::{EntryKind, SyncBatch, SyncReport, SyncScope};
use crate::StoreError;

/// A user store that mirrors a directory.
///
/// [`apply`](DirectoryTarget::apply) takes a whole batch and applies it as one
/// transaction together with the batch's cookies, so a crash leaves the store at
/// the last applied batch and the synchroniser resumes from there. Within a batch, an
/// unusable change (a login name that belongs to another directory entry, say) is
/// reported in [`SyncReport::skipped`] and changes nothing; only a backend failure
/// fails the batch.
#[async_trait]
pub trait DirectoryTarget: Send + Sync {
    /// The cookie stored for the `kind` search of `source`, if any.
    async fn sync_cookie(&self, source: &str, kind: EntryKind) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies `batch` whole or not at all.
    async fn apply(&self, scope: &SyncScope, batch: &SyncBatch) -> Result<SyncReport, StoreError>;
}
