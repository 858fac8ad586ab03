//! Verification of a SAML `Response` posted to the assertion consumer service:
//! decoding, parsing (the shared hardened reader, [`crate::modules::xml`]), and the
//! order of the steps. The signature checks are in [`super::signature`], the
//! reading of the signed content in [`super::assertion`].
//!
//! The order matters, and each step says who does it:
//!
//! 1. **Shape, by us, before any cryptography** (roxmltree, which refuses DTDs; any
//!    `<!DOCTYPE` or `<!ENTITY` is refused even before that). The root is a
//!    `samlp:Response`; there is exactly one `saml:Assertion` in the whole document
//!    and it is a child of the Response (or exactly one `EncryptedAssertion`
//!    there and no plaintext assertion anywhere: see [`verify_encrypted`]); `ID`
//!    values are unique; a `ds:Signature` may only be a direct child of the Response or of the
//!    Assertion, at most one each, with exactly one `Reference` whose URI is `#` +
//!    its parent's `ID`, transforms limited to enveloped-signature and the
//!    canonicalisations without comments, and signature and digest algorithms on
//!    the allow-list (SHA-1 only when opted in). This keeps xmlsec away from remote
//!    references, XPath or XSLT transforms, and comment-preserving
//!    canonicalisation.
//! 2. **Signatures, by xmlsec through samael**
//!    (`reduce_xml_to_signed_with_allowed_algorithms`, `ReduceMode::PreDigest`):
//!    every signature in the document must verify against one of the *configured*
//!    IdP certificates (the key is set on the context, so `KeyInfo` in the message
//!    is never used). samael answers the exact bytes that were digested (the
//!    canonical form of the signed element).
//! 3. **Content, by us, from those signed bytes only**: they are parsed again and
//!    every value (NameID, attributes, Destination, Recipient, Audience,
//!    InResponseTo, times, status) is read from them, never from the posted
//!    document. Because canonicalisation drops comments, a NameID such as
//!    `admin@example.org<!---->.evil.test` reads as the whole signed string.
//!
//! These functions are synchronous and return our own error type: samael's and
//! libxml's values are not `Send` and never live across an `.await`.

use std::time::{Duration, SystemTime};

use base64ct::{Base64, Encoding};
use roxmltree::{Document, Node};
use samael::crypto::CertificateDer;
#[cfg(not(feature = "saml-rust-dsig"))]
use samael::crypto::{CryptoProvider, ReduceMode, XmlSec};

use super::assertion::{self, SamlAssertion};
use super::encryption::{self, Decryption, DecryptionError};
use super::error::{SamlError, SignedPart, malformed, signature};
use super::signature::{Algorithms, Shape};
use crate::modules::xml::{XmlError, XmlReader, is};

pub(crate) const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// Bound on the nodes of a response (a real one has a few hundred).
const MAX_NODES: u32 = 20_000;

/// What the response must match.
pub(crate) struct Expectations<'a> {
    pub(crate) sp_entity_id: &'a str,
    pub(crate) acs_url: &'a str,
    pub(crate) idp_entity_id: &'a str,
    pub(crate) certificates: &'a [CertificateDer],
    pub(crate) algorithms: &'a Algorithms,
    #[cfg(feature = "saml-rust-dsig")]
    pub(crate) keys: &'a super::dsig::IdpKeys,
    pub(crate) require_signed_assertions: bool,
    pub(crate) require_signed_messages: bool,
    /// The SP's decryption key and policy, when one is configured.
    pub(crate) decryption: Option<&'a Decryption>,
    /// The flow's request id; `None` for an IdP-initiated response.
    pub(crate) in_response_to: Option<&'a str>,
    pub(crate) clock_skew: Duration,
    pub(crate) now: SystemTime,
}

