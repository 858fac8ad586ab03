//! The identity provider's side of the configuration: its entity id, its
//! HTTP-Redirect single sign-on URL and its signing certificates, from its SAML
//! metadata or given directly; the checks of metadata itself (its `validUntil`,
//! and its signature against a configured certificate), whether it was read from
//! a file or fetched from `idp_metadata_url` ([`super::remote`]).

use std::time::SystemTime;

use roxmltree::Node;
use samael::crypto::CertificateDer;
use samael::metadata::HTTP_REDIRECT_BINDING;

use super::signature::Algorithms;
use crate::ConfigError;
use crate::modules::xml::{XmlError, XmlReader, is};

const METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// How metadata is read: no DTD, not even the text of a declaration; no node bound
/// (the file is configured, not posted, and federation metadata can be large).
const METADATA_READER: XmlReader = XmlReader::new(u32::MAX).refusing_declaration_text();

/// What the SP needs to know about its IdP.
#[derive(Debug, Clone)]
pub(crate) struct IdpSettings {
    pub(crate) entity_id: String,
    pub(crate) sso_url: String,
    pub(crate) certificates: Vec<CertificateDer>,
    pub(crate) wants_signed_requests: bool,
    /// The earliest `validUntil` of the metadata (its root and the IdP's
    /// `EntityDescriptor`), when given.
    pub(crate) valid_until: Option<SystemTime>,
}

/// Why IdP metadata was not used (a file at build time, or a fetched document).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Its `validUntil` has passed.
    #[error("the IdP metadata expired (validUntil)")]
    Expired,
    /// A metadata signing certificate is configured and the metadata is not signed.
    #[error("the IdP metadata is not signed")]
    Unsigned,
    /// The metadata's signature is misplaced, malformed, uses an algorithm not
    /// accepted, or does not verify against the configured certificate.
    #[error("the IdP metadata signature is rejected: {0}")]
    Signature(String),
    /// Not metadata of the configured IdP (not well-formed, another entity id, no
    /// HTTP-Redirect SSO service, no signing certificate, ...).
    #[error("unusable IdP metadata: {0}")]
    Invalid(String),
    /// `idp_metadata_url` has not been fetched successfully yet.
    #[error("the IdP metadata has not been fetched yet")]
    NotLoaded,
}

/// The IdP as one metadata version describes it, with its keys decoded once.
#[derive(Debug)]
pub(crate) struct IdpState {
    pub(crate) idp: IdpSettings,
    /// The IdP's keys, decoded once for every response checked against them.
    #[cfg(feature = "saml-rust-dsig")]
    pub(crate) keys: super::dsig::IdpKeys,
}

impl IdpState {
    /// Decodes the keys of `idp` (an error names what cannot be used).
    pub(crate) fn new(idp: IdpSettings) -> Result<IdpState, String> {
        Ok(IdpState {
            #[cfg(feature = "saml-rust-dsig")]
            keys: super::dsig::IdpKeys::from_certificates(&idp.certificates)?,
            idp,
        })
    }

    /// Whether the metadata's `validUntil` has passed at `now`.
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        self.idp.valid_until.is_some_and(|until| until <= now)
    }
}

/// The certificates metadata must be signed with (`idp_metadata_signing_certificate_file`).
#[derive(Debug)]
pub(crate) struct MetadataSigners {
    certificates: Vec<CertificateDer>,
    #[cfg(feature = "saml-rust-dsig")]
    keys: super::dsig::IdpKeys,
}

impl MetadataSigners {
    pub(crate) fn new(certificates: Vec<CertificateDer>) -> Result<MetadataSigners, String> {
        Ok(MetadataSigners {
            #[cfg(feature = "saml-rust-dsig")]
            keys: super::dsig::IdpKeys::from_certificates(&certificates)?,
            certificates,
        })
    }
}

/// What metadata must be to be used.
#[derive(Debug)]
pub(crate) struct MetadataPolicy {
    /// The IdP's entity id, when configured (picks it and must match).
    pub(crate) entity_id: Option<String>,
    /// Verify the metadata's signature against these, when given.
    pub(crate) signers: Option<MetadataSigners>,
    pub(crate) algorithms: Algorithms,
    /// `idp_certificate_files`, added to the metadata's certificates.
    pub(crate) extra_certificates: Vec<CertificateDer>,
}

