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
//! * With `sp_decryption_key`, an `EncryptedAssertion` is decrypted
//!   ([`encryption`](self) internals) and then held to the same checks; the
//!   decrypted assertion is trusted only through its own signature or the
//!   Response's, which covers the ciphertext.
//! * The identity is read only from the bytes the verified signature covers.
//!   See [`response`](self) internals and `docs/modules/saml.md` for what is
//!   checked where.
//! * An IdP configuration without a signing certificate is refused when the module
//!   is built (samael would accept unsigned responses) — metadata fetched from
//!   `idp_metadata_url` when it is fetched ([`remote`](self) internals: refreshed
//!   on a schedule and after a signature failure, rate limited, the last good
//!   version kept) — and the `saml` feature always builds samael with xmlsec (its
//!   other build skips verification).
//!
//! samael's and libxml's values are not `Send`: all of that work happens in
//! synchronous functions that answer our own types.

mod assertion;
#[cfg(feature = "saml-rust-dsig")]
mod dsig;
mod encryption;
mod error;
mod idp;
mod logout;
mod metadata;
mod remote;
mod response;
mod settings;
mod signature;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openssl::pkey::{PKey, Private};
use samael::metadata::HTTP_POST_BINDING;
use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
use tracing::warn;

pub use assertion::{SamlAssertion, SamlAttribute};
pub use encryption::{DecryptionError, MAX_ENCRYPTED_KEYS};
pub use error::{Mismatch, SamlError, SignedPart, StatusCode, TimeLimit};
pub use idp::MetadataError;
pub use logout::{
    IdpLogoutRequest, LOGOUT_MESSAGE_LIFETIME, MAX_LOGOUT_MESSAGE_BYTES, MAX_LOGOUT_QUERY_BYTES,
    MAX_SESSION_INDEXES, SingleLogout,
};
pub use remote::{
    DEFAULT_METADATA_MAX_BYTES, DEFAULT_METADATA_MIN_REFETCH, DEFAULT_METADATA_REFRESH,
    DEFAULT_METADATA_TIMEOUT,
};
pub use settings::{EntityId, PemSource, SamlSettings};
pub use signature::SignatureAlgorithm;

use crate::audit::AUDIT_TARGET;
use crate::error::{OtherError, RequestError};
use crate::flow::{CookieAttributes, SameSite};
use crate::flow::{
    FlowError, Flows, MemoryReplayCache, ReplayCache, ReplayError, check_url, random_token,
    redirect_authenticator,
};
use crate::{AuthError, AuthRequest, ConfigError, Identity, Outcome, Prompt, Redirect};
use idp::{IdpSettings, IdpState, MetadataPolicy, MetadataSigners};
use response::Expectations;
use signature::Algorithms;

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

/// The SAML 2.0 service-provider module. Build it with [`SamlModule::new`] from
/// [`SamlSettings`].
pub struct SamlModule {
    id: crate::ModuleId,
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
    /// Single logout, when the IdP has an endpoint for it.
    slo: Option<logout::SloPolicy>,
    /// The IdP's metadata: fixed, or fetched from `idp_metadata_url`.
    idp: IdpSource,
    /// The IdP's entity id (pinned: refreshed metadata must name it).
    idp_entity_id: String,
}

/// The IdP's single-logout endpoint from its metadata: location and response location.
type IdpSlo = (String, Option<String>);

/// Where the IdP's metadata comes from.
#[derive(Debug)]
enum IdpSource {
    /// A file, inline XML, or settings: read once when the module is built.
    Fixed(Arc<IdpState>),
    /// `idp_metadata_url`, refreshed.
    Remote(Box<remote::RemoteMetadata>),
}

impl IdpSource {
    /// The metadata to check against now (a fetch, if due).
    async fn get(&self) -> Result<Arc<IdpState>, AuthError> {
        match self {
            IdpSource::Fixed(state) => Ok(state.clone()),
            IdpSource::Remote(remote) => remote.get().await,
        }
    }

    /// The metadata at hand, without fetching.
    fn current(&self) -> Option<Arc<IdpState>> {
        match self {
            IdpSource::Fixed(state) => Some(state.clone()),
            IdpSource::Remote(remote) => remote.current(),
        }
    }
}

