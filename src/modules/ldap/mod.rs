//! LDAP and Active Directory passwords (feature `ldap`).
//!
//! Two ways to find the user:
//!
//! * **Search mode** (no `bind_format`): bind as a service account, search
//!   `user_search_base` with `user_search_filter` (`%s` is the RFC 4515-escaped
//!   login), require exactly one entry, then bind as that entry's DN with the
//!   user's password.
//! * **Direct-bind mode** (`bind_format`): bind with a name made from the login — a
//!   DN template (`uid=%s,ou=people,dc=example,dc=org`, the login RFC 4514-escaped)
//!   or an Active Directory `user@domain` / `DOMAIN\user` form — then read the entry
//!   as the user.
//!
//! Groups come from `memberOf` on the user entry or from a group search (optionally
//! Active Directory nested groups). Service-account and user-bind connections are
//! pooled: on a warm pool a login costs two round trips (search + bind), three with
//! a group search. See `docs/modules/ldap.md`.
//!
//! Failure classes: an empty password is refused before any network traffic (an
//! empty simple bind is an RFC 4513 *unauthenticated* bind that servers accept);
//! result 49 (and other "you may not bind so" results) is
//! [`AuthError::InvalidCredentials`], and so is a login matching several entries
//! in search mode (logged as an error); unreachable servers
//! ([`LdapError::Unreachable`], with each URL's failure), timeouts, TLS failures, a
//! refused service bind ([`LdapError::ServiceBindRefused`]), a missing search base
//! and other result codes are [`AuthError::Unavailable`] with the [`LdapError`] as
//! cause; a filter that does not parse is [`AuthError::Misconfigured`].

mod config;
mod error;
pub(crate) mod pool;
pub(crate) mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ldap3::{Ldap, LdapConnSettings, LdapError as Ldap3Error, Scope, SearchEntry, SearchOptions};
use tracing::{debug, error, info, warn};

pub use config::LdapConfig;
pub use error::{LdapError, LdapOperation, UrlFailure};
pub use template::{AD_MATCHING_RULE_IN_CHAIN, AD_NESTED_GROUP_FILTER};

use self::pool::{Conn, Connector, Pool, Pooled, Pools};
use crate::audit::AUDIT_TARGET;
use crate::error::RequestError;
use crate::{
    AuthError, AuthRequest, Authenticator, ConfigError, Credentials, Identity, ModuleKind, Outcome,
    SecretString,
};

/// Default connect and operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default user search filter.
pub const DEFAULT_USER_SEARCH_FILTER: &str = "(uid=%s)";
/// Default group search filter.
pub const DEFAULT_GROUP_SEARCH_FILTER: &str = "(member=%s)";
/// Default number of pooled connections of each kind.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default longest login name, in bytes.
pub const DEFAULT_MAX_LOGIN_BYTES: usize = 256;
/// Default longest password, in bytes.
pub const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;
/// Most groups read for one user.
const MAX_GROUPS: i32 = 10_000;

/// Where group memberships come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupSource {
    /// The `memberOf` attribute of the user entry (asked for by name: it is
    /// operational in OpenLDAP).
    #[default]
    MemberOf,
    /// A search under `group_search_base` with `group_search_filter`.
    Search,
    /// No groups.
    None,
}

/// How groups are listed in the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupNames {
    /// The group's name: its `group_name_attribute` (searched groups) or the value
    /// of the first RDN of its DN (`memberOf`).
    #[default]
    Name,
    /// The group's full DN. A role mapping with `match_dn` still matches rules
    /// written with the first RDN's value.
    Dn,
}

/// The LDAP / Active Directory password module. Cloning is cheap and shares the
/// connection pools.
#[derive(Clone)]
pub struct LdapModule {
    id: String,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LdapModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapModule")
            .field("id", &self.id)
            .field("urls", &self.inner.pools.connector.urls)
            .field("mode", &self.inner.mode)
            .field("groups", &self.inner.groups)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Mode {
    Search { base: String, filter: String },
    Direct { format: String, lookup: Lookup },
}

/// How direct-bind mode finds the user's entry after the bind.
#[derive(Debug)]
enum Lookup {
    /// Read the bound DN itself.
    BoundDn,
    /// Search (UPN and down-level bind names are not DNs).
    Search { base: String, filter: String },
}

#[derive(Debug)]
enum Groups {
    None,
    MemberOf {
        attribute: String,
    },
    Search {
        base: String,
        filter: String,
        name_attribute: String,
    },
}

struct Inner {
    id: String,
    mode: Mode,
    service: Option<(String, SecretString)>,
    groups: Groups,
    group_names: GroupNames,
    subject_attribute: String,
    login_attribute: String,
    email_attribute: String,
    display_name_attribute: String,
    extra_attributes: Vec<String>,
    /// The attributes requested from the user entry.
    user_attributes: Vec<String>,
    operation_timeout: Duration,
    max_login_bytes: usize,
    max_password_bytes: usize,
    pools: Pools,
}

/// Builds an [`LdapModule`]. Every setting has the default documented on its method;
/// [`LdapModuleBuilder::build`] checks them all and names the offending key
/// (`modules.<id>.<field>`).
#[derive(Debug, Clone)]
pub struct LdapModuleBuilder {
    id: String,
    urls: Vec<String>,
    starttls: bool,
    ca_file: Option<PathBuf>,
    ca_pem: Option<Vec<u8>>,
    insecure_skip_tls_verify: bool,
    connect_timeout: Duration,
    operation_timeout: Duration,
    service: Option<(String, SecretString)>,
    bind_format: Option<String>,
    user_search_base: Option<String>,
    user_search_filter: Option<String>,
    subject_attribute: String,
    login_attribute: String,
    email_attribute: String,
    display_name_attribute: String,
    extra_attributes: Vec<String>,
    groups: GroupSource,
    member_of_attribute: String,
    group_search_base: Option<String>,
    group_search_filter: Option<String>,
    group_name_attribute: String,
    nested_groups: bool,
    group_names: GroupNames,
    pool_size: usize,
    max_login_bytes: usize,
    max_password_bytes: usize,
}

impl LdapModuleBuilder {
    /// Adds a server URL (`ldap://` or `ldaps://`); URLs are tried in the order given.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Replaces the server URLs.
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Upgrade `ldap://` connections with StartTLS (default off).
    pub fn starttls(mut self, yes: bool) -> Self {
        self.starttls = yes;
        self
    }

