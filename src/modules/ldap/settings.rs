//! The settings of the LDAP module: what `[modules.<id>] type = "ldap"` deserializes
//! into and what [`LdapModule::new`](super::LdapModule::new) is built from. Every key
//! is described, once, in `docs/modules/ldap.md`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};

use super::pool::{Connector, Pool, Pools};
use super::{Groups, Inner, Lookup, Mode, entry, template, tls};
use crate::settings::{self, ModuleSettingsType};
use crate::{ConfigError, SecretSource};

/// Default connect and operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default user search filter.
pub const DEFAULT_USER_SEARCH_FILTER: &str = "(uid=%s)";
/// Default group search filter.
pub const DEFAULT_GROUP_SEARCH_FILTER: &str = "(member=%s)";
/// Default number of pooled connections of each kind.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default longest login name, in bytes.
pub const DEFAULT_MAX_LOGIN_BYTES: usize = 256;
/// Default longest password, in bytes.
pub const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;

/// The settings of one LDAP / Active Directory module.
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
///
/// In code, start from [`LdapSettings::new`] (every other field at its default),
/// assign fields, and build with [`LdapModule::new`](super::LdapModule::new), which
/// checks them all and names the offending key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default = "LdapSettings::defaults")]
#[non_exhaustive]
pub struct LdapSettings {
    /// `urls` (required, at least one): server URLs (`ldap://host:389`,
    /// `ldaps://host:636`), tried in order: the next one is used when a server
    /// cannot be reached.
    pub urls: Vec<LdapUrl>,
    /// `starttls` (default `false`): upgrade `ldap://` connections with StartTLS
    /// (RFC 4513). Not allowed with `ldaps://` URLs.
    pub starttls: bool,
    /// `ca_file` (default: the system's trusted roots): PEM file with the CA
    /// certificate(s) that sign the servers' certificates. Read when the module is built.
    pub ca_file: Option<PathBuf>,
    /// CA certificates as PEM text, instead of `ca_file` (default none). Not read
    /// from TOML: for hosts that embed their CA bundle.
    #[serde(skip)]
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure_skip_tls_verify` (default `false`): accept any server certificate.
    /// For tests only; logged loudly. Contradicts `ca_file`.
    pub insecure_skip_tls_verify: bool,
    /// `connect_timeout` (ISO 8601, default `PT10S`): time for the TCP connection,
    /// the TLS handshake and StartTLS, per URL.
    #[serde(deserialize_with = "crate::iso8601::duration")]
    pub connect_timeout: Duration,
    /// `operation_timeout` (ISO 8601, default `PT10S`): time for each LDAP operation
    /// (bind, search) and for a free pooled connection.
    #[serde(deserialize_with = "crate::iso8601::duration")]
    pub operation_timeout: Duration,
    /// `bind_dn` (default none): DN of the service account that searches for users.
    /// Without it, searches are anonymous (search mode) or run as the user
    /// (direct-bind mode). Needs `bind_password`.
    pub bind_dn: Option<String>,
    /// `bind_password` (default none): the service account's password (`"inline"`,
    /// `{ env = "NAME" }` or `{ file = "path" }`), read when the module is built.
    /// Required with `bind_dn`; must not be empty.
    pub bind_password: Option<SecretSource>,
    /// `bind_format` (default none: search mode): direct-bind mode, the name to bind
    /// with, `%s` being the login. A DN (`uid=%s,ou=people,dc=example,dc=org`, the
    /// login RFC 4514-escaped), an Active Directory UPN (`%s@corp.example.com`) or
    /// down-level name (`CORP\%s`).
    pub bind_format: Option<String>,
    /// `user_search_base` (default none): where users are searched (search mode, and
    /// direct-bind mode with a UPN or down-level `bind_format`).
    pub user_search_base: Option<String>,
    /// `user_search_filter` (default `(uid=%s)`): `%s` is the RFC 4515-escaped login
    /// (Active Directory: `(sAMAccountName=%s)` or `(userPrincipalName=%s)`).
    pub user_search_filter: String,
    /// `subject_attribute` (default `entryUUID`; Active Directory `objectGUID`):
    /// attribute holding the stable external subject; the DN when absent or unreadable.
    pub subject_attribute: String,
    /// `login_attribute` (default `uid`; Active Directory `sAMAccountName`):
    /// attribute holding the login name.
    pub login_attribute: String,
    /// `email_attribute` (default `mail`): attribute holding the email address.
    pub email_attribute: String,
    /// `display_name_attribute` (default `cn`; Active Directory `displayName`):
    /// attribute holding the display name.
    pub display_name_attribute: String,
    /// `extra_attributes` (default `[]`): further attributes copied into the
    /// identity's attributes.
    pub extra_attributes: Vec<String>,
    /// `groups` (default `member_of`): where group memberships come from,
    /// `member_of`, `search` or `none`.
    pub groups: GroupSource,
    /// `member_of_attribute` (default `memberOf`): the membership attribute on user entries.
    pub member_of_attribute: String,
    /// `group_search_base` (default none): where groups are searched; required with
    /// `groups = "search"`.
    pub group_search_base: Option<String>,
    /// `group_search_filter` (default `(member=%s)`, or with `nested_groups`
    /// [`AD_NESTED_GROUP_FILTER`](super::AD_NESTED_GROUP_FILTER)): `%s` is the
    /// RFC 4515-escaped user DN, `%u` the escaped login.
    pub group_search_filter: Option<String>,
    /// `group_name_attribute` (default `cn`): attribute holding a group's name.
    pub group_name_attribute: String,
    /// `nested_groups` (default `false`): Active Directory nested groups (matching
    /// rule 1.2.840.113556.1.4.1941); needs `groups = "search"`.
    pub nested_groups: bool,
    /// `group_names` (default `name`): whether the identity lists groups by `name`
    /// or by `dn`.
    pub group_names: GroupNames,
    /// `pool_size` (default 16): most pooled connections of each kind
    /// (service-account and user-bind).
    pub pool_size: usize,
    /// `max_login_bytes` (default 256): longest accepted login name, in bytes.
    pub max_login_bytes: usize,
    /// `max_password_bytes` (default 1024): longest accepted password, in bytes.
    pub max_password_bytes: usize,
}

impl LdapSettings {
    /// Settings for these servers, every other field at its default. Set
    /// `user_search_base` (search mode) or `bind_format` (direct-bind mode) too.
    pub fn new(urls: impl IntoIterator<Item = LdapUrl>) -> Self {
        LdapSettings {
            urls: urls.into_iter().collect(),
            ..LdapSettings::defaults()
        }
    }

    /// Every default, in one place (serde fills missing keys from it).
    fn defaults() -> Self {
        LdapSettings {
            urls: Vec::new(),
            starttls: false,
            ca_file: None,
            ca_pem: None,
            insecure_skip_tls_verify: false,
            connect_timeout: DEFAULT_TIMEOUT,
            operation_timeout: DEFAULT_TIMEOUT,
            bind_dn: None,
            bind_password: None,
            bind_format: None,
            user_search_base: None,
            user_search_filter: DEFAULT_USER_SEARCH_FILTER.to_owned(),
            subject_attribute: "entryUUID".to_owned(),
            login_attribute: "uid".to_owned(),
            email_attribute: "mail".to_owned(),
            display_name_attribute: "cn".to_owned(),
            extra_attributes: Vec::new(),
            groups: GroupSource::MemberOf,
            member_of_attribute: "memberOf".to_owned(),
            group_search_base: None,
            group_search_filter: None,
            group_name_attribute: "cn".to_owned(),
            nested_groups: false,
            group_names: GroupNames::Name,
            pool_size: DEFAULT_POOL_SIZE,
            max_login_bytes: DEFAULT_MAX_LOGIN_BYTES,
            max_password_bytes: DEFAULT_MAX_PASSWORD_BYTES,
        }
    }

    /// Checks every setting (the only place they are checked) and makes the
    /// module's state. No connection is opened. Errors name the key relative to the
    /// module's table (`user_search_filter`).
    pub(super) fn validate(self, id: &str) -> Result<Inner, ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::invalid(field, message);

        // Transport.
        if self.urls.is_empty() {
            return Err(invalid("urls", "at least one server URL is needed".into()));
        }
        let mut needs_tls = false;
        for url in &self.urls {
            match (url.is_ldaps(), self.starttls) {
                (true, true) => {
                    return Err(invalid(
                        "starttls",
                        format!("`{url}` is already TLS: use ldap:// URLs with starttls"),
                    ));
                }
                (true, false) | (false, true) => needs_tls = true,
                (false, false) => warn!(module = %id, url = %url,
                    "LDAP over plain ldap:// without StartTLS: passwords cross the network in clear text"),
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout", "must be longer than zero".into()));
        }
        if self.operation_timeout.is_zero() {
            return Err(invalid("operation_timeout", "must be longer than zero".into()));
        }
        if self.pool_size == 0 {
            return Err(invalid("pool_size", "must be at least 1".into()));
        }
        if self.max_login_bytes == 0 {
            return Err(invalid("max_login_bytes", "must be at least 1".into()));
        }
        if self.max_password_bytes == 0 {
            return Err(invalid("max_password_bytes", "must be at least 1".into()));
        }
        let connection = tls::connection_settings(&self, id, needs_tls)?;

        // Service account.
        let service = match (&self.bind_dn, &self.bind_password) {
            (Some(dn), Some(source)) => {
                if dn.trim().is_empty() {
                    return Err(invalid("bind_dn", "must not be empty".into()));
                }
                let password = source.resolve("bind_password")?;
                if password.is_empty() {
                    return Err(invalid(
                        "bind_password",
                        "must not be empty (an empty password is an unauthenticated bind)".into(),
                    ));
                }
                Some((dn.clone(), password))
            }
            (Some(_), None) => {
                return Err(invalid(
                    "bind_password",
                    "bind_dn is set but bind_password is not".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "bind_dn",
                    "bind_password is set but bind_dn is not".into(),
                ));
            }
            (None, None) => None,
        };

        // How users are found.
        let check_filter = |field: &str, filter: &str| -> Result<(), ConfigError> {
            if !filter.contains("%s") && !filter.contains("%u") {
                return Err(invalid(field, format!("`{filter}` does not contain %s")));
            }
            if ldap3::parse_filter(template::substitute(filter, "x", "x")).is_err() {
                return Err(invalid(field, format!("`{filter}` is not a valid LDAP filter")));
            }
            Ok(())
        };
        let user_filter = self.user_search_filter.clone();
        let mode = match &self.bind_format {
            None => {
                let base = self.user_search_base.clone().ok_or_else(|| {
                    invalid(
                        "user_search_base",
                        "search mode needs user_search_base (or set bind_format for direct binds)".into(),
                    )
                })?;
                check_filter("user_search_filter", &user_filter)?;
                Mode::Search {
                    base,
                    filter: user_filter,
                }
            }
            Some(format) => {
                if !format.contains("%s") {
                    return Err(invalid("bind_format", format!("`{format}` does not contain %s")));
                }
                let lookup = match &self.user_search_base {
                    Some(base) => {
                        check_filter("user_search_filter", &user_filter)?;
                        Lookup::Search {
                            base: base.clone(),
                            filter: user_filter,
                        }
                    }
                    None if template::is_dn_template(format) => Lookup::BoundDn,
                    None => {
                        return Err(invalid(
                            "user_search_base",
                            format!(
                                "bind_format `{format}` is not a DN: set user_search_base to find the entry"
                            ),
                        ));
                    }
                };
                Mode::Direct {
                    format: format.clone(),
                    lookup,
                }
            }
        };

        // Groups.
        if self.nested_groups && self.groups != GroupSource::Search {
            return Err(invalid(
                "nested_groups",
                "nested groups are read by a group search: set groups = \"search\"".into(),
            ));
        }
        let groups = match self.groups {
            GroupSource::None => Groups::None,
            GroupSource::MemberOf => Groups::MemberOf {
                attribute: nonempty(&self.member_of_attribute, "member_of_attribute")?,
            },
            GroupSource::Search => {
                let base = self.group_search_base.clone().ok_or_else(|| {
                    invalid(
                        "group_search_base",
                        "groups = \"search\" needs group_search_base".into(),
                    )
                })?;
                let filter = match (&self.group_search_filter, self.nested_groups) {
                    (Some(filter), _) => filter.clone(),
                    (None, true) => super::AD_NESTED_GROUP_FILTER.to_owned(),
                    (None, false) => DEFAULT_GROUP_SEARCH_FILTER.to_owned(),
                };
                check_filter("group_search_filter", &filter)?;
                Groups::Search {
                    base,
                    filter,
                    name_attribute: nonempty(&self.group_name_attribute, "group_name_attribute")?,
                }
            }
        };
        for (field, value) in [
            ("subject_attribute", &self.subject_attribute),
            ("login_attribute", &self.login_attribute),
            ("email_attribute", &self.email_attribute),
            ("display_name_attribute", &self.display_name_attribute),
        ] {
            nonempty(value, field)?;
        }
        if self.extra_attributes.iter().any(|a| a.trim().is_empty()) {
            return Err(invalid(
                "extra_attributes",
                "attribute names must not be empty".into(),
            ));
        }
        if let Mode::Search { .. } = mode
            && service.is_none()
        {
            info!(module = %id, "no bind_dn: user searches are anonymous");
        }

        let mut user_attributes = vec![
            self.subject_attribute.clone(),
            self.login_attribute.clone(),
            self.email_attribute.clone(),
            self.display_name_attribute.clone(),
        ];
        if let Groups::MemberOf { attribute } = &groups {
            user_attributes.push(attribute.clone());
        }
        user_attributes.extend(self.extra_attributes.iter().cloned());
        let user_attributes = entry::dedup_attribute_names(user_attributes);

        let urls = self.urls.into_iter().map(LdapUrl::into_string).collect();
        let connector = Connector::new(id.to_owned(), urls, connection, self.connect_timeout);
        let pools = Pools {
            connector,
            service: Pool::new(self.pool_size, self.operation_timeout),
            user: Pool::new(self.pool_size, self.operation_timeout),
        };
        Ok(Inner {
            id: id.into(),
            mode,
            service,
            groups,
            group_names: self.group_names,
            subject_attribute: self.subject_attribute,
            login_attribute: self.login_attribute,
            email_attribute: self.email_attribute,
            display_name_attribute: self.display_name_attribute,
            extra_attributes: self.extra_attributes,
            user_attributes,
            operation_timeout: self.operation_timeout,
            max_login_bytes: self.max_login_bytes,
            max_password_bytes: self.max_password_bytes,
            pools,
        })
    }
}

fn nonempty(value: &str, field: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::invalid(field, "must not be empty"))
    } else {
        Ok(value.to_owned())
    }
}

impl ModuleSettingsType for LdapSettings {
    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        // `urls` is the one key without a default.
        if !table.contains_key("urls") {
            return Err(ConfigError::invalid(
                "urls",
                "missing: at least one server URL is needed",
            ));
        }
        settings::take_rest(table)
    }

    fn keys() -> Vec<&'static str> {
        settings::field_names::<Self>().to_vec()
    }
}

/// A server URL: `ldap://host[:port]` or `ldaps://host[:port]` (the scheme in any
/// case). Checked when parsed; kept as written, which is how errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    url: String,
    ldaps: bool,
}

