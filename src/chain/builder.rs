//! Builds an [`AuthChain`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::access::{AccessRules, LoginPolicy, SharedPolicy};
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
    policy: Option<SharedPolicy>,
    /// The first id `module_policy` named that no module has.
    unknown_policy_module: Option<String>,
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
            policy: None,
            unknown_policy_module: None,
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
        self.entries.push(Entry {
            id: crate::ModuleId::from(module.id()),
            module,
            settings,
            access: AccessRules::default(),
        });
        self
    }

    /// The host's login policy for every module's identities (after a module's
    /// own [`ModuleSettings::policy`]).
    pub fn policy(mut self, policy: Arc<dyn LoginPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Sets the policy of the module `id` already added (for chains built from a
    /// configuration file, whose module settings the host does not write). An
    /// unknown id is an error at [`build`](Self::build).
    pub fn module_policy(mut self, id: &str, policy: Arc<dyn LoginPolicy>) -> Self {
        match self.entries.iter_mut().find(|e| e.module.id() == id) {
            Some(entry) => entry.settings.policy = Some(policy),
            None => {
                self.unknown_policy_module.get_or_insert_with(|| id.to_owned());
            }
        }
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
    pub fn build(mut self) -> Result<AuthChain, ConfigError> {
        if let Some(id) = &self.unknown_policy_module {
            return Err(ConfigError::invalid(
                format!("modules.{id}"),
                "a login policy names a module the chain does not have",
            ));
        }
        for entry in &mut self.entries {
            // One rule for both APIs: a header module (plain or signed) with no proxy
            // list of its own believes the proxies this chain takes client addresses from.
            let module: &dyn std::any::Any = entry.module.as_ref();
            let mut replaced: Option<Arc<dyn crate::Authenticator>> = None;
            if let Some(header) = module.downcast_ref::<crate::modules::HeaderModule>()
                && header.inherits_trust()
            {
                replaced = Some(Arc::new(header.with_chain_trust(&self.client_ip)));
            }
            #[cfg(feature = "signed-header")]
            if let Some(signed) = module.downcast_ref::<crate::modules::SignedHeaderModule>()
                && signed.inherits_trust()
            {
                replaced = Some(Arc::new(signed.with_chain_trust(&self.client_ip)));
            }
            if let Some(module) = replaced {
                entry.module = module;
            }
            let key = |e: ConfigError| e.under(&format!("modules.{}", entry.module.id()));
            let (case_insensitive, match_dn) = entry.settings.roles.matching();
            entry.access = AccessRules {
                allowed_groups: AccessRules::groups(
                    entry.settings.allowed_groups.iter().cloned(),
                    case_insensitive,
                    match_dn,
                )
                .map_err(key)?,
                allowed_email_domains: AccessRules::domains(
                    entry.settings.allowed_email_domains.iter().cloned(),
                )
                .map_err(key)?,
                required_roles: entry.settings.required_roles.clone(),
            };
        }
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
            policy: self.policy,
        })
    }
}