/// Checks metadata (`validUntil`, its signature when `policy` names signers) and
/// reads the IdP from it: from the signed bytes when it is signed. `key` names the
/// setting in the messages.
pub(crate) fn load(
    xml: &str,
    policy: &MetadataPolicy,
    key: &str,
    now: SystemTime,
) -> Result<IdpSettings, MetadataError> {
    let invalid = |e: ConfigError| match e {
        ConfigError::Invalid { message, .. } => MetadataError::Invalid(message),
        other => MetadataError::Invalid(other.to_string()),
    };
    let signed;
    let text = match &policy.signers {
        Some(signers) => {
            signed = verify_metadata_signature(xml, signers, &policy.algorithms)?;
            signed.as_str()
        }
        None => xml,
    };
    let mut idp = from_metadata(text, policy.entity_id.as_deref(), key).map_err(invalid)?;
    if idp.valid_until.is_some_and(|until| until <= now) {
        return Err(MetadataError::Expired);
    }
    idp.certificates.extend(policy.extra_certificates.iter().cloned());
    if idp.certificates.is_empty() {
        // samael accepts unsigned responses when it knows no IdP certificate.
        return Err(MetadataError::Invalid(
            "the IdP has no signing certificate: responses could not be verified".into(),
        ));
    }
    Ok(idp)
}

/// The one enveloped signature of the metadata's root element, verified against
/// `signers`: answers the canonical bytes it covers.
fn verify_metadata_signature(
    xml: &str,
    signers: &MetadataSigners,
    algorithms: &Algorithms,
) -> Result<String, MetadataError> {
    let doc = parse_metadata(xml, |m| ConfigError::invalid("", m)).map_err(|e| match e {
        ConfigError::Invalid { message, .. } => MetadataError::Invalid(message),
        other => MetadataError::Invalid(other.to_string()),
    })?;
    let root = doc.root_element();
    let mut signatures = doc.descendants().filter(|n| is(*n, DSIG_NS, "Signature"));
    let sig = match (signatures.next(), signatures.next()) {
        (None, _) => return Err(MetadataError::Unsigned),
        (Some(sig), None) if sig.parent_element() == Some(root) => sig,
        _ => {
            return Err(MetadataError::Signature(
                "exactly one signature, on the root element, is accepted".into(),
            ));
        }
    };
    let id = root
        .attribute("ID")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| MetadataError::Signature("the signed root element has no ID".into()))?;
    super::signature::check_signature_shape(sig, id, algorithms)
        .map_err(|e| MetadataError::Signature(e.to_string()))?;
    #[cfg(not(feature = "saml-rust-dsig"))]
    let signed = {
        use samael::crypto::{CryptoProvider, ReduceMode, XmlSec};
        let _ = sig;
        XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            &signers.certificates,
            ReduceMode::PreDigest,
            algorithms.samael(),
        )
        .map_err(|e| MetadataError::Signature(format!("xmlsec: {e}")))?
    };
    #[cfg(feature = "saml-rust-dsig")]
    let signed = {
        let _ = &signers.certificates;
        super::dsig::verify_enveloped(&doc, sig, root, &signers.keys)
            .map_err(|e| MetadataError::Signature(e.to_string()))?
    };
    Ok(signed)
}

fn parse_metadata(
    xml: &str,
    invalid: impl Fn(String) -> ConfigError,
) -> Result<roxmltree::Document<'_>, ConfigError> {
    METADATA_READER.parse(xml).map_err(|e| match e {
        XmlError::Doctype => invalid("IdP metadata with a DOCTYPE is refused".into()),
        XmlError::TooManyNodes => invalid(format!(
            "IdP metadata is not well-formed XML: {}",
            roxmltree::Error::NodesLimitReached
        )),
        XmlError::NotWellFormed(e) => invalid(format!("IdP metadata is not well-formed XML: {e}")),
    })
}

