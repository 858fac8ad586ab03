//! The settings of the CAS module: what `[modules.<id>] type = "cas"` deserializes
//! into and what [`CasModule::new`](super::CasModule::new) is built from. Every key
//! is described in `docs/modules/cas.md`.

use serde::Deserialize;

use crate::ConfigError;
use crate::flow::{FlowSettings, HttpSettings};
use crate::settings::{self, ModuleSettingsType, ProviderUrl};

/// The settings of one CAS module.
///
/// ```toml
/// [modules.campus]
/// type = "cas"
/// server_url = "https://cas.example.edu/cas"
/// service_url = "https://app.example.edu/auth/callback/campus"
/// groups_attribute = "memberOf"
/// ```
///
/// In code: [`CasSettings::new`] with the two URLs, then assign the fields to
/// change; the flow store is injected in `flow.store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CasSettings {
    /// `server_url` (required): the CAS server's base URL
    /// (`https://cas.example.org/cas`); https, or http on a loopback host only; no
    /// query or fragment.
    pub server_url: ProviderUrl,
    /// `service_url` (required): the host's callback URL, sent as the service;
    /// https, or http on a loopback host only; no fragment.
    pub service_url: ProviderUrl,
    /// `login_path`: the login page, relative to `server_url` (default `/login`).
    #[serde(default = "default_login_path")]
    pub login_path: String,
    /// `validate_path`: the validation endpoint, relative to `server_url` (default
    /// `/p3/serviceValidate`, CAS 3; `/serviceValidate` for CAS 2).
    #[serde(default = "default_validate_path")]
    pub validate_path: String,
    /// `service_param`: the service parameter's name (default `service`).
    #[serde(default = "default_service_param")]
    pub service_param: String,
    /// `ticket_param`: the ticket parameter's name (default `ticket`).
    #[serde(default = "default_ticket_param")]
    pub ticket_param: String,
    /// `flow_param`: the service URL's query parameter carrying the flow state
    /// (default `flow`).
    #[serde(default = "default_flow_param")]
    pub flow_param: String,
    /// `login_attribute`: the attribute giving the login name (default none: the
    /// CAS user).
    #[serde(default, deserialize_with = "settings::optional_name")]
    pub login_attribute: Option<String>,
    /// `email_attribute`: the attribute giving the email address (default
    /// `email`; `""` in TOML, `None` in code: ignored).
    #[serde(
        default = "default_email_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub email_attribute: Option<String>,
    /// `name_attribute`: the attribute giving the display name (default
    /// `displayName`; `""` / `None`: ignored).
    #[serde(
        default = "default_name_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub name_attribute: Option<String>,
    /// `groups_attribute`: the attribute giving the groups, one value each
    /// (default `groups`; `""` / `None`: no groups).
    #[serde(
        default = "default_groups_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub groups_attribute: Option<String>,
    /// `flow_ttl`, `return_to_allowed` and the injected flow store (flat in TOML).
    #[serde(skip)]
    pub flow: FlowSettings,
    /// `http_timeout`, `max_response_bytes` and `ca_file` (flat in TOML).
    #[serde(skip)]
    pub http: HttpSettings,
}

fn default_login_path() -> String {
    super::DEFAULT_LOGIN_PATH.into()
}
fn default_validate_path() -> String {
    super::DEFAULT_VALIDATE_PATH.into()
}
fn default_service_param() -> String {
    "service".into()
}
fn default_ticket_param() -> String {
    "ticket".into()
}
fn default_flow_param() -> String {
    "flow".into()
}
fn default_email_attribute() -> Option<String> {
    Some("email".into())
}
fn default_name_attribute() -> Option<String> {
    Some("displayName".into())
}
fn default_groups_attribute() -> Option<String> {
    Some("groups".into())
}
impl CasSettings {
    /// The CAS server at `server_url` (`https://cas.example.org/cas`) and the host's
    /// callback `service_url` (`https://app.example.org/login/cas/callback`); every
    /// other setting at its default.
    pub fn new(server_url: ProviderUrl, service_url: ProviderUrl) -> Self {
        CasSettings {
            server_url,
            service_url,
            login_path: default_login_path(),
            validate_path: default_validate_path(),
            service_param: default_service_param(),
            ticket_param: default_ticket_param(),
            flow_param: default_flow_param(),
            login_attribute: None,
            email_attribute: default_email_attribute(),
            name_attribute: default_name_attribute(),
            groups_attribute: default_groups_attribute(),
            flow: FlowSettings::default(),
            http: HttpSettings::default(),
        }
    }
}

impl ModuleSettingsType for CasSettings {
    fn from_table(mut table: toml::Table) -> Result<Self, ConfigError> {
        let flow = settings::take_group(&mut table)?;
        let http = settings::take_group(&mut table)?;
        let mut own: CasSettings = settings::take_rest(table)?;
        own.flow = flow;
        own.http = http;
        Ok(own)
    }

    fn keys() -> Vec<&'static str> {
        [
            settings::field_names::<Self>(),
            settings::field_names::<FlowSettings>(),
            settings::field_names::<HttpSettings>(),
        ]
        .concat()
    }
}
