//! SAML 2.0 single logout (profiles §4.4) by the HTTP-Redirect binding (bindings
//! §3.4), both ways:
//!
//! * **SP-initiated**: [`SamlModule::logout_request`] sends the browser to the IdP's
//!   `SingleLogoutService` with a `LogoutRequest` for the login's NameID and
//!   `SessionIndex`, signed over the query string (`SigAlg`, `Signature`, bindings
//!   §3.4.4.1) when the SP has a key. Its id waits in the flow store, bound to the
//!   browser by the flow cookie; `RelayState` names it.
//! * The IdP's **LogoutResponse** comes back to the SP's endpoint (the ACS URL, by
//!   GET): [`SamlModule::single_logout`] requires the query signature to verify
//!   against the configured IdP certificates with an allowed algorithm, the flow
//!   (once, same browser), `InResponseTo` = the pending request id, `Issuer` = the
//!   IdP, `Destination` = this endpoint, `IssueInstant` recent, status Success.
//! * An **IdP-initiated LogoutRequest** is checked the same way (signature,
//!   `Issuer`, `Destination`, `IssueInstant`, `NotOnOrAfter`, its `ID` once through
//!   the replay cache) and names the NameID and session indexes whose sessions end;
//!   [`SamlModule::logout_response_url`] is the answer (a LogoutResponse, signed when
//!   the SP has a key, `RelayState` echoed).
//!
//! Every size is bounded before the work: the query, the inflated XML, its nodes.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use roxmltree::{Document, Node};
use samael::crypto::CertificateDer;
use samael::metadata::HTTP_REDIRECT_BINDING;
use tracing::warn;

use super::assertion::parse_date_time;
use super::{Mismatch, SamlError, SamlModule, SignatureAlgorithm, SignedPart, StatusCode, TimeLimit};
use crate::audit::AUDIT_TARGET;
use crate::flow::random_token;
use crate::flow::replay::accept_once;
use crate::modules::xml::{XmlError, XmlReader, is};
use crate::{AuthError, Redirect, StartLogin};

const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Longest query string accepted at the single logout endpoint.
pub const MAX_LOGOUT_QUERY_BYTES: usize = 64 * 1024;
/// Largest inflated logout message.
pub const MAX_LOGOUT_MESSAGE_BYTES: usize = 64 * 1024;
/// Most session indexes one LogoutRequest may name.
pub const MAX_SESSION_INDEXES: usize = 16;
/// A logout message issued longer ago than this (plus the clock skew) is refused.
pub const LOGOUT_MESSAGE_LIFETIME: Duration = Duration::from_secs(600);
/// Longest `RelayState` echoed back to the IdP.
const MAX_RELAY_STATE_BYTES: usize = 320;
/// Logout messages are small: a few dozen nodes.
const READER: XmlReader = XmlReader::new(512).refusing_declaration_text();

/// The single-logout side of a module's configuration.
#[derive(Debug)]
pub(crate) struct SloPolicy {
    /// Where LogoutRequests go (the IdP's HTTP-Redirect `SingleLogoutService`).
    idp_url: String,
    /// Where LogoutResponses go (its `ResponseLocation`, else `idp_url`).
    idp_response_url: String,
    /// This SP's endpoint: the ACS URL, reached by GET.
    sp_url: String,
    sp_entity_id: String,
    idp_entity_id: String,
    keys: Vec<PKey<Public>>,
    algorithms: Vec<SignatureAlgorithm>,
    clock_skew: Duration,
}

