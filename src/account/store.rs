//! The host's user store: the [`UserStore`] trait and an in-memory implementation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;

use super::HashLimits;
use super::keys::{KeyId, MAX_KEYS_PER_ACCOUNT, MAX_REVOKED_KEYS_KEPT, NewPublicKey, PublicKey};
use crate::future::MaybeReady;
use crate::{AccountId, StoreError};

/// A local account.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// Stable id.
    pub id: AccountId,
    /// Login name, as created.
    pub login: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Password hash (PHC or MCF string), for local logins.
    pub password_hash: Option<String>,
    /// Disabled accounts are refused.
    pub disabled: bool,
    /// Roles granted locally by an administrator; logins never remove them.
    pub roles: BTreeSet<String>,
    /// Roles mapped from each provider's groups at the last login through it.
    pub mapped_roles: BTreeMap<String, BTreeSet<String>>,
    /// External identities linked to this account.
    pub links: BTreeSet<ExternalLink>,
    /// When the account was created.
    pub created_at: SystemTime,
    /// When the account last signed in.
    pub last_login: Option<SystemTime>,
}

impl Account {
    /// Locally granted roles plus every provider's mapped roles.
    pub fn effective_roles(&self) -> BTreeSet<String> {
        let mut roles = self.roles.clone();
        for mapped in self.mapped_roles.values() {
            roles.extend(mapped.iter().cloned());
        }
        roles
    }

    /// Whether an external identity is linked to the account.
    pub fn is_linked(&self) -> bool {
        !self.links.is_empty()
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .field("disabled", &self.disabled)
            .field("roles", &self.roles)
            .field("mapped_roles", &self.mapped_roles)
            .field("links", &self.links)
            .field("created_at", &self.created_at)
            .field("last_login", &self.last_login)
            .finish()
    }
}

/// An external identity linked to an account: `(provider id, external subject)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExternalLink {
    /// The provider (module) id.
    pub provider: String,
    /// The provider's stable subject.
    pub subject: String,
}

/// A new account.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct NewAccount {
    /// Login name.
    pub login: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Password hash.
    pub password_hash: Option<String>,
    /// Locally granted roles.
    pub roles: BTreeSet<String>,
    /// Whether the account starts disabled.
    pub disabled: bool,
    /// An external identity to link at creation.
    pub link: Option<ExternalLink>,
}

impl NewAccount {
    /// A new account with this login name.
    pub fn new(login: impl Into<String>) -> Self {
        NewAccount {
            login: login.into(),
            ..NewAccount::default()
        }
    }

    /// Sets the email address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Sets the password hash (see [`PasswordPolicy::hash`](crate::account::PasswordPolicy::hash)).
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(hash.into());
        self
    }

    /// Grants a role locally.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }

    /// Starts the account disabled (or not).
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Links an external identity at creation.
    pub fn linked_to(mut self, provider: impl Into<String>, subject: impl Into<String>) -> Self {
        self.link = Some(ExternalLink {
            provider: provider.into(),
            subject: subject.into(),
        });
        self
    }
}

/// Everything a successful login writes, applied by the store as one unit.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoginUpdate {
    /// The account.
    pub account: AccountId,
    /// When the login happened.
    pub at: SystemTime,
    /// An external identity to link now (first login under `link_by_login`).
    pub link: Option<ExternalLink>,
    /// The provider whose mapped roles are replaced, and the new roles.
    pub mapped_roles: Option<(String, BTreeSet<String>)>,
}

impl LoginUpdate {
    /// A login of `account` at `at` that links nothing and maps no roles.
    pub fn new(account: AccountId, at: SystemTime) -> Self {
        LoginUpdate {
            account,
            at,
            link: None,
            mapped_roles: None,
        }
    }
}

/// What the [`UserStore`] methods the chain calls on every login return: an answer
/// already at hand, or a boxed future. A store that answers from memory returns
/// [`MaybeReady::ready`], and a login puts no future on the heap.
pub type StoreFuture<'a, T> = MaybeReady<'a, Result<T, StoreError>>;

