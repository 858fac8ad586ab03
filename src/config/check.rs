//! Configurations that parse and build, yet can never authenticate anybody:
//! what `authchain check-config` refuses beyond the errors of [`Config::from_toml`].

use super::{Config, ModuleType};
use crate::ConfigError;

impl Config {
    /// The reasons this configuration can never authenticate anybody, each naming
    /// its key and line: a header module (plain or signed) that trusts no proxy
    /// (neither its own `trusted_proxies` nor the chain's), or a chain whose
    /// modules are all disabled or hidden. Empty for a usable configuration.
    pub fn dead_ends(&self) -> Vec<ConfigError> {
        let mut found = Vec::new();
        let chain_trusts_nobody = self.raw.trusted_proxies.is_empty();
        for module in &self.modules {
            let own = match &module.kind {
                ModuleType::Header(s) if s.insecure_trust_any_peer => continue,
                ModuleType::Header(s) => &s.trusted_proxies,
                #[cfg(feature = "signed-header")]
                ModuleType::SignedHeader(s) => &s.trusted_proxies,
                _ => continue,
            };
            let (key, nobody) = match own {
                Some(list) => (format!("modules.{}.trusted_proxies", module.id), list.is_empty()),
                None => (format!("modules.{}", module.id), chain_trusts_nobody),
            };
            if module.common.enabled && nobody {
                found.push(ConfigError::invalid(
                    key,
                    "the header module trusts no proxy (neither its own `trusted_proxies` nor the chain's): it can never authenticate anybody",
                ));
            }
        }
        let usable = self.modules.iter().any(|m| m.common.enabled && !m.common.hidden);
        if self.modules.is_empty() {
            found.push(ConfigError::invalid(
                "chain",
                "the chain lists no module: nobody can sign in",
            ));
        } else if !usable {
            found.push(ConfigError::invalid(
                "chain",
                "every module is disabled or hidden: nobody can sign in",
            ));
        }
        found.into_iter().map(|e| self.located(e)).collect()
    }
}

impl Config {
    /// The `type` of the module with this id in `chain` (`"ldap"`, `"saml"`...).
    pub fn module_type(&self, id: &str) -> Option<&str> {
        self.modules
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.common.kind.as_str())
    }
}