    /// A PEM file of CA certificates to verify servers with (default: system roots).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// CA certificates given as PEM text instead of a file.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Accept any server certificate (tests only; default off).
    pub fn insecure_skip_tls_verify(mut self, yes: bool) -> Self {
        self.insecure_skip_tls_verify = yes;
        self
    }

    /// Time allowed for the TCP connection and TLS handshake, per URL (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for each operation and for a free pooled connection (default 10 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The service account that searches for users (default: anonymous searches).
    pub fn service_account(mut self, bind_dn: impl Into<String>, password: impl Into<SecretString>) -> Self {
        self.service = Some((bind_dn.into(), password.into()));
        self
    }

    /// Direct-bind mode: bind with this template, `%s` being the login (see the module docs).
    pub fn bind_format(mut self, template: impl Into<String>) -> Self {
        self.bind_format = Some(template.into());
        self
    }

    /// Where users are searched.
    pub fn user_search_base(mut self, base: impl Into<String>) -> Self {
        self.user_search_base = Some(base.into());
        self
    }

    /// The user search filter, `%s` being the escaped login (default `(uid=%s)`).
    pub fn user_search_filter(mut self, filter: impl Into<String>) -> Self {
        self.user_search_filter = Some(filter.into());
        self
    }

    /// Search mode in one call: base and filter.
    pub fn user_search(self, base: impl Into<String>, filter: impl Into<String>) -> Self {
        self.user_search_base(base).user_search_filter(filter)
    }

    /// The attribute holding the stable subject (default `entryUUID`; AD `objectGUID`).
    pub fn subject_attribute(mut self, name: impl Into<String>) -> Self {
        self.subject_attribute = name.into();
        self
    }

    /// The attribute holding the login name (default `uid`; AD `sAMAccountName`).
    pub fn login_attribute(mut self, name: impl Into<String>) -> Self {
        self.login_attribute = name.into();
        self
    }

    /// The attribute holding the email address (default `mail`).
    pub fn email_attribute(mut self, name: impl Into<String>) -> Self {
        self.email_attribute = name.into();
        self
    }

    /// The attribute holding the display name (default `cn`).
    pub fn display_name_attribute(mut self, name: impl Into<String>) -> Self {
        self.display_name_attribute = name.into();
        self
    }

    /// Further attributes copied into [`Identity::attributes`].
    pub fn extra_attributes<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_attributes = names.into_iter().map(Into::into).collect();
        self
    }

    /// Where group memberships come from (default [`GroupSource::MemberOf`]).
    pub fn groups(mut self, source: GroupSource) -> Self {
        self.groups = source;
        self
    }

    /// The membership attribute of user entries (default `memberOf`).
    pub fn member_of_attribute(mut self, name: impl Into<String>) -> Self {
        self.member_of_attribute = name.into();
        self
    }

    /// Where groups are searched.
    pub fn group_search_base(mut self, base: impl Into<String>) -> Self {
        self.group_search_base = Some(base.into());
        self
    }

    /// The group search filter: `%s` the escaped user DN, `%u` the escaped login
    /// (default `(member=%s)`; with nested groups [`AD_NESTED_GROUP_FILTER`]).
    pub fn group_search_filter(mut self, filter: impl Into<String>) -> Self {
        self.group_search_filter = Some(filter.into());
        self
    }

    /// Group search in one call: sets [`GroupSource::Search`], base and filter.
    pub fn group_search(self, base: impl Into<String>, filter: impl Into<String>) -> Self {
        self.groups(GroupSource::Search)
            .group_search_base(base)
            .group_search_filter(filter)
    }

    /// The attribute holding a group's name (default `cn`).
    pub fn group_name_attribute(mut self, name: impl Into<String>) -> Self {
        self.group_name_attribute = name.into();
        self
    }

    /// Active Directory nested groups through matching rule 1.2.840.113556.1.4.1941
    /// (needs [`GroupSource::Search`]; default off).
    pub fn nested_groups(mut self, yes: bool) -> Self {
        self.nested_groups = yes;
        self
    }

    /// List groups by name (default) or by DN.
    pub fn group_names(mut self, names: GroupNames) -> Self {
        self.group_names = names;
        self
    }

    /// Most pooled connections of each kind (default 16).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Longest accepted login name in bytes (default 256).
    pub fn max_login_bytes(mut self, max: usize) -> Self {
        self.max_login_bytes = max;
        self
    }

