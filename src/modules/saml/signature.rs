//! Step 1 of the verification, the signatures' side: where a `ds:Signature` may
//! be, what it may reference, which transforms and algorithms it may use (all
//! checked before xmlsec sees the document), and the algorithm allow-list handed
//! to samael as well.

use std::collections::HashSet;

use roxmltree::{Document, Node};
use samael::crypto::AllowedSignatureAlgorithm;

use super::error::{SamlError, algorithm, malformed, signature};
use super::response::{ASSERTION_NS, PROTOCOL_NS, id_of, only_child};
use crate::modules::xml::is;

pub(super) const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// Canonicalisations accepted, all without comments.
const CANONICALIZATIONS: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/2006/12/xml-c14n11",
];

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
    #[cfg(not(feature = "saml-rust-dsig"))]
    samael: Option<Vec<AllowedSignatureAlgorithm>>,
}

impl Algorithms {
    pub(crate) fn new(list: &[SignatureAlgorithm]) -> Self {
        let mut digests: Vec<&'static str> = list.iter().map(|a| a.digest_uri()).collect();
        digests.dedup();
        Algorithms {
            signatures: list.iter().map(|a| a.uri()).collect(),
            digests,
            #[cfg(not(feature = "saml-rust-dsig"))]
            samael: list.iter().map(|a| a.samael()).collect(),
        }
    }
}

#[cfg(not(feature = "saml-rust-dsig"))]
impl Algorithms {
    /// samael's allow-list (`None` when SHA-1 is allowed: our check is then the
    /// only one).
    pub(super) fn samael(&self) -> Option<&[AllowedSignatureAlgorithm]> {
        self.samael.as_deref()
    }
}

/// The structure of the posted document (step 1).
pub(super) struct Shape {
    pub(super) response_id: String,
    /// The assertion's `ID`; `None` when the response holds an `EncryptedAssertion`.
    pub(super) assertion_id: Option<String>,
    pub(super) response_signed: bool,
    pub(super) assertion_signed: bool,
}

impl Shape {
    pub(super) fn read(doc: &Document<'_>, algorithms: &Algorithms) -> Result<Shape, SamlError> {
        let root = doc.root_element();
        if !is(root, PROTOCOL_NS, "Response") {
            return Err(malformed("the root element is not a samlp:Response"));
        }
        let mut ids = HashSet::new();
        let mut assertions = Vec::new();
        let mut encrypted = Vec::new();
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
                encrypted.push(node);
            } else if is(node, DSIG_NS, "Signature") {
                signatures.push(node);
            }
        }
        match (assertions.as_slice(), encrypted.as_slice()) {
            (_, []) => {}
            ([], [one]) if one.parent_element() == Some(root) => {}
            ([], [_]) => {
                return Err(malformed(
                    "the encrypted assertion is not a child of the Response",
                ));
            }
            ([], more) => {
                return Err(malformed(format!(
                    "the response holds {} encrypted assertions; exactly one is accepted",
                    more.len()
                )));
            }
            (_, _) => {
                return Err(malformed(
                    "the response holds an encrypted assertion beside a plaintext one",
                ));
            }
        }
        let assertion = match assertions.as_slice() {
            [] if encrypted.len() == 1 => None,
            [] => return Err(malformed("the response holds no assertion")),
            [one] if one.parent_element() == Some(root) => Some(*one),
            [_] => return Err(malformed("the assertion is not a child of the Response")),
            more => {
                return Err(malformed(format!(
                    "the response holds {} assertions; exactly one is accepted",
                    more.len()
                )));
            }
        };
        let response_id = id_of(root)?;
        let assertion_id = assertion.map(id_of).transpose()?;
        let (mut response_signed, mut assertion_signed) = (false, false);
        for sig in signatures {
            let parent = sig.parent_element();
            let (flag, signed_id) = if parent == Some(root) {
                (&mut response_signed, &response_id)
            } else if let (Some(assertion), Some(id)) = (assertion, &assertion_id)
                && parent == Some(assertion)
            {
                (&mut assertion_signed, id)
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
pub(super) fn check_signature_shape(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
