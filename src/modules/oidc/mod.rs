//! OpenID Connect login: authorization-code flow with PKCE (S256), `state` and
//! `nonce`, against any certified provider (Keycloak, Entra ID, Okta, Google,
//! Authentik, Dex, ...).
//!
//! * Discovery (`/.well-known/openid-configuration`) is fetched on first use, cached
//!   and refreshed after `metadata_refresh`; explicit endpoints override it.
//! * Discovery documents are read as the [`openidconnect`] crate's `ProviderMetadata`
//!   (over the crate's [`jose`](crate::jose) types, so unknown algorithms such as
//!   `ES256K` are kept, not fatal); the HTTP fetches stay this module's own.
//! * ID tokens are verified with openidconnect's `IdTokenVerifier` over `ring`-backed
//!   keys ([`RingJwk`](crate::jose::RingJwk)), one verifier built per fetched key set:
//!   signature with an algorithm allow-list (RS256 by default; `none` only with
//!   `insecure_allow_unsigned_id_tokens`), `typ`, `iss`, `aud` / `azp`, `exp`,
//!   `iat` / `nbf` with bounded clock skew, `nonce`.
//! * The JWKS is cached; a token signed with an unknown `kid` triggers one refetch,
//!   at most once per `jwks_min_refetch_interval`, so key rotation just works.
//! * A callback costs exactly one HTTP request (the token request), plus one to the
//!   userinfo endpoint when `userinfo` is on. Discovery and JWKS are never fetched
//!   per login.
//! * Tokens, codes, secrets and verifiers are never logged.
//!
//! Every setting is described in `docs/modules/oidc.md`.

mod id_token;
mod logout;
mod metadata;
mod settings;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tracing::{debug, warn};

pub use crate::jose::Algorithm;
pub use id_token::{MAX_ID_TOKEN_BYTES, TokenError};
pub use logout::{BACKCHANNEL_LOGOUT_EVENT, LogoutToken, MAX_LOGOUT_TOKEN_AGE, MAX_SID_BYTES};
pub use settings::{GroupsOverage, OidcSettings};

use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::flow::check_url;
use crate::flow::http::{HttpClient, Purpose};
use crate::flow::oauth::{self, Callback, Client};
use crate::flow::{CookieAttributes, HttpError, OAuthError, SameSite};
use crate::flow::{FlowError, Flows, ProviderRequests, ReplayCache, json, redirect_authenticator};
use crate::jose::cache::{Check, KeyCache, KeyFetch};
use crate::settings::ProviderUrl;
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Redirect};
use id_token::{Issuer, ValidatedIdToken, Validator};
use metadata::RingProviderMetadata;

/// Default scopes.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];
/// Default claims tried, in order, for the login name (`sub` is the last resort).
pub const DEFAULT_LOGIN_CLAIMS: &[&str] = &["preferred_username", "email", "sub"];
/// Default allowed clock skew for `exp`, `iat` and `nbf`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Default age after which discovery and JWKS are fetched again.
pub const DEFAULT_METADATA_REFRESH: Duration = Duration::from_secs(3600);
/// Default minimum time between two JWKS fetches (an unknown `kid` refetches).
pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// Claims copied out of the ID token and userinfo that must not be overridden by userinfo.
const PROTECTED_CLAIMS: &[&str] = &[
    "iss", "sub", "aud", "azp", "exp", "iat", "nbf", "nonce", "tid", "sid",
];

/// The claims of a verified ID token.
///
/// The JSON map of every claim exactly as signed is read from the token on first use
/// ([`get`](Self::get), [`as_map`](Self::as_map)); validation alone does not build it.
#[derive(Clone)]
pub struct IdTokenClaims {
    token: ValidatedIdToken,
    claims: OnceLock<Map<String, Value>>,
}

impl IdTokenClaims {
    fn new(token: ValidatedIdToken) -> IdTokenClaims {
        IdTokenClaims {
            token,
            claims: OnceLock::new(),
        }
    }

    /// The subject (`sub`), present in every verified token.
    pub fn subject(&self) -> &str {
        self.token.typed.subject().as_str()
    }

