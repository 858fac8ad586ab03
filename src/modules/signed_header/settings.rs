//! The settings of the signed-header module (`type = "signed_header"`). Every key is
//! described in `docs/modules/signed_header.md`.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Deserializer};

use crate::ConfigError;
use crate::flow::HttpSettings;
use crate::jose::Algorithm;
use crate::net::ProxyNet;
use crate::settings::{self, ModuleSettingsType, ProviderUrl};

/// Default header carrying the signed assertion.
pub const DEFAULT_SIGNED_HEADER: &str = "x-identity-assertion";
/// Default clock skew allowed on `exp`, `iat` and `nbf`.
pub const DEFAULT_SIGNED_HEADER_SKEW: Duration = Duration::from_secs(60);
/// Largest clock skew accepted.
pub const MAX_SIGNED_HEADER_SKEW: Duration = Duration::from_secs(300);

/// What a `type = "signed_header"` table holds; [`SignedHeaderModule`](super::SignedHeaderModule)
/// is built from it.
///
/// ```toml
/// [modules.iap]
/// type = "signed_header"
/// header = "x-goog-iap-jwt-assertion"
/// jwks_url = "https://www.gstatic.com/iap/verify/public_key-jwk"
/// issuer = "https://cloud.google.com/iap"
/// audience = "/projects/123/global/backendServices/456"
/// trusted_proxies = ["10.0.0.0/8"]
/// ```
///
/// In code: `SignedHeaderSettings::new(issuer, audience)`, then set `jwks_url` or
/// `public_key_files` and the fields to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SignedHeaderSettings {
    /// `header` (default `x-identity-assertion`): the request header holding the JWT.
    #[serde(default = "default_header", deserialize_with = "header_name")]
    pub header: HeaderName,
    /// `trusted_proxies`: the proxies whose header is believed. Unset: the chain's
    /// (top-level `trusted_proxies` in TOML, `ChainBuilder::client_ip_from` in code).
    #[serde(default)]
    pub trusted_proxies: Option<Vec<ProxyNet>>,
    /// `jwks_url`: where the proxy publishes its keys (a JWKS). Exactly one of
    /// `jwks_url` and `public_key_files`.
    #[serde(default)]
    pub jwks_url: Option<ProviderUrl>,
    /// `public_key_files`: PEM `PUBLIC KEY` files (RSA ≥ 2048 bits, P-256, P-384,
    /// Ed25519), read once when the module is built.
    #[serde(default)]
    pub public_key_files: Vec<PathBuf>,
    /// `algorithms` (default `["ES256", "RS256"]`): signature algorithms accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// `issuer` (required): the token's `iss`, exactly.
    pub issuer: String,
    /// `audience` (required): a value the token's `aud` must hold.
    pub audience: String,
    /// `clock_skew` (ISO 8601, default `PT60S`, at most `PT5M`): skew allowed on `exp`,
    /// `iat` and `nbf`.
    #[serde(default = "default_skew", deserialize_with = "crate::iso8601::duration")]
    pub clock_skew: Duration,
    /// `login_claim` (default `email`): the claim (name or dotted path) giving the login
    /// name; required in every token.
    #[serde(default = "default_login_claim")]
    pub login_claim: String,
    /// `email_claim` (default `email`; `""`: none).
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// `groups_claim` (default `groups`; `""`: none): a list, or one comma-separated string.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// `fail_if_missing` (default `false`): reject, instead of abstaining, when the
    /// header is absent.
    #[serde(default)]
    pub fail_if_missing: bool,
    /// `jwks_refresh` (ISO 8601, default `PT1H`, at least one second): age after which
    /// the JWKS is fetched again.
    #[serde(default = "default_refresh", deserialize_with = "crate::iso8601::duration")]
    pub jwks_refresh: Duration,
    /// `jwks_min_refetch_interval` (ISO 8601, default `PT10S`): minimum time between two
    /// JWKS fetches; an unknown `kid` refetches at most this often.
    #[serde(
        default = "default_min_refetch",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub jwks_min_refetch_interval: Duration,
    /// The JWKS client: `http_timeout`, `max_response_bytes`, `ca_file`.
    #[serde(skip)]
    pub http: HttpSettings,
}

impl SignedHeaderSettings {
    /// Tokens of `issuer` for `audience`; everything else at its default. Set
    /// `jwks_url` or `public_key_files` before building.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        SignedHeaderSettings {
            header: default_header(),
            trusted_proxies: None,
            jwks_url: None,
            public_key_files: Vec::new(),
            algorithms: default_algorithms(),
            issuer: issuer.into(),
            audience: audience.into(),
            clock_skew: DEFAULT_SIGNED_HEADER_SKEW,
            login_claim: default_login_claim(),
            email_claim: default_email_claim(),
            groups_claim: default_groups_claim(),
            fail_if_missing: false,
            jwks_refresh: default_refresh(),
            jwks_min_refetch_interval: default_min_refetch(),
            http: HttpSettings::default(),
        }
    }

    /// Checks what the types do not: errors name the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let invalid = ConfigError::invalid;
        if self.issuer.is_empty() {
            return Err(invalid("issuer", "must not be empty"));
        }
        if self.audience.is_empty() {
            return Err(invalid("audience", "must not be empty"));
        }
        if self.algorithms.is_empty() {
            return Err(invalid("algorithms", "must name at least one algorithm"));
        }
        if self.clock_skew > MAX_SIGNED_HEADER_SKEW {
            return Err(invalid("clock_skew", "must be at most 5 minutes"));
        }
        if self.login_claim.is_empty() {
            return Err(invalid("login_claim", "must not be empty"));
        }
        match (&self.jwks_url, self.public_key_files.is_empty()) {
            (None, true) => Err(invalid(
                "jwks_url",
                "one of `jwks_url` and `public_key_files` is required",
            )),
            (Some(_), false) => Err(invalid("public_key_files", "cannot be combined with `jwks_url`")),
            _ if self.jwks_refresh < Duration::from_secs(1) => {
                Err(invalid("jwks_refresh", "must be at least one second"))
            }
            _ => Ok(()),
        }
    }
}

impl ModuleSettingsType for SignedHeaderSettings {
    fn from_table(mut table: toml::Table) -> Result<Self, ConfigError> {
        let http = settings::take_group(&mut table)?;
        let mut own: SignedHeaderSettings = settings::take_rest(table)?;
        own.http = http;
        Ok(own)
    }

    fn keys() -> Vec<&'static str> {
        [
            settings::field_names::<Self>(),
            settings::field_names::<HttpSettings>(),
        ]
        .concat()
    }
}

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderName, D::Error> {
    crate::modules::header::parse_header_name(&String::deserialize(deserializer)?)
        .map_err(serde::de::Error::custom)
}

fn default_header() -> HeaderName {
    HeaderName::from_static(DEFAULT_SIGNED_HEADER)
}

fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::ES256, Algorithm::RS256]
}

fn default_skew() -> Duration {
    DEFAULT_SIGNED_HEADER_SKEW
}

fn default_login_claim() -> String {
    "email".into()
}

fn default_email_claim() -> String {
    "email".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_refresh() -> Duration {
    Duration::from_secs(3600)
}

fn default_min_refetch() -> Duration {
    Duration::from_secs(10)
}
