//! Reading RFC 4514 distinguished names: the one DN reader role mapping, the LDAP
//! module and the directory sync share.

use std::borrow::Cow;

/// The characters RFC 4514 (section 3) lets a backslash escape by themselves;
/// anything else after a backslash must be two hex digits.
const ESCAPABLE: &[u8] = b"\"+,;<>\\ #=";

/// The value of the first RDN of `dn`, unescaped: `cn=admins,ou=groups` → `admins`,
/// `cn=a\,b,ou=x` and `cn=a\2Cb,ou=x` → `a,b`, `cn=R\+D` → `R+D`.
///
/// `None` when `dn` is not a DN: no attribute type (letters, digits, `-`, `.`)
/// before an `=`, an empty value, an invalid escape (a trailing `\`, `\` before
/// anything but a special character or two hex digits), or escaped bytes that are
/// not UTF-8. Unescaped spaces around the value are dropped, escaped ones kept.
pub(crate) fn first_rdn_value(dn: &str) -> Option<Cow<'_, str>> {
    // A byte search: most groups are plain names, and this is their whole cost.
    let at = dn.bytes().position(|b| b == b'=')?;
    let (kind, rest) = (&dn[..at], &dn[at + 1..]);
    let kind = kind.trim_matches(' ');
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut escaped_any = false;
    // Unescaped leading spaces are skipped; `keep` is the output length up to the
    // last byte that is not an unescaped space.
    let mut keep = 0;
    let mut start = None;
    let mut end = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b',' | b'+' | b';' => break,
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                let byte = if next.is_ascii_hexdigit() {
                    let low = *bytes.get(i + 2)?;
                    // Both digits must be hex: `u8::from_str_radix` alone would
                    // read `+D` as 13.
                    if !low.is_ascii_hexdigit() {
                        return None;
                    }
                    (hex_value(next) << 4) | hex_value(low)
                } else if ESCAPABLE.contains(&next) {
                    next
                } else {
                    return None;
                };
                start.get_or_insert(i);
                escaped_any = true;
                out.push(byte);
                keep = out.len();
                i += if next.is_ascii_hexdigit() { 3 } else { 2 };
                end = i;
            }
            b' ' if start.is_none() => i += 1,
            _ => {
                start.get_or_insert(i);
                out.push(b);
                if b != b' ' {
                    keep = out.len();
                    end = i + 1;
                }
                i += 1;
            }
        }
    }
    out.truncate(keep);
    if out.is_empty() {
        return None;
    }
    if !escaped_any {
        // The value is a slice of the input: borrow it.
        let start = start.unwrap_or(0);
        return rest.get(start..end).map(Cow::Borrowed);
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::first_rdn_value;

    fn value(dn: &str) -> Option<String> {
        first_rdn_value(dn).map(|v| v.into_owned())
    }

    #[test]
    fn plain_values_are_borrowed() {
        assert!(matches!(
            first_rdn_value("cn=admins,ou=groups,dc=x"),
            Some(std::borrow::Cow::Borrowed("admins"))
        ));
        assert_eq!(
            value("CN=Domain Admins,CN=Users").as_deref(),
            Some("Domain Admins")
        );
        assert_eq!(value("cn = spaced , ou=x").as_deref(), Some("spaced"));
        assert_eq!(value("uid=alice+cn=Alice,ou=x").as_deref(), Some("alice"));
        assert_eq!(value("2.5.4.3=oid").as_deref(), Some("oid"));
    }

    #[test]
    fn escapes() {
        // The issue's reproducer: `\+` before a hex digit is an escaped `+`.
        assert_eq!(value(r"cn=R\+D,ou=x").as_deref(), Some("R+D"));
        assert_eq!(value(r"cn=R\+D").as_deref(), Some("R+D"));
        assert_eq!(value(r"cn=R\2BD").as_deref(), Some("R+D"));
        assert_eq!(value(r"cn=a\2b").as_deref(), Some("a+"));
        assert_eq!(value(r"cn=a\,b,ou=x").as_deref(), Some("a,b"));
        assert_eq!(value(r"cn=a\2Cb,ou=x").as_deref(), Some("a,b"));
        assert_eq!(value(r"cn=back\\slash").as_deref(), Some(r"back\slash"));
        assert_eq!(value(r"cn=caf\C3\A9,ou=x").as_deref(), Some("café"));
        assert_eq!(value(r"cn=\#hash\=\;\<\>\ ").as_deref(), Some("#hash=;<> "));
        assert_eq!(value(r"cn=\ lead").as_deref(), Some(" lead"));
    }

    #[test]
    fn invalid_escapes_and_non_dns_are_none() {
        for bad in [
            r"cn=trailing\",
            r"cn=a\q",
            r"cn=a\2",
            r"cn=a\2G",
            r"cn=a\+",
            r"cn=\FF",
            "admins",
            "cn=,ou=x",
            "cn=   ,ou=x",
            "=value",
            "a,b=c",
            r"c\n=x",
        ] {
            // `cn=a\+` is fine (an escaped `+`): check it separately.
            if bad == r"cn=a\+" {
                assert_eq!(value(bad).as_deref(), Some("a+"));
                continue;
            }
            assert_eq!(value(bad), None, "{bad}");
        }
    }
}