impl SloPolicy {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        idp_url: String,
        idp_response_url: Option<String>,
        sp_url: &str,
        sp_entity_id: &str,
        idp_entity_id: &str,
        certificates: &[CertificateDer],
        algorithms: &[SignatureAlgorithm],
        clock_skew: Duration,
    ) -> SloPolicy {
        let keys = certificates
            .iter()
            .filter_map(|c| openssl::x509::X509::from_der(c.der_data()).ok())
            .filter_map(|x509| x509.public_key().ok())
            .collect();
        SloPolicy {
            idp_response_url: idp_response_url.unwrap_or_else(|| idp_url.clone()),
            idp_url,
            sp_url: sp_url.to_owned(),
            sp_entity_id: sp_entity_id.to_owned(),
            idp_entity_id: idp_entity_id.to_owned(),
            keys,
            algorithms: algorithms.to_vec(),
            clock_skew,
        }
    }
}

/// The IdP's HTTP-Redirect `SingleLogoutService` in its metadata: `(Location,
/// ResponseLocation)`.
pub(crate) fn idp_slo_from_metadata(xml: &str, entity_id: Option<&str>) -> Option<(String, Option<String>)> {
    let doc = XmlReader::new(u32::MAX)
        .refusing_declaration_text()
        .parse(xml)
        .ok()?;
    doc.descendants()
        .filter(|n| is(*n, METADATA_NS, "EntityDescriptor"))
        .filter(|e| entity_id.is_none_or(|want| e.attribute("entityID") == Some(want)))
        .flat_map(|e| e.children().filter(|c| is(*c, METADATA_NS, "IDPSSODescriptor")))
        .flat_map(|idp| {
            idp.children()
                .filter(|c| is(*c, METADATA_NS, "SingleLogoutService"))
        })
        .find(|s| s.attribute("Binding") == Some(HTTP_REDIRECT_BINDING))
        .and_then(|s| {
            let location = s.attribute("Location")?.to_owned();
            Some((location, s.attribute("ResponseLocation").map(str::to_owned)))
        })
}

/// An IdP-initiated LogoutRequest that verified: whose sessions end.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdpLogoutRequest {
    /// The NameID whose sessions end (the identity's subject).
    pub name_id: String,
    /// The IdP sessions named (`SessionIndex`); empty: every session of the NameID.
    pub session_indexes: Vec<String>,
    /// The request's `ID` (the answer's `InResponseTo`).
    pub request_id: String,
    /// The `RelayState` to echo.
    pub relay_state: Option<String>,
}

/// What arrived at the SP's single logout endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SingleLogout {
    /// The IdP's LogoutResponse to this browser's LogoutRequest verified: the
    /// single logout is complete.
    Completed,
    /// An IdP-initiated LogoutRequest verified: end those sessions, then send the
    /// browser to [`SamlModule::logout_response_url`].
    Request(IdpLogoutRequest),
}

/// The query parameters of an HTTP-Redirect message, raw (as signed) and decoded.
struct RedirectQuery<'q> {
    message: (&'static str, &'q str),
    relay_state: Option<&'q str>,
    sig_alg: Option<&'q str>,
    signature: Option<&'q str>,
}

