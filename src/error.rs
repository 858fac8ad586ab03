//! Error types.
//!
//! [`AuthError`] says what a host needs to answer (its [`status_code`](AuthError::status_code))
//! and, for a module's refusal or outage, carries the typed cause as a
//! [`ModuleError`]: a [`FlowError`], a token, SAML, CAS or LDAP error of that module,
//! an HTTP transport failure, ... reachable as a value and through
//! [`std::error::Error::source`]. Hosts and tests match on variants, never on text.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::flow::{FlowError, ReplayError, ReturnToError};
use crate::request::StartError;

/// Why a login did not produce a [`Principal`](crate::Principal).
///
/// Variants carry what a host needs to pick a status code (see
/// [`AuthError::status_code`]) without telling a client which of "no such user" and
/// "wrong password" happened: both are [`AuthError::InvalidCredentials`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The login name or the password is wrong (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No module recognised the request (every module abstained, or the selected
    /// one did).
    #[error("not authenticated: {reason}")]
    Unauthenticated {
        /// What was missing.
        reason: String,
    },
    /// A module looked at the request and refused it, for a typed reason (a forged
    /// token, a replayed login, a SAML response for another SP, ...). The module's
    /// `on_reject` policy applies.
    #[error("module `{module}` refused the login: {cause}")]
    Rejected {
        /// The module that refused.
        module: String,
        /// Why.
        #[source]
        cause: ModuleError,
    },
    /// A module's backend could not be reached or answered wrongly; the module's
    /// `on_unavailable` policy applies. A host answers 503, with `Retry-After` when
    /// `retry_after` is set.
    #[error("authentication module `{module}` is unavailable: {cause}")]
    Unavailable {
        /// The module (or store) that failed.
        module: String,
        /// What went wrong, without secrets.
        #[source]
        cause: ModuleError,
        /// When trying again makes sense, if the module knows (a rate-limited key
        /// refetch during a key rotation, say).
        retry_after: Option<Duration>,
    },
    /// The identity was verified but may not sign in here (for example an external
    /// subject with no linked account under `provisioning = "existing"`).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why the identity was refused.
        reason: String,
    },
    /// A module verified the identity, but the module's access rules
    /// (`allowed_groups`, `allowed_email_domains`, `required_roles`) or the host's
    /// login policy refuse it; no account was created or changed.
    #[error("access denied by module `{module}`: {rule}")]
    AccessDenied {
        /// The module whose rule refused.
        module: String,
        /// The rule.
        rule: crate::chain::AccessRule,
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
    /// The module's directory says the account may not sign in now, whatever the
    /// password (Active Directory's bind sub-codes: disabled, expired, locked out,
    /// password expired or to be changed). Like [`AuthError::AccountDisabled`] and
    /// [`AuthError::AccountExpired`] a 403, and never counted as a wrong password.
    #[error("module `{module}`: {restriction}")]
    AccountRestricted {
        /// The module whose directory answered.
        module: String,
        /// What the directory reported.
        restriction: AccountRestriction,
    },
    /// The request is malformed (a bad header, an over-long password, an unknown
    /// module selection, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(#[source] RequestError),
    /// The chain or a module is configured in a way that cannot work. Never
    /// skipped silently: the chain logs an error event each time, and it outranks
    /// every other failure as the chain's answer.
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
    /// The module cannot work as configured: `on_unavailable` applies, an error
    /// event is logged, and the error outranks every other as the final answer.
    Misconfigured,
    /// Ends the login at once, whatever the policy.
    Final,
}

impl AuthError {
    /// A refusal by `module`.
    pub fn rejected(module: impl Into<String>, cause: impl Into<ModuleError>) -> Self {
        AuthError::Rejected {
            module: module.into(),
            cause: cause.into(),
        }
    }

    /// An outage of `module`'s backend.
    pub fn unavailable(module: impl Into<String>, cause: impl Into<ModuleError>) -> Self {
        AuthError::Unavailable {
            module: module.into(),
            cause: cause.into(),
            retry_after: None,
        }
    }

    /// A malformed request.
    pub fn invalid_request(cause: impl Into<RequestError>) -> Self {
        AuthError::InvalidRequest(cause.into())
    }

