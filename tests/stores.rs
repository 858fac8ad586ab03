//! The `UserStore`, `AttemptStore`, `FlowStore` and `ReplayCache` contract, run
//! against every store: the in-memory ones, SQLite (one fresh database file per
//! test), and with the features `postgres` / `redis` a real PostgreSQL (one fresh
//! database per test) and a real Redis (one key prefix per test).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authchain::account::{
    AttemptStore, ExternalLink, LoginUpdate, MemoryAttemptStore, NewAccount, SqliteStore,
};
use authchain::{AccountId, StoreError};
use common::TestStore;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn link(provider: &str, subject: &str) -> ExternalLink {
    ExternalLink {
        provider: provider.into(),
        subject: subject.into(),
    }
}

async fn create_reads_back_every_field<S: TestStore>(store: Arc<S>) {
    let created = store
        .create_account(
            NewAccount::new("Alice")
                .email("Alice@Example.org")
                .display_name("Alice Liddell")
                .password_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
                .role("admin")
                .role("auditor")
                .disabled(true)
                .linked_to("sso", "alice-sub"),
        )
        .await
        .unwrap();
    assert_eq!(created.login, "Alice");
    assert_eq!(created.roles, set(&["admin", "auditor"]));
    assert_eq!(created.links, [link("sso", "alice-sub")].into());
    assert!(created.mapped_roles.is_empty());
    assert_eq!(created.last_login, None);
    let read = store.account(&created.id).await.unwrap().expect("stored");
    assert_eq!(read, created, "every field, created_at to the nanosecond");
    assert_eq!(
        store.find_by_link("sso", "alice-sub").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.find_by_link("sso", "ALICE-SUB").await.unwrap(),
        None,
        "subjects are exact"
    );
    assert_eq!(store.find_by_link("other", "alice-sub").await.unwrap(), None);
    // Ids are distinct and unknown or malformed ids find nothing.
    let bob = store.create_account(NewAccount::new("bob")).await.unwrap();
    assert_ne!(bob.id, created.id);
    for id in [
        "",
        "0",
        "-1",
        "u0",
        "999999",
        "1; DROP TABLE accounts",
        " 1",
        "01",
    ] {
        assert_eq!(
            store.account(&AccountId(id.into())).await.unwrap(),
            None,
            "{id:?}"
        );
    }
    assert_eq!(store.count().await, 2);
}

async fn login_names_are_unique_after_unicode_lowercasing<S: TestStore>(store: Arc<S>) {
    let upper = store.create_account(NewAccount::new("ÄRGER")).await.unwrap();
    for taken in ["ärger", "Ärger", "äRGER"] {
        match store.create_account(NewAccount::new(taken)).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{taken}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.count().await, 1);
    // Case-insensitive lookups fold non-ASCII letters (SQLite's lower() would not).
    assert_eq!(
        store.find_by_login("ärger", true).await.unwrap().map(|a| a.id),
        Some(upper.id.clone())
    );
    // Case-sensitive lookups compare exactly.
    assert_eq!(store.find_by_login("ärger", false).await.unwrap(), None);
    assert_eq!(
        store.find_by_login("ÄRGER", false).await.unwrap().map(|a| a.id),
        Some(upper.id)
    );
    // Lower-casing, not full case folding: `ß` and `SS` stay different names.
    store.create_account(NewAccount::new("straße")).await.unwrap();
    store.create_account(NewAccount::new("STRASSE")).await.unwrap();
    assert_eq!(
        store.find_by_login("Straße", true).await.unwrap().unwrap().login,
        "straße"
    );
    assert_eq!(store.find_by_login("nobody", true).await.unwrap(), None);
}

async fn email_lookups_follow_case_rules_and_report_ambiguity<S: TestStore>(store: Arc<S>) {
    let a = store
        .create_account(NewAccount::new("a").email("Bob@Example.org"))
        .await
        .unwrap();
    let b = store
        .create_account(NewAccount::new("b").email("bob@example.org"))
        .await
        .unwrap();
    store.create_account(NewAccount::new("c")).await.unwrap();
    assert_eq!(
        store.find_by_email("BOB@EXAMPLE.ORG", true).await,
        Err(StoreError::Ambiguous),
        "two accounts match case-insensitively: an error, never a guess"
    );
    assert_eq!(
        store
            .find_by_email("Bob@Example.org", false)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(a.id)
    );
    assert_eq!(
        store
            .find_by_email("bob@example.org", false)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(b.id)
    );
    assert_eq!(store.find_by_email("BOB@example.org", false).await.unwrap(), None);
    assert_eq!(
        store.find_by_email("carol@example.org", true).await.unwrap(),
        None
    );
    // The same address twice, exactly: even a case-sensitive lookup is ambiguous.
    store
        .create_account(NewAccount::new("d").email("Bob@Example.org"))
        .await
        .unwrap();
    assert_eq!(
        store.find_by_email("Bob@Example.org", false).await,
        Err(StoreError::Ambiguous)
    );
}

