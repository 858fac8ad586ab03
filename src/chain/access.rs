//! Who may sign in through a module once it verified them: access rules
//! (`allowed_groups`, `allowed_email_domains`, `required_roles`) and the host's
//! login policy hook. Both run before account resolution, so a refused identity
//! never gets an account, even under `provisioning = "create"`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::account::RoleMapping;
use crate::{ConfigError, Groups, Identity};

/// Which access rule refused a verified identity ([`AuthError::AccessDenied`](crate::AuthError::AccessDenied)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessRule {
    /// None of the identity's groups is in `allowed_groups`.
    #[error("none of the user's groups is in allowed_groups")]
    AllowedGroups,
    /// The identity has no email address, or its domain is not in
    /// `allowed_email_domains`.
    #[error("the user's email domain is not in allowed_email_domains")]
    AllowedEmailDomains,
    /// The login would grant none of `required_roles`.
    #[error("the login grants none of required_roles")]
    RequiredRoles,
    /// The host's [`LoginPolicy`] refused, for this reason.
    #[error("refused by the login policy: {0}")]
    Policy(String),
}

/// The access rules of one module entry. Empty lists allow everybody.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessRules {
    /// Matches like the module's role mapping (names or DNs); any group passes.
    pub(crate) allowed_groups: Option<RoleMapping>,
    /// Lower-case domains; the email's domain must be one of them exactly.
    pub(crate) allowed_email_domains: Vec<String>,
    /// Any of these roles (mapped by this login, or held by the account) passes.
    pub(crate) required_roles: BTreeSet<String>,
}

/// The role the `allowed_groups` matcher grants; never seen outside.
const ALLOWED: &str = "allowed";

impl AccessRules {
    /// `allowed_groups`, matched as the role mapping matches groups.
    pub(crate) fn groups(
        groups: impl IntoIterator<Item = impl Into<String>>,
        case_insensitive: bool,
        match_dn: bool,
    ) -> Result<Option<RoleMapping>, ConfigError> {
        let mut builder = RoleMapping::builder()
            .case_insensitive(case_insensitive)
            .match_dn(match_dn);
        let mut any = false;
        for group in groups {
            let group: String = group.into();
            if group.trim().is_empty() {
                return Err(ConfigError::invalid("allowed_groups", "holds an empty group"));
            }
            builder = builder.rule(group, ALLOWED);
            any = true;
        }
        if !any {
            return Ok(None);
        }
        builder
            .build()
            .map(Some)
            .map_err(|e| ConfigError::invalid("allowed_groups", e.to_string()))
    }

    /// Checks the email domain, in lower case.
    pub(crate) fn domains(
        domains: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        domains
            .into_iter()
            .map(|d| {
                let d: String = d.into();
                let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
                if d.is_empty() || d.contains(['@', ' ', '/']) {
                    Err(ConfigError::invalid(
                        "allowed_email_domains",
                        format!("{d:?} is not a domain"),
                    ))
                } else {
                    Ok(d)
                }
            })
            .collect()
    }

    /// The group and email rules.
    pub(crate) fn check_identity(&self, identity: &Identity) -> Result<(), AccessRule> {
        if let Some(groups) = &self.allowed_groups
            && groups.names(&groups.granted(&identity.groups)).next().is_none()
        {
            return Err(AccessRule::AllowedGroups);
        }
        if !self.allowed_email_domains.is_empty() {
            let domain = identity
                .email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            if !domain.is_some_and(|d| self.allowed_email_domains.contains(&d)) {
                return Err(AccessRule::AllowedEmailDomains);
            }
        }
        Ok(())
    }

    /// Whether `roles` satisfy `required_roles`.
    pub(crate) fn roles_pass<'a>(&self, mut roles: impl Iterator<Item = &'a str>) -> bool {
        self.required_roles.is_empty() || roles.any(|r| self.required_roles.contains(r))
    }
}

/// The host's decision about a verified identity, before any account is looked
/// up: [`LoginPolicy::decide`]. What the systems this crate replaces call a
/// "control script".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyDecision {
    /// Go on (with whatever [`LoginCandidate`] changes were made).
    Allow,
    /// Refuse the login: [`AccessRule::Policy`] with this reason (shown to the
    /// user only as "forbidden"; audited).
    Refuse(String),
}

/// What a [`LoginPolicy`] may read and change of a verified identity: it reads
/// everything, and may rewrite the login name, the email address and the groups —
/// never the provider or the external subject, which link the account.
pub struct LoginCandidate<'a> {
    identity: &'a mut Identity,
    changed: bool,
}

impl fmt::Debug for LoginCandidate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCandidate")
            .field("identity", &self.identity)
            .finish()
    }
}

impl<'a> LoginCandidate<'a> {
    pub(crate) fn new(identity: &'a mut Identity) -> Self {
        LoginCandidate {
            identity,
            changed: false,
        }
    }

    /// The verified identity.
    pub fn identity(&self) -> &Identity {
        self.identity
    }

    /// Replaces the login name.
    pub fn set_login(&mut self, login: impl Into<String>) {
        self.identity.login = login.into();
        self.changed = true;
    }

    /// Replaces the email address.
    pub fn set_email(&mut self, email: Option<String>) {
        self.identity.email = email;
        self.changed = true;
    }

    /// Replaces the groups (input to access rules and role mapping).
    pub fn set_groups(&mut self, groups: impl Into<Groups>) {
        self.identity.groups = groups.into();
        self.changed = true;
    }

    pub(crate) fn changed(&self) -> bool {
        self.changed
    }
}

/// A host's login policy: called with every verified identity of the chain (or of
/// one module) before account resolution; it can refuse the login or rewrite the
/// login name, email and groups. Its decision is audited.
///
/// ```
/// use authchain::Groups;
/// use authchain::chain::{LoginCandidate, LoginPolicy, PolicyDecision};
///
/// /// Contractors sign in as `ext-<name>` and never with the `admins` group.
/// struct Contractors;
///
/// #[async_trait::async_trait]
/// impl LoginPolicy for Contractors {
///     async fn decide(&self, login: &mut LoginCandidate<'_>) -> PolicyDecision {
///         let identity = login.identity();
///         if identity.login == "mallory" {
///             return PolicyDecision::Refuse("blocked by the security team".into());
///         }
///         if identity.email.as_deref().is_some_and(|e| e.ends_with("@contractor.example")) {
///             let name = format!("ext-{}", identity.login);
///             let groups: Groups = identity.groups.iter().filter(|g| *g != "admins").collect();
///             login.set_login(name);
///             login.set_groups(groups);
///         }
///         PolicyDecision::Allow
///     }
/// }
/// ```
#[async_trait]
pub trait LoginPolicy: Send + Sync {
    /// Decides about one verified identity.
    async fn decide(&self, login: &mut LoginCandidate<'_>) -> PolicyDecision;
}

impl fmt::Debug for dyn LoginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginPolicy")
    }
}

/// A shared policy.
pub(crate) type SharedPolicy = Arc<dyn LoginPolicy>;
