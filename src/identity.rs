//! Who somebody is: [`Identity`] (what a module verified) and [`Principal`] (the
//! chain's answer).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The id of an account in the host's [`UserStore`](crate::account::UserStore):
/// shared text, so the principal of a login carries the stored id without a copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub Arc<str>);

impl AccountId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AccountId {
    fn from(value: &str) -> Self {
        AccountId(value.into())
    }
}

impl From<String> for AccountId {
    fn from(value: String) -> Self {
        AccountId(value.into())
    }
}

/// The id of a module in a chain (`corp-ldap`, `proxy`): shared text, so every
/// identity and principal a module answers carries it without a copy.
///
/// It reads as a `&str` (through `Deref`) and compares with strings:
///
/// ```
/// let id = authchain::ModuleId::from("proxy");
/// assert_eq!(id, "proxy");
/// assert!(id.starts_with("pro"));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleId(Arc<str>);

impl ModuleId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for ModuleId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ModuleId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ModuleId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ModuleId {
    fn from(id: &str) -> Self {
        ModuleId(id.into())
    }
}

impl From<String> for ModuleId {
    fn from(id: String) -> Self {
        ModuleId(id.into())
    }
}

impl From<&String> for ModuleId {
    fn from(id: &String) -> Self {
        ModuleId(id.as_str().into())
    }
}

impl From<&ModuleId> for ModuleId {
    fn from(id: &ModuleId) -> Self {
        id.clone()
    }
}

impl From<ModuleId> for String {
    fn from(id: ModuleId) -> Self {
        id.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for ModuleId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ModuleId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for ModuleId {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<ModuleId> for str {
    fn eq(&self, other: &ModuleId) -> bool {
        self == &*other.0
    }
}

impl PartialEq<ModuleId> for &str {
    fn eq(&self, other: &ModuleId) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<ModuleId> for String {
    fn eq(&self, other: &ModuleId) -> bool {
        **self == *other.0
    }
}

impl Serialize for ModuleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ModuleId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ModuleId::from)
    }
}

/// An identity verified by one module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Identity {
    /// The id of the module (provider) that verified it.
    pub provider: ModuleId,
    /// The stable external subject: LDAP entryUUID or DN, OIDC `sub`, SAML NameID,
    /// CAS user, proxy principal. Accounts are linked by `(provider, subject)`.
    pub subject: String,
    /// The login name the provider gave.
    pub login: String,
    /// Email address, when the provider gave one.
    pub email: Option<String>,
    /// Display name, when the provider gave one.
    pub display_name: Option<String>,
    /// External groups (names or DNs), input to role mapping.
    pub groups: Vec<String>,
    /// Further attributes the provider released.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Set when the module already identified a local account (the local module,
    /// or a nested chain that resolved the account itself).
    pub account: Option<AccountId>,
    /// Where the browser goes after a redirect login: the return-to URL of the
    /// login's own flow, already checked against the module's return-to policy.
    /// Only a module sets it (never from an attribute a provider released).
    pub return_to: Option<String>,
    /// What the provider's logout needs later from this login (never serialized
    /// with the identity: it may hold the ID token).
    #[serde(skip)]
    pub provider_session: ProviderSession,
}

/// What a provider's logout needs from the login: the OIDC ID token (sent back as
/// `id_token_hint`) and `sid`, the SAML `SessionIndex` and NameID format. A module
/// sets it; the web integration keeps it in the session.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderSession {
    /// OIDC: the login's ID token, for `id_token_hint` on RP-initiated logout.
    pub id_token: Option<String>,
    /// OIDC `sid` or SAML `SessionIndex`: the provider's session of this login.
    pub session_id: Option<String>,
    /// SAML: the NameID's `Format` (the NameID itself is the identity's subject).
    pub name_id_format: Option<String>,
}

impl fmt::Debug for ProviderSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSession")
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field("session_id", &self.session_id)
            .field("name_id_format", &self.name_id_format)
            .finish()
    }
}

impl Identity {
    /// An identity with a provider, a subject and a login name.
    pub fn new(provider: impl Into<ModuleId>, subject: impl Into<String>, login: impl Into<String>) -> Self {
        Identity {
            provider: provider.into(),
            subject: subject.into(),
            login: login.into(),
            email: None,
            display_name: None,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
            account: None,
            return_to: None,
            provider_session: ProviderSession::default(),
        }
    }

    /// Sets the email address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Sets the external groups.
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Marks the identity as already tied to a local account.
    pub fn with_account(mut self, account: AccountId) -> Self {
        self.account = Some(account);
        self
    }

    /// Sets the return-to URL (a module sets the one its flow checked).
    pub fn with_return_to(mut self, url: Option<String>) -> Self {
        self.return_to = url;
        self
    }
}

/// The chain's answer: a local account, its roles, and how it signed in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Principal {
    /// The local account.
    pub account_id: AccountId,
    /// The account's login name.
    pub login: String,
    /// The account's email address.
    pub email: Option<String>,
    /// The account's display name.
    pub display_name: Option<String>,
    /// Effective roles: granted locally plus mapped from external groups (shared
    /// text: a mapped role is the mapping's own name, not a copy).
    pub roles: BTreeSet<Arc<str>>,
    /// The verified identity the login came from.
    pub identity: Identity,
    /// The id of the module that authenticated the request.
    pub module: ModuleId,
    /// The client address (after trusted proxies).
    pub client_ip: IpAddr,
    /// When the login happened.
    pub authenticated_at: SystemTime,
    /// Where to send the browser now (a redirect login's checked return-to URL).
    pub return_to: Option<String>,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The effective roles as text, in order.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|role| &**role)
    }
}
