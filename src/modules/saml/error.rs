//! Why a SAML response was refused: [`SamlError`] and the typed parts of its
//! variants. Messages quoting the posted document are clipped here.

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
    /// The IdP answered with a status other than Success: its top-level status
    /// code and the second-level one, if any.
    #[error("the identity provider answered status {code}{}", detail.map(|d| format!(" / {d}")).unwrap_or_default())]
    Status {
        /// The top-level `StatusCode`.
        code: StatusCode,
        /// The nested `StatusCode`, if any.
        detail: Option<StatusCode>,
    },
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
    /// An encrypted assertion that cannot be (or a plaintext one that must be)
    /// decrypted.
    #[error("{0}")]
    Decryption(super::encryption::DecryptionError),
    /// The IdP's metadata is not usable (`idp_metadata_url`: not fetched yet,
    /// expired, badly signed); the module answers it as an outage.
    #[error("{0}")]
    Metadata(#[from] super::idp::MetadataError),
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
    /// A single logout message (LogoutRequest, LogoutResponse) without a query
    /// signature.
    LogoutMessage,
}

impl std::fmt::Display for SignedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignedPart::Response => "the response",
            SignedPart::Assertion => "the assertion",
            SignedPart::Neither => "neither the response nor its assertion",
            SignedPart::LogoutMessage => "the logout message",
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
pub(super) fn clip(message: impl Into<String>) -> String {
    let message = message.into();
    let mut out: String = message.chars().filter(|c| !c.is_control()).take(200).collect();
    if message.chars().count() > 200 {
        out.push('…');
    }
    out
}

pub(super) fn malformed(message: impl Into<String>) -> SamlError {
    SamlError::Malformed(clip(message))
}

pub(super) fn signature(message: impl Into<String>) -> SamlError {
    SamlError::Signature(clip(message))
}

pub(super) fn algorithm(uri: &str) -> SamlError {
    SamlError::Algorithm(clip(uri))
}

/// A SAML status code (SAML core §3.2.2.2). Only a value that is *exactly* one of
/// the standard URIs is named; anything else is [`Unknown`](StatusCode::Unknown),
/// so that `urn:evil:Responder` is not reported as the standard `Responder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusCode {
    /// `urn:oasis:names:tc:SAML:2.0:status:Success` (only ever as a detail).
    Success,
    /// `...:Requester`: the request was at fault.
    Requester,
    /// `...:Responder`: the IdP was at fault.
    Responder,
    /// `...:VersionMismatch`.
    VersionMismatch,
    /// `...:AuthnFailed`: the user did not authenticate.
    AuthnFailed,
    /// `...:NoPassive`: passive login was asked and the user must interact.
    NoPassive,
    /// `...:RequestDenied`.
    RequestDenied,
    /// `...:NoAuthnContext`: the requested authentication context is not offered.
    NoAuthnContext,
    /// `...:UnknownPrincipal`.
    UnknownPrincipal,
    /// `...:InvalidNameIDPolicy`.
    InvalidNameIdPolicy,
    /// Any other second-level code of SAML core §3.2.2.2.
    OtherStandard,
    /// Not exactly a standard status URI (or missing).
    Unknown,
}

const STATUS_PREFIX: &str = "urn:oasis:names:tc:SAML:2.0:status:";

/// The other second-level codes of SAML core §3.2.2.2.
const OTHER_STANDARD: [&str; 12] = [
    "InvalidAttrNameOrValue",
    "NoAvailableIDP",
    "NoSupportedIDP",
    "PartialLogout",
    "ProxyCountExceeded",
    "RequestUnsupported",
    "RequestVersionDeprecated",
    "RequestVersionTooHigh",
    "RequestVersionTooLow",
    "ResourceNotRecognized",
    "TooManyResponses",
    "UnknownAttrProfile",
];

impl StatusCode {
    /// Reads a `StatusCode` `Value`: exactly a standard URI, or `Unknown`.
    pub fn from_uri(uri: &str) -> StatusCode {
        let Some(name) = uri.strip_prefix(STATUS_PREFIX) else {
            return StatusCode::Unknown;
        };
        match name {
            "Success" => StatusCode::Success,
            "Requester" => StatusCode::Requester,
            "Responder" => StatusCode::Responder,
            "VersionMismatch" => StatusCode::VersionMismatch,
            "AuthnFailed" => StatusCode::AuthnFailed,
            "NoPassive" => StatusCode::NoPassive,
            "RequestDenied" => StatusCode::RequestDenied,
            "NoAuthnContext" => StatusCode::NoAuthnContext,
            "UnknownPrincipal" => StatusCode::UnknownPrincipal,
            "InvalidNameIDPolicy" => StatusCode::InvalidNameIdPolicy,
            other if OTHER_STANDARD.contains(&other) => StatusCode::OtherStandard,
            _ => StatusCode::Unknown,
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StatusCode::Success => "Success",
            StatusCode::Requester => "Requester",
            StatusCode::Responder => "Responder",
            StatusCode::VersionMismatch => "VersionMismatch",
            StatusCode::AuthnFailed => "AuthnFailed",
            StatusCode::NoPassive => "NoPassive",
            StatusCode::RequestDenied => "RequestDenied",
            StatusCode::NoAuthnContext => "NoAuthnContext",
            StatusCode::UnknownPrincipal => "UnknownPrincipal",
            StatusCode::InvalidNameIdPolicy => "InvalidNameIDPolicy",
            StatusCode::OtherStandard => "another standard status",
            StatusCode::Unknown => "an unknown status",
        })
    }
}

#[cfg(test)]
mod status_tests {
    use super::StatusCode;

    #[test]
    fn only_exact_standard_uris_are_named() {
        let p = "urn:oasis:names:tc:SAML:2.0:status:";
        assert_eq!(
            StatusCode::from_uri(&format!("{p}Responder")),
            StatusCode::Responder
        );
        assert_eq!(
            StatusCode::from_uri(&format!("{p}AuthnFailed")),
            StatusCode::AuthnFailed
        );
        assert_eq!(
            StatusCode::from_uri(&format!("{p}TooManyResponses")),
            StatusCode::OtherStandard
        );
        for bad in [
            "urn:evil:Responder",
            "Responder",
            "",
            "urn:oasis:names:tc:SAML:2.0:status:Responder ",
            "urn:oasis:names:tc:SAML:2.0:status:responder",
            "urn:oasis:names:tc:SAML:2.0:status:Responder:x",
            "urn:oasis:names:tc:SAML:1.0:status:Responder",
        ] {
            assert_eq!(StatusCode::from_uri(bad), StatusCode::Unknown, "{bad:?}");
        }
    }
}
