//! Accounts: the host's user store, login names, passwords, role mapping and
//! login throttling.

#[cfg(all(feature = "sync", any(feature = "sqlite", feature = "postgres")))]
pub(crate) mod directory;
mod keys;
mod login;
mod password;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod roles;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod store;
mod throttle;

pub use keys::{
    KeyFamily, KeyId, MAX_KEY_LABEL_BYTES, MAX_KEYS_PER_ACCOUNT, MAX_PUBLIC_KEY_BYTES, MAX_REVOKED_KEYS_KEPT,
    NewPublicKey, PublicKey, fingerprint,
};
pub use login::{LoginAttribute, LoginNames};
pub use password::{
    CostLimitExceeded, HashCheckError, HashLimits, HashScheme, MAX_HASH_LEN, PasswordError, PasswordPolicy,
    Verification,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{DEFAULT_PG_MAX_CONNECTIONS, MAX_PG_FAILURE_ROWS, MAX_PG_NAME_BYTES, PgOptions, PgStore};
pub use roles::{RoleMapping, RoleMappingBuilder, RoleRule};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{MAX_FAILURE_ROWS, SqliteOptions, SqliteStore};
pub use store::{
    Account, ExternalLink, LoginUpdate, MAX_LISTED_ACCOUNTS, MemoryUserStore, NewAccount, StoreFuture,
    UserStore,
};
pub(crate) use throttle::Throttle;
pub use throttle::{AttemptStore, FailureCount, MAX_FAILURES_PER_KEY, MemoryAttemptStore, ThrottlePolicy};

/// Connections of an SQLite store's pool by default: SQLite runs one writer at a
/// time, WAL lets the others read meanwhile.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// How durable a store's commits are: SQLite's `synchronous` setting, in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Synchronous {
    /// `FULL`, the default: a committed login or sync batch survives a power loss.
    #[default]
    Full,
    /// `NORMAL`: faster commits and still consistent after a crash, but the last
    /// commits before a power loss may be lost.
    Normal,
}

/// What happens when a provider verifies an external subject that no local
/// account is linked to yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provisioning {
    /// Refuse (`Forbidden`): accounts are linked by an administrator. The default.
    #[default]
    Existing,
    /// Link the pre-created local account whose login name matches, on first login.
    LinkByLogin,
    /// Create an account just in time and link it.
    Create,
}
