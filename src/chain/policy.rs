//! Per-module policy: what the chain does when a module rejects or is unavailable.

use crate::account::{Provisioning, RoleMapping};

/// What the chain does after a module failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Ask the next module (the default).
    #[default]
    Next,
    /// End the login with this module's error.
    Stop,
}

/// How one module sits in a chain.
#[derive(Debug, Clone)]
pub struct ModuleSettings {
    pub(crate) description: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) hidden: bool,
    pub(crate) on_reject: OnFailure,
    pub(crate) on_unavailable: OnFailure,
    pub(crate) provisioning: Provisioning,
    pub(crate) roles: RoleMapping,
}

impl Default for ModuleSettings {
    fn default() -> Self {
        ModuleSettings {
            description: None,
            enabled: true,
            hidden: false,
            on_reject: OnFailure::Next,
            on_unavailable: OnFailure::Next,
            provisioning: Provisioning::Existing,
            roles: RoleMapping::default(),
        }
    }
}

impl ModuleSettings {
    /// Default settings: enabled, visible, `next` on reject and on unavailable,
    /// provisioning `existing`, no role mapping.
    pub fn new() -> Self {
        ModuleSettings::default()
    }

    /// The label of the module's login button (defaults to its id).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// A disabled module never runs, even when selected.
    pub fn enabled(mut self, yes: bool) -> Self {
        self.enabled = yes;
        self
    }

    /// A hidden module runs only when a request selects it by id.
    pub fn hidden(mut self, yes: bool) -> Self {
        self.hidden = yes;
        self
    }

    /// What to do when the module rejects the request.
    pub fn on_reject(mut self, policy: OnFailure) -> Self {
        self.on_reject = policy;
        self
    }

    /// What to do when the module's backend is unavailable.
    pub fn on_unavailable(mut self, policy: OnFailure) -> Self {
        self.on_unavailable = policy;
        self
    }

    /// What happens to external subjects with no linked account.
    pub fn provisioning(mut self, provisioning: Provisioning) -> Self {
        self.provisioning = provisioning;
        self
    }

    /// How the module's external groups become roles.
    pub fn roles(mut self, mapping: RoleMapping) -> Self {
        self.roles = mapping;
        self
    }
}
