//! Signed identity headers: an identity-aware proxy (Google IAP, Cloudflare Access,
//! Pomerium, oauth2-proxy, AWS ALB, ...) signs a JWT naming the user and puts it in a
//! request header; this module verifies it instead of trusting a plain `remote-user`.
//!
//! * The header is read only from the configured proxies (its own `trusted_proxies`,
//!   or the chain's: the same rule as the [header module](super::header)); a signed
//!   header from any other peer is refused, never ignored.
//! * The JWT is verified with [`crate::jose::jws`] (the crate's one JOSE stack):
//!   algorithm allow-list (ES256 and RS256 by default; never `none` or HMAC), key type,
//!   signature; keys from a JWKS URL (cached in [`crate::jose`]'s key cache shared with
//!   the OIDC module: refetched once on an unknown `kid`, rate limited) or PEM files.
//! * Then `iss`, `aud`, `exp` (required), `iat` and `nbf` with bounded skew, `sub`.
//! * Login, email and groups come from claim paths (`flow::json`, as for OIDC).
//!
//! Every setting is described in `docs/modules/signed_header.md`.

mod settings;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::{debug, warn};

pub use settings::{
    DEFAULT_SIGNED_HEADER, DEFAULT_SIGNED_HEADER_SKEW, MAX_SIGNED_HEADER_SKEW, SignedHeaderSettings,
};

use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::flow::http::HttpClient;
use crate::flow::json;
use crate::jose::cache::{Check, KeyCache};
use crate::jose::jws::{Jws, JwsError, MAX_JWS_BYTES, VerifiedJws};
use crate::jose::{Algorithm, Jwks, RingJwk};
use crate::net::ProxyTrust;
use crate::{AuthError, AuthRequest, Authenticator, ConfigError, Identity, ModuleKind, Outcome};

/// Why a signed identity header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedHeaderError {
    /// The header is absent (with `fail_if_missing`).
    #[error("the signed identity header is missing")]
    Missing,
    /// The header came from a peer that is not a trusted proxy.
    #[error("signed identity header from a peer that is not a trusted proxy")]
    UntrustedPeer,
    /// The header appears more than once.
    #[error("the signed identity header appears more than once")]
    Repeated,
    /// The header value is not ASCII text, or longer than the JWS limit.
    #[error("the signed identity header is not a compact JWS")]
    NotText,
    /// The JWS did not verify (algorithm, key, signature, shape).
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// `iss` is not the configured issuer.
    #[error("signed header issuer does not match")]
    WrongIssuer,
    /// `aud` does not hold the configured audience.
    #[error("signed header audience does not match")]
    WrongAudience,
    /// `exp` has passed (beyond the clock skew).
    #[error("signed header has expired")]
    Expired,
    /// `iat` or `nbf` lies in the future (beyond the clock skew).
    #[error("signed header is not valid yet")]
    NotYetValid,
    /// A required claim (`exp`, `sub`, `aud`, the login claim) is missing or malformed.
    #[error("signed header claim `{0}` is missing or invalid")]
    MissingClaim(String),
}

/// Where the keys come from.
enum Keys {
    /// Read from PEM files once.
    Fixed(Vec<RingJwk>),
    /// A JWKS URL, cached.
    Jwks(Box<JwksKeys>),
}

struct JwksKeys {
    url: String,
    http: HttpClient,
    cache: KeyCache<Jwks>,
    empty: Jwks,
}

/// The signed-header module. Build it with [`SignedHeaderModule::new`].
pub struct SignedHeaderModule {
    id: crate::ModuleId,
    /// `None`: the chain's proxies (set when the chain is built).
    trust: Option<ProxyTrust>,
    settings: SignedHeaderSettings,
    keys: std::sync::Arc<Keys>,
}

