//! Step 2 without xmlsec (feature `saml-rust-dsig`): the signatures of a posted
//! response verified in Rust, on the document step 1 already parsed, against IdP
//! keys decoded once when the module is built.
//!
//! Only what step 1 ([`Shape::read`](super::signature::Shape)) lets through has
//! to be handled: enveloped signatures on the Response or the Assertion, one
//! `Reference` to the parent's `ID`, the enveloped-signature transform and at
//! most one canonicalisation without comments. Exclusive C14N 1.0 (with an
//! `InclusiveNamespaces` prefix list) and inclusive C14N 1.0 are implemented
//! here; C14N 1.1 is refused ([`SamlError::Algorithm`]), and so are ECDSA
//! signatures whose curve and digest differ (ring verifies P-256 with SHA-256
//! and P-384 with SHA-384 only). Digests and signatures are ring's.
//!
//! The answer is what xmlsec answers in `PreDigest` mode: the canonical bytes of
//! the signed element (the Response when it is signed, else the Assertion), from
//! which step 3 reads every value.

use base64ct::{Base64, Encoding};
use ring::digest;
use ring::signature::{self as ring_signature, UnparsedPublicKey, VerificationAlgorithm};
use roxmltree::{Document, Node, NodeId};
use samael::crypto::CertificateDer;

use super::error::{SamlError, algorithm, signature};
use super::response::{ASSERTION_NS, PROTOCOL_NS, only_child};
use super::signature::DSIG_NS;
use crate::modules::xml::is;

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// A signing key of the IdP, decoded from its certificate once.
#[derive(Debug, Clone)]
enum IdpKey {
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// An uncompressed P-256 point.
    P256(Vec<u8>),
    /// An uncompressed P-384 point.
    P384(Vec<u8>),
}

/// The IdP's signing keys, decoded once per metadata (module) version.
#[derive(Debug, Clone)]
pub(crate) struct IdpKeys(Vec<IdpKey>);

impl IdpKeys {
    /// The public keys of these certificates; an error names what cannot be used.
    pub(crate) fn from_certificates(certificates: &[CertificateDer]) -> Result<IdpKeys, String> {
        use openssl::ec::PointConversionForm;
        use openssl::nid::Nid;
        let mut keys = Vec::with_capacity(certificates.len());
        for certificate in certificates {
            let cert = openssl::x509::X509::from_der(certificate.der_data())
                .map_err(|_| "not an X.509 certificate".to_owned())?;
            let public = cert
                .public_key()
                .map_err(|_| "the certificate's public key cannot be read".to_owned())?;
            let key = if let Ok(rsa) = public.rsa() {
                if rsa.size() < 256 {
                    // ring verifies 2048 to 8192 bits: say so now, not at each login.
                    return Err("the RSA key has fewer than 2048 bits".to_owned());
                }
                IdpKey::Rsa(
                    rsa.public_key_to_der_pkcs1()
                        .map_err(|_| "the RSA key cannot be encoded".to_owned())?,
                )
            } else if let Ok(ec) = public.ec_key() {
                let mut ctx = openssl::bn::BigNumContext::new().map_err(|_| "out of memory".to_owned())?;
                let point = ec
                    .public_key()
                    .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
                    .map_err(|_| "the EC key cannot be encoded".to_owned())?;
                match ec.group().curve_name() {
                    Some(Nid::X9_62_PRIME256V1) => IdpKey::P256(point),
                    Some(Nid::SECP384R1) => IdpKey::P384(point),
                    _ => return Err("the EC key is neither on P-256 nor on P-384".to_owned()),
                }
            } else {
                return Err("the certificate's key is neither RSA nor EC".to_owned());
            };
            keys.push(key);
        }
        Ok(IdpKeys(keys))
    }

