//! The SQLite store as a [`DirectoryTarget`]: each batch of directory changes is
//! one transaction, together with the cookies that resume after it. What a batch
//! does is in [`crate::account::directory`]; the statements are here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use super::SqliteStore;
use super::ops::{self, backend, json_list};
use crate::StoreError;
use crate::account::directory::{
    DirectoryDb, Entry, EntryRow, NewUserEntry, apply_changes, cookie_key, entry_upsert, kind_name,
};
use crate::sync::{DirectoryTarget, DirectoryUser, EntryKind, SyncBatch, SyncReport, SyncScope};

#[async_trait]
impl DirectoryTarget for SqliteStore {
    async fn sync_cookie(&self, source: &str, kind: EntryKind) -> Result<Option<Vec<u8>>, StoreError> {
        SqliteStore::sync_cookie(self, &cookie_key(source, kind)).await
    }

    async fn apply(&self, scope: &SyncScope, batch: &SyncBatch) -> Result<SyncReport, StoreError> {
        let _turn = self.write_turn().await;
        let Some(options) = self.file_options() else {
            // A host's pool keeps its own settings.
            let mut conn = self.pool().acquire().await.map_err(backend)?;
            return apply_batch(&mut conn, scope, batch).await;
        };
        let mut slot = self.sync_writer.conn.lock().await;
        // Taken out while in use: a batch that fails (or is dropped half-way) takes
        // the connection with it, whatever state it left it in, and the next
        // batch starts on a new one.
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => SyncWriter::connect(options).await?,
        };
        let applied = apply_batch(&mut conn, scope, batch).await;
        if applied.is_ok() {
            *slot = Some(conn);
            self.sync_writer.checkpoint_soon(self.pool());
        } else {
            let _ = conn.close().await;
        }
        applied
    }
}

/// The directory synchroniser's own connection to a store's file, and the
/// checkpoints that keep its WAL bounded.
///
/// A batch lost in a power cut is fetched again: its cookie goes with it, so the
/// next start resumes from before it. So its commit need not wait for the disk:
/// the connection has `synchronous = NORMAL` (in WAL mode still consistent after
/// any crash) whatever the store's setting, and the pool's connections keep it.
/// It also never checkpoints on commit (`wal_autocheckpoint = 0`): the
/// checkpoint SQLite runs inside the commit that fills the WAL past 1,000 pages
/// copies them and waits for two `fsync`s, and a change arriving meanwhile waited
/// for it. Instead a passive checkpoint runs on a pool connection, beside the
/// synchroniser, after a batch, at most one at a time and one per
/// [`CHECKPOINT_EVERY`]: the WAL holds at most what the synchroniser commits in
/// that time and one checkpoint's run (and, as with SQLite's own checkpoints,
/// what a long reader keeps from being copied).
#[derive(Debug, Default)]
pub(crate) struct SyncWriter {
    conn: tokio::sync::Mutex<Option<SqliteConnection>>,
    checkpoint: std::sync::Arc<Checkpoints>,
}

#[derive(Debug, Default)]
struct Checkpoints {
    /// A checkpoint is running.
    running: AtomicBool,
    /// When the last one started, in ms since `epoch`.
    last: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

/// Least time between two checkpoints of the synchroniser's writes.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

impl SyncWriter {
    async fn connect(options: &SqliteConnectOptions) -> Result<SqliteConnection, StoreError> {
        let options = options
            .clone()
            .synchronous(SqliteSynchronous::Normal)
            .pragma("wal_autocheckpoint", "0");
        SqliteConnection::connect_with(&options).await.map_err(backend)
    }

    /// Starts a passive checkpoint on a pool connection, unless one is running or
    /// one started less than [`CHECKPOINT_EVERY`] ago.
    fn checkpoint_soon(&self, pool: &SqlitePool) {
        let state = &self.checkpoint;
        let epoch = *state.epoch.get_or_init(Instant::now);
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let every = CHECKPOINT_EVERY.as_millis() as u64;
        let last = state.last.load(Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < every) || state.running.swap(true, Ordering::AcqRel) {
            return;
        }
        state.last.store(now.max(1), Ordering::Relaxed);
        let (pool, state) = (pool.clone(), state.clone());
        tokio::spawn(async move {
            if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                tracing::debug!(error = %err, "checkpoint after directory sync batches failed");
            }
            state.running.store(false, Ordering::Release);
        });
    }

