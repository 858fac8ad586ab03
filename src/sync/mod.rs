//! Directory sync: users and groups mirrored from a directory into the host's user
//! store as they change, not at their next login (feature `sync`).
//!
//! A [`DirectorySource`] (the [`LdapSource`]: RFC 4533 refreshAndPersist) reports
//! changes; a [`DirectoryTarget`] (the SQLite store) applies them in batches, each
//! in one transaction with the cookie that resumes after it. The [`Synchronizer`]
//! runs the two as a Tokio task: it reconnects with backoff when the directory goes
//! away and resumes from the stored cookie, so a restart needs no full refresh.
//!
//! Accounts are matched by the entry's stable id (the link `(source, stable id)`,
//! which the LDAP login module uses too), and by login name only the first time an
//! entry is seen. Groups feed the same role mapping as logins; roles are recorded
//! as the source's mapped roles, so locally granted roles are never touched.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn example(corp_ldap: authchain::modules::LdapModule, store: Arc<dyn authchain::sync::DirectoryTarget>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use authchain::sync::{LdapSource, SyncScope, Synchronizer};
//!
//! // `store`: the SQLite store (feature `sqlite`), or any `DirectoryTarget`.
//! let source = LdapSource::builder(corp_ldap)
//!     .users("ou=people,dc=example,dc=org", "(objectClass=inetOrgPerson)")
//!     .groups("ou=groups,dc=example,dc=org", "(objectClass=groupOfNames)")
//!     .build()?;
//! let sync = Synchronizer::new(Arc::new(source), store, SyncScope::new("corp-ldap"));
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(sync.run(async { stopped.await.ok(); }));
//! // ... later:
//! stop.send(()).ok();
//! let summary = task.await??;
//! println!("{summary}");
//! # Ok(()) }
//! ```

pub(crate) mod ad;
mod change;
mod config;
#[cfg(feature = "metrics")]
mod lag;
pub(crate) mod ldap;
mod source;
mod target;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

pub use ad::{AD_GROUP_FILTER, AD_USER_FILTER, AdChanges, AdSettings, AdSource};
pub use change::{
    DeletePolicy, DirectoryChange, DirectoryGroup, DirectoryUser, EntryKind, SyncBatch, SyncReport, SyncScope,
};
pub use config::{ModeName, SourceName, SyncConfig};
pub use ldap::{DisabledRule, LdapSource, LdapSourceBuilder, SyncMode};
pub use source::{DirectorySource, Resume, SourceEvent};
pub use target::DirectoryTarget;

use crate::StoreError;
use crate::audit::AUDIT_TARGET;

/// Why synchronisation stopped or a session ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The LDAP directory could not be reached, failed, or broke the sync
    /// protocol during the search for `kind`. The synchroniser retries with
    /// backoff.
    #[error("directory: {kind} search: {cause}")]
    Directory {
        /// The search that failed.
        kind: EntryKind,
        /// How.
        #[source]
        cause: crate::modules::ldap::LdapError,
    },
    /// Another [`DirectorySource`] failed (its own error). The synchroniser
    /// retries with backoff.
    #[error("directory: {0}")]
    Source(#[source] crate::OtherError),
    /// The store failed; the batch was not applied. The synchroniser retries with
    /// backoff.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The directory's answer to the `kind` search was incomplete (a size, time or
    /// administrative limit on the service account, a referral, a refresh cut
    /// short): the entries it did list were applied, but nothing it left out was
    /// taken as gone — no account is disabled or deleted for it. The
    /// synchroniser retries with backoff; raise the limits of the sync account
    /// (OpenLDAP: `limits dn.exact="<sync dn>" size=unlimited time=unlimited`).
    #[error("directory: {kind} search: incomplete answer ({reason}); nothing was disabled")]
    PartialRefresh {
        /// The search.
        kind: EntryKind,
        /// How it was cut short.
        reason: PartialRefresh,
    },
}

/// How a directory's refresh was cut short ([`SyncError::PartialRefresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartialRefresh {
    /// The search ended with this LDAP result code before its refresh was done:
    /// 3 timeLimitExceeded, 4 sizeLimitExceeded, 10 referral, 11
    /// adminLimitExceeded.
    #[error("the search ended with result code {code}")]
    Ended {
        /// The LDAP result code.
        code: u32,
    },
    /// The directory answered part of the refresh with a referral (a search
    /// continuation reference): entries under it were not listed.
    #[error("the directory sent a referral; referrals are not followed")]
    Referral,
}

/// Where the synchroniser is, for progress display and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPhase {
    /// Connecting (or waiting to reconnect).
    #[default]
    Connecting,
    /// Receiving the initial content (or what changed while away).
    Refreshing,
    /// The refresh is done; live changes are applied as they come.
    Live,
    /// Waiting for the next poll (refresh-only mode).
    Waiting,
    /// [`Synchronizer::run`] returned.
    Stopped,
}

