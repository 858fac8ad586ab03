//! The SQLite store as a [`DirectoryTarget`]: each batch of directory changes is
//! one transaction, together with the cookies that resume after it.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{Connection, SqliteConnection};

use super::SqliteStore;
use super::ops::{self, backend, fold, json_list};
use crate::account::{Account, NewAccount};
use crate::sync::{
    DeletePolicy, DirectoryChange, DirectoryGroup, DirectoryTarget, DirectoryUser, EntryKind, SyncBatch,
    SyncReport, SyncScope,
};
use crate::{AccountId, StoreError};

/// The `sync_state` key of one search of a source.
fn cookie_key(source: &str, kind: EntryKind) -> String {
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

fn kind_name(kind: EntryKind) -> &'static str {
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

/// What a batch touched whose roles must be mapped again at its end.
#[derive(Default)]
struct Touched {
    accounts: BTreeSet<i64>,
    member_keys: BTreeSet<String>,
}

#[async_trait]
impl DirectoryTarget for SqliteStore {
    async fn sync_cookie(&self, source: &str, kind: EntryKind) -> Result<Option<Vec<u8>>, StoreError> {
        SqliteStore::sync_cookie(self, &cookie_key(source, kind)).await
    }

    async fn apply(&self, scope: &SyncScope, batch: &SyncBatch) -> Result<SyncReport, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        if !self.relaxed_sync_commits() {
            return apply_batch(&mut conn, "BEGIN IMMEDIATE", scope, batch).await;
        }
        // A batch lost in a power cut is fetched again: its cookie goes with it, so
        // the next start resumes from before it. Its commit need not wait for the
        // disk (`NORMAL` in WAL mode: still consistent after any crash); the
        // connection gets the store's `FULL` back before anything else uses it.
        // The pragma cannot change inside a transaction: it goes with BEGIN.
        let applied = apply_batch(
            &mut conn,
            "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
            scope,
            batch,
        )
        .await;
        if sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            conn.close_on_drop();
        }
        applied
    }
}

