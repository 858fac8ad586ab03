//! The HTTP client of the redirect modules: timeouts, no redirects, bounded
//! response bodies, request counters. Never logs bodies or headers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use serde_json::Value;

use super::ProviderRequests;
use crate::{AuthError, ConfigError};

/// Default timeout of one request to a provider.
pub(crate) const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a provider's response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The HTTP settings of a redirect module's client, one field group shared by the
/// OIDC, OAuth2 and CAS settings (flat in TOML: `http_timeout`,
/// `max_response_bytes`, `ca_file`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HttpSettings {
    /// `http_timeout`: timeout of each request to the provider, connect and whole
    /// request (ISO 8601 in TOML, default `PT10S`; longer than zero).
    #[serde(deserialize_with = "crate::iso8601::duration")]
    pub http_timeout: Duration,
    /// `max_response_bytes`: largest response accepted from the provider (default
    /// 1048576; at least 1024).
    pub max_response_bytes: usize,
    /// `ca_file`: PEM bundle of extra CA certificates trusted for the provider's
    /// HTTPS (default: the built-in web roots only).
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            ca_file: None,
        }
    }
}

impl HttpSettings {
    /// Checks the settings and builds the client of `module`; `key` turns a field
    /// name into the key errors name (the identity for a module's `new`).
    #[cfg_attr(
        not(any(
            feature = "oidc",
            feature = "oauth2",
            feature = "cas",
            feature = "signed-header"
        )),
        allow(dead_code)
    )]
    pub(crate) fn client(
        &self,
        module: &str,
        key: impl Fn(&str) -> String,
    ) -> Result<HttpClient, ConfigError> {
        HttpClient::new(
            module,
            self.http_timeout,
            self.max_response_bytes,
            self.ca_file.as_deref(),
            key,
        )
    }
}

/// Why a request to an identity provider failed. Never names headers or bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No answer within the timeout.
    #[error("{what}: timed out")]
    Timeout {
        /// What was asked for (`JWKS`, `token endpoint`, ...).
        what: &'static str,
    },
    /// The connection failed (refused, reset, TLS).
    #[error("{what}: request failed: {detail}")]
    Transport {
        /// What was asked for.
        what: &'static str,
        /// reqwest's description, without the URL.
        detail: String,
    },
    /// The answer was larger than `max_response_bytes`.
    #[error("{what}: response larger than {max} bytes")]
    TooLarge {
        /// What was asked for.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The answer is not what was asked for (not JSON, not an object, not a key set).
    #[error("{what}: malformed response (HTTP {status})")]
    Malformed {
        /// What was asked for.
        what: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The answer's status is an error.
    #[error("{what}: HTTP {status}")]
    Status {
        /// What was asked for.
        what: &'static str,
        /// The HTTP status.
        status: u16,
    },
}

/// What a request is for (counted separately).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(all(feature = "oidc", feature = "cas")), allow(dead_code))]
pub(crate) enum Purpose {
    Discovery,
    Jwks,
    Token,
    Userinfo,
    /// A CAS service ticket validation.
    Validation,
    /// SAML IdP metadata.
    Metadata,
}

impl Purpose {
    pub(crate) fn what(self) -> &'static str {
        match self {
            Purpose::Discovery => "discovery document",
            Purpose::Jwks => "JWKS",
            Purpose::Token => "token endpoint",
            Purpose::Userinfo => "userinfo endpoint",
            Purpose::Validation => "ticket validation",
            Purpose::Metadata => "IdP metadata",
        }
    }

    /// The `purpose` label of the provider request metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Purpose::Discovery => "discovery",
            Purpose::Jwks => "jwks",
            Purpose::Token => "token",
            Purpose::Userinfo => "userinfo",
            Purpose::Validation => "validation",
            Purpose::Metadata => "metadata",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    discovery: AtomicU64,
    jwks: AtomicU64,
    token: AtomicU64,
    userinfo: AtomicU64,
    validation: AtomicU64,
    metadata: AtomicU64,
}

