//! The account statements of the PostgreSQL store, one function per write or
//! lookup on a bare connection, so a transaction can combine several.
//!
//! As in the SQLite store, every write checks before it writes: after
//! [`StoreError::Conflict`] or [`StoreError::NotFound`] nothing was changed. A
//! PostgreSQL transaction is unusable after a failed statement, so the callers
//! roll back on any error.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::account::sql::{account_id, backend, fold, from_nanos, row_id, to_nanos};
use crate::account::{Account, ExternalLink, LoginUpdate, NewAccount};
use crate::{AccountId, StoreError};

/// The longest login name, email address, role, provider id or subject the
/// PostgreSQL store holds, in bytes: they are indexed, and an index entry of
/// PostgreSQL must stay under about 2.7 kB.
pub const MAX_PG_NAME_BYTES: usize = 1_000;

/// PostgreSQL `text` holds no NUL character, and indexed names are bounded:
/// such a value is refused before anything is written.
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_PG_NAME_BYTES {
        return Err(StoreError::InvalidValue {
            field,
            reason: "longer than MAX_PG_NAME_BYTES",
        });
    }
    check_text(field, value)
}

/// [`check_name`] for unindexed text: only the NUL character is refused.
pub(crate) fn check_text(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::InvalidValue {
            field,
            reason: "contains a NUL character",
        });
    }
    Ok(())
}

/// Whether a looked-up value could be stored at all (if not, nothing matches it).
fn storable(values: &[&str]) -> bool {
    values.iter().all(|v| check_name("lookup", v).is_ok())
}

fn check_link(link: &ExternalLink) -> Result<(), StoreError> {
    check_name("provider", &link.provider)?;
    check_name("subject", &link.subject)
}

/// Whole accounts (links, roles and mapped roles as parallel arrays) for the ids
/// a `WHERE` clause on `accounts a` selects, in one statement: one snapshot.
macro_rules! load_sql {
    ($where:literal) => {
        concat!(
            "SELECT a.id, a.login, a.email, a.display_name, a.password_hash, a.disabled, \
                    a.created_at, a.last_login, \
                    ARRAY(SELECT provider FROM account_links WHERE account_id = a.id ORDER BY provider, subject), \
                    ARRAY(SELECT subject FROM account_links WHERE account_id = a.id ORDER BY provider, subject), \
                    ARRAY(SELECT role FROM account_roles WHERE account_id = a.id), \
                    ARRAY(SELECT provider FROM account_role_sources WHERE account_id = a.id), \
                    ARRAY(SELECT provider FROM account_mapped_roles WHERE account_id = a.id ORDER BY provider, role), \
                    ARRAY(SELECT role FROM account_mapped_roles WHERE account_id = a.id ORDER BY provider, role) \
             FROM accounts a WHERE ",
            $where
        )
    };
}

fn account_from_row(row: &PgRow) -> Result<Account, StoreError> {
    let get_list = |i: usize| row.try_get::<Vec<String>, _>(i).map_err(backend);
    let id: i64 = row.try_get(0).map_err(backend)?;
    let links = get_list(8)?
        .into_iter()
        .zip(get_list(9)?)
        .map(|(provider, subject)| ExternalLink { provider, subject })
        .collect();
    let mut mapped_roles: BTreeMap<String, BTreeSet<String>> =
        get_list(11)?.into_iter().map(|p| (p, BTreeSet::new())).collect();
    for (provider, role) in get_list(12)?.into_iter().zip(get_list(13)?) {
        mapped_roles.entry(provider).or_default().insert(role);
    }
    let created_at: i64 = row.try_get(6).map_err(backend)?;
    let last_login: Option<i64> = row.try_get(7).map_err(backend)?;
    Ok(Account {
        id: account_id(id),
        login: row.try_get(1).map_err(backend)?,
        email: row.try_get(2).map_err(backend)?,
        display_name: row.try_get(3).map_err(backend)?,
        password_hash: row.try_get(4).map_err(backend)?,
        disabled: row.try_get(5).map_err(backend)?,
        roles: get_list(10)?.into_iter().collect(),
        mapped_roles,
        links,
        created_at: from_nanos(created_at),
        last_login: last_login.map(from_nanos),
    })
}

fn at_most_one(rows: Vec<PgRow>) -> Result<Option<Account>, StoreError> {
    match rows.as_slice() {
        [] => Ok(None),
        [row] => account_from_row(row).map(Some),
        _ => Err(StoreError::Ambiguous),
    }
}

