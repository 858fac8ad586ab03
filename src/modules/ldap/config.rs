//! The serde configuration of the LDAP module: `[modules.<id>] type = "ldap"`.
//! Every key is described in `docs/modules/ldap.md`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{DEFAULT_TIMEOUT, GroupNames, GroupSource, LdapModule, LdapModuleBuilder};
use crate::iso8601::IsoDuration;
use crate::{ConfigError, SecretSource};

/// The settings of one LDAP / Active Directory module, as written in configuration.
///
/// ```toml
/// [modules.corp-ldap]
/// type = "ldap"
/// urls = ["ldaps://ldap1.example.org", "ldaps://ldap2.example.org"]
/// ca_file = "/etc/ssl/corp-ca.pem"
/// bind_dn = "cn=authchain,ou=service,dc=example,dc=org"
/// bind_password = { env = "LDAP_BIND_PASSWORD" }
/// user_search_base = "ou=people,dc=example,dc=org"
/// user_search_filter = "(uid=%s)"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// Server URLs (`ldap://host:389`, `ldaps://host:636`), tried in order: the next
    /// one is used when a server cannot be reached. At least one.
    pub urls: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS (RFC 4513). Default `false`.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that sign the servers' certificates.
    /// Default: the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For tests only; logged loudly. Default `false`.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// How long to wait for a TCP connection and the TLS handshake, per URL
    /// (ISO 8601, default `PT10S`).
    #[serde(default)]
    pub connect_timeout: Option<IsoDuration>,
    /// How long to wait for each LDAP operation (bind, search) and for a free pooled
    /// connection (ISO 8601, default `PT10S`).
    #[serde(default)]
    pub operation_timeout: Option<IsoDuration>,
    /// DN of the service account that searches for users. Without it, searches are
    /// anonymous (search mode) or run as the user (direct-bind mode).
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// The service account's password (`"inline"`, `{ env = "NAME" }` or `{ file = "path" }`).
    #[serde(default)]
    pub bind_password: Option<SecretSource>,
    /// Direct-bind mode: the name to bind with, `%s` being the login. A DN
    /// (`uid=%s,ou=people,dc=example,dc=org`, the login RFC 4514-escaped), an Active
    /// Directory UPN (`%s@corp.example.com`) or down-level name (`CORP\%s`). Unset:
    /// search mode.
    #[serde(default)]
    pub bind_format: Option<String>,
    /// Where users are searched (search mode, and direct-bind mode with a UPN or
    /// down-level `bind_format`).
    #[serde(default)]
    pub user_search_base: Option<String>,
    /// The user search filter; `%s` is the RFC 4515-escaped login. Default `(uid=%s)`
    /// (Active Directory: `(sAMAccountName=%s)` or `(userPrincipalName=%s)`).
    #[serde(default)]
    pub user_search_filter: Option<String>,
    /// Attribute holding the stable external subject; the DN when absent or
    /// unreadable. Default `entryUUID` (Active Directory: `objectGUID`).
    #[serde(default)]
    pub subject_attribute: Option<String>,
    /// Attribute holding the login name. Default `uid` (Active Directory: `sAMAccountName`).
    #[serde(default)]
    pub login_attribute: Option<String>,
    /// Attribute holding the email address. Default `mail`.
    #[serde(default)]
    pub email_attribute: Option<String>,
    /// Attribute holding the display name. Default `cn` (Active Directory: `displayName`).
    #[serde(default)]
    pub display_name_attribute: Option<String>,
    /// Further attributes copied into the identity's attributes.
    #[serde(default)]
    pub extra_attributes: Vec<String>,
    /// Where group memberships come from: `member_of` (default), `search` or `none`.
    #[serde(default)]
    pub groups: Option<GroupSource>,
    /// The membership attribute on user entries. Default `memberOf`.
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// Where groups are searched (`groups = "search"`).
    #[serde(default)]
    pub group_search_base: Option<String>,
    /// The group search filter; `%s` is the RFC 4515-escaped user DN, `%u` the escaped
    /// login. Default `(member=%s)`, or with `nested_groups`
    /// `(member:1.2.840.113556.1.4.1941:=%s)`.
    #[serde(default)]
    pub group_search_filter: Option<String>,
    /// Attribute holding a group's name. Default `cn`.
    #[serde(default)]
    pub group_name_attribute: Option<String>,
    /// Active Directory nested groups (matching rule 1.2.840.113556.1.4.1941); needs
    /// `groups = "search"`. Default `false`.
    #[serde(default)]
    pub nested_groups: bool,
    /// Whether the identity lists groups by `name` (default) or by `dn`.
    #[serde(default)]
    pub group_names: Option<GroupNames>,
    /// Most pooled connections of each kind (service-account and user-bind). Default 16.
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// Longest accepted login name, in bytes. Default 256.
    #[serde(default)]
    pub max_login_bytes: Option<usize>,
    /// Longest accepted password, in bytes. Default 1024.
    #[serde(default)]
    pub max_password_bytes: Option<usize>,
}

