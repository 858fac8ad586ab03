//! Active Directory controls, encoded and decoded without panicking.
//!
//! The DirSync control (MS-ADTS 3.1.1.3.4.1.3) and the paged results control
//! (RFC 2696) carry flat `SEQUENCE`s of integers and one octet string. They are
//! read here by a small non-recursive reader that checks every length against
//! its container and against the limits below before anything is copied, so a
//! directory (or anything between it and us) can neither panic the synchroniser
//! nor make it allocate more than [`MAX_COOKIE_BYTES`] for a cookie.

pub(crate) const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
pub(crate) const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
pub(crate) const NOTIFICATION_OID: &str = "1.2.840.113556.1.4.528";
pub(crate) const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// `LDAP_DIRSYNC_INCREMENTAL_VALUES`: linked values (group members) come one by
/// one, as `member;range=1-1` (added) and `member;range=0-0` (removed).
pub(crate) const DIRSYNC_INCREMENTAL_VALUES: u32 = 0x8000_0000;

/// Longest cookie accepted from the directory (AD's grow with the number of
/// domain controllers, by 24 bytes each; a few hundred bytes are usual).
pub(crate) const MAX_COOKIE_BYTES: usize = 64 * 1024;

/// Longest control value accepted: a cookie and a few integers.
const MAX_CONTROL_BYTES: usize = MAX_COOKIE_BYTES + 64;

/// Most values of one linked attribute taken from one entry (AD sends at most
/// a few thousand per DirSync entry; a larger list is refused, not truncated).
pub(crate) const MAX_MEMBER_VALUES: usize = 100_000;

/// A control value that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed Active Directory control: {}", self.0)
    }
}

/// The DirSync response control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirSyncResponse {
    /// More changes wait: repeat the search with `cookie`.
    pub(crate) more: bool,
    /// Where the next search resumes.
    pub(crate) cookie: Vec<u8>,
}

/// The paged results response control: the cookie of the next page, `None`
/// after the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PagedResponse {
    pub(crate) cookie: Option<Vec<u8>>,
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    push_length(out, body.len());
    out.extend_from_slice(body);
}

/// A 32-bit INTEGER in its shortest two's complement form (DirSync's flags are
/// a signed 32-bit integer on the wire: 0x80000000 is sent as -2^31, as Windows
/// does).
fn push_int32(out: &mut Vec<u8>, value: u32) {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 3 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    push_tlv(out, 0x02, &bytes[start..]);
}

/// `SEQUENCE { Flags INTEGER, MaxBytes INTEGER, Cookie OCTET STRING }`.
pub(crate) fn dirsync_request(flags: u32, max_bytes: u32, cookie: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(cookie.len() + 16);
    push_int32(&mut body, flags);
    push_int32(&mut body, max_bytes.min(i32::MAX as u32));
    push_tlv(&mut body, 0x04, cookie);
    let mut out = Vec::with_capacity(body.len() + 6);
    push_tlv(&mut out, 0x30, &body);
    out
}

/// `SEQUENCE { size INTEGER, cookie OCTET STRING }` (RFC 2696).
pub(crate) fn paged_request(size: u32, cookie: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(cookie.len() + 8);
    push_int32(&mut body, size.min(i32::MAX as u32));
    push_tlv(&mut body, 0x04, cookie);
    let mut out = Vec::with_capacity(body.len() + 6);
    push_tlv(&mut out, 0x30, &body);
    out
}

/// Reads definite-length, low-tag-number TLVs from a slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The body of the next element, which must carry `tag`.
    fn next(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], Malformed> {
        let (&found, rest) = self.bytes.split_first().ok_or(Malformed(what))?;
        if found != tag {
            return Err(Malformed(what));
        }
        let (&first, mut rest) = rest.split_first().ok_or(Malformed("truncated length"))?;
        let len = match first {
            0x80 => return Err(Malformed("indefinite BER length")),
            n if n < 0x80 => usize::from(n),
            n => {
                let count = usize::from(n & 0x7f);
                if count > 4 || count > rest.len() {
                    return Err(Malformed("bad BER length"));
                }
                let (digits, after) = rest.split_at(count);
                rest = after;
                digits.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
            }
        };
        if len > rest.len() {
            return Err(Malformed("BER element longer than its container"));
        }
        let (body, after) = rest.split_at(len);
        self.bytes = after;
        Ok(body)
    }

    fn done(&self) -> Result<(), Malformed> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Malformed("trailing bytes"))
        }
    }
}

