//! Plain OAuth2 login (GitHub, Gitea, GitLab, Discord, ... — providers without
//! OpenID Connect): authorization-code flow with PKCE (S256) and `state`, then the
//! userinfo endpoint (JSON) names the user through configurable JSON paths.
//!
//! A callback costs two HTTP requests: the token request and the userinfo request.
//! Every setting is described in `docs/modules/oidc.md` (section "oauth2").

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use tracing::warn;

use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::flow::http::{HttpClient, HttpSettings, Purpose, check_url, http_builder_methods};
use crate::flow::oauth::{self, Callback, Client};
use crate::flow::{
    ClientAuthMethod, FlowError, FlowSettings, Flows, ProviderRequests, flow_builder_methods, json,
    redirect_authenticator,
};
use crate::flow::{CookieAttributes, OAuthError, SameSite};
use crate::iso8601::IsoDuration;
use crate::settings::name_or_default;
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Redirect, SecretSource, SecretString};

/// The OAuth2 module. Build it with [`OAuth2Module::builder`] or
/// [`OAuth2Module::from_config`].
pub struct OAuth2Module {
    id: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    issuer: Option<String>,
    client: Client,
    scope: String,
    extra_params: Vec<(String, String)>,
    pkce: bool,
    paths: Paths,
    flows: Flows,
    http: HttpClient,
}

impl std::fmt::Debug for OAuth2Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Module")
            .field("id", &self.id)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("client_id", &self.client.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Paths {
    subject: String,
    login: Vec<String>,
    email: Option<String>,
    name: Option<String>,
    groups: Option<String>,
}

/// Builds an [`OAuth2Module`].
#[derive(Debug, Clone)]
pub struct OAuth2ModuleBuilder {
    id: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    issuer: Option<String>,
    client_id: String,
    client_secret: Option<SecretString>,
    auth_method: Option<ClientAuthMethod>,
    redirect_uri: String,
    scopes: Vec<String>,
    extra_params: Vec<(String, String)>,
    pkce: bool,
    paths: Paths,
    flows: FlowSettings,
    http: HttpSettings,
}

impl OAuth2ModuleBuilder {
    /// The client secret (confidential client).
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

    /// Scopes to request (default none; GitHub: `read:user user:email read:org`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// An extra parameter of the authorization request. The module's own parameters
    /// and the per-login ones (`login_hint`, `prompt`, `domain_hint`: see
    /// [`StartLogin`](crate::StartLogin)) are refused at [`build`](Self::build).
    pub fn auth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_params.push((name.into(), value.into()));
        self
    }

    /// Send a PKCE challenge (default `true`; providers that do not know PKCE ignore it).
    pub fn pkce(mut self, yes: bool) -> Self {
        self.pkce = yes;
        self
    }

    /// The provider's issuer, checked against an RFC 9207 `iss` callback parameter.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// JSON path of the stable subject in the userinfo answer (default `id`).
    pub fn subject_path(mut self, path: impl Into<String>) -> Self {
        self.paths.subject = path.into();
        self
    }

    /// JSON paths tried in order for the login name (default `login`,
    /// `preferred_username`, `username`; the subject is the last resort).
    pub fn login_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.paths.login = paths.into_iter().map(Into::into).collect();
        self
    }

    /// JSON path of the email address (default `email`).
    pub fn email_path(mut self, path: Option<String>) -> Self {
        self.paths.email = path;
        self
    }

    /// JSON path of the display name (default `name`).
    pub fn name_path(mut self, path: Option<String>) -> Self {
        self.paths.name = path;
        self
    }

    /// JSON path of the groups (default none).
    pub fn groups_path(mut self, path: Option<String>) -> Self {
        self.paths.groups = path;
        self
    }

    flow_builder_methods!();
    http_builder_methods!("provider");

    /// Checks the settings and builds the module.
    pub fn build(self) -> Result<OAuth2Module, ConfigError> {
        let id = self.id.clone();
        let key = |field: &str| format!("modules.{id}.{field}");
        let invalid = |field: &str, message: &str| ConfigError::invalid(key(field), message);
        for (field, url) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("userinfo_endpoint", &self.userinfo_endpoint),
            ("redirect_uri", &self.redirect_uri),
        ] {
            check_url(&key(field), url)?;
        }
        if self.client_id.is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        let method = self.auth_method.unwrap_or(match self.client_secret {
            Some(_) => ClientAuthMethod::ClientSecretBasic,
            None => ClientAuthMethod::None,
        });
        if method != ClientAuthMethod::None && self.client_secret.as_ref().is_none_or(SecretString::is_empty)
        {
            return Err(invalid(
                "client_secret",
                "is required by the token endpoint auth method",
            ));
        }
        oauth::check_extra_params(&key("extra_auth_params"), &self.extra_params)?;
        if self.paths.subject.is_empty() {
            return Err(invalid("subject_path", "must not be empty"));
        }
        if !self.pkce {
            warn!(target: AUDIT_TARGET, module = %self.id, "PKCE is off: only `state` protects the code");
        }
        let http = self.http.client(&self.id, key)?;
        let flows = self
            .flows
            .build(CookieAttributes::for_callback(&self.redirect_uri, SameSite::Lax))
            .map_err(|e| e.rekey(key))?;
        Ok(OAuth2Module {
            authorization_endpoint: self.authorization_endpoint,
            token_endpoint: self.token_endpoint,
            userinfo_endpoint: self.userinfo_endpoint,
            issuer: self.issuer,
            client: Client {
                id: self.client_id,
                secret: self.client_secret,
                method,
                redirect_uri: self.redirect_uri,
            },
            scope: self.scopes.join(" "),
            extra_params: self.extra_params,
            pkce: self.pkce,
            paths: self.paths,
            flows,
            http,
            id: self.id,
        })
    }
}

