//! Who somebody is: [`Identity`] (what a module verified) and [`Principal`] (the
//! chain's answer).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

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
    pub groups: Groups,
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
    /// with the identity: it may hold the ID token). Boxed, and `None` from modules
    /// without provider logout: every login moves the identity across the chain.
    #[serde(skip)]
    pub provider_session: Option<Box<ProviderSession>>,
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
            groups: Groups::new(),
            attributes: BTreeMap::new(),
            account: None,
            return_to: None,
            provider_session: None,
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
        S: AsRef<str>,
    {
        self.groups = groups.into_iter().collect();
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
    pub roles: Roles,
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
        self.roles.iter()
    }
}

/// An identity's external groups (names or DNs), in the order the provider gave
/// them.
///
/// Held in one text buffer, each group after its length, so the groups of a
/// login cost one allocation however many there are.
///
/// ```
/// use authchain::Groups;
///
/// let mut groups: Groups = ["admins", "cn=ops,ou=groups,dc=example,dc=org"].into_iter().collect();
/// groups.push("staff");
/// assert_eq!(groups.len(), 3);
/// assert!(groups.contains("staff"));
/// assert_eq!(groups, ["admins", "cn=ops,ou=groups,dc=example,dc=org", "staff"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Groups {
    /// Each group after its length, the length written as one `char` whose code
    /// point it is (see [`LONG_GROUP`] for the rare longer group).
    encoded: String,
    len: usize,
}

/// Lengths below this are one `char` (the code points below the surrogates, so
/// every such length is one); a longer group's length is this `char`, then the
/// length in decimal and a `:`.
const LONG_GROUP: char = '\u{D7FF}';

impl Groups {
    /// No groups.
    pub fn new() -> Self {
        Groups::default()
    }

    /// Makes room for `bytes` more bytes of encoded groups (each group takes its
    /// length plus one to three bytes, up to 55,294 bytes), so that pushing them
    /// reallocates nothing.
    pub fn reserve(&mut self, bytes: usize) {
        self.encoded.reserve(bytes);
    }

    /// Appends `group`.
    pub fn push(&mut self, group: &str) {
        match u32::try_from(group.len())
            .ok()
            .filter(|&length| length < u32::from(LONG_GROUP))
            .and_then(char::from_u32)
        {
            Some(length) => self.encoded.push(length),
            None => {
                self.encoded.push(LONG_GROUP);
                self.encoded.push_str(&group.len().to_string());
                self.encoded.push(':');
            }
        }
        self.encoded.push_str(group);
        self.len += 1;
    }

    /// The groups, in order.
    pub fn iter(&self) -> GroupsIter<'_> {
        GroupsIter {
            rest: &self.encoded,
            left: self.len,
        }
    }

    /// Whether `group` is one of them (compared exactly).
    pub fn contains(&self, group: &str) -> bool {
        self.iter().any(|g| g == group)
    }

    /// How many groups.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Group lists up to this long are de-duplicated by comparing with each (no
/// allocation, and faster than hashing for the few groups of nearly every login);
/// longer ones by a hash set, so that thousands of groups cost linear work, not
/// the millions of comparisons of a pairwise check.
const LINEAR_DEDUP: usize = 16;

/// The distinct groups seen so far, for keeping the first of each in order.
pub(crate) struct DistinctGroups<'a> {
    first: [&'a str; LINEAR_DEDUP],
    count: usize,
    /// Every group, once there are more than `LINEAR_DEDUP`.
    all: Option<std::collections::HashSet<&'a str>>,
    /// Room the set is made with: growing it would hash every group again.
    expected: usize,
}

impl<'a> DistinctGroups<'a> {
    /// For about `expected` groups at most (a hint: more still work).
    pub(crate) fn with_capacity(expected: usize) -> Self {
        DistinctGroups {
            first: [""; LINEAR_DEDUP],
            count: 0,
            all: None,
            expected,
        }
    }

    /// Records `group`; whether it is new.
    pub(crate) fn insert(&mut self, group: &'a str) -> bool {
        if self.count < LINEAR_DEDUP {
            if self.first[..self.count].contains(&group) {
                return false;
            }
            self.first[self.count] = group;
            self.count += 1;
            return true;
        }
        let (first, expected) = (self.first, self.expected);
        let all = self.all.get_or_insert_with(|| {
            let mut all = std::collections::HashSet::with_capacity(expected.max(2 * LINEAR_DEDUP));
            all.extend(first);
            all
        });
        all.insert(group)
    }
}

