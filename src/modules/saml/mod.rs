//! SAML 2.0 service provider: SP-initiated login by HTTP-Redirect (optionally
//! signed), the assertion consumer service by HTTP-POST, SP metadata.
//!
//! * `start` sends an `AuthnRequest` (deflate + base64 in the query, signed with
//!   the SP key when configured) whose `RelayState` is the one-time flow state; the
//!   request id is kept in the flow.
//! * `callback` reads the posted `SAMLResponse`, consumes the flow named by
//!   `RelayState` (cookie-bound, once), and accepts the response only when its
//!   signature verifies against the *configured* IdP certificates (xmlsec through
//!   samael; `KeyInfo` in the message is ignored), Destination, Recipient,
//!   Audience and InResponseTo match, it is within NotBefore / NotOnOrAfter (with
//!   clock skew), its status is Success, it holds exactly one assertion, and that
//!   assertion's id was never accepted before (the replay cache).
//! * The identity is read only from the bytes the verified signature covers.
//!   See [`response`](self) internals and `docs/modules/saml.md` for what is
//!   checked where.
//! * An IdP configuration without a signing certificate is refused when the module
//!   is built (samael would accept unsigned responses), and the `saml` feature
//!   always builds samael with xmlsec (its other build skips verification).
//!
//! samael's and libxml's values are not `Send`: all of that work happens in
//! synchronous functions that answer our own types.

mod config;
mod idp;
mod metadata;
mod response;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openssl::pkey::{PKey, Private};
use samael::metadata::HTTP_POST_BINDING;
use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
use tracing::warn;

pub use config::SamlConfig;
pub use response::{
    Mismatch, SamlAssertion, SamlAttribute, SamlError, SignatureAlgorithm, SignedPart, TimeLimit,
};

use crate::audit::AUDIT_TARGET;
use crate::error::{OtherError, RequestError};
use crate::flow::{CookieAttributes, SameSite};
use crate::flow::{
    FlowError, FlowSettings, Flows, MemoryReplayCache, ReplayCache, ReplayError, check_url,
    flow_builder_methods, random_token, redirect_authenticator,
};
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Prompt, Redirect, SecretString};
use idp::IdpSettings;
use response::{Algorithms, Expectations};

/// Default allowed clock skew for NotBefore / NotOnOrAfter.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Default cap on a decoded `SAMLResponse`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Default attribute read for the login name (matched against `Name` and `FriendlyName`).
pub const DEFAULT_LOGIN_ATTRIBUTE: &str = "uid";
/// Default email attribute.
pub const DEFAULT_EMAIL_ATTRIBUTE: &str = "mail";
/// Default display-name attribute.
pub const DEFAULT_DISPLAY_NAME_ATTRIBUTE: &str = "displayName";
/// Default groups attribute.
pub const DEFAULT_GROUPS_ATTRIBUTE: &str = "isMemberOf";

/// The NameID formats that may be named by their short name in configuration.
const NAME_ID_FORMATS: &[(&str, &str)] = &[
    (
        "unspecified",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ),
    (
        "emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    ),
    (
        "persistent",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    ),
    ("transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"),
];

/// Which attributes become which parts of the [`Identity`]; each name is matched
/// against an attribute's `Name` and its `FriendlyName`.
#[derive(Debug, Clone)]
struct AttributeNames {
    login: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
    groups: Option<String>,
}

/// The SAML 2.0 service-provider module. Build it with [`SamlModule::builder`] or
/// [`SamlModule::from_config`].
pub struct SamlModule {
    id: String,
    acs: Arc<AcsPolicy>,
    signing_key: Option<PKey<Private>>,
    name_id_format: Option<String>,
    force_authn: bool,
    allow_idp_initiated: bool,
    attributes: AttributeNames,
    flows: Flows,
    replay: Arc<dyn ReplayCache>,
    max_response_bytes: usize,
    sp_metadata: String,
}

impl std::fmt::Debug for SamlModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlModule")
            .field("id", &self.id)
            .field("sp_entity_id", &self.acs.sp_entity_id)
            .field("acs_url", &self.acs.acs_url)
            .field("idp_entity_id", &self.acs.idp.entity_id)
            .field("signs_requests", &self.signing_key.is_some())
            .finish_non_exhaustive()
    }
}