async fn a_taken_link_refuses_the_whole_new_account<S: TestStore>(store: Arc<S>) {
    let first = store
        .create_account(NewAccount::new("carol").linked_to("sso", "c-1"))
        .await
        .unwrap();
    let err = store
        .create_account(NewAccount::new("carol2").role("admin").linked_to("sso", "c-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.count().await, 1, "nothing of the refused account remains");
    assert_eq!(store.find_by_login("carol2", true).await.unwrap(), None);
    assert_eq!(
        store.find_by_link("sso", "c-1").await.unwrap().map(|a| a.id),
        Some(first.id)
    );
    // The same subject at another provider is another identity.
    store
        .create_account(NewAccount::new("carol3").linked_to("other", "c-1"))
        .await
        .unwrap();
}

async fn record_login_writes_time_link_and_one_providers_roles<S: TestStore>(store: Arc<S>) {
    let account = store
        .create_account(NewAccount::new("dave").role("auditor"))
        .await
        .unwrap();
    let first = SystemTime::now() - Duration::from_secs(3600);
    let mut update = LoginUpdate::new(account.id.clone(), first);
    update.link = Some(link("sso", "dave-sub"));
    update.mapped_roles = Some(("sso".into(), set(&["developer", "viewer"])));
    store.record_login(update).await.unwrap();
    let mut other = LoginUpdate::new(account.id.clone(), first + Duration::from_nanos(1));
    other.mapped_roles = Some(("ldap".into(), set(&["operator"])));
    store.record_login(other).await.unwrap();

    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.last_login, Some(first + Duration::from_nanos(1)));
    assert_eq!(stored.links, [link("sso", "dave-sub")].into());
    assert_eq!(stored.roles, set(&["auditor"]));
    assert_eq!(
        stored.mapped_roles.get("sso"),
        Some(&set(&["developer", "viewer"]))
    );
    assert_eq!(stored.mapped_roles.get("ldap"), Some(&set(&["operator"])));

    // A later login through `sso` replaces its roles only; mapped to nothing is kept
    // apart from never mapped. Linking the same identity again is no change.
    let mut again = LoginUpdate::new(account.id.clone(), first + Duration::from_secs(60));
    again.link = Some(link("sso", "dave-sub"));
    again.mapped_roles = Some(("sso".into(), BTreeSet::new()));
    store.record_login(again).await.unwrap();
    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.mapped_roles.get("sso"), Some(&BTreeSet::new()));
    assert_eq!(stored.mapped_roles.get("ldap"), Some(&set(&["operator"])));
    assert_eq!(stored.effective_roles(), set(&["auditor", "operator"]));
    assert_eq!(stored.links.len(), 1);

    // Times before the epoch round-trip too.
    let ancient = UNIX_EPOCH - Duration::from_secs(86_400 * 365) - Duration::from_nanos(7);
    store
        .record_login(LoginUpdate::new(account.id.clone(), ancient))
        .await
        .unwrap();
    assert_eq!(
        store.account(&account.id).await.unwrap().unwrap().last_login,
        Some(ancient)
    );
}

async fn a_conflicting_record_login_changes_nothing<S: TestStore>(store: Arc<S>) {
    let owner = store
        .create_account(NewAccount::new("owner").linked_to("sso", "shared"))
        .await
        .unwrap();
    let victim = store.create_account(NewAccount::new("victim")).await.unwrap();
    let mut seed = LoginUpdate::new(victim.id.clone(), UNIX_EPOCH + Duration::from_secs(1_000_000));
    seed.mapped_roles = Some(("sso".into(), set(&["viewer"])));
    store.record_login(seed).await.unwrap();
    let before = store.account(&victim.id).await.unwrap().unwrap();

    let mut update = LoginUpdate::new(victim.id.clone(), SystemTime::now());
    update.link = Some(link("sso", "shared"));
    update.mapped_roles = Some(("sso".into(), set(&["admin"])));
    let err = store.record_login(update).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.account(&victim.id).await.unwrap().unwrap(),
        before,
        "no last-login time, no link, no roles: all or nothing"
    );
    assert_eq!(
        store.find_by_link("sso", "shared").await.unwrap().map(|a| a.id),
        Some(owner.id)
    );
}

async fn writes_to_unknown_accounts_are_not_found<S: TestStore>(store: Arc<S>) {
    store.create_account(NewAccount::new("someone")).await.unwrap();
    for id in ["999999", "not-an-id", ""] {
        let id = AccountId(id.into());
        assert_eq!(
            store
                .record_login(LoginUpdate::new(id.clone(), SystemTime::now()))
                .await,
            Err(StoreError::NotFound)
        );
        assert_eq!(store.set_password_hash(&id, "x").await, Err(StoreError::NotFound));
        assert_eq!(store.set_disabled(&id, true).await, Err(StoreError::NotFound));
        assert_eq!(
            store.set_local_role(&id, "admin", true).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.set_local_role(&id, "admin", false).await,
            Err(StoreError::NotFound)
        );
    }
    let mut linking = LoginUpdate::new(AccountId("999999".into()), SystemTime::now());
    linking.link = Some(link("sso", "ghost"));
    assert_eq!(store.record_login(linking).await, Err(StoreError::NotFound));
    assert_eq!(store.find_by_link("sso", "ghost").await.unwrap(), None);
    assert_eq!(store.count().await, 1);
}

