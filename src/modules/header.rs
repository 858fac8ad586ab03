//! Trusted reverse-proxy headers: a proxy in front of the application
//! authenticated the user and says who it is in request headers.
//!
//! Headers are believed only when the direct peer is a configured trusted proxy.
//! With no proxies configured, nobody is trusted. See `docs/security.md` for a
//! safe deployment.

use async_trait::async_trait;
use http::{HeaderMap, HeaderName};
use tracing::warn;

use crate::audit::AUDIT_TARGET;
use crate::net::ProxyTrust;
use crate::{AuthError, AuthRequest, Authenticator, ConfigError, Identity, ModuleKind, Outcome};

/// Default principal header.
pub const DEFAULT_PRINCIPAL_HEADER: &str = "remote-user";
/// Default groups header.
pub const DEFAULT_GROUPS_HEADER: &str = "remote-groups";
/// Default maximum length of a principal, in bytes.
pub const DEFAULT_MAX_PRINCIPAL_BYTES: usize = 256;
/// Longest accepted group name, in bytes.
const MAX_GROUP_BYTES: usize = 1024;
/// Most groups accepted in one request.
const MAX_GROUPS: usize = 1024;

/// The trusted-header module.
#[derive(Debug, Clone)]
pub struct HeaderModule {
    id: String,
    trust: ProxyTrust,
    principal: HeaderName,
    groups: Option<HeaderName>,
    email: Option<HeaderName>,
    name: Option<HeaderName>,
    separator: String,
    fail_if_missing: bool,
    max_principal_bytes: usize,
    strip_realm: bool,
    lowercase: bool,
}

/// Builds a [`HeaderModule`].
#[derive(Debug, Clone)]
pub struct HeaderModuleBuilder {
    id: String,
    trust: ProxyTrust,
    principal: String,
    groups: Option<String>,
    email: Option<String>,
    name: Option<String>,
    separator: String,
    fail_if_missing: bool,
    max_principal_bytes: usize,
    strip_realm: bool,
    lowercase: bool,
}

impl HeaderModuleBuilder {
    /// The proxies whose headers are believed (nobody by default).
    pub fn trusted_proxies(mut self, trust: ProxyTrust) -> Self {
        self.trust = trust;
        self
    }

    /// The header naming the user (default `remote-user`).
    pub fn principal_header(mut self, name: impl Into<String>) -> Self {
        self.principal = name.into();
        self
    }

    /// The header listing the user's groups (default `remote-groups`; `None` to ignore groups).
    pub fn groups_header(mut self, name: Option<String>) -> Self {
        self.groups = name;
        self
    }

    /// The header carrying the email address.
    pub fn email_header(mut self, name: Option<String>) -> Self {
        self.email = name;
        self
    }

    /// The header carrying the display name.
    pub fn name_header(mut self, name: Option<String>) -> Self {
        self.name = name;
        self
    }

    /// The separator between groups (default `,`).
    pub fn group_separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Reject (instead of abstaining) when the principal header is missing or the
    /// peer is not a trusted proxy.
    pub fn fail_if_missing(mut self, yes: bool) -> Self {
        self.fail_if_missing = yes;
        self
    }

    /// Longest accepted principal, in bytes (default 256).
    pub fn max_principal_bytes(mut self, max: usize) -> Self {
        self.max_principal_bytes = max;
        self
    }

    /// Strip a Kerberos-style realm suffix: `alice@EXAMPLE.ORG` → `alice`.
    pub fn strip_realm(mut self, yes: bool) -> Self {
        self.strip_realm = yes;
        self
    }

    /// Lower-case the principal.
    pub fn lowercase(mut self, yes: bool) -> Self {
        self.lowercase = yes;
        self
    }

    /// Checks the header names and builds the module.
    pub fn build(self) -> Result<HeaderModule, ConfigError> {
        let key = |field: &str| format!("modules.{}.{field}", self.id);
        let parse = |field: &str, value: &str| {
            HeaderName::from_bytes(value.as_bytes()).map_err(|_| {
                ConfigError::invalid(key(field), format!("{value:?} is not a valid header name"))
            })
        };
        let optional =
            |field: &str, value: &Option<String>| value.as_deref().map(|v| parse(field, v)).transpose();
        if self.separator.is_empty() {
            return Err(ConfigError::invalid(key("group_separator"), "must not be empty"));
        }
        if self.max_principal_bytes == 0 {
            return Err(ConfigError::invalid(
                key("max_principal_bytes"),
                "must be at least 1",
            ));
        }
        if self.trust.trusts_nobody() {
            warn!(target: AUDIT_TARGET, module = %self.id, "header module trusts no proxy: it will never authenticate anybody");
        }
        Ok(HeaderModule {
            principal: parse("principal_header", &self.principal)?,
            groups: optional("groups_header", &self.groups)?,
            email: optional("email_header", &self.email)?,
            name: optional("name_header", &self.name)?,
            id: self.id,
            trust: self.trust,
            separator: self.separator,
            fail_if_missing: self.fail_if_missing,
            max_principal_bytes: self.max_principal_bytes,
            strip_realm: self.strip_realm,
            lowercase: self.lowercase,
        })
    }
}

impl HeaderModule {
    /// A header module with default header names and no trusted proxy.
    pub fn builder(id: impl Into<String>) -> HeaderModuleBuilder {
        HeaderModuleBuilder {
            id: id.into(),
            trust: ProxyTrust::none(),
            principal: DEFAULT_PRINCIPAL_HEADER.into(),
            groups: Some(DEFAULT_GROUPS_HEADER.into()),
            email: None,
            name: None,
            separator: ",".into(),
            fail_if_missing: false,
            max_principal_bytes: DEFAULT_MAX_PRINCIPAL_BYTES,
            strip_realm: false,
            lowercase: false,
        }
    }

