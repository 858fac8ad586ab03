//! Where pending redirect logins live: the [`FlowStore`] trait and the bounded
//! in-memory [`MemoryFlowStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;
use crate::error::OtherError;

/// Default bound on the pending logins a [`MemoryFlowStore`] holds.
pub const DEFAULT_MAX_FLOWS: usize = 100_000;

/// One pending redirect login.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingFlow {
    /// The `state` parameter sent to the provider (random, 256 bits, base64url).
    pub state: String,
    /// The OIDC `nonce` (random, 256 bits, base64url).
    pub nonce: String,
    /// The PKCE code verifier (RFC 7636, 43 characters); its S256 challenge went to the provider.
    pub pkce_verifier: String,
    /// Where to send the browser after the login (already checked).
    pub return_to: Option<String>,
    /// The id of the module that started the login.
    pub module: String,
    /// When the flow stops being accepted.
    pub expires_at: SystemTime,
    /// SHA-256 of the flow cookie value.
    pub cookie_digest: [u8; 32],
    /// Module-specific data (a SAML request id, a CAS service URL, a tenant).
    pub extra: Option<String>,
    /// The address of the client that started the login, when known: stores bound
    /// the pending logins of one client.
    pub client: Option<std::net::IpAddr>,
}

impl fmt::Debug for PendingFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state travels in URLs anyway; nonce and verifier are secrets.
        f.debug_struct("PendingFlow")
            .field("module", &self.module)
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl PendingFlow {
    /// The PKCE S256 challenge of the verifier: `BASE64URL(SHA256(verifier))`.
    pub fn pkce_challenge(&self) -> String {
        pkce_challenge(&self.pkce_verifier)
    }
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    Base64UrlUnpadded::encode_string(&Sha256::digest(verifier.as_bytes()))
}

/// Why a pending flow could not be consumed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// No flow with this state (never started here, or long gone).
    #[error("unknown login state")]
    Unknown,
    /// The flow belongs to another module (the caller should abstain).
    #[error("the login was started by another module")]
    OtherModule,
    /// The flow was already consumed: a replay.
    #[error("this login was already completed (replayed state)")]
    Replayed,
    /// The browser's flow cookie is missing or belongs to another login.
    #[error("the login was started in another browser (flow cookie mismatch)")]
    CookieMismatch,
    /// The flow is older than its lifetime.
    #[error("the login took too long and expired")]
    Expired,
    /// The store holds as many pending logins as it may.
    #[error("too many pending logins")]
    Full,
    /// The storage backend failed.
    #[error("flow store failed: {0}")]
    Backend(#[source] OtherError),
    /// No randomness for the flow's secrets.
    #[error("no randomness for the login's secrets")]
    NoRandomness,
}

impl FlowError {
    /// The error a module answers with; `module` names the module.
    /// A full or failing store is an outage; anything else a refusal (a cookie
    /// mismatch answers 403, see [`AuthError::status_code`]).
    pub fn into_auth_error(self, module: &str) -> AuthError {
        match self {
            FlowError::Full | FlowError::Backend(_) | FlowError::NoRandomness => {
                AuthError::unavailable(module, self)
            }
            _ => AuthError::rejected(module, self),
        }
    }
}

/// Where pending redirect logins live. The in-memory [`MemoryFlowStore`] serves one
/// application instance; several instances behind a load balancer share a store.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Stores a new flow under its state.
    async fn insert(&self, flow: PendingFlow) -> Result<(), FlowError>;

    /// Consumes the flow with this state, exactly once, if it belongs to `module`
    /// and to the browser whose cookie digests to `cookie_digest` (`None`: no cookie).
    /// A flow of another module is left in place ([`FlowError::OtherModule`]); a
    /// cookie mismatch leaves it in place too, so the rightful browser can still finish.
    async fn take(
        &self,
        module: &str,
        state: &str,
        cookie_digest: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<PendingFlow, FlowError>;
}

impl fmt::Debug for dyn FlowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlowStore")
    }
}

enum Slot {
    Pending(Box<PendingFlow>),
    /// Consumed; remembered until the flow would have expired, to name replays.
    Used {
        expires_at: SystemTime,
    },
}

