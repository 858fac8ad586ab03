//! One function per account write or lookup, on a bare connection, so that a
//! caller holding a transaction (the store's own methods, the directory
//! synchroniser's batches) can combine several of them with its own statements and
//! commit them as one.
//!
//! Every write checks before it writes: when it returns [`StoreError::Conflict`] or
//! [`StoreError::NotFound`] it has changed nothing, so a caller may go on with the
//! same transaction. After [`StoreError::Backend`] the caller must roll back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::account::{Account, ExternalLink, LoginUpdate, NewAccount};
use crate::{AccountId, StoreError};

pub(crate) use crate::account::sql::{
    account_id, backend, describe, fold, from_nanos, row_id, to_nanos, to_nanos_saturating,
};

/// [`backend`], with a caller's wording for a unique violation.
fn conflict_as(message: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| match backend(err) {
        StoreError::Conflict(_) => StoreError::Conflict(message()),
        other => other,
    }
}

/// Whole accounts (with links and roles) for the ids a `target` query selects, in
/// one statement, so the parts are read from one snapshot without a transaction.
/// `?1`, `?2`, ... of the target query are bound by the caller.
macro_rules! load_sql {
    ($target:literal) => {
        concat!(
            "WITH target(id) AS (",
            $target,
            ") \
             SELECT 0, id, login, email, display_name, password_hash, disabled, created_at, last_login \
               FROM accounts WHERE id IN (SELECT id FROM target) \
             UNION ALL SELECT 1, account_id, provider, subject, NULL, NULL, NULL, NULL, NULL \
               FROM account_links WHERE account_id IN (SELECT id FROM target) \
             UNION ALL SELECT 2, account_id, role, NULL, NULL, NULL, NULL, NULL, NULL \
               FROM account_roles WHERE account_id IN (SELECT id FROM target) \
             UNION ALL SELECT 3, account_id, provider, NULL, NULL, NULL, NULL, NULL, NULL \
               FROM account_role_sources WHERE account_id IN (SELECT id FROM target) \
             UNION ALL SELECT 4, account_id, provider, role, NULL, NULL, NULL, NULL, NULL \
               FROM account_mapped_roles WHERE account_id IN (SELECT id FROM target)"
        )
    };
}

/// Assembles the rows of a [`load_sql!`] statement into accounts, by id.
fn assemble(rows: Vec<SqliteRow>) -> Result<BTreeMap<i64, Account>, StoreError> {
    let mut accounts = BTreeMap::new();
    let mut parts = Vec::new();
    for row in rows {
        let kind: i64 = row.try_get(0).map_err(backend)?;
        let id: i64 = row.try_get(1).map_err(backend)?;
        if kind != 0 {
            parts.push((kind, id, row));
            continue;
        }
        let created_at: i64 = row.try_get(7).map_err(backend)?;
        let last_login: Option<i64> = row.try_get(8).map_err(backend)?;
        accounts.insert(
            id,
            Account {
                id: account_id(id),
                login: row.try_get(2).map_err(backend)?,
                email: row.try_get(3).map_err(backend)?,
                display_name: row.try_get(4).map_err(backend)?,
                password_hash: row.try_get(5).map_err(backend)?,
                disabled: row.try_get(6).map_err(backend)?,
                roles: BTreeSet::new(),
                mapped_roles: BTreeMap::new(),
                links: BTreeSet::new(),
                created_at: from_nanos(created_at),
                last_login: last_login.map(from_nanos),
            },
        );
    }
    for (kind, id, row) in parts {
        let Some(account) = accounts.get_mut(&id) else {
            continue;
        };
        let first: String = row.try_get(2).map_err(backend)?;
        match kind {
            1 => {
                account.links.insert(ExternalLink {
                    provider: first,
                    subject: row.try_get(3).map_err(backend)?,
                });
            }
            2 => {
                account.roles.insert(first);
            }
            3 => {
                account.mapped_roles.entry(first).or_default();
            }
            _ => {
                let role: String = row.try_get(3).map_err(backend)?;
                account.mapped_roles.entry(first).or_default().insert(role);
            }
        }
    }
    Ok(accounts)
}

fn at_most_one(accounts: BTreeMap<i64, Account>) -> Result<Option<Account>, StoreError> {
    let mut accounts = accounts.into_values();
    match (accounts.next(), accounts.next()) {
        (None, _) => Ok(None),
        (Some(account), None) => Ok(Some(account)),
        (Some(_), Some(_)) => Err(StoreError::Ambiguous),
    }
}

/// The account with this id.
pub(crate) async fn load_account(
    conn: &mut SqliteConnection,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    let Some(id) = row_id(id) else {
        return Ok(None);
    };
    let rows = sqlx::query(load_sql!("SELECT ?1"))
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    at_most_one(assemble(rows)?)
}