async fn password_disabled_and_local_roles_are_updated<S: TestStore>(store: Arc<S>) {
    let account = store
        .create_account(NewAccount::new("erin").password_hash("old-hash"))
        .await
        .unwrap();
    store.set_password_hash(&account.id, "new-hash").await.unwrap();
    store.set_disabled(&account.id, true).await.unwrap();
    store.set_local_role(&account.id, "admin", true).await.unwrap();
    store.set_local_role(&account.id, "admin", true).await.unwrap();
    store.set_local_role(&account.id, "viewer", true).await.unwrap();
    store.set_local_role(&account.id, "viewer", false).await.unwrap();
    store
        .set_local_role(&account.id, "never-granted", false)
        .await
        .unwrap();
    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_deref(), Some("new-hash"));
    assert!(stored.disabled);
    assert_eq!(stored.roles, set(&["admin"]));
    store.set_disabled(&account.id, false).await.unwrap();
    assert!(!store.account(&account.id).await.unwrap().unwrap().disabled);
}

/// Listing pages by login name; unlinking drops the links and mapped roles of one
/// provider only.
async fn accounts_are_listed_by_page_and_unlinked_per_provider<S: TestStore>(store: Arc<S>) {
    for login in ["carol", "alice", "bob"] {
        store.create_account(NewAccount::new(login)).await.unwrap();
    }
    let logins =
        |page: Vec<authchain::account::Account>| page.into_iter().map(|a| a.login).collect::<Vec<_>>();
    assert_eq!(
        logins(store.list_accounts(None, 2).await.unwrap()),
        ["alice", "bob"]
    );
    assert_eq!(
        logins(store.list_accounts(Some("bob"), 2).await.unwrap()),
        ["carol"]
    );
    assert!(store.list_accounts(Some("carol"), 2).await.unwrap().is_empty());
    assert_eq!(
        store.list_accounts(None, usize::MAX).await.unwrap().len(),
        3,
        "a huge limit is capped, not an error"
    );

    let alice = store.find_by_login("alice", false).await.unwrap().unwrap();
    let mut update = LoginUpdate::new(alice.id.clone(), SystemTime::now());
    update.link = Some(link("corp", "alice-corp"));
    update.mapped_roles = Some(("corp".into(), set(&["admin"])));
    store.record_login(update).await.unwrap();
    let mut update = LoginUpdate::new(alice.id.clone(), SystemTime::now());
    update.link = Some(link("other", "alice-other"));
    update.mapped_roles = Some(("other".into(), set(&["viewer"])));
    store.record_login(update).await.unwrap();

    assert_eq!(store.unlink(&alice.id, "corp").await.unwrap(), 1);
    let stored = store.account(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        stored
            .links
            .iter()
            .map(|l| l.provider.as_str())
            .collect::<Vec<_>>(),
        ["other"]
    );
    assert_eq!(stored.effective_roles(), set(&["viewer"]));
    assert!(store.find_by_link("corp", "alice-corp").await.unwrap().is_none());
    assert_eq!(store.unlink(&alice.id, "corp").await.unwrap(), 0);
    assert!(matches!(
        store.unlink(&AccountId("999999".into()), "corp").await,
        Err(StoreError::NotFound)
    ));
}

async fn hostile_input_is_stored_and_matched_literally<S: TestStore>(store: Arc<S>) {
    let long = "x".repeat(100_000);
    let names = [
        "'; DROP TABLE accounts; --",
        "\" OR 1=1 --",
        "a_c",
        "a%",
        "nul\0byte",
        "nul",
        "🦀 ünïcødé",
        long.as_str(),
    ];
    let mut refused = 0;
    for name in names {
        if S::refuses(name) {
            let err = store
                .create_account(NewAccount::new(name).linked_to("p", "s"))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidValue { .. }), "{err:?}");
            let err = store
                .create_account(NewAccount::new("fine").linked_to(name, name))
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidValue { .. }), "{err:?}");
            assert_eq!(store.find_by_login(name, true).await.unwrap(), None);
            assert_eq!(store.find_by_link(name, name).await.unwrap(), None);
            assert_eq!(store.find_by_email(name, true).await.unwrap(), None);
            refused += 1;
            continue;
        }
        let account = store
            .create_account(
                NewAccount::new(name)
                    .email(format!("{name}@example.org"))
                    .display_name(name)
                    .role(name)
                    .linked_to(name, name),
            )
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", &name[..name.len().min(40)]));
        let found = store.find_by_login(name, false).await.unwrap().expect(name);
        assert_eq!(found, account);
        assert_eq!(
            store.find_by_link(name, name).await.unwrap().map(|a| a.id),
            Some(account.id.clone())
        );
        assert_eq!(
            store
                .find_by_email(&format!("{name}@example.org"), true)
                .await
                .unwrap()
                .map(|a| a.id),
            Some(account.id.clone())
        );
        let mut update = LoginUpdate::new(account.id.clone(), SystemTime::now());
        update.mapped_roles = Some((name.into(), set(&[name])));
        store.record_login(update).await.unwrap();
    }
    assert_eq!(store.count().await, (names.len() - refused) as u64);
    // No wildcard or prefix matching.
    assert_eq!(store.find_by_login("abc", true).await.unwrap(), None);
    assert_eq!(store.find_by_login("a", true).await.unwrap(), None);
    assert_eq!(store.find_by_login("nul\0", true).await.unwrap(), None);
    assert_eq!(store.find_by_link("nul", "nul\0byte").await.unwrap(), None);
}