    /// Whether one of the keys made `value` over `message` with `method`.
    fn verify(&self, method: &str, message: &[u8], value: &[u8]) -> Result<bool, SamlError> {
        let rsa: &'static dyn VerificationAlgorithm = match method {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA256
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA384
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA512
            }
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => {
                &ring_signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => {
                return Ok(self.verify_ec(true, message, value));
            }
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => {
                return Ok(self.verify_ec(false, message, value));
            }
            other => return Err(algorithm(other)),
        };
        Ok(self.0.iter().any(|key| match key {
            IdpKey::Rsa(der) => UnparsedPublicKey::new(rsa, der).verify(message, value).is_ok(),
            IdpKey::P256(_) | IdpKey::P384(_) => false,
        }))
    }

    /// ECDSA: P-256 with SHA-256 (`p256`) or P-384 with SHA-384; XML signatures
    /// carry `r || s`, ring's fixed form.
    fn verify_ec(&self, p256: bool, message: &[u8], value: &[u8]) -> bool {
        self.0.iter().any(|key| match key {
            IdpKey::P256(point) if p256 => {
                UnparsedPublicKey::new(&ring_signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, value)
                    .is_ok()
            }
            IdpKey::P384(point) if !p256 => {
                UnparsedPublicKey::new(&ring_signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, value)
                    .is_ok()
            }
            _ => false,
        })
    }
}

fn digest_algorithm(uri: &str) -> Result<&'static digest::Algorithm, SamlError> {
    Ok(match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => &digest::SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => &digest::SHA384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => &digest::SHA512,
        "http://www.w3.org/2000/09/xmldsig#sha1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        other => return Err(algorithm(other)),
    })
}

/// Base64 content of an element, line breaks and spaces allowed.
fn base64_of(node: Node<'_, '_>, what: &str) -> Result<Vec<u8>, SamlError> {
    let text: String = node
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .flat_map(str::chars)
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    Base64::decode_vec(&text).map_err(|_| signature(format!("the {what} is not base64")))
}

/// A canonicalisation method with its `InclusiveNamespaces` prefix list.
struct Method<'a> {
    exclusive: bool,
    prefixes: Vec<&'a str>,
}

impl<'a> Method<'a> {
    /// The method named by `element`'s `Algorithm` (a `CanonicalizationMethod` or
    /// `Transform`).
    fn of(element: Node<'a, '_>) -> Result<Method<'a>, SamlError> {
        let uri = element
            .attribute("Algorithm")
            .ok_or_else(|| signature("a canonicalisation without Algorithm"))?;
        let exclusive = match uri {
            EXC_C14N => true,
            C14N_10 => false,
            other => return Err(algorithm(other)),
        };
        let prefixes = element
            .children()
            .find(|c| is(*c, EXC_C14N, "InclusiveNamespaces"))
            .and_then(|list| list.attribute("PrefixList"))
            .map(|list| {
                list.split_ascii_whitespace()
                    .map(|p| if p == "#default" { "" } else { p })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Method { exclusive, prefixes })
    }

    /// Inclusive C14N 1.0: what a reference without a canonicalisation transform
    /// is digested with.
    fn inclusive() -> Method<'static> {
        Method {
            exclusive: false,
            prefixes: Vec::new(),
        }
    }
}

/// Verifies every signature of `doc` (placed and shaped as step 1 checked) and
/// answers the canonical bytes of the signed Response, or of the signed
/// Assertion when only it is signed.
pub(super) fn verify(doc: &Document<'_>, keys: &IdpKeys) -> Result<String, SamlError> {
    let root = doc.root_element();
    let mut signed_response = None;
    let mut signed_assertion = None;
    for sig in doc.descendants().filter(|n| is(*n, DSIG_NS, "Signature")) {
        let parent = sig
            .parent_element()
            .ok_or_else(|| signature("a signature without a parent"))?;
        let canonical = verify_one(doc, sig, parent, keys)?;
        if parent == root && is(parent, PROTOCOL_NS, "Response") {
            signed_response = Some(canonical);
        } else if is(parent, ASSERTION_NS, "Assertion") {
            signed_assertion = Some(canonical);
        } else {
            return Err(signature(
                "a signature outside the Response and Assertion elements",
            ));
        }
    }
    signed_response
        .or(signed_assertion)
        .ok_or_else(|| signature("no signature"))
}

/// The one enveloped signature `sig` of `element` (signed metadata): the
/// canonical bytes of `element`, as [`verify`] answers them for a response.
pub(super) fn verify_enveloped(
    doc: &Document<'_>,
    sig: Node<'_, '_>,
    element: Node<'_, '_>,
    keys: &IdpKeys,
) -> Result<String, SamlError> {
    verify_one(doc, sig, element, keys)
}

