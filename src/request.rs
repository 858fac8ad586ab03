//! What the host saw: [`AuthRequest`] and [`Credentials`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

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
    Start {
        /// Where to send the browser after the login (relative, or on an allow-list).
        return_to: Option<String>,
    },
    /// The browser returns from an identity provider: the query or form parameters.
    Callback {
        /// The callback's parameters.
        params: BTreeMap<String, String>,
    },
    /// Nothing but the request itself (headers): ambient authentication.
    None,
}
