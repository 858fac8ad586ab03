//! What the SQL stores (SQLite, PostgreSQL) share: how ids, names and times are
//! written to columns.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::error::ErrorKind;

use crate::error::OtherError;
use crate::{AccountId, StoreError};

/// The `login_key` / `email_key` of a name: Unicode lower-casing, as
/// [`MemoryUserStore`](crate::account::MemoryUserStore) compares names.
pub(crate) fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// The row id behind an [`AccountId`]: its canonical decimal text only, so `"01"`
/// or `" 1"` name no account rather than account 1.
pub(crate) fn row_id(id: &AccountId) -> Option<i64> {
    let n: i64 = id.0.parse().ok()?;
    (n > 0 && n.to_string() == id.as_str()).then_some(n)
}

pub(crate) fn account_id(row_id: i64) -> AccountId {
    AccountId::from(row_id.to_string())
}

/// A `SystemTime` as nanoseconds since the Unix epoch (negative before it).
pub(crate) fn to_nanos(at: SystemTime) -> Result<i64, StoreError> {
    let nanos = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).ok(),
        Err(before) => i64::try_from(before.duration().as_nanos()).ok().map(|n| -n),
    };
    nanos.ok_or_else(|| StoreError::Backend(OtherError::msg("timestamp outside the years 1677..2262")))
}

/// Like [`to_nanos`], saturating: for query bounds, where "before 1677" means "all".
pub(crate) fn to_nanos_saturating(at: SystemTime) -> i64 {
    to_nanos(at).unwrap_or(if at < UNIX_EPOCH { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_nanos(nanos: i64) -> SystemTime {
    let span = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + span
    } else {
        UNIX_EPOCH - span
    }
}

/// A backend error as a [`StoreError`]. SQLite's messages name constraints and
/// columns, never bound values, so no password hash can end up in one; the
/// PostgreSQL store reports only the message (its `detail`, which can quote a
/// value, is never read).
pub(crate) fn backend(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
            StoreError::Conflict(describe(&err))
        }
        // Every foreign key points at an account: it is gone.
        sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => StoreError::NotFound,
        _ => StoreError::backend(err),
    }
}

/// What went wrong, in the database's words when it was the database.
pub(crate) fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => format!("database: {}", db.message()),
        other => other.to_string(),
    }
}

/// Why a flow row was not taken, in the memory store's order: `found` is the
/// row's `(module, used, expires_at)`. On [`FlowError::Expired`] the caller
/// deletes the row.
pub(crate) fn refusal(found: Option<(String, bool, i64)>, module: &str, now: i64) -> crate::flow::FlowError {
    use crate::flow::FlowError;
    match found {
        None => FlowError::Unknown,
        Some((_, true, _)) => FlowError::Replayed,
        Some((owner, _, _)) if owner != module => FlowError::OtherModule,
        Some((_, _, expires_at)) if expires_at <= now => FlowError::Expired,
        Some(_) => FlowError::CookieMismatch,
    }
}

/// The key a replay id is stored under: its SHA-256, so ids of any length take
/// one fixed-size row (and no index refuses a long one).
pub(crate) fn replay_key(id: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

/// The flow a take's `RETURNING nonce, pkce_verifier, return_to, extra, client,
/// expires_at` row describes.
pub(crate) fn taken_flow<R>(
    row: &R,
    state: &str,
    module: &str,
    cookie_digest: [u8; 32],
) -> Result<crate::flow::PendingFlow, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let client: Option<String> = row.try_get(4)?;
    let expires_at: i64 = row.try_get(5)?;
    Ok(crate::flow::PendingFlow {
        state: state.to_owned(),
        nonce: row.try_get(0)?,
        pkce_verifier: row.try_get(1)?,
        return_to: row.try_get(2)?,
        module: module.to_owned(),
        expires_at: from_nanos(expires_at),
        cookie_digest,
        extra: row.try_get(3)?,
        client: client.and_then(|c| c.parse().ok()),
    })
}

/// The most pending redirect logins one client address may hold in an SQL
/// store by default.
pub const DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT: u32 = 1_000;

/// Every this many writes of one kind (failures, flows, replay ids), the SQL
/// stores delete the expired rows of that kind.
pub(crate) const PURGE_EVERY: u32 = 256;

/// Whether this write is one that also purges expired rows.
pub(crate) fn purge_due(counter: &AtomicU32) -> bool {
    counter
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(PURGE_EVERY)
}
