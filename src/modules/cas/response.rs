//! Reading a CAS ticket validation answer (`serviceValidate`, `p3/serviceValidate`)
//! with a real XML parser (roxmltree), matching elements by namespace
//! (`http://www.yale.edu/tp/cas`) and local name, never by prefix or text search.
//!
//! Documents with a DTD are refused (so no entity is ever defined, let alone fetched),
//! as are documents with more than [`MAX_NODES`] nodes. Anything that is not exactly
//! one `cas:authenticationSuccess` with exactly one non-empty `cas:user`, or one
//! `cas:authenticationFailure` with a `code`, is a [`MalformedResponse`].

use std::collections::BTreeMap;

use roxmltree::Node;

use crate::modules::xml::{self, XmlError, XmlReader};

/// The CAS XML namespace.
pub const CAS_NAMESPACE: &str = "http://www.yale.edu/tp/cas";
/// Most XML nodes accepted in one answer.
pub const MAX_NODES: u32 = 100_000;
/// Longest accepted user name or attribute value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Most attribute values kept from one answer (further values are dropped).
pub const MAX_ATTRIBUTE_VALUES: usize = 10_000;

/// A validation answer the CAS server gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationResponse {
    /// `cas:authenticationSuccess`: the ticket was valid for the service.
    Success(CasUser),
    /// `cas:authenticationFailure`: the server refused the ticket.
    Failure {
        /// The failure `code` (`INVALID_TICKET`, `INVALID_SERVICE`, `INVALID_REQUEST`,
        /// `INTERNAL_ERROR`, ...), reduced to `A-Z`, `0-9` and `_`, at most 64 characters.
        code: String,
        /// The server's explanation, reduced to printable characters, at most 200.
        /// It can name the ticket: do not show it to users.
        description: String,
    },
}

/// The user of a successful validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CasUser {
    /// `cas:user`, trimmed.
    pub user: String,
    /// The released attributes by name, values in document order (a repeated
    /// element gives several values). Empty, over-long, control-character and
    /// markup-carrying values are dropped.
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedResponse {
    /// The body is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The document has a DTD (refused, so that no entity is ever defined).
    #[error("it has a DTD (refused)")]
    Dtd,
    /// More than [`MAX_NODES`] XML nodes.
    #[error("more than {MAX_NODES} XML nodes")]
    TooManyNodes,
    /// Not well-formed XML (the parser's description, for logs).
    #[error("not well-formed XML: {0}")]
    NotWellFormed(String),
    /// The root element is not `cas:serviceResponse` in [`CAS_NAMESPACE`].
    #[error("the root element is not cas:serviceResponse in {CAS_NAMESPACE}")]
    NotServiceResponse,
    /// `cas:serviceResponse` holds no answer.
    #[error("cas:serviceResponse is empty")]
    NoAnswer,
    /// `cas:serviceResponse` holds more than one answer.
    #[error("cas:serviceResponse holds more than one answer")]
    SeveralAnswers,
    /// The answer is neither `cas:authenticationSuccess` nor
    /// `cas:authenticationFailure` (a proxy answer, another namespace, ...).
    #[error("neither cas:authenticationSuccess nor cas:authenticationFailure")]
    UnknownAnswer,
    /// `cas:authenticationFailure` without a `code`.
    #[error("cas:authenticationFailure has no code")]
    NoFailureCode,
    /// `cas:authenticationSuccess` without `cas:user`.
    #[error("cas:authenticationSuccess has no cas:user")]
    NoUser,
    /// More than one `cas:user`.
    #[error("more than one cas:user")]
    SeveralUsers,
    /// The `cas:user` value is unusable.
    #[error("cas:user {0}")]
    BadUser(BadValue),
}

/// Why a value (`cas:user`) is unusable ([`MalformedResponse::BadUser`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum BadValue {
    /// Empty, or white space only.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_VALUE_BYTES`].
    #[error("is too long")]
    TooLong,
    /// Holds a control character.
    #[error("contains a control character")]
    ControlCharacter,
    /// Holds an element or a comment (which could hide part of the value from a
    /// reader that takes the first text node).
    #[error("contains markup")]
    Markup,
}

