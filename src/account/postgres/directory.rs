//! The PostgreSQL store as a [`DirectoryTarget`]: each batch of directory changes
//! is one transaction, together with the cookies that resume after it. What a
//! batch does is in [`crate::account::directory`] (shared with the SQLite store);
//! the statements are here.
//!
//! A batch first takes a transaction-scoped advisory lock on its source, so
//! synchronisers of the same source on several replicas apply their batches one
//! after the other instead of interleaving them.

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::PgConnection;

use super::PgStore;
use super::ops::{self, check_name, check_text};
use crate::StoreError;
use crate::account::directory::{
    DirectoryDb, Entry, EntryRow, NewUserEntry, apply_changes, cookie_key, dn_key, entry_upsert, kind_name,
};
use crate::account::sql::{backend, fold, to_nanos};
use crate::sync::{
    DirectoryGroup, DirectoryTarget, DirectoryUser, EntryKind, SyncBatch, SyncReport, SyncScope,
};

#[async_trait]
impl DirectoryTarget for PgStore {
    async fn sync_cookie(&self, source: &str, kind: EntryKind) -> Result<Option<Vec<u8>>, StoreError> {
        PgStore::sync_cookie(self, &cookie_key(source, kind)).await
    }

    async fn apply(&self, scope: &SyncScope, batch: &SyncBatch) -> Result<SyncReport, StoreError> {
        check_name("source", &scope.source)?;
        let mut tx = self.write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("authchain-sync:{}", scope.source))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let report = apply_changes(&mut *tx, scope, batch).await?;
        tx.commit().await.map_err(backend)?;
        Ok(report)
    }
}

/// Why a name cannot be stored (a NUL, or longer than an index holds), if so.
fn unstorable(names: &[&str], texts: &[&str]) -> Option<&'static str> {
    let name = names.iter().find_map(|n| check_name("entry", n).err());
    let text = texts.iter().find_map(|t| check_text("entry", t).err());
    match name.or(text)? {
        StoreError::InvalidValue { reason, .. } => Some(reason),
        _ => Some("not storable"),
    }
}

/// Runs a statement whose parameters are `source` (`$1`) and `arg` (`$2`).
async fn exec(conn: &mut PgConnection, sql: &str, source: &str, arg: &str) -> Result<(), StoreError> {
    let query = sqlx::query(sql).bind(source).bind(arg);
    query.execute(conn).await.map_err(backend)?;
    Ok(())
}

/// Runs a statement on a group's members: `source` (`$1`), `group` (`$2`) and the
/// member keys (`$3`, an array).
async fn exec_members(
    conn: &mut PgConnection,
    sql: &str,
    source: &str,
    group: &str,
    members: &[&str],
) -> Result<(), StoreError> {
    let query = sqlx::query(sql).bind(source).bind(group).bind(members);
    query.execute(conn).await.map_err(backend)?;
    Ok(())
}

