//! Step 3 of the verification: the values of the signed content, read from the
//! bytes the verified signature covers into a [`SamlAssertion`] — Response
//! (Destination, Issuer, InResponseTo, status), Assertion (times, issuer, subject,
//! bearer confirmation, conditions, audience, authentication statements) and
//! attributes.

use std::time::{Duration, SystemTime};

use roxmltree::Node;

use super::error::{Mismatch, SamlError, StatusCode, TimeLimit, malformed};
use super::response::{
    ASSERTION_NS, Expectations, PROTOCOL_NS, all_text, children, id_of, only_child, optional_child, text_only,
};
use crate::modules::xml::is;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// Longest NameID accepted, in bytes.
const MAX_NAME_ID_BYTES: usize = 1024;

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
    /// Whether the assertion arrived encrypted (an `EncryptedAssertion`).
    pub encrypted: bool,
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

pub(super) fn check_response(
    response: Node<'_, '_>,
    signed: bool,
    want: &Expectations<'_>,
) -> Result<(), SamlError> {
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
        return Err(SamlError::Status {
            code: StatusCode::from_uri(value),
            detail: detail.map(StatusCode::from_uri),
        });
    }
    Ok(())
}

/// The checks of SAML core §2.5 and the Web SSO profile §4.1.4.3 on the signed
/// assertion, and the values the identity is built from.
pub(super) fn check_assertion(
    assertion: Node<'_, '_>,
    want: &Expectations<'_>,
) -> Result<SamlAssertion, SamlError> {
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
        encrypted: false,
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
}
