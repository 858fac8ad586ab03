//! The `[sync]` table of the configuration. Every key is described in
//! `docs/sync.md`.

use serde::Deserialize;

use super::{AdSettings, AdSource, DeletePolicy, DirectorySource, DisabledRule, LdapSource, SyncMode};
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
    /// The kind of directory: `rfc4533` (default; OpenLDAP, 389-ds) or
    /// `active_directory` (DirSync or `uSNChanged` polling, see `[sync.ad]`).
    #[serde(default)]
    pub source: SourceName,
    /// Settings of the Active Directory source (`source = "active_directory"`).
    pub ad: Option<AdSettings>,
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

/// `source = "rfc4533" | "active_directory"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceName {
    /// RFC 4533 content synchronisation.
    #[default]
    Rfc4533,
    /// Active Directory: DirSync, or `uSNChanged` polling.
    ActiveDirectory,
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
    pub fn directory_source(
        &self,
        module: LdapModule,
    ) -> Result<std::sync::Arc<dyn DirectorySource>, ConfigError> {
        match self.source {
            SourceName::Rfc4533 => {
                if self.ad.is_some() {
                    return Err(ConfigError::invalid(
                        "sync.ad",
                        "is set but source is not \"active_directory\"",
                    ));
                }
                Ok(std::sync::Arc::new(self.source(module)?))
            }
            SourceName::ActiveDirectory => {
                let base = self.builder(module, true)?.build()?;
                Ok(std::sync::Arc::new(AdSource::new(
                    base,
                    self.ad.clone().unwrap_or_default(),
                )?))
            }
        }
    }

    /// The RFC 4533 source these settings describe, over `module`.
    pub fn source(&self, module: LdapModule) -> Result<LdapSource, ConfigError> {
        self.builder(module, false)?.build()
    }

    fn builder(&self, module: LdapModule, ad: bool) -> Result<super::LdapSourceBuilder, ConfigError> {
        let (user_filter, group_filter) = if ad {
            (super::AD_USER_FILTER, super::AD_GROUP_FILTER)
        } else {
            ("(objectClass=inetOrgPerson)", "(objectClass=groupOfNames)")
        };
        let mut b = LdapSource::builder(module);
        if ad {
            b = AdSource::defaults(b);
        }
        let mut b = b.users(
            self.user_base.clone(),
            self.user_filter.clone().unwrap_or_else(|| user_filter.into()),
        );
        if let Some(base) = &self.group_base {
            b = b.groups(
                base.clone(),
                self.group_filter.clone().unwrap_or_else(|| group_filter.into()),
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
        Ok(b.mode(mode).fallback_poll_interval(every))
    }
}
