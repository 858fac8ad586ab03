//! What the host saw: [`AuthRequest`] and [`Credentials`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::SecretString;

/// One login attempt as the host application received it.
#[derive(Clone)]
pub struct AuthRequest {
    /// The request's HTTP headers (the header module reads identity headers here).
    pub headers: HeaderMap,
    /// The address of the direct peer of the TCP connection.
    pub peer: SocketAddr,
    /// What the user presented.
    pub credentials: Credentials,
    /// Explicit selection of one module by id ("log in with X"): only that module runs.
    pub module: Option<String>,
    /// The value of the flow cookie set when a redirect login started.
    pub flow_cookie: Option<String>,
}

impl AuthRequest {
    /// A request from `peer` with no headers and no credentials.
    pub fn new(peer: SocketAddr) -> Self {
        AuthRequest {
            headers: HeaderMap::new(),
            peer,
            credentials: Credentials::None,
            module: None,
            flow_cookie: None,
        }
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Sets password credentials.
    pub fn with_password(mut self, login: impl Into<String>, password: impl Into<SecretString>) -> Self {
        self.credentials = Credentials::Password {
            login: login.into(),
            password: password.into(),
        };
        self
    }

    /// Sets a signed login assertion ([`Credentials::Assertion`]).
    pub fn with_assertion(mut self, token: impl Into<SecretString>) -> Self {
        self.credentials = Credentials::Assertion { token: token.into() };
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Selects one module by id.
    pub fn select(mut self, module: impl Into<String>) -> Self {
        self.module = Some(module.into());
        self
    }

    /// The login name the request carries, if it carries a password.
    pub fn login(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::Password { login, .. } => Some(login),
            _ => None,
        }
    }
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may carry bearer tokens or cookies: list the names only.
        let header_names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("AuthRequest")
            .field("headers", &header_names)
            .field("peer", &self.peer)
            .field("credentials", &self.credentials)
            .field("module", &self.module)
            .field("flow_cookie", &self.flow_cookie.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What the user presented.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credentials {
    /// A login name and a password (local, LDAP).
    Password {
        /// The login name as typed.
        login: String,
        /// The password exactly as typed; never printed.
        password: SecretString,
    },
    /// Begin a redirect login at the selected module.
    Start(StartLogin),
    /// The browser returns from an identity provider: the query or form parameters.
    Callback {
        /// The callback's parameters.
        params: BTreeMap<String, String>,
    },
    /// Nothing but the request itself (headers): ambient authentication.
    None,
    /// A signed login assertion (a compact JWS) for key-based login (the
    /// `key_login` module, feature `key-login`); never printed.
    Assertion {
        /// The compact JWS, as the client sent it.
        token: SecretString,
    },
}

/// Longest accepted `login_hint`, in bytes.
pub const MAX_LOGIN_HINT_BYTES: usize = 256;
/// Longest accepted `domain_hint`, in bytes.
pub const MAX_DOMAIN_HINT_BYTES: usize = 253;

/// What a browser asks for when it begins a redirect login: where to return, and
/// hints the identity provider may use. Checked by the chain before any module
/// runs ([`StartLogin::check`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StartLogin {
    /// Where to send the browser after the login (relative, or on the module's
    /// allow-list).
    pub return_to: Option<String>,
    /// Who is signing in (OIDC / OAuth2 `login_hint`): printable, at most
    /// [`MAX_LOGIN_HINT_BYTES`](crate::MAX_LOGIN_HINT_BYTES).
    pub login_hint: Option<String>,
    /// Whether the provider should ask again (OIDC `prompt`; SAML `ForceAuthn` /
    /// `IsPassive`).
    pub prompt: Option<Prompt>,
    /// The user's home domain (`domain_hint` of Entra ID): a DNS name.
    pub domain_hint: Option<String>,
    /// The client's address after trusted proxies: set by the chain (replacing
    /// any value the host put here), so flow stores can bound each client's
    /// pending logins.
    pub client: Option<IpAddr>,
}

impl StartLogin {
    /// No return target and no hints.
    pub fn new() -> Self {
        StartLogin::default()
    }

    /// Where to return after the login.
    pub fn return_to(mut self, url: impl Into<String>) -> Self {
        self.return_to = Some(url.into());
        self
    }

    /// The `login_hint`.
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// The `prompt`.
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.prompt = Some(prompt);
        self
    }

    /// The `domain_hint`.
    pub fn domain_hint(mut self, hint: impl Into<String>) -> Self {
        self.domain_hint = Some(hint.into());
        self
    }

    /// The client's address (a chain sets it itself; this is for calling a
    /// module or [`Flows`](crate::flow::Flows) directly).
    pub fn client(mut self, ip: IpAddr) -> Self {
        self.client = Some(ip);
        self
    }

    /// Checks the hints (the return-to URL is checked by the module's policy).
    pub fn check(&self) -> Result<(), StartError> {
        if let Some(hint) = &self.login_hint
            && (hint.is_empty() || hint.len() > MAX_LOGIN_HINT_BYTES || hint.chars().any(char::is_control))
        {
            return Err(StartError::LoginHint);
        }
        if let Some(hint) = &self.domain_hint {
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if hint.len() > MAX_DOMAIN_HINT_BYTES || !hint.split('.').all(label_ok) {
                return Err(StartError::DomainHint);
            }
        }
        Ok(())
    }
}

impl From<Option<String>> for StartLogin {
    fn from(return_to: Option<String>) -> Self {
        StartLogin {
            return_to,
            ..StartLogin::default()
        }
    }
}

/// The OIDC `prompt` values a login may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Prompt {
    /// `none`: no interaction; fail if the user is not signed in at the provider
    /// (SAML `IsPassive`).
    None,
    /// `login`: sign in again even with a session (SAML `ForceAuthn`).
    Login,
    /// `consent`: ask for consent again.
    Consent,
    /// `select_account`: let the user choose an account.
    SelectAccount,
}

impl Prompt {
    /// The OIDC parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::None => "none",
            Prompt::Login => "login",
            Prompt::Consent => "consent",
            Prompt::SelectAccount => "select_account",
        }
    }
}

/// A malformed start parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// `login_hint` is empty, too long or holds a control character.
    #[error("login_hint is empty, too long or holds a control character")]
    LoginHint,
    /// `domain_hint` is not a DNS name.
    #[error("domain_hint is not a DNS name")]
    DomainHint,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_hints_are_checked() {
        assert_eq!(StartLogin::new().login_hint("alice@example.org").check(), Ok(()));
        assert_eq!(
            StartLogin::new().login_hint("a\nb").check(),
            Err(StartError::LoginHint)
        );
        assert_eq!(
            StartLogin::new().login_hint("x".repeat(300)).check(),
            Err(StartError::LoginHint)
        );
        assert_eq!(StartLogin::new().domain_hint("contoso.com").check(), Ok(()));
        for bad in ["", "a..b", "-a.com", "a b", "a&prompt=none"] {
            assert_eq!(
                StartLogin::new().domain_hint(bad).check(),
                Err(StartError::DomainHint),
                "{bad}"
            );
        }
    }
}
