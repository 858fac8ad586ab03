//! The settings of the OIDC module: what `[modules.<id>] type = "oidc"`
//! deserializes into and what [`OidcModule::new`](super::OidcModule::new) is built
//! from. Every key is described in `docs/modules/oidc.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Algorithm, DEFAULT_CLOCK_SKEW, DEFAULT_JWKS_MIN_REFETCH, DEFAULT_METADATA_REFRESH};
use crate::ConfigError;
use crate::flow::{FlowSettings, HttpSettings, OAuthClientSettings, ReplayCache};
use crate::settings::{ModuleSettingsType, ProviderUrl};

/// The settings of one OpenID Connect module. In TOML the field groups (`client`,
/// `flow`, `http`) are flat, beside the module's own keys:
///
/// ```toml
/// [modules.corp-sso]
/// type = "oidc"
/// issuer = "https://sso.example.org/realms/corp"
/// client_id = "intranet"
/// client_secret = { env = "OIDC_CLIENT_SECRET" }
/// redirect_uri = "https://intranet.example.org/auth/callback/corp-sso"
/// groups_claim = "realm_access.roles"
/// ```
///
/// In code: `OidcSettings::new(issuer, OAuthClientSettings::new(client_id,
/// redirect_uri))`, then assign the fields to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcSettings {
    /// `issuer` (required): the provider's issuer identifier, exactly as its ID
    /// tokens' `iss`; with `issuer_template`, where discovery is found.
    pub issuer: ProviderUrl,
    /// `issuer_template`: multi-tenant providers, the expected `iss` with
    /// `{tenantid}` standing for the token's `tid` claim
    /// (`https://login.microsoftonline.com/{tenantid}/v2.0`). Default none.
    #[serde(default)]
    pub issuer_template: Option<String>,
    /// `allowed_tenants`: with `issuer_template`, the tenant ids accepted (default
    /// empty: any tenant).
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// `discovery`: fetch the discovery document (default `true`). Off,
    /// `authorization_endpoint`, `token_endpoint` and `jwks_uri` are required.
    #[serde(default = "crate::settings::yes")]
    pub discovery: bool,
    /// `discovery_url`: the discovery document's URL (default
    /// `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub discovery_url: Option<ProviderUrl>,
    /// `authorization_endpoint`: overrides discovery (default: discovered).
    #[serde(default)]
    pub authorization_endpoint: Option<ProviderUrl>,
    /// `token_endpoint`: overrides discovery (default: discovered).
    #[serde(default)]
    pub token_endpoint: Option<ProviderUrl>,
    /// `jwks_uri`: overrides discovery (default: discovered).
    #[serde(default)]
    pub jwks_uri: Option<ProviderUrl>,
    /// `userinfo_endpoint`: overrides discovery (default: discovered).
    #[serde(default)]
    pub userinfo_endpoint: Option<ProviderUrl>,
    /// `scopes`: scopes to request (default `["openid", "profile", "email"]`);
    /// `openid` is always added.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// `id_token_algorithms`: signature algorithms accepted on ID tokens (default
    /// `["RS256"]`; RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA).
    #[serde(default = "default_algorithms")]
    pub id_token_algorithms: Vec<Algorithm>,
    /// `insecure_allow_unsigned_id_tokens`: accept `alg: none` ID tokens (default
    /// `false`). Tests only; logged loudly.
    #[serde(default)]
    pub insecure_allow_unsigned_id_tokens: bool,
    /// `clock_skew`: skew allowed on `exp`, `iat`, `nbf` (ISO 8601, default
    /// `PT60S`, at most `PT10M`).
    #[serde(default = "default_clock_skew", deserialize_with = "crate::iso8601::duration")]
    pub clock_skew: Duration,
    /// `login_claims`: claims tried in order for the login name (default
    /// `["preferred_username", "email", "sub"]`); `sub` is always the last resort.
    #[serde(default = "default_login_claims")]
    pub login_claims: Vec<String>,
    /// `email_claim`: the email claim (default `email`; `""` ignores email).
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// `name_claim`: the display-name claim (default `name`; `""` ignores it).
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// `groups_claim`: the groups claim, a name or dotted path
    /// (`realm_access.roles`; default `groups`; `""`: no groups).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// `groups_overage`: what a token that says its groups did not fit (Entra ID's
    /// groups overage: `_claim_names` naming the groups claim, or `hasgroups: true`,
    /// and no groups claim) leads to (default [`GroupsOverage::Reject`]).
    #[serde(default)]
    pub groups_overage: GroupsOverage,
    /// `required_claims`: claims (names or dotted paths) that must hold one of the
    /// listed strings (`{ hd = ["example.org"] }`: a Google Workspace domain);
    /// default none.
    #[serde(default)]
    pub required_claims: BTreeMap<String, Vec<String>>,
    /// `userinfo`: call the userinfo endpoint at each login and merge its claims
    /// (default `false`).
    #[serde(default)]
    pub userinfo: bool,
    /// `metadata_refresh`: age after which discovery and the JWKS are fetched again
    /// (ISO 8601, default `PT1H`, at least one second).
    #[serde(
        default = "default_metadata_refresh",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub metadata_refresh: Duration,
    /// `jwks_min_refetch_interval`: minimum time between two JWKS fetches (and
    /// failed discovery retries); an unknown `kid` refetches at most this often
    /// (ISO 8601, default `PT10S`).
    #[serde(
        default = "default_jwks_min_refetch",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub jwks_min_refetch_interval: Duration,
    /// The client: `client_id`, `client_secret`, `token_endpoint_auth_method`,
    /// `redirect_uri`, `extra_auth_params`.
    #[serde(skip, default = "OAuthClientSettings::unset")]
    pub client: OAuthClientSettings,
    /// Pending logins: `flow_ttl`, `return_to_allowed`, and the injected store
    /// (a runtime dependency, so a settings field: hosts share one store between
    /// instances without another `new` argument).
    #[serde(skip)]
    pub flow: FlowSettings,
    /// The HTTP client: `http_timeout`, `max_response_bytes`, `ca_file`.
    #[serde(skip)]
    pub http: HttpSettings,
    /// The replay cache for back-channel logout token ids (`jti`); default an
    /// in-memory one. Instances behind a load balancer share one.
    #[serde(skip)]
    pub replay: Option<Arc<dyn ReplayCache>>,
}

