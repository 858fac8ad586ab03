//! What the SQL stores' [`DirectoryTarget`](crate::sync::DirectoryTarget)s share:
//! how a batch of directory changes becomes writes, whatever the dialect. Each
//! store implements [`DirectoryDb`] (the statements, on one connection inside the
//! batch's transaction) and calls [`apply_changes`].

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;

use super::sql::fold;
use crate::account::{Account, NewAccount};
use crate::sync::{
    DeletePolicy, DirectoryChange, DirectoryGroup, DirectoryUser, EntryKind, SyncBatch, SyncReport, SyncScope,
};
use crate::{AccountId, StoreError};

/// The `sync_state` key of one search of a source.
pub(crate) fn cookie_key(source: &str, kind: EntryKind) -> String {
    format!("{source}#{kind}")
}

/// A DN compared the way directories compare them, near enough: lower-cased, and
/// without the spaces allowed around `,`, `+` and `=` (escaped ones are kept).
pub(crate) fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.extend(next.to_lowercase());
                }
            }
            ',' | '+' | '=' => {
                while out.ends_with(' ') && !out.ends_with("\\ ") {
                    out.pop();
                }
                out.push(c);
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The `kind` column's value.
pub(crate) fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::User => "user",
        EntryKind::Group => "group",
    }
}

fn kind_of(name: &str) -> EntryKind {
    if name == "user" {
        EntryKind::User
    } else {
        EntryKind::Group
    }
}

/// A stored directory entry.
#[derive(Clone, PartialEq)]
pub(crate) struct Entry {
    pub kind: EntryKind,
    pub dn: String,
    pub dn_key: String,
    pub name: String,
    pub account_id: Option<i64>,
}

/// The statement that writes `entry` (`sql` in the dialect: an upsert binding
/// source, sync id, kind, DN, DN key, name and account in that order).
pub(crate) fn entry_upsert<'q, DB>(
    sql: &'q str,
    source: &'q str,
    sync_id: &'q str,
    entry: &'q Entry,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(sql)
        .bind(source)
        .bind(sync_id)
        .bind(kind_name(entry.kind))
        .bind(entry.dn.as_str())
        .bind(entry.dn_key.as_str())
        .bind(entry.name.as_str())
        .bind(entry.account_id)
}

/// A `directory_entries` row: `(sync_id, kind, dn, dn_key, name, account_id)`.
pub(crate) type EntryRow = (String, String, String, String, String, Option<i64>);

/// A user entry written with its new account: `(sync_id, dn, dn_key, login, account_id)`.
pub(crate) type NewUserEntry<'a> = (&'a str, &'a str, String, &'a str, i64);