impl std::fmt::Debug for SamlModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlModule")
            .field("id", &self.id)
            .field("sp_entity_id", &self.acs.sp_entity_id)
            .field("acs_url", &self.acs.acs_url)
            .field("idp_entity_id", &self.idp_entity_id)
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
    idp_entity_id: String,
    require_signed_assertions: bool,
    require_signed_messages: bool,
    algorithms: Algorithms,
    clock_skew: Duration,
    /// The SP's decryption key, when encrypted assertions are accepted.
    decryption: Option<encryption::Decryption>,
}

impl AcsPolicy {
    fn verify(
        &self,
        idp: &IdpState,
        xml: &str,
        in_response_to: Option<&str>,
        now: SystemTime,
    ) -> Result<SamlAssertion, SamlError> {
        response::verify(
            xml,
            &Expectations {
                sp_entity_id: &self.sp_entity_id,
                acs_url: &self.acs_url,
                idp_entity_id: &self.idp_entity_id,
                certificates: &idp.idp.certificates,
                algorithms: &self.algorithms,
                #[cfg(feature = "saml-rust-dsig")]
                keys: &idp.keys,
                require_signed_assertions: self.require_signed_assertions,
                require_signed_messages: self.require_signed_messages,
                decryption: self.decryption.as_ref(),
                in_response_to,
                clock_skew: self.clock_skew,
                now,
            },
        )
    }
}