/// A string that is not an `ldap://` or `ldaps://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` {reason}")]
pub struct LdapUrlError {
    url: String,
    reason: &'static str,
}

impl LdapUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `ldaps://` (TLS from the first byte).
    pub fn is_ldaps(&self) -> bool {
        self.ldaps
    }

    fn into_string(self) -> String {
        self.url
    }
}

impl FromStr for LdapUrl {
    type Err = LdapUrlError;

    fn from_str(url: &str) -> Result<Self, LdapUrlError> {
        let fail = |reason| LdapUrlError {
            url: crate::net::truncate(url, 256).to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| fail("is not an ldap:// or ldaps:// URL"))?;
        let ldaps = match scheme.to_ascii_lowercase().as_str() {
            "ldap" => false,
            "ldaps" => true,
            _ => return Err(fail("is not an ldap:// or ldaps:// URL")),
        };
        let host = rest.split(['/', '?']).next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(fail("names no host"));
        }
        Ok(LdapUrl {
            url: url.to_owned(),
            ldaps,
        })
    }
}

impl fmt::Display for LdapUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl<'de> Deserialize<'de> for LdapUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where group memberships come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupSource {
    /// The `memberOf` attribute of the user entry (asked for by name: it is
    /// operational in OpenLDAP).
    #[default]
    MemberOf,
    /// A search under `group_search_base` with `group_search_filter`.
    Search,
    /// No groups.
    None,
}