/// What the ACS checks a response against. Shared, so that a check can run on a
/// blocking thread.
#[derive(Debug)]
struct AcsPolicy {
    sp_entity_id: String,
    acs_url: String,
    idp: IdpSettings,
    require_signed_assertions: bool,
    require_signed_messages: bool,
    algorithms: Algorithms,
    clock_skew: Duration,
}

impl AcsPolicy {
    fn verify(
        &self,
        xml: &str,
        in_response_to: Option<&str>,
        now: SystemTime,
    ) -> Result<SamlAssertion, SamlError> {
        response::verify(
            xml,
            &Expectations {
                sp_entity_id: &self.sp_entity_id,
                acs_url: &self.acs_url,
                idp_entity_id: &self.idp.entity_id,
                certificates: &self.idp.certificates,
                algorithms: &self.algorithms,
                require_signed_assertions: self.require_signed_assertions,
                require_signed_messages: self.require_signed_messages,
                in_response_to,
                clock_skew: self.clock_skew,
                now,
            },
        )
    }
}

/// Text (PEM, metadata XML) given inline or by file (read when the module is built).
#[derive(Debug, Clone)]
enum Source {
    Text(String),
    File(PathBuf),
}

impl Source {
    fn load(&self) -> Result<String, ConfigError> {
        match self {
            Source::Text(text) => Ok(text.clone()),
            Source::File(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// Builds a [`SamlModule`].
#[derive(Debug, Clone)]
pub struct SamlModuleBuilder {
    id: String,
    sp_entity_id: String,
    acs_url: String,
    idp_metadata: Option<Source>,
    idp_entity_id: Option<String>,
    idp_sso_url: Option<String>,
    idp_certificates: Vec<Source>,
    sp_key: Option<SecretString>,
    sp_certificate: Option<Source>,
    sign_authn_requests: Option<bool>,
    name_id_format: Option<String>,
    force_authn: bool,
    require_signed_assertions: bool,
    require_signed_messages: bool,
    signature_algorithms: Vec<String>,
    insecure_allow_sha1: bool,
    clock_skew: Duration,
    allow_idp_initiated: bool,
    login_attribute: Option<String>,
    email_attribute: Option<String>,
    display_name_attribute: Option<String>,
    groups_attribute: Option<String>,
    flows: FlowSettings,
    replay_cache: Option<Arc<dyn ReplayCache>>,
    max_response_bytes: usize,
}

impl SamlModuleBuilder {
    /// The IdP's metadata XML (an `EntityDescriptor`, or an `EntitiesDescriptor`
    /// with `idp_entity_id` picking the IdP): entity id, HTTP-Redirect SSO URL and
    /// signing certificates.
    pub fn idp_metadata_xml(mut self, xml: impl Into<String>) -> Self {
        self.idp_metadata = Some(Source::Text(xml.into()));
        self
    }

    /// The IdP's metadata from a file (read by [`build`](Self::build)).
    pub fn idp_metadata_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.idp_metadata = Some(Source::File(path.into()));
        self
    }

    /// The IdP's entity id: required without metadata; with metadata, picks the
    /// IdP out of an `EntitiesDescriptor` (and must match).
    pub fn idp_entity_id(mut self, entity_id: impl Into<String>) -> Self {
        self.idp_entity_id = Some(entity_id.into());
        self
    }

    /// The IdP's HTTP-Redirect single sign-on URL (without metadata).
    pub fn idp_sso_url(mut self, url: impl Into<String>) -> Self {
        self.idp_sso_url = Some(url.into());
        self
    }

    /// An IdP signing certificate, PEM (repeatable; added to those in metadata,
    /// for instance during a key rollover).
    pub fn idp_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.idp_certificates.push(Source::Text(pem.into()));
        self
    }

    /// An IdP signing certificate from a PEM file (read by [`build`](Self::build)).
    pub fn idp_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.idp_certificates.push(Source::File(path.into()));
        self
    }

    /// The SP's private key, PEM (RSA or EC), for signed AuthnRequests.
    pub fn sp_key_pem(mut self, pem: impl Into<SecretString>) -> Self {
        self.sp_key = Some(pem.into());
        self
    }

    /// The SP's certificate, PEM, published in the SP metadata (required with a key).
    pub fn sp_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.sp_certificate = Some(Source::Text(pem.into()));
        self
    }

