//! LDAP and Active Directory passwords (feature `ldap`).
//!
//! Two ways to find the user:
//!
//! * **Search mode** (no `bind_format`): bind as a service account, search
//!   `user_search_base` with `user_search_filter` (`%s` is the RFC 4515-escaped
//!   login), require exactly one entry, then bind as that entry's DN with the
//!   user's password.
//! * **Direct-bind mode** (`bind_format`): bind with a name made from the login — a
//!   DN template (`uid=%s,ou=people,dc=example,dc=org`, the login RFC 4514-escaped)
//!   or an Active Directory `user@domain` / `DOMAIN\user` form — then read the entry
//!   as the user.
//!
//! Groups come from `memberOf` on the user entry or from a group search (optionally
//! Active Directory nested groups). Service-account and user-bind connections are
//! pooled: on a warm pool a login costs two round trips (search + bind), three with
//! a group search. See `docs/modules/ldap.md`.
//!
//! Failure classes: an empty password is refused before any network traffic (an
//! empty simple bind is an RFC 4513 *unauthenticated* bind that servers accept);
//! result 49 (and other "you may not bind so" results) is
//! [`AuthError::InvalidCredentials`], and so is a login matching several entries
//! in search mode (logged as an error), except that Active Directory's bind
//! sub-codes for a disabled, expired or locked-out account or a password that must
//! change are [`AuthError::AccountRestricted`] (never counted by the throttle); unreachable servers
//! ([`LdapError::Unreachable`], with each URL's failure), timeouts, TLS failures, a
//! refused service bind ([`LdapError::ServiceBindRefused`]), a missing search base
//! and other result codes are [`AuthError::Unavailable`] with the [`LdapError`] as
//! cause; a filter that does not parse is [`AuthError::Misconfigured`].
//!
//! Files by concern: [`settings`](LdapSettings) (the settings and their one
//! validation), `tls` (rustls configuration, CA bundle, the
//! `insecure_skip_tls_verify` verifier), `connection` (pooled connections, binds,
//! searches, timeouts, the login flows), `entry` (entries → identities, shared with
//! the directory synchroniser), `pool` and `template` (DN and filter templates).

pub(crate) mod connection;
pub(crate) mod entry;
mod error;
pub(crate) mod pool;
mod settings;
pub(crate) mod template;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::{debug, warn};

pub use error::{LdapError, LdapOperation, UrlFailure};
pub use settings::{
    DEFAULT_GROUP_SEARCH_FILTER, DEFAULT_MAX_LOGIN_BYTES, DEFAULT_MAX_PASSWORD_BYTES, DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT, DEFAULT_USER_SEARCH_FILTER, GroupNames, GroupSource, LdapSettings, LdapUrl,
    LdapUrlError,
};
pub use template::{AD_MATCHING_RULE_IN_CHAIN, AD_NESTED_GROUP_FILTER};

use self::pool::Pools;
use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::{
    AuthError, AuthRequest, Authenticator, ConfigError, Credentials, ModuleKind, Outcome, SecretString,
};

/// Most groups read for one user.
const MAX_GROUPS: i32 = 10_000;

/// The LDAP / Active Directory password module. Cloning is cheap and shares the
/// connection pools.
#[derive(Clone)]
pub struct LdapModule {
    id: crate::ModuleId,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LdapModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapModule")
            .field("id", &self.id)
            .field("urls", &self.inner.pools.connector.urls)
            .field("mode", &self.inner.mode)
            .field("groups", &self.inner.groups)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Mode {
    Search { base: String, filter: String },
    Direct { format: String, lookup: Lookup },
}

/// How direct-bind mode finds the user's entry after the bind.
#[derive(Debug)]
enum Lookup {
    /// Read the bound DN itself.
    BoundDn,
    /// Search (UPN and down-level bind names are not DNs).
    Search { base: String, filter: String },
}

#[derive(Debug)]
enum Groups {
    None,
    MemberOf {
        attribute: String,
    },
    Search {
        base: String,
        filter: String,
        name_attribute: String,
    },
}

struct Inner {
    id: crate::ModuleId,
    mode: Mode,
    service: Option<(String, SecretString)>,
    groups: Groups,
    group_names: GroupNames,
    subject_attribute: String,
    login_attribute: String,
    email_attribute: String,
    display_name_attribute: String,
    extra_attributes: Vec<String>,
    /// The attributes requested from the user entry.
    user_attributes: Vec<String>,
    operation_timeout: Duration,
    max_login_bytes: usize,
    max_password_bytes: usize,
    pools: Pools,
}

impl LdapModule {
    /// Builds the module `id` from its settings, checking every one of them (errors
    /// name the key relative to the module's table, such as `user_search_filter`).
    /// No connection is opened here.
    pub fn new(id: impl Into<crate::ModuleId>, settings: LdapSettings) -> Result<LdapModule, ConfigError> {
        let id = id.into();
        let inner = settings.validate(&id)?;
        Ok(LdapModule {
            id,
            inner: Arc::new(inner),
        })
    }