#[async_trait]
impl DirectoryDb for PgConnection {
    fn refuses_user(&self, user: &DirectoryUser) -> Option<&'static str> {
        let key = dn_key(&user.dn);
        let names = [
            user.sync_id.as_str(),
            user.stable_id.as_str(),
            user.login.as_str(),
            user.email.as_deref().unwrap_or_default(),
            key.as_str(),
            user.dn.as_str(),
        ];
        unstorable(&names, &[user.display_name.as_deref().unwrap_or_default()])
    }

    fn refuses_group(&self, group: &DirectoryGroup) -> Option<&'static str> {
        let key = dn_key(&group.dn);
        let names = [group.sync_id.as_str(), group.name.as_str(), key.as_str()];
        unstorable(&names, &[group.dn.as_str()])
    }

    fn holds_member(&self, member_key: &str) -> bool {
        check_name("member", member_key).is_ok()
    }

    async fn load_entries(&mut self, source: &str, sync_ids: &[&str]) -> Result<Vec<EntryRow>, StoreError> {
        sqlx::query_as(
            "SELECT sync_id, kind, dn, dn_key, name, account_id FROM directory_entries \
             WHERE source = $1 AND sync_id = ANY($2)",
        )
        .bind(source)
        .bind(sync_ids)
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn linked_subjects(&mut self, source: &str, subjects: &[&str]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT subject FROM account_links WHERE provider = $1 AND subject = ANY($2)")
            .bind(source)
            .bind(subjects)
            .fetch_all(self)
            .await
            .map_err(backend)
    }

    async fn held_login_keys(&mut self, keys: &[&str]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT login_key FROM accounts WHERE login_key = ANY($1)")
            .bind(keys)
            .fetch_all(self)
            .await
            .map_err(backend)
    }

    async fn delete_entry(&mut self, source: &str, sync_id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM directory_entries WHERE source = $1 AND sync_id = $2";
        exec(self, sql, source, sync_id).await
    }

    async fn save_entry(&mut self, source: &str, sync_id: &str, entry: &Entry) -> Result<(), StoreError> {
        let sql = "INSERT INTO directory_entries (source, sync_id, kind, dn, dn_key, name, account_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (source, sync_id) DO UPDATE SET \
               kind = excluded.kind, dn = excluded.dn, dn_key = excluded.dn_key, \
               name = excluded.name, account_id = excluded.account_id";
        entry_upsert(sql, source, sync_id, entry)
            .execute(self)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_accounts(&mut self, users: &[&DirectoryUser]) -> Result<Vec<(i64, String)>, StoreError> {
        let logins: Vec<&str> = users.iter().map(|u| u.login.as_str()).collect();
        let keys: Vec<String> = users.iter().map(|u| fold(&u.login)).collect();
        let emails: Vec<Option<&str>> = users.iter().map(|u| u.email.as_deref()).collect();
        let email_keys: Vec<Option<String>> = users.iter().map(|u| u.email.as_deref().map(fold)).collect();
        let names: Vec<Option<&str>> = users.iter().map(|u| u.display_name.as_deref()).collect();
        let disabled: Vec<bool> = users.iter().map(|u| !u.enabled).collect();
        sqlx::query_as(
            "INSERT INTO accounts (login, login_key, email, email_key, display_name, disabled, created_at) \
             SELECT l, k, e, ek, d, x, $7 \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[]) AS t(l, k, e, ek, d, x) \
             RETURNING id, login_key",
        )
        .bind(&logins)
        .bind(&keys)
        .bind(&emails)
        .bind(&email_keys)
        .bind(&names)
        .bind(&disabled)
        .bind(to_nanos(SystemTime::now())?)
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn insert_links(&mut self, source: &str, links: &[(&str, i64)]) -> Result<(), StoreError> {
        let subjects: Vec<&str> = links.iter().map(|(s, _)| *s).collect();
        let ids: Vec<i64> = links.iter().map(|(_, id)| *id).collect();
        sqlx::query(
            "INSERT INTO account_links (provider, subject, account_id) \
             SELECT $1, s, a FROM unnest($2::text[], $3::bigint[]) AS t(s, a)",
        )
        .bind(source)
        .bind(&subjects)
        .bind(&ids)
        .execute(self)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn insert_user_entries(
        &mut self,
        source: &str,
        entries: &[NewUserEntry<'_>],
    ) -> Result<(), StoreError> {
        let sync_ids: Vec<&str> = entries.iter().map(|e| e.0).collect();
        let dns: Vec<&str> = entries.iter().map(|e| e.1).collect();
        let keys: Vec<&str> = entries.iter().map(|e| e.2.as_str()).collect();
        let names: Vec<&str> = entries.iter().map(|e| e.3).collect();
        let ids: Vec<i64> = entries.iter().map(|e| e.4).collect();
        sqlx::query(
            "INSERT INTO directory_entries (source, sync_id, kind, dn, dn_key, name, account_id) \
             SELECT $1, s, 'user', d, k, n, a \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) AS t(s, d, k, n, a)",
        )
        .bind(source)
        .bind(&sync_ids)
        .bind(&dns)
        .bind(&keys)
        .bind(&names)
        .bind(&ids)
        .execute(self)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn owned_by_entry(&mut self, source: &str, account: i64) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM directory_entries \
             WHERE source = $1 AND kind = 'user' AND account_id = $2)",
        )
        .bind(source)
        .bind(account)
        .fetch_one(self)
        .await
        .map_err(backend)
    }

    async fn relink(&mut self, source: &str, account: i64, stable_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "WITH gone AS (DELETE FROM account_links WHERE provider = $1 AND account_id = $2) \
             INSERT INTO account_links (provider, subject, account_id) VALUES ($1, $3, $2)",
        )
        .bind(source)
        .bind(account)
        .bind(stable_id)
        .execute(self)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn move_memberships(&mut self, source: &str, old: &str, new: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO directory_members (source, group_sync_id, member_dn_key) \
             SELECT source, group_sync_id, $3 FROM directory_members \
             WHERE source = $1 AND member_dn_key = $2 \
             ON CONFLICT DO NOTHING",
        )
        .bind(source)
        .bind(old)
        .bind(new)
        .execute(&mut *self)
        .await
        .map_err(backend)?;
        self.drop_memberships(source, old).await
    }

    async fn drop_memberships(&mut self, source: &str, member: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM directory_members WHERE source = $1 AND member_dn_key = $2";
        exec(self, sql, source, member).await
    }

    async fn members(&mut self, source: &str, group: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT member_dn_key FROM directory_members WHERE source = $1 AND group_sync_id = $2",
        )
        .bind(source)
        .bind(group)
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn remove_members(
        &mut self,
        source: &str,
        group: &str,
        members: &[&str],
    ) -> Result<(), StoreError> {
        let sql = "DELETE FROM directory_members \
                   WHERE source = $1 AND group_sync_id = $2 AND member_dn_key = ANY($3)";
        exec_members(self, sql, source, group, members).await
    }

    async fn add_members(&mut self, source: &str, group: &str, members: &[&str]) -> Result<(), StoreError> {
        let sql = "INSERT INTO directory_members (source, group_sync_id, member_dn_key) \
                   SELECT $1, $2, unnest($3::text[])";
        exec_members(self, sql, source, group, members).await
    }

    async fn entries_of_kind(&mut self, source: &str, kind: EntryKind) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT sync_id FROM directory_entries WHERE source = $1 AND kind = $2")
            .bind(source)
            .bind(kind_name(kind))
            .fetch_all(self)
            .await
            .map_err(backend)
    }

    async fn member_owners(&mut self, source: &str, member_keys: &[&str]) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT account_id FROM directory_entries \
             WHERE source = $1 AND kind = 'user' AND dn_key = ANY($2) AND account_id IS NOT NULL",
        )
        .bind(source)
        .bind(member_keys)
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn groups_and_roles(
        &mut self,
        source: &str,
        accounts: &[i64],
    ) -> Result<Vec<(i64, i64, String)>, StoreError> {
        sqlx::query_as(
            "SELECT 0::bigint, u.account_id, g.name FROM directory_entries AS u \
             JOIN directory_members AS m ON m.source = u.source AND m.member_dn_key = u.dn_key \
             JOIN directory_entries AS g ON g.source = m.source AND g.sync_id = m.group_sync_id \
             WHERE u.source = $1 AND u.kind = 'user' AND u.account_id = ANY($2) \
             UNION ALL \
             SELECT 1::bigint, account_id, role FROM account_mapped_roles \
             WHERE provider = $1 AND account_id = ANY($2)",
        )
        .bind(source)
        .bind(accounts)
        .fetch_all(self)
        .await
        .map_err(backend)
    }
}

crate::account::directory::account_ops!(PgConnection, ops, insert_account);