/// How groups are listed in the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupNames {
    /// The group's name: its `group_name_attribute` (searched groups) or the value
    /// of the first RDN of its DN (`memberOf`).
    #[default]
    Name,
    /// The group's full DN. A role mapping with `match_dn` still matches rules
    /// written with the first RDN's value.
    Dn,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn urls_are_checked_when_parsed() {
        assert!("ldap://dc1:389".parse::<LdapUrl>().is_ok());
        assert!("LDAPS://dc1".parse::<LdapUrl>().unwrap().is_ldaps());
        for bad in ["http://x", "dc1:389", "ldap://", "ldap://:389", "ldap:///dc=x"] {
            assert!(bad.parse::<LdapUrl>().is_err(), "{bad}");
        }
        let err = LdapSettings::from_table(table("urls = [\"http://x\"]\nuser_search_base = \"dc=x\""))
            .unwrap_err();
        assert_eq!(err.key(), Some("urls[0]"), "{err}");
        let err = LdapSettings::from_table(table("user_search_base = \"dc=x\"")).unwrap_err();
        assert_eq!(err.key(), Some("urls"), "{err}");
    }

    #[test]
    fn defaults_and_durations() {
        let s = LdapSettings::from_table(table("urls = [\"ldaps://x\"]\noperation_timeout = \"PT2.5S\""))
            .unwrap();
        assert_eq!(s.operation_timeout, Duration::from_millis(2500));
        assert_eq!(s.connect_timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.user_search_filter, DEFAULT_USER_SEARCH_FILTER);
        assert_eq!(s.pool_size, DEFAULT_POOL_SIZE);
        let err = LdapSettings::from_table(table("urls = [\"ldaps://x\"]\nuser_serch_base = \"dc=x\""))
            .unwrap_err();
        assert_eq!(err.key(), Some("user_serch_base"), "{err}");
        assert!(LdapSettings::keys().contains(&"bind_password"));
        assert!(!LdapSettings::keys().contains(&"ca_pem"));
    }
}