    /// The value at a claim name or dotted path (`realm_access.roles`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        json::lookup(self.as_map(), path)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        self.claims
            .get_or_init(|| self.token.raw_claims().unwrap_or_default())
    }

    fn into_map(mut self) -> Map<String, Value> {
        match self.claims.take() {
            Some(claims) => claims,
            None => self.token.raw_claims().unwrap_or_default(),
        }
    }
}

impl std::fmt::Debug for IdTokenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenClaims")
            .field("claims", self.as_map())
            .finish()
    }
}

impl PartialEq for IdTokenClaims {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

/// A provider's endpoints, discovered or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Metadata {
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    iss_parameter_supported: bool,
    /// RP-initiated logout (discovery only).
    end_session_endpoint: Option<String>,
}

/// Endpoints configured explicitly (they win over discovery).
#[derive(Debug, Clone, Default)]
struct Endpoints {
    authorization: Option<String>,
    token: Option<String>,
    jwks: Option<String>,
    userinfo: Option<String>,
}

/// Which claims become which parts of the [`Identity`].
#[derive(Debug, Clone)]
struct ClaimNames {
    login: Vec<String>,
    email: Option<String>,
    name: Option<String>,
    groups: Option<String>,
    /// What a groups overage leads to.
    overage: GroupsOverage,
    /// Claims that must hold one of these values.
    required: Vec<(String, Vec<String>)>,
}

type Cached<T> = RwLock<Option<(Arc<T>, Instant)>>;

/// The OpenID Connect module. Build it with [`OidcModule::new`] from
/// [`OidcSettings`] (in code, or read from a `type = "oidc"` table).
pub struct OidcModule {
    id: crate::ModuleId,
    issuer: Issuer,
    /// The configured issuer (fixed) or discovery base.
    issuer_url: String,
    discovery_url: Option<String>,
    endpoints: Endpoints,
    client: Client,
    scope: String,
    algorithms: Vec<Algorithm>,
    allow_unsigned: bool,
    clock_skew: Duration,
    claims: ClaimNames,
    userinfo: bool,
    metadata_refresh: Duration,
    jwks_min_refetch: Duration,
    flows: Flows,
    http: HttpClient,
    metadata: Cached<Metadata>,
    metadata_attempt: Mutex<Option<Instant>>,
    /// The fetched key set with its verifier (the JWKS cache shared with the other
    /// JWKS users, [`crate::jose`]).
    keys: KeyCache<Validator>,
    /// A verifier without keys, used before any key set is cached: it refuses what
    /// needs no key (algorithm, issuer, audience, unsigned tokens) without a fetch.
    keyless: Validator,
    /// One-time use of back-channel logout token ids (`jti`).
    replay: Arc<dyn ReplayCache>,
}