impl std::fmt::Debug for SignedHeaderModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedHeaderModule")
            .field("id", &self.id)
            .field("header", &self.settings.header)
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl SignedHeaderModule {
    /// Checks `settings` and builds the module `id` (PEM files are read now; the JWKS
    /// on first use, or with [`prefetch`](Self::prefetch)). Errors name the key.
    pub fn new(
        id: impl Into<crate::ModuleId>,
        settings: SignedHeaderSettings,
    ) -> Result<SignedHeaderModule, ConfigError> {
        let id = id.into();
        settings.check()?;
        let keys = match &settings.jwks_url {
            Some(url) => Keys::Jwks(Box::new(JwksKeys {
                url: url.to_string(),
                http: settings.http.client(&id, str::to_owned)?,
                cache: KeyCache::new(&id, settings.jwks_refresh, settings.jwks_min_refetch_interval),
                empty: Jwks::new(Vec::new()),
            })),
            None => {
                let mut keys = Vec::new();
                for (i, path) in settings.public_key_files.iter().enumerate() {
                    let key = format!("public_key_files[{i}]");
                    let pem = std::fs::read_to_string(path)
                        .map_err(|source| ConfigError::io(&key, path, source))?;
                    keys.push(
                        RingJwk::from_public_key_pem(&pem, None)
                            .map_err(|e| ConfigError::invalid(key, e.to_string()))?,
                    );
                }
                Keys::Fixed(keys)
            }
        };
        let trust = settings
            .trusted_proxies
            .as_ref()
            .map(|nets| ProxyTrust::new(nets.iter().map(|net| net.0)));
        Ok(SignedHeaderModule {
            id,
            trust,
            settings,
            keys: std::sync::Arc::new(keys),
        })
    }

    /// Fetches the JWKS now (otherwise the first login does); nothing with PEM keys.
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        if let Keys::Jwks(jwks) = self.keys.as_ref() {
            let JwksKeys { url, http, cache, .. } = jwks.as_ref();
            match cache.fetch(true, || http.get_jwks(url)).await {
                crate::jose::cache::KeyFetch::Fetched(_) => {}
                crate::jose::cache::KeyFetch::Failed { error, .. } => return Err(error),
                crate::jose::cache::KeyFetch::RateLimited { retry_after, .. } => {
                    return Err(self.limited(None, retry_after));
                }
            }
        }
        Ok(())
    }

    /// JWKS requests sent so far (`jwks` counts them).
    pub fn requests(&self) -> crate::flow::ProviderRequests {
        match self.keys.as_ref() {
            Keys::Jwks(jwks) => jwks.http.requests(),
            Keys::Fixed(_) => crate::flow::ProviderRequests::default(),
        }
    }

    /// Whether the module takes its trusted proxies from its chain.
    pub(crate) fn inherits_trust(&self) -> bool {
        self.trust.is_none()
    }

    /// The same module trusting its chain's proxies (the chain builder calls it).
    pub(crate) fn with_chain_trust(&self, trust: &ProxyTrust) -> SignedHeaderModule {
        if trust.trusts_nobody() {
            warn!(target: AUDIT_TARGET, module = %self.id, "signed-header module trusts no proxy (neither its own list nor the chain's): it will never authenticate anybody");
        }
        SignedHeaderModule {
            id: self.id.clone(),
            trust: Some(trust.clone()),
            settings: self.settings.clone(),
            keys: self.keys.clone(),
        }
    }

    fn rejected(&self, err: impl Into<SignedHeaderError>) -> AuthError {
        let err = err.into();
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "signed identity header rejected");
        AuthError::rejected(self.id.clone(), err)
    }

    fn limited(&self, kid: Option<&str>, retry_after: Duration) -> AuthError {
        AuthError::Unavailable {
            module: self.id.to_string(),
            cause: SignedHeaderError::Jws(JwsError::UnknownKey(kid.map(str::to_owned))).into(),
            retry_after: Some(retry_after),
        }
    }

    fn algorithms(&self) -> &[Algorithm] {
        &self.settings.algorithms
    }

    /// The signature, with the configured keys.
    async fn verify(&self, token: &str) -> Result<VerifiedJws, AuthError> {
        // Header checks (alg, crit, none, HMAC) before any key is looked at or fetched.
        let kid = Jws::parse(token, self.algorithms())
            .map_err(|e| self.rejected(e))?
            .header()
            .kid
            .clone();
        match self.keys.as_ref() {
            Keys::Fixed(keys) => Jws::parse(token, self.algorithms())
                .and_then(|jws| jws.verify(keys))
                .map_err(|e| self.rejected(e)),
            Keys::Jwks(jwks) => {
                let JwksKeys {
                    url,
                    http,
                    cache,
                    empty,
                } = jwks.as_ref();
                cache
                    .verify(
                        empty,
                        |keys: &Jwks| {
                            let result = Jws::parse(token, self.algorithms()).and_then(|jws| jws.verify(keys.keys()));
                            match result {
                                Err(err @ JwsError::UnknownKey(_)) => {
                                    Check::UnknownKey(AuthError::rejected(self.id.clone(), SignedHeaderError::Jws(err)))
                                }
                                Err(err) => Check::Done(Err(self.rejected(err))),
                                Ok(verified) => Check::Done(Ok(verified)),
                            }
                        },
                        || async {
                            let keys = http.get_jwks(url).await?;
                            debug!(target: AUDIT_TARGET, module = %self.id, keys = keys.keys().len(), "JWKS fetched");
                            Ok(keys)
                        },
                        |retry_after| self.limited(kid.as_deref(), retry_after),
                    )
                    .await
            }
        }
    }

    /// The claims after the signature: `iss`, `aud`, `exp`, `iat`, `nbf`, `sub`.
    fn check_claims(&self, claims: &Map<String, Value>, now: SystemTime) -> Result<(), SignedHeaderError> {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let skew = self.settings.clock_skew.as_secs();
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(SignedHeaderError::WrongIssuer);
        }
        let audience = self.settings.audience.as_str();
        match claims.get("aud") {
            None => return Err(SignedHeaderError::MissingClaim("aud".into())),
            Some(Value::String(aud)) if aud == audience => {}
            Some(Value::Array(list))
                if list.len() <= 64 && list.iter().any(|a| a.as_str() == Some(audience)) => {}
            Some(_) => return Err(SignedHeaderError::WrongAudience),
        }
        let time = |name: &str, required: bool| match claims.get(name) {
            None if !required => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| SignedHeaderError::MissingClaim(name.into())),
            _ => Err(SignedHeaderError::MissingClaim(name.into())),
        };
        if let Some(exp) = time("exp", true)?
            && now > exp.saturating_add(skew)
        {
            return Err(SignedHeaderError::Expired);
        }
        for name in ["iat", "nbf"] {
            if let Some(t) = time(name, false)?
                && t > now.saturating_add(skew)
            {
                return Err(SignedHeaderError::NotYetValid);
            }
        }
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() && sub.len() <= 255 && !sub.chars().any(char::is_control) => Ok(()),
            _ => Err(SignedHeaderError::MissingClaim("sub".into())),
        }
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, SignedHeaderError> {
        let subject =
            json::text_at(claims, "sub").ok_or_else(|| SignedHeaderError::MissingClaim("sub".into()))?;
        let login = json::text_at(claims, &self.settings.login_claim)
            .ok_or_else(|| SignedHeaderError::MissingClaim(self.settings.login_claim.clone()))?;
        let mut identity = Identity::new(self.id.clone(), subject, login);
        if !self.settings.email_claim.is_empty() {
            identity.email = json::text_at(claims, &self.settings.email_claim);
        }
        if !self.settings.groups_claim.is_empty() {
            identity.groups = json::groups_at(claims, &self.settings.groups_claim).into();
        }
        if let Some(iss) = json::text_at(claims, "iss") {
            identity.attributes.insert("iss".into(), vec![iss]);
        }
        Ok(identity)
    }

    fn malformed(&self, err: SignedHeaderError) -> AuthError {
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "signed identity header malformed");
        AuthError::InvalidRequest(RequestError::Module {
            module: self.id.to_string(),
            cause: err.into(),
        })
    }
}