    /// The SP's certificate from a PEM file.
    pub fn sp_certificate_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sp_certificate = Some(Source::File(path.into()));
        self
    }

    /// Sign AuthnRequests (default: when an SP key is configured).
    pub fn sign_authn_requests(mut self, yes: bool) -> Self {
        self.sign_authn_requests = Some(yes);
        self
    }

    /// The NameID format to ask for: a URI, or `unspecified`, `emailAddress`,
    /// `persistent`, `transient`. Default: none (the IdP chooses).
    pub fn name_id_format(mut self, format: Option<String>) -> Self {
        self.name_id_format = format;
        self
    }

    /// Ask the IdP to authenticate the user again even with a session (`ForceAuthn`).
    pub fn force_authn(mut self, yes: bool) -> Self {
        self.force_authn = yes;
        self
    }

    /// Require the assertion itself to be signed (default `true`).
    pub fn require_signed_assertions(mut self, yes: bool) -> Self {
        self.require_signed_assertions = yes;
        self
    }

    /// Require the `Response` element to be signed (default `false`; at least one
    /// of the two is always required).
    pub fn require_signed_messages(mut self, yes: bool) -> Self {
        self.require_signed_messages = yes;
        self
    }

    /// Signature algorithms accepted (default: all of [`SignatureAlgorithm::NAMES`]).
    pub fn signature_algorithms<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.signature_algorithms = names.into_iter().map(Into::into).collect();
        self
    }

    /// Also accept RSA-SHA1 signatures and SHA-1 digests. SHA-1 is broken for
    /// collision resistance; only for IdPs that cannot do better. Logged loudly.
    pub fn insecure_allow_sha1(mut self, yes: bool) -> Self {
        self.insecure_allow_sha1 = yes;
        self
    }

    /// Clock skew allowed on NotBefore / NotOnOrAfter (default 60 s, at most 10 min).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Accept IdP-initiated (unsolicited) responses (default `false`). They are
    /// not bound to a browser: anybody holding such a response can use it once.
    pub fn allow_idp_initiated(mut self, yes: bool) -> Self {
        self.allow_idp_initiated = yes;
        self
    }

    /// The attribute holding the login name (default `uid`; `None`: the NameID).
    pub fn login_attribute(mut self, name: Option<String>) -> Self {
        self.login_attribute = name;
        self
    }

    /// The email attribute (default `mail`; `None` to ignore).
    pub fn email_attribute(mut self, name: Option<String>) -> Self {
        self.email_attribute = name;
        self
    }

    /// The display-name attribute (default `displayName`; `None` to ignore).
    pub fn display_name_attribute(mut self, name: Option<String>) -> Self {
        self.display_name_attribute = name;
        self
    }

    /// The attribute holding the groups (default `isMemberOf`; `None`: no groups).
    pub fn groups_attribute(mut self, name: Option<String>) -> Self {
        self.groups_attribute = name;
        self
    }

    flow_builder_methods!();

    /// Where accepted assertion ids are remembered (default: a
    /// [`MemoryReplayCache`] of this module; share one between instances).
    pub fn replay_cache(mut self, cache: Arc<dyn ReplayCache>) -> Self {
        self.replay_cache = Some(cache);
        self
    }

    /// Largest decoded `SAMLResponse` accepted (default 256 KiB).
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Checks the settings, reads the files, parses metadata, keys and
    /// certificates, and builds the module. Errors name the configuration key.
    pub fn build(self) -> Result<SamlModule, ConfigError> {
        let id = self.id.clone();
        let key = |field: &str| format!("modules.{id}.{field}");
        let invalid = |field: &str, message: String| ConfigError::invalid(key(field), message);

        if self.sp_entity_id.trim().is_empty() {
            return Err(invalid("sp_entity_id", "must not be empty".into()));
        }
        check_url(&key("acs_url"), &self.acs_url)?;

        let mut idp = match (&self.idp_metadata, &self.idp_sso_url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "idp_sso_url",
                    "give either IdP metadata or `idp_sso_url`, not both".into(),
                ));
            }
            (Some(source), None) => {
                let field = match source {
                    Source::Text(_) => "idp_metadata_xml",
                    Source::File(_) => "idp_metadata_file",
                };
                let idp = idp::from_metadata(&source.load()?, self.idp_entity_id.as_deref(), &key(field))?;
                check_url(&key(field), &idp.sso_url)?;
                idp
            }
            (None, Some(url)) => {
                check_url(&key("idp_sso_url"), url)?;
                let entity_id = self
                    .idp_entity_id
                    .clone()
                    .filter(|e| !e.trim().is_empty())
                    .ok_or_else(|| invalid("idp_entity_id", "is required without IdP metadata".into()))?;
                IdpSettings {
                    entity_id,
                    sso_url: url.clone(),
                    certificates: Vec::new(),
                    wants_signed_requests: false,
                }
            }
            (None, None) => {
                return Err(invalid(
                    "idp_metadata_file",
                    "the IdP is not configured: give its metadata (file or XML) or `idp_sso_url`, \
                     `idp_entity_id` and `idp_certificate_files`"
                        .into(),
                ));
            }
        };
        for pem in &self.idp_certificates {
            idp.certificates.extend(idp::certificates_from_pem(
                &pem.load()?,
                &key("idp_certificate_files"),
            )?);
        }
        if idp.certificates.is_empty() {
            // samael accepts unsigned responses when it knows no IdP certificate.
            let field = match &self.idp_metadata {
                Some(Source::Text(_)) => "idp_metadata_xml",
                Some(Source::File(_)) => "idp_metadata_file",
                None => "idp_certificate_files",
            };
            return Err(invalid(
                field,
                "the IdP has no signing certificate: responses could not be verified".into(),
            ));
        }

        let signing_key = match &self.sp_key {
            Some(pem) => {
                let pkey = PKey::private_key_from_pem(pem.expose().as_bytes())
                    .map_err(|_| invalid("sp_key", "not a PEM private key".into()))?;
                if pkey.rsa().is_err() && pkey.ec_key().is_err() {
                    return Err(invalid("sp_key", "must be an RSA or EC key".into()));
                }
                Some(pkey)
            }
            None => None,
        };
        let sp_certificate = match (&self.sp_certificate, &signing_key) {
            (Some(pem), Some(pkey)) => {
                let field = key("sp_certificate_file");
                let cert = idp::certificates_from_pem(&pem.load()?, &field)?.remove(0);
                let x509 = openssl::x509::X509::from_der(cert.der_data())
                    .map_err(|_| ConfigError::invalid(&field, "not an X.509 certificate"))?;
                let matches = x509
                    .public_key()
                    .map(|public| public.public_eq(pkey))
                    .unwrap_or(false);
                if !matches {
                    return Err(ConfigError::invalid(field, "does not belong to `sp_key`"));
                }
                Some(cert)
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "sp_certificate_file",
                    "is required with `sp_key` (the IdP verifies with it)".into(),
                ));
            }
            (Some(_), None) => {
                return Err(invalid("sp_key", "is required with `sp_certificate_file`".into()));
            }
            (None, None) => None,
        };
        let sign = self.sign_authn_requests.unwrap_or(signing_key.is_some());
        if sign && signing_key.is_none() {
            return Err(invalid("sign_authn_requests", "needs `sp_key`".into()));
        }
        if idp.wants_signed_requests && !sign {
            return Err(invalid(
                "sign_authn_requests",
                "the IdP's metadata asks for signed AuthnRequests (WantAuthnRequestsSigned)".into(),
            ));
        }

        let mut algorithms = Vec::new();
        for name in &self.signature_algorithms {
            if name == "rsa-sha1" {
                return Err(invalid(
                    "signature_algorithms",
                    "`rsa-sha1` is switched on by `insecure_allow_sha1`, not listed".into(),
                ));
            }
            match SignatureAlgorithm::from_name(name) {
                Some(alg) => algorithms.push(alg),
                None => {
                    return Err(invalid(
                        "signature_algorithms",
                        format!(
                            "unsupported algorithm {name:?} (supported: {})",
                            SignatureAlgorithm::NAMES.join(", ")
                        ),
                    ));
                }
            }
        }
        if algorithms.is_empty() {
            return Err(invalid(
                "signature_algorithms",
                "must name at least one algorithm".into(),
            ));
        }
        if self.insecure_allow_sha1 {
            warn!(target: AUDIT_TARGET, module = %self.id,
                "insecure_allow_sha1 is on: RSA-SHA1 signatures and SHA-1 digests are accepted");
            algorithms.push(SignatureAlgorithm::RsaSha1);
        }
        if self.clock_skew > Duration::from_secs(600) {
            return Err(invalid("clock_skew", "must be at most 10 minutes".into()));
        }
        let name_id_format = match self.name_id_format.as_deref() {
            None | Some("") => None,
            Some(format) => match NAME_ID_FORMATS.iter().find(|(short, _)| *short == format) {
                Some((_, uri)) => Some((*uri).to_owned()),
                None if format.starts_with("urn:") => Some(format.to_owned()),
                None => {
                    return Err(invalid(
                        "name_id_format",
                        format!(
                            "{format:?} is neither a URI nor one of unspecified, emailAddress, persistent, transient"
                        ),
                    ));
                }
            },
        };
        for (field, name) in [
            ("login_attribute", &self.login_attribute),
            ("email_attribute", &self.email_attribute),
            ("display_name_attribute", &self.display_name_attribute),
            ("groups_attribute", &self.groups_attribute),
        ] {
            if name.as_deref() == Some("") {
                return Err(invalid(
                    field,
                    "must not be empty (use no attribute instead)".into(),
                ));
            }
        }
        if self.max_response_bytes < 1024 {
            return Err(invalid("max_response_bytes", "must be at least 1024".into()));
        }
        // The IdP posts the response back cross-site: the flow cookie must travel
        // with that POST.
        let flows = self
            .flows
            .build(CookieAttributes::for_callback(&self.acs_url, SameSite::None))
            .map_err(|e| e.rekey(key))?;
        let sp_metadata = metadata::sp_metadata_xml(&metadata::SpDescription {
            entity_id: &self.sp_entity_id,
            acs_url: &self.acs_url,
            certificate: sp_certificate.as_ref(),
            authn_requests_signed: sign,
            want_assertions_signed: self.require_signed_assertions,
            name_id_format: name_id_format.as_deref(),
        })
        .map_err(|e| invalid("sp_entity_id", format!("cannot write the SP metadata: {e}")))?;
        Ok(SamlModule {
            acs: Arc::new(AcsPolicy {
                sp_entity_id: self.sp_entity_id,
                acs_url: self.acs_url,
                idp,
                require_signed_assertions: self.require_signed_assertions,
                require_signed_messages: self.require_signed_messages,
                algorithms: Algorithms::new(&algorithms),
                clock_skew: self.clock_skew,
            }),
            signing_key: signing_key.filter(|_| sign),
            name_id_format,
            force_authn: self.force_authn,
            allow_idp_initiated: self.allow_idp_initiated,
            attributes: AttributeNames {
                login: self.login_attribute,
                email: self.email_attribute,
                display_name: self.display_name_attribute,
                groups: self.groups_attribute,
            },
            flows,
            replay: self
                .replay_cache
                .unwrap_or_else(|| Arc::new(MemoryReplayCache::default())),
            max_response_bytes: self.max_response_bytes,
            sp_metadata,
            id: self.id,
        })
    }
}

