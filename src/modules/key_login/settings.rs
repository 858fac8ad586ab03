//! The settings of the key-login module (`type = "key_login"`).

use std::sync::Arc;
use std::time::Duration;

use crate::ConfigError;
use crate::flow::ReplayCache;
use crate::iso8601::IsoDuration;
use crate::settings::{ModuleSettingsType, field_names, take_rest};

/// The longest an assertion may live (`exp - iat`), and the most `max_lifetime` may be.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// Default tolerated clock difference between client and server.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// The most `clock_skew` may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What a `type = "key_login"` table holds; [`KeyLoginModule`](super::KeyLoginModule)
/// is built from it. The replay cache is injected in `replay`.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct KeyLoginSettings {
    /// `audience` (required): this service's id, which an assertion's `aud` must
    /// name.
    pub audience: String,
    /// `max_lifetime` (default and at most `PT5M`): the longest `exp - iat`.
    pub max_lifetime: IsoDuration,
    /// `clock_skew` (default `PT30S`, at most `PT5M`): tolerated clock difference
    /// on `iat` and `exp`.
    pub clock_skew: IsoDuration,
    /// Where accepted `jti`s are remembered (default: a
    /// [`MemoryReplayCache`](crate::flow::MemoryReplayCache) of this module). Not a
    /// TOML key: share one cache between instances (and modules) in code.
    #[serde(skip)]
    pub replay: Option<Arc<dyn ReplayCache>>,
}

impl std::fmt::Debug for KeyLoginSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLoginSettings")
            .field("audience", &self.audience)
            .field("max_lifetime", &self.max_lifetime)
            .field("clock_skew", &self.clock_skew)
            .field("replay", &self.replay.as_ref().map(|_| "ReplayCache"))
            .finish()
    }
}

impl Default for KeyLoginSettings {
    fn default() -> Self {
        KeyLoginSettings {
            audience: String::new(),
            max_lifetime: IsoDuration(MAX_ASSERTION_LIFETIME),
            clock_skew: IsoDuration(DEFAULT_CLOCK_SKEW),
            replay: None,
        }
    }
}

impl KeyLoginSettings {
    /// Settings with this audience and the defaults.
    pub fn new(audience: impl Into<String>) -> Self {
        KeyLoginSettings {
            audience: audience.into(),
            ..KeyLoginSettings::default()
        }
    }

    /// Checks what the types do not: errors name the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.audience.is_empty() {
            return Err(ConfigError::invalid(
                "audience",
                "is required (this service's id)",
            ));
        }
        if self.audience.len() > 256 {
            return Err(ConfigError::invalid("audience", "longer than 256 bytes"));
        }
        if self.max_lifetime.0.is_zero() || self.max_lifetime.0 > MAX_ASSERTION_LIFETIME {
            return Err(ConfigError::invalid("max_lifetime", "must be within PT1S..=PT5M"));
        }
        if self.clock_skew.0 > MAX_CLOCK_SKEW {
            return Err(ConfigError::invalid("clock_skew", "must be at most PT5M"));
        }
        Ok(())
    }
}

impl ModuleSettingsType for KeyLoginSettings {
    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let settings: KeyLoginSettings = take_rest(table)?;
        settings.check()?;
        Ok(settings)
    }

    fn keys() -> Vec<&'static str> {
        field_names::<Self>().to_vec()
    }
}
