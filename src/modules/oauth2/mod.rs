//! Plain OAuth2 login (GitHub, Gitea, GitLab, Discord, ... — providers without
//! OpenID Connect): authorization-code flow with PKCE (S256) and `state`, then the
//! userinfo endpoint (JSON) names the user through configurable JSON paths.
//!
//! A callback costs two HTTP requests: the token request and the userinfo request.
//! Every setting is described in `docs/modules/oidc.md` (section "oauth2").

mod settings;

use std::collections::BTreeMap;

use serde_json::Value;
use tracing::warn;

pub use settings::OAuth2Settings;

use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::flow::http::{HttpClient, Purpose};
use crate::flow::oauth::{self, Callback, Client};
use crate::flow::{CookieAttributes, OAuthError, SameSite};
use crate::flow::{FlowError, Flows, ProviderRequests, json, redirect_authenticator};
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Redirect};

/// The OAuth2 module. Build it with [`OAuth2Module::new`] from
/// [`OAuth2Settings`] (in code, or read from a `type = "oauth2"` table).
pub struct OAuth2Module {
    id: crate::ModuleId,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    issuer: Option<String>,
    client: Client,
    scope: String,
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

impl OAuth2Module {
    /// Checks `settings` once and builds the module `id`; errors name keys of the
    /// module's table (`subject_path`, `client_secret`). Secrets are resolved here.
    /// The flow store is injected through `settings.flow.store`.
    pub fn new(
        id: impl Into<crate::ModuleId>,
        settings: OAuth2Settings,
    ) -> Result<OAuth2Module, ConfigError> {
        let id = id.into();
        let s = settings;
        let client = s.client.build()?;
        if s.subject_path.is_empty() {
            return Err(ConfigError::invalid("subject_path", "must not be empty"));
        }
        if !s.pkce {
            warn!(target: AUDIT_TARGET, module = %id, "PKCE is off: only `state` protects the code");
        }
        let http = s.http.client(&id, str::to_owned)?;
        let flows = s.flow.build(CookieAttributes::for_callback(
            &client.redirect_uri,
            SameSite::Lax,
        ))?;
        let name = |path: String| (!path.is_empty()).then_some(path);
        Ok(OAuth2Module {
            authorization_endpoint: s.authorization_endpoint.to_string(),
            token_endpoint: s.token_endpoint.to_string(),
            userinfo_endpoint: s.userinfo_endpoint.to_string(),
            issuer: s.issuer,
            client,
            scope: s.scopes.join(" "),
            pkce: s.pkce,
            paths: Paths {
                subject: s.subject_path,
                login: s.login_paths,
                email: name(s.email_path),
                name: name(s.name_path),
                groups: name(s.groups_path),
            },
            flows,
            http,
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

    async fn start(&self, start: &crate::StartLogin) -> Result<Outcome, AuthError> {
        let started = self.flows.start(&self.id, start).await?;
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
        let location = oauth::authorization_url(
            &self.authorization_endpoint,
            &params,
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
                    module: self.id.to_string(),
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
            identity.groups = json::groups_at(&info, path).into();
        }
        identity.return_to = flow.return_to;
        Ok(Outcome::Authenticated(identity))
    }
}

redirect_authenticator!(OAuth2Module);