/// The account linked to `(provider, subject)`.
pub(crate) async fn find_by_link(
    conn: &mut SqliteConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Account>, StoreError> {
    let rows = sqlx::query(load_sql!(
        "SELECT account_id FROM account_links WHERE provider = ?1 AND subject = ?2"
    ))
    .bind(provider)
    .bind(subject)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    at_most_one(assemble(rows)?)
}

/// The account whose login name folds to `key` (see [`fold`]); login keys are unique.
pub(crate) async fn find_by_login_key(
    conn: &mut SqliteConnection,
    key: &str,
) -> Result<Option<Account>, StoreError> {
    find_by_login(conn, key, key, true).await
}

/// `UserStore::find_by_login`: `key` is `fold(login)`; case-sensitive lookups also
/// compare the login name exactly.
pub(crate) async fn find_by_login(
    conn: &mut SqliteConnection,
    key: &str,
    login: &str,
    case_insensitive: bool,
) -> Result<Option<Account>, StoreError> {
    let rows = sqlx::query(load_sql!(
        "SELECT id FROM accounts WHERE login_key = ?1 AND (?2 OR login = ?3)"
    ))
    .bind(key)
    .bind(case_insensitive)
    .bind(login)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    at_most_one(assemble(rows)?)
}

/// `UserStore::find_by_email`: [`StoreError::Ambiguous`] when two accounts match.
pub(crate) async fn find_by_email(
    conn: &mut SqliteConnection,
    email: &str,
    case_insensitive: bool,
) -> Result<Option<Account>, StoreError> {
    let rows = sqlx::query(load_sql!(
        "SELECT id FROM accounts WHERE email_key = ?1 AND (?2 OR email = ?3) LIMIT 2"
    ))
    .bind(fold(email))
    .bind(case_insensitive)
    .bind(email)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    at_most_one(assemble(rows)?)
}

async fn link_owner(conn: &mut SqliteConnection, link: &ExternalLink) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT account_id FROM account_links WHERE provider = ?1 AND subject = ?2")
        .bind(&link.provider)
        .bind(&link.subject)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)
}

async fn exists(conn: &mut SqliteConnection, id: i64) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM accounts WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(found.is_some())
}

/// The row id of an existing account, or [`StoreError::NotFound`].
async fn existing(conn: &mut SqliteConnection, id: &AccountId) -> Result<i64, StoreError> {
    match row_id(id) {
        Some(n) if exists(conn, n).await? => Ok(n),
        _ => Err(StoreError::NotFound),
    }
}

fn one_row(result: sqlx::sqlite::SqliteQueryResult) -> Result<(), StoreError> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Creates an account with its local roles and link: [`StoreError::Conflict`] when
/// the login name (compared after [`fold`]) or the link is taken.
pub(crate) async fn insert_account(
    conn: &mut SqliteConnection,
    new: &NewAccount,
) -> Result<Account, StoreError> {
    if let Some(link) = &new.link
        && link_owner(conn, link).await?.is_some()
    {
        return Err(StoreError::Conflict("external identity is already linked".into()));
    }
    insert_account_with_free_link(conn, new).await
}

/// [`insert_account`] for a caller that has just seen the link is free in the same
/// transaction (one statement fewer).
pub(crate) async fn insert_account_with_free_link(
    conn: &mut SqliteConnection,
    new: &NewAccount,
) -> Result<Account, StoreError> {
    let created_at = SystemTime::now();
    let id = sqlx::query(
        "INSERT INTO accounts (login, login_key, email, email_key, display_name, password_hash, disabled, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(&new.login)
    .bind(fold(&new.login))
    .bind(&new.email)
    .bind(new.email.as_deref().map(fold))
    .bind(&new.display_name)
    .bind(&new.password_hash)
    .bind(new.disabled)
    .bind(to_nanos(created_at)?)
    .execute(&mut *conn)
    .await
    .map_err(conflict_as(|| format!("login name {:?} is taken", new.login)))?
    .last_insert_rowid();
    for role in &new.roles {
        sqlx::query("INSERT INTO account_roles (account_id, role) VALUES (?1, ?2)")
            .bind(id)
            .bind(role)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
    }
    if let Some(link) = &new.link {
        insert_link(conn, id, link).await?;
    }
    Ok(Account {
        id: account_id(id),
        login: new.login.clone(),
        email: new.email.clone(),
        display_name: new.display_name.clone(),
        password_hash: new.password_hash.clone(),
        disabled: new.disabled,
        roles: new.roles.clone(),
        mapped_roles: BTreeMap::new(),
        links: new.link.iter().cloned().collect(),
        created_at,
        last_login: None,
    })
}

/// Writes a link the caller checked is free (or already this account's).
async fn insert_link(conn: &mut SqliteConnection, id: i64, link: &ExternalLink) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO account_links (provider, subject, account_id) VALUES (?1, ?2, ?3) \
         ON CONFLICT (provider, subject) DO NOTHING",
    )
    .bind(&link.provider)
    .bind(&link.subject)
    .bind(id)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// `UserStore::record_login`: checks first (link owner, account), then writes the