#[async_trait]
impl Authenticator for SignedHeaderModule {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Ambient
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let mut values = request.headers.get_all(&self.settings.header).iter();
        let value = match (values.next(), values.next()) {
            (None, _) if self.settings.fail_if_missing => {
                return Err(self.rejected(SignedHeaderError::Missing));
            }
            (None, _) => return Ok(Outcome::Abstain),
            (Some(_), Some(_)) => return Err(self.malformed(SignedHeaderError::Repeated)),
            (Some(value), None) => value,
        };
        if !self
            .trust
            .as_ref()
            .is_some_and(|t| t.is_trusted(request.peer.ip()))
        {
            warn!(target: AUDIT_TARGET, module = %self.id, peer = %request.peer.ip(),
                header = %self.settings.header, "signed identity header from an untrusted peer refused");
            return Err(AuthError::rejected(
                self.id.clone(),
                SignedHeaderError::UntrustedPeer,
            ));
        }
        if value.len() > MAX_JWS_BYTES {
            return Err(self.malformed(SignedHeaderError::NotText));
        }
        let token = value
            .to_str()
            .map_err(|_| self.malformed(SignedHeaderError::NotText))?
            .trim();
        let verified = self.verify(token).await?;
        self.check_claims(&verified.claims, SystemTime::now())
            .map_err(|e| self.rejected(e))?;
        let identity = self.identity(&verified.claims).map_err(|e| self.rejected(e))?;
        Ok(Outcome::Authenticated(identity))
    }
}