/// Drops every group that appeared earlier in `groups`, keeping the order.
pub(crate) fn keep_first_of_each(groups: &mut Vec<String>) {
    let keep: Vec<bool> = {
        let mut seen = DistinctGroups::with_capacity(groups.len());
        groups.iter().map(|group| seen.insert(group)).collect()
    };
    let mut keep = keep.into_iter();
    groups.retain(|_| keep.next().unwrap_or(true));
}

/// The groups of [`Groups::iter`], in order.
#[derive(Clone, Debug)]
pub struct GroupsIter<'a> {
    rest: &'a str,
    left: usize,
}

impl<'a> Iterator for GroupsIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // Only `push` wrote the text: a length, then that many bytes.
        let (length, rest) = match *self.rest.as_bytes().first()? {
            // Below 128 bytes (nearly every group) the length is one byte.
            byte if byte.is_ascii() => (usize::from(byte), self.rest.get(1..)?),
            _ => {
                let mut chars = self.rest.chars();
                let length = chars.next()?;
                let rest = chars.as_str();
                if length == LONG_GROUP {
                    let (digits, rest) = rest.split_once(':')?;
                    (digits.parse().ok()?, rest)
                } else {
                    (usize::try_from(u32::from(length)).ok()?, rest)
                }
            }
        };
        let (group, rest) = rest.split_at_checked(length)?;
        self.rest = rest;
        self.left = self.left.saturating_sub(1);
        Some(group)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for GroupsIter<'_> {}

impl<'a> IntoIterator for &'a Groups {
    type Item = &'a str;
    type IntoIter = GroupsIter<'a>;

    fn into_iter(self) -> GroupsIter<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Groups {
    fn from_iter<I: IntoIterator<Item = S>>(groups: I) -> Self {
        let mut all = Groups::new();
        all.extend(groups);
        all
    }
}

impl<S: AsRef<str>> Extend<S> for Groups {
    fn extend<I: IntoIterator<Item = S>>(&mut self, groups: I) {
        for group in groups {
            self.push(group.as_ref());
        }
    }
}

impl From<Vec<String>> for Groups {
    fn from(groups: Vec<String>) -> Self {
        groups.into_iter().collect()
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Groups {
    fn eq(&self, other: &[S]) -> bool {
        self.len == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Groups {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Groups {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Groups {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(deserializer)?.into())
    }
}

/// A set of role names, sorted and without duplicates, each name shared text.
///
/// A sorted list rather than a tree: a principal holds a handful of roles, and a
/// list of up to four is built, searched and dropped without an allocation.
///
/// ```
/// use authchain::Roles;
///
/// let roles: Roles = ["viewer", "admin", "viewer"].into_iter().collect();
/// assert!(roles.contains("admin"));
/// assert_eq!(roles.iter().collect::<Vec<_>>(), ["admin", "viewer"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Roles(SmallVec<[Arc<str>; INLINE_ROLES]>);

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Roles held without an allocation.
const INLINE_ROLES: usize = 4;

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Roles {
    /// No roles.
    pub fn new() -> Self {
        Roles(SmallVec::new())
    }

    /// Whether `role` is in the set.
    pub fn contains(&self, role: &str) -> bool {
        // A handful of roles (the usual set, checked on every request) is scanned:
        // equality compares lengths first, ordering always compares bytes.
        if self.0.len() <= INLINE_ROLES {
            return self.0.iter().any(|held| **held == *role);
        }
        self.position(role).is_ok()
    }

    /// Adds `role`; `false` when it was already there.
    pub fn insert(&mut self, role: impl Into<Arc<str>>) -> bool {
        let role = role.into();
        match self.position(&role) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, role);
                true
            }
        }
    }

    /// The role names, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.0.iter().map(|role| &**role)
    }

    /// The role names, in order, as shared text.
    pub fn shared(&self) -> &[Arc<str>] {
        &self.0
    }

    /// How many roles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Roles known to be in order and distinct (a role mapping's own names).
    pub(crate) fn from_sorted_unique(roles: impl Iterator<Item = Arc<str>>) -> Self {
        let roles: SmallVec<[Arc<str>; INLINE_ROLES]> = roles.collect();
        debug_assert!(roles.is_sorted_by(|a, b| a < b));
        Roles(roles)
    }