impl OidcSettings {
    /// The provider at `issuer` and the client registered there; everything else
    /// at its default (discovery on, scopes `openid profile email`, RS256, 60 s
    /// clock skew).
    pub fn new(issuer: ProviderUrl, client: OAuthClientSettings) -> Self {
        OidcSettings {
            issuer,
            issuer_template: None,
            allowed_tenants: Vec::new(),
            discovery: true,
            discovery_url: None,
            authorization_endpoint: None,
            token_endpoint: None,
            jwks_uri: None,
            userinfo_endpoint: None,
            scopes: default_scopes(),
            id_token_algorithms: default_algorithms(),
            insecure_allow_unsigned_id_tokens: false,
            clock_skew: DEFAULT_CLOCK_SKEW,
            login_claims: default_login_claims(),
            email_claim: default_email_claim(),
            name_claim: default_name_claim(),
            groups_claim: default_groups_claim(),
            groups_overage: GroupsOverage::default(),
            required_claims: BTreeMap::new(),
            userinfo: false,
            metadata_refresh: DEFAULT_METADATA_REFRESH,
            jwks_min_refetch_interval: DEFAULT_JWKS_MIN_REFETCH,
            client,
            flow: FlowSettings::default(),
            http: HttpSettings::default(),
            replay: None,
        }
    }
}

/// What a token whose groups did not fit (a groups overage) leads to. The groups are
/// never silently taken as "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupsOverage {
    /// Refuse the login: `Rejected` with [`OAuthError::GroupsOverage`](crate::flow::OAuthError::GroupsOverage).
    #[default]
    Reject,
    /// Read the groups claim from the userinfo endpoint (+1 HTTP request for such
    /// logins only); refused as above when it has none either.
    Userinfo,
    /// Accept the login with no groups (so only `default_for_unmapped` roles apply),
    /// logged as a warning and marked with the identity attribute
    /// `groups_overage = ["true"]`.
    NoGroups,
}

impl ModuleSettingsType for OidcSettings {
    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let (own, client, flow, http) = crate::flow::oauth::take_oauth_groups::<OidcSettings>(table)?;
        Ok(OidcSettings {
            client,
            flow,
            http,
            ..own
        })
    }

    fn keys() -> Vec<&'static str> {
        crate::flow::oauth::oauth_keys::<Self>()
    }
}

fn default_scopes() -> Vec<String> {
    super::DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256]
}

fn default_clock_skew() -> Duration {
    DEFAULT_CLOCK_SKEW
}

fn default_login_claims() -> Vec<String> {
    super::DEFAULT_LOGIN_CLAIMS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_email_claim() -> String {
    "email".into()
}

fn default_name_claim() -> String {
    "name".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_metadata_refresh() -> Duration {
    DEFAULT_METADATA_REFRESH
}

fn default_jwks_min_refetch() -> Duration {
    DEFAULT_JWKS_MIN_REFETCH
}
