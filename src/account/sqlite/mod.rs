//! The SQLite store (feature `sqlite`): accounts ([`UserStore`]), throttle counters
//! ([`AttemptStore`]), pending redirect logins ([`FlowStore`](crate::flow::FlowStore)),
//! the replay cache ([`ReplayCache`](crate::flow::ReplayCache)) and directory-sync
//! cookies in one embedded database file.
//!
//! ```
//! use authchain::account::{NewAccount, SqliteStore, UserStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("authchain-doc-{}", std::process::id()));
//! let store = SqliteStore::open(dir.join("accounts.sqlite3")).await?;
//! let alice = store.create_account(NewAccount::new("Alice")).await?;
//! let found = store.find_by_login("ALICE", true).await?.expect("case-insensitive match");
//! assert_eq!(found.id, alice.id);
//! # store.close().await;
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(()) }
//! ```
//!
//! The schema ships in the crate (`migrations/sqlite/`) and is brought up to date by
//! every constructor. See `docs/stores.md`.

#[cfg(feature = "sync")]
mod directory;
mod keys;
pub(crate) mod ops;
mod state;

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use super::{
    Account, AttemptStore, DEFAULT_MAX_CONNECTIONS, FailureCount, HashLimits, KeyId, LoginUpdate,
    MAX_FAILURES_PER_KEY, NewAccount, NewPublicKey, PublicKey, Synchronous, UserStore,
};
use crate::error::OtherError;
use crate::{AccountId, StoreError};
use ops::backend;

/// The schema, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How [`SqliteStore::open_with`] opens a file; [`SqliteStore::open`] uses the
/// defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// `synchronous` (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Connections in the pool (default [`DEFAULT_MAX_CONNECTIONS`]; at least 1).
    pub max_connections: u32,
    /// Limits on the cost of password hashes written through the store (default
    /// [`HashLimits::default`]); see [`SqliteStore::with_hash_limits`].
    pub hash_limits: HashLimits,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            hash_limits: HashLimits::default(),
        }
    }
}

impl SqliteOptions {
    /// Sets `synchronous`.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets the limits on written password hashes' costs.
    pub fn hash_limits(mut self, limits: HashLimits) -> Self {
        self.hash_limits = limits;
        self
    }

    /// Sets the pool size (0 counts as 1).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }
}
/// The most failures [`SqliteStore`] keeps in all (oldest dropped first).
pub const MAX_FAILURE_ROWS: u64 = 1_000_000;
/// Every this many recorded failures, expired ones of every key are dropped.
const PRUNE_EVERY: u32 = 256;

/// Accounts, throttle counters and sync cookies in an SQLite database, through a
/// [`sqlx`] connection pool. Cloning is cheap and shares the pool.
///
/// Same semantics as [`MemoryUserStore`](super::MemoryUserStore) and
/// [`MemoryAttemptStore`](super::MemoryAttemptStore); every write is one
/// transaction (`BEGIN IMMEDIATE`, so concurrent writers wait for each other for
/// up to 10 s instead of failing). Account ids are the decimal row ids (`"1"`,
/// `"2"`, ...), never reused after a deletion.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's writers, one at a time in arrival order. SQLite's busy
    /// handler retries with sleeps and no queue: under many concurrent writers on
    /// a slow disk one writer could lose for the whole busy timeout and fail with
    /// "database is locked" (the soak in tests/load.rs found it). Other processes
    /// still meet on the busy timeout.
    writer: Arc<tokio::sync::Mutex<()>>,
    attempts: Arc<AttemptBounds>,
    hash_limits: HashLimits,
    /// How [`SqliteStore::open_with`] opened the file (`None` for a host's pool
    /// or memory): the directory synchroniser opens its own connection with
    /// these options (see `directory.rs`).
    #[cfg_attr(not(feature = "sync"), allow(dead_code))]
    file: Option<Arc<SqliteConnectOptions>>,
    /// The directory synchroniser's connection, opened on its first batch.
    #[cfg(feature = "sync")]
    sync_writer: Arc<directory::SyncWriter>,
}

