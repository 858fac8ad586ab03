//! Trusted reverse-proxy headers: a proxy in front of the application
//! authenticated the user and says who it is in request headers.
//!
//! Headers are believed only when the direct peer is a configured trusted proxy.
//! With no proxies configured, nobody is trusted. See `docs/security.md` for a
//! safe deployment.

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracing::warn;

use crate::audit::AUDIT_TARGET;
use crate::identity::DistinctGroups;
use crate::net::ProxyTrust;
use crate::{AuthError, AuthRequest, Authenticator, ConfigError, Groups, Identity, ModuleKind, Outcome};

mod settings;

#[cfg(feature = "signed-header")]
pub(crate) use settings::parse_header_name;
pub use settings::{
    DEFAULT_GROUPS_HEADER, DEFAULT_MAX_PRINCIPAL_BYTES, DEFAULT_PRINCIPAL_HEADER, HeaderSettings,
};

/// Longest accepted group name, in bytes.
const MAX_GROUP_BYTES: usize = 1024;
/// Most groups accepted in one request.
const MAX_GROUPS: usize = 1024;

/// The trusted-header module.
#[derive(Debug, Clone)]
pub struct HeaderModule {
    id: crate::ModuleId,
    /// `None`: the proxies of the chain the module sits in (set when the chain is
    /// built; nobody outside a chain).
    trust: Option<ProxyTrust>,
    settings: HeaderSettings,
}

/// Builds a [`HeaderModule`]: sugar over [`HeaderSettings`].
#[derive(Debug)]
pub struct HeaderModuleBuilder {
    id: crate::ModuleId,
    trust: Option<ProxyTrust>,
    settings: HeaderSettings,
    /// The first header name that did not parse.
    error: Option<ConfigError>,
}

impl HeaderModuleBuilder {
    /// The proxies whose headers are believed. Unset: the proxies of the chain
    /// the module sits in (`ChainBuilder::client_ip_from`, the top-level
    /// `trusted_proxies` in TOML), so one list serves both.
    pub fn trusted_proxies(mut self, trust: ProxyTrust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// All settings at once (the trusted proxies come from
    /// [`trusted_proxies`](Self::trusted_proxies), not from the settings).
    pub fn settings(mut self, settings: HeaderSettings) -> Self {
        self.settings = settings;
        self
    }

    fn header(&mut self, key: &str, name: Option<String>) -> Option<HeaderName> {
        let name = name?;
        match settings::parse_header_name(&name) {
            Ok(name) => Some(name),
            Err(message) => {
                self.error.get_or_insert(ConfigError::invalid(key, message));
                None
            }
        }
    }

    /// [`HeaderSettings::principal_header`].
    pub fn principal_header(mut self, name: impl Into<String>) -> Self {
        if let Some(name) = self.header("principal_header", Some(name.into())) {
            self.settings.principal_header = name;
        }
        self
    }

    /// [`HeaderSettings::groups_header`] (`None` to ignore groups).
    pub fn groups_header(mut self, name: Option<String>) -> Self {
        self.settings.groups_header = self.header("groups_header", name);
        self
    }

    /// [`HeaderSettings::email_header`].
    pub fn email_header(mut self, name: Option<String>) -> Self {
        self.settings.email_header = self.header("email_header", name);
        self
    }

    /// [`HeaderSettings::name_header`].
    pub fn name_header(mut self, name: Option<String>) -> Self {
        self.settings.name_header = self.header("name_header", name);
        self
    }

    /// [`HeaderSettings::group_separator`].
    pub fn group_separator(mut self, separator: impl Into<String>) -> Self {
        self.settings.group_separator = separator.into();
        self
    }

    /// [`HeaderSettings::fail_if_missing`].
    pub fn fail_if_missing(mut self, yes: bool) -> Self {
        self.settings.fail_if_missing = yes;
        self
    }

    /// [`HeaderSettings::max_principal_bytes`].
    pub fn max_principal_bytes(mut self, max: std::num::NonZeroUsize) -> Self {
        self.settings.max_principal_bytes = max;
        self
    }

    /// [`HeaderSettings::strip_realm`].
    pub fn strip_realm(mut self, yes: bool) -> Self {
        self.settings.strip_realm = yes;
        self
    }

    /// [`HeaderSettings::lowercase`].
    pub fn lowercase(mut self, yes: bool) -> Self {
        self.settings.lowercase = yes;
        self
    }

    /// Builds the module ([`HeaderModule::new`] with these settings and proxies).
    pub fn build(self) -> Result<HeaderModule, ConfigError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        HeaderModule::with_trust(self.id, self.settings, self.trust)
    }
}