    fn position(&self, role: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|held| (**held).cmp(role))
    }
}

impl<R: Into<Arc<str>>> FromIterator<R> for Roles {
    /// Sorts and de-duplicates the roles (O(n log n), whatever their order).
    fn from_iter<I: IntoIterator<Item = R>>(roles: I) -> Self {
        let mut set = Roles::new();
        set.extend(roles);
        set
    }
}

impl<R: Into<Arc<str>>> Extend<R> for Roles {
    /// Adds the roles, then sorts and de-duplicates once (O(n log n)).
    fn extend<I: IntoIterator<Item = R>>(&mut self, roles: I) {
        self.0.extend(roles.into_iter().map(Into::into));
        // Mapped roles arrive in order: one pass confirms it.
        if !self.0.is_sorted_by(|a, b| a < b) {
            self.0.sort_unstable();
            self.0.dedup();
        }
    }
}

impl<'a> IntoIterator for &'a Roles {
    type Item = &'a str;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, Arc<str>>, fn(&'a Arc<str>) -> &'a str>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|role| &**role)
    }
}

#[cfg(test)]
mod tests {
    use super::{Groups, Roles, keep_first_of_each};

    #[test]
    fn the_first_of_each_group_is_kept_in_order_past_the_linear_check() {
        for count in [0, 1, 15, 16, 17, 40] {
            let distinct: Vec<String> = (0..count).map(|i| format!("g{}", i % 7 * 100 + i)).collect();
            // Every group, then every group again in reverse, then the first once more.
            let mut groups: Vec<String> = distinct.iter().chain(distinct.iter().rev()).cloned().collect();
            groups.extend(distinct.first().cloned());
            keep_first_of_each(&mut groups);
            assert_eq!(groups, distinct, "{count} groups");
        }
    }

    #[test]
    fn groups_keep_order_duplicates_and_any_text() {
        let odd = ["a:b", "", "12:x", "é,ü", "a:b"];
        let groups: Groups = odd.iter().collect();
        assert_eq!(groups.len(), 5);
        assert_eq!(groups.iter().collect::<Vec<_>>(), odd);
        assert_eq!(groups, odd);
        assert_ne!(groups, ["a:b"]);
        assert!(groups.contains("12:x") && !groups.contains("12"));
        assert_eq!(format!("{groups:?}"), format!("{odd:?}"));
        let json = serde_json::to_string(&groups).unwrap();
        assert_eq!(json, serde_json::to_string(&odd).unwrap());
        assert_eq!(serde_json::from_str::<Groups>(&json).unwrap(), groups);
        assert!(Groups::new().is_empty() && Groups::new().iter().next().is_none());
    }

    #[test]
    fn groups_of_every_length_class_round_trip() {
        // Lengths around each UTF-8 width of the length `char`, and past the
        // longest one `char` holds (then written in decimal).
        let lengths = [0, 1, 127, 128, 2047, 2048, 0xD7FE, 0xD7FF, 0xD800, 70_000];
        let texts: Vec<String> = lengths.iter().map(|&n| "g".repeat(n)).collect();
        let mut groups = Groups::new();
        for text in &texts {
            groups.push(text);
            groups.push("é:1");
        }
        let expected: Vec<&str> = texts.iter().flat_map(|t| [t.as_str(), "é:1"]).collect();
        assert_eq!(groups.iter().collect::<Vec<_>>(), expected);
        assert_eq!(groups.iter().len(), expected.len());
    }

    #[test]
    fn roles_stay_sorted_and_unique_however_they_arrive() {
        let mut roles: Roles = ["viewer", "admin", "viewer", "ops"].into_iter().collect();
        assert_eq!(roles.iter().collect::<Vec<_>>(), ["admin", "ops", "viewer"]);
        assert!(!roles.insert("ops"));
        assert!(roles.insert("auditor"));
        assert_eq!(
            roles.iter().collect::<Vec<_>>(),
            ["admin", "auditor", "ops", "viewer"]
        );
        assert!(roles.contains("auditor") && !roles.contains("audit"));
        assert_eq!(format!("{roles:?}"), r#"{"admin", "auditor", "ops", "viewer"}"#);
        assert_eq!(
            serde_json::to_string(&roles).unwrap(),
            r#"["admin","auditor","ops","viewer"]"#
        );
    }
}