/// last-login time, the link and the provider's mapped roles.
pub(crate) async fn record_login(
    conn: &mut SqliteConnection,
    update: &LoginUpdate,
) -> Result<(), StoreError> {
    let id = row_id(&update.account).ok_or(StoreError::NotFound)?;
    let at = to_nanos(update.at)?;
    if let Some(link) = &update.link
        && link_owner(conn, link).await?.is_some_and(|owner| owner != id)
    {
        return Err(StoreError::Conflict(
            "external identity is linked to another account".into(),
        ));
    }
    one_row(
        sqlx::query("UPDATE accounts SET last_login = ?2 WHERE id = ?1")
            .bind(id)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(backend)?,
    )?;
    if let Some(link) = &update.link {
        insert_link(conn, id, link).await?;
    }
    if let Some((provider, roles)) = &update.mapped_roles {
        write_mapped_roles(conn, id, provider, roles).await?;
    }
    Ok(())
}

/// Replaces the roles `provider`'s mapping gives the account (an empty set is kept
/// as "mapped to nothing").
pub(crate) async fn replace_mapped_roles(
    conn: &mut SqliteConnection,
    id: &AccountId,
    provider: &str,
    roles: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let id = existing(conn, id).await?;
    write_mapped_roles(conn, id, provider, roles).await
}

async fn write_mapped_roles(
    conn: &mut SqliteConnection,
    id: i64,
    provider: &str,
    roles: &BTreeSet<String>,
) -> Result<(), StoreError> {
    // Most logins map the same roles as last time: one read instead of rewriting.
    let current: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT NULL FROM account_role_sources WHERE account_id = ?1 AND provider = ?2 \
         UNION ALL SELECT role FROM account_mapped_roles WHERE account_id = ?1 AND provider = ?2 \
         ORDER BY 1",
    )
    .bind(id)
    .bind(provider)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut current = current.into_iter();
    if current.next() == Some(None) && current.flatten().eq(roles.iter().cloned()) {
        return Ok(());
    }
    overwrite_mapped_roles(conn, provider, &[(id, roles)]).await
}

/// Sets the roles `provider`'s mapping gives each account, in three statements
/// whatever the number of accounts.
pub(crate) async fn overwrite_mapped_roles(
    conn: &mut SqliteConnection,
    provider: &str,
    accounts: &[(i64, &BTreeSet<String>)],
) -> Result<(), StoreError> {
    let ids = json_list(accounts.iter().map(|(id, _)| *id));
    sqlx::query(
        "INSERT INTO account_role_sources (account_id, provider) \
         SELECT value, ?1 FROM json_each(?2) WHERE true \
         ON CONFLICT (account_id, provider) DO NOTHING",
    )
    .bind(provider)
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "DELETE FROM account_mapped_roles \
         WHERE provider = ?1 AND account_id IN (SELECT value FROM json_each(?2))",
    )
    .bind(provider)
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    let pairs = json_list(
        accounts
            .iter()
            .flat_map(|(id, roles)| roles.iter().map(move |role| (*id, role.as_str()))),
    );
    sqlx::query(
        "INSERT INTO account_mapped_roles (account_id, provider, role) \
         SELECT json_extract(value, '$[0]'), ?1, json_extract(value, '$[1]') FROM json_each(?2)",
    )
    .bind(provider)
    .bind(&pairs)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// A list as one JSON array parameter, read in SQL with `json_each(?)`: one
/// statement for a whole batch instead of one per item.
pub(crate) fn json_list<T: serde::Serialize>(items: impl IntoIterator<Item = T>) -> String {
    // Serialized straight from the items (tuples become arrays), no `Value` tree.
    let items: Vec<T> = items.into_iter().collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
}

/// Sets one column of an account: `sql` binds the id as `?1` and `value` as `?2`.
async fn set_column<'q, T>(
    conn: &mut SqliteConnection,
    id: &AccountId,
    sql: &'static str,
    value: T,
) -> Result<(), StoreError>
where
    T: 'q + sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send,
{
    let id = row_id(id).ok_or(StoreError::NotFound)?;
    one_row(
        sqlx::query(sql)
            .bind(id)
            .bind(value)
            .execute(&mut *conn)
            .await
            .map_err(backend)?,
    )
}

/// Replaces the password hash.
pub(crate) async fn set_password_hash(
    conn: &mut SqliteConnection,
    id: &AccountId,
    hash: &str,
) -> Result<(), StoreError> {
    set_column(
        conn,
        id,
        "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
        hash,
    )
    .await
}

