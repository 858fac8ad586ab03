//! One-time use of identifiers that a peer must never get accepted twice (SAML
//! assertion ids): a [`ReplayCache`] trait and a bounded in-memory implementation.
//!
//! An id is remembered until the moment after which the message carrying it would
//! be refused anyway (its `NotOnOrAfter` plus the clock skew), so a bounded cache
//! suffices: when it is full of live entries it refuses new ones rather than
//! forget one early (forgetting would let that message be replayed).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;

/// Default bound on the ids a [`MemoryReplayCache`] holds.
pub const DEFAULT_MAX_REPLAY_ENTRIES: usize = 100_000;

/// Why an id could not be checked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The cache holds as many live ids as it may.
    #[error("the replay cache is full")]
    Full,
    /// The storage backend failed.
    #[error("replay cache failed: {0}")]
    Backend(#[source] crate::error::OtherError),
    /// The id was accepted before: a replayed message.
    #[error("this message was already accepted once (replay)")]
    Replayed,
}

/// Remembers ids that were accepted once. Several application instances behind a
/// load balancer share one cache (otherwise a message replayed to another instance
/// is accepted there).
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// Records `id` as used until `expires_at`. Answers `true` when the id was not
    /// seen before (and is now recorded), `false` when it was: a replay.
    async fn check_and_remember(&self, id: &str, expires_at: SystemTime) -> Result<bool, ReplayError>;
}

/// Records `key` as used until `until`: a replay is [`AuthError::Rejected`] with
/// [`ReplayError::Replayed`] (logged as a replayed `what`), a cache failure is
/// `module`'s outage.
#[cfg(any(feature = "oidc", feature = "saml"))]
pub(crate) async fn accept_once(
    cache: &dyn ReplayCache,
    module: &str,
    key: &str,
    until: SystemTime,
    what: &str,
) -> Result<(), crate::AuthError> {
    match cache.check_and_remember(key, until).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(target: crate::audit::AUDIT_TARGET, module, what, "replayed message refused");
            crate::metrics::replay_refused(module);
            Err(crate::AuthError::rejected(module, ReplayError::Replayed))
        }
        Err(err) => Err(crate::AuthError::unavailable(module, err)),
    }
}

impl fmt::Debug for dyn ReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplayCache")
    }
}

/// An in-memory [`ReplayCache`], bounded in size. Ids are also kept in order of
/// expiry, so expired ones are dropped as they expire (O(log n) per id) and a
/// cache full of live ids refuses in O(1), never scanning.
pub struct MemoryReplayCache {
    entries: Mutex<Entries>,
    max: usize,
}

#[derive(Default)]
struct Entries {
    until: HashMap<Arc<str>, SystemTime>,
    /// Every id of `until`, soonest expiry first.
    by_expiry: BinaryHeap<Reverse<(SystemTime, Arc<str>)>>,
}

impl Entries {
    fn purge_expired(&mut self, now: SystemTime) {
        while let Some(Reverse((until, _))) = self.by_expiry.peek()
            && *until <= now
        {
            if let Some(Reverse((_, id))) = self.by_expiry.pop() {
                self.until.remove(&id);
            }
        }
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("max", &self.max)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        MemoryReplayCache::new(DEFAULT_MAX_REPLAY_ENTRIES)
    }
}

impl MemoryReplayCache {
    /// A cache holding at most `max` live ids.
    pub fn new(max: usize) -> Self {
        MemoryReplayCache {
            entries: Mutex::new(Entries::default()),
            max: max.max(1),
        }
    }

    /// How many ids are held (live, and expired ones not purged yet).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.until.len()).unwrap_or(0)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The check against an explicit clock (the trait method uses the system clock).
    pub fn check_and_remember_at(
        &self,
        id: &str,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<bool, ReplayError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| ReplayError::Backend(crate::error::OtherError::msg("replay cache lock poisoned")))?;
        entries.purge_expired(now);
        if entries.until.contains_key(id) {
            return Ok(false);
        }
        if expires_at <= now {
            // Already past its validity: nothing to remember, and the caller refuses
            // such a message anyway.
            return Ok(true);
        }
        if entries.until.len() >= self.max {
            return Err(ReplayError::Full);
        }
        let id: Arc<str> = Arc::from(id);
        entries.until.insert(id.clone(), expires_at);
        entries.by_expiry.push(Reverse((expires_at, id)));
        Ok(true)
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn check_and_remember(&self, id: &str, expires_at: SystemTime) -> Result<bool, ReplayError> {
        self.check_and_remember_at(id, expires_at, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ids_are_one_time_until_they_expire_and_the_bound_holds() {
        let cache = MemoryReplayCache::new(2);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = now + Duration::from_secs(300);
        assert_eq!(cache.check_and_remember_at("a", later, now), Ok(true));
        assert_eq!(cache.check_and_remember_at("a", later, now), Ok(false));
        assert_eq!(
            cache.check_and_remember_at("b", now + Duration::from_secs(10), now),
            Ok(true)
        );
        // Full of live ids: refuse rather than forget one.
        assert_eq!(
            cache.check_and_remember_at("c", later, now),
            Err(ReplayError::Full)
        );
        // Once `b` expired it makes room; `a` is still remembered.
        let after_b = now + Duration::from_secs(11);
        assert_eq!(cache.check_and_remember_at("c", later, after_b), Ok(true));
        assert_eq!(cache.check_and_remember_at("a", later, after_b), Ok(false));
        // After its horizon an id is forgotten (its message is refused by time anyway).
        assert_eq!(
            cache.check_and_remember_at("a", later + Duration::from_secs(400), later),
            Ok(true)
        );
    }
}