    /// The HTTP status a host should answer with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            AuthError::InvalidCredentials | AuthError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AuthError::Rejected { cause, .. } => cause.rejection_status(),
            AuthError::Forbidden { .. }
            | AuthError::AccessDenied { .. }
            | AuthError::AccountDisabled
            | AuthError::AccountExpired
            | AuthError::AccountRestricted { .. } => StatusCode::FORBIDDEN,
            AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long a client should wait before trying again (`Retry-After`), when
    /// the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Throttled { retry_after } => Some(*retry_after),
            AuthError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The module's typed cause, for a refusal or an outage.
    pub fn module_error(&self) -> Option<&ModuleError> {
        match self {
            AuthError::Rejected { cause, .. } | AuthError::Unavailable { cause, .. } => Some(cause),
            AuthError::InvalidRequest(RequestError::Module { cause, .. }) => Some(cause),
            _ => None,
        }
    }

    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            AuthError::Unavailable { .. } => ErrorClass::Unavailable,
            AuthError::Misconfigured(_) => ErrorClass::Misconfigured,
            AuthError::Throttled { .. } => ErrorClass::Final,
            _ => ErrorClass::Rejected,
        }
    }

    /// A short, stable name of the variant for audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::Unauthenticated { .. } => "unauthenticated",
            AuthError::Rejected { .. } => "rejected",
            AuthError::Unavailable { .. } => "unavailable",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::AccessDenied { .. } => "access_denied",
            AuthError::Throttled { .. } => "throttled",
            AuthError::AccountDisabled => "account_disabled",
            AuthError::AccountExpired => "account_expired",
            AuthError::AccountRestricted { .. } => "account_restricted",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::Misconfigured(_) => "misconfigured",
        }
    }

    /// A store failure during a login: a conflict is a refusal, anything else an
    /// outage of the user store.
    pub(crate) fn store(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => AuthError::Forbidden { reason: what },
            other => AuthError::unavailable("user-store", other),
        }
    }
}

/// Why a directory refuses an account's login whatever its password
/// ([`AuthError::AccountRestricted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountRestriction {
    /// The account is disabled (Active Directory `data 533`).
    Disabled,
    /// The account expired: its `accountExpires` passed (`data 701`).
    Expired,
    /// The password expired (`data 532`).
    PasswordExpired,
    /// The password must be changed before the next login (`data 773`).
    PasswordMustChange,
    /// The account is locked out after too many wrong passwords (`data 775`).
    LockedOut,
    /// Logins are not allowed at this time or from this workstation
    /// (`data 530`, `data 531`).
    LogonHours,
}

impl AccountRestriction {
    /// A short, stable name for audit events (`disabled`, `locked_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRestriction::Disabled => "disabled",
            AccountRestriction::Expired => "expired",
            AccountRestriction::PasswordExpired => "password_expired",
            AccountRestriction::PasswordMustChange => "password_must_change",
            AccountRestriction::LockedOut => "locked_out",
            AccountRestriction::LogonHours => "logon_hours",
        }
    }
}

impl fmt::Display for AccountRestriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountRestriction::Disabled => "the directory account is disabled",
            AccountRestriction::Expired => "the directory account has expired",
            AccountRestriction::PasswordExpired => "the password has expired",
            AccountRestriction::PasswordMustChange => "the password must be changed first",
            AccountRestriction::LockedOut => "the directory account is locked out",
            AccountRestriction::LogonHours => "logins are not allowed now or from here",
        })
    }
}