impl SamlModule {
    /// Checks `settings`, reads the files and secrets, parses metadata, keys and
    /// certificates, and builds the module `id`. Errors name the key relative to
    /// the module's table (`acs_url`, `idp_metadata_file`, ...).
    pub fn new(id: impl Into<crate::ModuleId>, settings: SamlSettings) -> Result<SamlModule, ConfigError> {
        // Before any xmlsec work (signed metadata is verified below).
        #[cfg(not(feature = "saml-rust-dsig"))]
        response::route_xmlsec_errors();
        let id = id.into();
        let invalid = |field: &str, message: String| ConfigError::invalid(field, message);
        let signing_key = match &settings.sp_key {
            Some(secret) => {
                let pem = secret.resolve("sp_key")?;
                let pkey = PKey::private_key_from_pem(pem.expose().as_bytes())
                    .map_err(|_| invalid("sp_key", "not a PEM private key".into()))?;
                if pkey.rsa().is_err() && pkey.ec_key().is_err() {
                    return Err(invalid("sp_key", "must be an RSA or EC key".into()));
                }
                Some(pkey)
            }
            None => None,
        };
        let sp_certificate = match (&settings.sp_certificate_file, &signing_key) {
            (Some(pem), Some(pkey)) => {
                let field = "sp_certificate_file";
                let cert = idp::certificates_from_pem(&pem.load(field)?, field)?.remove(0);
                let x509 = openssl::x509::X509::from_der(cert.der_data())
                    .map_err(|_| ConfigError::invalid(field, "not an X.509 certificate"))?;
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
        let (decryption, encryption_certificate) = decryption_settings(&settings, &id)?;
        let sign = settings.sign_authn_requests.unwrap_or(signing_key.is_some());
        if sign && signing_key.is_none() {
            return Err(invalid("sign_authn_requests", "needs `sp_key`".into()));
        }

        let mut algorithms = Vec::new();
        for name in &settings.signature_algorithms {
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
        if settings.insecure_allow_sha1 {
            warn!(target: AUDIT_TARGET, module = %id,
                "insecure_allow_sha1 is on: RSA-SHA1 signatures and SHA-1 digests are accepted");
            algorithms.push(SignatureAlgorithm::RsaSha1);
        }
        let (idp, idp_entity_id, mut idp_slo) = idp_source(&settings, &id, &algorithms, sign)?;
        if let Some(url) = &settings.idp_slo_url {
            idp_slo = Some((url.as_str().to_owned(), None));
        }
        // Logout messages are checked against the IdP's certificates as configured:
        // with `idp_metadata_url`, the ones in `idp_certificate_files`.
        let slo_certificates = match &idp {
            IdpSource::Fixed(state) => state.idp.certificates.clone(),
            IdpSource::Remote(_) => {
                let mut certificates = Vec::new();
                for (i, pem) in settings.idp_certificate_files.iter().enumerate() {
                    let field = format!("idp_certificate_files[{i}]");
                    certificates.extend(idp::certificates_from_pem(
                        &pem.load(&field)?,
                        "idp_certificate_files",
                    )?);
                }
                if idp_slo.is_some() && certificates.is_empty() {
                    return Err(invalid(
                        "idp_slo_url",
                        "single logout with `idp_metadata_url` checks logout messages against \
                         `idp_certificate_files`: give them"
                            .into(),
                    ));
                }
                certificates
            }
        };
        if settings.clock_skew > Duration::from_secs(600) {
            return Err(invalid("clock_skew", "must be at most 10 minutes".into()));
        }
        let name_id_format = match settings.name_id_format.as_deref() {
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
            ("login_attribute", &settings.login_attribute),
            ("email_attribute", &settings.email_attribute),
            ("display_name_attribute", &settings.display_name_attribute),
            ("groups_attribute", &settings.groups_attribute),
        ] {
            if name.as_deref() == Some("") {
                return Err(invalid(
                    field,
                    "must not be empty (use no attribute instead)".into(),
                ));
            }
        }
        if settings.max_response_bytes < 1024 {
            return Err(invalid("max_response_bytes", "must be at least 1024".into()));
        }
        // The IdP posts the response back cross-site: the flow cookie must travel
        // with that POST.
        let flows = settings.flow.build(CookieAttributes::for_callback(
            settings.acs_url.as_str(),
            SameSite::None,
        ))?;
        let sp_metadata = metadata::sp_metadata_xml(&metadata::SpDescription {
            entity_id: settings.sp_entity_id.as_str(),
            acs_url: settings.acs_url.as_str(),
            certificate: sp_certificate.as_ref(),
            encryption_certificate: encryption_certificate.as_ref(),
            authn_requests_signed: sign,
            want_assertions_signed: settings.require_signed_assertions,
            name_id_format: name_id_format.as_deref(),
            slo_url: idp_slo.is_some().then_some(settings.acs_url.as_str()),
        })
        .map_err(|e| invalid("sp_entity_id", format!("cannot write the SP metadata: {e}")))?;
        let slo = idp_slo.map(|(location, response_location)| {
            logout::SloPolicy::new(
                location,
                response_location,
                settings.acs_url.as_str(),
                settings.sp_entity_id.as_str(),
                &idp_entity_id,
                &slo_certificates,
                &algorithms,
                settings.clock_skew,
            )
        });
        Ok(SamlModule {
            slo,
            acs: Arc::new(AcsPolicy {
                sp_entity_id: settings.sp_entity_id.as_str().to_owned(),
                acs_url: settings.acs_url.as_str().to_owned(),
                idp_entity_id: idp_entity_id.clone(),
                require_signed_assertions: settings.require_signed_assertions,
                require_signed_messages: settings.require_signed_messages,
                algorithms: Algorithms::new(&algorithms),
                clock_skew: settings.clock_skew,
                decryption,
            }),
            signing_key: signing_key.filter(|_| sign),
            name_id_format,
            force_authn: settings.force_authn,
            allow_idp_initiated: settings.allow_idp_initiated,
            attributes: AttributeNames {
                login: settings.login_attribute,
                email: settings.email_attribute,
                display_name: settings.display_name_attribute,
                groups: settings.groups_attribute,
            },
            flows,
            replay: settings
                .replay
                .unwrap_or_else(|| Arc::new(MemoryReplayCache::default())),
            max_response_bytes: settings.max_response_bytes,
            sp_metadata,
            idp,
            idp_entity_id,
            id,
        })
    }

    /// The SP metadata (an `md:EntityDescriptor`) to hand to the IdP administrator:
    /// entity id, the HTTP-POST ACS URL, the signing certificate when one is
    /// configured, `AuthnRequestsSigned` and `WantAssertionsSigned`.
    pub fn sp_metadata_xml(&self) -> &str {
        &self.sp_metadata
    }

    /// The IdP's entity id (every accepted assertion's `Issuer`).
    pub fn idp_entity_id(&self) -> &str {
        &self.idp_entity_id
    }

    /// The IdP's HTTP-Redirect single sign-on URL, from the metadata at hand
    /// (`None` while `idp_metadata_url` has not been fetched, or its metadata
    /// expired).
    pub fn idp_sso_url(&self) -> Option<String> {
        self.idp.current().map(|state| state.idp.sso_url.clone())
    }

    /// How many times `idp_metadata_url` was fetched (0 for metadata from a file).
    pub fn idp_metadata_fetches(&self) -> u64 {
        match &self.idp {
            IdpSource::Fixed(_) => 0,
            IdpSource::Remote(remote) => remote.requests(),
        }
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
        let idp = self
            .idp
            .current()
            .ok_or(SamlError::Metadata(MetadataError::NotLoaded))?;
        self.acs.verify(&idp, &xml, in_response_to, now)
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
        let session = identity.provider_session.get_or_insert_default();
        session.session_id = assertion.session_index.clone();
        session.name_id_format = assertion.name_id_format.clone();
        identity
    }

    /// The redirect URL carrying a fresh AuthnRequest (signed when configured).
    /// `prompt = login` asks for `ForceAuthn`, `prompt = none` for `IsPassive`;
    /// other prompts have no SAML counterpart.
    fn authn_request_url(
        &self,
        sso_url: &str,
        request_id: &str,
        relay_state: &str,
        prompt: Option<Prompt>,
    ) -> Result<String, AuthError> {
        let force_authn = self.force_authn || prompt == Some(Prompt::Login);
        let is_passive = prompt == Some(Prompt::None);
        let request = AuthnRequest {
            id: request_id.to_owned(),
            version: "2.0".into(),
            destination: Some(sso_url.to_owned()),
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
        let idp = self.idp.get().await?;
        // `_` keeps the id an NCName whatever the random text begins with.
        let request_id = format!("_{}", random_token(&self.id)?);
        let started = self
            .flows
            .start_with(&self.id, start, Some(request_id.clone()))
            .await?;
        let location =
            self.authn_request_url(&idp.idp.sso_url, &request_id, &started.flow.state, start.prompt)?;
        Ok(Outcome::Redirect(Redirect {
            location,
            flow_cookie: Some(started.cookie),
        }))
    }

    /// The ACS check against `idp`, on a blocking thread.
    async fn verify_blocking(
        &self,
        idp: &Arc<IdpState>,
        xml: &str,
        request_id: Option<&str>,
        now: SystemTime,
    ) -> Result<Result<SamlAssertion, SamlError>, AuthError> {
        let (acs, idp, xml, request_id) = (
            self.acs.clone(),
            idp.clone(),
            xml.to_owned(),
            request_id.map(str::to_owned),
        );
        tokio::task::spawn_blocking(move || acs.verify(&idp, &xml, request_id.as_deref(), now))
            .await
            .map_err(|err| AuthError::unavailable(self.id.clone(), OtherError::new(err)))
    }

    fn reject(&self, err: SamlError) -> AuthError {
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "SAML response rejected");
        match err {
            SamlError::Encoding | SamlError::TooLarge(_) => AuthError::InvalidRequest(RequestError::Module {
                module: self.id.to_string(),
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
        let idp = self.idp.get().await?;
        let verified = match self
            .verify_blocking(&idp, &xml, request_id.as_deref(), now)
            .await?
        {
            // The IdP may have rolled its key over: once more with fresh metadata
            // (rate limited).
            Err(SamlError::Signature(why)) => match &self.idp {
                IdpSource::Remote(remote) => match remote.refresh_after_failure(&idp).await {
                    Some(fresh) => {
                        self.verify_blocking(&fresh, &xml, request_id.as_deref(), now)
                            .await?
                    }
                    None => Err(SamlError::Signature(why)),
                },
                IdpSource::Fixed(_) => Err(SamlError::Signature(why)),
            },
            other => other,
        }
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
                crate::metrics::replay_refused(&self.id);
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

/// The IdP's metadata source and entity id, from `idp_metadata_file`,
/// `idp_metadata_xml` or `idp_metadata_url` (checked against
/// `idp_metadata_signing_certificate_file` when given), or from `idp_entity_id`,
/// `idp_sso_url` and `idp_certificate_files`.
fn idp_source(
    settings: &SamlSettings,
    id: &str,
    algorithms: &[SignatureAlgorithm],
    sign: bool,
) -> Result<(IdpSource, String, Option<IdpSlo>), ConfigError> {
    let invalid = |field: &str, message: String| ConfigError::invalid(field, message);
    let mut extra_certificates = Vec::new();
    for (i, pem) in settings.idp_certificate_files.iter().enumerate() {
        let field = format!("idp_certificate_files[{i}]");
        extra_certificates.extend(idp::certificates_from_pem(
            &pem.load(&field)?,
            "idp_certificate_files",
        )?);
    }
    let given = [
        settings.idp_metadata_file.is_some(),
        settings.idp_metadata_xml.is_some(),
        settings.idp_metadata_url.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(invalid(
            "idp_metadata_xml",
            "give one of `idp_metadata_file`, `idp_metadata_xml` and `idp_metadata_url`".into(),
        ));
    }
    let metadata = given.contains(&true);
    if metadata && settings.idp_sso_url.is_some() {
        return Err(invalid(
            "idp_sso_url",
            "give either IdP metadata or `idp_sso_url`, not both".into(),
        ));
    }
    let signers = match &settings.idp_metadata_signing_certificate_file {
        Some(_) if !metadata => {
            return Err(invalid(
                "idp_metadata_signing_certificate_file",
                "checks IdP metadata: give `idp_metadata_file`, `idp_metadata_xml` or `idp_metadata_url`"
                    .into(),
            ));
        }
        Some(pem) => {
            let field = "idp_metadata_signing_certificate_file";
            let certificates = idp::certificates_from_pem(&pem.load(field)?, field)?;
            Some(MetadataSigners::new(certificates).map_err(|why| invalid(field, why))?)
        }
        None => None,
    };
    let policy = MetadataPolicy {
        entity_id: settings.idp_entity_id.as_ref().map(|e| e.as_str().to_owned()),
        signers,
        algorithms: Algorithms::new(algorithms),
        extra_certificates,
    };
    let refused = |field: &str, e: MetadataError| match e {
        MetadataError::Invalid(message) => invalid(field, message),
        other => invalid(field, other.to_string()),
    };
    let mut slo = None;
    let (field, idp) = if let Some(url) = &settings.idp_metadata_url {
        let entity_id = policy
            .entity_id
            .clone()
            .ok_or_else(|| invalid("idp_entity_id", "is required with `idp_metadata_url`".into()))?;
        if settings.idp_metadata_refresh.is_zero() {
            return Err(invalid("idp_metadata_refresh", "must be longer than zero".into()));
        }
        let rename = |key: &str| match key {
            "http_timeout" => "idp_metadata_timeout".to_owned(),
            "max_response_bytes" => "idp_metadata_max_bytes".to_owned(),
            "ca_file" => "idp_metadata_ca_file".to_owned(),
            other => other.to_owned(),
        };
        let client = crate::flow::http::HttpClient::new(
            id,
            settings.idp_metadata_timeout,
            settings.idp_metadata_max_bytes,
            settings.idp_metadata_ca_file.as_deref(),
            rename,
        )?;
        let remote = remote::RemoteMetadata::new(
            id,
            url.as_str().to_owned(),
            client,
            policy,
            sign,
            settings.idp_metadata_refresh,
            settings.idp_metadata_min_refetch,
        );
        return Ok((IdpSource::Remote(Box::new(remote)), entity_id, None));
    } else if let Some((field, source)) = match (&settings.idp_metadata_file, &settings.idp_metadata_xml) {
        (Some(path), _) => Some(("idp_metadata_file", PemSource::File(path.clone()))),
        (None, Some(xml)) => Some(("idp_metadata_xml", PemSource::Text(xml.clone()))),
        (None, None) => None,
    } {
        let xml = source.load(field)?;
        let idp = idp::load(&xml, &policy, field, SystemTime::now()).map_err(|e| refused(field, e))?;
        check_url(field, &idp.sso_url)?;
        slo = logout::idp_slo_from_metadata(&xml, Some(&idp.entity_id));
        (field, idp)
    } else if let Some(url) = &settings.idp_sso_url {
        let entity_id = policy
            .entity_id
            .clone()
            .ok_or_else(|| invalid("idp_entity_id", "is required without IdP metadata".into()))?;
        if policy.extra_certificates.is_empty() {
            // samael accepts unsigned responses when it knows no IdP certificate.
            return Err(invalid(
                "idp_certificate_files",
                "the IdP has no signing certificate: responses could not be verified".into(),
            ));
        }
        let idp = IdpSettings {
            entity_id,
            sso_url: url.as_str().to_owned(),
            certificates: policy.extra_certificates,
            wants_signed_requests: false,
            valid_until: None,
        };
        ("idp_certificate_files", idp)
    } else {
        return Err(invalid(
            "idp_metadata_file",
            "the IdP is not configured: give its metadata (file, XML or URL) or `idp_sso_url`, \
             `idp_entity_id` and `idp_certificate_files`"
                .into(),
        ));
    };
    if idp.wants_signed_requests && !sign {
        return Err(invalid(
            "sign_authn_requests",
            "the IdP's metadata asks for signed AuthnRequests (WantAuthnRequestsSigned)".into(),
        ));
    }
    let entity_id = idp.entity_id.clone();
    let state = IdpState::new(idp).map_err(|why| invalid(field, why))?;
    Ok((IdpSource::Fixed(Arc::new(state)), entity_id, slo))
}

/// The decryption key with its policy and the certificate the SP metadata
/// publishes for it, from `sp_decryption_key`, `sp_encryption_certificate_file`,
/// `require_encrypted_assertions` and `insecure_allow_3des`.
fn decryption_settings(
    settings: &SamlSettings,
    id: &str,
) -> Result<
    (
        Option<encryption::Decryption>,
        Option<samael::crypto::CertificateDer>,
    ),
    ConfigError,
> {
    let (secret, pem) = match (
        &settings.sp_decryption_key,
        &settings.sp_encryption_certificate_file,
    ) {
        (Some(secret), Some(pem)) => (secret, pem),
        (None, None) if settings.require_encrypted_assertions => {
            return Err(ConfigError::invalid(
                "require_encrypted_assertions",
                "needs `sp_decryption_key`",
            ));
        }
        (None, None) => return Ok((None, None)),
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                "sp_encryption_certificate_file",
                "is required with `sp_decryption_key` (the IdP encrypts with it)",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                "sp_decryption_key",
                "is required with `sp_encryption_certificate_file`",
            ));
        }
    };
    let key = PKey::private_key_from_pem(secret.resolve("sp_decryption_key")?.expose().as_bytes())
        .map_err(|_| ConfigError::invalid("sp_decryption_key", "not a PEM private key"))?;
    if key.rsa().is_err() || key.bits() < 2048 {
        return Err(ConfigError::invalid(
            "sp_decryption_key",
            "must be an RSA key of at least 2048 bits",
        ));
    }
    let field = "sp_encryption_certificate_file";
    let cert = idp::certificates_from_pem(&pem.load(field)?, field)?.remove(0);
    let belongs = openssl::x509::X509::from_der(cert.der_data())
        .and_then(|x509| x509.public_key())
        .map(|public| public.public_eq(&key))
        .unwrap_or(false);
    if !belongs {
        return Err(ConfigError::invalid(
            field,
            "does not belong to `sp_decryption_key`",
        ));
    }
    if settings.insecure_allow_3des {
        warn!(target: AUDIT_TARGET, module = %id,
            "insecure_allow_3des is on: assertions encrypted with 3DES-CBC are accepted");
    }
    Ok((
        Some(encryption::Decryption {
            key,
            required: settings.require_encrypted_assertions,
            allow_3des: settings.insecure_allow_3des,
        }),
        Some(cert),
    ))
}

redirect_authenticator!(SamlModule);