impl std::fmt::Debug for OidcModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcModule")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client.id)
            .field("redirect_uri", &self.client.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl OidcModule {
    /// Checks `settings` once and builds the module `id`; errors name keys of the
    /// module's table (`issuer`, `flow_ttl`). Secrets are resolved here; nothing is
    /// fetched yet. The flow store is injected through `settings.flow.store`.
    pub fn new(id: impl Into<crate::ModuleId>, settings: OidcSettings) -> Result<OidcModule, ConfigError> {
        let id = id.into();
        let s = settings;
        let invalid = |field: &str, message: &str| ConfigError::invalid(field, message);
        if !s.discovery {
            for (field, url) in [
                ("authorization_endpoint", &s.authorization_endpoint),
                ("token_endpoint", &s.token_endpoint),
                ("jwks_uri", &s.jwks_uri),
            ] {
                if url.is_none() {
                    return Err(invalid(field, "is required when `discovery` is off"));
                }
            }
            if s.userinfo && s.userinfo_endpoint.is_none() {
                return Err(invalid(
                    "userinfo_endpoint",
                    "is required for `userinfo` when `discovery` is off",
                ));
            }
        }
        let client = s.client.build()?;
        let mut scopes = s.scopes;
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        if let Some(bad) = scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
            return Err(ConfigError::invalid("scopes", format!("{bad:?} is not a scope")));
        }
        let allow_unsigned = s.insecure_allow_unsigned_id_tokens;
        if s.id_token_algorithms.is_empty() && !allow_unsigned {
            return Err(invalid("id_token_algorithms", "must name at least one algorithm"));
        }
        if allow_unsigned {
            warn!(target: AUDIT_TARGET, module = %id,
                "insecure_allow_unsigned_id_tokens is on: unsigned ID tokens are accepted");
        }
        if s.clock_skew > Duration::from_secs(600) {
            return Err(invalid("clock_skew", "must be at most 10 minutes"));
        }
        let issuer = match s.issuer_template {
            Some(template) => {
                if !template.contains("{tenantid}") {
                    return Err(invalid("issuer_template", "must contain `{tenantid}`"));
                }
                check_url("issuer_template", &template.replace("{tenantid}", "tenant"))?;
                Issuer::Template {
                    template,
                    tenants: s.allowed_tenants,
                }
            }
            None if !s.allowed_tenants.is_empty() => {
                return Err(invalid("allowed_tenants", "needs `issuer_template`"));
            }
            None => Issuer::Fixed(s.issuer.to_string()),
        };
        if s.login_claims.iter().any(String::is_empty) {
            return Err(invalid("login_claims", "must not hold an empty name"));
        }
        if s.metadata_refresh < Duration::from_secs(1) {
            return Err(invalid("metadata_refresh", "must be at least one second"));
        }
        let http = s.http.client(&id, str::to_owned)?;
        let flows = s.flow.build(CookieAttributes::for_callback(
            &client.redirect_uri,
            SameSite::Lax,
        ))?;
        let issuer_url = s.issuer.to_string();
        let discovery_url = s.discovery.then(|| match s.discovery_url {
            Some(url) => url.to_string(),
            None => format!(
                "{}/.well-known/openid-configuration",
                issuer_url.trim_end_matches('/')
            ),
        });
        let text = |url: Option<ProviderUrl>| url.map(|u| u.to_string());
        let endpoints = Endpoints {
            authorization: text(s.authorization_endpoint),
            token: text(s.token_endpoint),
            jwks: text(s.jwks_uri),
            userinfo: text(s.userinfo_endpoint),
        };
        let static_metadata = match (&discovery_url, &endpoints) {
            (
                None,
                Endpoints {
                    authorization: Some(a),
                    token: Some(t),
                    jwks: Some(j),
                    userinfo,
                },
            ) => Some((
                Arc::new(Metadata {
                    authorization_endpoint: a.clone(),
                    token_endpoint: t.clone(),
                    jwks_uri: j.clone(),
                    userinfo_endpoint: userinfo.clone(),
                    iss_parameter_supported: false,
                    end_session_endpoint: None,
                }),
                Instant::now(),
            )),
            _ => None,
        };
        for (claim, allowed) in &s.required_claims {
            if claim.is_empty() || allowed.is_empty() || allowed.iter().any(String::is_empty) {
                return Err(ConfigError::invalid(
                    format!("required_claims.{claim}"),
                    "must name a claim and list at least one value, none empty",
                ));
            }
        }
        let mut login = s.login_claims;
        if !login.iter().any(|c| c == "sub") {
            login.push("sub".into());
        }
        let name = |claim: String| (!claim.is_empty()).then_some(claim);
        let keyless = Validator::new(
            openidconnect::JsonWebKeySet::new(Vec::new()),
            &s.id_token_algorithms,
            issuer.clone(),
            &client.id,
            s.clock_skew,
            allow_unsigned,
        );
        Ok(OidcModule {
            issuer,
            issuer_url,
            discovery_url,
            endpoints,
            client,
            scope: scopes.join(" "),
            algorithms: s.id_token_algorithms,
            allow_unsigned,
            clock_skew: s.clock_skew,
            claims: ClaimNames {
                login,
                email: name(s.email_claim),
                name: name(s.name_claim),
                groups: name(s.groups_claim),
                overage: s.groups_overage,
                required: s.required_claims.into_iter().collect(),
            },
            userinfo: s.userinfo,
            metadata_refresh: s.metadata_refresh,
            jwks_min_refetch: s.jwks_min_refetch_interval,
            flows,
            http,
            metadata: RwLock::new(static_metadata),
            metadata_attempt: Mutex::new(None),
            keys: KeyCache::new(&id, s.metadata_refresh, s.jwks_min_refetch_interval),
            keyless,
            replay: s
                .replay
                .unwrap_or_else(|| Arc::new(crate::flow::MemoryReplayCache::default())),
            id,
        })
    }

    /// The client's public JWKS (`{"keys": [..]}`, JSON text) for
    /// `private_key_jwt`: the public part of `client_private_key` with its `kid`,
    /// `use` and `alg`, for the host to serve where the provider fetches the client's
    /// keys (its registered `jwks_uri`). `None` with any other auth method.
    pub fn client_jwks(&self) -> Option<String> {
        self.client.public_jwks()
    }

    /// HTTP requests sent to the provider so far, by purpose.
    pub fn requests(&self) -> ProviderRequests {
        self.http.requests()
    }

    /// Fetches discovery and the JWKS now (otherwise the first login does), so a
    /// misconfigured provider shows at start-up.
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        self.metadata().await?;
        let keys = match self.keys.fetch(true, || self.load_keys()).await {
            KeyFetch::Fetched(keys) => keys,
            KeyFetch::Failed { error, .. } => return Err(error),
            KeyFetch::RateLimited { retry_after, .. } => return Err(self.refetch_limited(None, retry_after)),
        };
        if keys.keys().keys().is_empty() {
            return Err(self.http.unavailable(OAuthError::NoSigningKeys));
        }
        Ok(())
    }

    /// Verifies an ID token: signature (fetching the JWKS when needed), issuer,
    /// audience, expiry, issued-at, and `nonce` when given.
    ///
    /// The cached key set's verifier runs first (without keys yet: a keyless one, which
    /// refuses what needs no key). Only a token whose key it lacks (`kid` unknown, or no
    /// key of the token's type) refetches the JWKS, rate limited: when no cached key
    /// matches and the refetch is refused by its rate limit (a fetch happened less than
    /// `jwks_min_refetch_interval` ago), the answer is [`AuthError::Unavailable`] with
    /// `retry_after`: the provider may be rotating its keys, so the client should try
    /// again shortly. Likewise a failed refetch with no matching cached key answers the
    /// fetch's outage.
    pub async fn validate_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<IdTokenClaims, AuthError> {
        let now = SystemTime::now();
        // The `kid` of an unknown key, for the rate-limited answer.
        let unknown = std::sync::Mutex::new(None::<String>);
        self.keys
            .verify(
                &self.keyless,
                |validator: &Validator| match validator.validate(token, nonce, now) {
                    Ok(valid) => Check::Done(Ok(IdTokenClaims::new(valid))),
                    Err(TokenError::UnknownKey(kid)) => {
                        if let Ok(mut slot) = unknown.lock() {
                            slot.clone_from(&kid);
                        }
                        Check::UnknownKey(AuthError::rejected(self.id.clone(), TokenError::UnknownKey(kid)))
                    }
                    Err(err) => Check::Done(Err(self.token_error(err))),
                },
                || self.load_keys(),
                |retry_after| {
                    let kid = unknown.lock().ok().and_then(|k| k.clone());
                    self.refetch_limited(kid.as_deref(), retry_after)
                },
            )
            .await
    }

    fn token_error(&self, err: TokenError) -> AuthError {
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "ID token rejected");
        AuthError::rejected(self.id.clone(), err)
    }

    /// The provider's endpoints: configured, or discovered and cached.
    async fn metadata(&self) -> Result<Arc<Metadata>, AuthError> {
        let current = self.metadata.read().ok().and_then(|m| m.clone());
        let Some(url) = &self.discovery_url else {
            return current
                .map(|(m, _)| m)
                .ok_or_else(|| AuthError::Misconfigured(format!("module `{}` has no endpoints", self.id)));
        };
        if let Some((m, at)) = &current
            && at.elapsed() < self.metadata_refresh
        {
            return Ok(m.clone());
        }
        let mut attempt = self.metadata_attempt.lock().await;
        let current = self.metadata.read().ok().and_then(|m| m.clone());
        if let Some((m, at)) = &current
            && at.elapsed() < self.metadata_refresh
        {
            return Ok(m.clone());
        }
        if let (Some((m, _)), Some(last)) = (&current, *attempt)
            && last.elapsed() < self.jwks_min_refetch
        {
            return Ok(m.clone());
        }
        *attempt = Some(Instant::now());
        match self.discover(url).await {
            Ok(m) => {
                let m = Arc::new(m);
                if let Ok(mut slot) = self.metadata.write() {
                    *slot = Some((m.clone(), Instant::now()));
                }
                Ok(m)
            }
            Err(err) => match current {
                Some((m, _)) => {
                    warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "discovery refresh failed; using the cached document");
                    Ok(m)
                }
                None => Err(err),
            },
        }
    }

    async fn discover(&self, url: &str) -> Result<Metadata, AuthError> {
        let response = self.http.get_json(Purpose::Discovery, url, None).await?;
        if !response.status.is_success() {
            return Err(self.http.unavailable(HttpError::Status {
                what: Purpose::Discovery.what(),
                status: response.status.as_u16(),
            }));
        }
        let doc = response.body;
        // The issuer first: a document of another provider is refused as such, however
        // the rest of it looks.
        let issuer = doc
            .get("issuer")
            .and_then(Value::as_str)
            .ok_or_else(|| self.http.unavailable(OAuthError::DiscoveryField("issuer".into())))?;
        let issuer_ok = match &self.issuer {
            Issuer::Fixed(expected) => issuer == expected,
            Issuer::Template { template, .. } => issuer == template || issuer == self.issuer_url,
        };
        if !issuer_ok {
            return Err(self.http.unavailable(OAuthError::DiscoveryIssuerMismatch));
        }
        // openidconnect's ProviderMetadata over the crate's JOSE types: algorithm names
        // it does not know (`ES256K`, ...) are kept as `Other`, never fatal.
        let provider: RingProviderMetadata = serde_path_to_error::deserialize(&doc).map_err(|err| {
            let field = discovery_member(&err);
            self.http.unavailable(OAuthError::DiscoveryField(field))
        })?;
        let endpoint = |name: &str, configured: &Option<String>, discovered: Option<&str>| {
            if let Some(url) = configured {
                return Ok(Some(url.clone()));
            }
            match discovered {
                Some(url) => check_url(name, url)
                    .map(|()| Some(url.to_owned()))
                    .map_err(|_| self.http.unavailable(OAuthError::DiscoveryField(name.into()))),
                None => Ok(None),
            }
        };
        let required = |name: &str, value: Result<Option<String>, AuthError>| {
            value?.ok_or_else(|| self.http.unavailable(OAuthError::DiscoveryField(name.into())))
        };
        Ok(Metadata {
            authorization_endpoint: required(
                "authorization_endpoint",
                endpoint(
                    "authorization_endpoint",
                    &self.endpoints.authorization,
                    Some(provider.authorization_endpoint().as_str()),
                ),
            )?,
            token_endpoint: required(
                "token_endpoint",
                endpoint(
                    "token_endpoint",
                    &self.endpoints.token,
                    provider.token_endpoint().map(|u| u.as_str()),
                ),
            )?,
            jwks_uri: required(
                "jwks_uri",
                endpoint(
                    "jwks_uri",
                    &self.endpoints.jwks,
                    Some(provider.jwks_uri().as_str()),
                ),
            )?,
            userinfo_endpoint: endpoint(
                "userinfo_endpoint",
                &self.endpoints.userinfo,
                provider.userinfo_endpoint().map(|u| u.as_str()),
            )?,
            iss_parameter_supported: provider
                .additional_metadata()
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
            end_session_endpoint: provider
                .additional_metadata()
                .end_session_endpoint
                .clone()
                .filter(|url| url.starts_with("https://") || url.starts_with("http://")),
        })
    }

    /// No key for `kid`, and no refetch allowed before `retry_after`: a temporary
    /// condition (the provider may be rotating its keys).
    fn refetch_limited(&self, kid: Option<&str>, retry_after: Duration) -> AuthError {
        AuthError::Unavailable {
            module: self.id.to_string(),
            cause: TokenError::UnknownKey(kid.map(str::to_owned)).into(),
            retry_after: Some(retry_after),
        }
    }

    /// Fetches the JWKS (through [`KeyCache::fetch`], which rate-limits and
    /// single-flights) and builds its verifier.
    async fn load_keys(&self) -> Result<Validator, AuthError> {
        let metadata = self.metadata().await?;
        let keys = self.http.get_jwks(&metadata.jwks_uri).await?;
        debug!(target: AUDIT_TARGET, module = %self.id, keys = keys.keys().len(), "JWKS fetched");
        Ok(Validator::new(
            keys,
            &self.algorithms,
            self.issuer.clone(),
            &self.client.id,
            self.clock_skew,
            self.allow_unsigned,
        ))
    }

    /// The provider's RP-initiated logout URL (OpenID Connect RP-Initiated Logout
    /// 1.0: its discovered `end_session_endpoint` with `client_id`, and when given
    /// `id_token_hint` (the ID token of the login, so the provider knows whose
    /// session ends) and `post_logout_redirect_uri`, which must be registered at the
    /// provider); `None` when the provider publishes no `end_session_endpoint`.
    pub async fn end_session_url(
        &self,
        post_logout_redirect_uri: Option<&str>,
        id_token_hint: Option<&str>,
    ) -> Result<Option<String>, AuthError> {
        let metadata = self.metadata().await?;
        let Some(endpoint) = &metadata.end_session_endpoint else {
            return Ok(None);
        };
        let mut params = vec![("client_id", self.client.id.as_str())];
        if let Some(hint) = id_token_hint.filter(|t| !t.is_empty() && t.len() <= MAX_ID_TOKEN_BYTES) {
            params.push(("id_token_hint", hint));
        }
        if let Some(uri) = post_logout_redirect_uri {
            params.push(("post_logout_redirect_uri", uri));
        }
        oauth::authorization_url(endpoint, &params, &crate::StartLogin::new(), &[]).map(Some)
    }

    async fn start(&self, start: &crate::StartLogin) -> Result<Outcome, AuthError> {
        let metadata = self.metadata().await?;
        let started = self.flows.start(&self.id, start).await?;
        let flow = &started.flow;
        let challenge = flow.pkce_challenge();
        let location = oauth::authorization_url(
            &metadata.authorization_endpoint,
            &[
                ("response_type", "code"),
                ("client_id", &self.client.id),
                ("redirect_uri", &self.client.redirect_uri),
                ("scope", &self.scope),
                ("state", &flow.state),
                ("nonce", &flow.nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            start,
            &self.client.extra_params,
        )?;
        Ok(Outcome::Redirect(Redirect {
            location,
            flow_cookie: Some(started.cookie),
        }))
    }

    async fn callback(
        &self,
        request: &AuthRequest,
        params: &BTreeMap<String, String>,
    ) -> Result<Outcome, AuthError> {
        let Some(callback) = Callback::read(params) else {
            return Ok(Outcome::Abstain);
        };
        let flow = match self
            .flows
            .take(&self.id, callback.state, request.flow_cookie.as_deref())
            .await
        {
            Ok(flow) => flow,
            Err(FlowError::Unknown | FlowError::OtherModule) => return Ok(Outcome::Abstain),
            Err(err) => {
                warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "redirect login refused");
                return Err(err.into_auth_error(&self.id));
            }
        };
        if let Some(err) = callback.error(&self.id) {
            return Err(err);
        }
        let metadata = self.metadata().await?;
        match callback.iss {
            Some(iss) if !self.iss_parameter_matches(iss) => {
                warn!(target: AUDIT_TARGET, module = %self.id, "callback `iss` names another issuer (mix-up attack?)");
                return Err(AuthError::rejected(self.id.clone(), OAuthError::IssuerMismatch));
            }
            None if metadata.iss_parameter_supported => {
                return Err(AuthError::rejected(self.id.clone(), OAuthError::MissingIssuer));
            }
            _ => {}
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty() && c.len() <= 4096)
            .ok_or_else(|| {
                AuthError::InvalidRequest(RequestError::Module {
                    module: self.id.to_string(),
                    cause: OAuthError::MissingCode.into(),
                })
            })?;
        let tokens = oauth::exchange_code(
            &self.http,
            &self.id,
            &metadata.token_endpoint,
            &self.client,
            code,
            &flow.pkce_verifier,
        )
        .await?;
        let id_token = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| self.http.unavailable(OAuthError::NoIdToken))?;
        let mut claims = self
            .validate_id_token(id_token, Some(&flow.nonce))
            .await?
            .into_map();
        let access_token = tokens.get("access_token").and_then(Value::as_str);
        id_token::check_at_hash(id_token, &claims, access_token).map_err(|e| self.token_error(e))?;
        // Read before userinfo is merged: only the signed token names the session.
        let sid = json::text_at(&claims, "sid").filter(|sid| sid.len() <= logout::MAX_SID_BYTES);
        if self.userinfo {
            self.merge_userinfo(&metadata, access_token.unwrap_or_default(), &mut claims)
                .await?;
        }
        let mut identity = self.identity(&claims)?;
        if let Some(path) = &self.claims.groups
            && groups_overage(&claims, path)
        {
            identity.groups = self
                .overage_groups(&metadata, access_token.unwrap_or_default(), &claims, path)
                .await?
                .into();
            if self.claims.overage == GroupsOverage::NoGroups {
                identity
                    .attributes
                    .insert("groups_overage".into(), vec!["true".into()]);
            }
        }
        identity.return_to = flow.return_to;
        let session = identity.provider_session.get_or_insert_default();
        session.id_token = Some(id_token.to_owned());
        session.session_id = sid;
        Ok(Outcome::Authenticated(identity))
    }

    fn iss_parameter_matches(&self, iss: &str) -> bool {
        match &self.issuer {
            Issuer::Fixed(expected) => iss == expected,
            Issuer::Template { template, tenants } => {
                let Some((prefix, suffix)) = template.split_once("{tenantid}") else {
                    return false;
                };
                iss.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    .is_some_and(|tid| {
                        !tid.is_empty()
                            && tid.len() <= 64
                            && tid
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                            && (tenants.is_empty() || tenants.iter().any(|t| t == tid))
                    })
            }
        }
    }

    async fn merge_userinfo(
        &self,
        metadata: &Metadata,
        access_token: &str,
        claims: &mut Map<String, Value>,
    ) -> Result<(), AuthError> {
        let Some(endpoint) = &metadata.userinfo_endpoint else {
            return Err(AuthError::Misconfigured(format!(
                "module `{}`: `userinfo` is on but the provider has no userinfo endpoint",
                self.id
            )));
        };
        let response = self
            .http
            .get_json(Purpose::Userinfo, endpoint, Some(access_token))
            .await?;
        if !response.status.is_success() {
            return Err(self
                .http
                .unavailable(OAuthError::UserinfoStatus(response.status.as_u16())));
        }
        let Value::Object(info) = response.body else {
            return Err(self.http.unavailable(HttpError::Malformed {
                what: Purpose::Userinfo.what(),
                status: response.status.as_u16(),
            }));
        };
        if info.get("sub") != claims.get("sub") {
            warn!(target: AUDIT_TARGET, module = %self.id, "userinfo `sub` differs from the ID token's");
            return Err(AuthError::rejected(self.id.clone(), OAuthError::SubjectMismatch));
        }
        for (name, value) in info {
            if !PROTECTED_CLAIMS.contains(&name.as_str()) {
                claims.insert(name, value);
            }
        }
        Ok(())
    }

    /// The groups of a token with a groups overage, as `groups_overage` says: refused,
    /// read from userinfo, or none (marked).
    async fn overage_groups(
        &self,
        metadata: &Metadata,
        access_token: &str,
        claims: &Map<String, Value>,
        path: &str,
    ) -> Result<Vec<String>, AuthError> {
        let refused = || AuthError::rejected(self.id.clone(), OAuthError::GroupsOverage);
        match self.claims.overage {
            GroupsOverage::Reject => {
                warn!(target: AUDIT_TARGET, module = %self.id, "groups overage: the token's groups did not fit; refused");
                Err(refused())
            }
            GroupsOverage::NoGroups => {
                warn!(target: AUDIT_TARGET, module = %self.id, "groups overage: login accepted without groups (groups_overage = \"no_groups\")");
                Ok(Vec::new())
            }
            // With `userinfo` on, its claims are merged already and had no groups.
            GroupsOverage::Userinfo if self.userinfo => Err(refused()),
            GroupsOverage::Userinfo => {
                // Only `sub`, which userinfo must repeat: the answer alone is read.
                let mut answer = Map::new();
                if let Some(sub) = claims.get("sub") {
                    answer.insert("sub".into(), sub.clone());
                }
                self.merge_userinfo(metadata, access_token, &mut answer).await?;
                if groups_overage(&answer, path) || json::lookup(&answer, path).is_none() {
                    warn!(target: AUDIT_TARGET, module = %self.id, "groups overage: userinfo has no groups either; refused");
                    return Err(refused());
                }
                Ok(json::groups_at(&answer, path))
            }
        }
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
        for (path, allowed) in &self.claims.required {
            let ok = json::lookup(claims, path)
                .and_then(Value::as_str)
                .is_some_and(|value| allowed.iter().any(|a| a == value));
            if !ok {
                warn!(target: AUDIT_TARGET, module = %self.id, claim = %path, "a required claim is missing or not allowed");
                return Err(AuthError::rejected(
                    self.id.clone(),
                    OAuthError::ClaimNotAllowed(path.clone()),
                ));
            }
        }
        let subject = json::text_at(claims, "sub")
            .ok_or_else(|| AuthError::rejected(self.id.clone(), OAuthError::NoSubject))?;
        let login = self
            .claims
            .login
            .iter()
            .find_map(|c| json::text_at(claims, c))
            .unwrap_or_else(|| subject.clone());
        let mut identity = Identity::new(self.id.clone(), subject, login);
        identity.email = self
            .claims
            .email
            .as_deref()
            .and_then(|c| json::text_at(claims, c));
        identity.display_name = self.claims.name.as_deref().and_then(|c| json::text_at(claims, c));
        if let Some(path) = &self.claims.groups {
            identity.groups = json::groups_at(claims, path).into();
        }
        for name in ["iss", "tid"] {
            if let Some(value) = json::text_at(claims, name) {
                identity.attributes.insert(name.into(), vec![value]);
            }
        }
        Ok(identity)
    }
}

