//! The serde configuration of the SAML module: `[modules.<id>] type = "saml"`.
//! Every key is described in `docs/modules/saml.md`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{SamlModule, SamlModuleBuilder};
use crate::iso8601::IsoDuration;
use crate::settings::name_or_default;
use crate::{ConfigError, SecretSource};

/// The settings of one SAML 2.0 service provider, as written in configuration.
///
/// ```toml
/// [modules.corp-saml]
/// type = "saml"
/// sp_entity_id = "https://intranet.example.org/saml"
/// acs_url = "https://intranet.example.org/saml/acs"
/// idp_metadata_file = "/etc/intranet/idp-metadata.xml"
/// groups_attribute = "memberOf"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlConfig {
    /// This SP's entity id (the Audience of accepted assertions).
    pub sp_entity_id: String,
    /// This SP's assertion consumer service URL (HTTP-POST): the Destination and
    /// Recipient of accepted responses.
    pub acs_url: String,
    /// The IdP's metadata file.
    #[serde(default)]
    pub idp_metadata_file: Option<PathBuf>,
    /// The IdP's metadata, inline.
    #[serde(default)]
    pub idp_metadata_xml: Option<String>,
    /// The IdP's entity id: required without metadata; with metadata, picks the
    /// IdP out of an `EntitiesDescriptor`.
    #[serde(default)]
    pub idp_entity_id: Option<String>,
    /// The IdP's HTTP-Redirect SSO URL (without metadata).
    #[serde(default)]
    pub idp_sso_url: Option<String>,
    /// PEM files of IdP signing certificates (without metadata, or added to it).
    #[serde(default)]
    pub idp_certificate_files: Vec<PathBuf>,
    /// The SP's private key, PEM (`{ file = "..." }`, `{ env = "..." }` or inline).
    #[serde(default)]
    pub sp_key: Option<SecretSource>,
    /// The SP's certificate (PEM file), published in the SP metadata.
    #[serde(default)]
    pub sp_certificate_file: Option<PathBuf>,
    /// Sign AuthnRequests. Default: when `sp_key` is set.
    #[serde(default)]
    pub sign_authn_requests: Option<bool>,
    /// NameID format to ask for (a URI, or `unspecified`, `emailAddress`,
    /// `persistent`, `transient`). Default: none, the IdP chooses.
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// Ask for a fresh authentication (`ForceAuthn`). Default `false`.
    #[serde(default)]
    pub force_authn: bool,
    /// Require the assertion to be signed. Default `true`.
    #[serde(default = "crate::settings::yes")]
    pub require_signed_assertions: bool,
    /// Require the `Response` element to be signed. Default `false`.
    #[serde(default)]
    pub require_signed_messages: bool,
    /// Accepted signature algorithms. Default: `rsa-sha256`, `rsa-sha384`,
    /// `rsa-sha512`, `ecdsa-sha256`, `ecdsa-sha384`, `ecdsa-sha512`.
    #[serde(default)]
    pub signature_algorithms: Option<Vec<String>>,
    /// Also accept RSA-SHA1 and SHA-1 digests. Default `false`; logged loudly.
    #[serde(default)]
    pub insecure_allow_sha1: bool,
    /// Clock skew on NotBefore / NotOnOrAfter (ISO 8601, default `PT60S`, at most `PT10M`).
    #[serde(default)]
    pub clock_skew: Option<IsoDuration>,
    /// Accept IdP-initiated (unsolicited) responses. Default `false`.
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// The attribute (Name or FriendlyName) holding the login name. Default
    /// `uid`; `""`: the NameID.
    #[serde(default)]
    pub login_attribute: Option<String>,
    /// The email attribute. Default `mail`; `""` to ignore.
    #[serde(default)]
    pub email_attribute: Option<String>,
    /// The display-name attribute. Default `displayName`; `""` to ignore.
    #[serde(default)]
    pub display_name_attribute: Option<String>,
    /// The groups attribute. Default `isMemberOf`; `""` for no groups.
    #[serde(default)]
    pub groups_attribute: Option<String>,
    /// How long a started login may take (ISO 8601, default `PT10M`).
    #[serde(default)]
    pub flow_ttl: Option<IsoDuration>,
    /// Absolute return-to URL prefixes accepted besides relative paths.
    #[serde(default)]
    pub return_to_allowed: Vec<String>,
    /// Largest decoded `SAMLResponse`, in bytes. Default 262144.
    #[serde(default)]
    pub max_response_bytes: Option<usize>,
}

impl SamlModule {
    /// Builds the module `id` from its configuration; errors name the key
    /// (`modules.<id>.<field>`). Files and secrets are read here.
    pub fn from_config(id: &str, cfg: &SamlConfig) -> Result<SamlModule, ConfigError> {
        cfg.builder(id)?.build()
    }
}

impl SamlConfig {
    /// The builder this configuration describes (to adjust in code before `build`).
    pub fn builder(&self, id: &str) -> Result<SamlModuleBuilder, ConfigError> {
        let key = |field: &str| format!("modules.{id}.{field}");
        let mut b = SamlModule::builder(id, &self.sp_entity_id, &self.acs_url)
            .force_authn(self.force_authn)
            .require_signed_assertions(self.require_signed_assertions)
            .require_signed_messages(self.require_signed_messages)
            .insecure_allow_sha1(self.insecure_allow_sha1)
            .allow_idp_initiated(self.allow_idp_initiated)
            .name_id_format(self.name_id_format.clone())
            .login_attribute(name_or_default(
                &self.login_attribute,
                Some(super::DEFAULT_LOGIN_ATTRIBUTE),
            ))
            .email_attribute(name_or_default(
                &self.email_attribute,
                Some(super::DEFAULT_EMAIL_ATTRIBUTE),
            ))
            .display_name_attribute(name_or_default(
                &self.display_name_attribute,
                Some(super::DEFAULT_DISPLAY_NAME_ATTRIBUTE),
            ))
            .groups_attribute(name_or_default(
                &self.groups_attribute,
                Some(super::DEFAULT_GROUPS_ATTRIBUTE),
            ));
        match (&self.idp_metadata_file, &self.idp_metadata_xml) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    key("idp_metadata_xml"),
                    "give `idp_metadata_file` or `idp_metadata_xml`, not both",
                ));
            }
            (Some(path), None) => b = b.idp_metadata_file(path),
            (None, Some(xml)) => b = b.idp_metadata_xml(xml),
            (None, None) => {}
        }
        if let Some(entity_id) = &self.idp_entity_id {
            b = b.idp_entity_id(entity_id);
        }
        if let Some(url) = &self.idp_sso_url {
            b = b.idp_sso_url(url);
        }
        for path in &self.idp_certificate_files {
            b = b.idp_certificate_file(path);
        }
        if let Some(secret) = &self.sp_key {
            b = b.sp_key_pem(secret.resolve(&key("sp_key"))?);
        }
        if let Some(path) = &self.sp_certificate_file {
            b = b.sp_certificate_file(path);
        }
        if let Some(sign) = self.sign_authn_requests {
            b = b.sign_authn_requests(sign);
        }
        if let Some(algorithms) = &self.signature_algorithms {
            b = b.signature_algorithms(algorithms.clone());
        }
        if let Some(d) = self.clock_skew {
            b = b.clock_skew(d.0);
        }
        b.flows.configure(self.flow_ttl, &self.return_to_allowed);
        if let Some(max) = self.max_response_bytes {
            b = b.max_response_bytes(max);
        }
        Ok(b)
    }
}
