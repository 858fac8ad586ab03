//! Verification of a SAML `Response` posted to the assertion consumer service.
//!
//! The order matters, and each step says who does it:
//!
//! 1. **Shape, by us, before any cryptography** (roxmltree, which refuses DTDs; any
//!    `<!DOCTYPE` or `<!ENTITY` is refused even before that). The root is a
//!    `samlp:Response`; there is exactly one `saml:Assertion` in the whole document
//!    and it is a child of the Response; no `EncryptedAssertion`; `ID` values are
//!    unique; a `ds:Signature` may only be a direct child of the Response or of the
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

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use base64ct::{Base64, Encoding};
use roxmltree::{Document, Node, ParsingOptions};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec};

pub(crate) const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// Canonicalisations accepted, all without comments.
const CANONICALIZATIONS: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
];
/// Bound on the nodes of a response (a real one has a few hundred).
const MAX_NODES: u32 = 20_000;
/// Longest NameID accepted, in bytes.
const MAX_NAME_ID_BYTES: usize = 1024;

/// An XML signature algorithm (signature method with its digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256 (`rsa-sha256`).
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384 (`rsa-sha384`).
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512 (`rsa-sha512`).
    RsaSha512,
    /// ECDSA with SHA-256 (`ecdsa-sha256`).
    EcdsaSha256,
    /// ECDSA with SHA-384 (`ecdsa-sha384`).
    EcdsaSha384,
    /// ECDSA with SHA-512 (`ecdsa-sha512`).
    EcdsaSha512,
    /// RSA with SHA-1 (`rsa-sha1`): only with `insecure_allow_sha1`.
    RsaSha1,
}

impl SignatureAlgorithm {
    /// The names accepted in configuration (SHA-1 is switched on separately).
    pub const NAMES: &'static [&'static str] = &[
        "rsa-sha256",
        "rsa-sha384",
        "rsa-sha512",
        "ecdsa-sha256",
        "ecdsa-sha384",
        "ecdsa-sha512",
    ];

    /// The default allow-list: every SHA-2 algorithm above.
    pub const DEFAULT: &'static [SignatureAlgorithm] = &[
        SignatureAlgorithm::RsaSha256,
        SignatureAlgorithm::RsaSha384,
        SignatureAlgorithm::RsaSha512,
        SignatureAlgorithm::EcdsaSha256,
        SignatureAlgorithm::EcdsaSha384,
        SignatureAlgorithm::EcdsaSha512,
    ];

    /// The algorithm called `name` in configuration (`rsa-sha256`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rsa-sha256" => SignatureAlgorithm::RsaSha256,
            "rsa-sha384" => SignatureAlgorithm::RsaSha384,
            "rsa-sha512" => SignatureAlgorithm::RsaSha512,
            "ecdsa-sha256" => SignatureAlgorithm::EcdsaSha256,
            "ecdsa-sha384" => SignatureAlgorithm::EcdsaSha384,
            "ecdsa-sha512" => SignatureAlgorithm::EcdsaSha512,
            "rsa-sha1" => SignatureAlgorithm::RsaSha1,
            _ => return None,
        })
    }

    /// The `SignatureMethod` URI.
    pub fn uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            other => other.samael().map(|a| a.signature_uri()).unwrap_or_default(),
        }
    }

    /// The `DigestMethod` URI that goes with it.
    pub fn digest_uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
            other => other.samael().map(|a| a.digest_uri()).unwrap_or_default(),
        }
    }

    fn samael(self) -> Option<AllowedSignatureAlgorithm> {
        Some(match self {
            SignatureAlgorithm::RsaSha256 => AllowedSignatureAlgorithm::RsaSha256,
            SignatureAlgorithm::RsaSha384 => AllowedSignatureAlgorithm::RsaSha384,
            SignatureAlgorithm::RsaSha512 => AllowedSignatureAlgorithm::RsaSha512,
            SignatureAlgorithm::EcdsaSha256 => AllowedSignatureAlgorithm::EcdsaSha256,
            SignatureAlgorithm::EcdsaSha384 => AllowedSignatureAlgorithm::EcdsaSha384,
            SignatureAlgorithm::EcdsaSha512 => AllowedSignatureAlgorithm::EcdsaSha512,
            SignatureAlgorithm::RsaSha1 => return None,
        })
    }
}

/// The algorithms a module accepts, checked by us and handed to samael as well.
#[derive(Debug, Clone)]
pub(crate) struct Algorithms {
    signatures: Vec<&'static str>,
    digests: Vec<&'static str>,
    /// `None` when SHA-1 is allowed: samael's list cannot express it, our own
    /// check (step 1) is then the only one.
    samael: Option<Vec<AllowedSignatureAlgorithm>>,
}

