//! What the SQL stores (SQLite, PostgreSQL) share: how ids, names and times are
//! written to columns.

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
    (n > 0 && n.to_string() == id.0).then_some(n)
}

pub(crate) fn account_id(row_id: i64) -> AccountId {
    AccountId(row_id.to_string())
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

