//! Surgery on real signed responses, for the attack tests: which bytes are
//! signed, and responses rebuilt with parts altered, removed or added.

use std::ops::Range;

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

fn parse(xml: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(xml).expect("a well-formed response")
}

fn is(node: roxmltree::Node<'_, '_>, namespace: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(namespace)
}

pub fn root_attribute(xml: &str, name: &str) -> Option<String> {
    parse(xml).root_element().attribute(name).map(str::to_owned)
}

/// The root element's name as written (`ns0:Response`).
pub fn root_qname(xml: &str) -> String {
    let doc = parse(xml);
    let start = doc.root_element().range().start + 1;
    let end = start + xml[start..].find([' ', '>']).expect("end of the name");
    xml[start..end].to_owned()
}

/// The prefix an element is written with (`ns1` for `<ns1:Assertion`).
fn prefix_of(xml: &str, node: roxmltree::Node<'_, '_>) -> String {
    let start = node.range().start + 1;
    let name_end = start + xml[start..].find([' ', '>', '/']).expect("end of the name");
    match xml[start..name_end].split_once(':') {
        Some((prefix, _)) => format!("{prefix}:"),
        None => String::new(),
    }
}

/// Byte ranges of every text and attribute value a signature covers: all of them
/// except the ones inside `KeyInfo` and `SignatureValue` and the attributes of the
/// `Signature` elements themselves.
pub fn signed_value_ranges(xml: &str) -> Vec<Range<usize>> {
    let doc = parse(xml);
    let mut ranges = Vec::new();
    for node in doc.descendants() {
        let unsigned = node
            .ancestors()
            .any(|a| is(a, DSIG, "KeyInfo") || is(a, DSIG, "SignatureValue"));
        if unsigned {
            continue;
        }
        if node.is_text() {
            ranges.push(node.range());
        } else if node.is_element() && !is(node, DSIG, "Signature") {
            ranges.extend(node.attributes().map(|a| a.range_value()));
        }
    }
    ranges
}

/// The response with one letter or digit in `range` replaced by another; `None`
/// when the range holds none.
pub fn alter_one_character(xml: &str, range: Range<usize>) -> Option<String> {
    let text = &xml[range.clone()];
    let positions: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .collect();
    let at = range.start + *positions.get(positions.len() / 2)?;
    let old = xml.as_bytes()[at];
    let new = match old {
        b'z' => b'a',
        b'Z' => b'A',
        b'9' => b'0',
        other => other + 1,
    };
    let mut bytes = xml.as_bytes().to_vec();
    bytes[at] = new;
    Some(String::from_utf8(bytes).expect("ASCII swap keeps UTF-8"))
}

/// The response with the certificate in the Response signature's KeyInfo (the
/// one part no signature covers) replaced by `base64`.
pub fn replace_response_certificate(xml: &str, base64: &str) -> String {
    let doc = parse(xml);
    let root = doc.root_element();
    let range = root
        .children()
        .find(|n| is(*n, DSIG, "Signature"))
        .and_then(|sig| sig.descendants().find(|n| is(*n, DSIG, "X509Certificate")))
        .and_then(|cert| cert.first_child())
        .expect("a certificate in the response's KeyInfo")
        .range();
    let mut out = xml.to_owned();
    out.replace_range(range, base64);
    out
}

fn remove(xml: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.sort_by_key(|r| std::cmp::Reverse(r.start));
    let mut out = xml.to_owned();
    for range in ranges {
        out.replace_range(range, "");
    }
    out
}

/// The response without the Response's and/or the Assertion's signature.
pub fn without_signatures(xml: &str, response: bool, assertion: bool) -> String {
    let doc = parse(xml);
    let ranges = doc
        .descendants()
        .filter(|n| is(*n, DSIG, "Signature"))
        .filter(|n| {
            let parent = n.parent_element().expect("parent");
            (response && is(parent, PROTOCOL, "Response"))
                || (assertion && is(parent, ASSERTION, "Assertion"))
        })
        .map(|n| n.range())
        .collect();
    remove(xml, ranges)
}

/// Signature-wrapping variants: an unsigned assertion for `evil` placed beside,
/// around or instead of the signed one (the signed one moved elsewhere).
pub fn wrapping_attacks(xml: &str, evil: &str) -> Vec<(&'static str, String)> {
    let doc = parse(xml);
    let assertion = doc
        .descendants()
        .find(|n| is(*n, ASSERTION, "Assertion"))
        .expect("assertion");
    let root = doc.root_element();
    let name_id = assertion
        .descendants()
        .find(|n| is(*n, ASSERTION, "NameID"))
        .and_then(|n| n.text())
        .expect("NameID")
        .to_owned();
    let signed = &xml[assertion.range()];
    let assertion_id = assertion.attribute("ID").expect("ID");
    // The evil twin: the same assertion, unsigned, another ID and subject.
    let signature = assertion
        .children()
        .find(|n| is(*n, DSIG, "Signature"))
        .expect("assertion signature")
        .range();
    let twin = format!(
        "{}{}",
        &xml[assertion.range().start..signature.start],
        &xml[signature.end..assertion.range().end]
    )
    .replace(assertion_id, "evil-assertion")
    .replace(&format!(">{name_id}<"), &format!(">{evil}<"));
    let a = prefix_of(xml, assertion);
    let p = prefix_of(xml, root);

    let mut attacks = Vec::new();
    // Beside: the response still signed (it breaks) ...
    let beside = format!(
        "{}{twin}{}",
        &xml[..assertion.range().start],
        &xml[assertion.range().start..]
    );
    attacks.push(("beside, response signed", beside.clone()));
    // ... and with the response's signature removed, first and last.
    attacks.push((
        "beside, before the signed one",
        without_signatures(&beside, true, false),
    ));
    let after = format!(
        "{}{twin}{}",
        &xml[..assertion.range().end],
        &xml[assertion.range().end..]
    );
    attacks.push((
        "beside, after the signed one",
        without_signatures(&after, true, false),
    ));
    // Around: the evil assertion holds the signed one in its Advice.
    let twin_end = twin.rfind("</").expect("closing tag");
    let around_assertion = format!(
        "{}<{a}Advice>{signed}</{a}Advice>{}",
        &twin[..twin_end],
        &twin[twin_end..]
    );
    let around = format!(
        "{}{around_assertion}{}",
        &xml[..assertion.range().start],
        &xml[assertion.range().end..]
    );
    attacks.push(("around (Advice)", without_signatures(&around, true, false)));
    // Instead: the signed one hidden in Extensions, the evil one in its place.
    let status = root
        .children()
        .find(|n| is(*n, PROTOCOL, "Status"))
        .expect("Status");
    let moved = format!(
        "{}<{p}Extensions>{signed}</{p}Extensions>{}{twin}{}",
        &xml[..status.range().start],
        &xml[status.range().start..assertion.range().start],
        &xml[assertion.range().end..]
    );
    attacks.push((
        "signed one in Extensions",
        without_signatures(&moved, true, false),
    ));
    // Only the evil one, the signed one gone.
    let replaced = format!(
        "{}{twin}{}",
        &xml[..assertion.range().start],
        &xml[assertion.range().end..]
    );
    attacks.push(("replaced", without_signatures(&replaced, true, false)));
    attacks
}
