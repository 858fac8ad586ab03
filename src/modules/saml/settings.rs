//! The settings of the SAML module: what `[modules.<id>] type = "saml"`
//! deserializes into and what [`SamlModule::new`](super::SamlModule::new) is built
//! from. Every key is described in `docs/modules/saml.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{DEFAULT_CLOCK_SKEW, DEFAULT_MAX_RESPONSE_BYTES, SignatureAlgorithm};
use crate::flow::{FlowSettings, ReplayCache};
use crate::settings::{self, ModuleSettingsType, ProviderUrl};
use crate::{ConfigError, SecretSource};

/// The settings of one SAML 2.0 service provider.
///
/// ```toml
/// [modules.corp-saml]
/// type = "saml"
/// sp_entity_id = "https://intranet.example.org/saml"
/// acs_url = "https://intranet.example.org/auth/callback/corp-saml"
/// idp_metadata_file = "/etc/intranet/idp-metadata.xml"
/// groups_attribute = "memberOf"
/// ```
///
/// In code: [`SamlSettings::new`] with the SP's entity id and ACS URL, then assign
/// the fields to change (the IdP at least); the flow store and the replay cache
/// are injected in `flow.store` and `replay`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SamlSettings {
    /// `sp_entity_id` (required): this SP's entity id, the Audience accepted
    /// assertions must name.
    pub sp_entity_id: EntityId,
    /// `acs_url` (required): this SP's assertion consumer service URL
    /// (HTTP-POST), the Destination and Recipient of accepted responses; https, or
    /// http on a loopback host only.
    pub acs_url: ProviderUrl,
    /// `idp_metadata_file`: the IdP's metadata file (default none), read by
    /// [`SamlModule::new`](super::SamlModule::new).
    #[serde(default)]
    pub idp_metadata_file: Option<PathBuf>,
    /// `idp_metadata_xml`: the IdP's metadata, inline (default none; not with
    /// `idp_metadata_file`).
    #[serde(default)]
    pub idp_metadata_xml: Option<String>,
    /// `idp_metadata_url`: where the IdP's metadata is fetched from (default
    /// none; https, or http on loopback; not with `idp_metadata_file` or
    /// `idp_metadata_xml`; needs `idp_entity_id`). Fetched at the first login,
    /// refreshed every `idp_metadata_refresh` and after a signature failure.
    #[serde(default)]
    pub idp_metadata_url: Option<ProviderUrl>,
    /// `idp_metadata_refresh`: how old fetched metadata may get before the next
    /// login fetches it again (ISO 8601 in TOML, default `PT1H`).
    #[serde(
        default = "default_metadata_refresh",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub idp_metadata_refresh: Duration,
    /// `idp_metadata_min_refetch`: least time between two fetches, whatever asks
    /// for them (ISO 8601 in TOML, default `PT5M`).
    #[serde(
        default = "default_metadata_min_refetch",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub idp_metadata_min_refetch: Duration,
    /// `idp_metadata_timeout`: timeout of a metadata request, connect and whole
    /// (ISO 8601 in TOML, default `PT10S`).
    #[serde(
        default = "default_metadata_timeout",
        deserialize_with = "crate::iso8601::duration"
    )]
    pub idp_metadata_timeout: Duration,
    /// `idp_metadata_max_bytes`: largest metadata document fetched (default
    /// 1048576; at least 1024).
    #[serde(default = "default_metadata_max_bytes")]
    pub idp_metadata_max_bytes: usize,
    /// `idp_metadata_ca_file`: PEM bundle of extra CA certificates trusted for the
    /// metadata URL's HTTPS (default: the built-in web roots only).
    #[serde(default)]
    pub idp_metadata_ca_file: Option<PathBuf>,
    /// `idp_metadata_signing_certificate_file`: the metadata must carry an
    /// enveloped signature on its root element that verifies against this
    /// certificate (PEM; default none: the metadata is trusted as configured or
    /// fetched). In TOML a file path; in code [`PemSource::Text`].
    #[serde(default)]
    pub idp_metadata_signing_certificate_file: Option<PemSource>,
    /// `idp_entity_id`: the IdP's entity id (default: from metadata). Required
    /// without metadata and with `idp_metadata_url`; with metadata it picks the
    /// IdP out of an `EntitiesDescriptor` and must match.
    #[serde(default)]
    pub idp_entity_id: Option<EntityId>,
    /// `idp_sso_url`: the IdP's HTTP-Redirect SSO URL, without metadata (default:
    /// from metadata).
    #[serde(default)]
    pub idp_sso_url: Option<ProviderUrl>,
    /// `idp_slo_url`: the IdP's HTTP-Redirect single logout URL (default: the
    /// metadata's `SingleLogoutService`; none: no single logout).
    #[serde(default)]
    pub idp_slo_url: Option<ProviderUrl>,
    /// `idp_certificate_files`: IdP signing certificates, PEM (default none):
    /// without metadata, or added to it (a key rollover). In TOML each is a file
    /// path; in code [`PemSource::Text`] holds the PEM itself.
    #[serde(default)]
    pub idp_certificate_files: Vec<PemSource>,
    /// `sp_key`: the SP's private key, PEM, RSA or EC (default none): `{ file =
    /// "..." }`, `{ env = "..." }` or inline. Signs AuthnRequests.
    #[serde(default)]
    pub sp_key: Option<SecretSource>,
    /// `sp_certificate_file`: the SP's certificate, PEM, published in the SP
    /// metadata (default none; required with `sp_key`, and must belong to it). In
    /// TOML a file path; in code [`PemSource::Text`] holds the PEM itself.
    #[serde(default)]
    pub sp_certificate_file: Option<PemSource>,
    /// `sp_decryption_key`: the SP's RSA private key, PEM, that encrypted
    /// assertions are decrypted with (default none: an `EncryptedAssertion` is
    /// refused): `{ file = "..." }`, `{ env = "..." }` or inline. May be `sp_key`'s
    /// key or another one.
    #[serde(default)]
    pub sp_decryption_key: Option<SecretSource>,
    /// `sp_encryption_certificate_file`: the certificate of `sp_decryption_key`,
    /// PEM, published in the SP metadata as the encryption key (`KeyDescriptor
    /// use="encryption"`; required with `sp_decryption_key`, and must belong to
    /// it). In TOML a file path; in code [`PemSource::Text`] holds the PEM itself.
    #[serde(default)]
    pub sp_encryption_certificate_file: Option<PemSource>,
    /// `require_encrypted_assertions`: refuse an assertion that arrives in the
    /// clear (default `false`; needs `sp_decryption_key`).
    #[serde(default)]
    pub require_encrypted_assertions: bool,
    /// `insecure_allow_3des`: also decrypt assertions encrypted with 3DES-CBC
    /// (default `false`: only AES-CBC and AES-GCM; logged loudly).
    #[serde(default)]
    pub insecure_allow_3des: bool,
    /// `sign_authn_requests`: sign AuthnRequests (default `None`: when `sp_key` is
    /// set).
    #[serde(default)]
    pub sign_authn_requests: Option<bool>,
    /// `name_id_format`: the NameID format to ask for, a URI or `unspecified`,
    /// `emailAddress`, `persistent`, `transient` (default none: the IdP chooses).
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// `force_authn`: ask for a fresh authentication at every login (`ForceAuthn`,
    /// default `false`).
    #[serde(default)]
    pub force_authn: bool,
    /// `require_signed_assertions`: the assertion must carry its own signature
    /// (default `true`).
    #[serde(default = "crate::settings::yes")]
    pub require_signed_assertions: bool,
    /// `require_signed_messages`: the `Response` element must be signed (default
    /// `false`; at least one of the two is always required).
    #[serde(default)]
    pub require_signed_messages: bool,
    /// `signature_algorithms`: accepted signature algorithms by name (default: all
    /// of [`SignatureAlgorithm::NAMES`]); `rsa-sha1` cannot be listed.
    #[serde(default = "default_signature_algorithms")]
    pub signature_algorithms: Vec<String>,
    /// `insecure_allow_sha1`: also accept RSA-SHA1 signatures and SHA-1 digests
    /// (default `false`; logged loudly).
    #[serde(default)]
    pub insecure_allow_sha1: bool,
    /// `clock_skew`: skew allowed on every time check (ISO 8601 in TOML, default
    /// `PT60S`, at most `PT10M`).
    #[serde(default = "default_clock_skew", deserialize_with = "crate::iso8601::duration")]
    pub clock_skew: Duration,
    /// `allow_idp_initiated`: accept IdP-initiated (unsolicited) responses
    /// (default `false`). They are not bound to a browser.
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// `login_attribute`: the attribute (`Name` or `FriendlyName`) holding the
    /// login name (default `uid`; `""` in TOML, `None` in code: the NameID).
    #[serde(
        default = "default_login_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub login_attribute: Option<String>,
    /// `email_attribute`: the email attribute (default `mail`; `""` / `None`:
    /// ignored).
    #[serde(
        default = "default_email_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub email_attribute: Option<String>,
    /// `display_name_attribute`: the display-name attribute (default
    /// `displayName`; `""` / `None`: ignored).
    #[serde(
        default = "default_display_name_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub display_name_attribute: Option<String>,
    /// `groups_attribute`: the groups attribute (default `isMemberOf`; `""` /
    /// `None`: no groups).
    #[serde(
        default = "default_groups_attribute",
        deserialize_with = "settings::optional_name"
    )]
    pub groups_attribute: Option<String>,
    /// `flow_ttl`, `return_to_allowed` and the injected flow store (flat in TOML).
    #[serde(skip)]
    pub flow: FlowSettings,
    /// Where accepted assertion ids are remembered (default: a
    /// [`MemoryReplayCache`](crate::flow::MemoryReplayCache) of this module). Not
    /// read from TOML: the host injects it. A field here, like `flow.store`, rather
    /// than an argument of `new`: both are runtime dependencies the host shares
    /// between instances, and a configured module gets the same default for both.
    #[serde(skip)]
    pub replay: Option<Arc<dyn ReplayCache>>,
    /// `max_response_bytes`: largest decoded `SAMLResponse` accepted (default
    /// 262144; at least 1024).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