/// The posted `SAMLResponse` (base64, line breaks allowed) as XML text.
pub(crate) fn decode(encoded: &str, max_bytes: usize) -> Result<String, SamlError> {
    if encoded.len() / 4 * 3 > max_bytes + max_bytes / 8 {
        return Err(SamlError::TooLarge(max_bytes));
    }
    let bytes = if encoded.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        Base64::decode_vec(&compact)
    } else {
        Base64::decode_vec(encoded)
    }
    .map_err(|_| SamlError::Encoding)?;
    if bytes.len() > max_bytes {
        return Err(SamlError::TooLarge(max_bytes));
    }
    String::from_utf8(bytes).map_err(|_| SamlError::Encoding)
}

/// How responses are read: no DTD, and not even the text of a declaration
/// (xmlsec, which would honour one, sees the document later), at most
/// [`MAX_NODES`] nodes.
const READER: XmlReader = XmlReader::new(MAX_NODES).refusing_declaration_text();

fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    READER.parse(xml).map_err(|e| match e {
        XmlError::Doctype => SamlError::Doctype,
        XmlError::TooManyNodes => malformed(format!(
            "not well-formed XML: {}",
            roxmltree::Error::NodesLimitReached
        )),
        XmlError::NotWellFormed(e) => malformed(format!("not well-formed XML: {e}")),
    })
}

pub(super) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    namespace: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, namespace, name))
}

/// The single child `name`: none or several are an error.
pub(super) fn only_child<'a, 'i>(
    node: Node<'a, 'i>,
    namespace: &'static str,
    name: &'static str,
) -> Result<Node<'a, 'i>, SamlError> {
    let mut found = children(node, namespace, name);
    match (found.next(), found.next()) {
        (Some(child), None) => Ok(child),
        (None, _) => Err(malformed(format!("<{}> has no <{name}>", node.tag_name().name()))),
        (Some(_), Some(_)) => Err(malformed(format!(
            "<{}> has several <{name}>",
            node.tag_name().name()
        ))),
    }
}

pub(super) fn optional_child<'a, 'i>(
    node: Node<'a, 'i>,
    namespace: &'static str,
    name: &'static str,
) -> Result<Option<Node<'a, 'i>>, SamlError> {
    let mut found = children(node, namespace, name);
    let first = found.next();
    if found.next().is_some() {
        return Err(malformed(format!(
            "<{}> has several <{name}>",
            node.tag_name().name()
        )));
    }
    Ok(first)
}

pub(super) fn id_of(node: Node<'_, '_>) -> Result<String, SamlError> {
    node.attribute("ID")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| malformed(format!("<{}> has no ID", node.tag_name().name())))
}

/// The text of an element that must hold text only (comments and processing
/// instructions are skipped, so split text is joined, never cut at the first part).
pub(super) fn text_only(node: Node<'_, '_>) -> Result<String, SamlError> {
    let mut text = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(malformed(format!(
                "<{}> holds an element where text is expected",
                node.tag_name().name()
            )));
        }
        if let Some(part) = child.is_text().then(|| child.text()).flatten() {
            text.push_str(part);
        }
    }
    Ok(text)
}

/// All the text under an element (attribute values may be structured).
pub(super) fn all_text(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// Verifies a decoded response. See the module documentation for the steps.
pub(crate) fn verify(xml: &str, want: &Expectations<'_>) -> Result<SamlAssertion, SamlError> {
    let doc = parse(xml)?;
    let shape = Shape::read(&doc, want.algorithms)?;
    if want.certificates.is_empty() {
        // Never reached through the builder, which refuses this; kept so that no
        // path verifies against nothing.
        return Err(signature("no IdP certificate is configured"));
    }
    match &shape.assertion_id {
        Some(_) if want.decryption.is_some_and(|d| d.required) => {
            Err(SamlError::Decryption(DecryptionError::NotEncrypted))
        }
        Some(_) => verify_contained(xml, &doc, &shape, want, false),
        None => verify_encrypted(xml, &doc, &shape, want),
    }
}

/// xmlsec's error reports (one per failed signature, on stderr by default: anyone
/// posting bad responses could flood it) as `debug` events with the target
/// `authchain::saml::xmlsec`, never on stderr; once per process, before the first
/// verification. samael initialises xmlsec when it first loads a key, and
/// xmlsec's OpenSSL backend then installs its own printing callback, so the
/// initialisation is made to happen first: a one-byte "certificate" is loaded
/// (and refused, silently) on a one-element document.
#[cfg(not(feature = "saml-rust-dsig"))]
pub(crate) fn route_xmlsec_errors() {
    authchain_xmlsec_errors::route_to_tracing(|| {
        let _ = XmlSec::verify_signed_xml("<a/>", &CertificateDer::from(vec![0]), None);
    });
}

/// Step 2 on a whole document: every signature in it verified against the IdP's
/// keys; the canonical bytes of the signed Response, or of the signed Assertion
/// when only it is signed.
fn verify_signatures(xml: &str, doc: &Document<'_>, want: &Expectations<'_>) -> Result<String, SamlError> {
    #[cfg(not(feature = "saml-rust-dsig"))]
    {
        let _ = doc;
        XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
            xml,
            want.certificates,
            ReduceMode::PreDigest,
            want.algorithms.samael(),
        )
        .map_err(|e| signature(format!("xmlsec: {e}")))
    }
    #[cfg(feature = "saml-rust-dsig")]
    {
        let _ = xml;
        super::dsig::verify(doc, want.keys)
    }
}

