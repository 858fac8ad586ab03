//! What only the SQLite store has to show: a real database file that survives
//! reopening, schema migrations, no partial writes, concurrent writers, the sync
//! cookie, profile updates and deletions, bounds, and the `[store]` configuration.
//! (The behaviours it shares with the memory store are in tests/stores.rs and
//! tests/provisioning.rs.)

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authchain::account::{
    AttemptStore, LoginUpdate, NewAccount, Provisioning, RoleMapping, SqliteStore, ThrottlePolicy, UserStore,
};
use authchain::chain::ModuleSettings;
use authchain::config::{Config, StoreConfig};
use authchain::{AccountId, AuthChain, AuthError, AuthRequest, ConfigError, StoreError};
use common::{Scripted, fresh_db_path, peer, principal};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A second, plain connection to the file, to look at what the store wrote.
async fn inspect(path: &std::path::Path) -> sqlx::SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let path = fresh_db_path("sqlite::reopen");
    let store = SqliteStore::open(&path).await.unwrap();
    let account = store
        .create_account(
            NewAccount::new("Grace")
                .email("grace@example.org")
                .display_name("Grace Hopper")
                .password_hash("hash")
                .role("admin")
                .linked_to("ldap", "uuid-1"),
        )
        .await
        .unwrap();
    let at = SystemTime::now();
    let mut update = LoginUpdate::new(account.id.clone(), at);
    update.mapped_roles = Some(("ldap".into(), set(&["developer"])));
    store.record_login(update).await.unwrap();
    store
        .set_sync_cookie("corp", Some(b"rid=000,csn=1\0x"))
        .await
        .unwrap();
    store
        .record_failure("login\u{1f}grace", at, Duration::from_secs(600))
        .await
        .unwrap();
    let before = store.account(&account.id).await.unwrap().unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    let after = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(after, before);
    assert_eq!(after.last_login, Some(at));
    assert_eq!(after.mapped_roles.get("ldap"), Some(&set(&["developer"])));
    assert_eq!(
        store.find_by_login("GRACE", true).await.unwrap().map(|a| a.id),
        Some(account.id)
    );
    assert_eq!(
        store.sync_cookie("corp").await.unwrap().as_deref(),
        Some(&b"rid=000,csn=1\0x"[..])
    );
    let failures = store
        .failures_since("login\u{1f}grace", UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!((failures.count, failures.oldest), (1, Some(at)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_a_new_file_at_once_all_succeed() {
    // Separate pools, as separate processes of the host would have, racing to
    // create and migrate the same new file.
    for round in 0..10 {
        let path = fresh_db_path(&format!("sqlite::open-race-{round}"));
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteStore::open(&path).await })
            })
            .collect();
        for open in opens {
            let store = open
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(store.account_count().await.unwrap(), 0);
            store.close().await;
        }
        let db = inspect(&path).await;
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&db)
            .await
            .unwrap();
        let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .count() as i64;
        assert_eq!(
            applied, shipped,
            "round {round}: every shipped migration applied once"
        );
        assert!(std::path::Path::new(&format!("{}.open-lock", path.display())).exists());
    }
}

