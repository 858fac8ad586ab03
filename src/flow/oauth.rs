//! What the OIDC and OAuth2 modules share: the authorization URL, the callback's
//! parameters, the code exchange at the token endpoint.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tracing::warn;

use super::ClientAuthMethod;
use super::client_auth::{self, ClientKey, Signer};
use super::http::{HttpClient, Purpose};
use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::settings::{ClientId, ProviderUrl};
use crate::{AuthError, ConfigError, SecretSource, SecretString, StartLogin};

/// Why an OAuth2 / OIDC protocol step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The provider's callback carries an `error` (`access_denied`, `login_required`, ...).
    #[error("the identity provider answered `{code}`")]
    Provider {
        /// The error code, reduced to `A-Za-z0-9_-.`, at most 64 characters.
        code: String,
        /// Its description, printable ASCII, at most 200 characters.
        description: Option<String>,
    },
    /// The callback has no authorization code.
    #[error("the callback has no authorization code")]
    MissingCode,
    /// The callback's `iss` names another issuer (RFC 9207: a mix-up attack).
    #[error("the callback's `iss` parameter names another issuer")]
    IssuerMismatch,
    /// The callback lacks the `iss` the provider promises (RFC 9207).
    #[error("the callback lacks the `iss` parameter the provider promises (RFC 9207)")]
    MissingIssuer,
    /// The token endpoint refused the code (`invalid_grant`, `invalid_request`, ...).
    #[error("the token endpoint refused the request ({error})")]
    TokenRefused {
        /// The OAuth error code.
        error: String,
    },
    /// The token endpoint answered an error status without an error code we act on.
    #[error("the token endpoint answered HTTP {0}")]
    TokenStatus(u16),
    /// The token response has no `id_token` (OIDC).
    #[error("the token response has no id_token")]
    NoIdToken,
    /// The token response lacks `access_token` or is not a JSON object.
    #[error("the token response is malformed")]
    MalformedTokenResponse,
    /// Userinfo names another subject than the ID token.
    #[error("userinfo names another subject than the ID token")]
    SubjectMismatch,
    /// No usable subject (`sub`, or the configured subject claim).
    #[error("the provider gave no usable subject")]
    NoSubject,
    /// Userinfo (or the configured login claim) gave no usable login name.
    #[error("the provider gave no usable login name")]
    NoLogin,
    /// The discovery document names another issuer.
    #[error("the discovery document names another issuer")]
    DiscoveryIssuerMismatch,
    /// The discovery document lacks a required entry, or holds one that is not an
    /// https URL.
    #[error("discovery: `{0}` is missing or not an https URL")]
    DiscoveryField(String),
    /// The provider's JWKS holds no usable signing key.
    #[error("the provider's JWKS holds no usable signing key")]
    NoSigningKeys,
    /// Userinfo answered an error status or a body that is not a JSON object.
    #[error("userinfo answered HTTP {0}")]
    UserinfoStatus(u16),
    /// The token says the user's groups did not fit into it (Entra ID's groups
    /// overage: `_claim_names` or `hasgroups`), and no fallback gave them.
    #[error("the token's groups did not fit into it (groups overage)")]
    GroupsOverage,
    /// A claim of `required_claims` is missing or holds a value not allowed.
    #[error("claim `{0}` is missing or holds a value that is not allowed")]
    ClaimNotAllowed(String),
}

/// The OAuth2 client registered at the provider, one field group shared by the
/// OIDC and OAuth2 settings (flat in TOML, beside the module's own keys). Checked
/// once, when the module is built: the client-secret rule and the reserved
/// authorization parameters are here and nowhere else.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OAuthClientSettings {
    /// `client_id` (required): the client id registered at the provider.
    pub client_id: ClientId,
    /// `client_secret`: `"inline"`, `{ env = "NAME" }` or `{ file = "path" }`,
    /// resolved when the module is built (default none: a public client, PKCE only).
    /// Required by `client_secret_basic`, `client_secret_post` and
    /// `client_secret_jwt` (at least [`MIN_JWT_SECRET_BYTES`](super::MIN_JWT_SECRET_BYTES)
    /// bytes there); never empty.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// `token_endpoint_auth_method`: `client_secret_basic`, `client_secret_post`,
    /// `client_secret_jwt`, `private_key_jwt` or `none` (default `private_key_jwt`
    /// with a private key, `client_secret_basic` with a secret, `none` without either).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// `client_private_key`: the PEM private key `private_key_jwt` signs with (PKCS#8
    /// RSA of 2048 bits or more, signing RS256, or P-256, signing ES256; or PKCS#1
    /// RSA), a secret source like `client_secret` (default none).
    #[serde(default)]
    pub client_private_key: Option<SecretSource>,
    /// `client_key_id`: the `kid` of the client assertions and of the public JWKS
    /// (default: the key's RFC 7638 thumbprint).
    #[serde(default)]
    pub client_key_id: Option<String>,
    /// `client_assertion_lifetime`: how long a client assertion is valid (ISO 8601,
    /// default `PT60S`, at most `PT10M`).
    #[serde(
        default = "default_assertion_lifetime",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub client_assertion_lifetime: std::time::Duration,
    /// `redirect_uri` (required): the callback URL registered at the provider; its
    /// path and scheme give the flow cookie's `Path` and `Secure`.
    pub redirect_uri: ProviderUrl,
    /// `extra_auth_params`: extra authorization-request parameters (`acr_values`,
    /// `ui_locales`, ...; default none). The parameters the module sets itself
    /// (`response_type`, `client_id`, `redirect_uri`, `scope`, `state`, `nonce`,
    /// `code_challenge`, `code_challenge_method`, `request`, `request_uri`,
    /// `response_mode`) and the per-login `login_hint`, `prompt`, `domain_hint`
    /// (see [`StartLogin`]) are refused, keyed `extra_auth_params.<name>`.
    #[serde(default)]
    pub extra_auth_params: BTreeMap<String, String>,
}

