//! Reloading a configured chain without a restart.
//!
//! A [`ReloadableChain`] serves one [`AuthChain`] at a time and replaces it
//! atomically with one built from a new configuration. Requests already running
//! finish on the chain they started with (they hold its `Arc`); pending redirect
//! logins, throttle counters and the replay cache live outside the chain and are
//! handed to every new one, so they survive. A configuration that fails to parse
//! or build is refused with its errors, and the serving chain stays.
//!
//! ```
//! use std::sync::Arc;
//! use authchain::account::{MemoryUserStore, UserStore};
//! use authchain::config::{Config, Stores};
//! use authchain::reload::ReloadableChain;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let users: Arc<dyn UserStore> = Arc::new(MemoryUserStore::new());
//! let first = Config::from_toml("chain = [\"local\"]\n[modules.local]\ntype = \"local\"\n")?;
//! let chain = ReloadableChain::new(&first, Stores::new(users))?;
//!
//! let serving = chain.current();
//! // An unreadable (or broken) configuration is refused: the first chain serves on.
//! assert!(chain.reload_file("/nonexistent/authchain.toml").is_err());
//! assert!(Arc::ptr_eq(&serving, &chain.current()));
//!
//! let second = Config::from_toml("chain = [\"local\", \"staff\"]\n[modules.local]\ntype = \"local\"\n[modules.staff]\ntype = \"local\"\n")?;
//! chain.reload(&second)?;
//! assert_eq!(chain.current().visible_modules().len(), 2);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, StoreConfig, Stores};
use crate::{AuthChain, AuthError, AuthRequest, ConfigError, LoginResult};

/// An [`AuthChain`] that a new configuration can replace while it serves.
pub struct ReloadableChain {
    current: ArcSwap<AuthChain>,
    /// The stores and shared state every rebuilt chain is given.
    stores: Stores,
    /// The `[store]` section the stores were opened from: a reload may not change it.
    store_config: Option<StoreConfig>,
}

impl ReloadableChain {
    /// Builds the first chain from `config` over `stores`. Throttle counters,
    /// pending redirect logins and one-time values not given in `stores` are
    /// kept in memory, shared by every chain this one builds.
    pub fn new(config: &Config, stores: Stores) -> Result<ReloadableChain, ConfigError> {
        let stores = stores.with_shared_defaults();
        let chain = config.build(stores.clone())?;
        Ok(ReloadableChain {
            current: ArcSwap::from_pointee(chain),
            stores,
            store_config: config.store().cloned(),
        })
    }

    /// The chain serving now. A request that holds it finishes on it, whatever
    /// reloads happen meanwhile.
    pub fn current(&self) -> Arc<AuthChain> {
        self.current.load_full()
    }

    /// [`AuthChain::login`] on the chain serving now.
    pub async fn login(&self, request: &AuthRequest) -> Result<LoginResult, AuthError> {
        self.current().login(request).await
    }

    /// Builds a chain from `config` and makes it the serving one. On error nothing
    /// changes. A `[store]` section other than the first one's is refused (the
    /// stores stay open across reloads: changing them takes a restart).
    pub fn reload(&self, config: &Config) -> Result<(), ConfigError> {
        if config.store() != self.store_config.as_ref() {
            return Err(ConfigError::Invalid {
                key: "store".into(),
                message: "changing the [store] section takes a restart".into(),
                location: None,
            });
        }
        let chain = config.build(self.stores.clone())?;
        self.current.store(Arc::new(chain));
        tracing::info!(target: crate::audit::AUDIT_TARGET, modules = %crate::audit::list(config.module_ids()), "configuration reloaded");
        Ok(())
    }

    /// Reads `path` (with `AUTHCHAIN__…` environment overrides) and
    /// [`reload`](Self::reload)s from it.
    pub fn reload_file(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        self.reload(&Config::from_file_with_env(path)?)
    }
}
