//! The SQLite store as a [`DirectoryTarget`]: each batch of directory changes is
//! one transaction, together with the cookies that resume after it.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::SqliteStore;
use super::ops::{self, backend, fold};
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
        let mut tx = self.write().await?;
        let mut apply = Apply {
            conn: &mut tx,
            scope,
            report: SyncReport::default(),
            touched: Touched::default(),
        };
        for change in &batch.changes {
            match change {
                DirectoryChange::UserUpserted(user) => apply.upsert_user(user).await?,
                DirectoryChange::UserDeleted { sync_id } => apply.delete_user(sync_id).await?,
                DirectoryChange::GroupUpserted(group) => apply.upsert_group(group).await?,
                DirectoryChange::GroupDeleted { sync_id } => apply.delete_group(sync_id).await?,
                DirectoryChange::RefreshedPresent { kind, present } => apply.retain(*kind, present).await?,
                DirectoryChange::Skipped { .. } => apply.report.skipped += 1,
            }
        }
        apply.map_roles().await?;
        let report = apply.report;
        for (kind, cookie) in &batch.cookies {
            ops::set_sync_cookie(&mut tx, &cookie_key(&scope.source, *kind), Some(cookie)).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(report)
    }
}

struct Apply<'a> {
    conn: &'a mut SqliteConnection,
    scope: &'a SyncScope,
    report: SyncReport,
    touched: Touched,
}

/// A stored directory entry.
struct Entry {
    dn_key: String,
    name: String,
    account_id: Option<i64>,
}

impl Apply<'_> {
    /// Runs a statement whose parameters are the source (`?1`) and then `args`.
    async fn exec(&mut self, sql: &str, args: &[&str]) -> Result<(), StoreError> {
        let mut query = sqlx::query(sql).bind(&self.scope.source);
        for arg in args {
            query = query.bind(*arg);
        }
        query.execute(&mut *self.conn).await.map_err(backend)?;
        Ok(())
    }

    async fn entry(&mut self, sync_id: &str, kind: EntryKind) -> Result<Option<Entry>, StoreError> {
        let row: Option<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT dn_key, name, account_id FROM directory_entries
             WHERE source = ?1 AND sync_id = ?2 AND kind = ?3",
        )
        .bind(&self.scope.source)
        .bind(sync_id)
        .bind(kind_name(kind))
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(backend)?;
        Ok(row.map(|(dn_key, name, account_id)| Entry {
            dn_key,
            name,
            account_id,
        }))
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
        Ok(())
    }

    fn skip(&mut self, user: &DirectoryUser, reason: String) {
        tracing::warn!(target: crate::chain::AUDIT_TARGET, source = %self.scope.source, dn = %user.dn,
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
        if account.is_none() {
            account = ops::find_by_link(self.conn, &source, &user.stable_id).await?;
        }
        let mut linked_now = false;
        if account.is_none()
            && let Some(by_name) = ops::find_by_login_key(self.conn, &fold(&user.login)).await?
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
                let created = ops::insert_account(self.conn, &new).await?;
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
        self.exec(
            "DELETE FROM directory_entries WHERE source = ?1 AND sync_id = ?2",
            &[sync_id],
        )
        .await?;
        let Some(id) = entry.account_id else {
            return Ok(());
        };
        self.touched.accounts.remove(&id);
        let account = AccountId(id.to_string());
        match self.scope.on_delete {
            DeletePolicy::Delete => {
                ops::delete_account(self.conn, &account).await?;
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
        let known = self.entry(&group.sync_id, EntryKind::Group).await?;
        let old = self.members(&group.sync_id).await?;
        let new: BTreeSet<String> = group.members.iter().map(|dn| dn_key(dn)).collect();
        self.save_entry(
            &group.sync_id,
            EntryKind::Group,
            &group.dn,
            &dn_key(&group.dn),
            &group.name,
            None,
        )
        .await?;
        for gone in old.difference(&new) {
            self.exec("DELETE FROM directory_members WHERE source = ?1 AND group_sync_id = ?2 AND member_dn_key = ?3", &[&group.sync_id, gone]).await?;
        }
        for added in new.difference(&old) {
            self.exec(
                "INSERT INTO directory_members (source, group_sync_id, member_dn_key) VALUES (?1, ?2, ?3)",
                &[&group.sync_id, added],
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
        self.exec(
            "DELETE FROM directory_entries WHERE source = ?1 AND sync_id = ?2",
            &[sync_id],
        )
        .await?;
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

    /// Maps the groups of every touched account to roles again.
    async fn map_roles(&mut self) -> Result<(), StoreError> {
        let source = self.scope.source.clone();
        let mut accounts = std::mem::take(&mut self.touched.accounts);
        for key in std::mem::take(&mut self.touched.member_keys) {
            let owners: Vec<i64> = sqlx::query_scalar(
                "SELECT account_id FROM directory_entries
                 WHERE source = ?1 AND kind = 'user' AND dn_key = ?2 AND account_id IS NOT NULL",
            )
            .bind(&source)
            .bind(&key)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(backend)?;
            accounts.extend(owners);
        }
        for id in accounts {
            let groups: Vec<String> = sqlx::query_scalar(
                "SELECT g.name FROM directory_entries u
                 JOIN directory_members m ON m.source = u.source AND m.member_dn_key = u.dn_key
                 JOIN directory_entries g ON g.source = m.source AND g.sync_id = m.group_sync_id
                 WHERE u.source = ?1 AND u.kind = 'user' AND u.account_id = ?2",
            )
            .bind(&source)
            .bind(id)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(backend)?;
            let roles = self.scope.roles.map(&groups);
            let current: Vec<String> = sqlx::query_scalar(
                "SELECT role FROM account_mapped_roles WHERE account_id = ?1 AND provider = ?2",
            )
            .bind(id)
            .bind(&source)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(backend)?;
            if current.into_iter().collect::<BTreeSet<_>>() != roles {
                ops::replace_mapped_roles(self.conn, &AccountId(id.to_string()), &source, &roles).await?;
                self.report.roles_changed += 1;
            }
        }
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