    /// Longest accepted password in bytes (default 1024).
    pub fn max_password_bytes(mut self, max: usize) -> Self {
        self.max_password_bytes = max;
        self
    }

    /// Checks every setting and builds the module. No connection is opened here.
    pub fn build(self) -> Result<LdapModule, ConfigError> {
        let id = self.id.clone();
        let key = |field: &str| format!("modules.{id}.{field}");
        let invalid = |field: &str, message: String| ConfigError::invalid(key(field), message);

        // Transport.
        if self.urls.is_empty() {
            return Err(invalid("urls", "at least one server URL is needed".into()));
        }
        let mut needs_tls = false;
        for url in &self.urls {
            let (scheme, rest) = url
                .split_once("://")
                .ok_or_else(|| invalid("urls", format!("`{url}` is not an ldap:// or ldaps:// URL")))?;
            let host = rest.split(['/', '?']).next().unwrap_or("");
            if host.is_empty() || host.starts_with(':') {
                return Err(invalid("urls", format!("`{url}` names no host")));
            }
            match scheme.to_ascii_lowercase().as_str() {
                "ldaps" if self.starttls => {
                    return Err(invalid(
                        "starttls",
                        format!("`{url}` is already TLS: use ldap:// URLs with starttls"),
                    ));
                }
                "ldaps" => needs_tls = true,
                "ldap" if self.starttls => needs_tls = true,
                "ldap" => warn!(module = %id, url = %url,
                    "LDAP over plain ldap:// without StartTLS: passwords cross the network in clear text"),
                _ => {
                    return Err(invalid(
                        "urls",
                        format!("`{url}` is not an ldap:// or ldaps:// URL"),
                    ));
                }
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout", "must be longer than zero".into()));
        }
        if self.operation_timeout.is_zero() {
            return Err(invalid("operation_timeout", "must be longer than zero".into()));
        }
        if self.pool_size == 0 {
            return Err(invalid("pool_size", "must be at least 1".into()));
        }
        if self.max_login_bytes == 0 {
            return Err(invalid("max_login_bytes", "must be at least 1".into()));
        }
        if self.max_password_bytes == 0 {
            return Err(invalid("max_password_bytes", "must be at least 1".into()));
        }
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.connect_timeout);
        if self.starttls {
            settings = settings.set_starttls(true);
        }
        if self.insecure_skip_tls_verify {
            if self.ca_file.is_some() || self.ca_pem.is_some() {
                return Err(invalid(
                    "insecure_skip_tls_verify",
                    "contradicts ca_file: certificates are either verified or not".into(),
                ));
            }
            warn!(target: AUDIT_TARGET, module = %id,
                "insecure_skip_tls_verify is on: LDAP server certificates are NOT verified");
            settings = settings
                .set_no_tls_verify(true)
                .set_config(insecure_tls_config(&key)?);
        } else if needs_tls {
            settings = settings.set_config(tls_config(&self, &key)?);
        }

        // Service account.
        if let Some((dn, password)) = &self.service {
            if dn.trim().is_empty() {
                return Err(invalid("bind_dn", "must not be empty".into()));
            }
            if password.is_empty() {
                return Err(invalid(
                    "bind_password",
                    "must not be empty (an empty password is an unauthenticated bind)".into(),
                ));
            }
        }

        // How users are found.
        let check_filter = |field: &str, filter: &str| -> Result<(), ConfigError> {
            if !filter.contains("%s") && !filter.contains("%u") {
                return Err(invalid(field, format!("`{filter}` does not contain %s")));
            }
            if ldap3::parse_filter(template::substitute(filter, "x", "x")).is_err() {
                return Err(invalid(field, format!("`{filter}` is not a valid LDAP filter")));
            }
            Ok(())
        };
        let user_filter = self
            .user_search_filter
            .clone()
            .unwrap_or_else(|| DEFAULT_USER_SEARCH_FILTER.to_owned());
        let mode = match &self.bind_format {
            None => {
                let base = self.user_search_base.clone().ok_or_else(|| {
                    invalid(
                        "user_search_base",
                        "search mode needs user_search_base (or set bind_format for direct binds)".into(),
                    )
                })?;
                check_filter("user_search_filter", &user_filter)?;
                Mode::Search {
                    base,
                    filter: user_filter,
                }
            }
            Some(format) => {
                if !format.contains("%s") {
                    return Err(invalid("bind_format", format!("`{format}` does not contain %s")));
                }
                let lookup = match &self.user_search_base {
                    Some(base) => {
                        check_filter("user_search_filter", &user_filter)?;
                        Lookup::Search {
                            base: base.clone(),
                            filter: user_filter,
                        }
                    }
                    None if template::is_dn_template(format) => Lookup::BoundDn,
                    None => {
                        return Err(invalid(
                            "user_search_base",
                            format!(
                                "bind_format `{format}` is not a DN: set user_search_base to find the entry"
                            ),
                        ));
                    }
                };
                Mode::Direct {
                    format: format.clone(),
                    lookup,
                }
            }
        };

        // Groups.
        if self.nested_groups && self.groups != GroupSource::Search {
            return Err(invalid(
                "nested_groups",
                "nested groups are read by a group search: set groups = \"search\"".into(),
            ));
        }
        let groups = match self.groups {
            GroupSource::None => Groups::None,
            GroupSource::MemberOf => Groups::MemberOf {
                attribute: nonempty(&self.member_of_attribute, "member_of_attribute", &invalid)?,
            },
            GroupSource::Search => {
                let base = self.group_search_base.clone().ok_or_else(|| {
                    invalid(
                        "group_search_base",
                        "groups = \"search\" needs group_search_base".into(),
                    )
                })?;
                let filter = match (&self.group_search_filter, self.nested_groups) {
                    (Some(filter), _) => filter.clone(),
                    (None, true) => AD_NESTED_GROUP_FILTER.to_owned(),
                    (None, false) => DEFAULT_GROUP_SEARCH_FILTER.to_owned(),
                };
                check_filter("group_search_filter", &filter)?;
                Groups::Search {
                    base,
                    filter,
                    name_attribute: nonempty(&self.group_name_attribute, "group_name_attribute", &invalid)?,
                }
            }
        };
        for (field, value) in [
            ("subject_attribute", &self.subject_attribute),
            ("login_attribute", &self.login_attribute),
            ("email_attribute", &self.email_attribute),
            ("display_name_attribute", &self.display_name_attribute),
        ] {
            nonempty(value, field, &invalid)?;
        }
        if self.extra_attributes.iter().any(|a| a.trim().is_empty()) {
            return Err(invalid(
                "extra_attributes",
                "attribute names must not be empty".into(),
            ));
        }
        if let Mode::Search { .. } = mode
            && self.service.is_none()
        {
            info!(module = %id, "no bind_dn: user searches are anonymous");
        }

        let mut user_attributes = vec![
            self.subject_attribute.clone(),
            self.login_attribute.clone(),
            self.email_attribute.clone(),
            self.display_name_attribute.clone(),
        ];
        if let Groups::MemberOf { attribute } = &groups {
            user_attributes.push(attribute.clone());
        }
        user_attributes.extend(self.extra_attributes.iter().cloned());
        let user_attributes = dedup_attribute_names(user_attributes);

        let connector = Connector::new(id.clone(), self.urls, settings, self.connect_timeout);
        let pools = Pools {
            connector,
            service: Pool::new(self.pool_size, self.operation_timeout),
            user: Pool::new(self.pool_size, self.operation_timeout),
        };
        Ok(LdapModule {
            id: id.clone(),
            inner: Arc::new(Inner {
                id,
                mode,
                service: self.service,
                groups,
                group_names: self.group_names,
                subject_attribute: self.subject_attribute,
                login_attribute: self.login_attribute,
                email_attribute: self.email_attribute,
                display_name_attribute: self.display_name_attribute,
                extra_attributes: self.extra_attributes,
                user_attributes,
                operation_timeout: self.operation_timeout,
                max_login_bytes: self.max_login_bytes,
                max_password_bytes: self.max_password_bytes,
                pools,
            }),
        })
    }
}