impl OAuthClientSettings {
    /// The client `client_id` whose callback is `redirect_uri`: public (no
    /// secret), no extra parameters.
    pub fn new(client_id: ClientId, redirect_uri: ProviderUrl) -> Self {
        OAuthClientSettings {
            client_id,
            client_secret: None,
            token_endpoint_auth_method: None,
            client_private_key: None,
            client_key_id: None,
            client_assertion_lifetime: client_auth::DEFAULT_ASSERTION_LIFETIME,
            redirect_uri,
            extra_auth_params: BTreeMap::new(),
        }
    }

    /// The default of a module's `#[serde(skip)]` `client` field, which
    /// `from_table` replaces; [`build`](Self::build) refuses it.
    pub(crate) fn unset() -> Self {
        OAuthClientSettings::new(ClientId::unset(), ProviderUrl::unset())
    }

    /// The client a module holds: the secret resolved, the auth method chosen,
    /// every rule checked. Errors name keys of the module's table.
    pub(crate) fn build(&self) -> Result<Client, ConfigError> {
        if self.client_id == ClientId::unset() {
            return Err(ConfigError::invalid("client_id", "is required"));
        }
        let secret = self
            .client_secret
            .as_ref()
            .map(|source| source.resolve("client_secret"))
            .transpose()?;
        let private_key = self
            .client_private_key
            .as_ref()
            .map(|source| source.resolve("client_private_key"))
            .transpose()?;
        let method = self
            .token_endpoint_auth_method
            .unwrap_or(match (&private_key, &secret) {
                (Some(_), _) => ClientAuthMethod::PrivateKeyJwt,
                (None, Some(_)) => ClientAuthMethod::ClientSecretBasic,
                (None, None) => ClientAuthMethod::None,
            });
        match (&secret, method) {
            (Some(secret), _) if secret.is_empty() => {
                return Err(ConfigError::invalid("client_secret", "must not be empty"));
            }
            (
                None,
                ClientAuthMethod::ClientSecretBasic
                | ClientAuthMethod::ClientSecretPost
                | ClientAuthMethod::ClientSecretJwt,
            ) => {
                return Err(ConfigError::invalid(
                    "client_secret",
                    "is required by the token endpoint auth method",
                ));
            }
            (Some(secret), ClientAuthMethod::ClientSecretJwt)
                if secret.len() < client_auth::MIN_JWT_SECRET_BYTES =>
            {
                return Err(ConfigError::invalid(
                    "client_secret",
                    format!(
                        "`client_secret_jwt` (HS256) needs a secret of at least {} bytes (RFC 7518 §3.2)",
                        client_auth::MIN_JWT_SECRET_BYTES
                    ),
                ));
            }
            _ => {}
        }
        let key = match (private_key, method) {
            (Some(pem), ClientAuthMethod::PrivateKeyJwt) => {
                Some(ClientKey::from_pem(&pem, self.client_key_id.as_deref())?)
            }
            (None, ClientAuthMethod::PrivateKeyJwt) => {
                return Err(ConfigError::invalid(
                    "client_private_key",
                    "is required by `private_key_jwt`",
                ));
            }
            (Some(_), _) => {
                return Err(ConfigError::invalid(
                    "client_private_key",
                    "is used only by `token_endpoint_auth_method = \"private_key_jwt\"`",
                ));
            }
            (None, _) => None,
        };
        if self.client_key_id.is_some() && key.is_none() {
            return Err(ConfigError::invalid(
                "client_key_id",
                "is used only with `client_private_key`",
            ));
        }
        if self.client_assertion_lifetime.is_zero()
            || self.client_assertion_lifetime > client_auth::MAX_ASSERTION_LIFETIME
        {
            return Err(ConfigError::invalid(
                "client_assertion_lifetime",
                "must be between one second and PT10M",
            ));
        }
        check_extra_params("extra_auth_params", &self.extra_auth_params)?;
        Ok(Client {
            id: self.client_id.as_str().to_owned(),
            secret,
            method,
            key,
            assertion_lifetime: self.client_assertion_lifetime,
            redirect_uri: self.redirect_uri.as_str().to_owned(),
            extra_params: self
                .extra_auth_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// The OAuth2 client a module holds (see [`OAuthClientSettings::build`]).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: Option<SecretString>,
    pub(crate) method: ClientAuthMethod,
    /// The private key of `private_key_jwt`.
    pub(crate) key: Option<ClientKey>,
    pub(crate) assertion_lifetime: std::time::Duration,
    pub(crate) redirect_uri: String,
    /// The configured extra authorization parameters, checked.
    pub(crate) extra_params: Vec<(String, String)>,
}

impl Client {
    /// The public JWKS (JSON text) of the `private_key_jwt` key; `None` with any
    /// other method.
    pub(crate) fn public_jwks(&self) -> Option<String> {
        self.key.as_ref().map(ClientKey::public_jwks)
    }
}

fn default_assertion_lifetime() -> std::time::Duration {
    client_auth::DEFAULT_ASSERTION_LIFETIME
}

/// Authorization-request parameters the modules set themselves (from the flow, the
/// client or the login's [`StartLogin`]), which configured extra parameters may not
/// name.
pub(crate) const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "prompt",
    "domain_hint",
    "request",
    "request_uri",
    "response_mode",
];

/// Checks configured extra authorization parameters: no empty name, and none of
/// [`RESERVED_AUTH_PARAMS`]. `key` is the key of the table; the error names the
/// offending entry under it (`extra_auth_params.state`).
fn check_extra_params(key: &str, params: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for name in params.keys() {
        if name.is_empty() {
            return Err(ConfigError::invalid(key, "a parameter name must not be empty"));
        }
        if RESERVED_AUTH_PARAMS.contains(&name.as_str()) {
            return Err(ConfigError::invalid(
                format!("{key}.{name}"),
                format!("`{name}` is set by the module itself (per login for hints and `prompt`)"),
            ));
        }
    }
    Ok(())
}

/// The field groups an OAuth2 / OIDC module's settings embed, read from its flat
/// table: the module's own fields (`S`), the client, the flow and HTTP settings.
pub(crate) fn take_oauth_groups<S: serde::de::DeserializeOwned>(
    mut table: toml::Table,
) -> Result<(S, OAuthClientSettings, super::FlowSettings, super::HttpSettings), ConfigError> {
    let client = crate::settings::take_group(&mut table)?;
    let flow = crate::settings::take_group(&mut table)?;
    let http = crate::settings::take_group(&mut table)?;
    Ok((crate::settings::take_rest(table)?, client, flow, http))
}

/// Every key of such a table (see [`take_oauth_groups`]).
pub(crate) fn oauth_keys<S: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use crate::settings::field_names;
    [
        field_names::<S>(),
        field_names::<OAuthClientSettings>(),
        field_names::<super::FlowSettings>(),
        field_names::<super::HttpSettings>(),
    ]
    .concat()
}

/// Builds `endpoint?response_type=code&...` (keeping any query the endpoint has):
/// the module's `params`, the login's hints (`login_hint`, `prompt`, `domain_hint`,
/// already checked by the chain), then the configured `extra` parameters.
pub(crate) fn authorization_url(
    endpoint: &str,
    params: &[(&str, &str)],
    start: &StartLogin,
    extra: &[(String, String)],
) -> Result<String, AuthError> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| AuthError::Misconfigured(format!("bad authorization endpoint: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(hint) = &start.login_hint {
            query.append_pair("login_hint", hint);
        }
        if let Some(prompt) = start.prompt {
            query.append_pair("prompt", prompt.as_str());
        }
        if let Some(hint) = &start.domain_hint {
            query.append_pair("domain_hint", hint);
        }
        for (k, v) in extra {
            query.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// The parts of a redirect callback the modules read.
pub(crate) struct Callback<'p> {
    pub(crate) state: &'p str,
    pub(crate) code: Option<&'p str>,
    pub(crate) iss: Option<&'p str>,
    error: Option<&'p str>,
    error_description: Option<&'p str>,
}

impl<'p> Callback<'p> {
    /// `None` when the parameters are not an OAuth2 callback (no `state`).
    pub(crate) fn read(params: &'p BTreeMap<String, String>) -> Option<Callback<'p>> {
        let get = |k: &str| params.get(k).map(String::as_str);
        Some(Callback {
            state: get("state")?,
            code: get("code"),
            iss: get("iss"),
            error: get("error"),
            error_description: get("error_description"),
        })
    }

    /// The provider's error, as an [`AuthError`], when the callback carries one.
    pub(crate) fn error(&self, module: &str) -> Option<AuthError> {
        let code = sanitize(self.error?, 64, |c| {
            c.is_ascii_alphanumeric() || "_-.".contains(c)
        });
        let description = self
            .error_description
            .map(|d| sanitize(d, 200, |c| (' '..='~').contains(&c) && c != '"' && c != '\\'))
            .filter(|d| !d.is_empty());
        warn!(target: AUDIT_TARGET, module = %module, error = %code, "identity provider returned an error");
        let reason = match &description {
            Some(d) => format!("the identity provider refused the login ({code}: {d})"),
            None => format!("the identity provider refused the login ({code})"),
        };
        let temporary = matches!(code.as_str(), "server_error" | "temporarily_unavailable");
        let denied = matches!(code.as_str(), "access_denied" | "unauthorized_client");
        let cause = OAuthError::Provider { code, description };
        Some(if denied {
            AuthError::Forbidden { reason }
        } else if temporary {
            AuthError::unavailable(module, cause)
        } else {
            AuthError::rejected(module, cause)
        })
    }
}

fn sanitize(text: &str, max: usize, keep: impl Fn(char) -> bool) -> String {
    text.chars().filter(|c| keep(*c)).take(max).collect()
}

/// Exchanges an authorization code (with its PKCE verifier) at the token endpoint:
/// exactly one HTTP request. Answers the token response.
pub(crate) async fn exchange_code(
    http: &HttpClient,
    module: &str,
    token_endpoint: &str,
    client: &Client,
    code: &str,
    verifier: &str,
) -> Result<Map<String, Value>, AuthError> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &client.redirect_uri),
        ("code_verifier", verifier),
    ];
    let mut basic = None;
    let signer = match (client.method, &client.secret, &client.key) {
        (ClientAuthMethod::ClientSecretJwt, Some(secret), _) => Some(Signer::Secret(secret)),
        (ClientAuthMethod::PrivateKeyJwt, _, Some(key)) => Some(Signer::Key(key)),
        _ => None,
    };
    let assertion = match signer {
        Some(signer) => Some(
            client_auth::assertion(signer, &client.id, token_endpoint, client.assertion_lifetime)
                .ok_or_else(|| {
                    AuthError::Misconfigured(format!(
                        "module `{module}`: the client assertion could not be signed"
                    ))
                })?,
        ),
        None => None,
    };
    match (client.method, &client.secret, &assertion) {
        (_, _, Some(assertion)) => {
            form.push(("client_id", &client.id));
            form.push(("client_assertion_type", client_auth::ASSERTION_TYPE));
            form.push(("client_assertion", assertion));
        }
        (ClientAuthMethod::ClientSecretBasic, Some(secret), None) => {
            basic = Some((client.id.as_str(), secret.expose()))
        }
        (ClientAuthMethod::ClientSecretPost, Some(secret), None) => {
            form.push(("client_id", &client.id));
            form.push(("client_secret", secret.expose()));
        }
        _ => form.push(("client_id", &client.id)),
    }
    let response = http
        .post_form(Purpose::Token, token_endpoint, &form, basic)
        .await?;
    if !response.status.is_success() {
        let error = response
            .body
            .get("error")
            .and_then(Value::as_str)
            .map(|e| sanitize(e, 64, |c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
            .unwrap_or_default();
        warn!(target: AUDIT_TARGET, module = %module, status = %response.status, error = %error,
            "token endpoint refused the code");
        return Err(match error.as_str() {
            "invalid_grant" => AuthError::rejected(module, OAuthError::TokenRefused { error }),
            "invalid_client" | "unauthorized_client" | "unsupported_grant_type" => AuthError::Misconfigured(
                format!("module `{module}`: the token endpoint refused the client ({error})"),
            ),
            "invalid_request" if response.status.is_client_error() => {
                AuthError::InvalidRequest(RequestError::Module {
                    module: module.to_owned(),
                    cause: OAuthError::TokenRefused { error }.into(),
                })
            }
            _ => AuthError::unavailable(module, OAuthError::TokenStatus(response.status.as_u16())),
        });
    }
    match response.body {
        Value::Object(map) if map.get("access_token").is_some_and(Value::is_string) => Ok(map),
        _ => Err(AuthError::unavailable(module, OAuthError::MalformedTokenResponse)),
    }
}
