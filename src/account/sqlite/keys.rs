//! Public keys of accounts (`account_keys`), for key-based login.

use std::time::SystemTime;

use sqlx::{Row, SqliteConnection};

use super::ops::{backend, from_nanos, row_id, to_nanos};
use crate::account::{
    KeyFamily, KeyId, MAX_KEYS_PER_ACCOUNT, MAX_REVOKED_KEYS_KEPT, NewPublicKey, PublicKey,
};
use crate::error::OtherError;
use crate::{AccountId, StoreError};

const SELECT: &str = "SELECT id, account_id, family, spki, label, created_at, revoked_at FROM account_keys";

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<PublicKey, StoreError> {
    let id: i64 = row.try_get(0).map_err(backend)?;
    let account: i64 = row.try_get(1).map_err(backend)?;
    let family: String = row.try_get(2).map_err(backend)?;
    let family = KeyFamily::from_name(&family)
        .ok_or_else(|| StoreError::Backend(OtherError::msg("account_keys holds an unknown key family")))?;
    let created_at: i64 = row.try_get(5).map_err(backend)?;
    let revoked_at: Option<i64> = row.try_get(6).map_err(backend)?;
    Ok(PublicKey {
        id: KeyId(id.to_string()),
        account: AccountId::from(account.to_string()),
        family,
        spki: row.try_get(3).map_err(backend)?,
        label: row.try_get(4).map_err(backend)?,
        created_at: from_nanos(created_at),
        revoked_at: revoked_at.map(from_nanos),
    })
}

/// The row id of an existing account.
async fn account_row(conn: &mut SqliteConnection, account: &AccountId) -> Result<i64, StoreError> {
    let id = row_id(account).ok_or(StoreError::NotFound)?;
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    found.ok_or(StoreError::NotFound)
}

/// Registers a key (see [`UserStore::add_public_key`](crate::account::UserStore::add_public_key)).
pub(crate) async fn add_public_key(
    conn: &mut SqliteConnection,
    account: &AccountId,
    key: &NewPublicKey,
) -> Result<PublicKey, StoreError> {
    key.check()?;
    let account_id = account_row(conn, account).await?;
    let (active, same): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE revoked_at IS NULL), count(*) FILTER (WHERE spki = ?2) \
         FROM account_keys WHERE account_id = ?1",
    )
    .bind(account_id)
    .bind(&key.spki)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    if active.unsigned_abs() >= MAX_KEYS_PER_ACCOUNT as u64 {
        return Err(StoreError::TooManyKeys {
            max: MAX_KEYS_PER_ACCOUNT,
        });
    }
    if same > 0 {
        return Err(StoreError::Conflict(
            "this key is already registered to the account".into(),
        ));
    }
    let now = SystemTime::now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO account_keys (account_id, family, spki, label, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
    )
    .bind(account_id)
    .bind(key.family.as_str())
    .bind(&key.spki)
    .bind(key.label.as_deref())
    .bind(to_nanos(now)?)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "DELETE FROM account_keys WHERE id IN \
         (SELECT id FROM account_keys WHERE account_id = ?1 AND revoked_at IS NOT NULL \
          ORDER BY id DESC LIMIT -1 OFFSET ?2)",
    )
    .bind(account_id)
    .bind(MAX_REVOKED_KEYS_KEPT as i64)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(PublicKey {
        id: KeyId(id.to_string()),
        account: account.clone(),
        family: key.family,
        spki: key.spki.clone(),
        label: key.label.clone(),
        created_at: now,
        revoked_at: None,
    })
}

/// The account's keys, oldest first.
pub(crate) async fn public_keys(
    conn: &mut SqliteConnection,
    account: &AccountId,
) -> Result<Vec<PublicKey>, StoreError> {
    let account_id = account_row(conn, account).await?;
    let rows = sqlx::query(&format!("{SELECT} WHERE account_id = ?1 ORDER BY id LIMIT ?2"))
        .bind(account_id)
        .bind((MAX_KEYS_PER_ACCOUNT + MAX_REVOKED_KEYS_KEPT) as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    rows.iter().map(key_from_row).collect()
}

/// Revokes one of the account's keys (the first revocation time stays).
pub(crate) async fn revoke_public_key(
    conn: &mut SqliteConnection,
    account: &AccountId,
    key: &KeyId,
    at: SystemTime,
) -> Result<PublicKey, StoreError> {
    let account_id = account_row(conn, account).await?;
    let key_id = row_id(&AccountId::from(key.0.as_str())).ok_or(StoreError::NoSuchKey)?;
    sqlx::query(
        "UPDATE account_keys SET revoked_at = ?3 \
         WHERE id = ?1 AND account_id = ?2 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(account_id)
    .bind(to_nanos(at)?)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    let row = sqlx::query(&format!("{SELECT} WHERE id = ?1 AND account_id = ?2"))
        .bind(key_id)
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NoSuchKey)?;
    key_from_row(&row)
}
