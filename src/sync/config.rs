//! The `[sync]` table of the configuration. Every key is described in
//! `docs/sync.md`.

use serde::Deserialize;

use super::{DeletePolicy, DisabledRule, LdapSource, SyncMode};
use crate::ConfigError;
use crate::iso8601::IsoDuration;
use crate::modules::LdapModule;

/// Directory sync settings, as written in configuration.
///
/// ```toml
/// [sync]
/// module = "corp-ldap"               # an ldap module of the chain: servers, service account, role mapping
/// user_base = "ou=people,dc=example,dc=org"
/// group_base = "ou=groups,dc=example,dc=org"
/// disabled = { attribute = "nsAccountLock", values = ["true"] }
/// on_delete = "disable"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SyncConfig {
    /// The id of the `type = "ldap"` module whose connection settings, service
    /// account, attributes and role mapping are used; synced accounts are linked
    /// under this id.
    pub module: String,
    /// Where the users are.
    pub user_base: String,
    /// Which entries are users (default `(objectClass=inetOrgPerson)`).
    pub user_filter: Option<String>,
    /// Where the groups are; unset: no groups are mirrored.
    pub group_base: Option<String>,
    /// Which entries are groups (default `(objectClass=groupOfNames)`).
    pub group_filter: Option<String>,
    /// Stable id attribute (default: the module's `subject_attribute`).
    pub stable_id_attribute: Option<String>,
    /// Login attribute (default: the module's).
    pub login_attribute: Option<String>,
    /// Email attribute (default: the module's).
    pub email_attribute: Option<String>,
    /// Display name attribute (default: the module's).
    pub display_name_attribute: Option<String>,
    /// When an entry counts as disabled (default: never).
    pub disabled: Option<DisabledRule>,
    /// Group name attribute (default `cn`).
    pub group_name_attribute: Option<String>,
    /// Member attribute of groups (default `member`).
    pub member_attribute: Option<String>,
    /// Mirror only these groups (default: all).
    pub only_groups: Option<Vec<String>>,
    /// Users who leave the directory: `disable` (default) or `delete`.
    #[serde(default)]
    pub on_delete: DeletePolicy,
    /// `persist` (default) or `poll`.
    #[serde(default)]
    pub mode: ModeName,
    /// Interval of `poll` mode, and of the polling that `persist` mode falls back
    /// to when the directory refuses persistent searches (ISO 8601, default `PT60S`).
    pub poll_interval: Option<IsoDuration>,
    /// Most changes per transaction (default 500).
    pub max_batch: Option<usize>,
    /// Longest wait between reconnection attempts (ISO 8601, default `PT30S`).
    pub max_backoff: Option<IsoDuration>,
}

/// `mode = "persist" | "poll"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeName {
    /// refreshAndPersist; polling at `poll_interval` when the directory refuses it.
    #[default]
    Persist,
    /// refreshOnly at `poll_interval`.
    Poll,
}

impl SyncConfig {
    /// The source these settings describe, over `module`.
    pub fn source(&self, module: LdapModule) -> Result<LdapSource, ConfigError> {
        let mut b = LdapSource::builder(module).users(
            self.user_base.clone(),
            self.user_filter
                .clone()
                .unwrap_or_else(|| "(objectClass=inetOrgPerson)".into()),
        );
        if let Some(base) = &self.group_base {
            b = b.groups(
                base.clone(),
                self.group_filter
                    .clone()
                    .unwrap_or_else(|| "(objectClass=groupOfNames)".into()),
            );
        } else if self.group_filter.is_some() {
            return Err(ConfigError::invalid(
                "sync.group_filter",
                "is set but group_base is not",
            ));
        }
        if let Some(v) = &self.stable_id_attribute {
            b = b.stable_id_attribute(v.clone());
        }
        if let Some(v) = &self.login_attribute {
            b = b.login_attribute(v.clone());
        }
        if let Some(v) = &self.email_attribute {
            b = b.email_attribute(v.clone());
        }
        if let Some(v) = &self.display_name_attribute {
            b = b.display_name_attribute(v.clone());
        }
        if let Some(v) = &self.disabled {
            b = b.disabled(v.clone());
        }
        if let Some(v) = &self.group_name_attribute {
            b = b.group_name_attribute(v.clone());
        }
        if let Some(v) = &self.member_attribute {
            b = b.member_attribute(v.clone());
        }
        if let Some(v) = &self.only_groups {
            b = b.only_groups(v.clone());
        }
        // With `persist`, the interval is that of the fallback to polling.
        let every = self
            .poll_interval
            .map_or(super::ldap::DEFAULT_POLL_INTERVAL, |d| d.0);
        let mode = match self.mode {
            ModeName::Persist => SyncMode::Persist,
            ModeName::Poll => SyncMode::Poll(every),
        };
        b.mode(mode).fallback_poll_interval(every).build()
    }
}