/// Parses a validation answer.
pub fn parse(body: &[u8]) -> Result<ValidationResponse, MalformedResponse> {
    let text = std::str::from_utf8(body).map_err(|_| MalformedResponse::NotUtf8)?;
    let doc = XmlReader::new(MAX_NODES).parse(text).map_err(|e| match e {
        XmlError::Doctype => MalformedResponse::Dtd,
        XmlError::TooManyNodes => MalformedResponse::TooManyNodes,
        XmlError::NotWellFormed(e) => MalformedResponse::NotWellFormed(e.to_string()),
    })?;
    let root = doc.root_element();
    if !is_cas(root, "serviceResponse") {
        return Err(MalformedResponse::NotServiceResponse);
    }
    let mut answers = root.children().filter(Node::is_element);
    let answer = answers.next().ok_or(MalformedResponse::NoAnswer)?;
    if answers.next().is_some() {
        return Err(MalformedResponse::SeveralAnswers);
    }
    if is_cas(answer, "authenticationSuccess") {
        success(answer).map(ValidationResponse::Success)
    } else if is_cas(answer, "authenticationFailure") {
        let code: String = answer
            .attribute("code")
            .unwrap_or_default()
            .trim()
            .chars()
            .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .take(64)
            .collect();
        if code.is_empty() {
            return Err(MalformedResponse::NoFailureCode);
        }
        let description = answer
            .children()
            .filter(Node::is_text)
            .filter_map(|n| n.text())
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Ok(ValidationResponse::Failure { code, description })
    } else {
        Err(MalformedResponse::UnknownAnswer)
    }
}

fn is_cas(node: Node<'_, '_>, name: &str) -> bool {
    xml::is(node, CAS_NAMESPACE, name)
}

fn success(node: Node<'_, '_>) -> Result<CasUser, MalformedResponse> {
    let mut user = None;
    let mut attributes = Attributes::default();
    for child in node.children().filter(Node::is_element) {
        if is_cas(child, "user") {
            if user.is_some() {
                return Err(MalformedResponse::SeveralUsers);
            }
            let text = value(child).map_err(MalformedResponse::BadUser)?;
            user = Some(text);
        } else if is_cas(child, "attributes") {
            for attribute in child.children().filter(Node::is_element) {
                attributes.add(attribute);
            }
        } else if is_cas(child, "attribute") {
            // Some CAS 2 servers release attributes directly under the success.
            attributes.add(child);
        }
        // cas:proxyGrantingTicket, cas:proxies and extensions are not used.
    }
    let user = user.ok_or(MalformedResponse::NoUser)?;
    Ok(CasUser {
        user,
        attributes: attributes.map,
    })
}

#[derive(Default)]
struct Attributes {
    map: BTreeMap<String, Vec<String>>,
    count: usize,
}

impl Attributes {
    /// CAS 3 `<cas:name>value</cas:name>`, or the older
    /// `<cas:attribute name="name" value="value"/>`.
    fn add(&mut self, node: Node<'_, '_>) {
        if node.tag_name().namespace() != Some(CAS_NAMESPACE) || self.count >= MAX_ATTRIBUTE_VALUES {
            return;
        }
        let (name, value) = match (
            node.tag_name().name(),
            node.attribute("name"),
            node.attribute("value"),
        ) {
            ("attribute", Some(name), Some(value)) => (name, clean(value)),
            (name, ..) => (name, value(node)),
        };
        let name_ok = !name.is_empty() && name.len() <= 256 && !name.chars().any(char::is_control);
        if let (true, Ok(value)) = (name_ok, value) {
            self.map.entry(name.to_owned()).or_default().push(value);
            self.count += 1;
        }
    }
}

/// The text of an element that holds text only (a comment or an element inside
/// could hide part of the value from a reader that takes the first text node).
fn value(node: Node<'_, '_>) -> Result<String, BadValue> {
    let mut text = String::new();
    for child in node.children() {
        if !child.is_text() {
            return Err(BadValue::Markup);
        }
        text.push_str(child.text().unwrap_or_default());
    }
    clean(&text)
}