#[derive(Debug)]
struct AttemptBounds {
    max_rows: u64,
    max_per_key: u64,
    recorded: AtomicU32,
    /// Flows and replay ids written (every few hundred, expired ones are purged).
    flows: AtomicU32,
    replays: AtomicU32,
}

/// Next to the database file, `<file>.open-lock`: held while a store opens it.
const OPEN_LOCK_SUFFIX: &str = ".open-lock";

/// An exclusive advisory lock on `path` (created if missing), held until the file
/// is dropped.
async fn lock_file(path: std::path::PathBuf) -> std::io::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if missing) the database file
    /// at `path`, in WAL mode with foreign keys on and `synchronous = FULL`, and
    /// brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default()).await
    }

    /// [`open`](SqliteStore::open) with these options.
    pub async fn open_with(
        path: impl AsRef<Path>,
        settings: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref();
        let cannot = |what: String| {
            StoreError::Backend(OtherError::msg(format!("cannot open {}: {what}", path.display())))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| cannot(e.to_string()))?;
        }
        // No `journal_mode` here: switching to WAL takes a lock SQLite's busy
        // timeout does not wait for, so only the first connection does it (WAL
        // then stays in the file) and the pool's connections never run it.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(match settings.synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // Processes opening a new file at the same moment would race: switching
        // it to WAL takes a lock SQLite's busy timeout does not wait for, and two
        // migrators could both apply a migration. One opens at a time.
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(OPEN_LOCK_SUFFIX);
        let _opening = lock_file(lock_path.into())
            .await
            .map_err(|e| cannot(format!("cannot lock: {e}")))?;
        // The switch to WAL, on one connection, before the pool opens any. A pool
        // connection that ran it while others wrote met "database is locked"
        // (tests/load.rs found it: ~1 login in 5,000).
        let first = SqliteConnection::connect_with(&options.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(|e| cannot(ops::describe(&e)))?;
        first.close().await.map_err(|e| cannot(ops::describe(&e)))?;
        let connections = settings.max_connections.max(1);
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .min_connections(connections)
            .idle_timeout(None)
            .max_lifetime(None)
            // A file connection does not go stale like a network one: no ping (a
            // round trip to the connection's thread) before every use.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| cannot(ops::describe(&e)))?;
        let mut store = SqliteStore::from_pool(pool)
            .await?
            .with_hash_limits(settings.hash_limits);
        store.file = Some(Arc::new(options));
        Ok(store)
    }

    /// A private database in memory (one connection, gone when the store is
    /// dropped): for tests and examples.
    pub async fn in_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(backend)?
            .foreign_keys(true);
        // One connection that never expires: the database lives as long as it does.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(backend)?;
        SqliteStore::from_pool(pool).await
    }

    /// Uses a pool the host configured (its connections must have foreign keys
    /// on, sqlx's default) and brings the schema up to date. The store keeps its
    /// schema version in sqlx's `_sqlx_migrations` table: give it a database file
    /// of its own rather than one another sqlx migrator manages.
    pub async fn from_pool(pool: SqlitePool) -> Result<SqliteStore, StoreError> {
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .map_err(backend)?;
        if foreign_keys != 1 {
            return Err(StoreError::Backend(OtherError::msg(
                "the pool's connections must have foreign keys on (SqliteConnectOptions::foreign_keys)",
            )));
        }
        MIGRATOR.run(&pool).await.map_err(StoreError::backend)?;
        Ok(SqliteStore {
            pool,
            writer: Arc::default(),
            attempts: Arc::new(AttemptBounds {
                max_rows: MAX_FAILURE_ROWS,
                max_per_key: MAX_FAILURES_PER_KEY as u64,
                recorded: AtomicU32::new(0),
                flows: AtomicU32::new(0),
                replays: AtomicU32::new(0),
            }),
            hash_limits: HashLimits::default(),
            file: None,
            #[cfg(feature = "sync")]
            sync_writer: Arc::default(),
        })
    }

    /// Checks password hashes written through the store against `limits`
    /// (default [`HashLimits::default`]): a hash over them is refused with
    /// [`StoreError::HashCost`] and nothing is written.
    pub fn with_hash_limits(mut self, limits: HashLimits) -> SqliteStore {
        self.hash_limits = limits;
        self
    }

    /// Bounds of the throttle counters: at most `max_rows` failures in all (the
    /// oldest are dropped first) and `max_per_key` per key. Defaults:
    /// [`MAX_FAILURE_ROWS`] and [`MAX_FAILURES_PER_KEY`].
    pub fn with_attempt_bounds(mut self, max_rows: u64, max_per_key: u64) -> SqliteStore {
        self.attempts = Arc::new(AttemptBounds {
            max_rows: max_rows.max(1),
            max_per_key: max_per_key.max(1),
            recorded: AtomicU32::new(0),
            flows: AtomicU32::new(0),
            replays: AtomicU32::new(0),
        });
        self
    }

    /// The connection pool: for health checks and inspection. Write through the
    /// store's methods, which keep its invariants.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction (`BEGIN IMMEDIATE`: the write lock is taken at once, so
    /// two writers queue on the busy timeout instead of one failing with "database
    /// is locked" when it upgrades a read lock).
    pub(crate) async fn write(&self) -> Result<WriteTx, StoreError> {
        let turn = self.write_turn().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// This process's turn to write (see `writer`): held until the write is done.
    pub(crate) async fn write_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }

    /// How the store opened its file, if it did (not a host's pool, not memory).
    #[cfg(feature = "sync")]
    pub(crate) fn file_options(&self) -> Option<&SqliteConnectOptions> {
        self.file.as_deref()
    }

    /// Closes every connection (waiting for running statements).
    pub async fn close(&self) {
        #[cfg(feature = "sync")]
        self.sync_writer.close().await;
        self.pool.close().await;
    }

    /// Number of accounts.
    pub async fn account_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        ops::count_accounts(&mut conn).await
    }

    /// Replaces an account's login name, email address and display name:
    /// [`StoreError::Conflict`] when the login name (compared case-insensitively) is
    /// another account's.
    pub async fn update_profile(
        &self,
        id: &AccountId,
        login: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::update_profile(&mut tx, id, login, email, display_name).await?;
        tx.commit().await.map_err(backend)
    }

    /// Deletes an account with its links and roles. Its id is never given out again.
    pub async fn delete_account(&self, id: &AccountId) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::delete_account(&mut tx, id).await?;
        tx.commit().await.map_err(backend)
    }

    /// Replaces the roles that `provider`'s mapping gives an account (what a login
    /// through `provider` does, without the login): for a directory group change.
    pub async fn replace_mapped_roles(
        &self,
        id: &AccountId,
        provider: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::replace_mapped_roles(&mut tx, id, provider, roles).await?;
        tx.commit().await.map_err(backend)
    }

    /// The directory synchroniser's cookie for `source` (where it stopped).
    pub async fn sync_cookie(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        ops::sync_cookie(&mut conn, source).await
    }

    /// Stores (`Some`) or forgets (`None`: the next sync starts with a full
    /// refresh) the cookie of `source`.
    pub async fn set_sync_cookie(&self, source: &str, cookie: Option<&[u8]>) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::set_sync_cookie(&mut tx, source, cookie).await?;
        tx.commit().await.map_err(backend)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        ops::load_account(&mut conn, id).await
    }

    async fn find_by_login(
        &self,
        login: &str,
        case_insensitive: bool,
    ) -> Result<Option<Account>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        let key = ops::fold(login);
        if case_insensitive {
            ops::find_by_login_key(&mut conn, &key).await
        } else {
            ops::find_by_login(&mut conn, &key, login, false).await
        }
    }

    async fn find_by_email(
        &self,
        email: &str,
        case_insensitive: bool,
    ) -> Result<Option<Account>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        ops::find_by_email(&mut conn, email, case_insensitive).await
    }

    async fn find_by_link(&self, provider: &str, subject: &str) -> Result<Option<Account>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        ops::find_by_link(&mut conn, provider, subject).await
    }

    async fn create_account(&self, account: NewAccount) -> Result<Account, StoreError> {
        if let Some(hash) = &account.password_hash {
            self.hash_limits.check_stored(hash)?;
        }
        let mut tx = self.write().await?;
        let account = ops::insert_account(&mut tx, &account).await?;
        tx.commit().await.map_err(backend)?;
        Ok(account)
    }

    async fn record_login(&self, update: LoginUpdate) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::record_login(&mut tx, &update).await?;
        tx.commit().await.map_err(backend)
    }

    async fn set_password_hash(&self, id: &AccountId, hash: &str) -> Result<(), StoreError> {
        self.hash_limits.check_stored(hash)?;
        let mut tx = self.write().await?;
        ops::set_password_hash(&mut tx, id, hash).await?;
        tx.commit().await.map_err(backend)
    }

    async fn set_disabled(&self, id: &AccountId, disabled: bool) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::set_disabled(&mut tx, id, disabled).await?;
        tx.commit().await.map_err(backend)
    }

    async fn set_local_role(&self, id: &AccountId, role: &str, granted: bool) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::set_local_role(&mut tx, id, role, granted).await?;
        tx.commit().await.map_err(backend)
    }

    async fn add_public_key(&self, account: &AccountId, key: NewPublicKey) -> Result<PublicKey, StoreError> {
        key.check()?;
        let mut tx = self.write().await?;
        let stored = keys::add_public_key(&mut tx, account, &key).await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn public_keys(&self, account: &AccountId) -> Result<Vec<PublicKey>, StoreError> {
        // One snapshot: the existence check and the rows.
        let mut tx = self.pool().begin().await.map_err(backend)?;
        let keys = keys::public_keys(&mut tx, account).await?;
        tx.commit().await.map_err(backend)?;
        Ok(keys)
    }

    async fn revoke_public_key(
        &self,
        account: &AccountId,
        key: &KeyId,
        at: SystemTime,
    ) -> Result<PublicKey, StoreError> {
        let mut tx = self.write().await?;
        let revoked = keys::revoke_public_key(&mut tx, account, key, at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(revoked)
    }

    async fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, StoreError> {
        let mut conn = self.pool().acquire().await.map_err(backend)?;
        ops::list_accounts(&mut conn, after, limit).await
    }

    async fn unlink(&self, id: &AccountId, provider: &str) -> Result<usize, StoreError> {
        let mut tx = self.write().await?;
        let removed = ops::unlink(&mut tx, id, provider).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }
}

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError> {
        let (count, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(at) FROM login_failures WHERE key = ?1 AND at >= ?2")
                .bind(key)
                .bind(ops::to_nanos_saturating(since))
                .fetch_one(self.pool())
                .await
                .map_err(backend)?;
        Ok(FailureCount {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            oldest: oldest.map(ops::from_nanos),
        })
    }

    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError> {
        let bounds = &self.attempts;
        let at_nanos = ops::to_nanos(at)?;
        let cutoff = ops::to_nanos_saturating(at.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH));
        let prune_all = bounds
            .recorded
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY);
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM login_failures WHERE key = ?1 AND at < ?2")
            .bind(key)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO login_failures (key, at) VALUES (?1, ?2)")
            .bind(key)
            .bind(at_nanos)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM login_failures WHERE key = ?1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let excess = held.unsigned_abs().saturating_sub(bounds.max_per_key);
        if excess > 0 {
            sqlx::query(
                "DELETE FROM login_failures WHERE rowid IN \
                 (SELECT rowid FROM login_failures WHERE key = ?1 ORDER BY at, rowid LIMIT ?2)",
            )
            .bind(key)
            .bind(i64::try_from(excess).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        if prune_all {
            // Expired failures of keys nobody retried, then the global bound.
            sqlx::query("DELETE FROM login_failures WHERE at < ?1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM login_failures")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            let excess = total.unsigned_abs().saturating_sub(bounds.max_rows);
            if excess > 0 {
                sqlx::query(
                    "DELETE FROM login_failures WHERE rowid IN \
                     (SELECT rowid FROM login_failures ORDER BY at, rowid LIMIT ?1)",
                )
                .bind(i64::try_from(excess).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM login_failures WHERE key = ?1")
            .bind(key)
            .execute(self.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// A write transaction holding this process's turn to write until it ends.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Commits, then gives the turn to the next writer.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}