impl SamlModule {
    /// A service provider called `sp_entity_id` whose assertion consumer service
    /// (HTTP-POST) is `acs_url`. The IdP is still to be given (metadata, or SSO
    /// URL, entity id and certificate). Defaults: signed assertions required, SHA-2
    /// algorithms only, 60 s clock skew, no IdP-initiated logins.
    pub fn builder(
        id: impl Into<String>,
        sp_entity_id: impl Into<String>,
        acs_url: impl Into<String>,
    ) -> SamlModuleBuilder {
        SamlModuleBuilder {
            id: id.into(),
            sp_entity_id: sp_entity_id.into(),
            acs_url: acs_url.into(),
            idp_metadata: None,
            idp_entity_id: None,
            idp_sso_url: None,
            idp_certificates: Vec::new(),
            sp_key: None,
            sp_certificate: None,
            sign_authn_requests: None,
            name_id_format: None,
            force_authn: false,
            require_signed_assertions: true,
            require_signed_messages: false,
            signature_algorithms: SignatureAlgorithm::NAMES.iter().map(|s| s.to_string()).collect(),
            insecure_allow_sha1: false,
            clock_skew: DEFAULT_CLOCK_SKEW,
            allow_idp_initiated: false,
            login_attribute: Some(DEFAULT_LOGIN_ATTRIBUTE.into()),
            email_attribute: Some(DEFAULT_EMAIL_ATTRIBUTE.into()),
            display_name_attribute: Some(DEFAULT_DISPLAY_NAME_ATTRIBUTE.into()),
            groups_attribute: Some(DEFAULT_GROUPS_ATTRIBUTE.into()),
            flows: FlowSettings::default(),
            replay_cache: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The SP metadata (an `md:EntityDescriptor`) to hand to the IdP administrator:
    /// entity id, the HTTP-POST ACS URL, the signing certificate when one is
    /// configured, `AuthnRequestsSigned` and `WantAssertionsSigned`.
    pub fn sp_metadata_xml(&self) -> &str {
        &self.sp_metadata
    }

    /// The IdP's entity id (every accepted assertion's `Issuer`).
    pub fn idp_entity_id(&self) -> &str {
        &self.acs.idp.entity_id
    }

    /// The IdP's HTTP-Redirect single sign-on URL.
    pub fn idp_sso_url(&self) -> &str {
        &self.acs.idp.sso_url
    }

    /// Verifies a posted `SAMLResponse` (base64, as in the form) at the time `now`:
    /// every check of the callback except the flow (pass the request id it holds,
    /// or `None` for an IdP-initiated response) and the replay cache, which only
    /// [`authenticate`](crate::Authenticator::authenticate) consults. For hosts with
    /// their own ACS handling, tests and benchmarks.
    pub fn verify_response(
        &self,
        saml_response: &str,
        in_response_to: Option<&str>,
        now: SystemTime,
    ) -> Result<SamlAssertion, SamlError> {
        if in_response_to.is_none() && !self.allow_idp_initiated {
            return Err(SamlError::Unsolicited);
        }
        let xml = response::decode(saml_response, self.max_response_bytes)?;
        self.acs.verify(&xml, in_response_to, now)
    }

    /// The identity an assertion proves, named as configured.
    pub fn identity(&self, assertion: &SamlAssertion) -> Identity {
        let first = |name: &Option<String>| {
            name.as_deref()
                .and_then(|n| assertion.attribute(n))
                .and_then(|a| a.values.iter().find(|v| !v.trim().is_empty()))
                .map(|v| v.trim().to_owned())
        };
        let login = first(&self.attributes.login).unwrap_or_else(|| assertion.name_id.clone());
        let mut identity = Identity::new(self.id.clone(), assertion.name_id.clone(), login);
        identity.email = first(&self.attributes.email);
        identity.display_name = first(&self.attributes.display_name);
        if let Some(attribute) = self
            .attributes
            .groups
            .as_deref()
            .and_then(|n| assertion.attribute(n))
        {
            identity.groups = attribute
                .values
                .iter()
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect();
        }
        for attribute in &assertion.attributes {
            identity
                .attributes
                .entry(attribute.name.clone())
                .or_default()
                .extend(attribute.values.iter().cloned());
        }
        // The return-to URL is the flow's alone (`Identity::return_to`): a released
        // attribute must not pose as it.
        identity.attributes.remove("return_to");
        identity
            .attributes
            .insert("issuer".into(), vec![assertion.issuer.clone()]);
        if let Some(format) = &assertion.name_id_format {
            identity
                .attributes
                .insert("name_id_format".into(), vec![format.clone()]);
        }
        if let Some(index) = &assertion.session_index {
            identity
                .attributes
                .insert("session_index".into(), vec![index.clone()]);
        }
        identity
    }

    /// The redirect URL carrying a fresh AuthnRequest (signed when configured).
    /// `prompt = login` asks for `ForceAuthn`, `prompt = none` for `IsPassive`;
    /// other prompts have no SAML counterpart.
    fn authn_request_url(
        &self,
        request_id: &str,
        relay_state: &str,
        prompt: Option<Prompt>,
    ) -> Result<String, AuthError> {
        let force_authn = self.force_authn || prompt == Some(Prompt::Login);
        let is_passive = prompt == Some(Prompt::None);
        let request = AuthnRequest {
            id: request_id.to_owned(),
            version: "2.0".into(),
            destination: Some(self.acs.idp.sso_url.clone()),
            issuer: Some(Issuer {
                value: Some(self.acs.sp_entity_id.clone()),
                ..Issuer::default()
            }),
            name_id_policy: Some(NameIdPolicy {
                format: self.name_id_format.clone(),
                sp_name_qualifier: None,
                allow_create: Some(true),
            }),
            force_authn: force_authn.then_some(true),
            is_passive: is_passive.then_some(true),
            assertion_consumer_service_url: Some(self.acs.acs_url.clone()),
            protocol_binding: Some(HTTP_POST_BINDING.into()),
            ..AuthnRequest::default()
        };
        // samael's errors are boxed and not `Send`: turned into text right here.
        let url = match &self.signing_key {
            Some(key) => request
                .signed_redirect(relay_state, key)
                .map_err(|e| e.to_string()),
            None => request.redirect(relay_state).map_err(|e| e.to_string()),
        };
        match url {
            Ok(Some(url)) => Ok(url.into()),
            Ok(None) => Err(AuthError::Misconfigured(format!(
                "module `{}`: the AuthnRequest has no destination",
                self.id
            ))),
            Err(e) => Err(AuthError::Misconfigured(format!(
                "module `{}`: cannot encode the AuthnRequest: {e}",
                self.id
            ))),
        }
    }

    async fn start(&self, start: &crate::StartLogin) -> Result<Outcome, AuthError> {
        let return_to = start.return_to.as_deref();
        // `_` keeps the id an NCName whatever the random text begins with.
        let request_id = format!("_{}", random_token(&self.id)?);
        let started = self
            .flows
            .start_with(&self.id, return_to, Some(request_id.clone()))
            .await?;
        let location = self.authn_request_url(&request_id, &started.flow.state, start.prompt)?;
        Ok(Outcome::Redirect(Redirect {
            location,
            flow_cookie: Some(started.cookie),
        }))
    }

    fn reject(&self, err: SamlError) -> AuthError {
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "SAML response rejected");
        match err {
            SamlError::Encoding | SamlError::TooLarge(_) => AuthError::InvalidRequest(RequestError::Module {
                module: self.id.clone(),
                cause: err.into(),
            }),
            other => AuthError::rejected(self.id.clone(), other),
        }
    }

    async fn callback(
        &self,
        request: &AuthRequest,
        params: &BTreeMap<String, String>,
    ) -> Result<Outcome, AuthError> {
        let Some(encoded) = params.get("SAMLResponse") else {
            return Ok(Outcome::Abstain);
        };
        let relay_state = params.get("RelayState").map(String::as_str);
        let flow = match relay_state {
            Some(state) => match self
                .flows
                .take(&self.id, state, request.flow_cookie.as_deref())
                .await
            {
                Ok(flow) => Some(flow),
                Err(FlowError::OtherModule) => return Ok(Outcome::Abstain),
                Err(FlowError::Unknown) => None,
                Err(err) => {
                    warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "SAML login refused");
                    return Err(err.into_auth_error(&self.id));
                }
            },
            None => None,
        };
        let xml = response::decode(encoded, self.max_response_bytes).map_err(|e| self.reject(e))?;
        let request_id = match &flow {
            Some(flow) => Some(flow.extra.clone().ok_or_else(|| {
                AuthError::Misconfigured(format!(
                    "module `{}`: the login flow lost its request id",
                    self.id
                ))
            })?),
            None => {
                // No login of ours: an IdP-initiated response, if addressed here.
                match response::unverified_destination(&xml) {
                    Ok(Some(destination)) if destination != self.acs.acs_url => return Ok(Outcome::Abstain),
                    Err(e) => return Err(self.reject(e)),
                    Ok(_) if !self.allow_idp_initiated => return Err(self.reject(SamlError::Unsolicited)),
                    Ok(_) => None,
                }
            }
        };
        let now = SystemTime::now();
        // About a millisecond of xmlsec work: on a blocking thread, not the
        // runtime's, so other requests go on meanwhile.
        let acs = self.acs.clone();
        let verified = tokio::task::spawn_blocking(move || acs.verify(&xml, request_id.as_deref(), now))
            .await
            .map_err(|err| AuthError::unavailable(self.id.clone(), OtherError::new(err)))?
            .map_err(|e| self.reject(e))?;
        // Keyed by issuer too, so that modules sharing a cache cannot collide.
        let replay_key = format!("{}\n{}", verified.issuer, verified.assertion_id);
        match self
            .replay
            .check_and_remember(&replay_key, verified.valid_until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(target: AUDIT_TARGET, module = %self.id, "SAML assertion replayed");
                return Err(AuthError::rejected(self.id.clone(), ReplayError::Replayed));
            }
            Err(err) => return Err(AuthError::unavailable(self.id.clone(), err)),
        }
        let mut identity = self.identity(&verified);
        let return_to = match flow {
            Some(flow) => flow.return_to,
            // An IdP-initiated RelayState is the target URL, when it is an acceptable one.
            None => relay_state
                .filter(|r| self.flows.return_to_policy().check(r).is_ok())
                .map(str::to_owned),
        };
        identity.return_to = return_to;
        Ok(Outcome::Authenticated(identity))
    }
}

redirect_authenticator!(SamlModule);