/// A snapshot of the synchroniser, from [`Synchronizer::status`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SyncStatus {
    /// The phase.
    pub phase: SyncPhase,
    /// Sessions started (1 + reconnections).
    pub sessions: u64,
    /// Whether the current session resumed from stored cookies.
    pub resumed: bool,
    /// Changes received in the current session before its refresh was done: the
    /// size of the catch-up (everything on a full refresh, only what changed
    /// when resuming).
    pub refresh_changes: u64,
    /// Whether the current session's refresh is done.
    pub refreshed: bool,
    /// Batches applied since the start.
    pub batches: u64,
    /// What the store changed since the start.
    pub report: SyncReport,
    /// The last error, if the last session failed.
    pub last_error: Option<SyncError>,
    /// Refreshes that ended incomplete ([`SyncError::PartialRefresh`]) since
    /// the start: each left every account it did not list untouched.
    pub partial_refreshes: u64,
    /// `Some(interval)` while the source polls with refresh-only searches: `mode =
    /// "poll"`, or the fallback of `mode = "persist"` after the directory refused a
    /// persistent search. `None` while it follows a persistent search.
    pub poll_interval: Option<Duration>,
}

/// Runs a [`DirectorySource`] into a [`DirectoryTarget`].
pub struct Synchronizer {
    source: Arc<dyn DirectorySource>,
    target: Arc<dyn DirectoryTarget>,
    scope: SyncScope,
    max_batch: usize,
    min_backoff: Duration,
    max_backoff: Duration,
    status: watch::Sender<SyncStatus>,
    /// Cookies that came without any change (a search's new-cookie message when
    /// only the other search's entries changed), not yet stored: they go with the
    /// next batch, after [`COOKIE_DELAY`] of quiet, or at the end.
    deferred: std::sync::Mutex<Vec<(EntryKind, Vec<u8>)>>,
}

/// How long a cookie that came without changes may wait for a batch to go with.
/// Writing it at once would be a transaction of its own, just ahead of the
/// change the other search is about to deliver; losing it costs nothing but a
/// resume from the cookie before it.
const COOKIE_DELAY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Synchronizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synchronizer")
            .field("source", &self.source.id())
            .field("scope", &self.scope)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// Default most changes per transaction.
pub const DEFAULT_MAX_BATCH: usize = 500;

impl Synchronizer {
    /// A synchroniser with batches of up to 500 changes and reconnect backoff from
    /// 100 ms doubling up to 30 s.
    pub fn new(source: Arc<dyn DirectorySource>, target: Arc<dyn DirectoryTarget>, scope: SyncScope) -> Self {
        Synchronizer {
            target,
            scope,
            max_batch: DEFAULT_MAX_BATCH,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            status: watch::channel(SyncStatus {
                poll_interval: source.poll_interval(),
                ..SyncStatus::default()
            })
            .0,
            source,
            deferred: std::sync::Mutex::default(),
        }
    }

    /// Most changes applied in one transaction (at least 1).
    pub fn max_batch(mut self, changes: usize) -> Self {
        self.max_batch = changes.max(1);
        self
    }