    /// How many idle pooled connections the module holds (service-account, user-bind).
    pub fn idle_connections(&self) -> (usize, usize) {
        (
            self.inner.pools.service.idle_count(),
            self.inner.pools.user.idle_count(),
        )
    }

    /// Closes every idle pooled connection; the next login opens new ones.
    pub fn clear_pool(&self) {
        self.inner.pools.service.clear();
        self.inner.pools.user.clear();
    }

    /// The attributes the module reads from user entries, which the directory
    /// synchroniser uses unless told otherwise.
    #[cfg(feature = "sync")]
    pub(crate) fn user_attributes(&self) -> entry::UserAttributes<'_> {
        entry::UserAttributes {
            subject: &self.inner.subject_attribute,
            login: &self.inner.login_attribute,
            email: &self.inner.email_attribute,
            display_name: &self.inner.display_name_attribute,
        }
    }

    /// The group search filter this module sends for a user (for diagnostics and
    /// tests); `None` unless groups come from a search.
    pub fn group_filter_for(&self, user_dn: &str, login: &str) -> Option<String> {
        match &self.inner.groups {
            Groups::Search { filter, .. } => Some(template::group_filter(filter, user_dn, login)),
            _ => None,
        }
    }
}

impl Inner {
    /// Input checks that need no server.
    fn check_input(&self, login: &str, password: &SecretString) -> Result<(), AuthError> {
        if login.len() > self.max_login_bytes {
            return Err(AuthError::InvalidRequest(RequestError::TooLong {
                field: "login",
                max: self.max_login_bytes,
            }));
        }
        if password.len() > self.max_password_bytes {
            return Err(AuthError::InvalidRequest(RequestError::TooLong {
                field: "password",
                max: self.max_password_bytes,
            }));
        }
        // RFC 4513 §5.1.2: a simple bind with a DN and an empty password is an
        // *unauthenticated* bind, which many servers answer with success.
        if password.is_empty() || login.trim().is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        // No directory login contains control characters; refusing them here keeps
        // NUL and friends out of DNs and bind names altogether.
        if login.chars().any(char::is_control) {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(())
    }
}

#[async_trait]
impl Authenticator for LdapModule {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Password
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let Credentials::Password { login, password } = &request.credentials else {
            return Ok(Outcome::Abstain);
        };
        let inner = &self.inner;
        inner.check_input(login, password)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(AuthError::Misconfigured(format!(
                "module `{}`: the LDAP module runs on a Tokio runtime",
                self.id
            )));
        }
        let result = match &inner.mode {
            Mode::Search { base, filter } => inner.login_search(base, filter, login, password).await,
            Mode::Direct { format, lookup } => inner.login_direct(format, lookup, login, password).await,
        };
        match &result {
            Ok(identity) => {
                debug!(module = %self.id, subject = %identity.subject, groups = identity.groups.len(), "LDAP login verified");
            }
            Err(err @ AuthError::Unavailable { .. }) | Err(err @ AuthError::Misconfigured(_)) => {
                warn!(target: AUDIT_TARGET, module = %self.id, error = %err, "LDAP backend unavailable");
            }
            Err(_) => {}
        }
        result.map(Outcome::Authenticated)
    }
}