impl Algorithms {
    pub(crate) fn new(list: &[SignatureAlgorithm]) -> Self {
        let mut digests: Vec<&'static str> = list.iter().map(|a| a.digest_uri()).collect();
        digests.dedup();
        Algorithms {
            signatures: list.iter().map(|a| a.uri()).collect(),
            digests,
            samael: list.iter().map(|a| a.samael()).collect(),
        }
    }
}

/// A verified assertion: everything here was read from the bytes covered by a
/// signature that verified against a configured IdP certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamlAssertion {
    /// The assertion's `Issuer` (the IdP's entity id).
    pub issuer: String,
    /// The assertion's `ID` (one-time: see the replay cache).
    pub assertion_id: String,
    /// The subject's `NameID`.
    pub name_id: String,
    /// The NameID's `Format`, when given.
    pub name_id_format: Option<String>,
    /// The `SessionIndex` of the first `AuthnStatement`, when given.
    pub session_index: Option<String>,
    /// The request this answers (`None` for an IdP-initiated response).
    pub in_response_to: Option<String>,
    /// The released attributes, in document order.
    pub attributes: Vec<SamlAttribute>,
    /// Whether the `Response` element was signed.
    pub response_signed: bool,
    /// Whether the `Assertion` element was signed.
    pub assertion_signed: bool,
    /// The moment after which the assertion is refused by time anyway (its
    /// earliest `NotOnOrAfter` plus the clock skew): how long its id is remembered.
    pub valid_until: SystemTime,
}

impl SamlAssertion {
    /// The attribute whose `Name` or `FriendlyName` is `name`.
    pub fn attribute(&self, name: &str) -> Option<&SamlAttribute> {
        self.attributes
            .iter()
            .find(|a| a.name == name || a.friendly_name.as_deref() == Some(name))
    }
}

/// One `saml:Attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamlAttribute {
    /// `Name` (often a URI such as `urn:oid:0.9.2342.19200300.100.1.1`).
    pub name: String,
    /// `FriendlyName` (`uid`), when given.
    pub friendly_name: Option<String>,
    /// The `AttributeValue` texts.
    pub values: Vec<String>,
}

/// Why a SAML response was refused. [`SamlModule`](super::SamlModule) answers
/// [`Encoding`](SamlError::Encoding) and [`TooLarge`](SamlError::TooLarge) as
/// malformed input ([`AuthError::InvalidRequest`](crate::AuthError::InvalidRequest)),
/// every other variant as a refusal
/// ([`AuthError::Rejected`](crate::AuthError::Rejected)). A replayed assertion is
/// [`ReplayError::Replayed`](crate::flow::ReplayError::Replayed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    /// Not base64, or not UTF-8 inside.
    #[error("the SAMLResponse is not base64-encoded UTF-8 XML")]
    Encoding,
    /// Larger than `max_response_bytes`.
    #[error("the SAMLResponse is larger than {0} bytes")]
    TooLarge(usize),
    /// A document type declaration (DTDs and entities are refused outright).
    #[error("the response contains a DOCTYPE or ENTITY declaration")]
    Doctype,
    /// Not well-formed, or not the shape of a SAML response (the text says what,
    /// for logs).
    #[error("malformed response: {0}")]
    Malformed(String),
    /// A signature is misplaced, malformed, or does not verify against the
    /// configured certificates (the text says what, for logs).
    #[error("signature rejected: {0}")]
    Signature(String),
    /// A signature uses a canonicalisation, transform, signature or digest
    /// algorithm that is not accepted (RSA-SHA1 without `insecure_allow_sha1`,
    /// say). Holds the algorithm's URI.
    #[error("signature algorithm {0:?} is not allowed")]
    Algorithm(String),
    /// A signature the configuration requires is absent.
    #[error("{0} is not signed")]
    Unsigned(SignedPart),
    /// The IdP answered with a status other than Success (its status codes'
    /// short names).
    #[error("the identity provider answered status {0}")]
    Status(String),
    /// A value names another party, endpoint or request.
    #[error("{0}")]
    Mismatch(Mismatch),
    /// Not valid yet, beyond the clock skew.
    #[error("not valid yet: {0}")]
    NotYetValid(TimeLimit),
    /// No longer valid, beyond the clock skew.
    #[error("no longer valid: {0}")]
    Expired(TimeLimit),
    /// An IdP-initiated response where none are accepted.
    #[error("unsolicited (IdP-initiated) responses are not accepted")]
    Unsolicited,
}

