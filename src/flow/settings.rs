//! The flow settings every redirect module's settings embed.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use super::{
    CookieAttributes, DEFAULT_FLOW_TTL, DEFAULT_MAX_FLOWS_PER_CLIENT, FlowStore, Flows, MemoryFlowStore,
    ReturnToPolicy,
};
use crate::ConfigError;

/// The settings of pending redirect logins, one field group shared by the OIDC,
/// OAuth2, SAML and CAS settings (flat in TOML: `flow_ttl`, `return_to_allowed`).
/// Turned into [`Flows`] by [`FlowSettings::build`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct FlowSettings {
    /// Where pending logins live (default: a [`MemoryFlowStore`] of the module).
    /// Not read from TOML: the host injects it.
    #[serde(skip)]
    pub store: Option<Arc<dyn FlowStore>>,
    /// `flow_ttl`: how long a started login may take (default 10 min).
    #[serde(rename = "flow_ttl", deserialize_with = "crate::iso8601::duration")]
    pub ttl: Duration,
    /// `return_to_allowed`: absolute return-to URL prefixes accepted besides
    /// relative paths (`https://app.example.org/`).
    pub return_to_allowed: Vec<String>,
    /// `max_flows_per_client`: pending logins one client address (an IPv6 /64)
    /// may hold in the module's memory flow store; its oldest goes when it
    /// starts one more (default [`DEFAULT_MAX_FLOWS_PER_CLIENT`]). An injected
    /// `store` applies its own bounds.
    pub max_flows_per_client: NonZeroUsize,
}

impl Default for FlowSettings {
    fn default() -> Self {
        FlowSettings {
            store: None,
            ttl: DEFAULT_FLOW_TTL,
            return_to_allowed: Vec::new(),
            max_flows_per_client: NonZeroUsize::new(DEFAULT_MAX_FLOWS_PER_CLIENT)
                .unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl FlowSettings {
    /// Checks the settings (errors name `flow_ttl` or `return_to_allowed`); the
    /// module chooses its flow cookie's attributes.
    pub fn build(self, cookie: CookieAttributes) -> Result<Flows, ConfigError> {
        if self.ttl.is_zero() {
            return Err(ConfigError::invalid("flow_ttl", "must be longer than zero"));
        }
        let return_to = ReturnToPolicy::with_allowed(self.return_to_allowed)
            .map_err(|e| ConfigError::invalid("return_to_allowed", e.to_string()))?;
        let max_per_client = self.max_flows_per_client;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryFlowStore::default().max_per_client(max_per_client)));
        Ok(Flows::new(store)
            .ttl(self.ttl)
            .return_to(return_to)
            .cookie(cookie))
    }
}