fn default_signature_algorithms() -> Vec<String> {
    SignatureAlgorithm::NAMES.iter().map(|s| s.to_string()).collect()
}
fn default_clock_skew() -> Duration {
    DEFAULT_CLOCK_SKEW
}
fn default_login_attribute() -> Option<String> {
    Some(super::DEFAULT_LOGIN_ATTRIBUTE.into())
}
fn default_email_attribute() -> Option<String> {
    Some(super::DEFAULT_EMAIL_ATTRIBUTE.into())
}
fn default_display_name_attribute() -> Option<String> {
    Some(super::DEFAULT_DISPLAY_NAME_ATTRIBUTE.into())
}
fn default_groups_attribute() -> Option<String> {
    Some(super::DEFAULT_GROUPS_ATTRIBUTE.into())
}
fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn default_metadata_refresh() -> Duration {
    super::DEFAULT_METADATA_REFRESH
}
fn default_metadata_min_refetch() -> Duration {
    super::DEFAULT_METADATA_MIN_REFETCH
}
fn default_metadata_timeout() -> Duration {
    super::DEFAULT_METADATA_TIMEOUT
}
fn default_metadata_max_bytes() -> usize {
    super::DEFAULT_METADATA_MAX_BYTES
}

impl SamlSettings {
    /// A service provider called `sp_entity_id` whose assertion consumer service
    /// (HTTP-POST) is `acs_url`; every other setting at its default. The IdP is
    /// still to be given (metadata, or SSO URL, entity id and certificate).
    pub fn new(sp_entity_id: EntityId, acs_url: ProviderUrl) -> Self {
        SamlSettings {
            sp_entity_id,
            acs_url,
            idp_metadata_file: None,
            idp_metadata_xml: None,
            idp_metadata_url: None,
            idp_metadata_refresh: default_metadata_refresh(),
            idp_metadata_min_refetch: default_metadata_min_refetch(),
            idp_metadata_timeout: default_metadata_timeout(),
            idp_metadata_max_bytes: default_metadata_max_bytes(),
            idp_metadata_ca_file: None,
            idp_metadata_signing_certificate_file: None,
            idp_entity_id: None,
            idp_sso_url: None,
            idp_slo_url: None,
            idp_certificate_files: Vec::new(),
            sp_key: None,
            sp_certificate_file: None,
            sp_decryption_key: None,
            sp_encryption_certificate_file: None,
            require_encrypted_assertions: false,
            insecure_allow_3des: false,
            sign_authn_requests: None,
            name_id_format: None,
            force_authn: false,
            require_signed_assertions: true,
            require_signed_messages: false,
            signature_algorithms: default_signature_algorithms(),
            insecure_allow_sha1: false,
            clock_skew: default_clock_skew(),
            allow_idp_initiated: false,
            login_attribute: default_login_attribute(),
            email_attribute: default_email_attribute(),
            display_name_attribute: default_display_name_attribute(),
            groups_attribute: default_groups_attribute(),
            flow: FlowSettings::default(),
            replay: None,
            max_response_bytes: default_max_response_bytes(),
        }
    }
}

