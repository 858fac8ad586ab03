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

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

use crate::{AuthError, StartLogin};

#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub(crate) mod client_auth;
mod cookie;
#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "cas",
    feature = "saml",
    feature = "signed-header"
))]
pub(crate) mod http;
#[cfg(any(feature = "oidc", feature = "oauth2", feature = "signed-header"))]
pub(crate) mod json;
#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub(crate) mod oauth;
pub mod replay;
mod return_to;
mod settings;
mod store;

#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub use client_auth::{DEFAULT_ASSERTION_LIFETIME, MAX_ASSERTION_LIFETIME, MIN_JWT_SECRET_BYTES};
pub use cookie::{CookieAttributes, FlowCookie, SameSite, flow_cookie_name};
#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "cas",
    feature = "saml",
    feature = "signed-header"
))]
pub use http::{HttpError, HttpSettings};
#[cfg(any(feature = "oidc", feature = "oauth2"))]
pub use oauth::{OAuthClientSettings, OAuthError};
pub use replay::{MemoryReplayCache, ReplayCache, ReplayError};
pub use return_to::{ReturnToError, ReturnToPolicy};
pub use settings::FlowSettings;
pub use store::{
    DEFAULT_MAX_FLOWS, DEFAULT_MAX_FLOWS_PER_CLIENT, FlowError, FlowStore, MemoryFlowStore, PendingFlow,
    pkce_challenge,
};

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
    /// A JWT assertion signed with HS256 under the client secret (OpenID Connect
    /// Core §9, RFC 7523).
    ClientSecretJwt,
    /// A JWT assertion signed (RS256 or ES256) with the client's private key
    /// (`client_private_key`; OpenID Connect Core §9, RFC 7523).
    PrivateKeyJwt,
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
    /// SAML IdP metadata documents fetched (`idp_metadata_url`).
    pub metadata: u64,
}

impl ProviderRequests {
    /// All requests together.
    pub fn total(&self) -> u64 {
        self.discovery + self.jwks + self.token + self.userinfo + self.validation + self.metadata
    }
}

/// Default lifetime of a pending login: 10 minutes.
pub const DEFAULT_FLOW_TTL: Duration = Duration::from_secs(600);
/// Longest accepted `state` value, in bytes.
const MAX_STATE_BYTES: usize = 256;

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

/// `impl Authenticator` for a redirect module: `Start` goes to its
/// `start(return_to)`, `Callback` to its `callback(request, params)`, anything else
/// abstains. (One macro rather than four copies of the same impl.)
#[cfg(any(feature = "oidc", feature = "oauth2", feature = "saml", feature = "cas"))]
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
#[cfg(any(feature = "oidc", feature = "oauth2", feature = "saml", feature = "cas"))]
pub(crate) use redirect_authenticator;

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

    /// Starts a flow for `module`, for the client and return-to URL of `start`.
    /// A return-to URL outside the policy is an [`AuthError::InvalidRequest`].
    pub async fn start(&self, module: &str, start: &StartLogin) -> Result<StartedFlow, AuthError> {
        self.start_with(module, start, None).await
    }

    /// Starts a flow carrying module-specific data.
    pub async fn start_with(
        &self,
        module: &str,
        start: &StartLogin,
        extra: Option<String>,
    ) -> Result<StartedFlow, AuthError> {
        let return_to = start.return_to.as_deref();
        if let Some(url) = return_to {
            self.return_to.check(url).map_err(AuthError::invalid_request)?;
        }
        // The four secrets from one call for randomness.
        let [cookie_value, state, nonce, pkce_verifier] = random_tokens(module)?;
        let cookie = FlowCookie {
            name: flow_cookie_name(module),
            value: cookie_value,
            attributes: self.cookie.clone(),
            max_age: self.ttl,
        };
        let flow = PendingFlow {
            state,
            nonce,
            pkce_verifier,
            return_to: return_to.map(str::to_owned),
            module: module.to_owned(),
            expires_at: SystemTime::now() + self.ttl,
            cookie_digest: digest(&cookie.value),
            extra,
            client: start.client,
        };
        self.store
            .insert(flow.clone())
            .await
            .map_err(|e| e.into_auth_error(module))?;
        crate::metrics::flow(module, crate::metrics::FlowEvent::Started);
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
        let taken = self
            .store
            .take(module, state, cookie.map(digest), SystemTime::now())
            .await;
        match &taken {
            Ok(_) => crate::metrics::flow(module, crate::metrics::FlowEvent::Completed),
            Err(FlowError::Expired) => crate::metrics::flow(module, crate::metrics::FlowEvent::Expired),
            Err(_) => {}
        }
        taken
    }
}

/// Accepts `https://` URLs, and `http://` only on a loopback host (tests, a local
/// provider).
#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
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

pub(crate) fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

/// 256 random bits, base64url without padding (43 characters).
#[cfg(feature = "saml")]
pub(crate) fn random_token(module: &str) -> Result<String, AuthError> {
    let [token] = random_tokens(module)?;
    Ok(token)
}

/// `N` tokens of 256 random bits each (as [`random_token`]), from one call for
/// randomness.
fn random_tokens<const N: usize>(module: &str) -> Result<[String; N], AuthError> {
    let mut bytes = [[0u8; 32]; N];
    getrandom::fill(bytes.as_flattened_mut())
        .map_err(|_| AuthError::unavailable(module, FlowError::NoRandomness))?;
    Ok(bytes.map(|token| Base64UrlUnpadded::encode_string(&token)))
}
