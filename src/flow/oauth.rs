//! What the OIDC and OAuth2 modules share: the authorization URL, the callback's
//! parameters, the code exchange at the token endpoint.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tracing::warn;

use super::ClientAuthMethod;
use super::http::{HttpClient, Purpose};
use crate::chain::AUDIT_TARGET;
use crate::{AuthError, SecretString};

/// The OAuth2 client: id, secret and how the secret is presented.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: Option<SecretString>,
    pub(crate) method: ClientAuthMethod,
    pub(crate) redirect_uri: String,
}

/// Builds `endpoint?response_type=code&...` (keeping any query the endpoint has).
pub(crate) fn authorization_url(
    endpoint: &str,
    params: &[(&str, &str)],
    extra: &[(String, String)],
) -> Result<String, String> {
    let mut url = url::Url::parse(endpoint).map_err(|e| format!("bad authorization endpoint: {e}"))?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
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
        let detail = match &description {
            Some(d) => format!("{code}: {d}"),
            None => code.clone(),
        };
        warn!(target: AUDIT_TARGET, module = %module, error = %code, "identity provider returned an error");
        Some(match code.as_str() {
            "access_denied" | "unauthorized_client" => AuthError::Forbidden {
                reason: format!("the identity provider refused the login ({detail})"),
            },
            "server_error" | "temporarily_unavailable" => AuthError::Unavailable {
                module: module.to_owned(),
                reason: format!("the identity provider failed ({detail})"),
            },
            _ => AuthError::Unauthenticated {
                reason: format!("the identity provider did not authenticate the user ({detail})"),
            },
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
    match (client.method, &client.secret) {
        (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
            basic = Some((client.id.as_str(), secret.expose()))
        }
        (ClientAuthMethod::ClientSecretPost, Some(secret)) => {
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
            "invalid_grant" => AuthError::Unauthenticated {
                reason: "the identity provider refused the authorization code (invalid_grant)".into(),
            },
            "invalid_client" | "unauthorized_client" | "unsupported_grant_type" => AuthError::Misconfigured(
                format!("module `{module}`: the token endpoint refused the client ({error})"),
            ),
            "invalid_request" if response.status.is_client_error() => AuthError::InvalidRequest(
                "the identity provider refused the token request (invalid_request)".into(),
            ),
            _ => http.unavailable(format!(
                "token endpoint answered HTTP {}",
                response.status.as_u16()
            )),
        });
    }
    match response.body {
        Value::Object(map) => {
            if !map.get("access_token").is_some_and(Value::is_string) {
                return Err(http.unavailable("token response has no access_token"));
            }
            Ok(map)
        }
        _ => Err(http.unavailable("token response is not a JSON object")),
    }
}