/// A response holding an `EncryptedAssertion`: the Response signature (when
/// there is one) is verified on the posted document, over the ciphertext; the
/// assertion is decrypted from the signed bytes (or from the posted document when
/// the Response is unsigned) and put in the ciphertext's place; that document is
/// then verified like a plaintext response whose envelope is already verified
/// when the Response signature was.
fn verify_encrypted(
    xml: &str,
    doc: &Document<'_>,
    shape: &Shape,
    want: &Expectations<'_>,
) -> Result<SamlAssertion, SamlError> {
    let decryption = want
        .decryption
        .ok_or(SamlError::Decryption(DecryptionError::NoKey))?;
    if want.require_signed_messages && !shape.response_signed {
        return Err(SamlError::Unsigned(SignedPart::Response));
    }
    let signed_response;
    let base = if shape.response_signed {
        signed_response = verify_signatures(xml, doc, want)?;
        signed_response.as_str()
    } else {
        xml
    };
    let base_doc = parse(base).map_err(|e| signature(format!("the signed content does not parse: {e}")))?;
    let root = base_doc.root_element();
    if !is(root, PROTOCOL_NS, "Response") || id_of(root)? != shape.response_id {
        return Err(signature("the verified reference is not the Response"));
    }
    let mut encrypted = base_doc
        .descendants()
        .filter(|n| is(*n, ASSERTION_NS, "EncryptedAssertion"));
    let encrypted = match (encrypted.next(), encrypted.next()) {
        (Some(one), None) if one.parent_element() == Some(root) => one,
        _ => {
            return Err(signature(
                "the signed Response does not hold exactly one encrypted assertion",
            ));
        }
    };
    let assertion = encryption::decrypt(encrypted, decryption, base.len())?;
    let range = encrypted.range();
    let decrypted = format!("{}{assertion}{}", &base[..range.start], &base[range.end..]);
    drop(base_doc);
    let decrypted_doc = parse(&decrypted)?;
    let decrypted_shape = Shape::read(&decrypted_doc, want.algorithms)?;
    if decrypted_shape.assertion_id.is_none() || decrypted_shape.response_signed {
        return Err(malformed(
            "the decrypted assertion holds another encrypted assertion",
        ));
    }
    let mut verified = verify_contained(
        &decrypted,
        &decrypted_doc,
        &decrypted_shape,
        want,
        shape.response_signed,
    )?;
    verified.encrypted = true;
    Ok(verified)
}

