//! Pending redirect logins (OIDC, OAuth2, SAML, CAS), and the
//! [`replay`] cache of one-time message ids.
//!
//! A redirect login happens in two requests. [`Flows::start`] creates a one-time
//! [`PendingFlow`] — random `state`, `nonce` and PKCE (S256) verifier, the checked
//! return-to URL, an expiry — keeps it in a [`FlowStore`], and answers the value of the
//! cookie that binds it to the browser that started it. When the browser comes back,
//! [`Flows::take`] consumes the flow exactly once: a replayed state, a cookie from
//! another browser and an expired flow are all refused.
//!
//! The store keeps only a SHA-256 digest of the cookie, so a leaked store does not
//! let anybody finish somebody else's login.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::OtherError;
#[cfg(any(feature = "saml", feature = "cas"))]
use crate::iso8601::IsoDuration;
use crate::{AuthError, ConfigError};

mod cookie;
#[cfg(any(feature = "oidc", feature = "oauth2", feature = "cas"))]
pub(crate) mod http;
#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub(crate) mod json;
#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub(crate) mod oauth;
pub mod replay;

pub use cookie::{CookieAttributes, FlowCookie, SameSite, flow_cookie_name};
#[cfg(any(feature = "oidc", feature = "oauth2", feature = "cas"))]
pub use http::{HttpError, HttpSettings};
#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub use oauth::{OAuthClientSettings, OAuthError};
pub use replay::{MemoryReplayCache, ReplayCache, ReplayError};

/// How an OAuth2 / OIDC client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret (the default with a secret).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: `client_id` only, PKCE protects the code.
    None,
}

/// How many HTTP requests a redirect module sent to its provider, by purpose
/// (for monitoring, benchmarks and tests: discovery and JWKS are not fetched per
/// login).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderRequests {
    /// Discovery documents fetched.
    pub discovery: u64,
    /// JWKS documents fetched.
    pub jwks: u64,
    /// Token requests (one per callback).
    pub token: u64,
    /// Userinfo requests.
    pub userinfo: u64,
    /// CAS ticket validations (one per callback).
    pub validation: u64,
}

impl ProviderRequests {
    /// All requests together.
    pub fn total(&self) -> u64 {
        self.discovery + self.jwks + self.token + self.userinfo + self.validation
    }
}

/// Default lifetime of a pending login: 10 minutes.
pub const DEFAULT_FLOW_TTL: Duration = Duration::from_secs(600);
/// Default bound on the pending logins a [`MemoryFlowStore`] holds.
pub const DEFAULT_MAX_FLOWS: usize = 100_000;
/// Longest accepted `state` value, in bytes.
const MAX_STATE_BYTES: usize = 256;
/// Longest accepted return-to URL, in bytes.
const MAX_RETURN_TO_BYTES: usize = 2048;

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

/// Why a return-to URL (or an allow-list prefix) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReturnToError {
    /// Empty, or longer than 2,048 bytes.
    #[error("return-to URL is empty or too long")]
    Length,
    /// A control character, a backslash or white space.
    #[error("return-to URL contains a control character, a backslash or white space")]
    Character,
    /// Neither a relative path nor on the allow-list: an open redirect.
    #[error("return-to URL must be a relative path or on the allow-list")]
    NotAllowed,
    /// An allow-list prefix that is not `scheme://host[:port]/path/`.
    #[error("{0:?} must be an http(s) URL of the form `scheme://host[:port]/path/`")]
    BadPrefix(String),
}

/// Which return-to URLs are accepted: relative paths always (`/app/page`, not
/// `//host`, no backslash, no scheme), absolute URLs only when they start with an
/// allowed prefix (`https://app.example.org/`). Anything else is an open redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnToPolicy {
    allowed_prefixes: Vec<String>,
}

impl ReturnToPolicy {
    /// Relative paths only.
    pub fn relative_only() -> Self {
        ReturnToPolicy::default()
    }

    /// Relative paths, plus absolute URLs starting with one of these prefixes. A
    /// prefix must be an `http(s)` origin followed by a path ending in `/`
    /// (`https://app.example.org/`), so that `https://app.example.org.evil.test`
    /// does not match.
    pub fn with_allowed(
        prefixes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ReturnToError> {
        let mut allowed = Vec::new();
        for prefix in prefixes {
            let prefix: String = prefix.into();
            let host = prefix
                .strip_prefix("https://")
                .or_else(|| prefix.strip_prefix("http://"))
                .and_then(|rest| rest.split_once('/'))
                .map(|(host, _path)| host);
            match host {
                Some(host)
                    if !host.is_empty()
                        && prefix.ends_with('/')
                        && !prefix.contains('\\')
                        && !prefix.contains('@') => {}
                _ => return Err(ReturnToError::BadPrefix(prefix)),
            }
            allowed.push(prefix);
        }
        Ok(ReturnToPolicy {
            allowed_prefixes: allowed,
        })
    }

    /// Checks a return-to URL; the error says why it is refused.
    pub fn check(&self, url: &str) -> Result<(), ReturnToError> {
        if url.is_empty() || url.len() > MAX_RETURN_TO_BYTES {
            return Err(ReturnToError::Length);
        }
        if url
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
        {
            return Err(ReturnToError::Character);
        }
        if url.starts_with('/') && !url.starts_with("//") {
            return Ok(());
        }
        if self.allowed_prefixes.iter().any(|p| url.starts_with(p.as_str())) {
            return Ok(());
        }
        Err(ReturnToError::NotAllowed)
    }
}

/// A flow just started: what the module puts in the redirect, and the cookie.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StartedFlow {
    /// The stored flow (state, nonce, PKCE verifier).
    pub flow: PendingFlow,
    /// The cookie binding the flow to the browser (256 random bits, base64url),
    /// with the attributes the module chose.
    pub cookie: FlowCookie,
}