/// The account with this id.
pub(crate) async fn load_account(
    conn: &mut PgConnection,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    let Some(id) = row_id(id) else {
        return Ok(None);
    };
    let rows = sqlx::query(load_sql!("a.id = $1"))
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    at_most_one(rows)
}

/// The account linked to `(provider, subject)`.
pub(crate) async fn find_by_link(
    conn: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Account>, StoreError> {
    if !storable(&[provider, subject]) {
        return Ok(None);
    }
    let rows = sqlx::query(load_sql!(
        "a.id = (SELECT account_id FROM account_links WHERE provider = $1 AND subject = $2)"
    ))
    .bind(provider)
    .bind(subject)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    at_most_one(rows)
}

/// `UserStore::find_by_login`; login keys are unique.
pub(crate) async fn find_by_login(
    conn: &mut PgConnection,
    login: &str,
    case_insensitive: bool,
) -> Result<Option<Account>, StoreError> {
    if !storable(&[login]) {
        return Ok(None);
    }
    let rows = sqlx::query(load_sql!("a.login_key = $1 AND ($2 OR a.login = $3)"))
        .bind(fold(login))
        .bind(case_insensitive)
        .bind(login)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    at_most_one(rows)
}

/// The account whose login name folds to `key`; login keys are unique.
#[cfg(feature = "sync")]
pub(crate) async fn find_by_login_key(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Option<Account>, StoreError> {
    if !storable(&[key]) {
        return Ok(None);
    }
    let rows = sqlx::query(load_sql!("a.login_key = $1"))
        .bind(key)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    at_most_one(rows)
}

/// Replaces login name, email and display name (a directory rename):
/// [`StoreError::Conflict`] when another account has the login name.
#[cfg(feature = "sync")]
pub(crate) async fn update_profile(
    conn: &mut PgConnection,
    id: &AccountId,
    login: &str,
    email: Option<&str>,
    display_name: Option<&str>,
) -> Result<(), StoreError> {
    check_name("login", login)?;
    check_name("email", email.unwrap_or_default())?;
    check_text("display_name", display_name.unwrap_or_default())?;
    let id = row_id(id).ok_or(StoreError::NotFound)?;
    one_row(
        sqlx::query(
            "UPDATE accounts SET login = $2, login_key = $3, email = $4, email_key = $5, display_name = $6 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(login)
        .bind(fold(login))
        .bind(email)
        .bind(email.map(fold))
        .bind(display_name)
        .execute(&mut *conn)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("login name {login:?} is taken")),
            other => other,
        })?,
    )
}

/// Deletes an account with its links, roles and directory entries.
#[cfg(feature = "sync")]
pub(crate) async fn delete_account(conn: &mut PgConnection, id: &AccountId) -> Result<(), StoreError> {
    let id = row_id(id).ok_or(StoreError::NotFound)?;
    one_row(
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(backend)?,
    )
}

/// `UserStore::find_by_email`: [`StoreError::Ambiguous`] when two accounts match.
pub(crate) async fn find_by_email(
    conn: &mut PgConnection,
    email: &str,
    case_insensitive: bool,
) -> Result<Option<Account>, StoreError> {
    if !storable(&[email]) {
        return Ok(None);
    }
    let rows = sqlx::query(load_sql!(
        "a.email_key = $1 AND ($2 OR a.email = $3) ORDER BY a.id LIMIT 2"
    ))
    .bind(fold(email))
    .bind(case_insensitive)
    .bind(email)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    at_most_one(rows)
}

async fn link_owner(conn: &mut PgConnection, link: &ExternalLink) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT account_id FROM account_links WHERE provider = $1 AND subject = $2")
        .bind(&link.provider)
        .bind(&link.subject)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)
}

/// The row id of an existing account (locked until the transaction ends, so a
/// concurrent deletion waits), or [`StoreError::NotFound`].
pub(crate) async fn existing(conn: &mut PgConnection, id: &AccountId) -> Result<i64, StoreError> {
    let Some(n) = row_id(id) else {
        return Err(StoreError::NotFound);
    };
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(n)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    found.ok_or(StoreError::NotFound)
}