impl HeaderModule {
    /// A header module with default header names and no trusted proxy.
    pub fn builder(id: impl Into<crate::ModuleId>) -> HeaderModuleBuilder {
        HeaderModuleBuilder {
            id: id.into(),
            trust: None,
            settings: HeaderSettings::default(),
            error: None,
        }
    }

    /// The module `settings` describe; its trusted proxies are
    /// `settings.trusted_proxies`, any peer with `insecure_trust_any_peer`, and
    /// otherwise those of the chain it sits in. Errors name the key.
    pub fn new(
        id: impl Into<crate::ModuleId>,
        settings: HeaderSettings,
    ) -> Result<HeaderModule, ConfigError> {
        let id = id.into();
        let trust = if settings.insecure_trust_any_peer {
            warn!(target: AUDIT_TARGET, module = %id, "insecure_trust_any_peer is on: ANY client can log in as anybody by sending a header");
            Some(ProxyTrust::insecure_trust_any_peer())
        } else {
            settings
                .trusted_proxies
                .as_ref()
                .map(|nets| ProxyTrust::new(nets.iter().map(|net| net.0)))
        };
        HeaderModule::with_trust(id, settings, trust)
    }

    fn with_trust(
        id: crate::ModuleId,
        settings: HeaderSettings,
        trust: Option<ProxyTrust>,
    ) -> Result<HeaderModule, ConfigError> {
        settings.check()?;
        if trust.as_ref().is_some_and(ProxyTrust::trusts_nobody) {
            warn!(target: AUDIT_TARGET, module = %id, "header module trusts no proxy: it will never authenticate anybody");
        }
        Ok(HeaderModule { id, trust, settings })
    }

    /// Whether the module takes its trusted proxies from its chain.
    pub(crate) fn inherits_trust(&self) -> bool {
        self.trust.is_none()
    }

    /// The same module trusting its chain's proxies (the chain builder calls it).
    pub(crate) fn with_chain_trust(&self, trust: &ProxyTrust) -> HeaderModule {
        if trust.trusts_nobody() {
            warn!(target: AUDIT_TARGET, module = %self.id, "header module trusts no proxy (neither its own list nor the chain's): it will never authenticate anybody");
        }
        HeaderModule {
            trust: Some(trust.clone()),
            ..self.clone()
        }
    }