fn clean(text: &str) -> Result<String, BadValue> {
    let text = text.trim();
    if text.is_empty() {
        Err(BadValue::Empty)
    } else if text.len() > MAX_VALUE_BYTES {
        Err(BadValue::TooLong)
    } else if text.chars().any(char::is_control) {
        Err(BadValue::ControlCharacter)
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(inner: &str) -> String {
        format!("<cas:serviceResponse xmlns:cas='{CAS_NAMESPACE}'>{inner}</cas:serviceResponse>")
    }

    fn error(doc: &str) -> MalformedResponse {
        parse(doc.as_bytes()).expect_err(doc)
    }

    #[test]
    fn cas3_success_with_repeated_attributes() {
        let doc = wrap(
            "<cas:authenticationSuccess>
               <cas:user> alice </cas:user>
               <cas:attributes>
                 <cas:email>alice@example.org</cas:email>
                 <cas:groups>admins</cas:groups>
                 <cas:groups><![CDATA[staff & co]]></cas:groups>
                 <cas:groups></cas:groups>
                 <cas:groups>a<!-- hidden -->b</cas:groups>
                 <other:x xmlns:other='urn:other'>ignored</other:x>
               </cas:attributes>
               <cas:proxyGrantingTicket>PGTIOU-1</cas:proxyGrantingTicket>
             </cas:authenticationSuccess>",
        );
        let ValidationResponse::Success(user) = parse(doc.as_bytes()).unwrap() else {
            panic!("success expected");
        };
        assert_eq!(user.user, "alice");
        assert_eq!(user.attributes["groups"], ["admins", "staff & co"]);
        assert_eq!(user.attributes["email"], ["alice@example.org"]);
        assert_eq!(user.attributes.len(), 2, "{:?}", user.attributes);
    }

    #[test]
    fn other_prefixes_and_the_old_attribute_form() {
        let doc = format!(
            "<?xml version='1.0' encoding='UTF-8'?>
             <s:serviceResponse xmlns:s='{CAS_NAMESPACE}'><s:authenticationSuccess>
               <s:user>bob</s:user>
               <s:attribute name='groups' value='staff'/>
               <s:attributes><s:attribute name='groups' value='ops'/></s:attributes>
             </s:authenticationSuccess></s:serviceResponse>"
        );
        let ValidationResponse::Success(user) = parse(doc.as_bytes()).unwrap() else {
            panic!("success expected");
        };
        assert_eq!(user.user, "bob");
        assert_eq!(user.attributes["groups"], ["staff", "ops"]);
    }

    #[test]
    fn failures_carry_a_sanitized_code() {
        let doc = wrap(
            "<cas:authenticationFailure code=' INVALID_TICKET&quot;&lt;x&gt; '>\n  ticket ST-1 not\n\trecognized\n</cas:authenticationFailure>",
        );
        assert_eq!(
            parse(doc.as_bytes()).unwrap(),
            ValidationResponse::Failure {
                code: "INVALID_TICKET".into(),
                description: "ticket ST-1 not recognized".into(),
            }
        );
        let missing = wrap("<cas:authenticationFailure>nope</cas:authenticationFailure>");
        assert_eq!(error(&missing), MalformedResponse::NoFailureCode);
    }

    #[test]
    fn dtds_and_entities_are_refused() {
        for doc in [
            format!(
                "<!DOCTYPE r [<!ENTITY e SYSTEM 'http://127.0.0.1:9/x'>]>{}",
                wrap("<cas:authenticationSuccess><cas:user>&e;</cas:user></cas:authenticationSuccess>")
            ),
            format!(
                "<!DOCTYPE r [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]>{}",
                wrap("<cas:authenticationSuccess><cas:user>&b;</cas:user></cas:authenticationSuccess>")
            ),
        ] {
            assert_eq!(error(&doc), MalformedResponse::Dtd, "{doc}");
        }
        // An external DTD is never fetched; its entities stay undefined.
        let doc = format!(
            "<!DOCTYPE r SYSTEM 'http://127.0.0.1:9/cas.dtd'>{}",
            wrap("<cas:authenticationSuccess><cas:user>&e;</cas:user></cas:authenticationSuccess>")
        );
        let err = error(&doc);
        assert!(
            matches!(err, MalformedResponse::Dtd | MalformedResponse::NotWellFormed(_)),
            "{err:?}"
        );
        // Without a DTD an undefined entity is simply not well-formed.
        let doc = wrap("<cas:authenticationSuccess><cas:user>&e;</cas:user></cas:authenticationSuccess>");
        assert!(matches!(error(&doc), MalformedResponse::NotWellFormed(_)));
    }

    #[test]
    fn wrong_or_missing_namespace_is_refused() {
        let success = "<cas:authenticationSuccess><cas:user>alice</cas:user></cas:authenticationSuccess>";
        let other = format!("<cas:serviceResponse xmlns:cas='urn:not-cas'>{success}</cas:serviceResponse>");
        assert_eq!(error(&other), MalformedResponse::NotServiceResponse);
        let none = "<serviceResponse><authenticationSuccess><user>alice</user></authenticationSuccess></serviceResponse>";
        assert_eq!(error(none), MalformedResponse::NotServiceResponse);
        // The right root, but the user in another namespace: no cas:user.
        let doc = wrap(
            "<cas:authenticationSuccess><x:user xmlns:x='urn:x'>alice</x:user></cas:authenticationSuccess>",
        );
        assert_eq!(error(&doc), MalformedResponse::NoUser);
        let doc =
            wrap("<x:authenticationSuccess xmlns:x='urn:x'><cas:user>a</cas:user></x:authenticationSuccess>");
        assert_eq!(error(&doc), MalformedResponse::UnknownAnswer);
    }

    #[test]
    fn users_must_be_exactly_one_plain_value() {
        use MalformedResponse::{BadUser, NoUser, SeveralUsers};
        let cases = [
            (
                "<cas:user>alice</cas:user><cas:user>mallory</cas:user>",
                Some(SeveralUsers),
            ),
            ("<cas:user></cas:user>", Some(BadUser(BadValue::Empty))),
            ("<cas:user>  \n </cas:user>", Some(BadUser(BadValue::Empty))),
            ("<cas:user/>", Some(BadUser(BadValue::Empty))),
            (
                "<cas:user>admin<!-- -->istrator</cas:user>",
                Some(BadUser(BadValue::Markup)),
            ),
            (
                "<cas:user><cas:b>alice</cas:b></cas:user>",
                Some(BadUser(BadValue::Markup)),
            ),
            // Not well-formed: the parser's own message.
            ("<cas:user>ali&#1;ce</cas:user>", None),
            (
                "<cas:user>ali&#x9;ce</cas:user>",
                Some(BadUser(BadValue::ControlCharacter)),
            ),
            ("", Some(NoUser)),
        ];
        for (inner, expected) in cases {
            let doc = wrap(&format!(
                "<cas:authenticationSuccess>{inner}</cas:authenticationSuccess>"
            ));
            let err = error(&doc);
            match expected {
                Some(expected) => assert_eq!(err, expected, "{inner}"),
                None => assert!(
                    matches!(err, MalformedResponse::NotWellFormed(_)),
                    "{inner}: {err:?}"
                ),
            }
        }
        let long = "a".repeat(MAX_VALUE_BYTES + 1);
        let doc = wrap(&format!(
            "<cas:authenticationSuccess><cas:user>{long}</cas:user></cas:authenticationSuccess>"
        ));
        assert_eq!(error(&doc), MalformedResponse::BadUser(BadValue::TooLong));
    }

    #[test]
    fn one_answer_only() {
        let both = wrap(
            "<cas:authenticationFailure code='INVALID_TICKET'/>\
             <cas:authenticationSuccess><cas:user>alice</cas:user></cas:authenticationSuccess>",
        );
        assert_eq!(error(&both), MalformedResponse::SeveralAnswers);
        assert_eq!(error(&wrap("")), MalformedResponse::NoAnswer);
        assert_eq!(
            error(&wrap("<cas:proxySuccess/>")),
            MalformedResponse::UnknownAnswer
        );
    }

    #[test]
    fn garbage_huge_and_binary_documents_are_refused() {
        let not_well_formed = |doc: &str| matches!(error(doc), MalformedResponse::NotWellFormed(_));
        assert!(not_well_formed(""));
        assert_eq!(
            error("<html><body>Service Unavailable</body></html>"),
            MalformedResponse::NotServiceResponse
        );
        assert!(not_well_formed("{\"user\": \"alice\"}"));
        let truncated = wrap("<cas:authenticationSuccess><cas:user>alice</cas:user>");
        assert!(not_well_formed(&truncated));
        assert_eq!(parse(b"\xff\xfe<\x00"), Err(MalformedResponse::NotUtf8));
        let many = "<cas:x>v</cas:x>".repeat(MAX_NODES as usize);
        let doc = wrap(&format!(
            "<cas:authenticationSuccess><cas:user>a</cas:user><cas:attributes>{many}</cas:attributes></cas:authenticationSuccess>"
        ));
        assert_eq!(error(&doc), MalformedResponse::TooManyNodes);
        // Deep nesting neither overflows the stack nor becomes a value.
        let deep = format!("{}{}", "<cas:a>".repeat(5000), "</cas:a>".repeat(5000));
        let doc = wrap(&format!(
            "<cas:authenticationSuccess><cas:user>a</cas:user><cas:attributes>{deep}</cas:attributes></cas:authenticationSuccess>"
        ));
        match parse(doc.as_bytes()) {
            Ok(ValidationResponse::Success(user)) => assert!(user.attributes.is_empty()),
            other => assert!(other.is_err(), "{other:?}"),
        }
    }

    #[test]
    fn attribute_values_are_bounded() {
        let values = "<cas:g>v</cas:g>".repeat(MAX_ATTRIBUTE_VALUES + 10);
        let doc = wrap(&format!(
            "<cas:authenticationSuccess><cas:user>a</cas:user><cas:attributes>{values}</cas:attributes></cas:authenticationSuccess>"
        ));
        let ValidationResponse::Success(user) = parse(doc.as_bytes()).unwrap() else {
            panic!("success expected");
        };
        assert_eq!(user.attributes["g"].len(), MAX_ATTRIBUTE_VALUES);
    }
}
