//! The HTTP client of the redirect modules: timeouts, no redirects, bounded
//! response bodies, JSON only, request counters. Never logs bodies or headers.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use serde_json::Value;

use super::ProviderRequests;
pub(crate) use super::check_url;
use crate::{AuthError, ConfigError};

/// Default timeout of one request to a provider.
pub(crate) const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a provider's response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// What a request is for (counted separately).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "oidc"), allow(dead_code))]
pub(crate) enum Purpose {
    Discovery,
    Jwks,
    Token,
    Userinfo,
}

#[derive(Debug, Default)]
struct Counters {
    discovery: AtomicU64,
    jwks: AtomicU64,
    token: AtomicU64,
    userinfo: AtomicU64,
}

/// A provider's answer: status and parsed JSON body (`Value::Null` when empty or
/// not JSON and the status is an error).
pub(crate) struct JsonResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) body: Value,
}

#[derive(Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    module: String,
    max_bytes: usize,
    counters: Counters,
}

impl HttpClient {
    pub(crate) fn new(
        module: &str,
        timeout: Duration,
        max_bytes: usize,
        ca_file: Option<&Path>,
        key: impl Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::invalid(
                key("http_timeout"),
                "must be longer than zero",
            ));
        }
        if max_bytes < 1024 {
            return Err(ConfigError::invalid(
                key("max_response_bytes"),
                "must be at least 1024",
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authchain/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|source| ConfigError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError::invalid(key("ca_file"), format!("not a PEM bundle: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| {
            ConfigError::invalid(key("http_timeout"), format!("cannot build HTTP client: {e}"))
        })?;
        Ok(HttpClient {
            client,
            module: module.to_owned(),
            max_bytes,
            counters: Counters::default(),
        })
    }

    pub(crate) fn requests(&self) -> ProviderRequests {
        ProviderRequests {
            discovery: self.counters.discovery.load(Ordering::Relaxed),
            jwks: self.counters.jwks.load(Ordering::Relaxed),
            token: self.counters.token.load(Ordering::Relaxed),
            userinfo: self.counters.userinfo.load(Ordering::Relaxed),
        }
    }

    fn count(&self, purpose: Purpose) {
        let counter = match purpose {
            Purpose::Discovery => &self.counters.discovery,
            Purpose::Jwks => &self.counters.jwks,
            Purpose::Token => &self.counters.token,
            Purpose::Userinfo => &self.counters.userinfo,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unavailable(&self, reason: impl Into<String>) -> AuthError {
        AuthError::Unavailable {
            module: self.module.clone(),
            reason: reason.into(),
        }
    }

    /// GET a JSON document, optionally with a bearer token.
    pub(crate) async fn get_json(
        &self,
        purpose: Purpose,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<JsonResponse, AuthError> {
        let mut request = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        self.send(purpose, request).await
    }

    /// POST a form, optionally with HTTP Basic client authentication (RFC 6749
    /// §2.3.1: both parts form-urlencoded first).
    pub(crate) async fn post_form(
        &self,
        purpose: Purpose,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<JsonResponse, AuthError> {
        let mut request = self
            .client
            .post(url)
            .header(http::header::ACCEPT, "application/json")
            .form(form);
        if let Some((user, password)) = basic {
            let user: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
            let password: String = url::form_urlencoded::byte_serialize(password.as_bytes()).collect();
            let credentials = Base64::encode_string(format!("{user}:{password}").as_bytes());
            request = request.header(http::header::AUTHORIZATION, format!("Basic {credentials}"));
        }
        self.send(purpose, request).await
    }

    async fn send(
        &self,
        purpose: Purpose,
        request: reqwest::RequestBuilder,
    ) -> Result<JsonResponse, AuthError> {
        self.count(purpose);
        let what = match purpose {
            Purpose::Discovery => "discovery document",
            Purpose::Jwks => "JWKS",
            Purpose::Token => "token endpoint",
            Purpose::Userinfo => "userinfo endpoint",
        };
        let mut response = request.send().await.map_err(|e| {
            // reqwest errors name the URL, never headers or bodies.
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            self.unavailable(format!("{what}: {kind}: {}", e.without_url()))
        })?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(self.unavailable(format!("{what}: response larger than {} bytes", self.max_bytes)));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_bytes {
                        return Err(self
                            .unavailable(format!("{what}: response larger than {} bytes", self.max_bytes)));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(self.unavailable(format!(
                        "{what}: reading the response failed: {}",
                        e.without_url()
                    )));
                }
            }
        }
        let body = match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(_) if !status.is_success() => Value::Null,
            Err(_) => return Err(self.unavailable(format!("{what}: response is not JSON (HTTP {status})"))),
        };
        Ok(JsonResponse { status, body })
    }
}
