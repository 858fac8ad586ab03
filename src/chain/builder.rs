//! Builds an [`AuthChain`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{AuthChain, Entry, ModuleSettings};
use crate::account::{AttemptStore, LoginNames, Throttle, ThrottlePolicy, UserStore};
use crate::net::ProxyTrust;
use crate::{Authenticator, ConfigError};

/// Builds an [`AuthChain`]: modules in order, each with its [`ModuleSettings`].
pub struct ChainBuilder {
    id: String,
    entries: Vec<Entry>,
    store: Arc<dyn UserStore>,
    names: LoginNames,
    expire_inactive_after: Option<Duration>,
    throttle: Option<Throttle>,
    client_ip: ProxyTrust,
}

impl ChainBuilder {
    pub(super) fn new(store: Arc<dyn UserStore>) -> Self {
        ChainBuilder {
            id: "chain".into(),
            entries: Vec::new(),
            store,
            names: LoginNames::default(),
            expire_inactive_after: None,
            throttle: None,
            client_ip: ProxyTrust::none(),
        }
    }

    /// The chain's own id (when it is nested in another chain). Default `chain`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Appends a module with default settings.
    pub fn module(self, module: impl Authenticator + 'static) -> Self {
        self.module_with(module, ModuleSettings::default())
    }

    /// Appends a module with its settings.
    pub fn module_with(self, module: impl Authenticator + 'static, settings: ModuleSettings) -> Self {
        self.shared_module(Arc::new(module), settings)
    }

    /// Appends a module that is shared with other code.
    pub fn shared_module(mut self, module: Arc<dyn Authenticator>, settings: ModuleSettings) -> Self {
        self.entries.push(Entry { module, settings });
        self
    }

    /// Login-name rules (case sensitivity, username or email).
    pub fn login_names(mut self, names: LoginNames) -> Self {
        self.names = names;
        self
    }

    /// Refuse accounts whose last login is older than this.
    pub fn expire_inactive_after(mut self, idle: Duration) -> Self {
        self.expire_inactive_after = Some(idle);
        self
    }

    /// Throttle password logins with these limits, counting in `store`.
    pub fn throttle(mut self, policy: ThrottlePolicy, store: Arc<dyn AttemptStore>) -> Self {
        self.throttle = Some(Throttle { policy, store });
        self
    }

    /// Proxies whose `X-Forwarded-For` (or `Forwarded`) header gives the client
    /// address used for throttling and audit. Default: nobody.
    pub fn client_ip_from(mut self, trust: ProxyTrust) -> Self {
        self.client_ip = trust;
        self
    }

    /// Checks the chain (unique module ids, sane throttle) and builds it.
    pub fn build(self) -> Result<AuthChain, ConfigError> {
        let mut seen = HashSet::new();
        for entry in &self.entries {
            let id = entry.module.id();
            if id.is_empty() {
                return Err(ConfigError::invalid("modules", "a module has an empty id"));
            }
            if !seen.insert(id.to_owned()) {
                return Err(ConfigError::invalid(
                    format!("modules.{id}"),
                    "module id is used twice",
                ));
            }
        }
        if let Some(throttle) = &self.throttle {
            let policy = throttle.policy;
            for (key, value) in [
                ("throttle.max_attempts", policy.max_attempts),
                ("throttle.max_attempts_per_ip", policy.max_attempts_per_ip),
            ] {
                if value == 0 {
                    return Err(ConfigError::invalid(key, "must be at least 1"));
                }
                if value as usize > crate::account::MAX_FAILURES_PER_KEY {
                    return Err(ConfigError::invalid(
                        key,
                        format!("must be at most {}", crate::account::MAX_FAILURES_PER_KEY),
                    ));
                }
            }
            if policy.window.is_zero() {
                return Err(ConfigError::invalid(
                    "throttle.window",
                    "must be longer than zero",
                ));
            }
        }
        Ok(AuthChain {
            id: self.id,
            entries: self.entries,
            store: self.store,
            names: self.names,
            expire_inactive_after: self.expire_inactive_after,
            throttle: self.throttle,
            client_ip: self.client_ip,
        })
    }
}