/// A response holding its assertion in the clear. `envelope_verified`: the
/// Response's signature was verified already (over the ciphertext this assertion
/// was decrypted from) and `doc` was built from the bytes it covers.
fn verify_contained(
    xml: &str,
    doc: &Document<'_>,
    shape: &Shape,
    want: &Expectations<'_>,
    envelope_verified: bool,
) -> Result<SamlAssertion, SamlError> {
    let response_signed = shape.response_signed || envelope_verified;
    if !response_signed && !shape.assertion_signed {
        return Err(SamlError::Unsigned(SignedPart::Neither));
    }
    if want.require_signed_assertions && !shape.assertion_signed {
        return Err(SamlError::Unsigned(SignedPart::Assertion));
    }
    if want.require_signed_messages && !response_signed {
        return Err(SamlError::Unsigned(SignedPart::Response));
    }
    let assertion_id = shape
        .assertion_id
        .as_deref()
        .ok_or_else(|| malformed("the response holds no assertion"))?;
    if !shape.response_signed && !shape.assertion_signed {
        // Decrypted from the ciphertext a verified Response signature covers:
        // `doc` is those signed bytes with the plaintext in place.
        let root = doc.root_element();
        let assertion = only_child(root, ASSERTION_NS, "Assertion")?;
        if id_of(assertion)? != assertion_id {
            return Err(signature("the verified assertion is not the one in the response"));
        }
        assertion::check_response(root, true, want)?;
        let mut verified = assertion::check_assertion(assertion, want)?;
        verified.response_signed = true;
        return Ok(verified);
    }

    let signed_xml = verify_signatures(xml, doc, want)?;
    let signed_doc =
        parse(&signed_xml).map_err(|e| signature(format!("the signed content does not parse: {e}")))?;
    let signed_root = signed_doc.root_element();
    let (response, assertion) = if shape.response_signed {
        if !is(signed_root, PROTOCOL_NS, "Response") || id_of(signed_root)? != shape.response_id {
            return Err(signature("the verified reference is not the Response"));
        }
        let mut assertions = signed_root
            .descendants()
            .filter(|n| is(*n, ASSERTION_NS, "Assertion"));
        let assertion = match (assertions.next(), assertions.next()) {
            (Some(a), None) if a.parent_element() == Some(signed_root) => a,
            _ => {
                return Err(signature(
                    "the signed Response does not hold exactly one assertion",
                ));
            }
        };
        (signed_root, assertion)
    } else {
        if !is(signed_root, ASSERTION_NS, "Assertion") {
            return Err(signature("the verified reference is not the Assertion"));
        }
        // Unsigned envelope (or one verified before decryption, from whose signed
        // bytes `doc` was built): its values are checked below, but nothing that
        // identifies the user or the request is taken from it alone.
        (doc.root_element(), signed_root)
    };
    if id_of(assertion)? != assertion_id {
        return Err(signature("the verified assertion is not the one in the response"));
    }
    assertion::check_response(response, response_signed, want)?;
    let mut verified = assertion::check_assertion(assertion, want)?;
    verified.response_signed = response_signed;
    verified.assertion_signed = shape.assertion_signed;
    Ok(verified)
}

/// The Destination of a response, read without verifying anything: only to tell
/// whether an unsolicited response is addressed to this module at all.
pub(crate) fn unverified_destination(xml: &str) -> Result<Option<String>, SamlError> {
    let doc = parse(xml)?;
    let root = doc.root_element();
    if !is(root, PROTOCOL_NS, "Response") {
        return Err(malformed("the root element is not a samlp:Response"));
    }
    Ok(root.attribute("Destination").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_is_bounded_and_strict() {
        let xml = "<samlp:Response/>";
        let encoded = Base64::encode_string(xml.as_bytes());
        assert_eq!(decode(&encoded, 1024).as_deref(), Ok(xml));
        let wrapped = format!("{}\r\n{}", &encoded[..8], &encoded[8..]);
        assert_eq!(decode(&wrapped, 1024).as_deref(), Ok(xml));
        assert_eq!(decode(&encoded, 8), Err(SamlError::TooLarge(8)));
        assert_eq!(decode("not base64!", 1024), Err(SamlError::Encoding));
        assert_eq!(
            decode(&Base64::encode_string(&[0xff, 0xfe]), 1024),
            Err(SamlError::Encoding)
        );
    }

    #[test]
    fn doctype_and_entities_are_refused_before_parsing() {
        for xml in [
            "<!DOCTYPE r><r/>",
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
        ] {
            assert_eq!(parse(xml).err(), Some(SamlError::Doctype), "{xml}");
        }
    }
}
