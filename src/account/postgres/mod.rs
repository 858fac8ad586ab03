//! The PostgreSQL store (feature `postgres`): accounts ([`UserStore`]), throttle
//! counters ([`AttemptStore`]), pending redirect logins
//! ([`FlowStore`](crate::flow::FlowStore)), the replay cache
//! ([`ReplayCache`](crate::flow::ReplayCache)) and, with the feature `sync`, the
//! directory-sync target ([`DirectoryTarget`](crate::sync::DirectoryTarget)), shared
//! by every replica of the host.
//!
//! ```no_run
//! use authchain::account::{NewAccount, PgOptions, PgStore, UserStore};
//!
//! # async fn demo() -> Result<(), authchain::StoreError> {
//! let store = PgStore::connect("postgres://authchain@db.internal/authchain", PgOptions::default()).await?;
//! let alice = store.create_account(NewAccount::new("Alice")).await?;
//! assert_eq!(store.find_by_login("ALICE", true).await?.map(|a| a.id), Some(alice.id));
//! # Ok(()) }
//! ```
//!
//! The schema ships in the crate (`migrations/postgres/`) and is brought up to
//! date by [`PgStore::connect`] (sqlx's migrator takes an advisory lock, so
//! replicas starting together migrate once). See `docs/stores.md` and
//! `docs/deployment.md`.

#[cfg(feature = "sync")]
mod directory;
mod keys;
mod ops;
mod state;

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::{
    DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT, backend, describe, from_nanos, purge_due, to_nanos,
    to_nanos_saturating,
};
use super::{
    Account, AttemptStore, FailureCount, HashLimits, KeyId, LoginUpdate, MAX_FAILURES_PER_KEY, NewAccount,
    NewPublicKey, PublicKey, UserStore,
};
use crate::error::OtherError;
use crate::{AccountId, StoreError};

/// The schema, embedded at compile time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Connections of a PostgreSQL store's pool by default.
pub const DEFAULT_PG_MAX_CONNECTIONS: u32 = 10;
/// The most failures a [`PgStore`] keeps in all (oldest dropped first).
pub const MAX_PG_FAILURE_ROWS: u64 = 1_000_000;
pub use ops::MAX_PG_NAME_BYTES;

/// How [`PgStore::connect`] connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// Connections in the pool (default [`DEFAULT_PG_MAX_CONNECTIONS`]; at least 1).
    pub max_connections: u32,
    /// How long a call waits for a connection, a new one included, before it
    /// fails with [`StoreError::Backend`] (default 5 s): a down or hung server
    /// answers logins with `Unavailable` instead of holding them.
    pub connect_timeout: Duration,
    /// The server-side `statement_timeout` of every connection (default 10 s).
    pub statement_timeout: Duration,
    /// Limits on the cost of password hashes written through the store.
    pub hash_limits: HashLimits,
    /// The most pending redirect logins one client address may hold (default
    /// [`DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT`]).
    pub max_pending_flows_per_client: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: DEFAULT_PG_MAX_CONNECTIONS,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            hash_limits: HashLimits::default(),
            max_pending_flows_per_client: DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT,
        }
    }
}

impl PgOptions {
    /// Sets the pool size (0 counts as 1).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Sets how long a call waits for a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the limits on written password hashes' costs.
    pub fn hash_limits(mut self, limits: HashLimits) -> Self {
        self.hash_limits = limits;
        self
    }
}

/// Accounts, throttle counters, pending logins, replay ids and sync cookies in a
/// PostgreSQL database, through a [`sqlx`] pool that reconnects by itself after a
/// server restart. Cloning is cheap and shares the pool.
///
/// Same semantics as the memory and SQLite stores. Every write is one
/// transaction; unique indexes decide races between replicas (two first logins
/// of one subject create one account: the loser gets [`StoreError::Conflict`]
/// and the chain then finds the winner's account). Account ids are the decimal
/// row ids, never reused.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    counters: Arc<Counters>,
    hash_limits: HashLimits,
    max_pending_flows_per_client: u32,
}

#[derive(Debug)]
struct Counters {
    max_failure_rows: u64,
    max_failures_per_key: u64,
    failures: AtomicU32,
    flows: AtomicU32,
    replays: AtomicU32,
}

