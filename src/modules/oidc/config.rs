//! The serde configuration of the OIDC module: `[modules.<id>] type = "oidc"`.
//! Every key is described in `docs/modules/oidc.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{OidcModule, OidcModuleBuilder};
use crate::flow::ClientAuthMethod;
use crate::iso8601::IsoDuration;
use crate::settings::name_or_default;
use crate::{ConfigError, SecretSource};

/// The settings of one OpenID Connect module, as written in configuration.
///
/// ```toml
/// [modules.corp-sso]
/// type = "oidc"
/// issuer = "https://sso.example.org/realms/corp"
/// client_id = "intranet"
/// client_secret = { env = "OIDC_CLIENT_SECRET" }
/// redirect_uri = "https://intranet.example.org/login/callback"
/// groups_claim = "realm_access.roles"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer identifier, exactly as its ID tokens' `iss` (with an
    /// `issuer_template`: the URL under which discovery is found).
    pub issuer: String,
    /// Multi-tenant providers: the expected `iss` with `{tenantid}` standing for the
    /// token's `tid` claim (`https://login.microsoftonline.com/{tenantid}/v2.0`).
    #[serde(default)]
    pub issuer_template: Option<String>,
    /// With `issuer_template`: the tenant ids accepted (default: any tenant).
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// Fetch the discovery document. Default `true`; off, `authorization_endpoint`,
    /// `token_endpoint` and `jwks_uri` are required.
    #[serde(default = "crate::settings::yes")]
    pub discovery: bool,
    /// The discovery document's URL. Default `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// The authorization endpoint (overrides discovery).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint (overrides discovery).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The JWKS URI (overrides discovery).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The userinfo endpoint (overrides discovery).
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (`"inline"`, `{ env = "NAME" }` or `{ file = "path" }`).
    /// Absent: a public client (PKCE only).
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// `client_secret_basic` (default with a secret), `client_secret_post`, or
    /// `none` (default without a secret).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// The callback URL registered at the provider.
    pub redirect_uri: String,
    /// Scopes to request. Default `["openid", "profile", "email"]`; `openid` is
    /// always added.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Extra parameters of the authorization request (`acr_values`, `ui_locales`,
    /// ...). The module's own parameters and the per-login `login_hint`, `prompt` and
    /// `domain_hint` (from [`StartLogin`](crate::StartLogin)) are refused.
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Signature algorithms accepted on ID tokens. Default `["RS256"]`. Supported:
    /// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA.
    #[serde(default)]
    pub id_token_algorithms: Option<Vec<String>>,
    /// Accept unsigned (`alg: none`) ID tokens. For tests only; logged loudly.
    /// Default `false`.
    #[serde(default)]
    pub insecure_allow_unsigned_id_tokens: bool,
    /// Clock skew allowed on `exp`, `iat`, `nbf` (ISO 8601, default `PT60S`, at most `PT10M`).
    #[serde(default)]
    pub clock_skew: Option<IsoDuration>,
    /// Claims tried in order for the login name. Default
    /// `["preferred_username", "email", "sub"]`; `sub` is always the last resort.
    #[serde(default)]
    pub login_claims: Option<Vec<String>>,
    /// The email claim. Default `email`; `""` to ignore.
    #[serde(default)]
    pub email_claim: Option<String>,
    /// The display-name claim. Default `name`; `""` to ignore.
    #[serde(default)]
    pub name_claim: Option<String>,
    /// The groups claim: a name or dotted path (`realm_access.roles`,
    /// `resource_access.app.roles`). Default `groups`; `""` for no groups.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Call the userinfo endpoint at each login and merge its claims. Default `false`.
    #[serde(default)]
    pub userinfo: bool,
    /// Age after which discovery and the JWKS are fetched again (ISO 8601, default `PT1H`).
    #[serde(default)]
    pub metadata_refresh: Option<IsoDuration>,
    /// Minimum time between two JWKS fetches; an ID token with an unknown `kid`
    /// refetches at most this often (ISO 8601, default `PT10S`).
    #[serde(default)]
    pub jwks_min_refetch_interval: Option<IsoDuration>,
    /// How long a started login may take (ISO 8601, default `PT10M`).
    #[serde(default)]
    pub flow_ttl: Option<IsoDuration>,
    /// Absolute return-to URL prefixes accepted besides relative paths
    /// (`https://app.example.org/`). Default: relative paths only.
    #[serde(default)]
    pub return_to_allowed: Vec<String>,
    /// Timeout of each request to the provider (ISO 8601, default `PT10S`).
    #[serde(default)]
    pub http_timeout: Option<IsoDuration>,
    /// Largest response accepted from the provider, in bytes. Default 1048576.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// PEM bundle of extra CA certificates for the provider's HTTPS. Default: the
    /// built-in web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl OidcModule {
    /// Builds the module `id` from its configuration; errors name the key
    /// (`modules.<id>.<field>`). Secrets are resolved here.
    pub fn from_config(id: &str, cfg: &OidcConfig) -> Result<OidcModule, ConfigError> {
        cfg.builder(id)?.build()
    }
}

impl OidcConfig {
    /// The builder this configuration describes (to adjust in code before `build`).
    pub fn builder(&self, id: &str) -> Result<OidcModuleBuilder, ConfigError> {
        let key = |field: &str| format!("modules.{id}.{field}");
        let mut b = OidcModule::builder(id, &self.issuer, &self.client_id, &self.redirect_uri)
            .discovery(self.discovery)
            .allowed_tenants(self.allowed_tenants.clone())
            .insecure_allow_unsigned_id_tokens(self.insecure_allow_unsigned_id_tokens)
            .email_claim(name_or_default(&self.email_claim, Some("email")))
            .name_claim(name_or_default(&self.name_claim, Some("name")))
            .groups_claim(name_or_default(&self.groups_claim, Some("groups")))
            .userinfo(self.userinfo);
        if let Some(secret) = &self.client_secret {
            b = b.client_secret(secret.resolve(&key("client_secret"))?);
        }
        if let Some(method) = self.token_endpoint_auth_method {
            b = b.token_endpoint_auth_method(method);
        }
        if let Some(t) = &self.issuer_template {
            b = b.issuer_template(t);
        }
        if let Some(url) = &self.discovery_url {
            b = b.discovery_url(url);
        }
        if let Some(url) = &self.authorization_endpoint {
            b = b.authorization_endpoint(url);
        }
        if let Some(url) = &self.token_endpoint {
            b = b.token_endpoint(url);
        }
        if let Some(url) = &self.jwks_uri {
            b = b.jwks_uri(url);
        }
        if let Some(url) = &self.userinfo_endpoint {
            b = b.userinfo_endpoint(url);
        }
        if let Some(scopes) = &self.scopes {
            b = b.scopes(scopes.clone());
        }
        for (name, value) in &self.extra_auth_params {
            b = b.auth_param(name, value);
        }
        if let Some(algs) = &self.id_token_algorithms {
            b = b.id_token_algorithms(algs.clone());
        }
        if let Some(claims) = &self.login_claims {
            b = b.login_claims(claims.clone());
        }
        if let Some(d) = self.clock_skew {
            b = b.clock_skew(d.0);
        }
        if let Some(d) = self.metadata_refresh {
            b = b.metadata_refresh(d.0);
        }
        if let Some(d) = self.jwks_min_refetch_interval {
            b = b.jwks_min_refetch_interval(d.0);
        }
        b.flows.configure(self.flow_ttl, &self.return_to_allowed);
        b.http.configure(
            self.http_timeout,
            self.max_response_bytes,
            self.ca_file.as_deref(),
        );
        Ok(b)
    }
}