/// The statements a batch needs, on one connection inside the batch's
/// transaction. Every `source` is the scope's source; lists are written and read
/// in one statement each, whatever their length.
#[async_trait]
pub(crate) trait DirectoryDb: AccountOps {
    /// Why the store cannot hold this user (a value its columns refuse), if so:
    /// the user is skipped instead of failing the batch.
    fn refuses_user(&self, _user: &DirectoryUser) -> Option<&'static str> {
        None
    }

    /// [`refuses_user`](DirectoryDb::refuses_user) for a group (its own values;
    /// members are checked by [`holds_member`](DirectoryDb::holds_member)).
    fn refuses_group(&self, _group: &DirectoryGroup) -> Option<&'static str> {
        None
    }

    /// Whether a member DN key can be stored. One that cannot is left out of the
    /// group: no user the store holds can have it.
    fn holds_member(&self, _member_key: &str) -> bool {
        true
    }

    /// The stored entries among these sync ids.
    async fn load_entries(&mut self, source: &str, sync_ids: &[&str]) -> Result<Vec<EntryRow>, StoreError>;

    /// Which of these subjects an account is linked to under `source`.
    async fn linked_subjects(&mut self, source: &str, subjects: &[&str]) -> Result<Vec<String>, StoreError>;

    /// Which of these login keys an account holds.
    async fn held_login_keys(&mut self, keys: &[&str]) -> Result<Vec<String>, StoreError>;

    /// Deletes an entry (and, for a group, its member rows).
    async fn delete_entry(&mut self, source: &str, sync_id: &str) -> Result<(), StoreError>;

    /// Writes an entry, replacing the stored one.
    async fn save_entry(&mut self, source: &str, sync_id: &str, entry: &Entry) -> Result<(), StoreError>;

    /// Creates these users' accounts (no password, no roles, no link), returning
    /// `(id, login_key)` of each.
    async fn insert_accounts(&mut self, users: &[&DirectoryUser]) -> Result<Vec<(i64, String)>, StoreError>;

    /// Links these `(subject, account)` pairs under `source` (the subjects are free).
    async fn insert_links(&mut self, source: &str, links: &[(&str, i64)]) -> Result<(), StoreError>;

    /// Writes the entries of users whose accounts were just created.
    async fn insert_user_entries(
        &mut self,
        source: &str,
        entries: &[NewUserEntry<'_>],
    ) -> Result<(), StoreError>;

    /// Whether a user entry of `source` owns the account.
    async fn owned_by_entry(&mut self, source: &str, account: i64) -> Result<bool, StoreError>;

    /// Replaces the account's links to `source` by one to `stable_id`.
    async fn relink(&mut self, source: &str, account: i64, stable_id: &str) -> Result<(), StoreError>;

    /// Memberships of `old` become memberships of `new` (a renamed user); those
    /// `new` already had stay once.
    async fn move_memberships(&mut self, source: &str, old: &str, new: &str) -> Result<(), StoreError>;

    /// The member leaves every group of `source`.
    async fn drop_memberships(&mut self, source: &str, member: &str) -> Result<(), StoreError>;

    /// The member keys of a group.
    async fn members(&mut self, source: &str, group: &str) -> Result<Vec<String>, StoreError>;

    /// Removes these members from a group.
    async fn remove_members(&mut self, source: &str, group: &str, members: &[&str])
    -> Result<(), StoreError>;

    /// Adds these members (not members yet) to a group.
    async fn add_members(&mut self, source: &str, group: &str, members: &[&str]) -> Result<(), StoreError>;

    /// The sync ids of every stored entry of `kind`.
    async fn entries_of_kind(&mut self, source: &str, kind: EntryKind) -> Result<Vec<String>, StoreError>;

    /// The accounts of the user entries with these DN keys.
    async fn member_owners(&mut self, source: &str, member_keys: &[&str]) -> Result<Vec<i64>, StoreError>;

    /// For these accounts: their groups' names (`(0, account, group)`) and the
    /// roles `source`'s mapping gives them now (`(1, account, role)`).
    async fn groups_and_roles(
        &mut self,
        source: &str,
        accounts: &[i64],
    ) -> Result<Vec<(i64, i64, String)>, StoreError>;
}

/// The account statements a batch needs: each dialect's `ops` module has them
/// under these names, and [`account_ops!`] implements this trait from it.
#[async_trait]
pub(crate) trait AccountOps: Send {
    /// The account with this id.
    async fn load_account(&mut self, id: &AccountId) -> Result<Option<Account>, StoreError>;

    /// The account linked to `(provider, subject)`.
    async fn find_by_link(&mut self, provider: &str, subject: &str) -> Result<Option<Account>, StoreError>;

    /// The account holding this login key.
    async fn find_by_login_key(&mut self, key: &str) -> Result<Option<Account>, StoreError>;

    /// Creates an account whose link the batch has just seen is free.
    async fn create_account(&mut self, new: &NewAccount) -> Result<Account, StoreError>;