    fn missing(&self, header: &HeaderName, problem: HeaderProblem) -> Result<Outcome, AuthError> {
        if self.fail_if_missing {
            Err(AuthError::rejected(
                self.id.clone(),
                HeaderError {
                    header: header.as_str().to_owned(),
                    problem,
                },
            ))
        } else {
            Ok(Outcome::Abstain)
        }
    }

    fn principal(&self, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
        let Some(value) = single(headers, &self.principal)? else {
            return Ok(None);
        };
        let value = text(&self.principal, value, self.max_principal_bytes)?;
        let mut principal = value;
        if self.strip_realm
            && let Some((user, _realm)) = principal.rsplit_once('@')
        {
            principal = user;
        }
        if principal.is_empty() {
            return Err(bad(&self.principal, HeaderProblem::Empty));
        }
        Ok(Some(if self.lowercase {
            principal.to_lowercase()
        } else {
            principal.to_owned()
        }))
    }

    fn groups(&self, headers: &HeaderMap) -> Result<Vec<String>, AuthError> {
        let Some(name) = &self.groups else {
            return Ok(Vec::new());
        };
        let mut groups: Vec<String> = Vec::new();
        for value in headers.get_all(name) {
            // An empty groups header means "no groups", not a malformed request.
            if value.as_bytes().iter().all(|b| *b == b' ') {
                continue;
            }
            let value = text(name, value.as_bytes(), usize::MAX)?;
            for group in value
                .split(self.separator.as_str())
                .map(str::trim)
                .filter(|g| !g.is_empty())
            {
                if group.len() > MAX_GROUP_BYTES {
                    return Err(bad(name, HeaderProblem::GroupTooLong(MAX_GROUP_BYTES)));
                }
                if !groups.iter().any(|g| g == group) {
                    groups.push(group.to_owned());
                }
                if groups.len() > MAX_GROUPS {
                    return Err(bad(name, HeaderProblem::TooManyGroups(MAX_GROUPS)));
                }
            }
        }
        Ok(groups)
    }

    fn optional(&self, headers: &HeaderMap, name: &Option<HeaderName>) -> Result<Option<String>, AuthError> {
        let Some(name) = name else { return Ok(None) };
        match single(headers, name)? {
            Some(value) => Ok(Some(text(name, value, MAX_GROUP_BYTES)?.to_owned())),
            None => Ok(None),
        }
    }
}

/// The one value of a header: `None` when absent, an error when repeated (two
/// values is either a confused proxy or a client-sent copy that survived).
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h [u8]>, AuthError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => Ok(Some(value.as_bytes())),
        (Some(_), Some(_)) => Err(bad(name, HeaderProblem::Repeated)),
    }
}

/// A header value as UTF-8 text without control characters, trimmed, bounded.
fn text<'v>(name: &HeaderName, value: &'v [u8], max: usize) -> Result<&'v str, AuthError> {
    let value = std::str::from_utf8(value).map_err(|_| bad(name, HeaderProblem::NotUtf8))?;
    if value.chars().any(char::is_control) {
        return Err(bad(name, HeaderProblem::ControlCharacter));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(bad(name, HeaderProblem::Empty));
    }
    if value.len() > max {
        return Err(bad(name, HeaderProblem::TooLong(max)));
    }
    Ok(value)
}

fn bad(name: &HeaderName, problem: HeaderProblem) -> AuthError {
    AuthError::invalid_request(HeaderError {
        header: name.as_str().to_owned(),
        problem,
    })
}

/// A proxy identity header that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{header}` {problem}")]
#[non_exhaustive]
pub struct HeaderError {
    /// The header's name.
    pub header: String,
    /// What is wrong with it.
    pub problem: HeaderProblem,
}

/// What is wrong with a header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// Absent (with `fail_if_missing`).
    #[error("is missing")]
    Missing,
    /// Sent by a peer that is not a trusted proxy, so not read (with `fail_if_missing`).
    #[error("did not come through a trusted proxy")]
    UntrustedPeer,
    /// Sent more than once.
    #[error("appears more than once")]
    Repeated,
    /// Not UTF-8.
    #[error("is not UTF-8")]
    NotUtf8,
    /// Holds a control character.
    #[error("contains a control character")]
    ControlCharacter,
    /// Empty or only white space.
    #[error("is empty")]
    Empty,
    /// Longer than allowed.
    #[error("is longer than {0} bytes")]
    TooLong(usize),
    /// One group is longer than allowed.
    #[error("holds a group longer than {0} bytes")]
    GroupTooLong(usize),
    /// More groups than allowed.
    #[error("lists more than {0} groups")]
    TooManyGroups(usize),
}

#[async_trait]
impl Authenticator for HeaderModule {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Ambient
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let headers = &request.headers;
        if !self.trust.is_trusted(request.peer.ip()) {
            if headers.contains_key(&self.principal) {
                warn!(target: AUDIT_TARGET, module = %self.id, peer = %request.peer.ip(),
                    header = %self.principal, "identity header from an untrusted peer ignored");
            }
            return self.missing(&self.principal, HeaderProblem::UntrustedPeer);
        }
        let Some(principal) = self.principal(headers)? else {
            return self.missing(&self.principal, HeaderProblem::Missing);
        };
        let mut identity = Identity::new(self.id.clone(), principal.clone(), principal);
        identity.groups = self.groups(headers)?;
        identity.email = self.optional(headers, &self.email)?;
        identity.display_name = self.optional(headers, &self.name)?;
        Ok(Outcome::Authenticated(identity))
    }
}
