//! The settings of the trusted-header module (`type = "header"`).

use std::num::NonZeroUsize;

use http::HeaderName;
use serde::{Deserialize, Deserializer};

use crate::ConfigError;
use crate::net::ProxyNet;
use crate::settings::{ModuleSettingsType, field_names, take_rest};

/// Default principal header.
pub const DEFAULT_PRINCIPAL_HEADER: &str = "remote-user";
/// Default groups header.
pub const DEFAULT_GROUPS_HEADER: &str = "remote-groups";
/// Default maximum length of a principal, in bytes.
pub const DEFAULT_MAX_PRINCIPAL_BYTES: usize = 256;

/// What a `type = "header"` table holds; [`HeaderModule`](super::HeaderModule) is
/// built from it. Header names are checked as they are read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HeaderSettings {
    /// `trusted_proxies`: the proxies whose headers are believed (CIDRs or
    /// addresses). Unset in TOML: the chain's top-level `trusted_proxies`; unset
    /// in code: nobody.
    pub trusted_proxies: Option<Vec<ProxyNet>>,
    /// `insecure_trust_any_peer` (default `false`): believe ANY peer. For tests
    /// only; cannot be combined with `trusted_proxies`.
    pub insecure_trust_any_peer: bool,
    /// `principal_header` (default `remote-user`): the header naming the user.
    #[serde(deserialize_with = "header_name")]
    pub principal_header: HeaderName,
    /// `groups_header` (default `remote-groups`; `""` for none): the header
    /// listing the user's groups.
    #[serde(deserialize_with = "optional_header_name")]
    pub groups_header: Option<HeaderName>,
    /// `email_header` (default none): the header carrying the email address.
    #[serde(deserialize_with = "optional_header_name")]
    pub email_header: Option<HeaderName>,
    /// `name_header` (default none): the header carrying the display name.
    #[serde(deserialize_with = "optional_header_name")]
    pub name_header: Option<HeaderName>,
    /// `group_separator` (default `,`, not empty): what separates groups.
    pub group_separator: String,
    /// `fail_if_missing` (default `false`): reject, instead of abstaining, when
    /// the principal header is missing or the peer is not a trusted proxy.
    pub fail_if_missing: bool,
    /// `max_principal_bytes` (default 256, at least 1): the longest principal.
    pub max_principal_bytes: NonZeroUsize,
    /// `strip_realm` (default `false`): `alice@EXAMPLE.ORG` → `alice`.
    pub strip_realm: bool,
    /// `lowercase` (default `false`): lower-case the principal.
    pub lowercase: bool,
}

impl Default for HeaderSettings {
    fn default() -> Self {
        HeaderSettings {
            trusted_proxies: None,
            insecure_trust_any_peer: false,
            principal_header: HeaderName::from_static(DEFAULT_PRINCIPAL_HEADER),
            groups_header: Some(HeaderName::from_static(DEFAULT_GROUPS_HEADER)),
            email_header: None,
            name_header: None,
            group_separator: ",".into(),
            fail_if_missing: false,
            max_principal_bytes: NonZeroUsize::new(DEFAULT_MAX_PRINCIPAL_BYTES).unwrap_or(NonZeroUsize::MIN),
            strip_realm: false,
            lowercase: false,
        }
    }
}

impl HeaderSettings {
    /// Checks what the types do not: errors name the key.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.group_separator.is_empty() {
            return Err(ConfigError::invalid("group_separator", "must not be empty"));
        }
        if self.insecure_trust_any_peer && self.trusted_proxies.is_some() {
            return Err(ConfigError::invalid(
                "insecure_trust_any_peer",
                "cannot be combined with trusted_proxies",
            ));
        }
        Ok(())
    }
}

impl ModuleSettingsType for HeaderSettings {
    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        take_rest(table)
    }

    fn keys() -> Vec<&'static str> {
        field_names::<Self>().to_vec()
    }
}

/// A header name, checked.
pub(crate) fn parse_header_name(value: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(value.as_bytes()).map_err(|_| format!("{value:?} is not a valid header name"))
}

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderName, D::Error> {
    parse_header_name(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

/// `""` means "no such header".
fn optional_header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<HeaderName>, D::Error> {
    let name = String::deserialize(deserializer)?;
    if name.is_empty() {
        return Ok(None);
    }
    parse_header_name(&name)
        .map(Some)
        .map_err(serde::de::Error::custom)
}
