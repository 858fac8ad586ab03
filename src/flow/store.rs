//! Where pending redirect logins live: the [`FlowStore`] trait and the bounded
//! in-memory [`MemoryFlowStore`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use base64ct::{Base64UrlUnpadded, Encoding};
use hashlink::LinkedHashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;
use crate::error::OtherError;

/// Default bound on the pending logins a [`MemoryFlowStore`] holds.
pub const DEFAULT_MAX_FLOWS: usize = 100_000;
/// Default bound on the pending logins of one client address in a
/// [`MemoryFlowStore`] (`max_flows_per_client`).
pub const DEFAULT_MAX_FLOWS_PER_CLIENT: usize = 32;

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
    /// The store holds as many pending logins as it may (a store that refuses
    /// rather than evicts; [`MemoryFlowStore`] evicts the oldest).
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

/// An in-memory [`FlowStore`], bounded in size and per client, O(1) amortised
/// per start and per callback however full it is.
///
/// Flows are kept in the order they started. Expired ones are dropped from the
/// front as new ones arrive; at the bound the oldest consumed entry goes first
/// (kept only to name replays), then the oldest pending login. A client address
/// (IPv4, or the /64 of an IPv6 address) holds at most `max_per_client` pending
/// logins (default [`DEFAULT_MAX_FLOWS_PER_CLIENT`]): its own oldest goes when it
/// starts one more, so no single client can push out everybody else's logins.
pub struct MemoryFlowStore {
    slots: Mutex<Slots>,
    max: usize,
    max_per_client: usize,
}

#[derive(Default)]
struct Slots {
    /// Pending flows by state, oldest first.
    pending: LinkedHashMap<String, Box<PendingFlow>>,
    /// Consumed flows' states until they would have expired, oldest first.
    used: LinkedHashMap<String, SystemTime>,
    /// Each client's pending states, oldest first (at most `max_per_client`).
    by_client: HashMap<IpAddr, VecDeque<String>>,
    /// Pending flows by module, as the `authchain_flows_pending` gauge reports
    /// them (evicted and purged flows included, which the flow machinery never sees).
    by_module: HashMap<String, usize>,
}

impl Slots {
    fn len(&self) -> usize {
        self.pending.len() + self.used.len()
    }

    fn add_pending(&mut self, flow: Box<PendingFlow>) {
        match self.by_module.get_mut(&flow.module) {
            Some(held) => *held += 1,
            None => {
                self.by_module.insert(flow.module.clone(), 1);
            }
        }
        crate::metrics::flows_pending(&flow.module, self.by_module[&flow.module]);
        self.pending.insert(flow.state.clone(), flow);
    }

    /// Counts a flow no longer pending (taken, expired or evicted).
    fn count_gone(&mut self, flow: &PendingFlow) {
        if let Some(held) = self.by_module.get_mut(&flow.module) {
            *held = held.saturating_sub(1);
            crate::metrics::flows_pending(&flow.module, *held);
        }
    }

    /// Forgets a pending flow in its client's list and in the counts.
    fn forget(&mut self, flow: &PendingFlow) {
        self.count_gone(flow);
        let Some(client) = flow.client.map(crate::net::client_bucket) else {
            return;
        };
        if let Some(states) = self.by_client.get_mut(&client) {
            states.retain(|s| *s != flow.state);
            if states.is_empty() {
                self.by_client.remove(&client);
            }
        }
    }

    fn remove_pending(&mut self, state: &str) -> Option<Box<PendingFlow>> {
        let flow = self.pending.remove(state)?;
        self.forget(&flow);
        Some(flow)
    }

    /// Drops expired entries from the fronts (flows of one store share a lifetime,
    /// so the front expires first; a later-expiring front only delays the purge).
    fn purge_expired(&mut self, now: SystemTime) {
        while self
            .used
            .front()
            .is_some_and(|(_, expires_at)| *expires_at <= now)
        {
            self.used.pop_front();
        }
        while self
            .pending
            .front()
            .is_some_and(|(_, flow)| flow.expires_at <= now)
        {
            if let Some((_, flow)) = self.pending.pop_front() {
                self.forget(&flow);
            }
        }
    }

    /// Makes room for one entry under `max`.
    fn evict_for_one(&mut self, max: usize) {
        while self.len() >= max {
            if self.used.pop_front().is_some() {
                continue;
            }
            match self.pending.pop_front() {
                Some((_, flow)) => self.forget(&flow),
                None => break,
            }
        }
    }
}

impl fmt::Debug for MemoryFlowStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFlowStore")
            .field("max", &self.max)
            .field("max_per_client", &self.max_per_client)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryFlowStore {
    fn default() -> Self {
        MemoryFlowStore::new(DEFAULT_MAX_FLOWS)
    }
}