impl Slot {
    fn expires_at(&self) -> SystemTime {
        match self {
            Slot::Pending(flow) => flow.expires_at,
            Slot::Used { expires_at } => *expires_at,
        }
    }
}

/// An in-memory [`FlowStore`], bounded in size; expired entries are purged as new
/// ones arrive.
pub struct MemoryFlowStore {
    slots: Mutex<HashMap<String, Slot>>,
    max: usize,
}

impl fmt::Debug for MemoryFlowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFlowStore")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryFlowStore {
    fn default() -> Self {
        MemoryFlowStore::new(DEFAULT_MAX_FLOWS)
    }
}

impl MemoryFlowStore {
    /// A store holding at most `max` flows (pending and recently used).
    pub fn new(max: usize) -> Self {
        MemoryFlowStore {
            slots: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// How many flows (pending and recently used) are held.
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Slot>>, FlowError> {
        self.slots
            .lock()
            .map_err(|_| FlowError::Backend(OtherError::msg("flow store lock poisoned")))
    }
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn insert(&self, flow: PendingFlow) -> Result<(), FlowError> {
        let now = SystemTime::now();
        let mut slots = self.lock()?;
        if slots.len() >= self.max {
            slots.retain(|_, slot| slot.expires_at() > now);
            if slots.len() >= self.max {
                // Forget consumed entries before refusing new logins.
                slots.retain(|_, slot| matches!(slot, Slot::Pending(_)));
            }
            if slots.len() >= self.max {
                return Err(FlowError::Full);
            }
        }
        slots.insert(flow.state.clone(), Slot::Pending(Box::new(flow)));
        Ok(())
    }

    async fn take(
        &self,
        module: &str,
        state: &str,
        cookie_digest: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<PendingFlow, FlowError> {
        let mut slots = self.lock()?;
        let Some(slot) = slots.get_mut(state) else {
            return Err(FlowError::Unknown);
        };
        let flow = match slot {
            Slot::Used { .. } => return Err(FlowError::Replayed),
            Slot::Pending(flow) => flow,
        };
        if flow.module != module {
            return Err(FlowError::OtherModule);
        }
        let expires_at = flow.expires_at;
        if expires_at <= now {
            slots.remove(state);
            return Err(FlowError::Expired);
        }
        let matches = cookie_digest.is_some_and(|digest| bool::from(digest.ct_eq(&flow.cookie_digest)));
        if !matches {
            return Err(FlowError::CookieMismatch);
        }
        match std::mem::replace(slot, Slot::Used { expires_at }) {
            Slot::Pending(flow) => Ok(*flow),
            Slot::Used { .. } => Err(FlowError::Replayed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flow::{DEFAULT_FLOW_TTL, digest};

    fn flow(state: &str, ttl: Duration) -> PendingFlow {
        PendingFlow {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: None,
            module: "m".into(),
            expires_at: SystemTime::now() + ttl,
            cookie_digest: digest("cookie"),
            client: None,
            extra: None,
        }
    }

    #[tokio::test]
    async fn memory_store_is_bounded_and_one_time() {
        let store = MemoryFlowStore::new(2);
        store.insert(flow("a", DEFAULT_FLOW_TTL)).await.unwrap();
        store.insert(flow("b", Duration::ZERO)).await.unwrap();
        // Full: the expired flow is purged to make room, then the store refuses.
        store.insert(flow("c", DEFAULT_FLOW_TTL)).await.unwrap();
        assert_eq!(
            store.insert(flow("d", DEFAULT_FLOW_TTL)).await,
            Err(FlowError::Full)
        );
        let now = SystemTime::now();
        let cookie = Some(digest("cookie"));
        assert_eq!(
            store.take("other", "a", cookie, now).await,
            Err(FlowError::OtherModule)
        );
        assert_eq!(
            store.take("m", "a", Some(digest("x")), now).await,
            Err(FlowError::CookieMismatch)
        );
        assert!(store.take("m", "a", cookie, now).await.is_ok());
        assert_eq!(store.take("m", "a", cookie, now).await, Err(FlowError::Replayed));
        assert_eq!(store.take("m", "zz", cookie, now).await, Err(FlowError::Unknown));
    }

    #[test]
    fn pkce_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
