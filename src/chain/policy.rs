//! Per-module policy: what the chain does when a module rejects or is unavailable.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::access::{LoginPolicy, SharedPolicy};
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
    pub(crate) allowed_groups: Vec<String>,
    pub(crate) allowed_email_domains: Vec<String>,
    pub(crate) required_roles: BTreeSet<String>,
    pub(crate) policy: Option<SharedPolicy>,
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
            allowed_groups: Vec::new(),
            allowed_email_domains: Vec::new(),
            required_roles: BTreeSet::new(),
            policy: None,
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

    /// Only identities in one of these groups may sign in (matched like the role
    /// mapping's groups: names or DNs, its case rule). Empty: everybody.
    pub fn allowed_groups(mut self, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Only identities whose email address is in one of these domains (exactly;
    /// case-insensitive) may sign in. Empty: everybody.
    pub fn allowed_email_domains(mut self, domains: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_email_domains = domains.into_iter().map(Into::into).collect();
        self
    }

    /// Only logins that end up with one of these roles (mapped by this login, or
    /// held by the account) may sign in. Empty: everybody.
    pub fn required_roles(mut self, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.required_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The host's policy for this module's identities (runs before the chain's).
    pub fn policy(mut self, policy: Arc<dyn LoginPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }
}