    /// Replaces login name, email and display name.
    async fn update_profile(
        &mut self,
        id: &AccountId,
        login: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Disables or enables an account.
    async fn set_disabled(&mut self, id: &AccountId, disabled: bool) -> Result<(), StoreError>;

    /// Deletes an account (its links, roles and entries go with it).
    async fn delete_account(&mut self, id: &AccountId) -> Result<(), StoreError>;

    /// Sets the roles `provider`'s mapping gives each account.
    async fn overwrite_mapped_roles(
        &mut self,
        provider: &str,
        accounts: &[(i64, &BTreeSet<String>)],
    ) -> Result<(), StoreError>;

    /// Stores the cookie under `key`.
    async fn set_sync_cookie(&mut self, key: &str, cookie: &[u8]) -> Result<(), StoreError>;
}

/// `impl AccountOps for $conn` by the functions of the dialect's `$ops` module
/// (`$create` creates an account whose link the caller has seen is free).
macro_rules! account_ops {
    ($conn:ty, $ops:ident, $create:ident) => {
        #[async_trait::async_trait]
        impl $crate::account::directory::AccountOps for $conn {
            async fn load_account(
                &mut self,
                id: &$crate::AccountId,
            ) -> Result<Option<$crate::account::Account>, $crate::StoreError> {
                $ops::load_account(self, id).await
            }

            async fn find_by_link(
                &mut self,
                provider: &str,
                subject: &str,
            ) -> Result<Option<$crate::account::Account>, $crate::StoreError> {
                $ops::find_by_link(self, provider, subject).await
            }

            async fn find_by_login_key(
                &mut self,
                key: &str,
            ) -> Result<Option<$crate::account::Account>, $crate::StoreError> {
                $ops::find_by_login_key(self, key).await
            }

            async fn create_account(
                &mut self,
                new: &$crate::account::NewAccount,
            ) -> Result<$crate::account::Account, $crate::StoreError> {
                $ops::$create(self, new).await
            }

            async fn update_profile(
                &mut self,
                id: &$crate::AccountId,
                login: &str,
                email: Option<&str>,
                display_name: Option<&str>,
            ) -> Result<(), $crate::StoreError> {
                $ops::update_profile(self, id, login, email, display_name).await
            }

            async fn set_disabled(
                &mut self,
                id: &$crate::AccountId,
                disabled: bool,
            ) -> Result<(), $crate::StoreError> {
                $ops::set_disabled(self, id, disabled).await
            }

            async fn delete_account(&mut self, id: &$crate::AccountId) -> Result<(), $crate::StoreError> {
                $ops::delete_account(self, id).await
            }

            async fn overwrite_mapped_roles(
                &mut self,
                provider: &str,
                accounts: &[(i64, &std::collections::BTreeSet<String>)],
            ) -> Result<(), $crate::StoreError> {
                $ops::overwrite_mapped_roles(self, provider, accounts).await
            }

            async fn set_sync_cookie(&mut self, key: &str, cookie: &[u8]) -> Result<(), $crate::StoreError> {
                $ops::set_sync_cookie(self, key, Some(cookie)).await
            }
        }
    };
}
pub(crate) use account_ops;

/// Applies `batch` on `db` (inside the caller's transaction) with its cookies;
/// the caller commits.
pub(crate) async fn apply_changes<D: DirectoryDb + ?Sized>(
    db: &mut D,
    scope: &SyncScope,
    batch: &SyncBatch,
) -> Result<SyncReport, StoreError> {
    let mut apply = Apply {
        conn: db,
        scope,
        report: SyncReport::default(),
        touched: Touched::default(),
        entries: HashMap::new(),
        free_links: HashSet::new(),
        free_logins: HashSet::new(),
        fresh: Vec::new(),
    };
    apply.read_ahead(batch).await?;
    for change in &batch.changes {
        if let DirectoryChange::UserUpserted(user) = change
            && apply.queue_fresh(user)
        {
            continue;
        }
        apply.create_fresh().await?;
        match change {
            DirectoryChange::UserUpserted(user) => apply.upsert_user(user).await?,
            DirectoryChange::UserDeleted { sync_id } => apply.delete_user(sync_id).await?,
            DirectoryChange::GroupUpserted(group) => apply.upsert_group(group).await?,
            DirectoryChange::GroupMembersChanged { group, removed } => {
                apply.patch_group(group, removed).await?
            }
            DirectoryChange::GroupDeleted { sync_id } => apply.delete_group(sync_id).await?,
            DirectoryChange::RefreshedPresent { kind, present } => apply.retain(*kind, present).await?,
            DirectoryChange::Skipped { .. } => apply.report.skipped += 1,
        }
    }
    apply.create_fresh().await?;
    apply.map_roles().await?;
    let report = apply.report;
    for (kind, cookie) in &batch.cookies {
        apply
            .conn
            .set_sync_cookie(&cookie_key(&scope.source, *kind), cookie)
            .await?;
    }
    Ok(report)
}

/// What a batch touched whose roles must be mapped again at its end.
#[derive(Default)]
struct Touched {
    accounts: BTreeSet<i64>,
    member_keys: BTreeSet<String>,
}

/// One batch being applied. What it reads of the store it reads once for the whole
/// batch (a few statements instead of a few per change: the initial load is
/// thousands of changes) and keeps current with its own writes.
struct Apply<'a, D: ?Sized> {
    conn: &'a mut D,
    scope: &'a SyncScope,
    report: SyncReport,
    touched: Touched,
    /// Directory entries by sync id, `None` for none stored.
    entries: HashMap<String, Option<Entry>>,
    /// Stable ids no account is linked to (for this source) and login keys no
    /// account holds; a write that takes one removes it.
    free_links: HashSet<String>,
    free_logins: HashSet<String>,
    /// Users seen for the first time whose stable id and login name are free:
    /// created together by [`Apply::create_fresh`] (three statements for the
    /// whole initial load of a batch instead of three per user).
    fresh: Vec<&'a DirectoryUser>,
}

