//! Why an LDAP login failed.
//!
//! None of these carries a password: ldap3's errors never hold one, and the
//! directory's diagnostic text (which may quote the request) is logged, not kept.

use std::fmt;
use std::time::Duration;

use crate::AccountRestriction;

/// The LDAP step an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LdapOperation {
    /// Opening the connection (TCP, TLS or StartTLS).
    Connect,
    /// The service account's bind.
    ServiceBind,
    /// The user's bind.
    UserBind,
    /// A search (users, groups, or a directory synchronisation search).
    Search,
}

impl LdapOperation {
    /// `connect`, `service bind`, `user bind` or `search`.
    pub fn as_str(self) -> &'static str {
        match self {
            LdapOperation::Connect => "connect",
            LdapOperation::ServiceBind => "service bind",
            LdapOperation::UserBind => "user bind",
            LdapOperation::Search => "search",
        }
    }
}

impl fmt::Display for LdapOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one server URL failed (see [`LdapError::Unreachable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlFailure {
    /// The URL, as configured.
    pub url: String,
    /// What went wrong there: [`LdapError::Connect`], a connect or service-bind
    /// [`LdapError::Timeout`], a [`LdapError::Protocol`] error, ...
    pub error: LdapError,
}

impl UrlFailure {
    /// `url` failed with `error`.
    pub fn new(url: impl Into<String>, error: LdapError) -> Self {
        UrlFailure {
            url: url.into(),
            error,
        }
    }
}

impl fmt::Display for UrlFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.error)
    }
}

fn list(failures: &[UrlFailure]) -> String {
    if failures.is_empty() {
        return "no URL tried".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why the directory refused or failed.
///
/// Outages (every variant but [`Ambiguous`](LdapError::Ambiguous) and
/// [`EntryNotFound`](LdapError::EntryNotFound)) come as
/// [`AuthError::Unavailable`](crate::AuthError::Unavailable); those two as
/// [`AuthError::Rejected`](crate::AuthError::Rejected). A wrong password (result 49
/// and its kin) is [`AuthError::InvalidCredentials`](crate::AuthError::InvalidCredentials),
/// never one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdapError {
    /// No server could be reached: how each URL failed, in the order tried.
    #[error("no directory server reachable: {}", list(.0))]
    Unreachable(Vec<UrlFailure>),
    /// The TCP connection or the TLS / StartTLS handshake failed (the LDAP
    /// client's description: refused, reset, certificate not trusted, ...).
    #[error("could not connect: {0}")]
    Connect(String),
    /// Every pooled connection stayed busy for longer than the operation timeout.
    #[error("every pooled connection is busy")]
    PoolExhausted,
    /// A step took longer than its timeout (the connect timeout for
    /// [`LdapOperation::Connect`], the operation timeout otherwise).
    #[error("{operation}: no answer within {after:?}")]
    Timeout {
        /// The step.
        operation: LdapOperation,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The directory refused the service account's bind (a wrong `bind_dn` or
    /// `bind_password`, a locked service account): its replicas will refuse too.
    #[error("the service account's bind was refused (LDAP result {code})")]
    ServiceBindRefused {
        /// The LDAP result code (49: invalid credentials).
        code: u32,
    },
    /// A step failed with this LDAP result code (busy, unavailable, insufficient
    /// access, ...).
    #[error("{operation}: the directory answered LDAP result {code}")]
    Result {
        /// The step.
        operation: LdapOperation,
        /// The LDAP result code.
        code: u32,
    },
    /// The protocol failed: the connection was lost mid-operation, or the
    /// directory's answer was malformed.
    #[error("{operation}: LDAP protocol error: {detail}")]
    Protocol {
        /// The step.
        operation: LdapOperation,
        /// What went wrong.
        detail: String,
    },
    /// A configured search base does not exist (result 32 for the base): a
    /// configuration problem, answered as an outage so that nobody silently loses
    /// their groups.
    #[error("{setting} `{base}` does not exist")]
    NoSuchBase {
        /// `user_search_base` or `group_search_base`.
        setting: &'static str,
        /// The base DN.
        base: String,
    },
    /// The login matches several directory entries: the user search filter is not
    /// unique (a refusal; the audit log says which filter).
    #[error("the login matches several directory entries")]
    Ambiguous,
    /// Direct-bind mode: the bind succeeded but the user's entry was not found
    /// (check `user_search_base` / `user_search_filter`; a refusal).
    #[error("the bound user's directory entry was not found")]
    EntryNotFound,
}

/// Most bytes of a bind's diagnostic text read for an Active Directory sub-code.
const MAX_DIAGNOSTIC_BYTES: usize = 512;

/// The account restriction in an Active Directory bind refusal (result 49), read
/// from the sub-code in its diagnostic text: `80090308: LdapErr: DSID-0C09041C,
/// comment: AcceptSecurityContext error, data 533, v4563`. `None` for a wrong
/// password or an unknown user (`52e`, `525`), an unknown sub-code, and any text
/// that is not AD's (OpenLDAP's, say): those stay a wrong password.
pub(crate) fn ad_restriction(text: &str) -> Option<AccountRestriction> {
    let text = crate::net::truncate(text, MAX_DIAGNOSTIC_BYTES);
    if !text.contains("AcceptSecurityContext") {
        return None;
    }
    let (_, rest) = text.split_once(", data ")?;
    let code = rest.split([',', ' ']).next()?;
    match code.to_ascii_lowercase().as_str() {
        "530" | "531" => Some(AccountRestriction::LogonHours),
        "532" => Some(AccountRestriction::PasswordExpired),
        "533" => Some(AccountRestriction::Disabled),
        "701" => Some(AccountRestriction::Expired),
        "773" => Some(AccountRestriction::PasswordMustChange),
        "775" => Some(AccountRestriction::LockedOut),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(code: &str) -> String {
        format!("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {code}, v1db1")
    }

    #[test]
    fn ad_sub_codes() {
        use AccountRestriction::*;
        for (code, expected) in [
            ("52e", None),
            ("525", None),
            ("530", Some(LogonHours)),
            ("531", Some(LogonHours)),
            ("532", Some(PasswordExpired)),
            ("533", Some(Disabled)),
            ("701", Some(Expired)),
            ("773", Some(PasswordMustChange)),
            ("775", Some(LockedOut)),
            ("999", None),
            ("", None),
        ] {
            assert_eq!(ad_restriction(&ad(code)), expected, "data {code}");
        }
        // Not AD's text: a wrong password, whatever it quotes.
        assert_eq!(ad_restriction("invalid credentials, data 533, x"), None);
        assert_eq!(ad_restriction(""), None);
        // The sub-code far beyond the bound is not read.
        let long = format!("{}{}", "x".repeat(600), ad("533"));
        assert_eq!(ad_restriction(&long), None);
    }

    #[test]
    fn unreachable_lists_every_url() {
        let err = LdapError::Unreachable(vec![
            UrlFailure::new("ldap://a", LdapError::Connect("connection refused".into())),
            UrlFailure::new(
                "ldap://b",
                LdapError::Timeout {
                    operation: LdapOperation::ServiceBind,
                    after: Duration::from_secs(2),
                },
            ),
        ]);
        assert_eq!(
            err.to_string(),
            "no directory server reachable: ldap://a: could not connect: connection refused; \
             ldap://b: service bind: no answer within 2s"
        );
    }
}