impl OAuth2Module {
    /// A module for a provider's three endpoints and the client `client_id`.
    pub fn builder(
        id: impl Into<String>,
        authorization_endpoint: impl Into<String>,
        token_endpoint: impl Into<String>,
        userinfo_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> OAuth2ModuleBuilder {
        OAuth2ModuleBuilder {
            id: id.into(),
            authorization_endpoint: authorization_endpoint.into(),
            token_endpoint: token_endpoint.into(),
            userinfo_endpoint: userinfo_endpoint.into(),
            issuer: None,
            client_id: client_id.into(),
            client_secret: None,
            auth_method: None,
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            extra_params: Vec::new(),
            pkce: true,
            paths: Paths {
                subject: "id".into(),
                login: vec!["login".into(), "preferred_username".into(), "username".into()],
                email: Some("email".into()),
                name: Some("name".into()),
                groups: None,
            },
            flows: FlowSettings::default(),
            http: HttpSettings::default(),
        }
    }

    /// HTTP requests sent to the provider so far, by purpose.
    pub fn requests(&self) -> ProviderRequests {
        self.http.requests()
    }

    async fn start(&self, start: &crate::StartLogin) -> Result<Outcome, AuthError> {
        let return_to = start.return_to.as_deref();
        let started = self.flows.start(&self.id, return_to).await?;
        let flow = &started.flow;
        let challenge = flow.pkce_challenge();
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", self.client.id.as_str()),
            ("redirect_uri", self.client.redirect_uri.as_str()),
            ("state", flow.state.as_str()),
        ];
        if !self.scope.is_empty() {
            params.push(("scope", &self.scope));
        }
        if self.pkce {
            params.push(("code_challenge", &challenge));
            params.push(("code_challenge_method", "S256"));
        }
        let location =
            oauth::authorization_url(&self.authorization_endpoint, &params, start, &self.extra_params)?;
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
        if let (Some(iss), Some(expected)) = (callback.iss, &self.issuer)
            && iss != expected
        {
            warn!(target: AUDIT_TARGET, module = %self.id, "callback `iss` names another issuer (mix-up attack?)");
            return Err(AuthError::rejected(self.id.clone(), OAuthError::IssuerMismatch));
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
        let verifier = if self.pkce {
            flow.pkce_verifier.as_str()
        } else {
            ""
        };
        let tokens = oauth::exchange_code(
            &self.http,
            &self.id,
            &self.token_endpoint,
            &self.client,
            code,
            verifier,
        )
        .await?;
        let access_token = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let response = self
            .http
            .get_json(Purpose::Userinfo, &self.userinfo_endpoint, Some(access_token))
            .await?;
        if !response.status.is_success() {
            return Err(self
                .http
                .unavailable(OAuthError::UserinfoStatus(response.status.as_u16())));
        }
        let Value::Object(info) = response.body else {
            return Err(self.http.unavailable(crate::flow::HttpError::Malformed {
                what: Purpose::Userinfo.what(),
                status: response.status.as_u16(),
            }));
        };
        let subject = json::text_at(&info, &self.paths.subject)
            .ok_or_else(|| AuthError::rejected(self.id.clone(), OAuthError::NoSubject))?;
        let login = self
            .paths
            .login
            .iter()
            .find_map(|p| json::text_at(&info, p))
            .unwrap_or_else(|| subject.clone());
        let mut identity = Identity::new(self.id.clone(), subject, login);
        identity.email = self.paths.email.as_deref().and_then(|p| json::text_at(&info, p));
        identity.display_name = self.paths.name.as_deref().and_then(|p| json::text_at(&info, p));
        if let Some(path) = &self.paths.groups {
            identity.groups = json::groups_at(&info, path);
        }
        identity.return_to = flow.return_to;
        Ok(Outcome::Authenticated(identity))
    }
}

redirect_authenticator!(OAuth2Module);

/// The settings of one OAuth2 module, as written in configuration.
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
/// redirect_uri = "https://app.example.org/login/github/callback"
/// scopes = ["read:user", "user:email"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The provider's authorization endpoint.
    pub authorization_endpoint: String,
    /// The provider's token endpoint.
    pub token_endpoint: String,
    /// The endpoint answering who the access token belongs to (JSON).
    pub userinfo_endpoint: String,
    /// The provider's issuer, checked against an RFC 9207 `iss` callback parameter
    /// when the provider sends one. Default: not checked.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (`"inline"`, `{ env = "NAME" }` or `{ file = "path" }`).
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// `client_secret_basic` (default with a secret), `client_secret_post`, or `none`.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// The callback URL registered at the provider.
    pub redirect_uri: String,
    /// Scopes to request. Default none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Extra parameters of the authorization request. The module's own parameters
    /// and the per-login `login_hint`, `prompt` and `domain_hint` (from
    /// [`StartLogin`](crate::StartLogin)) are refused.
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
    /// Send a PKCE (S256) challenge. Default `true`.
    #[serde(default = "crate::settings::yes")]
    pub pkce: bool,
    /// JSON path of the stable subject in the userinfo answer. Default `id`.
    #[serde(default)]
    pub subject_path: Option<String>,
    /// JSON paths tried in order for the login name. Default
    /// `["login", "preferred_username", "username"]`; the subject is the last resort.
    #[serde(default)]
    pub login_paths: Option<Vec<String>>,
    /// JSON path of the email address. Default `email`; `""` to ignore.
    #[serde(default)]
    pub email_path: Option<String>,
    /// JSON path of the display name. Default `name`; `""` to ignore.
    #[serde(default)]
    pub name_path: Option<String>,
    /// JSON path of the groups (array of strings, array of objects with `name`, or
    /// a comma-separated string). Default: no groups.
    #[serde(default)]
    pub groups_path: Option<String>,
    /// How long a started login may take (ISO 8601, default `PT10M`).
    #[serde(default)]
    pub flow_ttl: Option<IsoDuration>,
    /// Absolute return-to URL prefixes accepted besides relative paths.
    #[serde(default)]
    pub return_to_allowed: Vec<String>,
    /// Timeout of each request to the provider (ISO 8601, default `PT10S`).
    #[serde(default)]
    pub http_timeout: Option<IsoDuration>,
    /// Largest response accepted from the provider, in bytes. Default 1048576.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// PEM bundle of extra CA certificates for the provider's HTTPS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl OAuth2Module {
    /// Builds the module `id` from its configuration; errors name the key.
    pub fn from_config(id: &str, cfg: &OAuth2Config) -> Result<OAuth2Module, ConfigError> {
        let key = |field: &str| format!("modules.{id}.{field}");
        let mut b = OAuth2Module::builder(
            id,
            &cfg.authorization_endpoint,
            &cfg.token_endpoint,
            &cfg.userinfo_endpoint,
            &cfg.client_id,
            &cfg.redirect_uri,
        )
        .scopes(cfg.scopes.clone())
        .pkce(cfg.pkce)
        .email_path(name_or_default(&cfg.email_path, Some("email")))
        .name_path(name_or_default(&cfg.name_path, Some("name")))
        .groups_path(name_or_default(&cfg.groups_path, None));
        if let Some(secret) = &cfg.client_secret {
            b = b.client_secret(secret.resolve(&key("client_secret"))?);
        }
        if let Some(method) = cfg.token_endpoint_auth_method {
            b = b.token_endpoint_auth_method(method);
        }
        if let Some(issuer) = &cfg.issuer {
            b = b.issuer(issuer);
        }
        for (name, value) in &cfg.extra_auth_params {
            b = b.auth_param(name, value);
        }
        if let Some(path) = &cfg.subject_path {
            b = b.subject_path(path);
        }
        if let Some(paths) = &cfg.login_paths {
            b = b.login_paths(paths.clone());
        }
        b.flows.configure(cfg.flow_ttl, &cfg.return_to_allowed);
        b.http
            .configure(cfg.http_timeout, cfg.max_response_bytes, cfg.ca_file.as_deref());
        b.build()
    }
}
