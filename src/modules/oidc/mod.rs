//! OpenID Connect login: authorization-code flow with PKCE (S256), `state` and
//! `nonce`, against any certified provider (Keycloak, Entra ID, Okta, Google,
//! Authentik, Dex, ...).
//!
//! * Discovery (`/.well-known/openid-configuration`) is fetched on first use, cached
//!   and refreshed after `metadata_refresh`; explicit endpoints override it.
//! * ID tokens are verified here, over `ring`: signature with an algorithm allow-list
//!   (RS256 by default; `none` only with `insecure_allow_unsigned_id_tokens`),
//!   `iss`, `aud` / `azp`, `exp`, `iat` / `nbf` with bounded clock skew, `nonce`.
//! * The JWKS is cached; a token signed with an unknown `kid` triggers one refetch,
//!   at most once per `jwks_min_refetch_interval`, so key rotation just works.
//! * A callback costs exactly one HTTP request (the token request), plus one to the
//!   userinfo endpoint when `userinfo` is on. Discovery and JWKS are never fetched
//!   per login.
//! * Tokens, codes, secrets and verifiers are never logged.
//!
//! Every setting is described in `docs/modules/oidc.md`.

mod config;
mod jwt;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tracing::{debug, warn};

pub use config::OidcConfig;
pub use jwt::{Algorithm, MAX_ID_TOKEN_BYTES, TokenError};

use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::flow::http::{HttpClient, HttpSettings, Purpose, check_url, http_builder_methods};
use crate::flow::oauth::{self, Callback, Client};
use crate::flow::{
    ClientAuthMethod, FlowError, FlowSettings, Flows, ProviderRequests, flow_builder_methods, json,
    redirect_authenticator,
};
use crate::flow::{CookieAttributes, HttpError, OAuthError, SameSite};
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Redirect, SecretString};
use jwt::{Expectations, Issuer, KeySet};

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
const PROTECTED_CLAIMS: &[&str] = &["iss", "sub", "aud", "azp", "exp", "iat", "nbf", "nonce", "tid"];

/// The claims of a verified ID token (merged with userinfo when that is on).
#[derive(Debug, Clone, PartialEq)]
pub struct IdTokenClaims {
    claims: Map<String, Value>,
}

impl IdTokenClaims {
    /// The subject (`sub`), present in every verified token.
    pub fn subject(&self) -> &str {
        self.claims.get("sub").and_then(Value::as_str).unwrap_or_default()
    }

    /// The value at a claim name or dotted path (`realm_access.roles`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        json::lookup(&self.claims, path)
    }

    /// All claims.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.claims
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
}

type Cached<T> = RwLock<Option<(Arc<T>, Instant)>>;

/// What a JWKS fetch came to.
enum KeyFetch {
    /// Fetched now (by this caller or one it waited for).
    Fetched(Arc<KeySet>),
    /// Refused by `jwks_min_refetch_interval`; `retry_after` is when it will not be.
    RateLimited {
        cached: Option<Arc<KeySet>>,
        retry_after: Duration,
    },
    /// The provider failed; the keys cached before, if any.
    Failed {
        cached: Option<Arc<KeySet>>,
        error: AuthError,
    },
}

