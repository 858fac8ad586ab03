//! The `UserStore` and `AttemptStore` contract, run against every store: the
//! in-memory ones and SQLite (one fresh database file per test).

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
    for name in names {
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
    assert_eq!(store.count().await, names.len() as u64);
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
