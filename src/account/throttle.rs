//! Login throttling: failures counted per (login name, client address) and per
//! client address, in a sliding window.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use hashlink::LinkedHashMap;

use crate::{AuthError, StoreError};

/// Failures of one key inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureCount {
    /// How many.
    pub count: u32,
    /// The oldest of them (it leaves the window first).
    pub oldest: Option<SystemTime>,
}

/// Where failure counters live. In memory for one instance; a shared store
/// (Redis, SQL) for several instances of the host behind a load balancer.
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// The failures recorded for `key` at or after `since`.
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError>;
    /// Records a failure for `key` at `at`; entries older than `at - window` may be
    /// dropped.
    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError>;
    /// Forgets the failures of `key`.
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

/// The most failures [`MemoryAttemptStore::new`] keeps per key.
pub const MAX_FAILURES_PER_KEY: usize = 10_000;

/// An [`AttemptStore`] in memory, bounded: at most `max_keys` keys and at most
/// `max_per_key` timestamps per key. Keys are kept in the order of their last
/// failure, so windows that ended and, at the bound, the stalest window are
/// dropped from the front: O(1) amortised per failure, however full the store.
pub struct MemoryAttemptStore {
    inner: Mutex<Windows>,
    max_keys: usize,
    max_per_key: usize,
}

/// Each key's failure times (oldest first), keys ordered by their last failure.
type Windows = LinkedHashMap<String, VecDeque<SystemTime>>;

impl Default for MemoryAttemptStore {
    fn default() -> Self {
        MemoryAttemptStore::new()
    }
}

impl MemoryAttemptStore {
    /// At most 100,000 keys and 10,000 failures per key (so limits up to 10,000
    /// per window can trigger).
    pub fn new() -> Self {
        MemoryAttemptStore::with_bounds(100_000, MAX_FAILURES_PER_KEY)
    }

    /// Explicit bounds.
    pub fn with_bounds(max_keys: usize, max_per_key: usize) -> Self {
        MemoryAttemptStore {
            inner: Mutex::new(LinkedHashMap::new()),
            max_keys: max_keys.max(1),
            max_per_key: max_per_key.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of keys held (for tests of the bound).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl AttemptStore for MemoryAttemptStore {
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError> {
        let map = self.lock();
        let Some(times) = map.get(key) else {
            return Ok(FailureCount::default());
        };
        // Times are recorded in order: the window starts at the first one >= since.
        let first = times.partition_point(|t| *t < since);
        Ok(FailureCount {
            count: u32::try_from(times.len() - first).unwrap_or(u32::MAX),
            oldest: times.get(first).copied(),
        })
    }

    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError> {
        let cutoff = at.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut map = self.lock();
        // Keys whose last failure left the window sit at the front.
        while map
            .front()
            .is_some_and(|(_, times)| times.back().is_none_or(|t| *t < cutoff))
        {
            map.pop_front();
        }
        if map.to_back(key).is_none() {
            if map.len() >= self.max_keys {
                // Full of live keys: the stalest window goes first.
                map.pop_front();
            }
            map.insert(key.to_owned(), VecDeque::new());
        }
        if let Some(times) = map.get_mut(key) {
            while times.front().is_some_and(|t| *t < cutoff) || times.len() >= self.max_per_key {
                times.pop_front();
            }
            times.push_back(at);
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }
}

/// Throttling limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottlePolicy {
    /// Failures allowed per (login name, client address) in the window.
    pub max_attempts: u32,
    /// Failures allowed per client address (all login names) in the window.
    pub max_attempts_per_ip: u32,
    /// The sliding window.
    #[serde(with = "iso_window")]
    pub window: Duration,
}

mod iso_window {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <crate::iso8601::IsoDuration as serde::Deserialize>::deserialize(d).map(|iso| iso.0)
    }
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            max_attempts: 5,
            max_attempts_per_ip: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// The throttle gate the chain runs before any module.
#[derive(Clone)]
pub(crate) struct Throttle {
    pub(crate) policy: ThrottlePolicy,
    pub(crate) store: Arc<dyn AttemptStore>,
}

/// Login names longer than this share a key with their prefix, so a hostile name
/// cannot make the store hold megabytes per attempt.
const MAX_KEY_LOGIN: usize = 256;

/// The two counter keys of one login attempt: (login name, address) and address.
/// Made once per attempt, for the gate and the bookkeeping after it.
pub(crate) struct ThrottleKeys {
    pair: String,
    per_ip: String,
}

impl Throttle {
    /// The counter keys of `login` from `ip`.
    pub(crate) fn keys(login: &str, ip: IpAddr) -> ThrottleKeys {
        let login = crate::net::truncate(login, MAX_KEY_LOGIN);
        ThrottleKeys {
            pair: format!("login\u{1f}{login}\u{1f}{ip}"),
            per_ip: format!("ip\u{1f}{ip}"),
        }
    }

    fn unavailable(err: StoreError) -> AuthError {
        AuthError::unavailable("throttle", err)
    }

    /// `Err(Throttled)` when either counter is at its limit.
    pub(crate) async fn check(&self, keys: &ThrottleKeys, now: SystemTime) -> Result<(), AuthError> {
        let since = now
            .checked_sub(self.policy.window)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for (key, limit) in [
            (&keys.pair, self.policy.max_attempts),
            (&keys.per_ip, self.policy.max_attempts_per_ip),
        ] {
            let failures = self
                .store
                .failures_since(key, since)
                .await
                .map_err(Self::unavailable)?;
            if failures.count >= limit {
                let oldest = failures.oldest.unwrap_or(now);
                let free_at = oldest + self.policy.window;
                let retry_after = free_at
                    .duration_since(now)
                    .unwrap_or_default()
                    .max(Duration::from_secs(1));
                return Err(AuthError::Throttled {
                    retry_after: Duration::from_secs(retry_after.as_secs_f64().ceil() as u64),
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn failure(&self, keys: &ThrottleKeys, now: SystemTime) -> Result<(), AuthError> {
        for key in [&keys.pair, &keys.per_ip] {
            self.store
                .record_failure(key, now, self.policy.window)
                .await
                .map_err(Self::unavailable)?;
        }
        Ok(())
    }

    pub(crate) async fn success(&self, keys: &ThrottleKeys) -> Result<(), AuthError> {
        self.store.clear(&keys.pair).await.map_err(Self::unavailable)
    }
}