/// The OpenID Connect module. Build it with [`OidcModule::builder`] or
/// [`OidcModule::from_config`].
pub struct OidcModule {
    id: String,
    issuer: Issuer,
    /// The configured issuer (fixed) or discovery base.
    issuer_url: String,
    discovery_url: Option<String>,
    endpoints: Endpoints,
    client: Client,
    scope: String,
    extra_params: Vec<(String, String)>,
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
    keys: Cached<KeySet>,
    jwks_attempt: Mutex<Option<Instant>>,
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

/// Builds an [`OidcModule`].
#[derive(Debug, Clone)]
pub struct OidcModuleBuilder {
    id: String,
    issuer: String,
    issuer_template: Option<String>,
    allowed_tenants: Vec<String>,
    discovery: bool,
    discovery_url: Option<String>,
    endpoints: Endpoints,
    client_id: String,
    client_secret: Option<SecretString>,
    auth_method: Option<ClientAuthMethod>,
    redirect_uri: String,
    scopes: Vec<String>,
    extra_params: Vec<(String, String)>,
    algorithms: Vec<String>,
    allow_unsigned: bool,
    clock_skew: Duration,
    login_claims: Vec<String>,
    email_claim: Option<String>,
    name_claim: Option<String>,
    groups_claim: Option<String>,
    userinfo: bool,
    metadata_refresh: Duration,
    jwks_min_refetch: Duration,
    flows: FlowSettings,
    http: HttpSettings,
}

impl OidcModuleBuilder {
    /// The client secret (confidential client). Without one the client is public.
    pub fn client_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How the client authenticates at the token endpoint (default
    /// `client_secret_basic` with a secret, `none` without).
    pub fn token_endpoint_auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// The scopes to request (default `openid profile email`; `openid` is added when missing).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// An extra parameter for the authorization request (`acr_values`, `ui_locales`,
    /// ...). The module's own parameters and the per-login ones (`login_hint`,
    /// `prompt`, `domain_hint`: see [`StartLogin`](crate::StartLogin)) are refused at
    /// [`build`](Self::build).
    pub fn auth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// Fetch the discovery document (default `true`). Off: the authorization and
    /// token endpoints and the JWKS URI must be given.
    pub fn discovery(mut self, yes: bool) -> Self {
        self.discovery = yes;
        self
    }

    /// The discovery document's URL (default `<issuer>/.well-known/openid-configuration`).
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.discovery_url = Some(url.into());
        self
    }

    /// The authorization endpoint (overrides discovery).
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.authorization = Some(url.into());
        self
    }