impl<'a, D: DirectoryDb + ?Sized> Apply<'a, D> {
    /// Reads the entries the batch names, and which first-seen users' stable ids and
    /// login names are free.
    async fn read_ahead(&mut self, batch: &SyncBatch) -> Result<(), StoreError> {
        let ids: Vec<&str> = batch
            .changes
            .iter()
            .filter_map(|change| match change {
                DirectoryChange::UserUpserted(user) => Some(user.sync_id.as_str()),
                DirectoryChange::GroupUpserted(group)
                | DirectoryChange::GroupMembersChanged { group, .. } => Some(group.sync_id.as_str()),
                DirectoryChange::UserDeleted { sync_id } | DirectoryChange::GroupDeleted { sync_id } => {
                    Some(sync_id.as_str())
                }
                DirectoryChange::RefreshedPresent { .. } | DirectoryChange::Skipped { .. } => None,
            })
            .collect();
        self.load_entries(&ids).await?;
        let first_seen: Vec<&DirectoryUser> = batch
            .changes
            .iter()
            .filter_map(|change| match change {
                DirectoryChange::UserUpserted(user)
                    if matches!(self.entries.get(&user.sync_id), Some(None))
                        && self.conn.refuses_user(user).is_none() =>
                {
                    Some(user)
                }
                _ => None,
            })
            .collect();
        if first_seen.is_empty() {
            return Ok(());
        }
        let stable_ids: HashSet<&str> = first_seen.iter().map(|u| u.stable_id.as_str()).collect();
        let wanted: Vec<&str> = stable_ids.iter().copied().collect();
        let linked = self.conn.linked_subjects(&self.scope.source, &wanted).await?;
        let linked: HashSet<String> = linked.into_iter().collect();
        self.free_links = stable_ids
            .into_iter()
            .filter(|id| !linked.contains(*id))
            .map(str::to_owned)
            .collect();
        let login_keys: HashSet<String> = first_seen.iter().map(|u| fold(&u.login)).collect();
        let wanted: Vec<&str> = login_keys.iter().map(String::as_str).collect();
        let held: HashSet<String> = self.conn.held_login_keys(&wanted).await?.into_iter().collect();
        self.free_logins = login_keys.into_iter().filter(|key| !held.contains(key)).collect();
        Ok(())
    }