/// Whether `claims` say the groups at `path` did not fit (Entra ID's groups overage):
/// no groups claim, and `_claim_names` naming the claim, or (for the `groups` claim)
/// `hasgroups: true`.
fn groups_overage(claims: &Map<String, Value>, path: &str) -> bool {
    if json::lookup(claims, path).is_some() {
        return false;
    }
    let top = path.split('.').next().unwrap_or(path);
    (top == "groups" && claims.get("hasgroups") == Some(&Value::Bool(true)))
        || claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|names| names.contains_key(path) || names.contains_key(top))
}

/// The discovery member a parse error is about: its path (`jwks_uri`,
/// `id_token_signing_alg_values_supported`), or for a missing member its name.
fn discovery_member(err: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = err.path().to_string();
    if path != "." {
        return path.chars().take(64).collect();
    }
    let message = err.inner().to_string();
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map_or_else(
            || "document".to_owned(),
            |(name, _)| name.chars().take(64).collect(),
        )
}

redirect_authenticator!(OidcModule);

#[cfg(test)]
mod tests {
    use super::groups_overage;
    use serde_json::{Map, Value, json};

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_groups_overage_is_seen_only_where_the_groups_are_missing() {
        let names = json!({"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {}}});
        assert!(groups_overage(&map(names.clone()), "groups"));
        assert!(groups_overage(&map(json!({"hasgroups": true})), "groups"));
        assert!(!groups_overage(&map(json!({"hasgroups": false})), "groups"));
        assert!(!groups_overage(&map(json!({"hasgroups": "true"})), "groups"));
        // The groups are there after all (userinfo merged them in).
        let mut present = map(names.clone());
        present.insert("groups".into(), json!(["g"]));
        assert!(!groups_overage(&present, "groups"));
        // Another claim: `hasgroups` is about groups only; `_claim_names` by name.
        assert!(!groups_overage(&map(json!({"hasgroups": true})), "roles"));
        assert!(!groups_overage(&map(names), "roles"));
        assert!(groups_overage(
            &map(json!({"_claim_names": {"roles": "src1"}})),
            "roles"
        ));
        assert!(!groups_overage(&Map::new(), "groups"));
    }
}