/// The typed cause of a module's refusal ([`AuthError::Rejected`]), outage
/// ([`AuthError::Unavailable`]) or malformed input ([`RequestError::Module`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// A pending redirect login could not be started or finished.
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// The replay cache refused or failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A request to the identity provider failed (transport, status, size, format).
    #[cfg(any(
        feature = "oidc",
        feature = "oauth2",
        feature = "cas",
        feature = "saml",
        feature = "signed-header"
    ))]
    #[error(transparent)]
    Http(#[from] crate::flow::HttpError),
    /// An OAuth2 / OIDC protocol step failed (the token endpoint's answer, the
    /// callback's parameters, userinfo).
    #[cfg(any(feature = "oidc", feature = "oauth2"))]
    #[error(transparent)]
    OAuth(#[from] crate::flow::OAuthError),
    /// An ID token did not validate.
    #[cfg(feature = "oidc")]
    #[error(transparent)]
    Token(#[from] crate::modules::oidc::TokenError),
    /// A SAML response did not validate.
    #[cfg(feature = "saml")]
    #[error(transparent)]
    Saml(#[from] crate::modules::saml::SamlError),
    /// A CAS ticket validation failed.
    #[cfg(feature = "cas")]
    #[error(transparent)]
    Cas(#[from] crate::modules::cas::CasError),
    /// The directory refused or failed.
    #[cfg(feature = "ldap")]
    #[error(transparent)]
    Ldap(#[from] crate::modules::ldap::LdapError),
    /// A key-login assertion was refused.
    #[cfg(feature = "key-login")]
    #[error(transparent)]
    KeyLogin(#[from] crate::modules::key_login::KeyLoginError),
    /// A proxy header was missing or malformed.
    #[error(transparent)]
    Header(#[from] crate::modules::header::HeaderError),
    /// A signed identity header did not verify.
    #[cfg(feature = "signed-header")]
    #[error(transparent)]
    SignedHeader(#[from] crate::modules::signed_header::SignedHeaderError),
    /// The user store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Any other error, for third-party modules.
    #[error(transparent)]
    Other(#[from] OtherError),
}

impl ModuleError {
    /// The status of a refusal with this cause: 403 for a login finished in another
    /// browser, 401 otherwise.
    fn rejection_status(&self) -> StatusCode {
        match self {
            ModuleError::Flow(FlowError::CookieMismatch) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Why a request is malformed ([`AuthError::InvalidRequest`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request selects a module the chain does not have (or has disabled).
    #[error("no enabled module {0:?}")]
    NoSuchModule(String),
    /// `Credentials::Start` without a selected module.
    #[error("starting a redirect login needs a selected module")]
    StartNeedsModule,
    /// The return-to URL is refused (an open redirect).
    #[error(transparent)]
    ReturnTo(#[from] ReturnToError),
    /// A start parameter (`login_hint`, `domain_hint`, ...) is malformed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The client-address header of a trusted proxy is malformed.
    #[error(transparent)]
    Forwarded(#[from] crate::net::ForwardedError),
    /// A proxy identity header is malformed.
    #[error(transparent)]
    Header(#[from] crate::modules::header::HeaderError),
    /// A login name or password is longer than the module accepts.
    #[error("{field} longer than {max} bytes")]
    TooLong {
        /// `login` or `password`.
        field: &'static str,
        /// The limit, in bytes.
        max: usize,
    },
    /// What a module received is malformed (a callback without a code, a SAML
    /// message that is not base64, ...).
    #[error("module `{module}`: {cause}")]
    Module {
        /// The module.
        module: String,
        /// What is wrong.
        #[source]
        cause: ModuleError,
    },
}

impl RequestError {
    /// Malformed input for `module`.
    pub fn module(module: impl Into<String>, cause: impl Into<ModuleError>) -> Self {
        RequestError::Module {
            module: module.into(),
            cause: cause.into(),
        }
    }
}

/// An error of a kind this crate does not know: a third-party module's, or a
/// storage backend's. Shared (`Clone`) and never equal to another (like rustls'
/// `OtherError`): match on the variant that holds it, then downcast
/// [`OtherError::get`] if needed.
#[derive(Clone)]
pub struct OtherError(Arc<dyn std::error::Error + Send + Sync>);

impl OtherError {
    /// Wraps an error.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        OtherError(Arc::new(err))
    }

    /// An error that is only a message.
    pub fn msg(message: impl Into<String>) -> Self {
        OtherError(Arc::new(Message(message.into())))
    }

    /// The wrapped error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl PartialEq for OtherError {
    fn eq(&self, _other: &Self) -> bool {
        false
    }
}

impl fmt::Debug for OtherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for OtherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for OtherError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// An error from a [`UserStore`](crate::account::UserStore) or an
/// [`AttemptStore`](crate::account::AttemptStore).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// The storage backend failed; holds the backend's own error.
    #[error("storage backend failed: {0}")]
    Backend(#[source] OtherError),
    /// A password hash to be written asks for more work than the store's
    /// [`HashLimits`](crate::account::HashLimits) allow; nothing was written.
    #[error("password hash refused: {0}")]
    HashCost(crate::account::CostLimitExceeded),
    /// The account holds as many unrevoked public keys as it may.
    #[error("the account already has {max} unrevoked keys")]
    TooManyKeys {
        /// The bound ([`MAX_KEYS_PER_ACCOUNT`](crate::account::MAX_KEYS_PER_ACCOUNT)).
        max: usize,
    },
    /// A value is longer than the store accepts (checked before anything is written).
    #[error("{field} longer than {max} bytes")]
    TooLong {
        /// `key` or `label`.
        field: &'static str,
        /// The limit, in bytes.
        max: usize,
    },
    /// A value the store refuses (checked before anything is written).
    #[error("{field} {reason}")]
    InvalidValue {
        /// `key` or `label`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No such public key on this account.
    #[error("no such key on this account")]
    NoSuchKey,
    /// The store does not implement this part of [`UserStore`](crate::account::UserStore)
    /// (a host store written before it existed).
    #[error("the store does not support {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// A backend failure wrapping the backend's error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(OtherError::new(err))
    }
}

/// Where a key stands in the configuration text (both 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The line.
    pub line: usize,
    /// The column, in characters.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// ` (line 3, column 1)`, or nothing when the location is unknown.
fn at(location: &Option<Location>) -> String {
    location.map(|l| format!(" ({l})")).unwrap_or_default()
}

/// A configuration that cannot be built. Every variant names the offending key
/// and, when the configuration came from TOML text, where the key stands in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML; the message carries the line.
    #[error("configuration syntax: {0}")]
    Syntax(String),
    /// A key holds a value that cannot work (or of the wrong type, or is missing).
    #[error("configuration key `{key}`{}: {message}", at(.location))]
    Invalid {
        /// Dotted path of the key, e.g. `modules.proxy.trusted_proxies[1]`.
        key: String,
        /// What is wrong with it.
        message: String,
        /// Where the key (or, for a missing key, its table) stands in the text.
        location: Option<Location>,
    },
    /// The configuration file, or a file a key names, could not be read.
    #[error("cannot read `{path}`{}{}: {source}", key.as_deref().map(|k| format!(" (key `{k}`)")).unwrap_or_default(), at(.location))]
    Io {
        /// The key that names the file (`None` for the configuration file itself).
        key: Option<String>,
        /// The path that failed.
        path: String,
        /// The underlying error.
        source: std::io::Error,
        /// Where the key stands in the text.
        location: Option<Location>,
    },
    /// More than one error, in the order they were found; each is complete on its own.
    #[error("{} configuration errors:{}", .0.len(), .0.iter().map(|e| format!("\n  {e}")).collect::<String>())]
    Several(Vec<ConfigError>),
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
            location: None,
        }
    }

    /// A file named by `key` that could not be read.
    pub(crate) fn io(key: impl Into<String>, path: &std::path::Path, source: std::io::Error) -> Self {
        ConfigError::Io {
            key: Some(key.into()),
            path: path.display().to_string(),
            source,
            location: None,
        }
    }

    /// One error, or [`ConfigError::Several`]; `None` for none.
    pub(crate) fn collect(mut errors: Vec<ConfigError>) -> Option<Self> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ConfigError::Several(errors)),
        }
    }

    /// The offending key, when the error is about one (the first error's, for
    /// [`ConfigError::Several`]).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Io { key, .. } => key.as_deref(),
            ConfigError::Several(errors) => errors.first().and_then(ConfigError::key),
            ConfigError::Syntax(_) => None,
        }
    }

    /// Where the offending key stands in the configuration text, when known.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Invalid { location, .. } | ConfigError::Io { location, .. } => *location,
            ConfigError::Several(errors) => errors.first().and_then(ConfigError::location),
            ConfigError::Syntax(_) => None,
        }
    }

    /// Every single error (one, or the members of [`ConfigError::Several`]).
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(errors) => errors.iter().collect(),
            other => vec![other],
        }
    }

    /// The same error with its location looked up by `locate` (from the key).
    pub(crate) fn located(self, locate: &impl Fn(&str) -> Option<Location>) -> Self {
        match self {
            ConfigError::Invalid {
                key,
                message,
                location,
            } => ConfigError::Invalid {
                location: location.or_else(|| locate(&key)),
                key,
                message,
            },
            ConfigError::Io {
                key,
                path,
                source,
                location,
            } => ConfigError::Io {
                location: location.or_else(|| key.as_deref().and_then(locate)),
                key,
                path,
                source,
            },
            ConfigError::Several(errors) => {
                ConfigError::Several(errors.into_iter().map(|e| e.located(locate)).collect())
            }
            other => other,
        }
    }

    /// The same error with its key placed under `prefix` (`modules.corp`).
    pub(crate) fn under(self, prefix: &str) -> Self {
        self.rekey_with(&|k: &str| {
            if k.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        })
    }

    fn rekey_with(self, key: &dyn Fn(&str) -> String) -> Self {
        match self {
            ConfigError::Invalid {
                key: k,
                message,
                location,
            } => ConfigError::Invalid {
                key: key(&k),
                message,
                location,
            },
            ConfigError::Io {
                key: Some(k),
                path,
                source,
                location,
            } => ConfigError::Io {
                key: Some(key(&k)),
                path,
                source,
                location,
            },
            ConfigError::Several(errors) => {
                ConfigError::Several(errors.into_iter().map(|e| e.rekey_with(key)).collect())
            }
            other => other,
        }
    }

    /// The same error with its key rewritten by `key` (a module's key namer).
    #[cfg(any(
        feature = "oidc",
        feature = "oauth2",
        feature = "saml",
        feature = "cas",
        feature = "signed-header"
    ))]
    pub(crate) fn rekey(self, key: impl Fn(&str) -> String) -> Self {
        self.rekey_with(&key)
    }
}