/// An INTEGER of at most 32 bits, as a signed value.
fn int32(body: &[u8]) -> Result<i64, Malformed> {
    if body.is_empty() || body.len() > 5 {
        return Err(Malformed("INTEGER of the wrong length"));
    }
    let negative = body[0] & 0x80 != 0;
    let value = body.iter().fold(if negative { -1i64 } else { 0 }, |acc, b| {
        (acc << 8) | i64::from(*b)
    });
    if value < i64::from(i32::MIN) || value > i64::from(u32::MAX) {
        return Err(Malformed("INTEGER out of range"));
    }
    Ok(value)
}

/// The outer SEQUENCE of a control value, checked against [`MAX_CONTROL_BYTES`].
fn sequence<'a>(value: &'a [u8], what: &'static str) -> Result<Reader<'a>, Malformed> {
    if value.len() > MAX_CONTROL_BYTES {
        return Err(Malformed("control value too long"));
    }
    let mut outer = Reader { bytes: value };
    let body = outer.next(0x30, what)?;
    outer.done()?;
    Ok(Reader { bytes: body })
}

fn cookie(body: &[u8]) -> Result<Vec<u8>, Malformed> {
    if body.len() > MAX_COOKIE_BYTES {
        return Err(Malformed("cookie too long"));
    }
    Ok(body.to_vec())
}

/// `SEQUENCE { MoreResults INTEGER, unused INTEGER, CookieServer OCTET STRING }`.
pub(crate) fn dirsync_response(value: &[u8]) -> Result<DirSyncResponse, Malformed> {
    let mut items = sequence(value, "DirSync response is not a SEQUENCE")?;
    let more = int32(items.next(0x02, "DirSync MoreResults is not an INTEGER")?)? != 0;
    int32(items.next(0x02, "DirSync unused field is not an INTEGER")?)?;
    let cookie = cookie(items.next(0x04, "DirSync cookie is not an OCTET STRING")?)?;
    items.done()?;
    Ok(DirSyncResponse { more, cookie })
}

/// `SEQUENCE { size INTEGER, cookie OCTET STRING }`.
pub(crate) fn paged_response(value: &[u8]) -> Result<PagedResponse, Malformed> {
    let mut items = sequence(value, "paged results response is not a SEQUENCE")?;
    int32(items.next(0x02, "paged results size is not an INTEGER")?)?;
    let cookie = cookie(items.next(0x04, "paged results cookie is not an OCTET STRING")?)?;
    items.done()?;
    Ok(PagedResponse {
        cookie: (!cookie.is_empty()).then_some(cookie),
    })
}

/// What an attribute description with options says about its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Values {
    /// `attr`: the whole value list (or part of it, with ranged retrieval).
    All,
    /// `attr;range=1-1`: values added (DirSync incremental values).
    Added,
    /// `attr;range=0-0`: values removed (DirSync incremental values).
    Removed,
    /// `attr;range=low-high` or `attr;range=low-*`: one slice of a long value
    /// list (ranged retrieval); `None` as `high` for the last one.
    Slice {
        /// The index of the first value.
        low: u32,
        /// The index of the last value, `None` for `*` (the last slice).
        high: Option<u32>,
    },
}