/// The settings of pending redirect logins, one field group shared by the OIDC,
/// OAuth2, SAML and CAS settings (flat in TOML: `flow_ttl`, `return_to_allowed`).
/// Turned into [`Flows`] by [`FlowSettings::build`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct FlowSettings {
    /// Where pending logins live (default: a [`MemoryFlowStore`] of the module).
    /// Not read from TOML: the host injects it.
    #[serde(skip)]
    pub store: Option<Arc<dyn FlowStore>>,
    /// `flow_ttl`: how long a started login may take (default 10 min).
    #[serde(rename = "flow_ttl", deserialize_with = "crate::iso8601::duration")]
    pub ttl: Duration,
    /// `return_to_allowed`: absolute return-to URL prefixes accepted besides
    /// relative paths (`https://app.example.org/`).
    pub return_to_allowed: Vec<String>,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            store: None,
            ttl: DEFAULT_FLOW_TTL,
            return_to_allowed: Vec::new(),
        }
    }
}

impl FlowSettings {
    /// Checks the settings (errors name `flow_ttl` or `return_to_allowed`); the
    /// module chooses its flow cookie's attributes.
    pub fn build(self, cookie: CookieAttributes) -> Result<Flows, ConfigError> {
        if self.ttl.is_zero() {
            return Err(ConfigError::invalid("flow_ttl", "must be longer than zero"));
        }
        let return_to = ReturnToPolicy::with_allowed(self.return_to_allowed)
            .map_err(|e| ConfigError::invalid("return_to_allowed", e.to_string()))?;
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryFlowStore::default()));
        Ok(Flows::new(store)
            .ttl(self.ttl)
            .return_to(return_to)
            .cookie(cookie))
    }

    /// The `flow_ttl` and `return_to_allowed` keys of a module's configuration.
    #[cfg(any(feature = "saml", feature = "cas"))]
    pub(crate) fn configure(&mut self, ttl: Option<IsoDuration>, return_to_allowed: &[String]) {
        if let Some(ttl) = ttl {
            self.ttl = ttl.0;
        }
        self.return_to_allowed = return_to_allowed.to_vec();
    }
}