/// Disables or enables an account.
pub(crate) async fn set_disabled(
    conn: &mut SqliteConnection,
    id: &AccountId,
    disabled: bool,
) -> Result<(), StoreError> {
    set_column(
        conn,
        id,
        "UPDATE accounts SET disabled = ?2 WHERE id = ?1",
        disabled,
    )
    .await
}

/// Grants or revokes a locally managed role.
pub(crate) async fn set_local_role(
    conn: &mut SqliteConnection,
    id: &AccountId,
    role: &str,
    granted: bool,
) -> Result<(), StoreError> {
    let id = existing(conn, id).await?;
    let sql = if granted {
        "INSERT INTO account_roles (account_id, role) VALUES (?1, ?2) ON CONFLICT (account_id, role) DO NOTHING"
    } else {
        "DELETE FROM account_roles WHERE account_id = ?1 AND role = ?2"
    };
    sqlx::query(sql)
        .bind(id)
        .bind(role)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Replaces login name, email and display name (a directory rename):
/// [`StoreError::Conflict`] when another account has the login name.
pub(crate) async fn update_profile(
    conn: &mut SqliteConnection,
    id: &AccountId,
    login: &str,
    email: Option<&str>,
    display_name: Option<&str>,
) -> Result<(), StoreError> {
    let id = row_id(id).ok_or(StoreError::NotFound)?;
    one_row(
        sqlx::query(
            "UPDATE accounts SET login = ?2, login_key = ?3, email = ?4, email_key = ?5, display_name = ?6 \
             WHERE id = ?1",
        )
        .bind(id)
        .bind(login)
        .bind(fold(login))
        .bind(email)
        .bind(email.map(fold))
        .bind(display_name)
        .execute(&mut *conn)
        .await
        .map_err(conflict_as(|| format!("login name {login:?} is taken")))?,
    )
}

/// Deletes an account with its links and roles.
pub(crate) async fn delete_account(conn: &mut SqliteConnection, id: &AccountId) -> Result<(), StoreError> {
    let id = row_id(id).ok_or(StoreError::NotFound)?;
    one_row(
        sqlx::query("DELETE FROM accounts WHERE id = ?1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(backend)?,
    )
}

/// `UserStore::list_accounts`: one page by login name.
pub(crate) async fn list_accounts(
    conn: &mut SqliteConnection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Account>, StoreError> {
    let limit = limit.min(crate::account::MAX_LISTED_ACCOUNTS);
    let rows = sqlx::query(load_sql!(
        "SELECT id FROM accounts WHERE ?1 IS NULL OR login > ?1 ORDER BY login LIMIT ?2"
    ))
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut page: Vec<Account> = assemble(rows)?.into_values().collect();
    page.sort_by(|a, b| a.login.cmp(&b.login));
    Ok(page)
}

/// `UserStore::unlink`: the account's links to `provider` and the roles mapped from it.
pub(crate) async fn unlink(
    conn: &mut SqliteConnection,
    id: &AccountId,
    provider: &str,
) -> Result<usize, StoreError> {
    let id = row_id(id).ok_or(StoreError::NotFound)?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = ?1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let removed = sqlx::query("DELETE FROM account_links WHERE account_id = ?1 AND provider = ?2")
        .bind(id)
        .bind(provider)
        .execute(&mut *conn)
        .await
        .map_err(backend)?
        .rows_affected();
    // Mapped roles go with their source row (ON DELETE CASCADE).
    sqlx::query("DELETE FROM account_role_sources WHERE account_id = ?1 AND provider = ?2")
        .bind(id)
        .bind(provider)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// Number of accounts.
pub(crate) async fn count_accounts(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(n.unsigned_abs())
}

/// The directory-sync cookie stored for `source`.
pub(crate) async fn sync_cookie(
    conn: &mut SqliteConnection,
    source: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    sqlx::query_scalar("SELECT cookie FROM sync_state WHERE source = ?1")
        .bind(source)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)
}

/// Stores (`Some`) or forgets (`None`) the directory-sync cookie of `source`.
pub(crate) async fn set_sync_cookie(
    conn: &mut SqliteConnection,
    source: &str,
    cookie: Option<&[u8]>,
) -> Result<(), StoreError> {
    let query = match cookie {
        Some(cookie) => sqlx::query(
            "INSERT INTO sync_state (source, cookie, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (source) DO UPDATE SET cookie = excluded.cookie, updated_at = excluded.updated_at",
        )
        .bind(source)
        .bind(cookie)
        .bind(to_nanos(SystemTime::now())?),
        None => sqlx::query("DELETE FROM sync_state WHERE source = ?1").bind(source),
    };
    query.execute(&mut *conn).await.map_err(backend)?;
    Ok(())
}