    /// The token endpoint (overrides discovery).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.token = Some(url.into());
        self
    }

    /// The JWKS URI (overrides discovery).
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.endpoints.jwks = Some(url.into());
        self
    }

    /// The userinfo endpoint (overrides discovery).
    pub fn userinfo_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoints.userinfo = Some(url.into());
        self
    }

    /// Multi-tenant issuers: the ID token's `iss` must be this template with
    /// `{tenantid}` replaced by the token's `tid` claim
    /// (`https://login.microsoftonline.com/{tenantid}/v2.0`). The `issuer` is then
    /// only where discovery is found (`.../common/v2.0`).
    pub fn issuer_template(mut self, template: impl Into<String>) -> Self {
        self.issuer_template = Some(template.into());
        self
    }

    /// With an issuer template: only these tenant ids are accepted (default: any).
    pub fn allowed_tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// ID-token signature algorithms accepted (default `["RS256"]`).
    pub fn id_token_algorithms<I, S>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms = algorithms.into_iter().map(Into::into).collect();
        self
    }

    /// Accept ID tokens with `alg: none`. Never in production: anybody who can reach
    /// the callback with a code could then choose their identity. Logged loudly.
    pub fn insecure_allow_unsigned_id_tokens(mut self, yes: bool) -> Self {
        self.allow_unsigned = yes;
        self
    }

    /// Clock skew allowed on `exp`, `iat` and `nbf` (default 60 s, at most 10 min).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Claims tried in order for the login name (default `preferred_username`,
    /// `email`, `sub`); `sub` is always the last resort.
    pub fn login_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.login_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// The email claim (default `email`; `None` to ignore).
    pub fn email_claim(mut self, claim: Option<String>) -> Self {
        self.email_claim = claim;
        self
    }

    /// The display-name claim (default `name`; `None` to ignore).
    pub fn name_claim(mut self, claim: Option<String>) -> Self {
        self.name_claim = claim;
        self
    }

    /// The groups claim, a name or dotted path (`groups`, `realm_access.roles`);
    /// default `groups`, `None` for no groups.
    pub fn groups_claim(mut self, claim: Option<String>) -> Self {
        self.groups_claim = claim;
        self
    }

    /// Call the userinfo endpoint at each login and merge its claims (its `sub` must
    /// equal the ID token's). Default off.
    pub fn userinfo(mut self, yes: bool) -> Self {
        self.userinfo = yes;
        self
    }

    /// Age after which discovery and the JWKS are fetched again (default 1 h).
    pub fn metadata_refresh(mut self, age: Duration) -> Self {
        self.metadata_refresh = age;
        self
    }

    /// Minimum time between two JWKS (and failed discovery) fetches (default 10 s).
    pub fn jwks_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_min_refetch = interval;
        self
    }

    flow_builder_methods!();
    http_builder_methods!("provider");

    /// Checks the settings and builds the module. Nothing is fetched yet.
    pub fn build(self) -> Result<OidcModule, ConfigError> {
        let id = self.id.clone();
        let key = |field: &str| format!("modules.{id}.{field}");
        let invalid = |field: &str, message: String| ConfigError::invalid(key(field), message);
        check_url(&key("issuer"), &self.issuer)?;
        if self.client_id.is_empty() {
            return Err(invalid("client_id", "must not be empty".into()));
        }
        check_url(&key("redirect_uri"), &self.redirect_uri)?;
        for (field, url) in [
            ("discovery_url", &self.discovery_url),
            ("authorization_endpoint", &self.endpoints.authorization),
            ("token_endpoint", &self.endpoints.token),
            ("jwks_uri", &self.endpoints.jwks),
            ("userinfo_endpoint", &self.endpoints.userinfo),
        ] {
            if let Some(url) = url {
                check_url(&key(field), url)?;
            }
        }
        if !self.discovery {
            for (field, url) in [
                ("authorization_endpoint", &self.endpoints.authorization),
                ("token_endpoint", &self.endpoints.token),
                ("jwks_uri", &self.endpoints.jwks),
            ] {
                if url.is_none() {
                    return Err(invalid(field, "is required when `discovery` is off".into()));
                }
            }
            if self.userinfo && self.endpoints.userinfo.is_none() {
                return Err(invalid(
                    "userinfo_endpoint",
                    "is required for `userinfo` when `discovery` is off".into(),
                ));
            }
        }
        let method = self.auth_method.unwrap_or(match self.client_secret {
            Some(_) => ClientAuthMethod::ClientSecretBasic,
            None => ClientAuthMethod::None,
        });
        match (method, &self.client_secret) {
            (ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost, None) => {
                return Err(invalid(
                    "client_secret",
                    "is required by the token endpoint auth method".into(),
                ));
            }
            (_, Some(secret)) if secret.is_empty() => {
                return Err(invalid("client_secret", "must not be empty".into()));
            }
            _ => {}
        }
        let mut scopes = self.scopes;
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        if let Some(bad) = scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
            return Err(invalid("scopes", format!("{bad:?} is not a scope")));
        }
        oauth::check_extra_params(&key("extra_auth_params"), &self.extra_params)?;
        let mut algorithms = Vec::new();
        for name in &self.algorithms {
            match Algorithm::from_name(name) {
                Some(alg) => algorithms.push(alg),
                None if name == "none" => {
                    return Err(invalid(
                        "id_token_algorithms",
                        "`none` is not an algorithm; see insecure_allow_unsigned_id_tokens".into(),
                    ));
                }
                None => {
                    return Err(invalid(
                        "id_token_algorithms",
                        format!(
                            "unsupported algorithm {name:?} (supported: {})",
                            Algorithm::NAMES.join(", ")
                        ),
                    ));
                }
            }
        }
        if algorithms.is_empty() && !self.allow_unsigned {
            return Err(invalid(
                "id_token_algorithms",
                "must name at least one algorithm".into(),
            ));
        }
        if self.allow_unsigned {
            warn!(target: AUDIT_TARGET, module = %self.id,
                "insecure_allow_unsigned_id_tokens is on: unsigned ID tokens are accepted");
        }
        if self.clock_skew > Duration::from_secs(600) {
            return Err(invalid("clock_skew", "must be at most 10 minutes".into()));
        }
        let issuer = match self.issuer_template {
            Some(template) => {
                if !template.contains("{tenantid}") {
                    return Err(invalid("issuer_template", "must contain `{tenantid}`".into()));
                }
                check_url(&key("issuer_template"), &template.replace("{tenantid}", "tenant"))?;
                Issuer::Template {
                    template,
                    tenants: self.allowed_tenants,
                }
            }
            None if !self.allowed_tenants.is_empty() => {
                return Err(invalid("allowed_tenants", "needs `issuer_template`".into()));
            }
            None => Issuer::Fixed(self.issuer.clone()),
        };
        for (field, claim) in [
            ("email_claim", &self.email_claim),
            ("name_claim", &self.name_claim),
        ] {
            if claim.as_deref() == Some("") {
                return Err(invalid(field, "must not be empty".into()));
            }
        }
        if self.login_claims.iter().any(String::is_empty) {
            return Err(invalid("login_claims", "must not hold an empty name".into()));
        }
        if self.metadata_refresh < Duration::from_secs(1) {
            return Err(invalid("metadata_refresh", "must be at least one second".into()));
        }
        let http = self.http.client(&self.id, key)?;
        let flows = self
            .flows
            .build(CookieAttributes::for_callback(&self.redirect_uri, SameSite::Lax))
            .map_err(|e| e.rekey(key))?;
        let discovery_url = self.discovery.then(|| {
            self.discovery_url.unwrap_or_else(|| {
                format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                )
            })
        });
        let static_metadata = match (&discovery_url, &self.endpoints) {
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
                }),
                Instant::now(),
            )),
            _ => None,
        };
        let mut login = self.login_claims;
        if !login.iter().any(|c| c == "sub") {
            login.push("sub".into());
        }
        Ok(OidcModule {
            issuer,
            issuer_url: self.issuer,
            discovery_url,
            endpoints: self.endpoints,
            client: Client {
                id: self.client_id,
                secret: self.client_secret,
                method,
                redirect_uri: self.redirect_uri,
            },
            scope: scopes.join(" "),
            extra_params: self.extra_params,
            algorithms,
            allow_unsigned: self.allow_unsigned,
            clock_skew: self.clock_skew,
            claims: ClaimNames {
                login,
                email: self.email_claim,
                name: self.name_claim,
                groups: self.groups_claim.filter(|g| !g.is_empty()),
            },
            userinfo: self.userinfo,
            metadata_refresh: self.metadata_refresh,
            jwks_min_refetch: self.jwks_min_refetch,
            flows,
            http,
            metadata: RwLock::new(static_metadata),
            metadata_attempt: Mutex::new(None),
            keys: RwLock::new(None),
            jwks_attempt: Mutex::new(None),
            id: self.id,
        })
    }
}