/// How `description` (`member`, `member;range=1-1`, ...) names `attribute`'s
/// values; `None` when it is another attribute or has other options.
pub(crate) fn values_of(description: &str, attribute: &str) -> Option<Values> {
    let (name, options) = match description.split_once(';') {
        Some((name, options)) => (name, Some(options)),
        None => (description, None),
    };
    if !name.eq_ignore_ascii_case(attribute) {
        return None;
    }
    let Some(options) = options else {
        return Some(Values::All);
    };
    let range = options
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("range="))
        .and_then(|_| options.get(6..))?;
    let (low, high) = range.split_once('-')?;
    let low: u32 = low.parse().ok()?;
    let high = match high {
        "*" => None,
        digits => Some(digits.parse::<u32>().ok()?),
    };
    Some(match (low, high) {
        (1, Some(1)) => Values::Added,
        (0, Some(0)) => Values::Removed,
        (low, high) if high.is_none_or(|h| h >= low) => Values::Slice { low, high },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_requests() {
        assert_eq!(
            dirsync_request(DIRSYNC_INCREMENTAL_VALUES, 0, b""),
            [
                0x30, 0x0b, 0x02, 0x04, 0x80, 0, 0, 0, 0x02, 0x01, 0x00, 0x04, 0x00
            ]
        );
        assert_eq!(
            dirsync_request(1, 0x80, b"ab"),
            [
                0x30, 0x0b, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80, 0x04, 0x02, b'a', b'b'
            ]
        );
        let long = dirsync_request(0, 0, &[7; 300]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x36]);
        assert_eq!(&long[10..14], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(
            paged_request(500, b""),
            [0x30, 0x06, 0x02, 0x02, 0x01, 0xf4, 0x04, 0x00]
        );
    }

    #[test]
    fn decodes_responses() {
        let value = [
            0x30, 0x0a, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x02, b'c', b'k',
        ];
        assert_eq!(
            dirsync_response(&value),
            Ok(DirSyncResponse {
                more: true,
                cookie: b"ck".to_vec()
            })
        );
        // The request's own encoding reads back.
        let request = dirsync_request(DIRSYNC_INCREMENTAL_VALUES, 0, b"xyz");
        assert_eq!(dirsync_response(&request).map(|r| r.cookie), Ok(b"xyz".to_vec()));
        let long = dirsync_request(0, 0, &[9; 1000]);
        assert_eq!(dirsync_response(&long).map(|r| r.cookie.len()), Ok(1000));
        assert_eq!(
            paged_response(&paged_request(0, b"")),
            Ok(PagedResponse { cookie: None })
        );
        assert_eq!(
            paged_response(&paged_request(0, b"p")),
            Ok(PagedResponse {
                cookie: Some(b"p".to_vec())
            })
        );
    }

    #[test]
    fn rejects_malformed_responses() {
        let too_long_cookie = dirsync_request(0, 0, &vec![0; MAX_COOKIE_BYTES + 1]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "DirSync response is not a SEQUENCE"),
            (vec![0x30], "truncated length"),
            (vec![0x30, 0x80, 0, 0], "indefinite BER length"),
            (vec![0x30, 0x85, 1, 1, 1, 1, 1], "bad BER length"),
            (vec![0x30, 0x05, 0x02], "BER element longer than its container"),
            (vec![0x30, 0x00, 0x00], "trailing bytes"),
            (vec![0x31, 0x00], "DirSync response is not a SEQUENCE"),
            (vec![0x30, 0x00], "DirSync MoreResults is not an INTEGER"),
            (vec![0x30, 0x02, 0x02, 0x00], "INTEGER of the wrong length"),
            (
                vec![0x30, 0x08, 0x02, 0x06, 1, 0, 0, 0, 0, 0],
                "INTEGER of the wrong length",
            ),
            (
                vec![0x30, 0x07, 0x02, 0x05, 0x01, 0, 0, 0, 0],
                "INTEGER out of range",
            ),
            (
                vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
                "DirSync cookie is not an OCTET STRING",
            ),
            (
                vec![0x30, 0x08, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x24, 0x00],
                "DirSync cookie is not an OCTET STRING",
            ),
            (
                vec![
                    0x30, 0x0a, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
                ],
                "trailing bytes",
            ),
            (too_long_cookie, "cookie too long"),
            (vec![0x30; MAX_CONTROL_BYTES + 1], "control value too long"),
        ];
        for (value, why) in cases {
            assert_eq!(dirsync_response(&value), Err(Malformed(why)), "{value:02x?}");
        }
        assert!(paged_response(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    }

    #[test]
    fn reads_attribute_options() {
        assert_eq!(values_of("member", "member"), Some(Values::All));
        assert_eq!(values_of("Member;range=1-1", "member"), Some(Values::Added));
        assert_eq!(values_of("member;RANGE=0-0", "member"), Some(Values::Removed));
        assert_eq!(
            values_of("member;range=0-1499", "member"),
            Some(Values::Slice {
                low: 0,
                high: Some(1499)
            })
        );
        assert_eq!(
            values_of("member;range=1500-*", "member"),
            Some(Values::Slice {
                low: 1500,
                high: None
            })
        );
        for other in [
            "memberOf",
            "member;binary",
            "member;range=2-1",
            "member;range=a-1",
            "member;range=1",
            "member;range=99999999999-*",
            "cn",
        ] {
            assert_eq!(values_of(other, "member"), None, "{other}");
        }
    }
}