    /// Closes the connection (the store is closing).
    pub(crate) async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}

/// One batch in one transaction.
async fn apply_batch(
    conn: &mut SqliteConnection,
    scope: &SyncScope,
    batch: &SyncBatch,
) -> Result<SyncReport, StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    let report = apply_changes(&mut *tx, scope, batch).await?;
    tx.commit().await.map_err(backend)?;
    Ok(report)
}

/// Most rows one multi-row `INSERT` writes (at 7 columns, 7,000 parameters:
/// SQLite allows 32,766). Rows go as bound parameters, not as a JSON list that
/// SQLite would take apart again for every column of every row.
const ROWS_PER_INSERT: usize = 1000;

/// `rows` copies of the row `template` (`(?, ?)`), comma-separated.
fn rows(template: &str, rows: usize) -> String {
    let mut out = String::with_capacity((template.len() + 2) * rows);
    for n in 0..rows {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(template);
    }
    out
}

/// Runs a statement whose parameters are `source` (`?1`) and then `args`.
async fn exec(conn: &mut SqliteConnection, sql: &str, source: &str, args: &[&str]) -> Result<(), StoreError> {
    let mut query = sqlx::query(sql).bind(source);
    for arg in args {
        query = query.bind(*arg);
    }
    query.execute(conn).await.map_err(backend)?;
    Ok(())
}

#[async_trait]
impl DirectoryDb for SqliteConnection {
    async fn load_entries(&mut self, source: &str, sync_ids: &[&str]) -> Result<Vec<EntryRow>, StoreError> {
        sqlx::query_as(
            "SELECT sync_id, kind, dn, dn_key, name, account_id FROM directory_entries
             WHERE source = ?1 AND sync_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(source)
        .bind(json_list(sync_ids))
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn linked_subjects(&mut self, source: &str, subjects: &[&str]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT subject FROM account_links
             WHERE provider = ?1 AND subject IN (SELECT value FROM json_each(?2))",
        )
        .bind(source)
        .bind(json_list(subjects))
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn held_login_keys(&mut self, keys: &[&str]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT login_key FROM accounts WHERE login_key IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_list(keys))
        .fetch_all(self)
        .await
        .map_err(backend)
    }

    async fn delete_entry(&mut self, source: &str, sync_id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM directory_entries WHERE source = ?1 AND sync_id = ?2";
        exec(self, sql, source, &[sync_id]).await
    }

    async fn save_entry(&mut self, source: &str, sync_id: &str, entry: &Entry) -> Result<(), StoreError> {
        let sql = "INSERT INTO directory_entries (source, sync_id, kind, dn, dn_key, name, account_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (source, sync_id) DO UPDATE SET
               kind = excluded.kind, dn = excluded.dn, dn_key = excluded.dn_key,
               name = excluded.name, account_id = excluded.account_id";
        entry_upsert(sql, source, sync_id, entry)
            .execute(self)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_accounts(&mut self, users: &[&DirectoryUser]) -> Result<Vec<(i64, String)>, StoreError> {
        let now = ops::to_nanos(std::time::SystemTime::now())?;
        let mut created = Vec::with_capacity(users.len());
        for chunk in users.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO accounts (login, login_key, email, email_key, display_name, disabled, created_at) \
                 VALUES {} RETURNING id, login_key",
                rows("(?, ?, ?, ?, ?, ?, ?)", chunk.len())
            );
            let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
            for user in chunk {
                query = query
                    .bind(user.login.as_str())
                    .bind(ops::fold(&user.login))
                    .bind(user.email.as_deref())
                    .bind(user.email.as_deref().map(ops::fold))
                    .bind(user.display_name.as_deref())
                    .bind(!user.enabled)
                    .bind(now);
            }
            created.extend(query.fetch_all(&mut *self).await.map_err(backend)?);
        }
        Ok(created)
    }

    async fn insert_links(&mut self, source: &str, links: &[(&str, i64)]) -> Result<(), StoreError> {
        for chunk in links.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO account_links (provider, subject, account_id) VALUES {}",
                rows("(?, ?, ?)", chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for (subject, account) in chunk {
                query = query.bind(source).bind(*subject).bind(*account);
            }
            query.execute(&mut *self).await.map_err(backend)?;
        }
        Ok(())
    }