/// The host's accounts. The chain reads through it and writes successful logins
/// through it; implement it over your own database in a few methods.
///
/// Lookups by login name and email take `case_insensitive`: when set, names match
/// after Unicode lower-casing, and two accounts that match is an error
/// ([`StoreError::Ambiguous`]), never a guess.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// The account with this id.
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;
    /// The account with this login name.
    async fn find_by_login(&self, login: &str, case_insensitive: bool)
    -> Result<Option<Account>, StoreError>;
    /// The account with this email address.
    async fn find_by_email(&self, email: &str, case_insensitive: bool)
    -> Result<Option<Account>, StoreError>;
    /// The account linked to `(provider, subject)`.
    async fn find_by_link(&self, provider: &str, subject: &str) -> Result<Option<Account>, StoreError>;
    /// [`find_by_link`](UserStore::find_by_link) as a shared account: what the chain
    /// calls on every external login. A store that keeps accounts in memory answers
    /// its own `Arc` without copying the account, as a [`MaybeReady::ready`]
    /// answer (no future on the heap); the default wraps `find_by_link`'s answer.
    fn find_by_link_shared<'a>(
        &'a self,
        provider: &'a str,
        subject: &'a str,
    ) -> StoreFuture<'a, Option<Arc<Account>>> {
        StoreFuture::boxed(async move { Ok(self.find_by_link(provider, subject).await?.map(Arc::new)) })
    }
    /// Creates an account (and its link), or [`StoreError::Conflict`] if the login
    /// name (compared case-insensitively) or the link is taken.
    async fn create_account(&self, account: NewAccount) -> Result<Account, StoreError>;
    /// Records a successful login: last-login time, a new link, mapped roles. All
    /// or nothing.
    async fn record_login(&self, update: LoginUpdate) -> Result<(), StoreError>;
    /// Records a successful login that links nothing and leaves mapped roles as
    /// they are (the common repeat login): the default is
    /// [`record_login`](UserStore::record_login) with [`LoginUpdate::new`]. A store
    /// in memory answers [`MaybeReady::ready`].
    fn record_last_login<'a>(&'a self, account: &'a AccountId, at: SystemTime) -> StoreFuture<'a, ()> {
        StoreFuture::boxed(async move { self.record_login(LoginUpdate::new(account.clone(), at)).await })
    }
    /// Replaces the password hash (after a legacy-hash upgrade or a password change).
    ///
    /// Stores should refuse a hash over their [`HashLimits`] with
    /// [`StoreError::HashCost`] (as [`create_account`](UserStore::create_account)
    /// should for a new account's hash), as the crate's stores do.
    async fn set_password_hash(&self, id: &AccountId, hash: &str) -> Result<(), StoreError>;
    /// Disables or enables an account.
    async fn set_disabled(&self, id: &AccountId, disabled: bool) -> Result<(), StoreError>;
    /// Grants (`true`) or revokes (`false`) a locally managed role.
    async fn set_local_role(&self, id: &AccountId, role: &str, granted: bool) -> Result<(), StoreError>;

    /// Registers a public key for key-based login. Checks first and writes
    /// nothing on error: [`NewPublicKey::check`]'s bounds, [`StoreError::NotFound`]
    /// for an unknown account, [`StoreError::TooManyKeys`] when the account holds
    /// [`MAX_KEYS_PER_ACCOUNT`] unrevoked keys, [`StoreError::Conflict`] when the
    /// same key bytes are already registered (or were, and were revoked) to this
    /// account. Drops the account's oldest revoked keys beyond
    /// [`MAX_REVOKED_KEYS_KEPT`].
    ///
    /// The default refuses with [`StoreError::Unsupported`] (a store written before
    /// key login existed).
    async fn add_public_key(&self, account: &AccountId, key: NewPublicKey) -> Result<PublicKey, StoreError> {
        let _ = (account, key);
        Err(StoreError::Unsupported("public keys"))
    }

    /// The account's keys, revoked ones included, oldest first (at most
    /// [`MAX_KEYS_PER_ACCOUNT`] + [`MAX_REVOKED_KEYS_KEPT`]).
    /// [`StoreError::NotFound`] for an unknown account.
    async fn public_keys(&self, account: &AccountId) -> Result<Vec<PublicKey>, StoreError> {
        let _ = account;
        Err(StoreError::Unsupported("public keys"))
    }

    /// Revokes one of the account's keys at `at` and returns it. Revoking a
    /// revoked key changes nothing (its first revocation time stays).
    /// [`StoreError::NoSuchKey`] when the account has no such key (another
    /// account's key included), [`StoreError::NotFound`] for an unknown account.
    async fn revoke_public_key(
        &self,
        account: &AccountId,
        key: &KeyId,
        at: SystemTime,
    ) -> Result<PublicKey, StoreError> {
        let _ = (account, key, at);
        Err(StoreError::Unsupported("public keys"))
    }

    /// Up to `limit` accounts (at most [`MAX_LISTED_ACCOUNTS`]) ordered by login
    /// name, those after `after` (a login name) only: one page of an
    /// administrator's listing. The default refuses with [`StoreError::Unsupported`].
    async fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, StoreError> {
        let _ = (after, limit);
        Err(StoreError::Unsupported("listing accounts"))
    }

    /// Removes the account's links to `provider` (its mapped roles from that
    /// provider go with them) and returns how many links went;
    /// [`StoreError::NotFound`] for an unknown account. The default refuses with
    /// [`StoreError::Unsupported`].
    async fn unlink(&self, id: &AccountId, provider: &str) -> Result<usize, StoreError> {
        let _ = (id, provider);
        Err(StoreError::Unsupported("unlinking accounts"))
    }
}