fn decode_component(raw: &str) -> String {
    url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn encode_component(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn malformed(what: &str) -> SamlError {
    SamlError::Malformed(what.to_owned())
}

impl<'q> RedirectQuery<'q> {
    fn parse(query: &'q str) -> Result<RedirectQuery<'q>, SamlError> {
        if query.len() > MAX_LOGOUT_QUERY_BYTES {
            return Err(SamlError::TooLarge(MAX_LOGOUT_QUERY_BYTES));
        }
        let (mut message, mut relay_state, mut sig_alg, mut signature) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "SAMLRequest" | "SAMLResponse" => {
                    if message.is_some() {
                        return Err(malformed("two SAML messages in one query"));
                    }
                    let kind = if name == "SAMLRequest" {
                        "SAMLRequest"
                    } else {
                        "SAMLResponse"
                    };
                    message = Some((kind, value));
                    continue;
                }
                "RelayState" => &mut relay_state,
                "SigAlg" => &mut sig_alg,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(malformed("a repeated query parameter"));
            }
        }
        Ok(RedirectQuery {
            message: message.ok_or_else(|| malformed("no SAMLRequest or SAMLResponse"))?,
            relay_state,
            sig_alg,
            signature,
        })
    }

    /// The octets the signature covers (bindings §3.4.4.1), from the raw values.
    fn signed_octets(&self, sig_alg: &str) -> String {
        let (kind, value) = self.message;
        let mut text = format!("{kind}={value}");
        if let Some(relay) = self.relay_state {
            text.push_str("&RelayState=");
            text.push_str(relay);
        }
        text.push_str("&SigAlg=");
        text.push_str(sig_alg);
        text
    }
}

/// base64, then inflate (DEFLATE, bindings §3.4.4.1), bounded.
fn inflate(encoded: &str) -> Result<String, SamlError> {
    if encoded.len() > MAX_LOGOUT_QUERY_BYTES {
        return Err(SamlError::TooLarge(MAX_LOGOUT_MESSAGE_BYTES));
    }
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = Base64::decode_vec(&compact).map_err(|_| SamlError::Encoding)?;
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(bytes.as_slice())
        .take(MAX_LOGOUT_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(|_| SamlError::Encoding)?;
    if xml.len() > MAX_LOGOUT_MESSAGE_BYTES {
        return Err(SamlError::TooLarge(MAX_LOGOUT_MESSAGE_BYTES));
    }
    String::from_utf8(xml).map_err(|_| SamlError::Encoding)
}

/// DEFLATE, then base64.
fn deflate(xml: &str) -> Result<String, SamlError> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(xml.as_bytes())
        .and_then(|()| encoder.finish())
        .map(|bytes| Base64::encode_string(&bytes))
        .map_err(|_| SamlError::Encoding)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `YYYY-MM-DDThh:mm:ssZ`.
fn xml_time(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn digest_of(alg: SignatureAlgorithm) -> MessageDigest {
    match alg {
        SignatureAlgorithm::RsaSha384 | SignatureAlgorithm::EcdsaSha384 => MessageDigest::sha384(),
        SignatureAlgorithm::RsaSha512 | SignatureAlgorithm::EcdsaSha512 => MessageDigest::sha512(),
        SignatureAlgorithm::RsaSha1 => MessageDigest::sha1(),
        _ => MessageDigest::sha256(),
    }
}

fn is_ecdsa(alg: SignatureAlgorithm) -> bool {
    matches!(
        alg,
        SignatureAlgorithm::EcdsaSha256 | SignatureAlgorithm::EcdsaSha384 | SignatureAlgorithm::EcdsaSha512
    )
}

/// Verifies `signature` over `octets` with `key` (ECDSA signatures are `r || s`,
/// as in XML signatures).
fn verifies(key: &PKey<Public>, alg: SignatureAlgorithm, octets: &[u8], signature: &[u8]) -> bool {
    let der;
    let signature = if is_ecdsa(alg) {
        let half = signature.len() / 2;
        let (Ok(r), Ok(s)) = (
            BigNum::from_slice(&signature[..half]),
            BigNum::from_slice(&signature[half..]),
        ) else {
            return false;
        };
        match EcdsaSig::from_private_components(r, s).and_then(|sig| sig.to_der()) {
            Ok(bytes) => {
                der = bytes;
                der.as_slice()
            }
            Err(_) => return false,
        }
    } else {
        signature
    };
    Verifier::new(digest_of(alg), key)
        .and_then(|mut v| v.update(octets).and_then(|()| v.verify(signature)))
        .unwrap_or(false)
}

/// Signs `octets` with the SP key: RSA-SHA256, or ECDSA-SHA256 (`r || s`).
fn sign(key: &PKey<Private>, octets: &[u8]) -> Result<(SignatureAlgorithm, Vec<u8>), String> {
    let (alg, ec) = match key.ec_key() {
        Ok(ec) => (SignatureAlgorithm::EcdsaSha256, Some(ec)),
        Err(_) => (SignatureAlgorithm::RsaSha256, None),
    };
    let mut signer = Signer::new(MessageDigest::sha256(), key).map_err(|e| e.to_string())?;
    signer.update(octets).map_err(|e| e.to_string())?;
    let signature = signer.sign_to_vec().map_err(|e| e.to_string())?;
    let Some(ec) = ec else {
        return Ok((alg, signature));
    };
    let width = i32::try_from(ec.group().degree().div_ceil(8)).map_err(|e| e.to_string())?;
    let sig = EcdsaSig::from_der(&signature).map_err(|e| e.to_string())?;
    let mut raw = sig.r().to_vec_padded(width).map_err(|e| e.to_string())?;
    raw.extend(sig.s().to_vec_padded(width).map_err(|e| e.to_string())?);
    Ok((alg, raw))
}

fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    READER.parse(xml).map_err(|e| match e {
        XmlError::Doctype => SamlError::Doctype,
        XmlError::TooManyNodes => malformed("too many nodes"),
        XmlError::NotWellFormed(_) => malformed("not well-formed XML"),
    })
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(*c, ns, name))
}

fn text_of(node: Node<'_, '_>) -> String {
    node.text().unwrap_or_default().trim().to_owned()
}

impl SloPolicy {
    /// Verifies the query signature against the IdP's keys.
    fn verify_signature(&self, query: &RedirectQuery<'_>) -> Result<(), SamlError> {
        let (Some(raw_alg), Some(raw_signature)) = (query.sig_alg, query.signature) else {
            return Err(SamlError::Unsigned(SignedPart::LogoutMessage));
        };
        let uri = decode_component(raw_alg);
        let alg = self
            .algorithms
            .iter()
            .copied()
            .find(|a| a.uri() == uri)
            .ok_or_else(|| SamlError::Algorithm(uri.chars().take(128).collect()))?;
        let compact: String = decode_component(raw_signature)
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let signature = Base64::decode_vec(&compact)
            .map_err(|_| SamlError::Signature("the query Signature is not base64".into()))?;
        let octets = query.signed_octets(raw_alg);
        if self
            .keys
            .iter()
            .any(|key| verifies(key, alg, octets.as_bytes(), &signature))
        {
            Ok(())
        } else {
            Err(SamlError::Signature(
                "the query signature does not verify against the IdP's certificates".into(),
            ))
        }
    }

    /// Checks what a LogoutRequest and a LogoutResponse share: `Issuer`,
    /// `Destination`, `IssueInstant`. Answers the issue instant.
    fn check_common(&self, root: Node<'_, '_>, now: SystemTime) -> Result<SystemTime, SamlError> {
        match root.attribute("Destination") {
            Some(d) if d == self.sp_url => {}
            Some(_) => return Err(SamlError::Mismatch(Mismatch::Destination)),
            None => return Err(SamlError::Mismatch(Mismatch::MissingDestination)),
        }
        let issuer = child(root, ASSERTION_NS, "Issuer").map(text_of);
        if issuer.as_deref() != Some(self.idp_entity_id.as_str()) {
            return Err(SamlError::Mismatch(Mismatch::Issuer));
        }
        let issued = root
            .attribute("IssueInstant")
            .and_then(parse_date_time)
            .ok_or_else(|| malformed("no IssueInstant"))?;
        if issued > now + self.clock_skew {
            return Err(SamlError::NotYetValid(TimeLimit::IssueInstant));
        }
        if issued + LOGOUT_MESSAGE_LIFETIME + self.clock_skew < now {
            return Err(SamlError::Expired(TimeLimit::IssueInstant));
        }
        Ok(issued)
    }

    /// The LogoutResponse's checks, given the pending request id.
    fn check_response(&self, xml: &str, request_id: &str, now: SystemTime) -> Result<(), SamlError> {
        let doc = parse(xml)?;
        let root = doc.root_element();
        if !is(root, PROTOCOL_NS, "LogoutResponse") {
            return Err(malformed("not a LogoutResponse"));
        }
        self.check_common(root, now)?;
        match root.attribute("InResponseTo") {
            Some(id) if id == request_id => {}
            Some(_) => return Err(SamlError::Mismatch(Mismatch::InResponseTo)),
            None => return Err(SamlError::Mismatch(Mismatch::MissingInResponseTo)),
        }
        let status = child(root, PROTOCOL_NS, "Status").ok_or_else(|| malformed("no Status"))?;
        let code = child(status, PROTOCOL_NS, "StatusCode").ok_or_else(|| malformed("no StatusCode"))?;
        let value = code.attribute("Value").unwrap_or_default();
        if value != SUCCESS {
            let detail = child(code, PROTOCOL_NS, "StatusCode")
                .and_then(|d| d.attribute("Value"))
                .map(StatusCode::from_uri);
            return Err(SamlError::Status {
                code: StatusCode::from_uri(value),
                detail,
            });
        }
        Ok(())
    }

    /// The LogoutRequest's checks: the request and until when its id must be
    /// remembered.
    fn check_request(&self, xml: &str, now: SystemTime) -> Result<(IdpLogoutRequest, SystemTime), SamlError> {
        let doc = parse(xml)?;
        let root = doc.root_element();
        if !is(root, PROTOCOL_NS, "LogoutRequest") {
            return Err(malformed("not a LogoutRequest"));
        }
        let issued = self.check_common(root, now)?;
        if let Some(until) = root.attribute("NotOnOrAfter") {
            let until =
                parse_date_time(until).ok_or_else(|| malformed("NotOnOrAfter is not an xs:dateTime"))?;
            if now >= until + self.clock_skew {
                return Err(SamlError::Expired(TimeLimit::NotOnOrAfter));
            }
        }
        let request_id = root
            .attribute("ID")
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .ok_or_else(|| malformed("no ID"))?
            .to_owned();
        let name_id = child(root, ASSERTION_NS, "NameID")
            .map(text_of)
            .filter(|n| !n.is_empty() && n.len() <= 1024)
            .ok_or_else(|| malformed("no NameID (an EncryptedID is not supported)"))?;
        let session_indexes: Vec<String> = root
            .children()
            .filter(|c| is(*c, PROTOCOL_NS, "SessionIndex"))
            .map(text_of)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .collect();
        if session_indexes.len() > MAX_SESSION_INDEXES {
            return Err(malformed("too many SessionIndex elements"));
        }
        let remember_until = issued + LOGOUT_MESSAGE_LIFETIME + self.clock_skew + self.clock_skew;
        Ok((
            IdpLogoutRequest {
                name_id,
                session_indexes,
                request_id,
                relay_state: None,
            },
            remember_until,
        ))
    }
}

impl SamlModule {
    /// The IdP's HTTP-Redirect single logout URL, when its metadata (or
    /// `idp_slo_url`) gives one.
    pub fn idp_slo_url(&self) -> Option<&str> {
        self.slo.as_ref().map(|slo| slo.idp_url.as_str())
    }

    fn slo(&self) -> Result<&SloPolicy, AuthError> {
        self.slo.as_ref().ok_or_else(|| {
            AuthError::Misconfigured(format!(
                "module `{}`: the IdP has no single logout endpoint",
                self.id
            ))
        })
    }

    fn slo_reject(&self, err: SamlError) -> AuthError {
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "SAML logout message rejected");
        AuthError::rejected(self.id.clone(), err)
    }

    /// `destination?<kind>=<message>[&RelayState=..][&SigAlg=..&Signature=..]`,
    /// signed with the SP key when there is one.
    fn redirect_url(
        &self,
        destination: &str,
        kind: &str,
        xml: &str,
        relay_state: Option<&str>,
    ) -> Result<String, AuthError> {
        let encode_error = |e: String| {
            AuthError::Misconfigured(format!(
                "module `{}`: cannot encode the logout message: {e}",
                self.id
            ))
        };
        let message = deflate(xml).map_err(|e| encode_error(e.to_string()))?;
        let mut query = format!("{kind}={}", encode_component(&message));
        if let Some(relay) = relay_state {
            query.push_str("&RelayState=");
            query.push_str(&encode_component(relay));
        }
        if let Some(key) = &self.signing_key {
            // The algorithm is known before signing from the key type.
            let alg = if key.ec_key().is_ok() {
                SignatureAlgorithm::EcdsaSha256
            } else {
                SignatureAlgorithm::RsaSha256
            };
            query.push_str("&SigAlg=");
            query.push_str(&encode_component(alg.uri()));
            let (_, signature) = sign(key, query.as_bytes()).map_err(encode_error)?;
            query.push_str("&Signature=");
            query.push_str(&encode_component(&Base64::encode_string(&signature)));
        }
        let separator = if destination.contains('?') { '&' } else { '?' };
        Ok(format!("{destination}{separator}{query}"))
    }

    /// Starts an SP-initiated single logout for the login of `name_id` (its
    /// `name_id_format` and `session_index` as the assertion gave them): the
    /// redirect to the IdP with a `LogoutRequest` (signed when the SP has a key), its
    /// id pending in the flow store under the `RelayState`, with the flow cookie that
    /// binds it to this browser. `Ok(None)`: the IdP has no single logout endpoint.
    pub async fn logout_request(
        &self,
        name_id: &str,
        name_id_format: Option<&str>,
        session_index: Option<&str>,
    ) -> Result<Option<Redirect>, AuthError> {
        let Some(slo) = &self.slo else {
            return Ok(None);
        };
        let request_id = format!("_{}", random_token(&self.id)?);
        let started = self
            .flows
            .start_with(&self.id, &StartLogin::new(), Some(request_id.clone()))
            .await?;
        let format = name_id_format
            .map(|f| format!(" Format=\"{}\"", escape(f)))
            .unwrap_or_default();
        let index = session_index
            .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(i)))
            .unwrap_or_default();
        let xml = format!(
            "<samlp:LogoutRequest xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" \
             ID=\"{request_id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\">\
             <saml:Issuer>{}</saml:Issuer><saml:NameID{format}>{}</saml:NameID>{index}</samlp:LogoutRequest>",
            xml_time(SystemTime::now()),
            escape(&slo.idp_url),
            escape(&slo.sp_entity_id),
            escape(name_id),
        );
        let location = self.redirect_url(&slo.idp_url, "SAMLRequest", &xml, Some(&started.flow.state))?;
        Ok(Some(Redirect {
            location,
            flow_cookie: Some(started.cookie),
        }))
    }

    /// Reads what the IdP sent to the SP's single logout endpoint (the ACS URL, by
    /// GET, HTTP-Redirect binding): `query` is the raw query string (the signature
    /// covers it as sent), `flow_cookie` the module's flow cookie. A LogoutResponse
    /// completes this browser's pending logout; a LogoutRequest is answered by
    /// [`logout_response_url`](Self::logout_response_url) once its sessions ended.
    /// Refusals are [`AuthError::Rejected`] with a [`SamlError`] (or a flow or replay
    /// error).
    pub async fn single_logout(
        &self,
        query: &str,
        flow_cookie: Option<&str>,
    ) -> Result<SingleLogout, AuthError> {
        let slo = self.slo()?;
        let parsed = RedirectQuery::parse(query).map_err(|e| self.slo_reject(e))?;
        slo.verify_signature(&parsed).map_err(|e| self.slo_reject(e))?;
        let (kind, raw) = parsed.message;
        let xml = inflate(&decode_component(raw)).map_err(|e| self.slo_reject(e))?;
        let relay_state = parsed.relay_state.map(decode_component);
        let now = SystemTime::now();
        if kind == "SAMLResponse" {
            let state = relay_state
                .as_deref()
                .ok_or_else(|| self.slo_reject(malformed("a LogoutResponse without RelayState")))?;
            let flow = match self.flows.take(&self.id, state, flow_cookie).await {
                Ok(flow) => flow,
                Err(err) => {
                    warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "SAML logout response refused");
                    return Err(err.into_auth_error(&self.id));
                }
            };
            let request_id = flow.extra.unwrap_or_default();
            slo.check_response(&xml, &request_id, now)
                .map_err(|e| self.slo_reject(e))?;
            return Ok(SingleLogout::Completed);
        }
        let (mut request, until) = slo.check_request(&xml, now).map_err(|e| self.slo_reject(e))?;
        let replay_key = format!("saml-logout\n{}\n{}", slo.idp_entity_id, request.request_id);
        accept_once(
            self.replay.as_ref(),
            &self.id,
            &replay_key,
            until,
            "SAML LogoutRequest",
        )
        .await?;
        // SAML bindings §3.4.3 limit RelayState to 80 bytes; a longer one is dropped
        // (with some slack for IdPs that exceed it), not echoed.
        request.relay_state = relay_state.filter(|r| r.len() <= MAX_RELAY_STATE_BYTES);
        Ok(SingleLogout::Request(request))
    }

    /// The answer to an IdP-initiated LogoutRequest: the redirect to the IdP with a
    /// `LogoutResponse` (status Success, or Responder when `success` is false),
    /// signed when the SP has a key, `RelayState` echoed.
    pub fn logout_response_url(
        &self,
        request: &IdpLogoutRequest,
        success: bool,
    ) -> Result<String, AuthError> {
        let slo = self.slo()?;
        let id = format!("_{}", random_token(&self.id)?);
        let status = if success {
            SUCCESS
        } else {
            "urn:oasis:names:tc:SAML:2.0:status:Responder"
        };
        let xml = format!(
            "<samlp:LogoutResponse xmlns:samlp=\"{PROTOCOL_NS}\" xmlns:saml=\"{ASSERTION_NS}\" \
             ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\">\
             <saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{status}\"/></samlp:Status>\
             </samlp:LogoutResponse>",
            xml_time(SystemTime::now()),
            escape(&slo.idp_response_url),
            escape(&request.request_id),
            escape(&slo.sp_entity_id),
        );
        self.redirect_url(
            &slo.idp_response_url,
            "SAMLResponse",
            &xml,
            request.relay_state.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_time_is_utc_civil_time() {
        assert_eq!(xml_time(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_149_445);
        assert_eq!(xml_time(t), "2026-12-01T18:24:05Z");
        assert_eq!(parse_date_time(&xml_time(t)), Some(t));
    }

    #[test]
    fn deflate_round_trips_and_inflate_is_bounded() {
        let xml = "<samlp:LogoutRequest/>";
        assert_eq!(inflate(&deflate(xml).unwrap()).unwrap(), xml);
        let big = "x".repeat(MAX_LOGOUT_MESSAGE_BYTES + 10);
        assert!(matches!(
            inflate(&deflate(&big).unwrap()),
            Err(SamlError::TooLarge(_))
        ));
        assert!(matches!(inflate("%%%"), Err(SamlError::Encoding)));
    }

    #[test]
    fn queries_with_repeated_parameters_are_malformed() {
        assert!(matches!(
            RedirectQuery::parse("SAMLRequest=a&SAMLResponse=b"),
            Err(SamlError::Malformed(_))
        ));
        assert!(matches!(
            RedirectQuery::parse("SAMLRequest=a&SigAlg=x&SigAlg=y"),
            Err(SamlError::Malformed(_))
        ));
        let q = RedirectQuery::parse("SAMLResponse=a%2B&RelayState=r&SigAlg=s&Signature=t").unwrap();
        assert_eq!(q.signed_octets("s"), "SAMLResponse=a%2B&RelayState=r&SigAlg=s");
    }
}
