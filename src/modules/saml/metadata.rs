//! The SP's own metadata, for the IdP administrator (samael's metadata types).

use base64ct::{Base64, Encoding};
use samael::crypto::CertificateDer;
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{
    EncryptionMethod, EntityDescriptor, HTTP_POST_BINDING, IndexedEndpoint, KeyDescriptor, SpSsoDescriptor,
};
use samael::traits::ToXml;

/// What the SP metadata announces.
pub(crate) struct SpDescription<'a> {
    pub(crate) entity_id: &'a str,
    pub(crate) acs_url: &'a str,
    pub(crate) certificate: Option<&'a CertificateDer>,
    /// The certificate of the decryption key, when encrypted assertions are accepted.
    pub(crate) encryption_certificate: Option<&'a CertificateDer>,
    pub(crate) authn_requests_signed: bool,
    pub(crate) want_assertions_signed: bool,
    pub(crate) name_id_format: Option<&'a str>,
    /// The single logout endpoint (HTTP-Redirect), when the IdP has one.
    pub(crate) slo_url: Option<&'a str>,
}

/// The content encryption algorithms the SP metadata announces, preferred first.
const ENCRYPTION_METHODS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

fn key_descriptor(
    key_use: &str,
    cert: &CertificateDer,
    methods: Option<Vec<EncryptionMethod>>,
) -> KeyDescriptor {
    KeyDescriptor {
        key_use: Some(key_use.into()),
        key_info: KeyInfo {
            id: None,
            x509_data: Some(X509Data {
                certificates: vec![Base64::encode_string(cert.der_data())],
            }),
        },
        encryption_methods: methods,
    }
}

/// An `md:EntityDescriptor` with one `SPSSODescriptor`: the HTTP-POST ACS, the
/// signing certificate, the encryption certificate (`use="encryption"`, with the
/// algorithms accepted) when assertions may arrive encrypted, and the signing
/// promises.
pub(crate) fn sp_metadata_xml(sp: &SpDescription<'_>) -> Result<String, String> {
    let mut descriptors = Vec::new();
    if let Some(cert) = sp.certificate {
        descriptors.push(key_descriptor("signing", cert, None));
    }
    if let Some(cert) = sp.encryption_certificate {
        let methods = ENCRYPTION_METHODS
            .iter()
            .map(|m| EncryptionMethod {
                algorithm: (*m).to_owned(),
            })
            .collect();
        descriptors.push(key_descriptor("encryption", cert, Some(methods)));
    }
    let key_descriptors = (!descriptors.is_empty()).then_some(descriptors);
    let descriptor = SpSsoDescriptor {
        protocol_support_enumeration: Some("urn:oasis:names:tc:SAML:2.0:protocol".into()),
        key_descriptors,
        name_id_formats: sp.name_id_format.map(|f| vec![f.to_owned()]),
        authn_requests_signed: Some(sp.authn_requests_signed),
        want_assertions_signed: Some(sp.want_assertions_signed),
        assertion_consumer_services: vec![IndexedEndpoint {
            binding: HTTP_POST_BINDING.into(),
            location: sp.acs_url.to_owned(),
            response_location: None,
            index: 0,
            is_default: Some(true),
        }],
        single_logout_services: sp.slo_url.map(|location| {
            vec![samael::metadata::Endpoint {
                binding: samael::metadata::HTTP_REDIRECT_BINDING.into(),
                location: location.to_owned(),
                response_location: None,
            }]
        }),
        ..SpSsoDescriptor::default()
    };
    let entity = EntityDescriptor {
        entity_id: Some(sp.entity_id.to_owned()),
        sp_sso_descriptors: Some(vec![descriptor]),
        ..EntityDescriptor::default()
    };
    entity.to_string().map_err(|e| e.to_string())
}