/// The most accounts one [`UserStore::list_accounts`] call returns.
pub const MAX_LISTED_ACCOUNTS: usize = 1000;

/// A [`UserStore`] in memory, for tests, demos and small deployments.
///
/// Password hashes written through it are checked against [`HashLimits`] (the
/// defaults unless [`with_hash_limits`](MemoryUserStore::with_hash_limits)):
/// one over the limits is refused with [`StoreError::HashCost`].
#[derive(Default)]
pub struct MemoryUserStore {
    inner: RwLock<Inner>,
    hash_limits: HashLimits,
}

/// A hash map with a fast hasher, seeded per process.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    /// Shared with readers: a login reads its account without copying it, and a
    /// write copies an account only while a reader still holds it.
    accounts: Map<AccountId, Arc<Account>>,
    by_login: Map<String, Vec<AccountId>>,
    by_email: Map<String, Vec<AccountId>>,
    /// provider → subject → account, so lookups borrow instead of allocating.
    by_link: Map<String, Map<String, AccountId>>,
    next_id: u64,
    /// account → its keys, oldest first.
    keys: Map<AccountId, Vec<PublicKey>>,
    next_key_id: u64,
}

impl Inner {
    fn find(
        &self,
        index: &Map<String, Vec<AccountId>>,
        value: &str,
        case_insensitive: bool,
        field: fn(&Account) -> Option<&str>,
    ) -> Result<Option<Account>, StoreError> {
        let Some(ids) = index.get(&value.to_lowercase()) else {
            return Ok(None);
        };
        let mut found = ids
            .iter()
            .filter_map(|id| self.accounts.get(id))
            .filter(|a| case_insensitive || field(a) == Some(value));
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(account), None) => Ok(Some(Account::clone(account))),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous),
        }
    }

    fn linked(&self, link: &ExternalLink) -> Option<&AccountId> {
        self.by_link.get(&link.provider)?.get(&link.subject)
    }

    fn insert_link(&mut self, link: ExternalLink, id: AccountId) {
        self.by_link
            .entry(link.provider)
            .or_default()
            .insert(link.subject, id);
    }

    fn get_mut(&mut self, id: &AccountId) -> Result<&mut Account, StoreError> {
        self.accounts
            .get_mut(id)
            .map(Arc::make_mut)
            .ok_or(StoreError::NotFound)
    }
}