impl OidcModule {
    /// A module for the provider at `issuer`, with the client `client_id` whose
    /// callback is `redirect_uri`. Defaults: discovery on, public client, scopes
    /// `openid profile email`, RS256, 60 s clock skew.
    pub fn builder(
        id: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> OidcModuleBuilder {
        OidcModuleBuilder {
            id: id.into(),
            issuer: issuer.into(),
            issuer_template: None,
            allowed_tenants: Vec::new(),
            discovery: true,
            discovery_url: None,
            endpoints: Endpoints::default(),
            client_id: client_id.into(),
            client_secret: None,
            auth_method: None,
            redirect_uri: redirect_uri.into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            extra_params: Vec::new(),
            algorithms: vec!["RS256".into()],
            allow_unsigned: false,
            clock_skew: DEFAULT_CLOCK_SKEW,
            login_claims: DEFAULT_LOGIN_CLAIMS.iter().map(|s| s.to_string()).collect(),
            email_claim: Some("email".into()),
            name_claim: Some("name".into()),
            groups_claim: Some("groups".into()),
            userinfo: false,
            metadata_refresh: DEFAULT_METADATA_REFRESH,
            jwks_min_refetch: DEFAULT_JWKS_MIN_REFETCH,
            flows: FlowSettings::default(),
            http: HttpSettings::default(),
        }
    }

    /// HTTP requests sent to the provider so far, by purpose.
    pub fn requests(&self) -> ProviderRequests {
        self.http.requests()
    }

    /// Fetches discovery and the JWKS now (otherwise the first login does), so a
    /// misconfigured provider shows at start-up.
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        self.metadata().await?;
        let keys = match self.fetch_keys(true).await {
            KeyFetch::Fetched(keys) => keys,
            KeyFetch::Failed { error, .. } => return Err(error),
            KeyFetch::RateLimited { retry_after, .. } => return Err(self.refetch_limited(None, retry_after)),
        };
        if keys.len() == 0 {
            return Err(self.http.unavailable(OAuthError::NoSigningKeys));
        }
        Ok(())
    }