    /// Reconnect delays: from `min`, doubling after each failed session, up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Follows the synchroniser's progress.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` completes, and returns what changed. Directory and
    /// store failures are logged and retried with backoff; they never end the run.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<SyncReport, SyncError> {
        tokio::pin!(shutdown);
        let mut backoff = self.min_backoff;
        loop {
            let outcome = tokio::select! {
                () = &mut shutdown => break,
                outcome = self.session() => outcome,
            };
            // A session may have turned a persistent source into a polling one.
            let poll_interval = self.source.poll_interval();
            self.status.send_modify(|s| s.poll_interval = poll_interval);
            let wait = match outcome {
                Ok(refreshed) => {
                    self.status.send_modify(|s| s.last_error = None);
                    if refreshed {
                        backoff = self.min_backoff;
                    }
                    match poll_interval {
                        Some(every) => {
                            self.status.send_modify(|s| s.phase = SyncPhase::Waiting);
                            every
                        }
                        // A persistent session that ends without error is a
                        // directory that hung up: reconnect.
                        None => backoff,
                    }
                }
                Err(err) => {
                    if let SyncError::PartialRefresh { kind, reason } = &err {
                        warn!(target: AUDIT_TARGET, source = %self.source.id(), %kind, %reason,
                            "directory refresh incomplete: accounts it did not list are kept as they are (check the sync account's size and time limits)");
                        self.status.send_modify(|s| s.partial_refreshes += 1);
                    }
                    warn!(target: AUDIT_TARGET, source = %self.source.id(), error = %err,
                        retry_in = ?backoff, "directory sync interrupted");
                    self.status.send_modify(|s| {
                        s.last_error = Some(err.clone());
                        s.phase = SyncPhase::Connecting;
                    });
                    let wait = backoff;
                    backoff = (backoff * 2).min(self.max_backoff);
                    wait
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(err) = self.store_deferred_cookies().await {
            warn!(source = %self.source.id(), error = %err, "directory sync cookie not stored at shutdown");
        }
        self.status.send_modify(|s| s.phase = SyncPhase::Stopped);
        let report = self.status.borrow().report.clone();
        info!(source = %self.source.id(), %report, "directory sync stopped");
        Ok(report)
    }

    /// One session: resume from the stored cookies, apply until the source stops.
    /// `Ok(true)` when every refresh of the session completed.
    async fn session(&self) -> Result<bool, SyncError> {
        let source_id = self.source.id();
        let resume = Resume {
            users: self.target.sync_cookie(source_id, EntryKind::User).await?,
            groups: self.target.sync_cookie(source_id, EntryKind::Group).await?,
        };
        let resumed = resume.users.is_some() || resume.groups.is_some();
        self.status.send_modify(|s| {
            s.sessions += 1;
            s.resumed = resumed;
            s.refresh_changes = 0;
            s.refreshed = false;
            s.phase = SyncPhase::Refreshing;
        });
        info!(source = %source_id, resumed, "directory sync session started");
        let (events, received) = mpsc::channel(4 * self.max_batch);
        let session = self.source.session(resume, events);
        let applied = self.apply(received);
        tokio::pin!(session, applied);
        let mut ended = None;
        let refreshed = loop {
            tokio::select! {
                refreshed = &mut applied => break refreshed,
                result = &mut session, if ended.is_none() => ended = Some(result),
            }
        };
        // A store failure ends the session here (dropping the search), even while
        // the source waits for the directory's next change.
        let refreshed = refreshed?;
        match ended {
            Some(result) => result?,
            None => session.await?,
        }
        Ok(refreshed)
    }

    /// Applies events as they come, batching whatever is already waiting.
    async fn apply(&self, mut received: mpsc::Receiver<SourceEvent>) -> Result<bool, SyncError> {
        let mut refreshing = self.source.kinds();
        let mut refreshed_any = false;
        loop {
            let first = if self.deferred_cookies().is_empty() {
                received.recv().await
            } else {
                match tokio::time::timeout(COOKIE_DELAY, received.recv()).await {
                    Ok(event) => event,
                    Err(_quiet) => {
                        self.store_deferred_cookies().await?;
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            let mut batch = SyncBatch {
                cookies: self.deferred_cookies().clone(),
                ..SyncBatch::default()
            };
            let mut done = Vec::new();
            let mut next = Some(first);
            while let Some(event) = next.take() {
                match event {
                    SourceEvent::Change(change) => batch.changes.push(change),
                    SourceEvent::Cookie(kind, cookie) => {
                        batch.cookies.retain(|(k, _)| *k != kind);
                        batch.cookies.push((kind, cookie));
                    }
                    SourceEvent::RefreshDone(kind) => done.push(kind),
                }
                if batch.changes.len() < self.max_batch {
                    next = received.try_recv().ok();
                }
            }
            if batch.changes.is_empty() && done.is_empty() {
                *self.deferred_cookies() = batch.cookies;
                continue;
            }
            let report = self.target.apply(&self.scope, &batch).await?;
            self.deferred_cookies().clear();
            if report.skipped > 0 {
                for change in &batch.changes {
                    if let DirectoryChange::Skipped { sync_id, dn, reason } = change {
                        warn!(target: AUDIT_TARGET, source = %self.source.id(), ?sync_id, ?dn, %reason,
                            "directory entry skipped");
                    }
                }
            }
            refreshing.retain(|kind| !done.contains(kind));
            refreshed_any |= !done.is_empty();
            let in_refresh = !refreshing.is_empty();
            let changes = batch
                .changes
                .iter()
                .filter(|c| !matches!(c, DirectoryChange::RefreshedPresent { .. }))
                .count() as u64;
            self.status.send_modify(|s| {
                s.batches += 1;
                s.report.add(&report);
                if in_refresh || !done.is_empty() {
                    s.refresh_changes += changes;
                }
                if !in_refresh {
                    s.phase = SyncPhase::Live;
                    s.refreshed = true;
                }
            });
            if !done.is_empty() && !in_refresh {
                let status = self.status.borrow().clone();
                info!(source = %self.source.id(), resumed = status.resumed, changes = status.refresh_changes,
                    report = %status.report, "directory refresh done");
            }
        }
        self.store_deferred_cookies().await?;
        Ok(refreshed_any && refreshing.is_empty())
    }

    fn deferred_cookies(&self) -> std::sync::MutexGuard<'_, Vec<(EntryKind, Vec<u8>)>> {
        // Only this task touches the list; a panic elsewhere cannot leave it half-made.
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores the cookies that came without changes, if any (one transaction).
    async fn store_deferred_cookies(&self) -> Result<(), SyncError> {
        let cookies = self.deferred_cookies().clone();
        if cookies.is_empty() {
            return Ok(());
        }
        let batch = SyncBatch {
            cookies,
            ..SyncBatch::default()
        };
        self.target.apply(&self.scope, &batch).await?;
        self.deferred_cookies().clear();
        Ok(())
    }
}