impl MemoryUserStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryUserStore::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave an index half-written: every
        // write below checks first and mutates after.
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The same store checking written hashes against `limits`.
    pub fn with_hash_limits(mut self, limits: HashLimits) -> Self {
        self.hash_limits = limits;
        self
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.read().accounts.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.read().accounts.get(id).map(|a| Account::clone(a)))
    }

    async fn find_by_login(
        &self,
        login: &str,
        case_insensitive: bool,
    ) -> Result<Option<Account>, StoreError> {
        let inner = self.read();
        inner.find(&inner.by_login, login, case_insensitive, |a| Some(&a.login))
    }

    async fn find_by_email(
        &self,
        email: &str,
        case_insensitive: bool,
    ) -> Result<Option<Account>, StoreError> {
        let inner = self.read();
        inner.find(&inner.by_email, email, case_insensitive, |a| a.email.as_deref())
    }

    async fn find_by_link(&self, provider: &str, subject: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .find_by_link_shared(provider, subject)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    fn find_by_link_shared<'a>(
        &'a self,
        provider: &'a str,
        subject: &'a str,
    ) -> StoreFuture<'a, Option<Arc<Account>>> {
        let inner = self.read();
        let id = inner
            .by_link
            .get(provider)
            .and_then(|subjects| subjects.get(subject));
        StoreFuture::ready(Ok(id.and_then(|id| inner.accounts.get(id)).cloned()))
    }

    async fn create_account(&self, new: NewAccount) -> Result<Account, StoreError> {
        if let Some(hash) = &new.password_hash {
            self.hash_limits.check_stored(hash)?;
        }
        let mut inner = self.write();
        let login_key = new.login.to_lowercase();
        if inner.by_login.get(&login_key).is_some_and(|ids| !ids.is_empty()) {
            return Err(StoreError::Conflict(format!(
                "login name {:?} is taken",
                new.login
            )));
        }
        if let Some(link) = &new.link
            && inner.linked(link).is_some()
        {
            return Err(StoreError::Conflict("external identity is already linked".into()));
        }
        inner.next_id += 1;
        let id = AccountId::from(format!("u{}", inner.next_id));
        let account = Account {
            id: id.clone(),
            login: new.login,
            email: new.email,
            display_name: new.display_name,
            password_hash: new.password_hash,
            disabled: new.disabled,
            roles: new.roles,
            mapped_roles: BTreeMap::new(),
            links: new.link.iter().cloned().collect(),
            created_at: SystemTime::now(),
            last_login: None,
        };
        inner.by_login.entry(login_key).or_default().push(id.clone());
        if let Some(email) = &account.email {
            inner
                .by_email
                .entry(email.to_lowercase())
                .or_default()
                .push(id.clone());
        }
        if let Some(link) = new.link {
            inner.insert_link(link, id.clone());
        }
        inner.accounts.insert(id, Arc::new(account.clone()));
        Ok(account)
    }

    async fn record_login(&self, update: LoginUpdate) -> Result<(), StoreError> {
        let mut inner = self.write();
        if !inner.accounts.contains_key(&update.account) {
            return Err(StoreError::NotFound);
        }
        if let Some(link) = &update.link
            && inner.linked(link).is_some_and(|owner| *owner != update.account)
        {
            return Err(StoreError::Conflict(
                "external identity is linked to another account".into(),
            ));
        }
        if let Some(link) = &update.link {
            inner.insert_link(link.clone(), update.account.clone());
        }
        let account = inner.get_mut(&update.account)?;
        if let Some(link) = update.link {
            account.links.insert(link);
        }
        if let Some((provider, roles)) = update.mapped_roles {
            account.mapped_roles.insert(provider, roles);
        }
        account.last_login = Some(update.at);
        Ok(())
    }

    fn record_last_login<'a>(&'a self, account: &'a AccountId, at: SystemTime) -> StoreFuture<'a, ()> {
        let written = self
            .write()
            .get_mut(account)
            .map(|account| account.last_login = Some(at));
        StoreFuture::ready(written)
    }

    async fn set_password_hash(&self, id: &AccountId, hash: &str) -> Result<(), StoreError> {
        self.hash_limits.check_stored(hash)?;
        self.write().get_mut(id)?.password_hash = Some(hash.to_owned());
        Ok(())
    }

    async fn set_disabled(&self, id: &AccountId, disabled: bool) -> Result<(), StoreError> {
        self.write().get_mut(id)?.disabled = disabled;
        Ok(())
    }

    async fn set_local_role(&self, id: &AccountId, role: &str, granted: bool) -> Result<(), StoreError> {
        let mut inner = self.write();
        let account = inner.get_mut(id)?;
        if granted {
            account.roles.insert(role.to_owned());
        } else {
            account.roles.remove(role);
        }
        Ok(())
    }

    async fn add_public_key(&self, account: &AccountId, key: NewPublicKey) -> Result<PublicKey, StoreError> {
        key.check()?;
        let mut inner = self.write();
        if !inner.accounts.contains_key(account) {
            return Err(StoreError::NotFound);
        }
        let held = inner.keys.get(account).map(Vec::as_slice).unwrap_or_default();
        if held.iter().filter(|k| !k.is_revoked()).count() >= MAX_KEYS_PER_ACCOUNT {
            return Err(StoreError::TooManyKeys {
                max: MAX_KEYS_PER_ACCOUNT,
            });
        }
        if held.iter().any(|k| k.spki == key.spki) {
            return Err(StoreError::Conflict(
                "this key is already registered to the account".into(),
            ));
        }
        inner.next_key_id += 1;
        let stored = PublicKey {
            id: KeyId(format!("k{}", inner.next_key_id)),
            account: account.clone(),
            family: key.family,
            spki: key.spki,
            label: key.label,
            created_at: SystemTime::now(),
            revoked_at: None,
        };
        let keys = inner.keys.entry(account.clone()).or_default();
        keys.push(stored.clone());
        let revoked = keys.iter().filter(|k| k.is_revoked()).count();
        let mut drop = revoked.saturating_sub(MAX_REVOKED_KEYS_KEPT);
        keys.retain(|k| {
            let gone = drop > 0 && k.is_revoked();
            drop -= usize::from(gone);
            !gone
        });
        Ok(stored)
    }

    async fn public_keys(&self, account: &AccountId) -> Result<Vec<PublicKey>, StoreError> {
        let inner = self.read();
        if !inner.accounts.contains_key(account) {
            return Err(StoreError::NotFound);
        }
        Ok(inner.keys.get(account).cloned().unwrap_or_default())
    }

    async fn revoke_public_key(
        &self,
        account: &AccountId,
        key: &KeyId,
        at: SystemTime,
    ) -> Result<PublicKey, StoreError> {
        let mut inner = self.write();
        if !inner.accounts.contains_key(account) {
            return Err(StoreError::NotFound);
        }
        let stored = inner
            .keys
            .get_mut(account)
            .and_then(|keys| keys.iter_mut().find(|k| k.id == *key))
            .ok_or(StoreError::NoSuchKey)?;
        stored.revoked_at.get_or_insert(at);
        Ok(stored.clone())
    }

    async fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, StoreError> {
        let inner = self.read();
        let mut page: Vec<&Account> = inner
            .accounts
            .values()
            .map(|a| &**a)
            .filter(|a| after.is_none_or(|after| a.login.as_str() > after))
            .collect();
        page.sort_by(|a, b| a.login.cmp(&b.login));
        Ok(page
            .into_iter()
            .take(limit.min(MAX_LISTED_ACCOUNTS))
            .cloned()
            .collect())
    }

    async fn unlink(&self, id: &AccountId, provider: &str) -> Result<usize, StoreError> {
        let mut inner = self.write();
        let account = inner.get_mut(id)?;
        let before = account.links.len();
        account.links.retain(|link| link.provider != provider);
        account.mapped_roles.remove(provider);
        let removed = before - account.links.len();
        if let Some(subjects) = inner.by_link.get_mut(provider) {
            subjects.retain(|_, linked| linked != id);
        }
        Ok(removed)
    }
}
