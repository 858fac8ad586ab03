//! Filter and DN templates, escaping, and reading values out of entries.

use ldap3::{dn_escape, ldap_escape};

/// The OID of Active Directory's `LDAP_MATCHING_RULE_IN_CHAIN` (transitive membership).
pub const AD_MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// The group filter used for Active Directory nested groups when none is configured.
pub const AD_NESTED_GROUP_FILTER: &str = "(member:1.2.840.113556.1.4.1941:=%s)";

/// Replaces `%s` with `s` and `%u` with `u` in one pass (a substituted value is never
/// scanned again, so a login containing `%s` stays literal). Other `%` stay as they are.
pub(crate) fn substitute(template: &str, s: &str, u: &str) -> String {
    let mut out = String::with_capacity(template.len() + s.len().max(u.len()));
    let mut rest = template;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match after.as_bytes().first() {
            Some(b's') => {
                out.push_str(s);
                rest = &after[1..];
            }
            Some(b'u') => {
                out.push_str(u);
                rest = &after[1..];
            }
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A user search filter: `%s` (and `%u`) replaced by the RFC 4515-escaped login.
pub(crate) fn user_filter(template: &str, login: &str) -> String {
    let escaped = ldap_escape(login);
    substitute(template, &escaped, &escaped)
}

/// A group search filter: `%s` replaced by the RFC 4515-escaped user DN, `%u` by the
/// RFC 4515-escaped login.
pub(crate) fn group_filter(template: &str, user_dn: &str, login: &str) -> String {
    substitute(template, &ldap_escape(user_dn), &ldap_escape(login))
}

/// Whether a bind template names a DN (`uid=%s,ou=people,...`) rather than an Active
/// Directory user principal (`%s@corp.example`) or down-level name (`CORP\%s`).
pub(crate) fn is_dn_template(template: &str) -> bool {
    let head = template.split(',').next().unwrap_or("");
    head.contains('=') && template.contains("%s")
}

/// The name to bind with: in a DN template the login is escaped as an RFC 4514
/// attribute value; in `user@domain` and `DOMAIN\user` forms it is used as typed.
pub(crate) fn bind_name(template: &str, login: &str) -> String {
    if is_dn_template(template) {
        let escaped = dn_escape(login);
        substitute(template, &escaped, &escaped)
    } else {
        substitute(template, login, login)
    }
}

pub(crate) use crate::dn::first_rdn_value;

/// Formats a binary Active Directory `objectGUID` (16 bytes, the first three fields
/// little-endian) in its usual text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(crate) fn format_guid(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// Lower-case hex of arbitrary bytes (a binary subject other than `objectGUID`).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_single_pass() {
        assert_eq!(substitute("(uid=%s)", "%u%s", "x"), "(uid=%u%s)");
        assert_eq!(
            substitute("(&(a=%s)(b=%u)(c=100%))", "S", "U"),
            "(&(a=S)(b=U)(c=100%))"
        );
        assert_eq!(substitute("%", "S", "U"), "%");
    }

    #[test]
    fn user_filter_escapes_rfc4515() {
        assert_eq!(user_filter("(uid=%s)", "*"), r"(uid=\2a)");
        assert_eq!(
            user_filter("(uid=%s)", "alice)(uid=*"),
            r"(uid=alice\29\28uid=\2a)"
        );
        assert_eq!(user_filter("(uid=%s)", "a\\b\0"), r"(uid=a\5cb\00)");
        assert_eq!(
            user_filter("(|(uid=%s)(mail=%s))", "bob"),
            "(|(uid=bob)(mail=bob))"
        );
    }

    #[test]
    fn bind_names_escape_rfc4514_only_in_dns() {
        let dn = "uid=%s,ou=people,dc=example,dc=org";
        assert!(is_dn_template(dn));
        assert_eq!(
            bind_name(dn, "smith, john"),
            r"uid=smith\2c john,ou=people,dc=example,dc=org"
        );
        assert_eq!(
            bind_name(dn, "a+b=c"),
            r"uid=a\2bb\3dc,ou=people,dc=example,dc=org"
        );
        assert!(!is_dn_template("%s@corp.example"));
        assert_eq!(bind_name("%s@corp.example", "alice"), "alice@corp.example");
        assert!(!is_dn_template(r"CORP\%s"));
        assert_eq!(bind_name(r"CORP\%s", "alice"), r"CORP\alice");
    }

    #[test]
    fn nested_group_filter_uses_the_in_chain_rule_with_an_escaped_dn() {
        let filter = group_filter(
            AD_NESTED_GROUP_FILTER,
            r"CN=Smith\, John (IT),OU=Users,DC=corp,DC=example",
            "js",
        );
        assert_eq!(
            filter,
            r"(member:1.2.840.113556.1.4.1941:=CN=Smith\5c, John \28IT\29,OU=Users,DC=corp,DC=example)"
        );
        assert!(filter.contains(AD_MATCHING_RULE_IN_CHAIN));
        assert!(ldap3::parse_filter(&filter).is_ok());
        assert_eq!(
            group_filter("(memberUid=%u)", "uid=x,dc=y", "a*"),
            r"(memberUid=a\2a)"
        );
    }

    #[test]
    fn guid_text_form() {
        let bytes = [
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
        ];
        assert_eq!(
            format_guid(&bytes).as_deref(),
            Some("12345678-1234-5678-1234-56789abcdef0")
        );
        assert_eq!(format_guid(&[1, 2, 3]), None);
        assert_eq!(hex(&[0, 255]), "00ff");
    }
}
