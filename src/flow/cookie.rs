//! The cookie that binds a pending redirect login to the browser that started it.

use std::fmt::Write as _;
use std::time::Duration;

/// Name of the flow cookie: one per module, so two logins in two tabs do not
/// overwrite each other (`authchain_flow_<module id>`).
pub fn flow_cookie_name(module: &str) -> String {
    let mut name = String::from("authchain_flow_");
    // Cookie names are RFC 6265 tokens; anything else becomes `_`.
    name.extend(module.chars().take(64).map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level cross-site navigations (a GET redirect back from an
    /// identity provider).
    Lax,
    /// Sent on every request, cross-site POSTs included (the SAML POST binding);
    /// browsers require `Secure` with it.
    None,
}

impl SameSite {
    /// The attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// How a module wants its flow cookie set: chosen by the module from its callback
/// URL (its path, and `Secure` for https) and binding (SAML's POST binding needs
/// `SameSite=None; Secure`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieAttributes {
    /// `Path`: the callback's path, so the cookie travels only where it is read.
    pub path: String,
    /// `SameSite`.
    pub same_site: SameSite,
    /// `Secure`.
    pub secure: bool,
}

impl Default for CookieAttributes {
    fn default() -> Self {
        CookieAttributes {
            path: "/".into(),
            same_site: SameSite::Lax,
            secure: true,
        }
    }
}

impl CookieAttributes {
    /// Attributes for a callback at `url`: its path, `Secure` unless it is plain
    /// http (a loopback development setup), and `same_site`. `SameSite=None` on a
    /// plain-http callback falls back to `Lax` (browsers drop `None` without
    /// `Secure`; on loopback the provider is same-site anyway).
    pub fn for_callback(url: &str, same_site: SameSite) -> Self {
        let secure = !url.starts_with("http://");
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .map(|p| p.split(['?', '#']).next().unwrap_or("/"))
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        let same_site = if same_site == SameSite::None && !secure {
            SameSite::Lax
        } else {
            same_site
        };
        CookieAttributes {
            path: path.to_owned(),
            same_site,
            secure,
        }
    }
}

/// The flow cookie a [`Redirect`](crate::Redirect) asks the host to set. The host
/// sends [`FlowCookie::set_cookie`] as a `Set-Cookie` header and, on the callback,
/// passes the cookie named [`FlowCookie::name`] back as
/// [`AuthRequest::flow_cookie`](crate::AuthRequest::flow_cookie).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowCookie {
    /// The cookie's name ([`flow_cookie_name`] of the module).
    pub name: String,
    /// 256 random bits, base64url.
    pub value: String,
    /// `Path`, `SameSite` and `Secure`.
    pub attributes: CookieAttributes,
    /// `Max-Age`: the flow's lifetime.
    pub max_age: Duration,
}

impl std::fmt::Debug for FlowCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCookie")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("attributes", &self.attributes)
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl FlowCookie {
    /// The `Set-Cookie` header value: always `HttpOnly`.
    pub fn set_cookie(&self) -> String {
        let mut header = format!(
            "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite={}",
            self.name,
            self.value,
            self.attributes.path,
            self.max_age.as_secs(),
            self.attributes.same_site.as_str()
        );
        if self.attributes.secure {
            header.push_str("; Secure");
        }
        header
    }

    /// The `Set-Cookie` header value that deletes the cookie (after the callback).
    pub fn clear_cookie(name: &str, attributes: &CookieAttributes) -> String {
        let mut header = format!(
            "{name}=; Path={}; Max-Age=0; HttpOnly; SameSite={}",
            attributes.path,
            attributes.same_site.as_str()
        );
        if attributes.secure {
            let _ = write!(header, "; Secure");
        }
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_follow_the_callback() {
        let a =
            CookieAttributes::for_callback("https://app.example.org/auth/callback/saml?x=1", SameSite::None);
        assert_eq!(a.path, "/auth/callback/saml");
        assert!(a.secure);
        assert_eq!(a.same_site, SameSite::None);
        let b = CookieAttributes::for_callback("http://127.0.0.1:3000/cb", SameSite::None);
        assert!(!b.secure);
        assert_eq!(b.same_site, SameSite::Lax);
        assert_eq!(
            CookieAttributes::for_callback("https://h", SameSite::Lax).path,
            "/"
        );
        assert_eq!(flow_cookie_name("corp saml"), "authchain_flow_corp_saml");
    }
}
