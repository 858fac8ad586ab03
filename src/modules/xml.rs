//! The hardened XML reader of the SAML and CAS modules: every document they read
//! (a posted `SAMLResponse`, IdP metadata, a CAS validation answer) is parsed here,
//! with roxmltree, never by libxml2 first.
//!
//! * No DTD: roxmltree is told to refuse one (`allow_dtd: false`), so no entity is
//!   ever declared, expanded or fetched.
//! * A bound on the nodes of a document, chosen by the caller.
//! * Optionally ([`XmlReader::refusing_declaration_text`]) the text `<!DOCTYPE` or
//!   `<!ENTITY` anywhere (in a comment or CDATA too) is refused before parsing: the
//!   SAML documents are handed to xmlsec later, which must never meet one.
//! * Elements are matched by namespace and local name ([`is`]), never by prefix.

use roxmltree::{Document, Node, ParsingOptions};

/// Why a document was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XmlError {
    /// A document type declaration (or, when asked, its text anywhere).
    Doctype,
    /// More nodes than the reader's bound.
    TooManyNodes,
    /// Not well-formed XML (roxmltree's error).
    NotWellFormed(roxmltree::Error),
}

/// How documents of one kind are read: the one place the parser options are set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct XmlReader {
    max_nodes: u32,
    refuse_declaration_text: bool,
}

impl XmlReader {
    /// A reader of documents with at most `max_nodes` nodes (`u32::MAX`: no bound
    /// beyond roxmltree's own).
    pub(crate) const fn new(max_nodes: u32) -> Self {
        XmlReader {
            max_nodes,
            refuse_declaration_text: false,
        }
    }

    /// Also refuses the text `<!DOCTYPE` or `<!ENTITY` anywhere in the document.
    #[cfg(feature = "saml")]
    pub(crate) const fn refusing_declaration_text(mut self) -> Self {
        self.refuse_declaration_text = true;
        self
    }

    /// Parses `text` without DTD, within the node bound.
    pub(crate) fn parse<'i>(&self, text: &'i str) -> Result<Document<'i>, XmlError> {
        if self.refuse_declaration_text && (text.contains("<!DOCTYPE") || text.contains("<!ENTITY")) {
            return Err(XmlError::Doctype);
        }
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: self.max_nodes,
            ..ParsingOptions::default()
        };
        Document::parse_with_options(text, options).map_err(|e| match e {
            roxmltree::Error::DtdDetected => XmlError::Doctype,
            roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes,
            other => XmlError::NotWellFormed(other),
        })
    }
}

/// Whether `node` is the element `name` in `namespace`.
pub(crate) fn is(node: Node<'_, '_>, namespace: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtds_are_refused_and_nodes_bounded() {
        let reader = XmlReader::new(8);
        for xml in [
            "<!DOCTYPE r><r/>",
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
        ] {
            assert_eq!(reader.parse(xml).err(), Some(XmlError::Doctype), "{xml}");
        }
        assert!(reader.parse("<r><!-- <!DOCTYPE --></r>").is_ok());
        assert_eq!(
            reader
                .refusing_declaration_text()
                .parse("<r><!-- <!DOCTYPE --></r>")
                .err(),
            Some(XmlError::Doctype)
        );
        assert_eq!(
            reader.parse("<r><a/><a/><a/><a/><a/><a/><a/><a/></r>").err(),
            Some(XmlError::TooManyNodes)
        );
        assert!(matches!(reader.parse("<r>"), Err(XmlError::NotWellFormed(_))));
        let doc = reader.parse(r#"<p:r xmlns:p="urn:x"/>"#).expect("well-formed");
        assert!(is(doc.root_element(), "urn:x", "r"));
        assert!(!is(doc.root_element(), "urn:y", "r"));
    }
}