    /// Reads these entries into `entries` (`None` for those not stored).
    async fn load_entries(&mut self, sync_ids: &[&str]) -> Result<(), StoreError> {
        if sync_ids.is_empty() {
            return Ok(());
        }
        let rows = self.conn.load_entries(&self.scope.source, sync_ids).await?;
        for id in sync_ids {
            self.entries.insert((*id).to_owned(), None);
        }
        for (sync_id, kind, dn, dn_key, name, account_id) in rows {
            let entry = Entry {
                kind: kind_of(&kind),
                dn,
                dn_key,
                name,
                account_id,
            };
            self.entries.insert(sync_id, Some(entry));
        }
        Ok(())
    }

    /// The stored entry of `kind` with this sync id.
    async fn entry(&mut self, sync_id: &str, kind: EntryKind) -> Result<Option<Entry>, StoreError> {
        if !self.entries.contains_key(sync_id) {
            self.load_entries(&[sync_id]).await?;
        }
        Ok(self
            .entries
            .get(sync_id)
            .cloned()
            .flatten()
            .filter(|entry| entry.kind == kind))
    }

    /// Deletes an entry (and, for a group, its member rows).
    async fn forget_entry(&mut self, sync_id: &str) -> Result<(), StoreError> {
        self.conn.delete_entry(&self.scope.source, sync_id).await?;
        self.entries.insert(sync_id.to_owned(), None);
        Ok(())
    }

    async fn save_entry(&mut self, sync_id: &str, entry: Entry) -> Result<(), StoreError> {
        if let Some(Some(stored)) = self.entries.get(sync_id)
            && *stored == entry
        {
            // Most live changes touch the account, not the entry.
            return Ok(());
        }
        self.conn.save_entry(&self.scope.source, sync_id, &entry).await?;
        self.entries.insert(sync_id.to_owned(), Some(entry));
        Ok(())
    }

    /// Queues the user for [`create_fresh`](Apply::create_fresh) when nothing
    /// stored or queued can be theirs: no entry, and a stable id and login name
    /// that are free. Anything else goes through [`upsert_user`](Apply::upsert_user)
    /// once the queue is written.
    fn queue_fresh(&mut self, user: &'a DirectoryUser) -> bool {
        let login_key = fold(&user.login);
        let fresh = matches!(self.entries.get(&user.sync_id), Some(None))
            && self.conn.refuses_user(user).is_none()
            && self.free_links.contains(&user.stable_id)
            && self.free_logins.contains(&login_key);
        if fresh {
            // Taken now, so a second user with the same id or name in this batch
            // is not queued too, and the queued one counts as stored from here on.
            self.free_links.remove(&user.stable_id);
            self.free_logins.remove(&login_key);
            self.entries.remove(&user.sync_id);
            self.fresh.push(user);
        }
        fresh
    }

    /// Creates the queued users: their accounts, links and entries, in three
    /// statements.
    async fn create_fresh(&mut self) -> Result<(), StoreError> {
        if self.fresh.is_empty() {
            return Ok(());
        }
        let fresh = std::mem::take(&mut self.fresh);
        let created = self.conn.insert_accounts(&fresh).await?;
        let ids: HashMap<String, i64> = created.into_iter().map(|(id, key)| (key, id)).collect();
        let mut links = Vec::with_capacity(fresh.len());
        let mut entries = Vec::with_capacity(fresh.len());
        for user in &fresh {
            let id = *ids.get(&fold(&user.login)).ok_or(StoreError::NotFound)?;
            let key = dn_key(&user.dn);
            links.push((user.stable_id.as_str(), id));
            entries.push((
                user.sync_id.as_str(),
                user.dn.as_str(),
                key.clone(),
                user.login.as_str(),
                id,
            ));
            self.entries.insert(
                user.sync_id.clone(),
                Some(Entry {
                    kind: EntryKind::User,
                    dn: user.dn.clone(),
                    dn_key: key,
                    name: user.login.clone(),
                    account_id: Some(id),
                }),
            );
            self.touched.accounts.insert(id);
        }
        self.conn.insert_links(&self.scope.source, &links).await?;
        self.conn
            .insert_user_entries(&self.scope.source, &entries)
            .await?;
        self.report.created += fresh.len() as u64;
        Ok(())
    }