async fn errors_never_carry_password_hashes<S: TestStore>(store: Arc<S>) {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$U0VDUkVULVNBTFQ$U0VDUkVULUhBU0g";
    let account = store
        .create_account(NewAccount::new("frank").password_hash(hash))
        .await
        .unwrap();
    let err = store
        .create_account(NewAccount::new("FRANK").password_hash(hash))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("U0VDUkVU"), "{err}");
    assert!(
        !format!("{account:?}").contains("U0VDUkVU"),
        "Debug redacts the hash"
    );
}

store_tests!(
    create_reads_back_every_field,
    login_names_are_unique_after_unicode_lowercasing,
    email_lookups_follow_case_rules_and_report_ambiguity,
    a_taken_link_refuses_the_whole_new_account,
    record_login_writes_time_link_and_one_providers_roles,
    a_conflicting_record_login_changes_nothing,
    writes_to_unknown_accounts_are_not_found,
    password_disabled_and_local_roles_are_updated,
    accounts_are_listed_by_page_and_unlinked_per_provider,
    hostile_input_is_stored_and_matched_literally,
    errors_never_carry_password_hashes,
);

// ---- AttemptStore ----

async fn attempts_count_within_the_window_and_clear(store: Arc<dyn AttemptStore>) {
    let window = Duration::from_secs(600);
    let t0 = SystemTime::now() - Duration::from_secs(1200);
    assert_eq!(store.failures_since("k", t0).await.unwrap().count, 0);
    store.record_failure("k", t0, window).await.unwrap();
    let t1 = t0 + Duration::from_secs(900);
    store.record_failure("k", t1, window).await.unwrap();
    store
        .record_failure("k", t1 + Duration::from_nanos(5), window)
        .await
        .unwrap();
    store.record_failure("other", t1, window).await.unwrap();
    // t0 left the window when t1 was recorded.
    let all = store.failures_since("k", UNIX_EPOCH).await.unwrap();
    assert_eq!(all.count, 2);
    assert_eq!(all.oldest, Some(t1));
    let recent = store
        .failures_since("k", t1 + Duration::from_nanos(1))
        .await
        .unwrap();
    assert_eq!(recent.count, 1);
    assert_eq!(recent.oldest, Some(t1 + Duration::from_nanos(5)));
    store.clear("k").await.unwrap();
    assert_eq!(store.failures_since("k", UNIX_EPOCH).await.unwrap().count, 0);
    assert_eq!(store.failures_since("other", UNIX_EPOCH).await.unwrap().count, 1);
    // Keys are exact strings.
    assert_eq!(store.failures_since("OTHER", UNIX_EPOCH).await.unwrap().count, 0);
}

async fn attempts_are_bounded_per_key(store: Arc<dyn AttemptStore>) {
    let now = SystemTime::now();
    for i in 0..10u64 {
        store
            .record_failure("flood", now + Duration::from_millis(i), Duration::from_secs(600))
            .await
            .unwrap();
    }
    let held = store.failures_since("flood", UNIX_EPOCH).await.unwrap();
    assert_eq!(held.count, 3, "at most max_per_key, the newest kept");
    assert_eq!(held.oldest, Some(now + Duration::from_millis(7)));
}

#[tokio::test]
async fn memory_attempts_count_within_the_window_and_clear() {
    attempts_count_within_the_window_and_clear(Arc::new(MemoryAttemptStore::new())).await;
}

#[tokio::test]
async fn sqlite_attempts_count_within_the_window_and_clear() {
    let store = common::sqlite_store("stores::sqlite_attempts_window").await;
    attempts_count_within_the_window_and_clear(store).await;
}

#[tokio::test]
async fn memory_attempts_are_bounded_per_key() {
    attempts_are_bounded_per_key(Arc::new(MemoryAttemptStore::with_bounds(100, 3))).await;
}

#[tokio::test]
async fn sqlite_attempts_are_bounded_per_key() {
    let path = common::fresh_db_path("stores::sqlite_attempts_bounded");
    let store = SqliteStore::open(path).await.unwrap().with_attempt_bounds(100, 3);
    attempts_are_bounded_per_key(Arc::new(store)).await;
}

