//! Errors of the web integration, shown by content negotiation: browsers are sent
//! back to the login page with a short code, API clients get a JSON body naming
//! the error kind. The host can replace the rendering ([`ErrorRenderer`]).
//!
//! An [`AuthError`] is a response of its own too (status code, JSON body,
//! `Retry-After` when throttled). The body never says more than the error's kind
//! and message, which reveal no secret and do not tell "no such user" from
//! "wrong password".

use std::sync::Arc;

use ::axum::response::{Html, IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::AuthError;

/// Why the web integration refused a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The chain refused the login (or the session's account is now refused).
    #[error(transparent)]
    Auth(AuthError),
    /// A cross-site POST to the login or logout route (CSRF).
    #[error("cross-site request refused")]
    CrossSite,
    /// A guarded route without a signed-in user.
    #[error("not signed in")]
    NotSignedIn,
    /// The signed-in user lacks the role a guarded route requires.
    #[error("the role `{0}` is required")]
    MissingRole(String),
    /// No module with this id serves this route (no SAML module for metadata, ...).
    #[error("no module {0:?} for this route")]
    NoSuchModule(String),
    /// A malformed login body.
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// The session store failed.
    #[error("session store: {0}")]
    Session(String),
}

impl WebError {
    /// The short code shown to browsers and in the JSON body (`invalid_credentials`,
    /// `cross_site`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            WebError::Auth(err) => err.kind(),
            WebError::CrossSite => "cross_site",
            WebError::NotSignedIn => "not_signed_in",
            WebError::MissingRole(_) => "missing_role",
            WebError::NoSuchModule(_) => "no_such_module",
            WebError::BadRequest(_) => "bad_request",
            WebError::Session(_) => "session_unavailable",
        }
    }

    /// The status code for API clients.
    pub fn status_code(&self) -> StatusCode {
        match self {
            WebError::Auth(err) => err.status_code(),
            WebError::CrossSite | WebError::MissingRole(_) => StatusCode::FORBIDDEN,
            WebError::NotSignedIn => StatusCode::UNAUTHORIZED,
            WebError::NoSuchModule(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Session(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The message shown to people: readable, and never more than the code says.
    pub fn message(&self) -> &'static str {
        message(self.code())
    }
}

/// The readable message of a short error code (the login page shows it).
pub(crate) fn message(code: &str) -> &'static str {
    match code {
        "invalid_credentials" => "Wrong login name or password.",
        "unauthenticated" => "Sign-in did not complete. Please try again.",
        "rejected" => "The sign-in was refused. Please try again.",
        "unavailable" | "session_unavailable" => {
            "Sign-in is temporarily unavailable. Please try again later."
        }
        "forbidden" | "access_denied" => "This account may not sign in here.",
        "throttled" => "Too many attempts. Please wait a moment and try again.",
        "account_disabled" => "This account is disabled.",
        "account_expired" => "This account has expired.",
        "account_restricted" => {
            "This account cannot sign in at the moment. Please contact your administrator."
        }
        "cross_site" => "The sign-in form was sent from another site and was refused.",
        "not_signed_in" => "Please sign in.",
        "missing_role" => "You do not have access to that page.",
        "signed_out" => "You are signed out.",
        _ => "Sign-in failed. Please try again.",
    }
}

/// What a renderer knows about the request that failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ErrorContext {
    /// Whether the client is a browser (it accepts `text/html` before JSON).
    pub browser: bool,
    /// The login page's path, with the `return_to` of the failed request when it
    /// has one (`/auth/login?return_to=%2Fadmin`).
    pub login_page: String,
}

/// Turns an error into a response; replace the default with
/// [`WebAuth::error_renderer`](super::WebAuth::error_renderer).
pub type ErrorRenderer = Arc<dyn Fn(&WebError, &ErrorContext) -> Response + Send + Sync>;

/// Whether the request comes from a browser: `Accept` names `text/html` and not
/// JSON first (an API client sends `application/json` or nothing).
pub(crate) fn is_browser(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match (accept.find("text/html"), accept.find("json")) {
        (Some(html), Some(json)) => html < json,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Whether the client asks for JSON: a JSON body, or `Accept` naming JSON before
/// `text/html`.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    json_body || accept.contains("json") && !is_browser(headers)
}

/// Browsers: a 303 to the login page with `error=<code>` (a missing role: a 403
/// page); API clients: the status
/// code and `{"error": code, "message": ...}`. `Retry-After` on both when the
/// error has one.
pub(crate) fn default_renderer(err: &WebError, context: &ErrorContext) -> Response {
    let mut response = if context.browser {
        if let WebError::MissingRole(_) = err {
            // Signed in already: the login page would not help.
            let page = format!("<!doctype html><title>Forbidden</title><p>{}</p>", err.message());
            (err.status_code(), Html(page)).into_response()
        } else {
            let separator = if context.login_page.contains('?') {
                '&'
            } else {
                '?'
            };
            Redirect::to(&format!("{}{separator}error={}", context.login_page, err.code())).into_response()
        }
    } else {
        match err {
            WebError::Auth(auth) => return auth.clone().into_response(),
            other => (
                other.status_code(),
                [(header::CONTENT_TYPE, "application/json")],
                format!(
                    "{{\"error\":\"{}\",\"message\":\"{}\"}}",
                    other.code(),
                    other.message()
                ),
            )
                .into_response(),
        }
    };
    if let WebError::Auth(auth) = err {
        add_retry_after(&mut response, auth);
    }
    response
}

fn add_retry_after(response: &mut Response, err: &AuthError) {
    if let Some(retry_after) = err.retry_after() {
        // Rounded up: "retry after 0 s" would invite an immediate retry.
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        // Messages of outages and misconfigurations stay in the audit log.
        let message = match &self {
            AuthError::Unavailable { .. } => "authentication is temporarily unavailable".to_owned(),
            AuthError::Misconfigured(_) => "authentication is misconfigured".to_owned(),
            other => other.to_string(),
        };
        let body = format!(
            "{{\"error\":\"{}\",\"message\":\"{}\"}}",
            self.kind(),
            message
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace(|c: char| c.is_control(), " ")
        );
        let mut response = (
            self.status_code(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        add_retry_after(&mut response, &self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_carries_retry_after_and_outages_hide_details() {
        let response = AuthError::Throttled {
            retry_after: std::time::Duration::from_secs(42),
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let response =
            AuthError::unavailable("ldap", crate::OtherError::msg("connection refused to 10.1.2.3"))
                .into_response();
        assert_eq!(response.status(), 503);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let response = AuthError::Unavailable {
            module: "oidc".into(),
            cause: crate::OtherError::msg("key rotation").into(),
            retry_after: Some(std::time::Duration::from_millis(1500)),
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