impl Counters {
    fn new(max_failure_rows: u64, max_failures_per_key: u64) -> Self {
        Counters {
            max_failure_rows: max_failure_rows.max(1),
            max_failures_per_key: max_failures_per_key.max(1),
            failures: AtomicU32::new(0),
            flows: AtomicU32::new(0),
            replays: AtomicU32::new(0),
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`) and
    /// brings its schema up to date. The URL holds a password: read it from a
    /// secret (see [`SecretSource`](crate::SecretSource)); errors never quote it.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|_| StoreError::Backend(OtherError::msg("not a valid postgres:// URL")))?;
        let statement_timeout = format!("{}ms", options.statement_timeout.as_millis().max(1));
        let connect = connect.options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Backend(OtherError::msg(format!("cannot connect: {}", describe(&e)))))?;
        let mut store = PgStore::from_pool(pool).await?;
        store.hash_limits = options.hash_limits;
        store.max_pending_flows_per_client = options.max_pending_flows_per_client.max(1);
        Ok(store)
    }

    /// Uses a pool the host configured and brings the schema up to date. The
    /// store keeps its schema version in sqlx's `_sqlx_migrations` table: give it
    /// a database (or a `search_path` schema) of its own.
    pub async fn from_pool(pool: PgPool) -> Result<PgStore, StoreError> {
        MIGRATOR.run(&pool).await.map_err(StoreError::backend)?;
        Ok(PgStore {
            pool,
            counters: Arc::new(Counters::new(MAX_PG_FAILURE_ROWS, MAX_FAILURES_PER_KEY as u64)),
            hash_limits: HashLimits::default(),
            max_pending_flows_per_client: DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT,
        })
    }

    /// Bounds of the throttle counters: at most `max_rows` failures in all and
    /// `max_per_key` per key (defaults [`MAX_PG_FAILURE_ROWS`],
    /// [`MAX_FAILURES_PER_KEY`]).
    pub fn with_attempt_bounds(mut self, max_rows: u64, max_per_key: u64) -> PgStore {
        self.counters = Arc::new(Counters::new(max_rows, max_per_key));
        self
    }

    /// The connection pool: for health checks and inspection.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin().await.map_err(backend)
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.pool.acquire().await.map_err(backend)
    }

    /// Number of accounts.
    pub async fn account_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(n.unsigned_abs())
    }

    /// Deletes every expired pending login, replay id and throttle failure older
    /// than `failure_window` now (the stores also do this every few hundred
    /// writes). Returns the number of rows deleted.
    pub async fn purge_expired(&self, failure_window: Duration) -> Result<u64, StoreError> {
        let now = SystemTime::now();
        let mut deleted = state::purge_flows(&self.pool, now).await?;
        deleted += state::purge_replay_ids(&self.pool, now).await?;
        let cutoff = to_nanos_saturating(now.checked_sub(failure_window).unwrap_or(SystemTime::UNIX_EPOCH));
        deleted += sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(deleted)
    }

    /// The directory synchroniser's cookie for `source`.
    pub async fn sync_cookie(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT cookie FROM sync_state WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    /// Stores (`Some`) or forgets (`None`) the cookie of `source`.
    pub async fn set_sync_cookie(&self, source: &str, cookie: Option<&[u8]>) -> Result<(), StoreError> {
        ops::set_sync_cookie(&mut *self.conn().await?, source, cookie).await
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        ops::load_account(&mut *self.conn().await?, id).await
    }

    async fn find_by_login(
        &self,
        login: &str,
        case_insensitive: bool,
    ) -> Result<Option<Account>, StoreError> {
        ops::find_by_login(&mut *self.conn().await?, login, case_insensitive).await
    }

    async fn find_by_email(
        &self,
        email: &str,
        case_insensitive: bool,
    ) -> Result<Option<Account>, StoreError> {
        ops::find_by_email(&mut *self.conn().await?, email, case_insensitive).await
    }

    async fn find_by_link(&self, provider: &str, subject: &str) -> Result<Option<Account>, StoreError> {
        ops::find_by_link(&mut *self.conn().await?, provider, subject).await
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
        ops::check_text("password_hash", hash)?;
        let sql = "UPDATE accounts SET password_hash = $2 WHERE id = $1";
        ops::set_column(&mut *self.conn().await?, id, sql, hash).await
    }

    async fn set_disabled(&self, id: &AccountId, disabled: bool) -> Result<(), StoreError> {
        let sql = "UPDATE accounts SET disabled = $2 WHERE id = $1";
        ops::set_column(&mut *self.conn().await?, id, sql, disabled).await
    }

    async fn set_local_role(&self, id: &AccountId, role: &str, granted: bool) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        ops::set_local_role(&mut tx, id, role, granted).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_accounts(&self, after: Option<&str>, limit: usize) -> Result<Vec<Account>, StoreError> {
        ops::list_accounts(&mut *self.conn().await?, after, limit).await
    }

    async fn unlink(&self, id: &AccountId, provider: &str) -> Result<usize, StoreError> {
        let mut tx = self.write().await?;
        let removed = ops::unlink(&mut tx, id, provider).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn add_public_key(&self, account: &AccountId, key: NewPublicKey) -> Result<PublicKey, StoreError> {
        let mut tx = self.write().await?;
        let stored = keys::add_public_key(&mut tx, account, &key).await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn public_keys(&self, account: &AccountId) -> Result<Vec<PublicKey>, StoreError> {
        let mut tx = self.write().await?;
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
}

#[async_trait]
impl AttemptStore for PgStore {
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError> {
        let (count, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(at) FROM login_failures WHERE key = $1 AND at >= $2")
                .bind(key.as_bytes())
                .bind(to_nanos_saturating(since))
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        Ok(FailureCount {
            count: u32::try_from(count).unwrap_or(u32::MAX),
            oldest: oldest.map(from_nanos),
        })
    }

    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError> {
        let bounds = &self.counters;
        let at_nanos = to_nanos(at)?;
        let cutoff = to_nanos_saturating(at.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH));
        let purge = purge_due(&bounds.failures);
        // The key's rows before the window go, the failure is added, and the key's
        // oldest rows beyond the bound go.
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM login_failures WHERE key = $1 AND at < $2")
            .bind(key.as_bytes())
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
            .bind(key.as_bytes())
            .bind(at_nanos)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "DELETE FROM login_failures WHERE id IN \
             (SELECT id FROM login_failures WHERE key = $1 ORDER BY at DESC, id DESC OFFSET $2)",
        )
        .bind(key.as_bytes())
        .bind(i64::try_from(bounds.max_failures_per_key).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if purge {
            sqlx::query("DELETE FROM login_failures WHERE at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query(
                "DELETE FROM login_failures WHERE id IN \
                 (SELECT id FROM login_failures ORDER BY at DESC, id DESC OFFSET $1)",
            )
            .bind(i64::try_from(bounds.max_failure_rows).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key.as_bytes())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