/// `impl Authenticator` for a redirect module: `Start` goes to its
/// `start(return_to)`, `Callback` to its `callback(request, params)`, anything else
/// abstains.
#[allow(unused_macros)]
macro_rules! redirect_authenticator {
    ($module:ty) => {
        #[async_trait::async_trait]
        impl $crate::Authenticator for $module {
            fn id(&self) -> &str {
                &self.id
            }

            fn kind(&self) -> $crate::ModuleKind {
                $crate::ModuleKind::Redirect
            }

            async fn authenticate(
                &self,
                request: &$crate::AuthRequest,
            ) -> Result<$crate::Outcome, $crate::AuthError> {
                match &request.credentials {
                    $crate::Credentials::Start(start) => self.start(start).await,
                    $crate::Credentials::Callback { params } => self.callback(request, params).await,
                    _ => Ok($crate::Outcome::Abstain),
                }
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use redirect_authenticator;

/// The builder methods for a `flows: FlowSettings` field.
#[allow(unused_macros)]
macro_rules! flow_builder_methods {
    () => {
        /// Where pending logins are kept (default: a `MemoryFlowStore` of this module).
        pub fn flow_store(mut self, store: std::sync::Arc<dyn $crate::flow::FlowStore>) -> Self {
            self.flows.store = Some(store);
            self
        }

        /// How long a started login may take (default 10 min).
        pub fn flow_ttl(mut self, ttl: std::time::Duration) -> Self {
            self.flows.ttl = ttl;
            self
        }

        /// Absolute return-to URL prefixes accepted besides relative paths
        /// (`https://app.example.org/`).
        pub fn return_to_allowed<I, S>(mut self, prefixes: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.flows.return_to_allowed = prefixes.into_iter().map(Into::into).collect();
            self
        }
    };
}
#[allow(unused_imports)]
pub(crate) use flow_builder_methods;

/// Starts and finishes redirect logins over a [`FlowStore`].
#[derive(Clone)]
pub struct Flows {
    store: Arc<dyn FlowStore>,
    ttl: Duration,
    return_to: ReturnToPolicy,
    cookie: CookieAttributes,
}

impl fmt::Debug for Flows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flows")
            .field("ttl", &self.ttl)
            .field("return_to", &self.return_to)
            .finish_non_exhaustive()
    }
}

impl Default for Flows {
    fn default() -> Self {
        Flows::new(Arc::new(MemoryFlowStore::default()))
    }
}

impl Flows {
    /// Flows kept in `store`, living [`DEFAULT_FLOW_TTL`], relative return-to URLs only.
    pub fn new(store: Arc<dyn FlowStore>) -> Self {
        Flows {
            store,
            ttl: DEFAULT_FLOW_TTL,
            return_to: ReturnToPolicy::default(),
            cookie: CookieAttributes::default(),
        }
    }

    /// The attributes of the flow cookies (default: `Path=/`, `SameSite=Lax`, `Secure`).
    pub fn cookie(mut self, attributes: CookieAttributes) -> Self {
        self.cookie = attributes;
        self
    }

    /// The attributes of the flow cookies.
    pub fn cookie_attributes(&self) -> &CookieAttributes {
        &self.cookie
    }

    /// How long a started login may take.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The return-to policy (for a return-to URL that arrives outside a flow, such
    /// as an IdP-initiated SAML RelayState).
    pub fn return_to_policy(&self) -> &ReturnToPolicy {
        &self.return_to
    }

    /// Which return-to URLs are accepted.
    pub fn return_to(mut self, policy: ReturnToPolicy) -> Self {
        self.return_to = policy;
        self
    }

    /// Starts a flow for `module`. A return-to URL outside the policy is an
    /// [`AuthError::InvalidRequest`].
    pub async fn start(&self, module: &str, return_to: Option<&str>) -> Result<StartedFlow, AuthError> {
        self.start_with(module, return_to, None).await
    }

    /// Starts a flow carrying module-specific data.
    pub async fn start_with(
        &self,
        module: &str,
        return_to: Option<&str>,
        extra: Option<String>,
    ) -> Result<StartedFlow, AuthError> {
        if let Some(url) = return_to {
            self.return_to.check(url).map_err(AuthError::invalid_request)?;
        }
        let random = |module: &str| random_token(module);
        let cookie = FlowCookie {
            name: flow_cookie_name(module),
            value: random(module)?,
            attributes: self.cookie.clone(),
            max_age: self.ttl,
        };
        let flow = PendingFlow {
            state: random(module)?,
            nonce: random(module)?,
            pkce_verifier: random(module)?,
            return_to: return_to.map(str::to_owned),
            module: module.to_owned(),
            expires_at: SystemTime::now() + self.ttl,
            cookie_digest: digest(&cookie.value),
            extra,
        };
        self.store
            .insert(flow.clone())
            .await
            .map_err(|e| e.into_auth_error(module))?;
        Ok(StartedFlow { flow, cookie })
    }

    /// Consumes the flow `state` of `module`, checking the browser's cookie.
    pub async fn take(
        &self,
        module: &str,
        state: &str,
        cookie: Option<&str>,
    ) -> Result<PendingFlow, FlowError> {
        if state.is_empty() || state.len() > MAX_STATE_BYTES {
            return Err(FlowError::Unknown);
        }
        self.store
            .take(module, state, cookie.map(digest), SystemTime::now())
            .await
    }
}

/// Accepts `https://` URLs, and `http://` only on a loopback host (tests, a local
/// provider).
#[cfg(any(feature = "oidc", feature = "oauth2", feature = "saml", feature = "cas"))]
pub(crate) fn check_url(key: &str, value: &str) -> Result<(), crate::ConfigError> {
    use crate::ConfigError;
    let url = url::Url::parse(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ConfigError::invalid(
            key,
            format!("{value:?} must be an https URL (http only on loopback)"),
        )),
    }
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// 256 random bits, base64url without padding (43 characters).
pub(crate) fn random_token(module: &str) -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| AuthError::unavailable(module, FlowError::NoRandomness))?;
    Ok(Base64UrlUnpadded::encode_string(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_policy() {
        let p = ReturnToPolicy::with_allowed(["https://app.example.org/"]).unwrap();
        for ok in ["/", "/app?x=1", "https://app.example.org/x"] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "//evil.test",
            "https://evil.test",
            "/\\evil.test",
            "javascript:alert(1)",
            "https://app.example.org.evil.test/",
            "",
            "relative",
            "/a\nb",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
        assert!(ReturnToPolicy::with_allowed(["https://app.example.org"]).is_err());
    }

    fn flow(state: &str, ttl: Duration) -> PendingFlow {
        PendingFlow {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: None,
            module: "m".into(),
            expires_at: SystemTime::now() + ttl,
            cookie_digest: digest("cookie"),
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