#[tokio::test]
async fn migrations_run_once_and_the_file_is_in_wal_mode() {
    let path = fresh_db_path("sqlite::migrations");
    for _ in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .create_account(NewAccount::new(format!(
                "u{}",
                store.account_count().await.unwrap()
            )))
            .await
            .unwrap();
        store.close().await;
    }
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
        .count() as i64;
    let db = inspect(&path).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(applied, shipped);
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(accounts, 3, "reopening kept the data");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let path = fresh_db_path("sqlite::newer");
    SqliteStore::open(&path).await.unwrap().close().await;
    let db = inspect(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', 1, x'00', 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    match SqliteStore::open(&path).await {
        Err(StoreError::Backend(cause)) => assert!(
            matches!(
                cause.get().downcast_ref::<sqlx::migrate::MigrateError>(),
                Some(sqlx::migrate::MigrateError::VersionMissing(99999))
            ),
            "{cause:?}"
        ),
        other => panic!("expected a migration error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_locations_and_pools_are_errors() {
    // A directory where the file should be, and a file where a directory should be.
    let dir = fresh_db_path("sqlite::bad-location");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(
        SqliteStore::open(&dir).await,
        Err(StoreError::Backend(_))
    ));
    let file = fresh_db_path("sqlite::not-a-directory");
    std::fs::write(&file, b"not a directory").unwrap();
    match SqliteStore::open(file.join("accounts.sqlite3")).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("{other:?}"),
    }
    // A file that is not an SQLite database.
    let garbage = fresh_db_path("sqlite::garbage");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    assert!(matches!(
        SqliteStore::open(&garbage).await,
        Err(StoreError::Backend(_))
    ));
    // A pool without foreign keys would leave links of deleted accounts behind.
    let pool = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(fresh_db_path("sqlite::no-fk"))
                .create_if_missing(true)
                .foreign_keys(false),
        )
        .await
        .unwrap();
    match SqliteStore::from_pool(pool).await {
        Err(StoreError::Backend(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn in_memory_stores_work_and_are_private() {
    let a = SqliteStore::in_memory().await.unwrap();
    let b = SqliteStore::in_memory().await.unwrap();
    let account = a.create_account(NewAccount::new("heidi")).await.unwrap();
    a.set_local_role(&account.id, "admin", true).await.unwrap();
    assert_eq!(
        a.account(&account.id).await.unwrap().unwrap().roles,
        set(&["admin"])
    );
    assert_eq!(b.account_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_from_many_tasks_and_two_pools_all_succeed() {
    let path = fresh_db_path("sqlite::concurrent");
    let first = Arc::new(SqliteStore::open(&path).await.unwrap());
    // A second pool on the same file, as a second process of the host would have.
    let second = Arc::new(SqliteStore::open(&path).await.unwrap());
    let mapping = RoleMapping::builder()
        .rule("devs", "developer")
        .default_for_unmapped("viewer")
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { first.clone() } else { second.clone() };
        let mapping = mapping.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("user{i}");
            for (subject, groups) in [(own.as_str(), &["devs"][..]), ("shared", &[][..])] {
                let chain = AuthChain::builder(store.clone())
                    .throttle(ThrottlePolicy::default(), store.clone())
                    .module_with(
                        Scripted::user("sso", subject, groups),
                        ModuleSettings::new()
                            .provisioning(Provisioning::Create)
                            .roles(mapping.clone()),
                    )
                    .build()
                    .unwrap();
                for _ in 0..15 {
                    let request = AuthRequest::new(peer("192.0.2.7"));
                    // Tasks race to create `shared`: the losers find the winner's
                    // account, so every login succeeds (never a lock error).
                    let p = principal(chain.login(&request).await);
                    assert_eq!(p.login, subject);
                    store
                        .record_failure(&format!("k{i}"), SystemTime::now(), Duration::from_secs(60))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task failed");
    }
    assert_eq!(first.account_count().await.unwrap(), 9);
    for i in 0..8 {
        let account = second
            .find_by_link("sso", &format!("user{i}"))
            .await
            .unwrap()
            .unwrap();
        assert!(account.last_login.is_some());
        assert_eq!(account.mapped_roles.get("sso"), Some(&set(&["developer"])));
        assert_eq!(
            first
                .failures_since(&format!("k{i}"), UNIX_EPOCH)
                .await
                .unwrap()
                .count,
            30
        );
    }
    let shared = first.find_by_link("sso", "shared").await.unwrap().unwrap();
    assert_eq!(shared.mapped_roles.get("sso"), Some(&set(&["viewer"])));
}

#[tokio::test]
async fn out_of_range_times_are_refused_without_a_write() {
    let store = common::sqlite_store("sqlite::far-future").await;
    let account = store.create_account(NewAccount::new("ivan")).await.unwrap();
    let mut update = LoginUpdate::new(
        account.id.clone(),
        UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400),
    );
    update.mapped_roles = Some(("sso".into(), set(&["admin"])));
    assert!(matches!(
        store.record_login(update).await,
        Err(StoreError::Backend(_))
    ));
    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.last_login, None);
    assert!(stored.mapped_roles.is_empty());
}

#[tokio::test]
async fn sync_cookies_are_per_source_and_replaceable() {
    let store = common::sqlite_store("sqlite::cookies").await;
    assert_eq!(store.sync_cookie("corp").await.unwrap(), None);
    store
        .set_sync_cookie("corp", Some(&[0, 1, 2, 255]))
        .await
        .unwrap();
    store.set_sync_cookie("branch", Some(b"")).await.unwrap();
    store.set_sync_cookie("corp", Some(b"second")).await.unwrap();
    assert_eq!(store.sync_cookie("corp").await.unwrap(), Some(b"second".to_vec()));
    assert_eq!(store.sync_cookie("branch").await.unwrap(), Some(Vec::new()));
    assert_eq!(store.sync_cookie("CORP").await.unwrap(), None);
    store.set_sync_cookie("corp", None).await.unwrap();
    assert_eq!(store.sync_cookie("corp").await.unwrap(), None);
    assert_eq!(store.sync_cookie("branch").await.unwrap(), Some(Vec::new()));
}

#[tokio::test]
async fn profiles_roles_and_deletions() {
    let store = common::sqlite_store("sqlite::profiles").await;
    let judy = store
        .create_account(
            NewAccount::new("judy")
                .email("judy@example.org")
                .linked_to("ldap", "j"),
        )
        .await
        .unwrap();
    let karl = store.create_account(NewAccount::new("karl")).await.unwrap();

    // A rename in the directory.
    store
        .update_profile(&judy.id, "Judith", Some("Judith@Example.org"), Some("Judith K."))
        .await
        .unwrap();
    let renamed = store.find_by_login("judith", true).await.unwrap().unwrap();
    assert_eq!(renamed.id, judy.id);
    assert_eq!(renamed.display_name.as_deref(), Some("Judith K."));
    assert_eq!(store.find_by_login("judy", true).await.unwrap(), None);
    assert_eq!(
        store
            .find_by_email("judith@example.org", true)
            .await
            .unwrap()
            .map(|a| a.id),
        Some(judy.id.clone())
    );
    // Renaming onto another account's name (in any case) is refused and changes nothing.
    assert!(matches!(
        store.update_profile(&karl.id, "JUDITH", None, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.account(&karl.id).await.unwrap().unwrap().login, "karl");
    assert_eq!(
        store
            .update_profile(&AccountId("424242".into()), "x", None, None)
            .await,
        Err(StoreError::NotFound)
    );

    store
        .replace_mapped_roles(&judy.id, "ldap", &set(&["developer"]))
        .await
        .unwrap();
    assert_eq!(
        store.account(&judy.id).await.unwrap().unwrap().effective_roles(),
        set(&["developer"])
    );
    assert_eq!(
        store
            .replace_mapped_roles(&AccountId("424242".into()), "ldap", &set(&["x"]))
            .await,
        Err(StoreError::NotFound)
    );

    // Deleting frees the link and the name; ids are never reused.
    store.delete_account(&judy.id).await.unwrap();
    assert_eq!(store.account(&judy.id).await.unwrap(), None);
    assert_eq!(store.find_by_link("ldap", "j").await.unwrap(), None);
    assert_eq!(store.delete_account(&judy.id).await, Err(StoreError::NotFound));
    let newcomer = store
        .create_account(NewAccount::new("judith").linked_to("ldap", "j"))
        .await
        .unwrap();
    let as_number = |id: &AccountId| id.0.parse::<u64>().unwrap();
    assert!(as_number(&newcomer.id) > as_number(&karl.id));
    assert!(newcomer.mapped_roles.is_empty());
    assert_eq!(
        store.account(&newcomer.id).await.unwrap().unwrap().mapped_roles,
        Default::default(),
        "no roles of the deleted account linger"
    );
}

#[tokio::test]
async fn failure_rows_are_bounded_in_total_oldest_first() {
    let path = fresh_db_path("sqlite::failure-bound");
    let store = SqliteStore::open(&path)
        .await
        .unwrap()
        .with_attempt_bounds(50, 10);
    let start = SystemTime::now();
    // The 1st and the 257th failure run the global pruning.
    for i in 0..257u64 {
        store
            .record_failure(
                &format!("key{i}"),
                start + Duration::from_millis(i),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
    }
    let db = inspect(&path).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM login_failures")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(rows, 50);
    assert_eq!(store.failures_since("key0", UNIX_EPOCH).await.unwrap().count, 0);
    assert_eq!(store.failures_since("key256", UNIX_EPOCH).await.unwrap().count, 1);
    assert_eq!(store.failures_since("key207", UNIX_EPOCH).await.unwrap().count, 1);
    assert_eq!(store.failures_since("key206", UNIX_EPOCH).await.unwrap().count, 0);
}

#[tokio::test]
async fn throttling_outlives_a_restart() {
    let path = fresh_db_path("sqlite::throttle-restart");
    let policy = ThrottlePolicy {
        max_attempts: 2,
        max_attempts_per_ip: 100,
        window: Duration::from_secs(600),
    };
    let chain_on = |store: Arc<SqliteStore>| {
        AuthChain::builder(store.clone())
            .throttle(policy, store.clone())
            .module(common::local(store))
            .build()
            .unwrap()
    };
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let hash = common::passwords().hash("right").unwrap();
    store
        .create_account(NewAccount::new("root").password_hash(hash))
        .await
        .unwrap();
    let chain = chain_on(store.clone());
    assert_eq!(
        principal(chain.login(&common::password_request("root", "right")).await).login,
        "root"
    );
    for _ in 0..2 {
        assert_eq!(
            chain
                .login(&common::password_request("root", "wrong"))
                .await
                .unwrap_err(),
            AuthError::InvalidCredentials
        );
    }
    drop(chain);
    store.close().await;

    let chain = chain_on(Arc::new(SqliteStore::open(&path).await.unwrap()));
    assert!(matches!(
        chain.login(&common::password_request("root", "right")).await,
        Err(AuthError::Throttled { .. })
    ));
}

#[tokio::test]
async fn the_store_section_opens_an_sqlite_file() {
    let path = fresh_db_path("sqlite::config");
    let text = format!(
        "chain = [\"local\"]\n[throttle]\nmax_attempts = 1\n[modules.local]\ntype = \"local\"\n\
         [store]\ntype = \"sqlite\"\npath = {:?}\n",
        path.display().to_string()
    );
    let config = Config::from_toml(&text).unwrap();
    assert_eq!(config.store(), Some(&StoreConfig::sqlite(&path)));
    let stores = config.open_stores().await.unwrap();
    stores
        .users()
        .create_account(NewAccount::new("mallory").password_hash("x"))
        .await
        .unwrap();
    let chain = config.build(stores).unwrap();
    chain
        .login(&common::password_request("mallory", "wrong"))
        .await
        .unwrap_err();

    // Both the account and the throttle counter are in the file.
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert!(reopened.find_by_login("mallory", false).await.unwrap().is_some());
    assert_eq!(
        reopened
            .failures_since("ip\u{1f}192.0.2.10", UNIX_EPOCH)
            .await
            .unwrap()
            .count,
        1
    );

    // Durability and pool size, as configured.
    let tuned = Config::from_toml(&format!(
        "chain = []\n[store]\ntype = \"sqlite\"\npath = {:?}\nsynchronous = \"normal\"\nmax_connections = 2\n",
        path.display().to_string()
    ))
    .unwrap();
    let tuned = tuned.store().unwrap().open_sqlite().await.unwrap();
    // PRAGMA synchronous: 1 is NORMAL, 2 is FULL.
    for (store, synchronous, connections) in [(&tuned, 1, 2), (&reopened, 2, 4)] {
        let found: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(found, synchronous);
        assert_eq!(store.pool().options().get_max_connections(), connections);
    }

    // Without a [store] section: memory.
    let memory = Config::from_toml("chain = []\n").unwrap();
    assert_eq!(memory.store(), None);
    memory.open_stores().await.unwrap();

    // A path that cannot be a database names the key.
    let dir = fresh_db_path("sqlite::config-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config::from_toml(&format!(
        "chain = []\n[store]\ntype = \"sqlite\"\npath = {:?}\n",
        dir.display().to_string()
    ))
    .unwrap();
    match config.open_stores().await {
        Err(err @ ConfigError::Invalid { .. }) => assert_eq!(err.key(), Some("store.path"), "{err}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a directory is not a database"),
    }
}