    fn skip(&mut self, dn: &str, reason: String) {
        tracing::warn!(target: crate::audit::AUDIT_TARGET, source = %self.scope.source, %dn,
            %reason, "directory entry skipped");
        self.report.skipped += 1;
    }

    /// Links `account` to the user's stable id, replacing a link of this source to
    /// a directory entry that no longer exists (a user deleted and created again).
    async fn relink(&mut self, account: &Account, stable_id: &str) -> Result<(), StoreError> {
        let id = row(&account.id)?;
        self.conn.relink(&self.scope.source, id, stable_id).await?;
        self.free_links.remove(stable_id);
        Ok(())
    }

    async fn upsert_user(&mut self, user: &DirectoryUser) -> Result<(), StoreError> {
        if let Some(reason) = self.conn.refuses_user(user) {
            self.skip(&user.dn, reason.to_owned());
            return Ok(());
        }
        let source = self.scope.source.clone();
        let known = self.entry(&user.sync_id, EntryKind::User).await?;
        let mut account = match known.as_ref().and_then(|e| e.account_id) {
            Some(id) => self.conn.load_account(&AccountId::from(id.to_string())).await?,
            None => None,
        };
        // First sight: by stable id, then by login name.
        let login_key = fold(&user.login);
        if account.is_none() && !self.free_links.contains(&user.stable_id) {
            account = self.conn.find_by_link(&source, &user.stable_id).await?;
        }
        let mut linked_now = false;
        if account.is_none()
            && !self.free_logins.contains(&login_key)
            && let Some(by_name) = self.conn.find_by_login_key(&login_key).await?
        {
            let other_link = by_name.links.iter().any(|l| l.provider == source);
            if other_link && self.conn.owned_by_entry(&source, row(&by_name.id)?).await? {
                self.skip(
                    &user.dn,
                    format!("login name `{}` belongs to another directory entry", user.login),
                );
                return Ok(());
            }
            self.relink(&by_name, &user.stable_id).await?;
            linked_now = true;
            account = Some(by_name);
        }
        let account_id = match account {
            None => {
                let mut new = NewAccount::new(user.login.clone())
                    .disabled(!user.enabled)
                    .linked_to(source.clone(), user.stable_id.clone());
                new.email = user.email.clone();
                new.display_name = user.display_name.clone();
                // The link is free: no account was found by it just above.
                let created = self.conn.create_account(&new).await?;
                self.free_links.remove(&user.stable_id);
                self.free_logins.remove(&login_key);
                self.report.created += 1;
                row(&created.id)?
            }
            Some(account) => {
                if linked_now {
                    self.report.linked += 1;
                }
                if !self.update_account(&account, user).await? {
                    return Ok(());
                }
                row(&account.id)?
            }
        };
        let key = dn_key(&user.dn);
        let entry = Entry {
            kind: EntryKind::User,
            dn: user.dn.clone(),
            dn_key: key.clone(),
            name: user.login.clone(),
            account_id: Some(account_id),
        };
        self.save_entry(&user.sync_id, entry).await?;
        if let Some(old) = known.filter(|old| old.dn_key != key) {
            // Renamed (modrdn): its memberships follow it; directories that rewrite
            // the groups' member values send those groups too.
            self.conn.move_memberships(&source, &old.dn_key, &key).await?;
        }
        self.touched.accounts.insert(account_id);
        Ok(())
    }

    /// Brings an existing account in line with the directory; `false` when the
    /// change was skipped (a login name another account holds).
    async fn update_account(&mut self, account: &Account, user: &DirectoryUser) -> Result<bool, StoreError> {
        let renamed = account.login != user.login;
        let profile = account.email != user.email || account.display_name != user.display_name;
        if renamed
            && let Some(holder) = self.conn.find_by_login_key(&fold(&user.login)).await?
            && holder.id != account.id
        {
            self.skip(
                &user.dn,
                format!("login name `{}` belongs to another account", user.login),
            );
            return Ok(false);
        }
        if renamed || profile {
            self.conn
                .update_profile(
                    &account.id,
                    &user.login,
                    user.email.as_deref(),
                    user.display_name.as_deref(),
                )
                .await?;
            if renamed {
                self.free_logins.remove(&fold(&user.login));
                self.report.renamed += 1;
            } else {
                self.report.updated += 1;
            }
        }
        if account.disabled == user.enabled {
            self.conn.set_disabled(&account.id, !user.enabled).await?;
            if user.enabled {
                self.report.enabled += 1;
            } else {
                self.report.disabled += 1;
            }
        }
        Ok(true)
    }