    async fn insert_user_entries(
        &mut self,
        source: &str,
        entries: &[NewUserEntry<'_>],
    ) -> Result<(), StoreError> {
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO directory_entries (source, sync_id, kind, dn, dn_key, name, account_id) VALUES {}",
                rows("(?, ?, 'user', ?, ?, ?, ?)", chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for (sync_id, dn, dn_key, login, account) in chunk {
                query = query
                    .bind(source)
                    .bind(*sync_id)
                    .bind(*dn)
                    .bind(dn_key.as_str())
                    .bind(*login)
                    .bind(*account);
            }
            query.execute(&mut *self).await.map_err(backend)?;
        }
        Ok(())
    }

    async fn owned_by_entry(&mut self, source: &str, account: i64) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM directory_entries WHERE source = ?1 AND kind = 'user' AND account_id = ?2",
        )
        .bind(source)
        .bind(account)
        .fetch_optional(self)
        .await
        .map_err(backend)?;
        Ok(found.is_some())
    }

    async fn relink(&mut self, source: &str, account: i64, stable_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM account_links WHERE provider = ?1 AND account_id = ?2")
            .bind(source)
            .bind(account)
            .execute(&mut *self)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO account_links (provider, subject, account_id) VALUES (?1, ?2, ?3)")
            .bind(source)
            .bind(stable_id)
            .bind(account)
            .execute(self)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn move_memberships(&mut self, source: &str, old: &str, new: &str) -> Result<(), StoreError> {
        let sql = "UPDATE OR IGNORE directory_members SET member_dn_key = ?3
                 WHERE source = ?1 AND member_dn_key = ?2";
        exec(self, sql, source, &[old, new]).await?;
        self.drop_memberships(source, old).await
    }

    async fn drop_memberships(&mut self, source: &str, member: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM directory_members WHERE source = ?1 AND member_dn_key = ?2";
        exec(self, sql, source, &[member]).await
    }

    async fn members(&mut self, source: &str, group: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT member_dn_key FROM directory_members WHERE source = ?1 AND group_sync_id = ?2",
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
        let sql = "DELETE FROM directory_members WHERE source = ?1 AND group_sync_id = ?2
                 AND member_dn_key IN (SELECT value FROM json_each(?3))";
        exec(self, sql, source, &[group, &json_list(members)]).await
    }

    async fn add_members(&mut self, source: &str, group: &str, members: &[&str]) -> Result<(), StoreError> {
        let sql = "INSERT INTO directory_members (source, group_sync_id, member_dn_key)
                 SELECT ?1, ?2, value FROM json_each(?3)";
        exec(self, sql, source, &[group, &json_list(members)]).await
    }

    async fn entries_of_kind(&mut self, source: &str, kind: EntryKind) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT sync_id FROM directory_entries WHERE source = ?1 AND kind = ?2")
            .bind(source)
            .bind(kind_name(kind))
            .fetch_all(self)
            .await
            .map_err(backend)
    }

    async fn member_owners(&mut self, source: &str, member_keys: &[&str]) -> Result<Vec<i64>, StoreError> {
        // The list drives the join (CROSS JOIN keeps that order) and each key is
        // an index lookup: without statistics SQLite would rather scan the
        // source's entries once per key.
        sqlx::query_scalar(
            "SELECT u.account_id FROM json_each(?2) AS wanted
             CROSS JOIN directory_entries AS u INDEXED BY directory_entries_dn
               ON u.source = ?1 AND u.kind = 'user' AND u.dn_key = wanted.value
             WHERE u.account_id IS NOT NULL",
        )
        .bind(source)
        .bind(json_list(member_keys))
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
            "SELECT 0, u.account_id, g.name FROM json_each(?2) AS wanted
             CROSS JOIN directory_entries AS u
               ON u.account_id = wanted.value AND u.source = ?1 AND u.kind = 'user'
             CROSS JOIN directory_members AS m ON m.source = u.source AND m.member_dn_key = u.dn_key
             CROSS JOIN directory_entries AS g ON g.source = m.source AND g.sync_id = m.group_sync_id
             UNION ALL
             SELECT 1, account_id, role FROM account_mapped_roles
             WHERE provider = ?1 AND account_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(source)
        .bind(json_list(accounts))
        .fetch_all(self)
        .await
        .map_err(backend)
    }
}

crate::account::directory::account_ops!(SqliteConnection, ops, insert_account_with_free_link);