/// What [`SamlError::Unsigned`] found without a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignedPart {
    /// The `samlp:Response` (`require_signed_messages`).
    Response,
    /// The `saml:Assertion` (`require_signed_assertions`).
    Assertion,
    /// Neither the response nor its assertion carries a signature.
    Neither,
}

impl std::fmt::Display for SignedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignedPart::Response => "the response",
            SignedPart::Assertion => "the assertion",
            SignedPart::Neither => "neither the response nor its assertion",
        })
    }
}

/// Which value of a response names another party, endpoint or request
/// ([`SamlError::Mismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// The response's `Destination` is another endpoint than this ACS URL.
    #[error("the response's Destination is another endpoint than this ACS URL")]
    Destination,
    /// A signed response without `Destination` (SAML bindings §3.5.5.2).
    #[error("the signed response carries no Destination")]
    MissingDestination,
    /// The response's or the assertion's `Issuer` is not the configured IdP.
    #[error("the Issuer is not the configured IdP")]
    Issuer,
    /// The response or assertion answers another request (`InResponseTo`).
    #[error("the response answers another request (InResponseTo)")]
    InResponseTo,
    /// The response answers a request although this login sent none (an
    /// `InResponseTo` on what can only be an IdP-initiated response: a solicited
    /// response posted without its flow).
    #[error("the response answers a request this login did not send (InResponseTo)")]
    UnexpectedInResponseTo,
    /// The assertion does not say which request it answers (no `InResponseTo` in
    /// its bearer confirmation) although this login sent one.
    #[error("the assertion does not say which request it answers (InResponseTo)")]
    MissingInResponseTo,
    /// The assertion is for another audience (`AudienceRestriction`).
    #[error("the assertion is for another audience (AudienceRestriction)")]
    Audience,
    /// The assertion has no `AudienceRestriction`.
    #[error("the assertion has no AudienceRestriction")]
    MissingAudienceRestriction,
    /// The assertion is for another endpoint (`SubjectConfirmationData Recipient`).
    #[error("the assertion is for another endpoint (Recipient)")]
    Recipient,
}

/// Which time limit a response is outside of ([`SamlError::NotYetValid`],
/// [`SamlError::Expired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TimeLimit {
    /// The assertion's `IssueInstant` (issued in the future).
    #[error("the assertion's IssueInstant")]
    IssueInstant,
    /// `Conditions NotBefore`.
    #[error("Conditions NotBefore")]
    NotBefore,
    /// `Conditions NotOnOrAfter`.
    #[error("Conditions NotOnOrAfter")]
    NotOnOrAfter,
    /// The bearer `SubjectConfirmationData NotBefore`.
    #[error("SubjectConfirmationData NotBefore")]
    ConfirmationNotBefore,
    /// The bearer `SubjectConfirmationData NotOnOrAfter`.
    #[error("SubjectConfirmationData NotOnOrAfter")]
    ConfirmationNotOnOrAfter,
    /// `AuthnStatement SessionNotOnOrAfter`.
    #[error("AuthnStatement SessionNotOnOrAfter")]
    SessionNotOnOrAfter,
}

/// Messages can quote names and values from the posted document: they go to logs
/// and errors without control characters and bounded in length.
fn clip(message: impl Into<String>) -> String {
    let message = message.into();
    let mut out: String = message.chars().filter(|c| !c.is_control()).take(200).collect();
    if message.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn malformed(message: impl Into<String>) -> SamlError {
    SamlError::Malformed(clip(message))
}

fn signature(message: impl Into<String>) -> SamlError {
    SamlError::Signature(clip(message))
}

fn algorithm(uri: &str) -> SamlError {
    SamlError::Algorithm(clip(uri))
}

/// What the response must match.
pub(crate) struct Expectations<'a> {
    pub(crate) sp_entity_id: &'a str,
    pub(crate) acs_url: &'a str,
    pub(crate) idp_entity_id: &'a str,
    pub(crate) certificates: &'a [CertificateDer],
    pub(crate) algorithms: &'a Algorithms,
    pub(crate) require_signed_assertions: bool,
    pub(crate) require_signed_messages: bool,
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

fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    // roxmltree refuses DTDs itself; the substring test also covers an empty one.
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(SamlError::Doctype);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(xml, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SamlError::Doctype,
        other => malformed(format!("not well-formed XML: {other}")),
    })
}

