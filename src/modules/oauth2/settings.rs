//! The settings of the OAuth2 module: what `[modules.<id>] type = "oauth2"`
//! deserializes into and what [`OAuth2Module::new`](super::OAuth2Module::new) is
//! built from. Every key is described in `docs/modules/oidc.md`.

use serde::Deserialize;

use crate::ConfigError;
use crate::flow::{FlowSettings, HttpSettings, OAuthClientSettings};
use crate::settings::{ModuleSettingsType, ProviderUrl};

/// The settings of one OAuth2 module. In TOML the field groups (`client`, `flow`,
/// `http`) are flat, beside the module's own keys:
///
/// ```toml
/// [modules.github]
/// type = "oauth2"
/// authorization_endpoint = "https://github.com/login/oauth/authorize"
/// token_endpoint = "https://github.com/login/oauth/access_token"
/// userinfo_endpoint = "https://api.github.com/user"
/// client_id = "Iv1.0123456789abcdef"
/// client_secret = { env = "GITHUB_CLIENT_SECRET" }
/// token_endpoint_auth_method = "client_secret_post"
/// redirect_uri = "https://app.example.org/auth/callback/github"
/// scopes = ["read:user", "user:email"]
/// ```
///
/// In code: `OAuth2Settings::new(authorization_endpoint, token_endpoint,
/// userinfo_endpoint, OAuthClientSettings::new(client_id, redirect_uri))`, then
/// assign the fields to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OAuth2Settings {
    /// `authorization_endpoint` (required): the provider's authorization endpoint.
    pub authorization_endpoint: ProviderUrl,
    /// `token_endpoint` (required): the provider's token endpoint (answers JSON).
    pub token_endpoint: ProviderUrl,
    /// `userinfo_endpoint` (required): answers JSON about the access token's owner.
    pub userinfo_endpoint: ProviderUrl,
    /// `issuer`: the provider's issuer, checked against an RFC 9207 `iss` callback
    /// parameter when the provider sends one (default none: not checked).
    #[serde(default)]
    pub issuer: Option<String>,
    /// `scopes`: scopes to request (default none; GitHub: `read:user user:email`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `pkce`: send a PKCE (S256) challenge (default `true`; providers that do not
    /// know PKCE ignore it).
    #[serde(default = "crate::settings::yes")]
    pub pkce: bool,
    /// `subject_path`: JSON path of the stable subject in the userinfo answer
    /// (default `id`; numbers are accepted; not empty).
    #[serde(default = "default_subject_path")]
    pub subject_path: String,
    /// `login_paths`: JSON paths tried in order for the login name (default
    /// `["login", "preferred_username", "username"]`); the subject is the last
    /// resort.
    #[serde(default = "default_login_paths")]
    pub login_paths: Vec<String>,
    /// `email_path`: JSON path of the email address (default `email`; `""`
    /// ignores email).
    #[serde(default = "default_email_path")]
    pub email_path: String,
    /// `name_path`: JSON path of the display name (default `name`; `""` ignores
    /// it).
    #[serde(default = "default_name_path")]
    pub name_path: String,
    /// `groups_path`: JSON path of the groups: an array of strings, an array of
    /// objects with `name` (or `slug`), or a comma-separated string (default `""`:
    /// no groups).
    #[serde(default)]
    pub groups_path: String,
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
}

impl OAuth2Settings {
    /// The provider's three endpoints and the client registered there; everything
    /// else at its default (PKCE on, no scopes, subject path `id`).
    pub fn new(
        authorization_endpoint: ProviderUrl,
        token_endpoint: ProviderUrl,
        userinfo_endpoint: ProviderUrl,
        client: OAuthClientSettings,
    ) -> Self {
        OAuth2Settings {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            issuer: None,
            scopes: Vec::new(),
            pkce: true,
            subject_path: default_subject_path(),
            login_paths: default_login_paths(),
            email_path: default_email_path(),
            name_path: default_name_path(),
            groups_path: String::new(),
            client,
            flow: FlowSettings::default(),
            http: HttpSettings::default(),
        }
    }
}

impl ModuleSettingsType for OAuth2Settings {
    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let (own, client, flow, http) = crate::flow::oauth::take_oauth_groups::<OAuth2Settings>(table)?;
        Ok(OAuth2Settings {
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

fn default_subject_path() -> String {
    "id".into()
}

fn default_login_paths() -> Vec<String> {
    ["login", "preferred_username", "username"]
        .map(String::from)
        .to_vec()
}

fn default_email_path() -> String {
    "email".into()
}

fn default_name_path() -> String {
    "name".into()
}