impl ModuleSettingsType for SamlSettings {
    fn from_table(mut table: toml::Table) -> Result<Self, ConfigError> {
        let flow = settings::take_group(&mut table)?;
        let mut own: SamlSettings = settings::take_rest(table)?;
        own.flow = flow;
        Ok(own)
    }

    fn keys() -> Vec<&'static str> {
        [
            settings::field_names::<Self>(),
            settings::field_names::<FlowSettings>(),
        ]
        .concat()
    }
}

/// A SAML entity id (of this SP or of the IdP): not blank. Usually a URL, but
/// SAML allows any URI, so only emptiness is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityId(String);

impl EntityId {
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EntityId {
    type Err = ConfigError;

    /// Errors carry no key (`ConfigError::key()` is `""`): the caller knows it.
    fn from_str(value: &str) -> Result<Self, ConfigError> {
        if value.trim().is_empty() {
            return Err(ConfigError::invalid("", "must not be empty"));
        }
        Ok(EntityId(value.to_owned()))
    }
}

impl std::fmt::Display for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| match e {
            ConfigError::Invalid { message, .. } => serde::de::Error::custom(message),
            other => serde::de::Error::custom(other),
        })
    }
}

/// A PEM certificate, read from a file by [`SamlModule::new`](super::SamlModule::new)
/// or given as text. In TOML it is always a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemSource {
    /// A PEM file.
    File(PathBuf),
    /// The PEM text itself.
    Text(String),
}

impl PemSource {
    /// The PEM text (a file is read now); `key` names the setting in errors.
    pub(crate) fn load(&self, key: &str) -> Result<String, ConfigError> {
        match self {
            PemSource::Text(text) => Ok(text.clone()),
            PemSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::io(key, path, source))
            }
        }
    }
}

impl<'de> Deserialize<'de> for PemSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PathBuf::deserialize(deserializer).map(PemSource::File)
    }
}