fn is(node: Node<'_, '_>, namespace: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(namespace)
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    namespace: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, namespace, name))
}

/// The single child `name`: none or several are an error.
fn only_child<'a, 'i>(
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

fn optional_child<'a, 'i>(
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

fn id_of(node: Node<'_, '_>) -> Result<String, SamlError> {
    node.attribute("ID")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| malformed(format!("<{}> has no ID", node.tag_name().name())))
}

/// The text of an element that must hold text only (comments and processing
/// instructions are skipped, so split text is joined, never cut at the first part).
fn text_only(node: Node<'_, '_>) -> Result<String, SamlError> {
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
fn all_text(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// Verifies a decoded response. See the module documentation for the steps.
pub(crate) fn verify(xml: &str, want: &Expectations<'_>) -> Result<SamlAssertion, SamlError> {
    let doc = parse(xml)?;
    let shape = Shape::read(&doc, want.algorithms)?;
    if !shape.response_signed && !shape.assertion_signed {
        return Err(SamlError::Unsigned(SignedPart::Neither));
    }
    if want.require_signed_assertions && !shape.assertion_signed {
        return Err(SamlError::Unsigned(SignedPart::Assertion));
    }
    if want.require_signed_messages && !shape.response_signed {
        return Err(SamlError::Unsigned(SignedPart::Response));
    }
    if want.certificates.is_empty() {
        // Never reached through the builder, which refuses this; kept so that no
        // path verifies against nothing.
        return Err(signature("no IdP certificate is configured"));
    }

    let signed_xml = XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        want.certificates,
        ReduceMode::PreDigest,
        want.algorithms.samael.as_deref(),
    )
    .map_err(|e| signature(format!("xmlsec: {e}")))?;

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
        // Unsigned envelope: its values are checked below, but nothing that
        // identifies the user or the request is taken from it alone.
        (doc.root_element(), signed_root)
    };
    if id_of(assertion)? != shape.assertion_id {
        return Err(signature("the verified assertion is not the one in the response"));
    }
    check_response(response, shape.response_signed, want)?;
    let mut verified = check_assertion(assertion, want)?;
    verified.response_signed = shape.response_signed;
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

/// The structure of the posted document (step 1).
struct Shape {
    response_id: String,
    assertion_id: String,
    response_signed: bool,
    assertion_signed: bool,
}

impl Shape {
    fn read(doc: &Document<'_>, algorithms: &Algorithms) -> Result<Shape, SamlError> {
        let root = doc.root_element();
        if !is(root, PROTOCOL_NS, "Response") {
            return Err(malformed("the root element is not a samlp:Response"));
        }
        let mut ids = HashSet::new();
        let mut assertions = Vec::new();
        let mut signatures = Vec::new();
        for node in doc.descendants().filter(|n| n.is_element()) {
            if let Some(id) = node.attribute("ID")
                && !ids.insert(id)
            {
                return Err(malformed(format!("the ID {id:?} occurs twice")));
            }
            if is(node, ASSERTION_NS, "Assertion") {
                assertions.push(node);
            } else if is(node, ASSERTION_NS, "EncryptedAssertion") {
                return Err(malformed("encrypted assertions are not supported"));
            } else if is(node, DSIG_NS, "Signature") {
                signatures.push(node);
            }
        }
        let assertion = match assertions.as_slice() {
            [] => return Err(malformed("the response holds no assertion")),
            [one] if one.parent_element() == Some(root) => *one,
            [_] => return Err(malformed("the assertion is not a child of the Response")),
            more => {
                return Err(malformed(format!(
                    "the response holds {} assertions; exactly one is accepted",
                    more.len()
                )));
            }
        };
        let response_id = id_of(root)?;
        let assertion_id = id_of(assertion)?;
        let (mut response_signed, mut assertion_signed) = (false, false);
        for sig in signatures {
            let parent = sig.parent_element();
            let (flag, signed_id) = if parent == Some(root) {
                (&mut response_signed, &response_id)
            } else if parent == Some(assertion) {
                (&mut assertion_signed, &assertion_id)
            } else {
                return Err(signature(
                    "a signature outside the Response and Assertion elements",
                ));
            };
            if *flag {
                return Err(signature("two signatures on one element"));
            }
            *flag = true;
            check_signature_shape(sig, signed_id, algorithms)?;
        }
        Ok(Shape {
            response_id,
            assertion_id,
            response_signed,
            assertion_signed,
        })
    }
}

fn algorithm_of<'a>(node: Node<'a, '_>) -> Result<&'a str, SamlError> {
    node.attribute("Algorithm")
        .ok_or_else(|| signature(format!("<{}> has no Algorithm", node.tag_name().name())))
}

/// One enveloped signature over `#signed_id`, with allowed algorithms only.
fn check_signature_shape(
    sig: Node<'_, '_>,
    signed_id: &str,
    algorithms: &Algorithms,
) -> Result<(), SamlError> {
    let signed_info = only_child(sig, DSIG_NS, "SignedInfo").map_err(|e| signature(e.to_string()))?;
    let c14n = algorithm_of(only_child(signed_info, DSIG_NS, "CanonicalizationMethod")?)?;
    if !CANONICALIZATIONS.contains(&c14n) {
        return Err(algorithm(c14n));
    }
    let method = algorithm_of(only_child(signed_info, DSIG_NS, "SignatureMethod")?)?;
    if !algorithms.signatures.contains(&method) {
        return Err(algorithm(method));
    }
    let reference = only_child(signed_info, DSIG_NS, "Reference")
        .map_err(|_| signature("a signature must hold exactly one Reference"))?;
    if reference.attribute("URI") != Some(&format!("#{signed_id}")) {
        return Err(signature(
            "the signature's Reference does not point at the element that holds it",
        ));
    }
    let transforms = only_child(reference, DSIG_NS, "Transforms")
        .map_err(|_| signature("an enveloped signature needs its Transforms"))?;
    let mut enveloped = false;
    let mut count = 0;
    for transform in transforms.children().filter(|n| n.is_element()) {
        count += 1;
        if !is(transform, DSIG_NS, "Transform") {
            return Err(signature("unexpected element in Transforms"));
        }
        let algorithm = algorithm_of(transform)?;
        if algorithm == ENVELOPED {
            enveloped = true;
        } else if !CANONICALIZATIONS.contains(&algorithm) {
            return Err(self::algorithm(algorithm));
        }
        if transform
            .children()
            .any(|c| c.is_element() && !is(c, EXC_C14N_NS, "InclusiveNamespaces"))
        {
            return Err(signature("transform parameters other than InclusiveNamespaces"));
        }
    }
    if !enveloped || count > 2 {
        return Err(signature(
            "transforms must be enveloped-signature and one canonicalization",
        ));
    }
    let digest = algorithm_of(only_child(reference, DSIG_NS, "DigestMethod")?)?;
    if !algorithms.digests.contains(&digest) {
        return Err(algorithm(digest));
    }
    Ok(())
}

fn check_response(response: Node<'_, '_>, signed: bool, want: &Expectations<'_>) -> Result<(), SamlError> {
    if response.attribute("Version") != Some("2.0") {
        return Err(malformed("the response is not SAML 2.0"));
    }
    match response.attribute("Destination") {
        Some(d) if d == want.acs_url => {}
        Some(_) => {
            return Err(SamlError::Mismatch(Mismatch::Destination));
        }
        // SAML bindings §3.5.5.2: a signed response must name its Destination.
        None if signed => {
            return Err(SamlError::Mismatch(Mismatch::MissingDestination));
        }
        None => {}
    }
    if let Some(issuer) = optional_child(response, ASSERTION_NS, "Issuer")?
        && text_only(issuer)?.trim() != want.idp_entity_id
    {
        return Err(SamlError::Mismatch(Mismatch::Issuer));
    }
    match (response.attribute("InResponseTo"), want.in_response_to) {
        (Some(got), Some(expected)) if got == expected => {}
        (Some(_), Some(_)) => {
            return Err(SamlError::Mismatch(Mismatch::InResponseTo));
        }
        (Some(_), None) => {
            return Err(SamlError::Mismatch(Mismatch::UnexpectedInResponseTo));
        }
        (None, _) => {}
    }
    let status = only_child(response, PROTOCOL_NS, "Status")?;
    let code = only_child(status, PROTOCOL_NS, "StatusCode")?;
    let value = code.attribute("Value").unwrap_or_default();
    if value != SUCCESS {
        let detail = children(code, PROTOCOL_NS, "StatusCode")
            .next()
            .and_then(|c| c.attribute("Value"));
        let short = |uri: &str| {
            uri.rsplit(':')
                .next()
                .unwrap_or(uri)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .take(64)
                .collect::<String>()
        };
        return Err(SamlError::Status(match detail {
            Some(d) => format!("{} / {}", short(value), short(d)),
            None => short(value),
        }));
    }
    Ok(())
}

/// The checks of SAML core §2.5 and the Web SSO profile §4.1.4.3 on the signed
/// assertion, and the values the identity is built from.
fn check_assertion(assertion: Node<'_, '_>, want: &Expectations<'_>) -> Result<SamlAssertion, SamlError> {
    let skew = want.clock_skew;
    let now = want.now;
    if assertion.attribute("Version") != Some("2.0") {
        return Err(malformed("the assertion is not SAML 2.0"));
    }
    let assertion_id = id_of(assertion)?;
    let issued =
        instant(assertion, "IssueInstant")?.ok_or_else(|| malformed("the assertion has no IssueInstant"))?;
    if issued > now + skew {
        return Err(SamlError::NotYetValid(TimeLimit::IssueInstant));
    }
    let issuer = text_only(only_child(assertion, ASSERTION_NS, "Issuer")?)?;
    if issuer.trim() != want.idp_entity_id {
        return Err(SamlError::Mismatch(Mismatch::Issuer));
    }

    let subject = only_child(assertion, ASSERTION_NS, "Subject")?;
    if children(subject, ASSERTION_NS, "EncryptedID").next().is_some() {
        return Err(malformed("encrypted NameIDs are not supported"));
    }
    let name_id_node = only_child(subject, ASSERTION_NS, "NameID")?;
    let name_id = text_only(name_id_node)?;
    if name_id.is_empty() || name_id.len() > MAX_NAME_ID_BYTES || name_id.chars().any(char::is_control) {
        return Err(malformed(
            "the NameID is empty, too long or holds control characters",
        ));
    }

    // At least one bearer confirmation must hold entirely; report the first failure.
    let mut confirmation_until = None;
    let mut first_error = None;
    for confirmation in children(subject, ASSERTION_NS, "SubjectConfirmation") {
        if confirmation.attribute("Method") != Some(BEARER) {
            continue;
        }
        match check_confirmation(confirmation, want) {
            Ok(until) => {
                confirmation_until = Some(until);
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(confirmation_until) = confirmation_until else {
        return Err(
            first_error.unwrap_or_else(|| malformed("the assertion has no bearer SubjectConfirmation"))
        );
    };

    let conditions = only_child(assertion, ASSERTION_NS, "Conditions")?;
    if let Some(not_before) = instant(conditions, "NotBefore")?
        && now + skew < not_before
    {
        return Err(SamlError::NotYetValid(TimeLimit::NotBefore));
    }
    let conditions_until = instant(conditions, "NotOnOrAfter")?;
    if let Some(until) = conditions_until
        && now >= until + skew
    {
        return Err(SamlError::Expired(TimeLimit::NotOnOrAfter));
    }
    let mut audience_restricted = false;
    for condition in conditions.children().filter(|n| n.is_element()) {
        if is(condition, ASSERTION_NS, "AudienceRestriction") {
            audience_restricted = true;
            let ours = children(condition, ASSERTION_NS, "Audience")
                .map(text_only)
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .any(|a| a.trim() == want.sp_entity_id);
            if !ours {
                return Err(SamlError::Mismatch(Mismatch::Audience));
            }
        } else if !is(condition, ASSERTION_NS, "OneTimeUse")
            && !is(condition, ASSERTION_NS, "ProxyRestriction")
        {
            // SAML core §2.5.1.5: an unknown condition makes the assertion indeterminate.
            return Err(malformed(format!(
                "unsupported condition <{}>",
                condition.tag_name().name()
            )));
        }
    }
    if !audience_restricted {
        return Err(SamlError::Mismatch(Mismatch::MissingAudienceRestriction));
    }

    let mut authn = children(assertion, ASSERTION_NS, "AuthnStatement");
    let first_authn = authn
        .next()
        .ok_or_else(|| malformed("the assertion has no AuthnStatement"))?;
    for statement in std::iter::once(first_authn).chain(authn) {
        if let Some(until) = instant(statement, "SessionNotOnOrAfter")?
            && now >= until + skew
        {
            return Err(SamlError::Expired(TimeLimit::SessionNotOnOrAfter));
        }
    }

    let mut attributes = Vec::new();
    for statement in children(assertion, ASSERTION_NS, "AttributeStatement") {
        for attribute in children(statement, ASSERTION_NS, "Attribute") {
            let name = attribute
                .attribute("Name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| malformed("an Attribute has no Name"))?;
            let values = children(attribute, ASSERTION_NS, "AttributeValue")
                .map(all_text)
                .collect();
            attributes.push(SamlAttribute {
                name: name.to_owned(),
                friendly_name: attribute.attribute("FriendlyName").map(str::to_owned),
                values,
            });
        }
    }

    let valid_until = match conditions_until {
        Some(until) => until.min(confirmation_until),
        None => confirmation_until,
    } + skew;
    Ok(SamlAssertion {
        issuer: issuer.trim().to_owned(),
        assertion_id,
        name_id,
        name_id_format: name_id_node.attribute("Format").map(str::to_owned),
        session_index: first_authn.attribute("SessionIndex").map(str::to_owned),
        in_response_to: want.in_response_to.map(str::to_owned),
        attributes,
        response_signed: false,
        assertion_signed: false,
        valid_until,
    })
}

/// A bearer `SubjectConfirmationData`: Recipient, times, InResponseTo. Answers its
/// `NotOnOrAfter`.
fn check_confirmation(confirmation: Node<'_, '_>, want: &Expectations<'_>) -> Result<SystemTime, SamlError> {
    let data = only_child(confirmation, ASSERTION_NS, "SubjectConfirmationData")?;
    if data.attribute("Recipient") != Some(want.acs_url) {
        return Err(SamlError::Mismatch(Mismatch::Recipient));
    }
    let until = instant(data, "NotOnOrAfter")?
        .ok_or_else(|| malformed("the bearer confirmation has no NotOnOrAfter"))?;
    if want.now >= until + want.clock_skew {
        return Err(SamlError::Expired(TimeLimit::ConfirmationNotOnOrAfter));
    }
    if let Some(not_before) = instant(data, "NotBefore")?
        && want.now + want.clock_skew < not_before
    {
        return Err(SamlError::NotYetValid(TimeLimit::ConfirmationNotBefore));
    }
    match (data.attribute("InResponseTo"), want.in_response_to) {
        (Some(got), Some(expected)) if got == expected => Ok(until),
        (None, None) => Ok(until),
        (None, Some(_)) => Err(SamlError::Mismatch(Mismatch::MissingInResponseTo)),
        (Some(_), Some(_)) => Err(SamlError::Mismatch(Mismatch::InResponseTo)),
        (Some(_), None) => Err(SamlError::Mismatch(Mismatch::UnexpectedInResponseTo)),
    }
}

fn instant(node: Node<'_, '_>, attribute: &str) -> Result<Option<SystemTime>, SamlError> {
    node.attribute(attribute)
        .map(|text| {
            parse_date_time(text).ok_or_else(|| {
                malformed(format!(
                    "<{} {attribute}> is not an xs:dateTime",
                    node.tag_name().name()
                ))
            })
        })
        .transpose()
}

/// `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)` (SAML requires UTC; an explicit offset
/// is honoured rather than misread).
pub(crate) fn parse_date_time(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let kept = &fraction[..len.min(9)];
        nanos = kept.parse::<u32>().ok()? * 10u32.pow(9 - kept.len() as u32);
        rest = &fraction[len..];
    }
    let offset = match rest {
        "Z" => 0,
        _ => {
            let r = rest.as_bytes();
            if r.len() != 6 || r[3] != b':' || !(r[0] == b'+' || r[0] == b'-') {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            let sign = if r[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times() {
        let t = |s| {
            parse_date_time(s).map(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .expect("after the epoch")
                    .as_millis()
            })
        };
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("2026-11-22T11:56:32Z"), Some(1_795_348_592_000));
        assert_eq!(t("2026-11-22T11:56:32.250Z"), Some(1_795_348_592_250));
        assert_eq!(t("2026-11-22T12:56:32+01:00"), Some(1_795_348_592_000));
        assert_eq!(t("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T11:56:32",
            "2026-13-22T11:56:32Z",
            "2026-11-22T11:56:32.Z",
            "2026-11-22 11:56:32Z",
            "+026-11-22T11:56:32Z",
            "2026-11-22T11:56:32+0100",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

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

    /// A response skeleton whose assertion carries a signature built from parts.
    fn skeleton(c14n: &str, uri: &str, transforms: &str, method: &str, digest: &str) -> String {
        format!(
            r##"<p:Response xmlns:p="{PROTOCOL_NS}" xmlns:a="{ASSERTION_NS}" xmlns:ds="{DSIG_NS}" ID="r1" Version="2.0">
<a:Assertion ID="a1" Version="2.0"><ds:Signature><ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="{c14n}"/><ds:SignatureMethod Algorithm="{method}"/>
<ds:Reference URI="{uri}"><ds:Transforms>{transforms}</ds:Transforms>
<ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference>
</ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature></a:Assertion></p:Response>"##
        )
    }

    const EXC: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
    const RSA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

    fn transforms(list: &[&str]) -> String {
        list.iter()
            .map(|a| format!(r#"<ds:Transform Algorithm="{a}"/>"#))
            .collect()
    }

    #[test]
    fn signature_shape_is_checked_before_xmlsec_sees_it() {
        let algorithms = Algorithms::new(SignatureAlgorithm::DEFAULT);
        let good_transforms = transforms(&[ENVELOPED, EXC]);
        let read = |xml: String| {
            let doc = Document::parse(&xml).expect("well-formed");
            Shape::read(&doc, &algorithms).map(|s| (s.response_signed, s.assertion_signed))
        };
        assert_eq!(
            read(skeleton(EXC, "#a1", &good_transforms, RSA256, SHA256)),
            Ok((false, true))
        );
        let with_comments = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
        for (what, xml) in [
            (
                "another element",
                skeleton(EXC, "#r1", &good_transforms, RSA256, SHA256),
            ),
            (
                "a remote reference",
                skeleton(EXC, "http://evil.test/x", &good_transforms, RSA256, SHA256),
            ),
            (
                "the whole document",
                skeleton(EXC, "", &good_transforms, RSA256, SHA256),
            ),
            (
                "comments kept",
                skeleton(with_comments, "#a1", &good_transforms, RSA256, SHA256),
            ),
            (
                "comments kept in the transform",
                skeleton(
                    EXC,
                    "#a1",
                    &transforms(&[ENVELOPED, with_comments]),
                    RSA256,
                    SHA256,
                ),
            ),
            (
                "XPath",
                skeleton(
                    EXC,
                    "#a1",
                    &transforms(&[ENVELOPED, "http://www.w3.org/TR/1999/REC-xpath-19991116"]),
                    RSA256,
                    SHA256,
                ),
            ),
            (
                "no enveloped transform",
                skeleton(EXC, "#a1", &transforms(&[EXC]), RSA256, SHA256),
            ),
            (
                "SHA-1",
                skeleton(
                    EXC,
                    "#a1",
                    &good_transforms,
                    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
                    SHA256,
                ),
            ),
            (
                "HMAC",
                skeleton(
                    EXC,
                    "#a1",
                    &good_transforms,
                    "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
                    SHA256,
                ),
            ),
            (
                "a SHA-1 digest",
                skeleton(
                    EXC,
                    "#a1",
                    &good_transforms,
                    RSA256,
                    "http://www.w3.org/2000/09/xmldsig#sha1",
                ),
            ),
        ] {
            assert!(
                matches!(
                    read(xml),
                    Err(SamlError::Signature(_) | SamlError::Algorithm(_) | SamlError::Malformed(_))
                ),
                "{what} was accepted"
            );
        }
        let rsa_sha1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
        assert_eq!(
            read(skeleton(EXC, "#a1", &good_transforms, rsa_sha1, SHA256)),
            Err(SamlError::Algorithm(rsa_sha1.into()))
        );
        let sha1 = Algorithms::new(&[SignatureAlgorithm::RsaSha256, SignatureAlgorithm::RsaSha1]);
        let xml = skeleton(
            EXC,
            "#a1",
            &good_transforms,
            SignatureAlgorithm::RsaSha1.uri(),
            SignatureAlgorithm::RsaSha1.digest_uri(),
        );
        let doc = Document::parse(&xml).expect("well-formed");
        assert!(Shape::read(&doc, &sha1).is_ok(), "SHA-1 when opted in");
        // A second reference, a signature in the wrong place, duplicate IDs.
        let two_refs = skeleton(EXC, "#a1", &good_transforms, RSA256, SHA256).replace(
            "</ds:SignedInfo>",
            r##"<ds:Reference URI="#r1"/></ds:SignedInfo>"##,
        );
        assert!(read(two_refs).is_err());
        let misplaced = skeleton(EXC, "#a1", &good_transforms, RSA256, SHA256)
            .replace(
                "<a:Assertion ID=\"a1\" Version=\"2.0\">",
                "<a:Assertion ID=\"a1\" Version=\"2.0\"><a:Advice>",
            )
            .replace("</ds:Signature>", "</ds:Signature></a:Advice>");
        assert!(matches!(read(misplaced), Err(SamlError::Signature(_))));
        let duplicate =
            skeleton(EXC, "#a1", &good_transforms, RSA256, SHA256).replace("ID=\"r1\"", "ID=\"a1\"");
        // The skeleton is otherwise acceptable: malformed only by its duplicate ID.
        assert!(matches!(read(duplicate), Err(SamlError::Malformed(_))));
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
