//! Where directory changes come from: the [`DirectorySource`] trait.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{DirectoryChange, EntryKind, SyncError};

/// One message of a source session, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceEvent {
    /// A change to apply.
    Change(DirectoryChange),
    /// Everything sent so far on the `kind` search is covered by `cookie`.
    Cookie(EntryKind, Vec<u8>),
    /// The initial refresh of the `kind` search finished; live changes follow
    /// (persist mode) or the poll is over (refresh-only mode).
    RefreshDone(EntryKind),
}

/// Where the cookies of the last applied batch say to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// Cookie of the user search, if any.
    pub users: Option<Vec<u8>>,
    /// Cookie of the group search, if any.
    pub groups: Option<Vec<u8>>,
}

/// A directory that reports its users and groups and then their changes.
#[async_trait]
pub trait DirectorySource: Send + Sync {
    /// The source id (the provider of links and mapped roles).
    fn id(&self) -> &str;

    /// Runs one session: connects, resumes from `resume` (a full refresh without
    /// cookies), sends events in order, and keeps sending live changes until the
    /// connection fails (an `Err`), `events` is closed (`Ok`), or — for a
    /// polling source — the refresh is over (`Ok`).
    async fn session(&self, resume: Resume, events: mpsc::Sender<SourceEvent>) -> Result<(), SyncError>;

    /// The searches a session runs, each ending its refresh with
    /// [`SourceEvent::RefreshDone`].
    fn kinds(&self) -> Vec<EntryKind> {
        vec![EntryKind::User, EntryKind::Group]
    }

    /// How long to wait before the next session after one ended `Ok` (a polling
    /// interval); `None` for a persistent source, whose sessions only end on failure.
    fn poll_interval(&self) -> Option<std::time::Duration> {
        None
    }
}
