//! Where the short-lived state of logins lives: pending redirect logins
//! ([`FlowStore`]), the replay cache ([`ReplayCache`]) and throttle counters
//! ([`AttemptStore`]). One process keeps them in memory; several replicas behind
//! a load balancer share them in PostgreSQL or Redis (the `[state]` section, see
//! `docs/deployment.md`), so a login started on one replica finishes on another
//! and an assertion accepted by one is refused by all.

mod config;
#[cfg(feature = "redis")]
mod redis;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::StoreError;
use crate::account::{AttemptStore, FailureCount, MemoryAttemptStore};
use crate::flow::{FlowStore, MemoryFlowStore, MemoryReplayCache, ReplayCache};

pub(crate) use config::RawState;
pub use config::{StateBackend, StateConfig};

/// What the `[store]` section opened, for a `[state]` that shares it.
pub(crate) enum OpenedStore {
    /// Memory, or a store the host passed.
    Other,
    #[cfg(feature = "sqlite")]
    Sqlite(crate::account::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(crate::account::PgStore),
}

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{
    DEFAULT_REDIS_MAX_FLOWS_PER_CLIENT, DEFAULT_REDIS_PREFIX, MAX_REDIS_PREFIX_BYTES, RedisOptions,
    RedisState,
};

/// What the throttle does while its counter store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ThrottleOnOutage {
    /// Refuse password logins (`Unavailable`) until the store is back: no
    /// guessing goes uncounted. The default.
    #[default]
    Closed,
    /// Let password logins through unthrottled (each outage is logged): sign-in
    /// keeps working, at the price of unlimited guesses during the outage.
    Open,
}

/// The three state stores a chain uses. [`SharedState::memory`] for one process;
/// the `[state]` section (through [`Config::open_stores`](crate::config::Config::open_stores))
/// or the host's own stores for several.
#[derive(Clone)]
pub struct SharedState {
    /// Pending redirect logins, for every OIDC, OAuth2, SAML and CAS module.
    pub flows: Arc<dyn FlowStore>,
    /// Ids accepted once (SAML assertions, key-login assertions).
    pub replay: Arc<dyn ReplayCache>,
    /// Throttle counters.
    pub attempts: Arc<dyn AttemptStore>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState").finish_non_exhaustive()
    }
}

impl SharedState {
    /// Everything in this process's memory (bounded stores).
    pub fn memory() -> Self {
        SharedState {
            flows: Arc::new(MemoryFlowStore::default()),
            replay: Arc::new(MemoryReplayCache::default()),
            attempts: Arc::new(MemoryAttemptStore::new()),
        }
    }

    /// All three in one store (PostgreSQL, Redis, or the host's own).
    pub fn all_in<S>(store: Arc<S>) -> Self
    where
        S: FlowStore + ReplayCache + AttemptStore + 'static,
    {
        SharedState {
            flows: store.clone(),
            replay: store.clone(),
            attempts: store,
        }
    }

    /// The same state with the throttle behaving as `policy` says while its
    /// counter store fails.
    pub fn throttle_on_outage(mut self, policy: ThrottleOnOutage) -> Self {
        if policy == ThrottleOnOutage::Open {
            self.attempts = Arc::new(FailOpenAttempts(self.attempts));
        }
        self
    }
}

/// Counters that answer "no failures" and drop writes while the inner store
/// fails ([`ThrottleOnOutage::Open`]).
struct FailOpenAttempts(Arc<dyn AttemptStore>);

impl FailOpenAttempts {
    fn outage(err: &StoreError) {
        tracing::warn!(target: crate::audit::AUDIT_TARGET, error = %err, "throttle counters unreachable: logins pass unthrottled (throttle_on_outage = \"open\")");
    }
}

#[async_trait]
impl AttemptStore for FailOpenAttempts {
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError> {
        self.0.failures_since(key, since).await.or_else(|err| {
            Self::outage(&err);
            Ok(FailureCount::default())
        })
    }

    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError> {
        self.0.record_failure(key, at, window).await.or_else(|err| {
            Self::outage(&err);
            Ok(())
        })
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.0.clear(key).await.or_else(|err| {
            Self::outage(&err);
            Ok(())
        })
    }
}