    fn missing(&self, header: &HeaderName, problem: HeaderProblem) -> Result<Outcome, AuthError> {
        if self.settings.fail_if_missing {
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
        let Some(value) = single(headers, &self.settings.principal_header)? else {
            return Ok(None);
        };
        let value = one_value(
            &self.settings.principal_header,
            value,
            self.settings.max_principal_bytes.get(),
        )?;
        let mut principal = value;
        if self.settings.strip_realm
            && let Some((user, _realm)) = principal.rsplit_once('@')
        {
            principal = user;
        }
        if principal.is_empty() {
            return Err(bad(&self.settings.principal_header, HeaderProblem::Empty));
        }
        Ok(Some(if self.settings.lowercase {
            principal.to_lowercase()
        } else {
            principal.to_owned()
        }))
    }

    fn groups(&self, headers: &HeaderMap) -> Result<Groups, AuthError> {
        let mut groups = Groups::new();
        let Some(name) = &self.settings.groups_header else {
            return Ok(groups);
        };
        let mut seen = DistinctGroups::with_capacity(MAX_GROUPS);
        for value in headers.get_all(name) {
            // An empty groups header means "no groups", not a malformed request.
            if value.as_bytes().iter().all(|b| *b == b' ') {
                continue;
            }
            let value = text(name, value, usize::MAX)?;
            // Room for every group in one allocation: a group of n bytes (at most
            // `MAX_GROUP_BYTES`) is stored in n + 2 ≤ 2n + 1 bytes, and a separator
            // byte follows every group but the last.
            groups.reserve(value.len() * 2 + 2);
            for group in split(value, &self.settings.group_separator) {
                if group.len() > MAX_GROUP_BYTES {
                    return Err(bad(name, HeaderProblem::GroupTooLong(MAX_GROUP_BYTES)));
                }
                if seen.insert(group) {
                    groups.push(group);
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
            Some(value) => Ok(Some(one_value(name, value, MAX_GROUP_BYTES)?.to_owned())),
            None => Ok(None),
        }
    }
}

/// The one value of a header: `None` when absent, an error when repeated (two
/// values is either a confused proxy or a client-sent copy that survived).
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h HeaderValue>, AuthError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => Ok(Some(value)),
        (Some(_), Some(_)) => Err(bad(name, HeaderProblem::Repeated)),
    }
}

/// A header value as UTF-8 text without control characters, trimmed, bounded.
fn text<'v>(name: &HeaderName, value: &'v HeaderValue, max: usize) -> Result<&'v str, AuthError> {
    let value = match value.to_str() {
        // Visible ASCII, spaces and tabs (nearly every value), checked by `http`
        // without a second pass for UTF-8. Of ASCII white space only the space is
        // left once tabs are refused: `trim_ascii` trims just spaces.
        Ok(ascii) if has_tab(ascii) => {
            return Err(bad(name, HeaderProblem::ControlCharacter));
        }
        Ok(ascii) => ascii.trim_ascii(),
        Err(_) => {
            let value =
                std::str::from_utf8(value.as_bytes()).map_err(|_| bad(name, HeaderProblem::NotUtf8))?;
            if value.chars().any(char::is_control) {
                return Err(bad(name, HeaderProblem::ControlCharacter));
            }
            value.trim()
        }
    };
    if value.is_empty() {
        return Err(bad(name, HeaderProblem::Empty));
    }
    if value.len() > max {
        return Err(bad(name, HeaderProblem::TooLong(max)));
    }
    Ok(value)
}

/// Whether `text` holds a tab, eight bytes at a time: values are short, and a
/// library search costs more to set up than this whole loop.
fn has_tab(text: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const TABS: u64 = u64::from_ne_bytes([b'\t'; 8]);
    let (words, tail) = text.as_bytes().as_chunks::<8>();
    // A tab is a zero byte of `word ^ TABS`; the zero-byte test below can only
    // misreport bytes past a real zero, so "any" is exact.
    words.iter().any(|word| {
        let x = u64::from_ne_bytes(*word) ^ TABS;
        x.wrapping_sub(ONES) & !x & HIGH != 0
    }) || tail.contains(&b'\t')
}

/// `str::trim`, byte-wise on ASCII text without control characters (where the
/// two agree: the only ASCII white space `trim_ascii` keeps is a control character).
fn trim(text: &str) -> &str {
    if text.is_ascii() {
        text.trim_ascii()
    } else {
        text.trim()
    }
}

/// The non-empty, trimmed parts of `value` between `separator`s.
fn split<'v>(value: &'v str, separator: &'v str) -> impl Iterator<Item = &'v str> {
    // A one-byte separator (nearly always `,`) is found by a plain byte loop:
    // groups are short, and `str::split` sets up a vectorised search per part.
    let parts = match separator.as_bytes() {
        [byte] if byte.is_ascii() => Parts::Byte {
            rest: Some(value),
            byte: *byte,
        },
        _ => Parts::Text(value.split(separator)),
    };
    parts.map(trim).filter(|g| !g.is_empty())
}

