//! The serde configuration of the CAS module: `[modules.<id>] type = "cas"`.
//! Every key is described in `docs/modules/cas.md`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{CasModule, CasModuleBuilder};
use crate::ConfigError;
use crate::iso8601::IsoDuration;
use crate::settings::name_or_default;

/// The settings of one CAS module, as written in configuration.
///
/// ```toml
/// [modules.campus]
/// type = "cas"
/// server_url = "https://cas.example.edu/cas"
/// service_url = "https://app.example.edu/login/campus/callback"
/// groups_attribute = "memberOf"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasConfig {
    /// The CAS server's base URL (`https://cas.example.org/cas`). https, or http on a
    /// loopback host only.
    pub server_url: String,
    /// The host's callback URL, sent as the service. https, or http on a loopback
    /// host only.
    pub service_url: String,
    /// The login page, relative to `server_url`. Default `/login`.
    #[serde(default)]
    pub login_path: Option<String>,
    /// The validation endpoint, relative to `server_url`. Default
    /// `/p3/serviceValidate` (CAS 3); `/serviceValidate` for CAS 2.
    #[serde(default)]
    pub validate_path: Option<String>,
    /// The service parameter's name. Default `service`.
    #[serde(default)]
    pub service_param: Option<String>,
    /// The ticket parameter's name. Default `ticket`.
    #[serde(default)]
    pub ticket_param: Option<String>,
    /// The service URL's query parameter carrying the flow state. Default `flow`.
    #[serde(default)]
    pub flow_param: Option<String>,
    /// The attribute giving the login name. Default: the CAS user.
    #[serde(default)]
    pub login_attribute: Option<String>,
    /// The attribute giving the email address. Default `email`; `""` to ignore.
    #[serde(default)]
    pub email_attribute: Option<String>,
    /// The attribute giving the display name. Default `displayName`; `""` to ignore.
    #[serde(default)]
    pub name_attribute: Option<String>,
    /// The attribute giving the groups (repeated). Default `groups`; `""` for none.
    #[serde(default)]
    pub groups_attribute: Option<String>,
    /// How long a started login may take (ISO 8601, default `PT10M`).
    #[serde(default)]
    pub flow_ttl: Option<IsoDuration>,
    /// Absolute return-to URL prefixes accepted besides relative paths.
    #[serde(default)]
    pub return_to_allowed: Vec<String>,
    /// Timeout of the validation request (ISO 8601, default `PT10S`).
    #[serde(default)]
    pub http_timeout: Option<IsoDuration>,
    /// Largest validation answer accepted, in bytes. Default 1048576.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
    /// PEM bundle of extra CA certificates for the server's HTTPS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl CasModule {
    /// Builds the module `id` from its configuration; errors name the key
    /// (`modules.<id>.<field>`).
    pub fn from_config(id: &str, cfg: &CasConfig) -> Result<CasModule, ConfigError> {
        cfg.builder(id).build()
    }
}

impl CasConfig {
    /// The builder this configuration describes (to adjust in code before `build`).
    pub fn builder(&self, id: &str) -> CasModuleBuilder {
        let mut b = CasModule::builder(id, &self.server_url, &self.service_url)
            .login_attribute(name_or_default(&self.login_attribute, None))
            .email_attribute(name_or_default(&self.email_attribute, Some("email")))
            .name_attribute(name_or_default(&self.name_attribute, Some("displayName")))
            .groups_attribute(name_or_default(&self.groups_attribute, Some("groups")));
        if let Some(path) = &self.login_path {
            b = b.login_path(path);
        }
        if let Some(path) = &self.validate_path {
            b = b.validate_path(path);
        }
        if let Some(name) = &self.service_param {
            b = b.service_param(name);
        }
        if let Some(name) = &self.ticket_param {
            b = b.ticket_param(name);
        }
        if let Some(name) = &self.flow_param {
            b = b.flow_param(name);
        }
        b.flows.configure(self.flow_ttl, &self.return_to_allowed);
        b.http.configure(
            self.http_timeout,
            self.max_response_bytes,
            self.ca_file.as_deref(),
        );
        b
    }
}