/// One batch in one transaction, opened with `begin`.
async fn apply_batch(
    conn: &mut SqliteConnection,
    begin: &'static str,
    scope: &SyncScope,
    batch: &SyncBatch,
) -> Result<SyncReport, StoreError> {
    let mut tx = conn.begin_with(begin).await.map_err(backend)?;
    let mut apply = Apply {
        conn: &mut tx,
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
        ops::set_sync_cookie(&mut tx, &cookie_key(&scope.source, *kind), Some(cookie)).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(report)
}

/// One batch being applied. What it reads of the store it reads once for the whole
/// batch (a few statements instead of a few per change: the initial load is
/// thousands of changes) and keeps current with its own writes.
struct Apply<'a> {
    conn: &'a mut SqliteConnection,
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

/// A stored directory entry.
#[derive(Clone, PartialEq)]
struct Entry {
    kind: EntryKind,
    dn: String,
    dn_key: String,
    name: String,
    account_id: Option<i64>,
}

impl<'a> Apply<'a> {
    /// Runs a statement whose parameters are the source (`?1`) and then `args`.
    async fn exec(&mut self, sql: &str, args: &[&str]) -> Result<(), StoreError> {
        let mut query = sqlx::query(sql).bind(&self.scope.source);
        for arg in args {
            query = query.bind(*arg);
        }
        query.execute(&mut *self.conn).await.map_err(backend)?;
        Ok(())
    }

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
                    if matches!(self.entries.get(&user.sync_id), Some(None)) =>
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
        let linked: Vec<String> = sqlx::query_scalar(
            "SELECT subject FROM account_links
             WHERE provider = ?1 AND subject IN (SELECT value FROM json_each(?2))",
        )
        .bind(&self.scope.source)
        .bind(json_list(stable_ids.iter().copied()))
        .fetch_all(&mut *self.conn)
        .await
        .map_err(backend)?;
        let linked: HashSet<String> = linked.into_iter().collect();
        self.free_links = stable_ids
            .into_iter()
            .filter(|id| !linked.contains(*id))
            .map(str::to_owned)
            .collect();
        let login_keys: HashSet<String> = first_seen.iter().map(|u| fold(&u.login)).collect();
        let held: Vec<String> = sqlx::query_scalar(
            "SELECT login_key FROM accounts WHERE login_key IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(login_keys.iter().map(String::as_str)))
        .fetch_all(&mut *self.conn)
        .await
        .map_err(backend)?;
        let held: HashSet<String> = held.into_iter().collect();
        self.free_logins = login_keys.into_iter().filter(|key| !held.contains(key)).collect();
        Ok(())
    }

    /// Reads these entries into `entries` (`None` for those not stored).
    async fn load_entries(&mut self, sync_ids: &[&str]) -> Result<(), StoreError> {
        if sync_ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<(String, String, String, String, String, Option<i64>)> = sqlx::query_as(
            "SELECT sync_id, kind, dn, dn_key, name, account_id FROM directory_entries
             WHERE source = ?1 AND sync_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(&self.scope.source)
        .bind(json_list(sync_ids.iter().copied()))
        .fetch_all(&mut *self.conn)
        .await
        .map_err(backend)?;
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
        self.exec(
            "DELETE FROM directory_entries WHERE source = ?1 AND sync_id = ?2",
            &[sync_id],
        )
        .await?;
        self.entries.insert(sync_id.to_owned(), None);
        Ok(())
    }

    async fn save_entry(
        &mut self,
        sync_id: &str,
        kind: EntryKind,
        dn: &str,
        dn_key: &str,
        name: &str,
        account: Option<i64>,
    ) -> Result<(), StoreError> {
        let entry = Entry {
            kind,
            dn: dn.to_owned(),
            dn_key: dn_key.to_owned(),
            name: name.to_owned(),
            account_id: account,
        };
        if let Some(Some(stored)) = self.entries.get(sync_id)
            && *stored == entry
        {
            // Most live changes touch the account, not the entry.
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO directory_entries (source, sync_id, kind, dn, dn_key, name, account_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (source, sync_id) DO UPDATE SET
               kind = excluded.kind, dn = excluded.dn, dn_key = excluded.dn_key,
               name = excluded.name, account_id = excluded.account_id",
        )
        .bind(&self.scope.source)
        .bind(sync_id)
        .bind(kind_name(kind))
        .bind(dn)
        .bind(dn_key)
        .bind(name)
        .bind(account)
        .execute(&mut *self.conn)
        .await
        .map_err(backend)?;
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
        let rows = json_list(fresh.iter().map(|user| {
            (
                &user.login,
                fold(&user.login),
                &user.email,
                user.email.as_deref().map(fold),
                &user.display_name,
                !user.enabled,
            )
        }));
        let created: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO accounts (login, login_key, email, email_key, display_name, disabled, created_at) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
               json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), ?2 \
             FROM json_each(?1) RETURNING id, login_key",
        )
        .bind(rows)
        .bind(ops::to_nanos(std::time::SystemTime::now())?)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(backend)?;
        let ids: HashMap<String, i64> = created.into_iter().map(|(id, key)| (key, id)).collect();
        let mut links = Vec::with_capacity(fresh.len());
        let mut entries = Vec::with_capacity(fresh.len());
        for user in &fresh {
            let id = *ids.get(&fold(&user.login)).ok_or(StoreError::NotFound)?;
            let key = dn_key(&user.dn);
            links.push((&user.stable_id, id));
            entries.push((&user.sync_id, &user.dn, key.clone(), &user.login, id));
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
        self.exec(
            "INSERT INTO account_links (provider, subject, account_id) \
             SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2)",
            &[&json_list(links)],
        )
        .await?;
        self.exec(
            "INSERT INTO directory_entries (source, sync_id, kind, dn, dn_key, name, account_id) \
             SELECT ?1, json_extract(value, '$[0]'), 'user', json_extract(value, '$[1]'), \
               json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]') \
             FROM json_each(?2)",
            &[&json_list(entries)],
        )
        .await?;
        self.report.created += fresh.len() as u64;
        Ok(())
    }

    fn skip(&mut self, user: &DirectoryUser, reason: String) {
        tracing::warn!(target: crate::audit::AUDIT_TARGET, source = %self.scope.source, dn = %user.dn,
            %reason, "directory entry skipped");
        self.report.skipped += 1;
    }

    /// Whether a live directory entry of this source owns the account.
    async fn owned_by_entry(&mut self, account: i64) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM directory_entries WHERE source = ?1 AND kind = 'user' AND account_id = ?2",
        )
        .bind(&self.scope.source)
        .bind(account)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(backend)?;
        Ok(found.is_some())
    }

    /// Links `account` to the user's stable id, replacing a link of this source to
    /// a directory entry that no longer exists (a user deleted and created again).
    async fn relink(&mut self, account: &Account, stable_id: &str) -> Result<(), StoreError> {
        let id = row(&account.id)?;
        sqlx::query("DELETE FROM account_links WHERE provider = ?1 AND account_id = ?2")
            .bind(&self.scope.source)
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO account_links (provider, subject, account_id) VALUES (?1, ?2, ?3)")
            .bind(&self.scope.source)
            .bind(stable_id)
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(backend)?;
        self.free_links.remove(stable_id);
        Ok(())
    }

    async fn upsert_user(&mut self, user: &DirectoryUser) -> Result<(), StoreError> {
        let source = self.scope.source.clone();
        let known = self.entry(&user.sync_id, EntryKind::User).await?;
        let mut account = match known.as_ref().and_then(|e| e.account_id) {
            Some(id) => ops::load_account(self.conn, &AccountId(id.to_string())).await?,
            None => None,
        };
        // First sight: by stable id, then by login name.
        let login_key = fold(&user.login);
        if account.is_none() && !self.free_links.contains(&user.stable_id) {
            account = ops::find_by_link(self.conn, &source, &user.stable_id).await?;
        }
        let mut linked_now = false;
        if account.is_none()
            && !self.free_logins.contains(&login_key)
            && let Some(by_name) = ops::find_by_login_key(self.conn, &login_key).await?
        {
            let other_link = by_name.links.iter().any(|l| l.provider == source);
            if other_link && self.owned_by_entry(row(&by_name.id)?).await? {
                self.skip(
                    user,
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
                let created = ops::insert_account_with_free_link(self.conn, &new).await?;
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
        self.save_entry(
            &user.sync_id,
            EntryKind::User,
            &user.dn,
            &key,
            &user.login,
            Some(account_id),
        )
        .await?;
        if let Some(old) = known.filter(|old| old.dn_key != key) {
            // Renamed (modrdn): its memberships follow it; directories that rewrite
            // the groups' member values send those groups too.
            self.exec(
                "UPDATE OR IGNORE directory_members SET member_dn_key = ?3
                 WHERE source = ?1 AND member_dn_key = ?2",
                &[&old.dn_key, &key],
            )
            .await?;
            self.exec(
                "DELETE FROM directory_members WHERE source = ?1 AND member_dn_key = ?2",
                &[&old.dn_key],
            )
            .await?;
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
            && let Some(holder) = ops::find_by_login_key(self.conn, &fold(&user.login)).await?
            && holder.id != account.id
        {
            self.skip(
                user,
                format!("login name `{}` belongs to another account", user.login),
            );
            return Ok(false);
        }
        if renamed || profile {
            ops::update_profile(
                self.conn,
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
            ops::set_disabled(self.conn, &account.id, !user.enabled).await?;
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
        self.exec(
            "DELETE FROM directory_members WHERE source = ?1 AND member_dn_key = ?2",
            &[&entry.dn_key],
        )
        .await?;
        self.forget_entry(sync_id).await?;
        let Some(id) = entry.account_id else {
            return Ok(());
        };
        self.touched.accounts.remove(&id);
        let account = AccountId(id.to_string());
        match self.scope.on_delete {
            DeletePolicy::Delete => {
                ops::delete_account(self.conn, &account).await?;
                // The account's entries went with it (ON DELETE CASCADE).
                for entry in self.entries.values_mut() {
                    if entry.as_ref().is_some_and(|e| e.account_id == Some(id)) {
                        *entry = None;
                    }
                }
                self.report.deleted += 1;
            }
            DeletePolicy::Disable => {
                let Some(current) = ops::load_account(self.conn, &account).await? else {
                    return Ok(());
                };
                if !current.disabled {
                    ops::set_disabled(self.conn, &account, true).await?;
                    self.report.disabled += 1;
                }
                if current
                    .mapped_roles
                    .get(&self.scope.source)
                    .is_some_and(|r| !r.is_empty())
                {
                    ops::replace_mapped_roles(self.conn, &account, &self.scope.source, &BTreeSet::new())
                        .await?;
                    self.report.roles_changed += 1;
                }
            }
        }
        Ok(())
    }

    async fn members(&mut self, group_sync_id: &str) -> Result<BTreeSet<String>, StoreError> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT member_dn_key FROM directory_members WHERE source = ?1 AND group_sync_id = ?2",
        )
        .bind(&self.scope.source)
        .bind(group_sync_id)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(backend)?;
        Ok(keys.into_iter().collect())
    }

    async fn upsert_group(&mut self, group: &DirectoryGroup) -> Result<(), StoreError> {
        let old = self.members(&group.sync_id).await?;
        let new: BTreeSet<String> = group.members.iter().map(|dn| dn_key(dn)).collect();
        self.write_group(group, old, new).await
    }

    /// Incremental member values: `group.members` added, `removed` removed.
    async fn patch_group(&mut self, group: &DirectoryGroup, removed: &[String]) -> Result<(), StoreError> {
        let old = self.members(&group.sync_id).await?;
        let removed: BTreeSet<String> = removed.iter().map(|dn| dn_key(dn)).collect();
        let mut new: BTreeSet<String> = old.difference(&removed).cloned().collect();
        new.extend(group.members.iter().map(|dn| dn_key(dn)));
        self.write_group(group, old, new).await
    }

    /// Stores `group` with the members `new` (DN keys) in place of `old`.
    async fn write_group(
        &mut self,
        group: &DirectoryGroup,
        old: BTreeSet<String>,
        new: BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let known = self.entry(&group.sync_id, EntryKind::Group).await?;
        self.save_entry(
            &group.sync_id,
            EntryKind::Group,
            &group.dn,
            &dn_key(&group.dn),
            &group.name,
            None,
        )
        .await?;
        let gone: Vec<&str> = old.difference(&new).map(String::as_str).collect();
        if !gone.is_empty() {
            self.exec(
                "DELETE FROM directory_members WHERE source = ?1 AND group_sync_id = ?2
                 AND member_dn_key IN (SELECT value FROM json_each(?3))",
                &[&group.sync_id, &json_list(gone)],
            )
            .await?;
        }
        let added: Vec<&str> = new.difference(&old).map(String::as_str).collect();
        if !added.is_empty() {
            self.exec(
                "INSERT INTO directory_members (source, group_sync_id, member_dn_key)
                 SELECT ?1, ?2, value FROM json_each(?3)",
                &[&group.sync_id, &json_list(added)],
            )
            .await?;
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
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT sync_id FROM directory_entries WHERE source = ?1 AND kind = ?2")
                .bind(&self.scope.source)
                .bind(kind_name(kind))
                .fetch_all(&mut *self.conn)
                .await
                .map_err(backend)?;
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
            // The list drives the join (CROSS JOIN keeps that order) and each key is
            // an index lookup: without statistics SQLite would rather scan the
            // source's entries once per key.
            let owners: Vec<i64> = sqlx::query_scalar(
                "SELECT u.account_id FROM json_each(?2) AS wanted
                 CROSS JOIN directory_entries AS u INDEXED BY directory_entries_dn
                   ON u.source = ?1 AND u.kind = 'user' AND u.dn_key = wanted.value
                 WHERE u.account_id IS NOT NULL",
            )
            .bind(&source)
            .bind(json_list(member_keys.iter().map(String::as_str)))
            .fetch_all(&mut *self.conn)
            .await
            .map_err(backend)?;
            accounts.extend(owners);
        }
        if accounts.is_empty() {
            return Ok(());
        }
        let ids = json_list(accounts.iter().copied());
        let mut groups: HashMap<i64, Vec<String>> = accounts.iter().map(|id| (*id, Vec::new())).collect();
        let mut current: HashMap<i64, BTreeSet<String>> = HashMap::new();
        // The accounts' groups (0) and the roles mapped now (1), in one statement.
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT 0, u.account_id, g.name FROM json_each(?2) AS wanted
             CROSS JOIN directory_entries AS u
               ON u.account_id = wanted.value AND u.source = ?1 AND u.kind = 'user'
             CROSS JOIN directory_members AS m ON m.source = u.source AND m.member_dn_key = u.dn_key
             CROSS JOIN directory_entries AS g ON g.source = m.source AND g.sync_id = m.group_sync_id
             UNION ALL
             SELECT 1, account_id, role FROM account_mapped_roles
             WHERE provider = ?1 AND account_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(&source)
        .bind(&ids)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(backend)?;
        for (what, id, name) in rows {
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
        ops::overwrite_mapped_roles(self.conn, &source, &changed).await?;
        self.report.roles_changed += changed.len() as u64;
        Ok(())
    }
}

fn row(id: &AccountId) -> Result<i64, StoreError> {
    ops::row_id(id).ok_or(StoreError::NotFound)
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
