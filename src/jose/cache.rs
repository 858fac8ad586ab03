//! The verification-key cache shared by every module that reads keys from a JWKS URL
//! (the OIDC module, signed proxy headers): the fetched key set (or whatever a module
//! builds from it) is kept for `max_age`; a token whose key is unknown refetches, at
//! most once per `min_refetch`; concurrent callers wait for one fetch; a failed
//! refresh keeps the cached keys.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::audit::AUDIT_TARGET;

/// What a fetch came to.
pub(crate) enum KeyFetch<T, E> {
    /// Fetched now (by this caller or one it waited for).
    Fetched(Arc<T>),
    /// Refused by `min_refetch`; `retry_after` is when it will not be.
    RateLimited {
        cached: Option<Arc<T>>,
        retry_after: Duration,
    },
    /// The fetch failed; the keys cached before, if any.
    Failed { cached: Option<Arc<T>>, error: E },
}

/// What a check of a token against one key set found.
pub(crate) enum Check<R, E> {
    /// Done: verified, or refused for a reason another key set would not change.
    Done(Result<R, E>),
    /// No key of this set matches the token (unknown `kid`): other keys might. The
    /// error is the answer when freshly fetched keys do not match either.
    UnknownKey(E),
}

/// A cached key set `T` with its fetch bookkeeping.
pub(crate) struct KeyCache<T> {
    module: String,
    slot: RwLock<Option<(Arc<T>, Instant)>>,
    attempt: Mutex<Option<Instant>>,
    max_age: Duration,
    min_refetch: Duration,
}

impl<T> std::fmt::Debug for KeyCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("max_age", &self.max_age)
            .field("min_refetch", &self.min_refetch)
            .finish_non_exhaustive()
    }
}

impl<T> KeyCache<T> {
    /// An empty cache of `module`'s keys.
    pub(crate) fn new(module: &str, max_age: Duration, min_refetch: Duration) -> KeyCache<T> {
        KeyCache {
            module: module.to_owned(),
            slot: RwLock::new(None),
            attempt: Mutex::new(None),
            max_age,
            min_refetch,
        }
    }

    /// The cached keys, if younger than `max_age`.
    pub(crate) fn fresh(&self) -> Option<Arc<T>> {
        self.slot.read().ok().and_then(|k| {
            k.as_ref()
                .filter(|(_, at)| at.elapsed() < self.max_age)
                .map(|(k, _)| k.clone())
        })
    }

    fn current(&self) -> Option<Arc<T>> {
        self.slot
            .read()
            .ok()
            .and_then(|k| k.as_ref().map(|(k, _)| k.clone()))
    }

    /// Fetches with `fetch`, at most once per `min_refetch` (unless `force`);
    /// concurrent callers wait for one fetch. A success replaces the cached keys.
    pub(crate) async fn fetch<E, F, Fut>(&self, force: bool, fetch: F) -> KeyFetch<T, E>
    where
        E: std::fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let before = self.current();
        let mut attempt = self.attempt.lock().await;
        let current = self.current();
        // Another task fetched while this one waited.
        if let Some(now) = &current
            && before.as_ref().is_none_or(|then| !Arc::ptr_eq(now, then))
        {
            return KeyFetch::Fetched(now.clone());
        }
        if let (Some(last), false) = (*attempt, force)
            && last.elapsed() < self.min_refetch
        {
            debug!(target: AUDIT_TARGET, module = %self.module, "JWKS refetch rate limited");
            return KeyFetch::RateLimited {
                cached: current,
                retry_after: self.min_refetch.saturating_sub(last.elapsed()),
            };
        }
        *attempt = Some(Instant::now());
        match fetch().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                if let Ok(mut slot) = self.slot.write() {
                    *slot = Some((keys.clone(), Instant::now()));
                }
                KeyFetch::Fetched(keys)
            }
            Err(error) => {
                if current.is_some() {
                    warn!(target: AUDIT_TARGET, module = %self.module, reason = %error, "JWKS refresh failed; using the cached keys");
                }
                KeyFetch::Failed {
                    cached: current,
                    error,
                }
            }
        }
    }

    /// Checks a token: with the fresh cached keys (or `empty` before any, which refuses
    /// what needs no key without a fetch); on [`Check::UnknownKey`] once more after one
    /// rate-limited refetch (still unknown then: the check's error). No matching key and a refetch refused by its rate limit:
    /// `limited(retry_after)` (the issuer may be rotating keys); a failed refetch: its
    /// error — unless the keys cached before (if not tried yet) match.
    pub(crate) async fn verify<R, E, F, Fut>(
        &self,
        empty: &T,
        check: impl Fn(&T) -> Check<R, E>,
        fetch: F,
        limited: impl FnOnce(Duration) -> E,
    ) -> Result<R, E>
    where
        E: std::fmt::Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let tried = self.fresh();
        match check(tried.as_deref().unwrap_or(empty)) {
            Check::Done(result) => return result,
            Check::UnknownKey(_) => {}
        }
        let untried = |keys: &Arc<T>| tried.as_ref().is_none_or(|t| !Arc::ptr_eq(t, keys));
        let retry = |keys: &T, otherwise: E| match check(keys) {
            Check::Done(result) => result,
            Check::UnknownKey(_) => Err(otherwise),
        };
        match self.fetch(false, fetch).await {
            KeyFetch::Fetched(keys) => match check(&keys) {
                Check::Done(result) => result,
                Check::UnknownKey(error) => Err(error),
            },
            KeyFetch::RateLimited {
                cached: Some(keys),
                retry_after,
            } if untried(&keys) => retry(&keys, limited(retry_after)),
            KeyFetch::RateLimited { retry_after, .. } => {
                debug!(target: AUDIT_TARGET, module = %self.module, "no cached key matches and the JWKS refetch is rate limited");
                Err(limited(retry_after))
            }
            KeyFetch::Failed {
                cached: Some(keys),
                error,
            } if untried(&keys) => retry(&keys, error),
            KeyFetch::Failed { error, .. } => Err(error),
        }
    }
}