    async fn delete_user(&mut self, sync_id: &str) -> Result<(), StoreError> {
        let Some(entry) = self.entry(sync_id, EntryKind::User).await? else {
            return Ok(());
        };
        // A deleted user leaves every group, whatever the group entries still say.
        self.conn
            .drop_memberships(&self.scope.source, &entry.dn_key)
            .await?;
        self.forget_entry(sync_id).await?;
        let Some(id) = entry.account_id else {
            return Ok(());
        };
        self.touched.accounts.remove(&id);
        let account = AccountId::from(id.to_string());
        match self.scope.on_delete {
            DeletePolicy::Delete => {
                self.conn.delete_account(&account).await?;
                // The account's entries went with it (ON DELETE CASCADE).
                for entry in self.entries.values_mut() {
                    if entry.as_ref().is_some_and(|e| e.account_id == Some(id)) {
                        *entry = None;
                    }
                }
                self.report.deleted += 1;
            }
            DeletePolicy::Disable => {
                let Some(current) = self.conn.load_account(&account).await? else {
                    return Ok(());
                };
                if !current.disabled {
                    self.conn.set_disabled(&account, true).await?;
                    self.report.disabled += 1;
                }
                if current
                    .mapped_roles
                    .get(&self.scope.source)
                    .is_some_and(|r| !r.is_empty())
                {
                    let none = BTreeSet::new();
                    self.conn
                        .overwrite_mapped_roles(&self.scope.source, &[(id, &none)])
                        .await?;
                    self.report.roles_changed += 1;
                }
            }
        }
        Ok(())
    }

    async fn members(&mut self, group_sync_id: &str) -> Result<BTreeSet<String>, StoreError> {
        let keys = self.conn.members(&self.scope.source, group_sync_id).await?;
        Ok(keys.into_iter().collect())
    }

    async fn upsert_group(&mut self, group: &DirectoryGroup) -> Result<(), StoreError> {
        let old = self.members(&group.sync_id).await?;
        let new = self.member_keys(group);
        self.write_group(group, old, new).await
    }

    /// Incremental member values: `group.members` added, `removed` removed.
    async fn patch_group(&mut self, group: &DirectoryGroup, removed: &[String]) -> Result<(), StoreError> {
        let old = self.members(&group.sync_id).await?;
        let removed: BTreeSet<String> = removed.iter().map(|dn| dn_key(dn)).collect();
        let mut new: BTreeSet<String> = old.difference(&removed).cloned().collect();
        new.extend(self.member_keys(group));
        self.write_group(group, old, new).await
    }

    /// The DN keys of `group.members` the database can hold.
    fn member_keys(&self, group: &DirectoryGroup) -> BTreeSet<String> {
        group
            .members
            .iter()
            .map(|dn| dn_key(dn))
            .filter(|key| self.conn.holds_member(key))
            .collect()
    }

    /// Stores `group` with the members `new` (DN keys) in place of `old`.
    async fn write_group(
        &mut self,
        group: &DirectoryGroup,
        old: BTreeSet<String>,
        new: BTreeSet<String>,
    ) -> Result<(), StoreError> {
        if let Some(reason) = self.conn.refuses_group(group) {
            self.skip(&group.dn, reason.to_owned());
            return Ok(());
        }
        let known = self.entry(&group.sync_id, EntryKind::Group).await?;
        let entry = Entry {
            kind: EntryKind::Group,
            dn: group.dn.clone(),
            dn_key: dn_key(&group.dn),
            name: group.name.clone(),
            account_id: None,
        };
        self.save_entry(&group.sync_id, entry).await?;
        let source = self.scope.source.clone();
        let gone: Vec<&str> = old.difference(&new).map(String::as_str).collect();
        if !gone.is_empty() {
            self.conn.remove_members(&source, &group.sync_id, &gone).await?;
        }
        let added: Vec<&str> = new.difference(&old).map(String::as_str).collect();
        if !added.is_empty() {
            self.conn.add_members(&source, &group.sync_id, &added).await?;
        }
        let renamed = known.as_ref().is_some_and(|k| k.name != group.name);
        if renamed {
            self.touched.member_keys.extend(old.union(&new).cloned());
        } else {
            self.touched
                .member_keys
                .extend(old.symmetric_difference(&new).cloned());
        }
        if known.is_none() || renamed || old != new {
            self.report.groups_upserted += 1;
        }
        Ok(())
    }