/// A header value split by an ASCII byte or by a longer separator.
enum Parts<'v> {
    Byte { rest: Option<&'v str>, byte: u8 },
    Text(std::str::Split<'v, &'v str>),
}

impl<'v> Iterator for Parts<'v> {
    type Item = &'v str;
    fn next(&mut self) -> Option<&'v str> {
        match self {
            Parts::Byte { rest, byte } => {
                let text = (*rest)?;
                // An ASCII byte never falls inside a UTF-8 sequence: both slices
                // are at character boundaries.
                match text.bytes().position(|b| b == *byte) {
                    Some(at) => {
                        *rest = text.get(at + 1..);
                        text.get(..at)
                    }
                    None => {
                        *rest = None;
                        Some(text)
                    }
                }
            }
            Parts::Text(parts) => parts.next(),
        }
    }
}

/// [`text`] holding exactly one value: no list separator.
fn one_value<'v>(name: &HeaderName, value: &'v HeaderValue, max: usize) -> Result<&'v str, AuthError> {
    let value = text(name, value, max)?;
    if value.bytes().any(|b| b == b',') {
        return Err(bad(name, HeaderProblem::ListSeparator));
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
    /// A single-value header (principal, email, name) holds a list separator
    /// (`,`): a proxy that appends instead of overwriting joined the client's
    /// value and its own.
    #[error("holds a list (`,`) where one value belongs")]
    ListSeparator,
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
        self.verify(request)
    }

    fn authenticate_now(&self, request: &AuthRequest) -> Option<Result<Outcome, AuthError>> {
        Some(self.verify(request))
    }
}

impl HeaderModule {
    /// The module's answer: it reads only the request, so it never waits.
    fn verify(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let headers = &request.headers;
        if !self
            .trust
            .as_ref()
            .is_some_and(|t| t.is_trusted(request.peer.ip()))
        {
            if headers.contains_key(&self.settings.principal_header) {
                warn!(target: AUDIT_TARGET, module = %self.id, peer = %request.peer.ip(),
                    header = %self.settings.principal_header, "identity header from an untrusted peer ignored");
            }
            return self.missing(&self.settings.principal_header, HeaderProblem::UntrustedPeer);
        }
        let Some(principal) = self.principal(headers)? else {
            return self.missing(&self.settings.principal_header, HeaderProblem::Missing);
        };
        let mut identity = Identity::new(self.id.clone(), principal.clone(), principal);
        identity.groups = self.groups(headers)?;
        identity.email = self.optional(headers, &self.settings.email_header)?;
        identity.display_name = self.optional(headers, &self.settings.name_header)?;
        Ok(Outcome::Authenticated(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::{has_tab, split};

    #[test]
    fn tab_search_agrees_with_a_byte_search() {
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 24] {
            let plain: String = (0..length).map(|i| char::from(b' ' + (i % 95) as u8)).collect();
            assert!(!has_tab(&plain), "{plain:?}");
            for at in 0..length {
                for (with, tab) in [('\t', true), ('\u{8}', false), ('\n', false), ('\u{89}', false)] {
                    let mut text: Vec<char> = plain.chars().collect();
                    text[at] = with;
                    let text: String = text.into_iter().collect();
                    assert_eq!(has_tab(&text), tab, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn groups_split_by_a_byte_or_a_longer_separator() {
        let parts = |value, separator| split(value, separator).collect::<Vec<_>>();
        assert_eq!(parts("a,b,,c,", ","), ["a", "b", "c"]);
        assert_eq!(parts(" a , b ", ","), ["a", "b"]);
        assert_eq!(parts(",", ","), Vec::<&str>::new());
        assert_eq!(parts("é,ü,ß", ","), ["é", "ü", "ß"]);
        assert_eq!(parts("a;;b;c", ";;"), ["a", "b;c"]);
        assert_eq!(parts("a→b→c", "→"), ["a", "b", "c"]);
    }
}