fn valid_until(node: Node<'_, '_>, key: &str) -> Result<Option<SystemTime>, ConfigError> {
    node.attribute("validUntil")
        .map(|text| {
            super::assertion::parse_date_time(text)
                .ok_or_else(|| ConfigError::invalid(key, "the metadata's validUntil is not an xs:dateTime"))
        })
        .transpose()
}

/// Reads IdP metadata: an `EntityDescriptor`, or an `EntitiesDescriptor` holding
/// one IdP (or several, and `entity_id` picks one). `key` names the setting in
/// errors.
pub(crate) fn from_metadata(
    xml: &str,
    entity_id: Option<&str>,
    key: &str,
) -> Result<IdpSettings, ConfigError> {
    let invalid = |message: String| ConfigError::invalid(key, message);
    let doc = parse_metadata(xml, invalid)?;
    let candidates: Vec<(Node<'_, '_>, Node<'_, '_>)> = doc
        .descendants()
        .filter(|n| is(*n, METADATA_NS, "EntityDescriptor"))
        .filter_map(|entity| {
            let idp = entity
                .children()
                .find(|c| is(*c, METADATA_NS, "IDPSSODescriptor"))?;
            Some((entity, idp))
        })
        .filter(|(entity, _)| entity_id.is_none_or(|want| entity.attribute("entityID") == Some(want)))
        .collect();
    let (entity, idp) = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(match entity_id {
                Some(id) => format!("the metadata describes no IdP with entityID {id:?}"),
                None => "the metadata describes no IdP (no IDPSSODescriptor)".into(),
            }));
        }
        _ => {
            return Err(invalid(
                "the metadata describes several IdPs; set `idp_entity_id` to pick one".into(),
            ));
        }
    };
    let entity_id = entity
        .attribute("entityID")
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid("the IdP's EntityDescriptor has no entityID".into()))?;
    let sso_url = idp
        .children()
        .filter(|c| is(*c, METADATA_NS, "SingleSignOnService"))
        .find(|c| c.attribute("Binding") == Some(HTTP_REDIRECT_BINDING))
        .and_then(|c| c.attribute("Location"))
        .ok_or_else(|| invalid("the IdP offers no HTTP-Redirect SingleSignOnService".into()))?;
    let mut certificates = Vec::new();
    for descriptor in idp.children().filter(|c| is(*c, METADATA_NS, "KeyDescriptor")) {
        // No `use` means signing and encryption (SAML metadata §2.4.1.1).
        if descriptor.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for cert in descriptor
            .descendants()
            .filter(|n| is(*n, DSIG_NS, "X509Certificate"))
        {
            let text: String = cert
                .children()
                .filter_map(|t| t.text())
                .collect::<String>()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            certificates.push(certificate_from_base64(&text, key)?);
        }
    }
    let valid_until = match (valid_until(doc.root_element(), key)?, valid_until(entity, key)?) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(IdpSettings {
        entity_id: entity_id.to_owned(),
        sso_url: sso_url.to_owned(),
        certificates,
        wants_signed_requests: idp.attribute("WantAuthnRequestsSigned") == Some("true"),
        valid_until,
    })
}

fn certificate_from_base64(text: &str, key: &str) -> Result<CertificateDer, ConfigError> {
    use base64ct::{Base64, Encoding};
    let der = Base64::decode_vec(text)
        .map_err(|_| ConfigError::invalid(key, "an X509Certificate is not base64"))?;
    certificate_from_der(der, key)
}

/// Checks that the DER bytes are an X.509 certificate with a public key xmlsec can use.
pub(crate) fn certificate_from_der(der: Vec<u8>, key: &str) -> Result<CertificateDer, ConfigError> {
    let cert = openssl::x509::X509::from_der(&der)
        .map_err(|_| ConfigError::invalid(key, "not an X.509 certificate"))?;
    let public = cert
        .public_key()
        .map_err(|_| ConfigError::invalid(key, "the certificate's public key cannot be read"))?;
    if public.rsa().is_err() && public.ec_key().is_err() {
        return Err(ConfigError::invalid(
            key,
            "the certificate's key is neither RSA nor EC",
        ));
    }
    Ok(CertificateDer::from(der))
}