fn one_row(result: sqlx::postgres::PgQueryResult) -> Result<(), StoreError> {
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Creates an account with its roles and link. A concurrent creation of the same
/// login name or link waits for the other transaction and then fails with
/// [`StoreError::Conflict`] (unique indexes), so two replicas never create two
/// accounts for one subject.
pub(crate) async fn insert_account(conn: &mut PgConnection, new: &NewAccount) -> Result<Account, StoreError> {
    check_name("login", &new.login)?;
    if let Some(email) = &new.email {
        check_name("email", email)?;
    }
    check_text("display_name", new.display_name.as_deref().unwrap_or_default())?;
    check_text("password_hash", new.password_hash.as_deref().unwrap_or_default())?;
    for role in &new.roles {
        check_name("role", role)?;
    }
    if let Some(link) = &new.link {
        check_link(link)?;
    }
    if let Some(link) = &new.link
        && link_owner(conn, link).await?.is_some()
    {
        return Err(StoreError::Conflict("external identity is already linked".into()));
    }
    let created_at = SystemTime::now();
    let login = new.login.clone();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO accounts (login, login_key, email, email_key, display_name, password_hash, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(&new.login)
    .bind(fold(&new.login))
    .bind(&new.email)
    .bind(new.email.as_deref().map(fold))
    .bind(&new.display_name)
    .bind(&new.password_hash)
    .bind(new.disabled)
    .bind(to_nanos(created_at)?)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match backend(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("login name {login:?} is taken")),
        other => other,
    })?;
    let roles: Vec<&str> = new.roles.iter().map(String::as_str).collect();
    sqlx::query("INSERT INTO account_roles (account_id, role) SELECT $1, unnest($2::text[])")
        .bind(id)
        .bind(&roles)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    if let Some(link) = &new.link {
        sqlx::query("INSERT INTO account_links (provider, subject, account_id) VALUES ($1, $2, $3)")
            .bind(&link.provider)
            .bind(&link.subject)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(|e| match backend(e) {
                StoreError::Conflict(_) => StoreError::Conflict("external identity is already linked".into()),
                other => other,
            })?;
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

/// `UserStore::record_login`: the link (unless another account holds it), the
/// last-login time and the provider's mapped roles.
pub(crate) async fn record_login(conn: &mut PgConnection, update: &LoginUpdate) -> Result<(), StoreError> {
    if let Some(link) = &update.link {
        check_link(link)?;
    }
    if let Some((provider, roles)) = &update.mapped_roles {
        check_name("provider", provider)?;
        for role in roles {
            check_name("role", role)?;
        }
    }
    let id = existing(conn, &update.account).await?;
    let at = to_nanos(update.at)?;
    if let Some(link) = &update.link {
        // Inserting first makes a concurrent link of the same identity wait, so
        // the owner read next is final.
        sqlx::query(
            "INSERT INTO account_links (provider, subject, account_id) VALUES ($1, $2, $3) \
             ON CONFLICT (provider, subject) DO NOTHING",
        )
        .bind(&link.provider)
        .bind(&link.subject)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
        if link_owner(conn, link).await? != Some(id) {
            return Err(StoreError::Conflict(
                "external identity is linked to another account".into(),
            ));
        }
    }
    one_row(
        sqlx::query("UPDATE accounts SET last_login = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&mut *conn)
            .await
            .map_err(backend)?,
    )?;
    if let Some((provider, roles)) = &update.mapped_roles {
        write_mapped_roles(conn, id, provider, roles).await?;
    }
    Ok(())
}

/// Replaces the roles `provider`'s mapping gives the account (an empty set is
/// kept as "mapped to nothing"); skips the writes when nothing changed.
pub(crate) async fn write_mapped_roles(
    conn: &mut PgConnection,
    id: i64,
    provider: &str,
    roles: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let current: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT ARRAY(SELECT role FROM account_mapped_roles WHERE account_id = $1 AND provider = $2 ORDER BY role) \
         FROM account_role_sources WHERE account_id = $1 AND provider = $2",
    )
    .bind(id)
    .bind(provider)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    if current.is_some_and(|current| current.iter().eq(roles.iter())) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO account_role_sources (account_id, provider) VALUES ($1, $2) \
         ON CONFLICT (account_id, provider) DO NOTHING",
    )
    .bind(id)
    .bind(provider)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query("DELETE FROM account_mapped_roles WHERE account_id = $1 AND provider = $2")
        .bind(id)
        .bind(provider)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    sqlx::query(
        "INSERT INTO account_mapped_roles (account_id, provider, role) SELECT $1, $2, unnest($3::text[])",
    )
    .bind(id)
    .bind(provider)
    .bind(&roles)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Runs an `UPDATE accounts ... WHERE id = $1` that binds one value as `$2`.
pub(crate) async fn set_column<'q, T>(
    conn: &mut PgConnection,
    id: &AccountId,
    sql: &'static str,
    value: T,
) -> Result<(), StoreError>
where
    T: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
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

/// Grants or revokes a locally managed role.
pub(crate) async fn set_local_role(
    conn: &mut PgConnection,
    id: &AccountId,
    role: &str,
    granted: bool,
) -> Result<(), StoreError> {
    check_name("role", role)?;
    let id = existing(conn, id).await?;
    let sql = if granted {
        "INSERT INTO account_roles (account_id, role) VALUES ($1, $2) ON CONFLICT (account_id, role) DO NOTHING"
    } else {
        "DELETE FROM account_roles WHERE account_id = $1 AND role = $2"
    };
    sqlx::query(sql)
        .bind(id)
        .bind(role)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// `UserStore::list_accounts`: a page of accounts by login name (byte order, as
/// the other stores), after `after`.
pub(crate) async fn list_accounts(
    conn: &mut PgConnection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Account>, StoreError> {
    let limit = limit.min(crate::account::MAX_LISTED_ACCOUNTS);
    let rows = sqlx::query(load_sql!(
        "($1::text IS NULL OR a.login COLLATE \"C\" > $1) ORDER BY a.login COLLATE \"C\" LIMIT $2"
    ))
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    rows.iter().map(account_from_row).collect()
}

/// `UserStore::unlink`: the account's links to `provider` and the roles mapped
/// from it (they go with their source row, `ON DELETE CASCADE`).
pub(crate) async fn unlink(
    conn: &mut PgConnection,
    id: &AccountId,
    provider: &str,
) -> Result<usize, StoreError> {
    let id = existing(conn, id).await?;
    let removed = sqlx::query("DELETE FROM account_links WHERE account_id = $1 AND provider = $2")
        .bind(id)
        .bind(provider)
        .execute(&mut *conn)
        .await
        .map_err(backend)?
        .rows_affected();
    sqlx::query("DELETE FROM account_role_sources WHERE account_id = $1 AND provider = $2")
        .bind(id)
        .bind(provider)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(usize::try_from(removed).unwrap_or(usize::MAX))
}

/// Stores (`Some`) or forgets (`None`) the directory-sync cookie under `key`.
pub(crate) async fn set_sync_cookie(
    conn: &mut PgConnection,
    key: &str,
    cookie: Option<&[u8]>,
) -> Result<(), StoreError> {
    let query = match cookie {
        Some(cookie) => sqlx::query(
            "INSERT INTO sync_state (source, cookie, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (source) DO UPDATE SET cookie = excluded.cookie, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(cookie)
        .bind(to_nanos(SystemTime::now())?),
        None => sqlx::query("DELETE FROM sync_state WHERE source = $1").bind(key),
    };
    query.execute(&mut *conn).await.map_err(backend)?;
    Ok(())
}

/// Disables or enables an account.
#[cfg(feature = "sync")]
pub(crate) async fn set_disabled(
    conn: &mut PgConnection,
    id: &AccountId,
    disabled: bool,
) -> Result<(), StoreError> {
    set_column(
        conn,
        id,
        "UPDATE accounts SET disabled = $2 WHERE id = $1",
        disabled,
    )
    .await
}

/// Sets the roles `provider`'s mapping gives each account, in two statements
/// whatever the number of accounts.
#[cfg(feature = "sync")]
pub(crate) async fn overwrite_mapped_roles(
    conn: &mut PgConnection,
    provider: &str,
    accounts: &[(i64, &BTreeSet<String>)],
) -> Result<(), StoreError> {
    for (_, roles) in accounts {
        for role in *roles {
            check_name("role", role)?;
        }
    }
    let ids: Vec<i64> = accounts.iter().map(|(id, _)| *id).collect();
    let (owners, roles): (Vec<i64>, Vec<&str>) = accounts
        .iter()
        .flat_map(|(id, roles)| roles.iter().map(move |role| (*id, role.as_str())))
        .unzip();
    sqlx::query(
        "WITH sources AS (INSERT INTO account_role_sources (account_id, provider) \
           SELECT unnest($2::bigint[]), $1 ON CONFLICT (account_id, provider) DO NOTHING) \
         DELETE FROM account_mapped_roles WHERE provider = $1 AND account_id = ANY($2)",
    )
    .bind(provider)
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "INSERT INTO account_mapped_roles (account_id, provider, role) \
         SELECT a, $1, r FROM unnest($2::bigint[], $3::text[]) AS t(a, r)",
    )
    .bind(provider)
    .bind(&owners)
    .bind(&roles)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}
