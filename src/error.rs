//! Error types.

use std::time::Duration;

use http::StatusCode;

/// Why a login did not produce a [`Principal`](crate::Principal).
///
/// Variants carry what a host needs to pick a status code (see
/// [`AuthError::status_code`]) without telling a client which of "no such user" and
/// "wrong password" happened: both are [`AuthError::InvalidCredentials`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The login name or the password is wrong (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No module recognised the request, or a module required credentials that
    /// the request did not carry (for example a missing proxy header).
    #[error("not authenticated: {reason}")]
    Unauthenticated {
        /// What was missing.
        reason: String,
    },
    /// A module's backend could not be reached or answered wrongly; the chain's
    /// fallback policy applies.
    #[error("authentication module `{module}` is unavailable: {reason}")]
    Unavailable {
        /// The module (or store) that failed.
        module: String,
        /// What went wrong, without secrets.
        reason: String,
    },
    /// The identity was verified but may not sign in here (for example an external
    /// subject with no linked account under `provisioning = "existing"`).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why the identity was refused.
        reason: String,
    },
    /// Too many failed attempts from this address or for this login name.
    #[error("too many failed attempts; retry after {} s", retry_after.as_secs())]
    Throttled {
        /// How long until the next attempt will be considered.
        retry_after: Duration,
    },
    /// The account exists but is disabled.
    #[error("account is disabled")]
    AccountDisabled,
    /// The account has not signed in for longer than `expire_inactive_after`.
    #[error("account expired after a period of inactivity")]
    AccountExpired,
    /// The request is malformed (a bad header, an over-long password, an unknown
    /// module selection, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The chain or a module is configured in a way that cannot work.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
}

/// How the chain treats an error returned by a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The module looked and said no: the module's `on_reject` policy applies.
    Rejected,
    /// The module could not do its work: `on_unavailable` applies.
    Unavailable,
    /// Ends the login at once, whatever the policy.
    Final,
}

impl AuthError {
    /// The HTTP status a host should answer with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            AuthError::InvalidCredentials | AuthError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden { .. } | AuthError::AccountDisabled | AuthError::AccountExpired => {
                StatusCode::FORBIDDEN
            }
            AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            AuthError::Unavailable { .. } | AuthError::Misconfigured(_) => ErrorClass::Unavailable,
            AuthError::Throttled { .. } => ErrorClass::Final,
            _ => ErrorClass::Rejected,
        }
    }

    /// A short, stable name of the variant for audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::Unauthenticated { .. } => "unauthenticated",
            AuthError::Unavailable { .. } => "unavailable",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::Throttled { .. } => "throttled",
            AuthError::AccountDisabled => "account_disabled",
            AuthError::AccountExpired => "account_expired",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::Misconfigured(_) => "misconfigured",
        }
    }

    pub(crate) fn store(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => AuthError::Forbidden { reason: what },
            other => AuthError::Unavailable {
                module: "user-store".into(),
                reason: other.to_string(),
            },
        }
    }
}

/// An error from a [`UserStore`](crate::account::UserStore) or an
/// [`AttemptStore`](crate::account::AttemptStore).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value (login name, email, external link) is already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The account does not exist.
    #[error("no such account")]
    NotFound,
    /// A case-insensitive lookup matched several accounts.
    #[error("login name matches several accounts")]
    Ambiguous,
    /// The storage backend failed.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// A configuration that cannot be built. Every variant names the offending key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML or a value has the wrong type; the message
    /// carries the key and the line.
    #[error("configuration syntax: {0}")]
    Syntax(String),
    /// A key holds a value that cannot work.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// Dotted path of the key, e.g. `modules.proxy.trusted_proxies`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration file (or a secret file) could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The offending key, when the error is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