    async fn delete_group(&mut self, sync_id: &str) -> Result<(), StoreError> {
        if self.entry(sync_id, EntryKind::Group).await?.is_none() {
            return Ok(());
        }
        let members = self.members(sync_id).await?;
        self.touched.member_keys.extend(members);
        self.forget_entry(sync_id).await?;
        self.report.groups_deleted += 1;
        Ok(())
    }

    /// After a full refresh: whatever of `kind` the directory no longer lists is gone.
    async fn retain(&mut self, kind: EntryKind, present: &BTreeSet<String>) -> Result<(), StoreError> {
        let stored = self.conn.entries_of_kind(&self.scope.source, kind).await?;
        for gone in stored.iter().filter(|id| !present.contains(*id)) {
            match kind {
                EntryKind::User => self.delete_user(gone).await?,
                EntryKind::Group => self.delete_group(gone).await?,
            }
        }
        Ok(())
    }

    /// Maps the groups of every touched account to roles again: a few statements
    /// for the whole batch.
    async fn map_roles(&mut self) -> Result<(), StoreError> {
        let source = self.scope.source.clone();
        let mut accounts = std::mem::take(&mut self.touched.accounts);
        let member_keys = std::mem::take(&mut self.touched.member_keys);
        if !member_keys.is_empty() {
            let keys: Vec<&str> = member_keys.iter().map(String::as_str).collect();
            accounts.extend(self.conn.member_owners(&source, &keys).await?);
        }
        if accounts.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = accounts.iter().copied().collect();
        let mut groups: HashMap<i64, Vec<String>> = accounts.iter().map(|id| (*id, Vec::new())).collect();
        let mut current: HashMap<i64, BTreeSet<String>> = HashMap::new();
        for (what, id, name) in self.conn.groups_and_roles(&source, &ids).await? {
            if what == 0 {
                groups.entry(id).or_default().push(name);
            } else {
                current.entry(id).or_default().insert(name);
            }
        }
        let mut changed: Vec<(i64, BTreeSet<String>)> = groups
            .into_iter()
            .map(|(id, groups)| (id, self.scope.roles.map(&groups)))
            .filter(|(id, roles)| current.get(id).map_or(!roles.is_empty(), |now| now != roles))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        changed.sort_unstable_by_key(|(id, _)| *id);
        let changed: Vec<(i64, &BTreeSet<String>)> = changed.iter().map(|(id, roles)| (*id, roles)).collect();
        self.conn.overwrite_mapped_roles(&source, &changed).await?;
        self.report.roles_changed += changed.len() as u64;
        Ok(())
    }
}

fn row(id: &AccountId) -> Result<i64, StoreError> {
    super::sql::row_id(id).ok_or(StoreError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::dn_key;

    #[test]
    fn dn_keys_ignore_case_and_separator_spaces() {
        assert_eq!(
            dn_key("UID=Alice, ou=People ,dc=Example,dc=org"),
            "uid=alice,ou=people,dc=example,dc=org"
        );
        assert_eq!(dn_key("uid=smith\\2C john,ou=x"), "uid=smith\\2c john,ou=x");
        assert_eq!(dn_key("cn=a\\ ,ou=x"), "cn=a\\ ,ou=x");
        assert_eq!(dn_key("cn=a + sn=b,ou=x"), "cn=a+sn=b,ou=x");
    }
}