/// One enveloped signature over `parent`: its reference's digest, then its value.
fn verify_one(
    doc: &Document<'_>,
    sig: Node<'_, '_>,
    parent: Node<'_, '_>,
    keys: &IdpKeys,
) -> Result<String, SamlError> {
    let signed_info = only_child(sig, DSIG_NS, "SignedInfo")?;
    let info_method = Method::of(only_child(signed_info, DSIG_NS, "CanonicalizationMethod")?)?;
    let signature_method = only_child(signed_info, DSIG_NS, "SignatureMethod")?
        .attribute("Algorithm")
        .unwrap_or_default();
    let reference = only_child(signed_info, DSIG_NS, "Reference")?;
    let transforms = only_child(reference, DSIG_NS, "Transforms")?;
    let mut method = Method::inclusive();
    for transform in transforms.children().filter(|c| c.is_element()) {
        if transform.attribute("Algorithm") != Some(ENVELOPED) {
            method = Method::of(transform)?;
        }
    }
    let digest_method = digest_algorithm(
        only_child(reference, DSIG_NS, "DigestMethod")?
            .attribute("Algorithm")
            .unwrap_or_default(),
    )?;
    let expected = base64_of(only_child(reference, DSIG_NS, "DigestValue")?, "DigestValue")?;

    let canonical = canonicalize(doc, parent, &method, Some(sig.id()));
    if digest::digest(digest_method, canonical.as_bytes()).as_ref() != expected.as_slice() {
        return Err(signature("the digest of the signed element does not match"));
    }
    let info = canonicalize(doc, signed_info, &info_method, None);
    let value = base64_of(only_child(sig, DSIG_NS, "SignatureValue")?, "SignatureValue")?;
    if !keys.verify(signature_method, info.as_bytes(), &value)? {
        return Err(signature("the signature does not verify against the IdP's keys"));
    }
    Ok(canonical)
}

/// The canonical form of the element `apex` and its content, without `skip` (the
/// enveloped signature) and without comments.
fn canonicalize<'d>(
    doc: &'d Document<'_>,
    apex: Node<'d, '_>,
    method: &Method<'_>,
    skip: Option<NodeId>,
) -> String {
    let mut c14n = Canonicalizer {
        input: doc.input_text(),
        method,
        skip,
        out: String::with_capacity(apex.range().len() + 256),
    };
    c14n.element(apex, &[], true);
    c14n.out
}

struct Canonicalizer<'m, 'd> {
    input: &'d str,
    method: &'m Method<'m>,
    skip: Option<NodeId>,
    out: String,
}

/// The prefix of a qualified name (`""` for none).
fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(prefix, _)| prefix)
}