    /// Verifies an ID token: signature (fetching the JWKS when needed), issuer,
    /// audience, expiry, issued-at, and `nonce` when given.
    pub async fn validate_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<IdTokenClaims, AuthError> {
        let parsed =
            jwt::parse(token, &self.algorithms, self.allow_unsigned).map_err(|e| self.token_error(e))?;
        if let Some(alg) = parsed.alg {
            let keys = self.keys_for(parsed.kid.as_deref(), alg).await?;
            jwt::verify_signature(&parsed, &keys).map_err(|e| self.token_error(e))?;
        }
        let want = Expectations {
            issuer: &self.issuer,
            client_id: &self.client.id,
            clock_skew: self.clock_skew,
            nonce,
            now: SystemTime::now(),
        };
        let claims = jwt::check_claims(&parsed, &want).map_err(|e| self.token_error(e))?;
        Ok(IdTokenClaims { claims })
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
        let text = |name: &str| doc.get(name).and_then(Value::as_str);
        let issuer = text("issuer")
            .ok_or_else(|| self.http.unavailable(OAuthError::DiscoveryField("issuer".into())))?;
        let issuer_ok = match &self.issuer {
            Issuer::Fixed(expected) => issuer == expected,
            Issuer::Template { template, .. } => issuer == template || issuer == self.issuer_url,
        };
        if !issuer_ok {
            return Err(self.http.unavailable(OAuthError::DiscoveryIssuerMismatch));
        }
        let endpoint = |name: &str, configured: &Option<String>| -> Result<Option<String>, AuthError> {
            if let Some(url) = configured {
                return Ok(Some(url.clone()));
            }
            match text(name) {
                Some(url) => check_url(name, url)
                    .map(|()| Some(url.to_owned()))
                    .map_err(|_| self.http.unavailable(OAuthError::DiscoveryField(name.into()))),
                None => Ok(None),
            }
        };
        let required = |name: &str, value: Option<String>| {
            value.ok_or_else(|| self.http.unavailable(OAuthError::DiscoveryField(name.into())))
        };
        Ok(Metadata {
            authorization_endpoint: required(
                "authorization_endpoint",
                endpoint("authorization_endpoint", &self.endpoints.authorization)?,
            )?,
            token_endpoint: required(
                "token_endpoint",
                endpoint("token_endpoint", &self.endpoints.token)?,
            )?,
            jwks_uri: required("jwks_uri", endpoint("jwks_uri", &self.endpoints.jwks)?)?,
            userinfo_endpoint: endpoint("userinfo_endpoint", &self.endpoints.userinfo)?,
            iss_parameter_supported: doc
                .get("authorization_response_iss_parameter_supported")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The key set, fetched when missing, stale, or without a key for `kid`.
    ///
    /// When no cached key matches and the refetch is refused by its rate limit (a
    /// fetch happened less than `jwks_min_refetch_interval` ago), the answer is
    /// [`AuthError::Unavailable`] with `retry_after`: the provider may be rotating
    /// its keys, so the client should try again shortly. Likewise a failed refetch
    /// with no matching cached key answers the fetch's outage.
    async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<KeySet>, AuthError> {
        if let Some((keys, at)) = self.keys.read().ok().and_then(|k| k.clone())
            && at.elapsed() < self.metadata_refresh
            && keys.has_candidate(kid, alg)
        {
            return Ok(keys);
        }
        match self.fetch_keys(false).await {
            KeyFetch::Fetched(keys) => Ok(keys),
            KeyFetch::RateLimited {
                cached: Some(keys), ..
            } if keys.has_candidate(kid, alg) => Ok(keys),
            KeyFetch::RateLimited { retry_after, .. } => {
                debug!(target: AUDIT_TARGET, module = %self.id, "no cached key matches and the JWKS refetch is rate limited");
                Err(self.refetch_limited(kid, retry_after))
            }
            KeyFetch::Failed {
                cached: Some(keys), ..
            } if keys.has_candidate(kid, alg) => Ok(keys),
            KeyFetch::Failed { error, .. } => Err(error),
        }
    }

    /// No key for `kid`, and no refetch allowed before `retry_after`: a temporary
    /// condition (the provider may be rotating its keys).
    fn refetch_limited(&self, kid: Option<&str>, retry_after: Duration) -> AuthError {
        AuthError::Unavailable {
            module: self.id.clone(),
            cause: TokenError::UnknownKey(kid.map(str::to_owned)).into(),
            retry_after: Some(retry_after),
        }
    }

    /// Fetches the JWKS, at most once per `jwks_min_refetch` (unless `force`);
    /// concurrent callers wait for one fetch.
    async fn fetch_keys(&self, force: bool) -> KeyFetch {
        let before = self.keys.read().ok().and_then(|k| k.clone());
        let mut attempt = self.jwks_attempt.lock().await;
        let current = self.keys.read().ok().and_then(|k| k.clone());
        // Another task fetched while this one waited.
        if let Some((now, _)) = &current
            && before.as_ref().is_none_or(|(then, _)| !Arc::ptr_eq(now, then))
        {
            return KeyFetch::Fetched(now.clone());
        }
        let cached = current.map(|(k, _)| k);
        if let (Some(last), false) = (*attempt, force)
            && last.elapsed() < self.jwks_min_refetch
        {
            debug!(target: AUDIT_TARGET, module = %self.id, "JWKS refetch rate limited");
            return KeyFetch::RateLimited {
                cached,
                retry_after: self.jwks_min_refetch.saturating_sub(last.elapsed()),
            };
        }
        *attempt = Some(Instant::now());
        let fetched = async {
            let metadata = self.metadata().await?;
            let response = self
                .http
                .get_json(Purpose::Jwks, &metadata.jwks_uri, None)
                .await?;
            if !response.status.is_success() {
                return Err(self.http.unavailable(HttpError::Status {
                    what: Purpose::Jwks.what(),
                    status: response.status.as_u16(),
                }));
            }
            KeySet::parse(&response.body).map_err(|_| {
                self.http.unavailable(HttpError::Malformed {
                    what: Purpose::Jwks.what(),
                    status: response.status.as_u16(),
                })
            })
        }
        .await;
        match fetched {
            Ok(keys) => {
                debug!(target: AUDIT_TARGET, module = %self.id, keys = keys.len(), "JWKS fetched");
                let keys = Arc::new(keys);
                if let Ok(mut slot) = self.keys.write() {
                    *slot = Some((keys.clone(), Instant::now()));
                }
                KeyFetch::Fetched(keys)
            }
            Err(error) => {
                if cached.is_some() {
                    warn!(target: AUDIT_TARGET, module = %self.id, reason = %error, "JWKS refresh failed; using the cached keys");
                }
                KeyFetch::Failed { cached, error }
            }
        }
    }

    async fn start(&self, start: &crate::StartLogin) -> Result<Outcome, AuthError> {
        let return_to = start.return_to.as_deref();
        let metadata = self.metadata().await?;
        let started = self.flows.start(&self.id, return_to).await?;
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
            &self.extra_params,
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
                    module: self.id.clone(),
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
        let mut claims = self.validate_id_token(id_token, Some(&flow.nonce)).await?.claims;
        if self.userinfo {
            let access_token = tokens
                .get("access_token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.merge_userinfo(&metadata, access_token, &mut claims).await?;
        }
        let mut identity = self.identity(&claims)?;
        identity.return_to = flow.return_to;
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

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
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
            identity.groups = json::groups_at(claims, path);
        }
        for name in ["iss", "tid"] {
            if let Some(value) = json::text_at(claims, name) {
                identity.attributes.insert(name.into(), vec![value]);
            }
        }
        Ok(identity)
    }
}

redirect_authenticator!(OidcModule);
