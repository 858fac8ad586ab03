//! State the modules of a configured chain share, and that survives a reload:
//! pending redirect logins and one-time values.

use std::sync::Arc;

use super::ModuleType;

/// Pending redirect logins and one-time values the modules of a configured chain
/// share (injected into their settings when given).
#[derive(Clone, Default)]
pub(super) struct SharedState {
    pub(super) flows: Option<Arc<dyn crate::flow::FlowStore>>,
    pub(super) replay: Option<Arc<dyn crate::flow::ReplayCache>>,
}

impl SharedState {
    /// `kind` with the shared flow store and replay cache in its settings, where
    /// the module was not given stores of its own.
    pub(super) fn inject(&self, kind: &ModuleType) -> ModuleType {
        let mut kind = kind.clone();
        match &mut kind {
            #[cfg(feature = "oidc")]
            ModuleType::Oidc(s) => {
                s.flow.store = s.flow.store.take().or_else(|| self.flows.clone());
                s.replay = s.replay.take().or_else(|| self.replay.clone());
            }
            #[cfg(feature = "oauth2")]
            ModuleType::OAuth2(s) => s.flow.store = s.flow.store.take().or_else(|| self.flows.clone()),
            #[cfg(feature = "cas")]
            ModuleType::Cas(s) => s.flow.store = s.flow.store.take().or_else(|| self.flows.clone()),
            #[cfg(feature = "saml")]
            ModuleType::Saml(s) => {
                s.flow.store = s.flow.store.take().or_else(|| self.flows.clone());
                s.replay = s.replay.take().or_else(|| self.replay.clone());
            }
            #[cfg(feature = "key-login")]
            ModuleType::KeyLogin(s) => s.replay = s.replay.take().or_else(|| self.replay.clone()),
            _ => {}
        }
        kind
    }
}

impl super::Stores {
    /// Keeps every redirect module's pending logins in `flows` (one store for the
    /// chain, surviving a [`ReloadableChain::reload`](crate::reload::ReloadableChain::reload)).
    pub fn flows(mut self, flows: Arc<dyn crate::flow::FlowStore>) -> Self {
        self.shared.flows = Some(flows);
        self
    }

    /// Keeps every module's one-time values (SAML assertion ids, key-login
    /// token ids, OIDC logout token ids) in `replay`.
    pub fn replay(mut self, replay: Arc<dyn crate::flow::ReplayCache>) -> Self {
        self.shared.replay = Some(replay);
        self
    }

    /// The same stores with memory ones wherever none was given (throttle
    /// counters, pending logins, one-time values), so that every chain built from
    /// them shares one of each.
    pub(crate) fn with_shared_defaults(mut self) -> Self {
        if self.attempts.is_none() {
            self.attempts = Some(Arc::new(crate::account::MemoryAttemptStore::new()));
        }
        if self.shared.flows.is_none() {
            self.shared.flows = Some(Arc::new(crate::flow::MemoryFlowStore::default()));
        }
        if self.shared.replay.is_none() {
            self.shared.replay = Some(Arc::new(crate::flow::MemoryReplayCache::default()));
        }
        self
    }
}