impl<'d> Canonicalizer<'_, 'd> {
    /// The element's name as written (roxmltree keeps expanded names only).
    fn qname(&self, node: Node<'d, '_>) -> &'d str {
        let tag = &self.input[node.range().start + 1..];
        let end = tag
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .unwrap_or(tag.len());
        &tag[..end]
    }

    /// `rendered`: the namespace declarations in force in the output so far, by
    /// prefix (`""`: the default namespace).
    fn element(&mut self, node: Node<'d, '_>, rendered: &[(&'d str, &'d str)], apex: bool) {
        let qname = self.qname(node);
        let prefix = prefix_of(qname);
        let input = self.input;
        let mut attributes: Vec<(&'d str, &'d str, &'d str, &'d str)> = node
            .attributes()
            .map(|a| {
                (
                    a.namespace().unwrap_or(""),
                    a.name(),
                    &input[a.range_qname()],
                    a.value(),
                )
            })
            .collect();
        if apex && !self.method.exclusive {
            // Inclusive C14N 1.0 brings the xml:* attributes of the ancestors along.
            for ancestor in node.ancestors().skip(1).filter(|a| a.is_element()) {
                for a in ancestor.attributes().filter(|a| a.namespace() == Some(XML_NS)) {
                    if !attributes
                        .iter()
                        .any(|(ns, name, _, _)| *ns == XML_NS && *name == a.name())
                    {
                        attributes.push((XML_NS, a.name(), &input[a.range_qname()], a.value()));
                    }
                }
            }
        }
        let utilized = |p: &str| {
            !self.method.exclusive
                || p == prefix
                || self.method.prefixes.contains(&p)
                || attributes
                    .iter()
                    .any(|(ns, _, q, _)| !ns.is_empty() && prefix_of(q) == p)
        };
        let in_force = |p: &str| {
            rendered
                .iter()
                .rev()
                .find(|(q, _)| *q == p)
                .map_or("", |(_, uri)| *uri)
        };
        let mut declarations: Vec<(&'d str, &'d str)> = Vec::new();
        let default = node.default_namespace().unwrap_or("");
        if utilized("") && default != in_force("") {
            declarations.push(("", default));
        }
        for ns in node.namespaces() {
            if let Some(p) = ns.name()
                && p != "xml"
                && utilized(p)
                && ns.uri() != in_force(p)
            {
                declarations.push((p, ns.uri()));
            }
        }
        declarations.sort_unstable();
        attributes.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        self.out.push('<');
        self.out.push_str(qname);
        for (p, uri) in &declarations {
            self.out.push_str(if p.is_empty() { " xmlns" } else { " xmlns:" });
            self.out.push_str(p);
            self.out.push_str("=\"");
            escape_attribute(&mut self.out, uri);
            self.out.push('"');
        }
        for (_, _, name, value) in &attributes {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape_attribute(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
        let mut scope = rendered.to_vec();
        scope.extend(declarations);
        for child in node.children() {
            if Some(child.id()) == self.skip {
                continue;
            }
            if child.is_element() {
                self.element(child, &scope, false);
            } else if child.is_text() {
                escape_text(&mut self.out, child.text().unwrap_or_default());
            } else if let Some(pi) = child.pi() {
                self.out.push_str("<?");
                self.out.push_str(pi.target);
                if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
                    self.out.push(' ');
                    self.out.push_str(value);
                }
                self.out.push_str("?>");
            }
        }
        self.out.push_str("</");
        self.out.push_str(qname);
        self.out.push('>');
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attribute(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exc(xml: &str, prefixes: &[&'static str]) -> String {
        let doc = Document::parse(xml).expect("well-formed");
        let method = Method {
            exclusive: true,
            prefixes: prefixes.to_vec(),
        };
        let apex = doc.root_element().first_element_child().expect("a child");
        canonicalize(&doc, apex, &method, None)
    }

    #[test]
    fn exclusive_c14n_renders_only_utilized_namespaces_in_order() {
        let xml = r#"<r xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b"><a:e z="1" b:y="2" a="&amp;&#9;&lt;">t&gt;<!--c--><?p x?><f/></a:e></r>"#;
        assert_eq!(
            exc(xml, &[]),
            r#"<a:e xmlns:a="urn:a" xmlns:b="urn:b" a="&amp;&#x9;&lt;" z="1" b:y="2">t&gt;<?p x?><f xmlns="urn:d"></f></a:e>"#
        );
        assert_eq!(
            exc(xml, &["", "b"]),
            r#"<a:e xmlns="urn:d" xmlns:a="urn:a" xmlns:b="urn:b" a="&amp;&#x9;&lt;" z="1" b:y="2">t&gt;<?p x?><f></f></a:e>"#
        );
        // An undeclared default namespace below a rendered one.
        let undeclared = r#"<r><e xmlns="urn:d"><f xmlns=""/></e></r>"#;
        assert_eq!(exc(undeclared, &[]), r#"<e xmlns="urn:d"><f xmlns=""></f></e>"#);
    }

    #[test]
    fn inclusive_c14n_renders_every_namespace_in_scope_and_xml_attributes() {
        let xml = r#"<r xmlns:a="urn:a" xml:lang="en"><e><f xmlns:a="urn:a"/></e></r>"#;
        let doc = Document::parse(xml).expect("well-formed");
        let apex = doc.root_element().first_element_child().expect("e");
        assert_eq!(
            canonicalize(&doc, apex, &Method::inclusive(), None),
            r#"<e xmlns:a="urn:a" xml:lang="en"><f></f></e>"#
        );
    }
}