fn nonempty(
    value: &str,
    field: &str,
    invalid: &impl Fn(&str, String) -> ConfigError,
) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        Err(invalid(field, "must not be empty".into()))
    } else {
        Ok(value.to_owned())
    }
}

/// A rustls configuration that trusts the configured CA bundle, or the system roots.
fn tls_config(
    b: &LdapModuleBuilder,
    key: &impl Fn(&str) -> String,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    let pem = match (&b.ca_pem, &b.ca_file) {
        (Some(pem), _) => Some(pem.clone()),
        (None, Some(path)) => Some(std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?),
        (None, None) => None,
    };
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    ConfigError::invalid(key("ca_file"), format!("not a PEM certificate bundle: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    ConfigError::invalid(key("ca_file"), format!("unusable CA certificate: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(ConfigError::invalid(key("ca_file"), "holds no certificate"));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(ConfigError::invalid(
                    key("ca_file"),
                    "no system CA certificates found: set ca_file",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid(key("urls"), format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A rustls configuration that accepts any server certificate (still checking the
/// handshake signatures), with the ring provider named explicitly so that it never
/// depends on a process-wide default provider.
fn insecure_tls_config(key: &impl Fn(&str) -> String) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid(key("urls"), format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `insecure_skip_tls_verify`: any certificate chain is accepted.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl LdapModule {
    /// A module with the default settings; give it at least a URL and either a user
    /// search base (search mode) or a bind format (direct-bind mode).
    pub fn builder(id: impl Into<String>) -> LdapModuleBuilder {
        LdapModuleBuilder {
            id: id.into(),
            urls: Vec::new(),
            starttls: false,
            ca_file: None,
            ca_pem: None,
            insecure_skip_tls_verify: false,
            connect_timeout: DEFAULT_TIMEOUT,
            operation_timeout: DEFAULT_TIMEOUT,
            service: None,
            bind_format: None,
            user_search_base: None,
            user_search_filter: None,
            subject_attribute: "entryUUID".into(),
            login_attribute: "uid".into(),
            email_attribute: "mail".into(),
            display_name_attribute: "cn".into(),
            extra_attributes: Vec::new(),
            groups: GroupSource::MemberOf,
            member_of_attribute: "memberOf".into(),
            group_search_base: None,
            group_search_filter: None,
            group_name_attribute: "cn".into(),
            nested_groups: false,
            group_names: GroupNames::Name,
            pool_size: DEFAULT_POOL_SIZE,
            max_login_bytes: DEFAULT_MAX_LOGIN_BYTES,
            max_password_bytes: DEFAULT_MAX_PASSWORD_BYTES,
        }
    }

    /// How many idle pooled connections the module holds (service-account, user-bind).
    pub fn idle_connections(&self) -> (usize, usize) {
        (
            self.inner.pools.service.idle_count(),
            self.inner.pools.user.idle_count(),
        )
    }

    /// Closes every idle pooled connection; the next login opens new ones.
    pub fn clear_pool(&self) {
        self.inner.pools.service.clear();
        self.inner.pools.user.clear();
    }

    /// A new connection bound as the service account, outside the pools: the
    /// directory synchroniser holds it for a long-running search.
    #[cfg(feature = "sync")]
    pub(crate) async fn connect_service(&self) -> Result<pool::Conn, AuthError> {
        self.inner
            .connect_bound()
            .await
            .map_err(|f| self.inner.fail_to_error(f))
    }

    /// The attributes the module reads from user entries, which the directory
    /// synchroniser uses unless told otherwise.
    #[cfg(feature = "sync")]
    pub(crate) fn user_attributes(&self) -> UserAttributes<'_> {
        UserAttributes {
            subject: &self.inner.subject_attribute,
            login: &self.inner.login_attribute,
            email: &self.inner.email_attribute,
            display_name: &self.inner.display_name_attribute,
        }
    }

    /// The group search filter this module sends for a user (for diagnostics and
    /// tests); `None` unless groups come from a search.
    pub fn group_filter_for(&self, user_dn: &str, login: &str) -> Option<String> {
        match &self.inner.groups {
            Groups::Search { filter, .. } => Some(template::group_filter(filter, user_dn, login)),
            _ => None,
        }
    }
}

/// Attribute names of user entries (see [`LdapModule::user_attributes`]).
#[cfg(feature = "sync")]
pub(crate) struct UserAttributes<'m> {
    pub(crate) subject: &'m str,
    pub(crate) login: &'m str,
    pub(crate) email: &'m str,
    pub(crate) display_name: &'m str,
}

/// Text for an ldap3 error, without secrets (ldap3 errors never carry the password).
pub(crate) fn describe(err: &Ldap3Error) -> String {
    match err {
        Ldap3Error::LdapResult { result } => format!("result {} {}", result.rc, result.text),
        other => other.to_string(),
    }
}

/// An operation's failure, classified.
enum Fail {
    /// The directory refused the user's credentials.
    Reject,
    /// The directory failed or answered wrongly: an outage.
    Down(LdapError),
    /// The connection broke (it may have been a stale pooled one: worth one retry).
    Transport(LdapError),
    /// The module cannot work as configured.
    Misconfigured(String),
}

impl Inner {
    /// An outage of this module's directory.
    fn unavailable(&self, cause: LdapError) -> AuthError {
        AuthError::unavailable(self.id.clone(), cause)
    }

    /// A refusal of this login by this module.
    fn rejected(&self, cause: LdapError) -> AuthError {
        AuthError::rejected(self.id.clone(), cause)
    }

    fn fail_to_error(&self, fail: Fail) -> AuthError {
        match fail {
            Fail::Reject => AuthError::InvalidCredentials,
            Fail::Down(cause) | Fail::Transport(cause) => self.unavailable(cause),
            Fail::Misconfigured(why) => AuthError::Misconfigured(why),
        }
    }

    /// Runs `op` under the operation timeout and classifies transport failures.
    async fn timed<T>(
        &self,
        operation: LdapOperation,
        op: impl std::future::Future<Output = Result<T, Ldap3Error>>,
    ) -> Result<T, Fail> {
        match tokio::time::timeout(self.operation_timeout, op).await {
            Err(_) => Err(Fail::Down(LdapError::Timeout {
                operation,
                after: self.operation_timeout,
            })),
            Ok(Err(Ldap3Error::FilterParsing)) => Err(Fail::Misconfigured(format!(
                "module `{}`: {operation}: the filter does not parse",
                self.id
            ))),
            Ok(Err(err)) => Err(Fail::Transport(LdapError::Protocol {
                operation,
                detail: describe(&err),
            })),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// A service-account connection (bound when a service account is configured).
    async fn service_conn(&self, fresh: bool) -> Result<Pooled<'_>, AuthError> {
        let pools = &self.pools;
        let (idle, permit) = pools.service.checkout().await.map_err(|e| self.unavailable(e))?;
        if let Some(conn) = idle.filter(|_| !fresh) {
            return Ok(pools.service.pooled(conn, true, permit));
        }
        let conn = self.connect_bound().await.map_err(|f| self.fail_to_error(f))?;
        Ok(pools.service.pooled(conn, false, permit))
    }

    /// A new connection bound as the service account (when one is configured):
    /// connect and bind, trying the next URL when a server accepts TCP but then
    /// fails or hangs. Every URL failing is [`LdapError::Unreachable`] with each
    /// one's failure; a refused service bind is [`LdapError::ServiceBindRefused`]
    /// at once.
    async fn connect_bound(&self) -> Result<Conn, Fail> {
        let pools = &self.pools;
        let mut failures = Vec::new();
        for _ in 0..pools.connector.urls.len() {
            let mut conn = match pools.connector.connect().await {
                Ok(conn) => conn,
                Err(LdapError::Unreachable(more)) => {
                    failures.extend(more);
                    break;
                }
                Err(other) => return Err(Fail::Down(other)),
            };
            match self.service_bind(&mut conn).await {
                Ok(()) => return Ok(conn),
                // The server answered and refused: the same account will be refused
                // by its replicas too. A configuration problem, logged loudly.
                Err(refused @ Fail::Down(LdapError::ServiceBindRefused { .. })) => return Err(refused),
                Err(Fail::Transport(cause) | Fail::Down(cause)) => {
                    pools.connector.demote(conn.url);
                    failures.push(UrlFailure::new(pools.connector.urls[conn.url].clone(), cause));
                }
                Err(fail @ (Fail::Reject | Fail::Misconfigured(_))) => return Err(fail),
            }
        }
        Err(Fail::Down(LdapError::Unreachable(failures)))
    }

    async fn service_bind(&self, conn: &mut Conn) -> Result<(), Fail> {
        let Some((dn, password)) = &self.service else {
            return Ok(());
        };
        let result = self
            .timed(
                LdapOperation::ServiceBind,
                conn.ldap.simple_bind(dn, password.expose()),
            )
            .await?;
        match result.rc {
            0 => Ok(()),
            rc => {
                error!(target: AUDIT_TARGET, module = %self.id, bind_dn = %dn, rc, text = %result.text,
                    "LDAP service account bind refused: check bind_dn and bind_password");
                Err(Fail::Down(LdapError::ServiceBindRefused { code: rc }))
            }
        }
    }

    /// A connection for user binds (never bound as the service account).
    async fn user_conn(&self, fresh: bool) -> Result<Pooled<'_>, AuthError> {
        let pools = &self.pools;
        let (idle, permit) = pools.user.checkout().await.map_err(|e| self.unavailable(e))?;
        if let Some(conn) = idle.filter(|_| !fresh) {
            return Ok(pools.user.pooled(conn, true, permit));
        }
        let conn = pools.connector.connect().await.map_err(|e| self.unavailable(e))?;
        Ok(pools.user.pooled(conn, false, permit))
    }

    /// Searches on a service connection, retrying once on a fresh connection when a
    /// pooled one turns out to be broken.
    async fn service_search(
        &self,
        base: &str,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<(Vec<SearchEntry>, u32), AuthError> {
        let mut fresh = false;
        loop {
            let mut conn = self.service_conn(fresh).await?;
            match self
                .search(&mut conn.conn.ldap, base, filter, attrs, size_limit)
                .await
            {
                Ok(found) => {
                    conn.release();
                    return Ok(found);
                }
                Err(Fail::Transport(_)) if conn.reused && !fresh => {
                    debug!(module = %self.id, "pooled LDAP connection was broken; retrying on a new one");
                    fresh = true;
                }
                Err(fail) => {
                    if let Fail::Transport(_) | Fail::Down(_) = &fail {
                        self.pools.connector.demote(conn.conn.url);
                    }
                    return Err(self.fail_to_error(fail));
                }
            }
        }
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<(Vec<SearchEntry>, u32), Fail> {
        let scope = if filter.is_empty() {
            Scope::Base
        } else {
            Scope::Subtree
        };
        let filter = if filter.is_empty() {
            "(objectClass=*)"
        } else {
            filter
        };
        ldap.with_search_options(SearchOptions::new().sizelimit(size_limit));
        let result = self
            .timed(LdapOperation::Search, ldap.search(base, scope, filter, attrs))
            .await?;
        let (raw, status) = (result.0, result.1);
        match status.rc {
            0 | 4 => {}
            32 => {
                // noSuchObject: the base is missing (a configuration problem) or, for
                // a base read in direct-bind mode, the entry is.
                return Ok((Vec::new(), status.rc));
            }
            code => {
                debug!(module = %self.id, rc = code, text = %status.text, "LDAP search failed");
                return Err(Fail::Down(LdapError::Result {
                    operation: LdapOperation::Search,
                    code,
                }));
            }
        }
        let mut entries = Vec::with_capacity(raw.len());
        for entry in raw {
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            // `SearchEntry::construct` panics on a malformed entry: a broken server
            // must not take the host down.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(entry))) {
                Ok(entry) => entries.push(entry),
                Err(_) => {
                    return Err(Fail::Down(LdapError::Protocol {
                        operation: LdapOperation::Search,
                        detail: "the server sent a malformed entry".into(),
                    }));
                }
            }
        }
        Ok((entries, status.rc))
    }

    /// Binds as the user on `ldap`; `Ok(())` only for result 0.
    async fn user_bind(&self, ldap: &mut Ldap, name: &str, password: &SecretString) -> Result<(), Fail> {
        let result = self
            .timed(LdapOperation::UserBind, ldap.simple_bind(name, password.expose()))
            .await?;
        match result.rc {
            0 => Ok(()),
            // invalidCredentials, inappropriateAuthentication, invalidDNSyntax,
            // noSuchObject, insufficientAccessRights, constraintViolation (password
            // policy), unwillingToPerform (AD: account restrictions), protocolError.
            49 | 48 | 34 | 32 | 50 | 19 | 53 | 2 => {
                debug!(module = %self.id, rc = result.rc, text = %result.text, "LDAP bind refused");
                Err(Fail::Reject)
            }
            // operationsError, timeLimitExceeded, adminLimitExceeded, busy,
            // unavailable, other: the server, not the user.
            1 | 3 | 11 | 51 | 52 | 80 => {
                debug!(module = %self.id, rc = result.rc, text = %result.text, "LDAP user bind failed");
                Err(Fail::Down(LdapError::Result {
                    operation: LdapOperation::UserBind,
                    code: result.rc,
                }))
            }
            rc => {
                warn!(module = %self.id, rc, text = %result.text, "LDAP bind refused with an unexpected result");
                Err(Fail::Reject)
            }
        }
    }

    /// Binds as the user on a user-bind connection, retrying once on a fresh
    /// connection when a pooled one is broken. Returns the bound connection.
    async fn bind_as_user(&self, name: &str, password: &SecretString) -> Result<Pooled<'_>, AuthError> {
        let mut fresh = false;
        loop {
            let mut conn = self.user_conn(fresh).await?;
            match self.user_bind(&mut conn.conn.ldap, name, password).await {
                Ok(()) => return Ok(conn),
                Err(Fail::Reject) => {
                    // The connection is fine (now anonymous): keep it.
                    conn.release();
                    return Err(AuthError::InvalidCredentials);
                }
                Err(Fail::Transport(_)) if conn.reused && !fresh => fresh = true,
                Err(fail) => {
                    if let Fail::Transport(_) | Fail::Down(_) = &fail {
                        self.pools.connector.demote(conn.conn.url);
                    }
                    return Err(self.fail_to_error(fail));
                }
            }
        }
    }

    /// Input checks that need no server.
    fn check_input(&self, login: &str, password: &SecretString) -> Result<(), AuthError> {
        if login.len() > self.max_login_bytes {
            return Err(AuthError::InvalidRequest(RequestError::TooLong {
                field: "login",
                max: self.max_login_bytes,
            }));
        }
        if password.len() > self.max_password_bytes {
            return Err(AuthError::InvalidRequest(RequestError::TooLong {
                field: "password",
                max: self.max_password_bytes,
            }));
        }
        // RFC 4513 §5.1.2: a simple bind with a DN and an empty password is an
        // *unauthenticated* bind, which many servers answer with success.
        if password.is_empty() || login.trim().is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        // No directory login contains control characters; refusing them here keeps
        // NUL and friends out of DNs and bind names altogether.
        if login.chars().any(char::is_control) {
            return Err(AuthError::InvalidCredentials);
        }
        Ok(())
    }

    async fn login_search(
        &self,
        base: &str,
        filter: &str,
        login: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        let filter = template::user_filter(filter, login);
        let (mut entries, rc) = self
            .service_search(base, &filter, &self.user_attributes, 2)
            .await?;
        if rc == 32 {
            error!(target: AUDIT_TARGET, module = %self.id, base = %base, "user_search_base does not exist");
            return Err(self.unavailable(LdapError::NoSuchBase {
                setting: "user_search_base",
                base: base.to_owned(),
            }));
        }
        let entry = match entries.len() {
            0 => return Err(AuthError::InvalidCredentials),
            1 => entries.remove(0),
            _ => {
                error!(target: AUDIT_TARGET, module = %self.id, login = ?login, filter = %filter,
                    "user search matched several entries: fix user_search_filter (login refused)");
                // Answered like a wrong password: a client must not learn which
                // logins exist, nor that this one is shared.
                return Err(AuthError::InvalidCredentials);
            }
        };
        let conn = self.bind_as_user(&entry.dn, password).await?;
        conn.release();
        let groups = match &self.groups {
            Groups::Search {
                base,
                filter,
                name_attribute,
            } => {
                let filter = template::group_filter(filter, &entry.dn, login);
                let attrs = [name_attribute.clone()];
                let found = self.service_search(base, &filter, &attrs, MAX_GROUPS).await?;
                self.group_list(found, base, name_attribute)?
            }
            _ => Vec::new(),
        };
        Ok(self.identity(entry, login, groups))
    }

    async fn login_direct(
        &self,
        format: &str,
        lookup: &Lookup,
        login: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        let name = template::bind_name(format, login);
        let mut conn = self.bind_as_user(&name, password).await?;
        let found = match lookup {
            Lookup::BoundDn => {
                self.search(&mut conn.conn.ldap, &name, "", &self.user_attributes, 2)
                    .await
            }
            Lookup::Search { base, filter } => {
                let filter = template::user_filter(filter, login);
                self.search(&mut conn.conn.ldap, base, &filter, &self.user_attributes, 2)
                    .await
            }
        };
        let (mut entries, _) = found.map_err(|f| self.fail_to_error(f))?;
        let entry = match entries.len() {
            1 => entries.remove(0),
            n => {
                error!(target: AUDIT_TARGET, module = %self.id, login = ?login, entries = n,
                    "bind succeeded but the user's entry was not found exactly once: check user_search_base / user_search_filter");
                conn.release();
                return Err(self.rejected(if n == 0 {
                    LdapError::EntryNotFound
                } else {
                    LdapError::Ambiguous
                }));
            }
        };
        let groups = match &self.groups {
            Groups::Search {
                base,
                filter,
                name_attribute,
            } => {
                let filter = template::group_filter(filter, &entry.dn, login);
                let attrs = [name_attribute.clone()];
                if self.service.is_some() {
                    conn.release();
                    let found = self.service_search(base, &filter, &attrs, MAX_GROUPS).await?;
                    self.group_list(found, base, name_attribute)?
                } else {
                    let found = self
                        .search(&mut conn.conn.ldap, base, &filter, &attrs, MAX_GROUPS)
                        .await
                        .map_err(|f| self.fail_to_error(f))?;
                    conn.release();
                    self.group_list(found, base, name_attribute)?
                }
            }
            _ => {
                conn.release();
                Vec::new()
            }
        };
        Ok(self.identity(entry, login, groups))
    }

    /// The groups a group search found. A missing `group_search_base` is an outage
    /// (logged as a configuration error), not "no groups": a user must not silently
    /// lose roles to a typo.
    fn group_list(
        &self,
        (found, rc): (Vec<SearchEntry>, u32),
        base: &str,
        name_attribute: &str,
    ) -> Result<Vec<String>, AuthError> {
        if rc == 32 {
            error!(target: AUDIT_TARGET, module = %self.id, base = %base, "group_search_base does not exist");
            return Err(self.unavailable(LdapError::NoSuchBase {
                setting: "group_search_base",
                base: base.to_owned(),
            }));
        }
        if rc == 4 {
            warn!(module = %self.id, "group search hit a size limit: the group list is incomplete");
        }
        let mut groups = Vec::with_capacity(found.len());
        for entry in found {
            let name = match self.group_names {
                GroupNames::Dn => Some(entry.dn.clone()),
                GroupNames::Name => first_value(&entry, name_attribute)
                    .map(str::to_owned)
                    .or_else(|| template::first_rdn_value(&entry.dn).map(|v| v.into_owned())),
            };
            if let Some(name) = name
                && !groups.contains(&name)
            {
                groups.push(name);
            }
        }
        Ok(groups)
    }

    fn identity(&self, entry: SearchEntry, typed_login: &str, mut groups: Vec<String>) -> Identity {
        let subject = subject(&entry, &self.subject_attribute).unwrap_or_else(|| entry.dn.clone());
        let login = values(&entry, &self.login_attribute)
            .and_then(|vals| {
                vals.iter()
                    .find(|v| v.eq_ignore_ascii_case(typed_login))
                    .or_else(|| vals.first())
            })
            .cloned()
            .unwrap_or_else(|| typed_login.to_owned());
        if let Groups::MemberOf { attribute } = &self.groups {
            for dn in values(&entry, attribute).into_iter().flatten() {
                let name = match self.group_names {
                    GroupNames::Dn => dn.clone(),
                    GroupNames::Name => {
                        template::first_rdn_value(dn).map_or_else(|| dn.clone(), |v| v.into_owned())
                    }
                };
                if !groups.contains(&name) {
                    groups.push(name);
                }
            }
        }
        let mut identity = Identity::new(self.id.clone(), subject, login);
        identity.email = first_value(&entry, &self.email_attribute).map(str::to_owned);
        identity.display_name = first_value(&entry, &self.display_name_attribute).map(str::to_owned);
        identity.groups = groups;
        let mut attributes = BTreeMap::new();
        attributes.insert("dn".to_owned(), vec![entry.dn.clone()]);
        for name in &self.extra_attributes {
            if let Some(vals) = values(&entry, name) {
                attributes.insert(name.clone(), vals.clone());
            } else if let Some(bin) = bin_values(&entry, name) {
                attributes.insert(name.clone(), bin.iter().map(|v| template::hex(v)).collect());
            }
        }
        identity.attributes = attributes;
        identity
    }
}

/// Attribute names without repeats (compared ignoring ASCII case), first kept.
pub(crate) fn dedup_attribute_names(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.to_ascii_lowercase()))
        .collect()
}

/// The values of attribute `name` (case-insensitive; options such as `;lang-en` ignored).
pub(crate) fn values<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e Vec<String>> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn bin_values<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e Vec<Vec<u8>>> {
    entry
        .bin_attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

pub(crate) fn first_value<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e str> {
    values(entry, name).and_then(|v| v.first()).map(String::as_str)
}

/// The subject: text values as they are; `objectGUID` (binary, sometimes valid UTF-8
/// by chance) in its GUID text form; other binary values in hex.
pub(crate) fn subject(entry: &SearchEntry, name: &str) -> Option<String> {
    let guid = name.eq_ignore_ascii_case("objectGUID");
    if let Some(value) = first_value(entry, name) {
        if guid && let Some(text) = template::format_guid(value.as_bytes()) {
            return Some(text);
        }
        return Some(value.to_owned());
    }
    let bytes = bin_values(entry, name)?.first()?;
    if guid {
        template::format_guid(bytes)
    } else {
        Some(template::hex(bytes))
    }
}

#[async_trait]
impl Authenticator for LdapModule {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Password
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let Credentials::Password { login, password } = &request.credentials else {
            return Ok(Outcome::Abstain);
        };
        let inner = &self.inner;
        inner.check_input(login, password)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(AuthError::Misconfigured(format!(
                "module `{}`: the LDAP module runs on a Tokio runtime",
                self.id
            )));
        }
        let result = match &inner.mode {
            Mode::Search { base, filter } => inner.login_search(base, filter, login, password).await,
            Mode::Direct { format, lookup } => inner.login_direct(format, lookup, login, password).await,
        };
        match &result {
            Ok(identity) => {
                debug!(module = %self.id, subject = %identity.subject, groups = identity.groups.len(), "LDAP login verified");
            }
            Err(err @ AuthError::Unavailable { .. }) | Err(err @ AuthError::Misconfigured(_)) => {
                warn!(target: AUDIT_TARGET, module = %self.id, error = %err, "LDAP backend unavailable");
            }
            Err(_) => {}
        }
        result.map(Outcome::Authenticated)
    }
}