/// A provider's answer: status and parsed JSON body (`Value::Null` when empty or
/// not JSON and the status is an error).
#[cfg_attr(not(any(feature = "oidc", feature = "oauth2")), allow(dead_code))]
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
            let pem = std::fs::read(path).map_err(|source| ConfigError::io(key("ca_file"), path, source))?;
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
            validation: self.counters.validation.load(Ordering::Relaxed),
            metadata: self.counters.metadata.load(Ordering::Relaxed),
        }
    }

    fn count(&self, purpose: Purpose) {
        let counter = match purpose {
            Purpose::Discovery => &self.counters.discovery,
            Purpose::Jwks => &self.counters.jwks,
            Purpose::Token => &self.counters.token,
            Purpose::Userinfo => &self.counters.userinfo,
            Purpose::Validation => &self.counters.validation,
            Purpose::Metadata => &self.counters.metadata,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An outage of this client's module.
    pub(crate) fn unavailable(&self, cause: impl Into<crate::ModuleError>) -> AuthError {
        AuthError::unavailable(self.module.clone(), cause)
    }

    /// GET a JSON document, optionally with a bearer token.
    #[cfg_attr(not(any(feature = "oidc", feature = "oauth2")), allow(dead_code))]
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
        self.send_json(purpose, request).await
    }

    /// GET a document of another kind (`accept` names it): status and raw body.
    #[cfg_attr(
        not(any(feature = "cas", feature = "oidc", feature = "saml")),
        allow(dead_code)
    )]
    pub(crate) async fn get_bytes(
        &self,
        purpose: Purpose,
        url: &str,
        accept: &str,
    ) -> Result<(http::StatusCode, Vec<u8>), AuthError> {
        let request = self.client.get(url).header(http::header::ACCEPT, accept);
        self.fetch(purpose, request).await
    }

    /// GET a JWKS document and parse it ([`crate::jose::parse_jwks`]: bounded).
    #[cfg(any(feature = "oidc", feature = "signed-header"))]
    pub(crate) async fn get_jwks(&self, url: &str) -> Result<crate::jose::Jwks, AuthError> {
        let (status, body) = self.get_bytes(Purpose::Jwks, url, "application/json").await?;
        if !status.is_success() {
            return Err(self.unavailable(HttpError::Status {
                what: Purpose::Jwks.what(),
                status: status.as_u16(),
            }));
        }
        crate::jose::parse_jwks(&body).map_err(|_| {
            self.unavailable(HttpError::Malformed {
                what: Purpose::Jwks.what(),
                status: status.as_u16(),
            })
        })
    }

    /// POST a form, optionally with HTTP Basic client authentication (RFC 6749
    /// §2.3.1: both parts form-urlencoded first).
    #[cfg_attr(not(any(feature = "oidc", feature = "oauth2")), allow(dead_code))]
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
        self.send_json(purpose, request).await
    }

    async fn send_json(
        &self,
        purpose: Purpose,
        request: reqwest::RequestBuilder,
    ) -> Result<JsonResponse, AuthError> {
        let (status, body) = self.fetch(purpose, request).await?;
        let body = match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(_) if !status.is_success() => Value::Null,
            Err(_) => {
                return Err(self.unavailable(HttpError::Malformed {
                    what: purpose.what(),
                    status: status.as_u16(),
                }));
            }
        };
        Ok(JsonResponse { status, body })
    }

    /// Sends one request, counted and timed ([`crate::metrics`]).
    async fn fetch(
        &self,
        purpose: Purpose,
        request: reqwest::RequestBuilder,
    ) -> Result<(http::StatusCode, Vec<u8>), AuthError> {
        self.count(purpose);
        let started = std::time::Instant::now();
        let result = self.send(purpose, request).await;
        let ok = matches!(&result, Ok((status, _)) if status.is_success());
        crate::metrics::provider_request(&self.module, purpose.label(), ok, started.elapsed());
        result
    }

    /// Sends one request; answers the status and the body, at most `max_bytes`.
    async fn send(
        &self,
        purpose: Purpose,
        request: reqwest::RequestBuilder,
    ) -> Result<(http::StatusCode, Vec<u8>), AuthError> {
        let what = purpose.what();
        let mut response = request.send().await.map_err(|e| {
            // reqwest errors name the URL, never headers or bodies.
            self.unavailable(if e.is_timeout() {
                HttpError::Timeout { what }
            } else {
                HttpError::Transport {
                    what,
                    detail: e.without_url().to_string(),
                }
            })
        })?;
        let too_large = || {
            self.unavailable(HttpError::TooLarge {
                what,
                max: self.max_bytes,
            })
        };
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_bytes {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(self.unavailable(if e.is_timeout() {
                        HttpError::Timeout { what }
                    } else {
                        HttpError::Transport {
                            what,
                            detail: e.without_url().to_string(),
                        }
                    }));
                }
            }
        }
        Ok((status, body))
    }
}