/// Every certificate in a PEM text (one or more `BEGIN CERTIFICATE` blocks).
pub(crate) fn certificates_from_pem(pem: &str, key: &str) -> Result<Vec<CertificateDer>, ConfigError> {
    let certs = openssl::x509::X509::stack_from_pem(pem.as_bytes())
        .map_err(|_| ConfigError::invalid(key, "not a PEM certificate"))?;
    if certs.is_empty() {
        return Err(ConfigError::invalid(key, "holds no PEM certificate"));
    }
    certs
        .into_iter()
        .map(|c| {
            let der = c
                .to_der()
                .map_err(|_| ConfigError::invalid(key, "a certificate cannot be encoded"))?;
            certificate_from_der(der, key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_errors_name_the_key() {
        let key = "modules.sso.idp_metadata_xml";
        for (xml, fragment) in [
            ("<x", "not well-formed"),
            ("<!DOCTYPE x><x/>", "DOCTYPE"),
            (
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e"/>"#,
                "no IdP",
            ),
            (
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e">
                   <md:IDPSSODescriptor/></md:EntityDescriptor>"#,
                "HTTP-Redirect",
            ),
            (
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="e">
                   <md:IDPSSODescriptor><md:KeyDescriptor><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
                   <ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
                   </md:KeyDescriptor><md:SingleSignOnService
                   Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp/sso"/>
                   </md:IDPSSODescriptor></md:EntityDescriptor>"#,
                "X.509",
            ),
        ] {
            let err = from_metadata(xml, None, key).expect_err(xml);
            assert_eq!(err.key(), Some(key));
            assert!(err.to_string().contains(fragment), "{err} / {fragment}");
        }
    }

    #[test]
    fn valid_until_is_the_earliest_and_expired_metadata_is_refused() {
        let xml = |root: &str, entity: &str| {
            format!(
                r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" {root}>
                <md:EntityDescriptor entityID="https://idp" {entity}><md:IDPSSODescriptor><md:SingleSignOnService
                Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp/sso"/>
                </md:IDPSSODescriptor></md:EntityDescriptor></md:EntitiesDescriptor>"#
            )
        };
        let at = |text: &str| super::super::assertion::parse_date_time(text).expect("date");
        let idp = from_metadata(
            &xml(
                r#"validUntil="2030-01-01T00:00:00Z""#,
                r#"validUntil="2029-01-01T00:00:00Z""#,
            ),
            None,
            "k",
        )
        .expect("metadata");
        assert_eq!(idp.valid_until, Some(at("2029-01-01T00:00:00Z")));
        assert!(from_metadata(&xml(r#"validUntil="soon""#, ""), None, "k").is_err());
        let policy = MetadataPolicy {
            entity_id: None,
            signers: None,
            algorithms: Algorithms::new(super::super::SignatureAlgorithm::DEFAULT),
            extra_certificates: Vec::new(),
        };
        let expired = xml(r#"validUntil="2001-01-01T00:00:00Z""#, "");
        assert_eq!(
            load(&expired, &policy, "k", SystemTime::now()).err(),
            Some(MetadataError::Expired)
        );
        // Not expired, but no certificate: refused as well.
        assert!(matches!(
            load(&xml("", ""), &policy, "k", SystemTime::now()),
            Err(MetadataError::Invalid(_))
        ));
    }

    #[test]
    fn metadata_without_certificates_reads_but_holds_none() {
        // The module builder refuses this (tested there); the reader only reports.
        let xml = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp">
            <md:IDPSSODescriptor WantAuthnRequestsSigned="true"><md:SingleSignOnService
            Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp/sso"/>
            </md:IDPSSODescriptor></md:EntityDescriptor>"#;
        let idp = from_metadata(xml, None, "k").expect("metadata");
        assert_eq!(idp.entity_id, "https://idp");
        assert_eq!(idp.sso_url, "https://idp/sso");
        assert!(idp.certificates.is_empty());
        assert!(idp.wants_signed_requests);
    }
}
