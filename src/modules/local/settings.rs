//! The settings of the local password module (`type = "local"`).

use std::num::NonZeroUsize;

use crate::ConfigError;
use crate::settings::{ModuleSettingsType, field_names, take_rest};

/// Default maximum password length in bytes. Long enough for any passphrase,
/// short enough that nobody can make the server hash megabytes.
pub const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;

/// What a `type = "local"` table holds; [`LocalModule`](super::LocalModule) is
/// built from it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LocalSettings {
    /// `local_account_fallback` (default `false`): let accounts linked to an
    /// external provider also sign in with a local password (break-glass). Off:
    /// linked accounts are locked to their provider; local-only accounts (the
    /// administrators) always get in.
    pub local_account_fallback: bool,
    /// `max_password_bytes` (default 1024, at least 1): longer passwords are
    /// refused before any hashing.
    pub max_password_bytes: NonZeroUsize,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            local_account_fallback: false,
            max_password_bytes: NonZeroUsize::new(DEFAULT_MAX_PASSWORD_BYTES).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl ModuleSettingsType for LocalSettings {
    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        take_rest(table)
    }

    fn keys() -> Vec<&'static str> {
        field_names::<Self>().to_vec()
    }
}