impl MemoryFlowStore {
    /// A store holding at most `max` flows (pending and recently used), at most
    /// [`DEFAULT_MAX_FLOWS_PER_CLIENT`] pending per client.
    pub fn new(max: usize) -> Self {
        MemoryFlowStore {
            slots: Mutex::new(Slots::default()),
            max: max.max(1),
            max_per_client: DEFAULT_MAX_FLOWS_PER_CLIENT,
        }
    }

    /// The same store holding at most `max` pending flows per client address.
    pub fn max_per_client(mut self, max: std::num::NonZeroUsize) -> Self {
        self.max_per_client = max.get();
        self
    }

    /// How many flows (pending and recently used) are held.
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Slots>, FlowError> {
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
        slots.purge_expired(now);
        // A state is 256 random bits; a repeat replaces what it named, as a map would.
        slots.remove_pending(&flow.state);
        slots.used.remove(&flow.state);
        if let Some(client) = flow.client.map(crate::net::client_bucket) {
            let states = slots.by_client.entry(client).or_default();
            let oldest = (states.len() >= self.max_per_client)
                .then(|| states.pop_front())
                .flatten();
            states.push_back(flow.state.clone());
            if let Some(evicted) = oldest.and_then(|oldest| slots.pending.remove(&oldest)) {
                // Already out of its client's list.
                slots.count_gone(&evicted);
            }
        }
        slots.evict_for_one(self.max);
        slots.add_pending(Box::new(flow));
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
        if slots.used.contains_key(state) {
            return Err(FlowError::Replayed);
        }
        let Some(flow) = slots.pending.get(state) else {
            return Err(FlowError::Unknown);
        };
        if flow.module != module {
            return Err(FlowError::OtherModule);
        }
        if flow.expires_at <= now {
            slots.remove_pending(state);
            return Err(FlowError::Expired);
        }
        let matches = cookie_digest.is_some_and(|digest| bool::from(digest.ct_eq(&flow.cookie_digest)));
        if !matches {
            return Err(FlowError::CookieMismatch);
        }
        let flow = slots.remove_pending(state).ok_or(FlowError::Unknown)?;
        slots.used.insert(flow.state.clone(), flow.expires_at);
        Ok(*flow)
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
        // Full: the expired flow is purged to make room.
        store.insert(flow("c", DEFAULT_FLOW_TTL)).await.unwrap();
        assert_eq!(store.len(), 2);
        // Full of live flows: the oldest goes, the new start is taken.
        store.insert(flow("d", DEFAULT_FLOW_TTL)).await.unwrap();
        assert_eq!(store.len(), 2);
        let now = SystemTime::now();
        let cookie = Some(digest("cookie"));
        assert_eq!(store.take("m", "a", cookie, now).await, Err(FlowError::Unknown));
        assert_eq!(
            store.take("other", "c", cookie, now).await,
            Err(FlowError::OtherModule)
        );
        assert_eq!(
            store.take("m", "c", Some(digest("x")), now).await,
            Err(FlowError::CookieMismatch)
        );
        assert!(store.take("m", "c", cookie, now).await.is_ok());
        assert_eq!(store.take("m", "c", cookie, now).await, Err(FlowError::Replayed));
        assert_eq!(store.take("m", "zz", cookie, now).await, Err(FlowError::Unknown));
        // The consumed entry goes before any pending one.
        store.insert(flow("e", DEFAULT_FLOW_TTL)).await.unwrap();
        assert!(store.take("m", "d", cookie, now).await.is_ok());
        assert_eq!(store.take("m", "c", cookie, now).await, Err(FlowError::Unknown));
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_cap_of_pending_flows() {
        let store = MemoryFlowStore::new(100).max_per_client(std::num::NonZeroUsize::new(2).unwrap());
        let from = |state: &str, ip: &str| PendingFlow {
            client: Some(ip.parse().unwrap()),
            ..flow(state, DEFAULT_FLOW_TTL)
        };
        // One IPv6 /64 is one client.
        for (state, ip) in [("a", "2001:db8::1"), ("b", "2001:db8::2"), ("c", "2001:db8::3")] {
            store.insert(from(state, ip)).await.unwrap();
        }
        store.insert(from("x", "2001:db8:1::1")).await.unwrap();
        store.insert(from("y", "192.0.2.1")).await.unwrap();
        assert_eq!(store.len(), 4);
        let now = SystemTime::now();
        let cookie = Some(digest("cookie"));
        assert_eq!(store.take("m", "a", cookie, now).await, Err(FlowError::Unknown));
        for state in ["b", "c", "x", "y"] {
            assert!(store.take("m", state, cookie, now).await.is_ok(), "{state}");
        }
        // A finished flow no longer counts against its client.
        for state in ["d", "e"] {
            store.insert(from(state, "2001:db8::9")).await.unwrap();
        }
        assert!(store.take("m", "d", cookie, now).await.is_ok());
    }

    #[test]
    fn pkce_rfc7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