#[tokio::test]
async fn a_flood_of_flow_starts_from_one_address_leaves_other_clients_logins_working() {
    use authchain::StartLogin;
    use authchain::flow::{DEFAULT_MAX_FLOWS_PER_CLIENT, FlowError, Flows, MemoryFlowStore};
    let store = Arc::new(MemoryFlowStore::default());
    let flows = Flows::new(store.clone());
    let flooder = StartLogin::new().client("198.51.100.66".parse().unwrap());
    let mut first = None;
    let mut last = None;
    // Twice the store's 100,000-flow bound, from one address.
    for _ in 0..200_000 {
        let started = flows.start("oidc", &flooder).await.unwrap();
        first.get_or_insert_with(|| started.clone());
        last = Some(started);
    }
    assert_eq!(store.len(), DEFAULT_MAX_FLOWS_PER_CLIENT);
    let user = flows
        .start("oidc", &StartLogin::new().client("192.0.2.7".parse().unwrap()))
        .await
        .unwrap();
    let taken = flows
        .take("oidc", &user.flow.state, Some(&user.cookie.value))
        .await
        .unwrap();
    assert_eq!(taken.state, user.flow.state);
    // The flooder's own oldest went; its newest still finishes.
    let first = first.unwrap();
    assert_eq!(
        flows
            .take("oidc", &first.flow.state, Some(&first.cookie.value))
            .await,
        Err(FlowError::Unknown)
    );
    let last = last.unwrap();
    assert!(
        flows
            .take("oidc", &last.flow.state, Some(&last.cookie.value))
            .await
            .is_ok()
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_attempts_count_within_the_window_and_clear() {
    attempts_count_within_the_window_and_clear(common::state::pg_store().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_attempts_are_bounded_per_key() {
    let store = common::state::pg_store().await;
    let store = (*store).clone().with_attempt_bounds(100, 3);
    attempts_are_bounded_per_key(Arc::new(store)).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_attempts_count_within_the_window_and_clear() {
    attempts_count_within_the_window_and_clear(common::state::redis_state().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_attempts_are_bounded_per_key() {
    let options = authchain::state::RedisOptions::default().max_failures_per_key(3);
    attempts_are_bounded_per_key(common::state::redis_state_with(options).await).await;
}

#[tokio::test]
async fn sqlite_shares_flows_and_replay_ids_between_stores_on_one_file() {
    use authchain::flow::{FlowStore, ReplayCache};
    let path = common::fresh_db_path("stores::sqlite_state");
    let one = SqliteStore::open(&path).await.unwrap();
    let two = SqliteStore::open(&path).await.unwrap();
    let started = flows::flow("shared", "sso", Duration::from_secs(600)).await;
    one.insert(started.clone()).await.unwrap();
    let digest = Some(started.cookie_digest);
    assert_eq!(
        two.take("sso", "shared", digest, SystemTime::now()).await,
        Ok(started)
    );
    assert_eq!(
        one.take("sso", "shared", digest, SystemTime::now()).await,
        Err(authchain::flow::FlowError::Replayed)
    );
    let later = SystemTime::now() + Duration::from_secs(600);
    assert!(one.check_and_remember("assertion", later).await.unwrap());
    assert!(!two.check_and_remember("assertion", later).await.unwrap());
}

// ---- FlowStore ----

mod flows {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use authchain::flow::{FlowError, FlowStore, Flows, MemoryFlowStore, PendingFlow};

    fn digest(cookie: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(cookie.as_bytes()).into()
    }

    /// A flow as a module starts it (random nonce and verifier), under `state`,
    /// bound to the cookie `"cookie"`, with every optional field set.
    pub async fn flow(state: &str, module: &str, ttl: Duration) -> PendingFlow {
        let minter = Flows::new(Arc::new(MemoryFlowStore::default()));
        let mut flow = minter
            .start_with(module, &authchain::StartLogin::new(), None)
            .await
            .unwrap()
            .flow;
        flow.state = state.into();
        flow.expires_at = SystemTime::now() + ttl;
        flow.cookie_digest = digest("cookie");
        flow.return_to = Some("/after?x=1".into());
        flow.extra = Some("request id\nwith\u{1f}odd bytes".into());
        flow.client = Some("2001:db8::7".parse().unwrap());
        flow
    }

    /// Every field round-trips; a take is one-time, refuses other modules and
    /// other browsers without consuming, and names replays and expiry.
    pub async fn one_time_take(store: Arc<dyn FlowStore>) {
        let ttl = Duration::from_secs(600);
        let started = flow("state-a", "sso", ttl).await;
        store.insert(started.clone()).await.unwrap();
        let now = SystemTime::now();
        let cookie = Some(digest("cookie"));
        assert_eq!(
            store.take("other", "state-a", cookie, now).await,
            Err(FlowError::OtherModule)
        );
        assert_eq!(
            store.take("sso", "state-a", Some(digest("thief")), now).await,
            Err(FlowError::CookieMismatch)
        );
        assert_eq!(
            store.take("sso", "state-a", None, now).await,
            Err(FlowError::CookieMismatch)
        );
        let taken = store.take("sso", "state-a", cookie, now).await.unwrap();
        assert_eq!(taken, started, "every field, expiry to the nanosecond");
        assert_eq!(
            store.take("sso", "state-a", cookie, now).await,
            Err(FlowError::Replayed)
        );
        assert_eq!(
            store.take("sso", "never-started", cookie, now).await,
            Err(FlowError::Unknown)
        );
        let mut anonymous = flow("state-b", "sso", Duration::from_secs(1)).await;
        anonymous.client = None;
        anonymous.return_to = None;
        anonymous.extra = None;
        store.insert(anonymous.clone()).await.unwrap();
        let late = SystemTime::now() + Duration::from_secs(5);
        assert_eq!(
            store.take("sso", "state-b", cookie, late).await,
            Err(FlowError::Expired)
        );
    }

    /// Many takes of one state at once: exactly one succeeds.
    pub async fn concurrent_takes_succeed_once(store: Arc<dyn FlowStore>) {
        store
            .insert(flow("contested", "sso", Duration::from_secs(600)).await)
            .await
            .unwrap();
        let now = SystemTime::now();
        let takes = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take("sso", "contested", Some(digest("cookie")), now).await })
        });
        let mut won = 0;
        for take in takes {
            match take.await.unwrap() {
                Ok(_) => won += 1,
                Err(err) => assert_eq!(err, FlowError::Replayed),
            }
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn memory_one_time_take() {
        one_time_take(Arc::new(MemoryFlowStore::default())).await;
    }

    #[tokio::test]
    async fn memory_concurrent_takes_succeed_once() {
        concurrent_takes_succeed_once(Arc::new(MemoryFlowStore::default())).await;
    }

    #[tokio::test]
    async fn sqlite_one_time_take() {
        one_time_take(crate::common::sqlite_store("stores::flows::sqlite_one_time").await).await;
    }

    #[tokio::test]
    async fn sqlite_concurrent_takes_succeed_once() {
        concurrent_takes_succeed_once(crate::common::sqlite_store("stores::flows::sqlite_concurrent").await)
            .await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_one_time_take() {
        one_time_take(crate::common::state::redis_state().await).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_concurrent_takes_succeed_once() {
        concurrent_takes_succeed_once(crate::common::state::redis_state().await).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_bounds_the_logins_one_client_starts_and_keys_expire() {
        let mut options = authchain::state::RedisOptions::default();
        options.max_flows_per_client = 2;
        let store = crate::common::state::redis_state_with(options).await;
        let ttl = Duration::from_secs(600);
        store.insert(flow("r1", "sso", ttl).await).await.unwrap();
        store.insert(flow("r2", "sso", ttl).await).await.unwrap();
        assert_eq!(
            store.insert(flow("r3", "sso", ttl).await).await,
            Err(FlowError::Full)
        );
        let mut other_client = flow("r4", "sso", ttl).await;
        other_client.client = Some("192.0.2.99".parse().unwrap());
        store.insert(other_client).await.unwrap();
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_one_time_take() {
        one_time_take(crate::common::state::pg_store().await).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_concurrent_takes_succeed_once() {
        concurrent_takes_succeed_once(crate::common::state::pg_store().await).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_bounds_the_pending_logins_of_one_client() {
        use authchain::account::{PgOptions, PgStore};
        let url = crate::common::state::fresh_pg_url().await;
        let mut options = PgOptions::default();
        options.max_pending_flows_per_client = 2;
        let store = PgStore::connect(&url, options).await.unwrap();
        let ttl = Duration::from_secs(600);
        store.insert(flow("c1", "sso", ttl).await).await.unwrap();
        store.insert(flow("c2", "sso", ttl).await).await.unwrap();
        assert_eq!(
            store.insert(flow("c3", "sso", ttl).await).await,
            Err(FlowError::Full)
        );
        let mut other_client = flow("c4", "sso", ttl).await;
        other_client.client = Some("192.0.2.99".parse().unwrap());
        store.insert(other_client).await.unwrap();
        // A finished login frees its place.
        store
            .take("sso", "c1", Some(digest("cookie")), SystemTime::now())
            .await
            .unwrap();
        store.insert(flow("c5", "sso", ttl).await).await.unwrap();
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_purges_expired_flows_replay_ids_and_failures() {
        use authchain::account::AttemptStore;
        use authchain::flow::ReplayCache;
        let store = crate::common::state::pg_store().await;
        store
            .insert(flow("short", "sso", Duration::ZERO).await)
            .await
            .unwrap();
        store
            .insert(flow("long", "sso", Duration::from_secs(600)).await)
            .await
            .unwrap();
        let past = SystemTime::now() - Duration::from_secs(1);
        assert!(store.check_and_remember("gone", past).await.unwrap());
        assert!(
            store
                .check_and_remember("kept", SystemTime::now() + Duration::from_secs(600))
                .await
                .unwrap()
        );
        let window = Duration::from_secs(60);
        store
            .record_failure("old", SystemTime::now() - Duration::from_secs(120), window)
            .await
            .unwrap();
        store
            .record_failure("new", SystemTime::now(), window)
            .await
            .unwrap();
        assert_eq!(store.purge_expired(window).await.unwrap(), 3);
        assert_eq!(store.purge_expired(window).await.unwrap(), 0);
        assert!(
            store
                .take("sso", "long", Some(digest("cookie")), SystemTime::now())
                .await
                .is_ok()
        );
    }
}

// ---- ReplayCache ----

mod replay {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use authchain::flow::{MemoryReplayCache, ReplayCache};

    /// An id is accepted once until it expires; ids are exact and of any length.
    pub async fn ids_are_one_time(cache: Arc<dyn ReplayCache>) {
        let later = SystemTime::now() + Duration::from_secs(600);
        assert!(cache.check_and_remember("issuer\nid-1", later).await.unwrap());
        assert!(!cache.check_and_remember("issuer\nid-1", later).await.unwrap());
        assert!(cache.check_and_remember("issuer\nID-1", later).await.unwrap());
        let long = "x".repeat(100_000);
        assert!(cache.check_and_remember(&long, later).await.unwrap());
        assert!(!cache.check_and_remember(&long, later).await.unwrap());
        // Once expired, an id is forgotten (its message is refused by time anyway).
        let soon = SystemTime::now() + Duration::from_millis(300);
        assert!(cache.check_and_remember("brief", soon).await.unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(cache.check_and_remember("brief", later).await.unwrap());
        assert!(!cache.check_and_remember("brief", later).await.unwrap());
    }

    /// Many checks of one id at once: exactly one is first.
    pub async fn concurrent_checks_accept_once(cache: Arc<dyn ReplayCache>) {
        let later = SystemTime::now() + Duration::from_secs(600);
        let checks = (0..16).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.check_and_remember("contested", later).await })
        });
        let mut first = 0;
        for check in checks {
            first += usize::from(check.await.unwrap().unwrap());
        }
        assert_eq!(first, 1);
    }

    #[tokio::test]
    async fn memory_ids_are_one_time() {
        ids_are_one_time(Arc::new(MemoryReplayCache::default())).await;
    }

    #[tokio::test]
    async fn memory_concurrent_checks_accept_once() {
        concurrent_checks_accept_once(Arc::new(MemoryReplayCache::default())).await;
    }

    #[tokio::test]
    async fn sqlite_ids_are_one_time() {
        ids_are_one_time(crate::common::sqlite_store("stores::replay::sqlite_one_time").await).await;
    }

    #[tokio::test]
    async fn sqlite_concurrent_checks_accept_once() {
        concurrent_checks_accept_once(crate::common::sqlite_store("stores::replay::sqlite_concurrent").await)
            .await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_ids_are_one_time() {
        ids_are_one_time(crate::common::state::redis_state().await).await;
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_concurrent_checks_accept_once() {
        concurrent_checks_accept_once(crate::common::state::redis_state().await).await;
    }

    /// Two connections (two replicas) to one server: an id accepted through one is
    /// a replay through the other.
    #[cfg(all(feature = "postgres", feature = "redis"))]
    #[tokio::test]
    async fn ids_accepted_by_one_replica_are_replays_at_another() {
        use authchain::account::{PgOptions, PgStore};
        use authchain::state::{RedisOptions, RedisState};
        let later = SystemTime::now() + Duration::from_secs(600);
        let url = crate::common::state::fresh_pg_url().await;
        let one = PgStore::connect(&url, PgOptions::default()).await.unwrap();
        let two = PgStore::connect(&url, PgOptions::default()).await.unwrap();
        assert!(one.check_and_remember("idp\nassertion-1", later).await.unwrap());
        assert!(!two.check_and_remember("idp\nassertion-1", later).await.unwrap());
        let redis_url = crate::common::state::redis().var("REDIS_URL");
        let prefix = crate::common::state::fresh_redis_prefix();
        let one = RedisState::connect(&redis_url, RedisOptions::default().prefix(prefix.clone()))
            .await
            .unwrap();
        let two = RedisState::connect(&redis_url, RedisOptions::default().prefix(prefix))
            .await
            .unwrap();
        assert!(one.check_and_remember("idp\nassertion-1", later).await.unwrap());
        assert!(!two.check_and_remember("idp\nassertion-1", later).await.unwrap());
        // Another prefix is another service: its own ids.
        let other = crate::common::state::redis_state().await;
        assert!(other.check_and_remember("idp\nassertion-1", later).await.unwrap());
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_ids_are_one_time() {
        ids_are_one_time(crate::common::state::pg_store().await).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_concurrent_checks_accept_once() {
        concurrent_checks_accept_once(crate::common::state::pg_store().await).await;
    }
}

// ---- Public keys (key-based login) ----

mod keys {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use authchain::StoreError;
    use authchain::account::{
        KeyFamily, KeyId, MAX_KEY_LABEL_BYTES, MAX_KEYS_PER_ACCOUNT, MAX_PUBLIC_KEY_BYTES,
        MAX_REVOKED_KEYS_KEPT, NewAccount, NewPublicKey,
    };

    use crate::common::TestStore;

    fn key(n: u8) -> NewPublicKey {
        NewPublicKey::new(KeyFamily::P256, vec![0x30, 0x59, n])
    }

    async fn keys_are_added_listed_and_revoked<S: TestStore>(store: Arc<S>) {
        let alice = store.create_account(NewAccount::new("alice")).await.unwrap();
        let bob = store.create_account(NewAccount::new("bob")).await.unwrap();
        assert_eq!(store.public_keys(&alice.id).await.unwrap(), vec![]);
        let first = store
            .add_public_key(&alice.id, key(1).label("laptop"))
            .await
            .unwrap();
        assert_eq!(first.account, alice.id);
        assert_eq!(first.family, KeyFamily::P256);
        assert_eq!(first.label.as_deref(), Some("laptop"));
        assert!(!first.is_revoked());
        assert!(first.fingerprint().starts_with("SHA256:"));
        let second = store
            .add_public_key(&alice.id, NewPublicKey::new(KeyFamily::Ed25519, vec![7; 44]))
            .await
            .unwrap();
        assert_ne!(first.id, second.id);
        let listed = store.public_keys(&alice.id).await.unwrap();
        assert_eq!(
            listed,
            vec![first.clone(), second.clone()],
            "every field, oldest first"
        );
        // The same bytes twice on one account: a conflict; on another account: fine.
        assert!(matches!(
            store.add_public_key(&alice.id, key(1)).await,
            Err(StoreError::Conflict(_))
        ));
        store.add_public_key(&bob.id, key(1)).await.unwrap();
        // Revocation: only the owner's key, idempotent, the first time stays.
        let at = SystemTime::now() - Duration::from_secs(60);
        assert_eq!(
            store.revoke_public_key(&bob.id, &first.id, at).await,
            Err(StoreError::NoSuchKey),
            "another account's key"
        );
        for unknown in ["", "0", "k999", "999", "01", "1; --"] {
            assert_eq!(
                store
                    .revoke_public_key(&alice.id, &KeyId(unknown.into()), at)
                    .await,
                Err(StoreError::NoSuchKey),
                "{unknown:?}"
            );
        }
        let revoked = store.revoke_public_key(&alice.id, &first.id, at).await.unwrap();
        assert_eq!(revoked.revoked_at, Some(at));
        let again = store
            .revoke_public_key(&alice.id, &first.id, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(again.revoked_at, Some(at));
        let listed = store.public_keys(&alice.id).await.unwrap();
        assert_eq!(listed[0].revoked_at, Some(at));
        assert_eq!(listed[1], second);
        // A revoked key cannot come back while its row is kept.
        assert!(matches!(
            store.add_public_key(&alice.id, key(1)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.public_keys(&bob.id).await.unwrap().len(), 1);
    }

    async fn key_writes_are_bounded_and_change_nothing_on_error<S: TestStore>(store: Arc<S>) {
        let alice = store.create_account(NewAccount::new("alice")).await.unwrap();
        let unknown = authchain::AccountId("999999".into());
        assert_eq!(
            store.add_public_key(&unknown, key(1)).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(store.public_keys(&unknown).await, Err(StoreError::NotFound));
        assert_eq!(
            store
                .revoke_public_key(&unknown, &KeyId("1".into()), SystemTime::now())
                .await,
            Err(StoreError::NotFound)
        );
        let too_big = NewPublicKey::new(KeyFamily::Rsa, vec![0; MAX_PUBLIC_KEY_BYTES + 1]);
        assert_eq!(
            store.add_public_key(&alice.id, too_big).await,
            Err(StoreError::TooLong {
                field: "key",
                max: MAX_PUBLIC_KEY_BYTES
            })
        );
        assert!(matches!(
            store
                .add_public_key(&alice.id, NewPublicKey::new(KeyFamily::Rsa, Vec::new()))
                .await,
            Err(StoreError::InvalidValue { field: "key", .. })
        ));
        assert_eq!(
            store
                .add_public_key(&alice.id, key(1).label("x".repeat(MAX_KEY_LABEL_BYTES + 1)))
                .await,
            Err(StoreError::TooLong {
                field: "label",
                max: MAX_KEY_LABEL_BYTES
            })
        );
        assert!(matches!(
            store.add_public_key(&alice.id, key(1).label("a\nb")).await,
            Err(StoreError::InvalidValue { field: "label", .. })
        ));
        assert_eq!(
            store.public_keys(&alice.id).await.unwrap(),
            vec![],
            "nothing written"
        );
        // At most MAX_KEYS_PER_ACCOUNT unrevoked keys.
        let mut added = Vec::new();
        for n in 0..MAX_KEYS_PER_ACCOUNT as u8 {
            added.push(store.add_public_key(&alice.id, key(n)).await.unwrap());
        }
        assert_eq!(
            store.add_public_key(&alice.id, key(200)).await,
            Err(StoreError::TooManyKeys {
                max: MAX_KEYS_PER_ACCOUNT
            })
        );
        assert_eq!(
            store.public_keys(&alice.id).await.unwrap().len(),
            MAX_KEYS_PER_ACCOUNT
        );
        // Revoked keys are kept up to MAX_REVOKED_KEYS_KEPT, the oldest dropped first.
        for n in (100u8..).take(MAX_REVOKED_KEYS_KEPT + 3) {
            let victim = added.remove(0);
            store
                .revoke_public_key(&alice.id, &victim.id, SystemTime::now())
                .await
                .unwrap();
            added.push(store.add_public_key(&alice.id, key(n)).await.unwrap());
        }
        let listed = store.public_keys(&alice.id).await.unwrap();
        assert_eq!(
            listed.iter().filter(|k| !k.is_revoked()).count(),
            MAX_KEYS_PER_ACCOUNT
        );
        assert_eq!(
            listed.iter().filter(|k| k.is_revoked()).count(),
            MAX_REVOKED_KEYS_KEPT
        );
        assert!(
            !listed.iter().any(|k| k.spki == key(0).spki),
            "the oldest revoked key was dropped"
        );
    }

    crate::store_tests!(
        keys_are_added_listed_and_revoked,
        key_writes_are_bounded_and_change_nothing_on_error,
    );
}