impl LdapConfig {
    /// The builder these settings describe (the bind password already resolved).
    pub fn into_builder(self, id: &str) -> Result<LdapModuleBuilder, ConfigError> {
        let key = |field: &str| format!("modules.{id}.{field}");
        let mut b = LdapModule::builder(id)
            .urls(self.urls)
            .starttls(self.starttls)
            .insecure_skip_tls_verify(self.insecure_skip_tls_verify)
            .connect_timeout(self.connect_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0))
            .operation_timeout(self.operation_timeout.map_or(DEFAULT_TIMEOUT, |d| d.0))
            .extra_attributes(self.extra_attributes)
            .nested_groups(self.nested_groups);
        if let Some(path) = self.ca_file {
            b = b.ca_file(path);
        }
        match (self.bind_dn, self.bind_password) {
            (Some(dn), Some(source)) => b = b.service_account(dn, source.resolve(&key("bind_password"))?),
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    key("bind_password"),
                    "bind_dn is set but bind_password is not",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    key("bind_dn"),
                    "bind_password is set but bind_dn is not",
                ));
            }
            (None, None) => {}
        }
        if let Some(v) = self.bind_format {
            b = b.bind_format(v);
        }
        if let Some(v) = self.user_search_base {
            b = b.user_search_base(v);
        }
        if let Some(v) = self.user_search_filter {
            b = b.user_search_filter(v);
        }
        if let Some(v) = self.subject_attribute {
            b = b.subject_attribute(v);
        }
        if let Some(v) = self.login_attribute {
            b = b.login_attribute(v);
        }
        if let Some(v) = self.email_attribute {
            b = b.email_attribute(v);
        }
        if let Some(v) = self.display_name_attribute {
            b = b.display_name_attribute(v);
        }
        if let Some(v) = self.groups {
            b = b.groups(v);
        }
        if let Some(v) = self.member_of_attribute {
            b = b.member_of_attribute(v);
        }
        if let Some(v) = self.group_search_base {
            b = b.group_search_base(v);
        }
        if let Some(v) = self.group_search_filter {
            b = b.group_search_filter(v);
        }
        if let Some(v) = self.group_name_attribute {
            b = b.group_name_attribute(v);
        }
        if let Some(v) = self.group_names {
            b = b.group_names(v);
        }
        if let Some(v) = self.pool_size {
            b = b.pool_size(v);
        }
        if let Some(v) = self.max_login_bytes {
            b = b.max_login_bytes(v);
        }
        if let Some(v) = self.max_password_bytes {
            b = b.max_password_bytes(v);
        }
        Ok(b)
    }
}

impl LdapModule {
    /// Builds the module `id` from its configuration. Errors name the key
    /// (`modules.<id>.<field>`).
    pub fn from_config(id: &str, cfg: LdapConfig) -> Result<LdapModule, ConfigError> {
        cfg.into_builder(id)?.build()
    }
}
