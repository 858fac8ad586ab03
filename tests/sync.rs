//! Directory sync: a real slapd (with syncprov) mirrored into a real SQLite file
//! while the tests change the directory.

#[path = "sync/harness.rs"]
mod harness;
#[path = "common/ldap_proxy.rs"]
mod ldap_proxy;
#[path = "common/peer.rs"]
mod peer;
#[path = "sync/refusing_proxy.rs"]
mod refusing_proxy;
#[path = "ldap/slapd.rs"]
mod slapd;

use std::collections::BTreeSet;
use std::time::Duration;

use authchain::account::{NewAccount, SqliteOptions, SqliteStore, UserStore};
use authchain::modules::ldap::{LdapError, LdapOperation};
use authchain::sync::{
    DeletePolicy, DirectoryChange, DirectoryGroup, DirectoryTarget, DirectoryUser, EntryKind, SyncBatch,
    SyncError, SyncMode, SyncPhase,
};
use authchain::{AuthChain, AuthRequest, LoginResult};

use harness::{
    Directory, SOURCE, eventually, group_dn, scope, seed_bulk, start, synchronizer, synchronizer_of, user_dn,
};
use refusing_proxy::RefusingProxy;
use slapd::Slapd;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn account(store: &SqliteStore, login: &str) -> Option<authchain::account::Account> {
    store.find_by_login(login, true).await.expect("store lookup")
}

fn mapped(account: &authchain::account::Account) -> BTreeSet<String> {
    account.mapped_roles.get(SOURCE).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_lands_complete_then_every_change_follows() {
    let slapd = Slapd::start();
    seed_bulk(&slapd, 1000);
    let (store, _path) = harness::store().await;
    // A local account that predates the sync: linked by login name on first sight,
    // its locally granted role kept.
    let local = store
        .create_account(NewAccount::new("alice").role("auditor"))
        .await
        .unwrap();

    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    let status = running.live().await;
    assert!(!status.resumed);
    assert!(status.refresh_changes >= 1054, "{status:?}");
    // 1,000 bulk users + alice, bob, carol and "smith, john" from the seed.
    assert_eq!(store.account_count().await.unwrap(), 1004);
    assert_eq!(status.report.created, 1003, "{status:?}");
    assert_eq!(status.report.linked, 1);
    for i in [0, 1, 499, 999] {
        let login = format!("u{i:04}");
        let user = account(&store, &login).await.expect("synced");
        assert_eq!(
            user.email.as_deref(),
            Some(format!("{login}@example.org").as_str())
        );
        assert_eq!(mapped(&user), set(&[&format!("r{:02}", i % 50)]));
        assert!(!user.disabled);
    }
    let mut dir = Directory::connect(&slapd).await;
    let alice = account(&store, "alice").await.unwrap();
    assert_eq!(alice.id, local.id);
    assert_eq!(alice.roles, set(&["auditor"]));
    assert_eq!(mapped(&alice), set(&["admin", "staff"]));
    let alice_uuid = dir.entry_uuid(&user_dn("alice")).await;
    assert!(
        alice
            .links
            .iter()
            .any(|l| l.provider == SOURCE && l.subject == alice_uuid)
    );

    // A user is added, then put in a group.
    dir.add_user("newbie", "newbie@example.org").await;
    dir.add_member("g01", "newbie").await;
    let newbie = eventually("newbie gets role r01", || async {
        account(&store, "newbie")
            .await
            .filter(|a| mapped(a) == set(&["r01"]))
    })
    .await;
    assert_eq!(newbie.email.as_deref(), Some("newbie@example.org"));

    // Renamed (modrdn): the same account, a new login, its groups kept.
    let before = account(&store, "u0001").await.unwrap();
    dir.rename(&user_dn("u0001"), "uid=u0001-renamed").await;
    let renamed = eventually("u0001 renamed", || async {
        account(&store, "u0001-renamed").await
    })
    .await;
    assert_eq!(renamed.id, before.id);
    assert!(account(&store, "u0001").await.is_none());
    assert_eq!(mapped(&renamed), set(&["r01"]));

    // A new email address.
    dir.replace(&user_dn("u0002"), "mail", &["new-u0002@example.org"])
        .await;
    eventually("u0002's new email", || async {
        account(&store, "u0002")
            .await
            .filter(|a| a.email.as_deref() == Some("new-u0002@example.org"))
    })
    .await;

    // Disabled and enabled again through nsAccountLock.
    dir.replace(&user_dn("u0003"), "nsAccountLock", &["TRUE"]).await;
    eventually("u0003 disabled", || async {
        account(&store, "u0003").await.filter(|a| a.disabled)
    })
    .await;
    dir.replace(&user_dn("u0003"), "nsAccountLock", &["FALSE"]).await;
    eventually("u0003 enabled", || async {
        account(&store, "u0003").await.filter(|a| !a.disabled)
    })
    .await;

    // Deleted: disabled (the default policy), its directory roles dropped.
    dir.delete(&user_dn("u0004")).await;
    let gone = eventually("u0004 disabled", || async {
        account(&store, "u0004").await.filter(|a| a.disabled)
    })
    .await;
    assert!(mapped(&gone).is_empty());

    // Moved between groups.
    dir.remove_member("g05", "u0005").await;
    dir.add_member("g06", "u0005").await;
    eventually("u0005 moved from g05 to g06", || async {
        account(&store, "u0005")
            .await
            .filter(|a| mapped(a) == set(&["r06"]))
    })
    .await;

    // A group deleted: its members lose its role.
    dir.delete(&group_dn("g10")).await;
    for login in ["u0010", "u0060", "u0960"] {
        eventually("g10's members lose r10", || async {
            account(&store, login).await.filter(|a| mapped(a).is_empty())
        })
        .await;
    }
    assert_eq!(mapped(&account(&store, "u0011").await.unwrap()), set(&["r11"]));

    let report = running.stop().await;
    assert_eq!(report.renamed, 1);
    assert_eq!(report.skipped, 0);
    // Nothing was ever created twice.
    assert_eq!(store.account_count().await.unwrap(), 1005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_stored_cookie() {
    let slapd = Slapd::start();
    seed_bulk(&slapd, 200);
    let (store, _path) = harness::store().await;
    let mut first = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    let full = first.live().await;
    assert!(
        full.refresh_changes >= 250,
        "a full refresh lists everything: {full:?}"
    );
    first.stop().await;

    // Changes while nobody listens.
    let mut dir = Directory::connect(&slapd).await;
    dir.add_user("late", "late@example.org").await;
    dir.replace(&user_dn("bob"), "mail", &["bob@new.example.org"])
        .await;
    dir.delete(&user_dn("carol")).await;

    let mut second = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    let resumed = second.live().await;
    assert!(resumed.resumed);
    assert!(
        resumed.refresh_changes <= 10,
        "only what changed is sent again, not the {} entries: {resumed:?}",
        full.refresh_changes
    );
    assert!(account(&store, "late").await.is_some());
    assert_eq!(
        account(&store, "bob").await.unwrap().email.as_deref(),
        Some("bob@new.example.org")
    );
    assert!(account(&store, "carol").await.unwrap().disabled);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synchroniser_reconnects_after_the_directory_crashes() {
    let slapd = Slapd::start();
    let (store, _path) = harness::store().await;
    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    running.live().await;

    slapd.kill();
    let noticed = running
        .wait_for("the lost connection to be noticed", |s| s.last_error.is_some())
        .await;
    assert!(
        matches!(noticed.last_error, Some(SyncError::Directory { .. })),
        "{:?}",
        noticed.last_error
    );
    slapd.resume();
    let mut dir = Directory::connect(&slapd).await;
    dir.replace(&user_dn("bob"), "mail", &["bob@after-crash.example.org"])
        .await;
    dir.add_user("after-crash", "after@example.org").await;
    eventually("changes after the restart", || async {
        let bob = account(&store, "bob").await?;
        (bob.email.as_deref() == Some("bob@after-crash.example.org")).then_some(())?;
        account(&store, "after-crash").await
    })
    .await;
    let status = running.status.borrow().clone();
    assert!(status.sessions >= 2, "{status:?}");
    assert!(
        status.resumed,
        "the new session resumed from the cookie: {status:?}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_entries_are_skipped_and_the_sync_goes_on() {
    let slapd = Slapd::start();
    let (store, _path) = harness::store().await;
    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    running.live().await;
    let bob_before = account(&store, "bob").await.unwrap();
    let count_before = store.account_count().await.unwrap();

    let mut dir = Directory::connect(&slapd).await;
    // No login attribute at all.
    dir.add(
        &format!("cn=nameless,{}", slapd::PEOPLE),
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("cn", &["nameless"]),
            ("sn", &["x"]),
        ],
    )
    .await;
    // Another entry claiming bob's login name.
    dir.add(
        &format!("ou=contractors,{}", slapd::PEOPLE),
        &[("objectClass", &["organizationalUnit"]), ("ou", &["contractors"])],
    )
    .await;
    dir.add(
        &format!("uid=bob,ou=contractors,{}", slapd::PEOPLE),
        &[
            ("objectClass", &["inetOrgPerson"]),
            ("uid", &["BOB"]),
            ("cn", &["Impostor"]),
            ("sn", &["x"]),
            ("mail", &["impostor@evil.test"]),
        ],
    )
    .await;
    running
        .wait_for("both entries to be skipped", |s| s.report.skipped >= 2)
        .await;
    // The sync goes on.
    dir.add_user("after-hostile", "ok@example.org").await;
    eventually("a later change", || async {
        account(&store, "after-hostile").await
    })
    .await;

    let bob = account(&store, "bob").await.unwrap();
    assert_eq!(bob, bob_before, "bob's account is untouched");
    assert_eq!(store.account_count().await.unwrap(), count_before + 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_mode_follows_changes_too() {
    let slapd = Slapd::start();
    let (store, _path) = harness::store().await;
    let running = start(synchronizer(
        &slapd,
        &store,
        scope(),
        SyncMode::Poll(Duration::from_millis(200)),
    ));
    eventually("the first poll", || async { account(&store, "alice").await }).await;
    let mut dir = Directory::connect(&slapd).await;
    dir.add_user("polled", "polled@example.org").await;
    dir.delete(&user_dn("carol")).await;
    eventually("the next poll", || async {
        account(&store, "polled").await?;
        account(&store, "carol").await.filter(|c| c.disabled)
    })
    .await;
    let status = running.status.borrow().clone();
    assert!(status.sessions >= 2, "{status:?}");
    running.stop().await;
}

/// The directory (a proxy in front of slapd) refuses persistent searches with
/// `result_code`: the synchroniser, configured for `persist` with a short
/// `poll_interval`, loads everything and then polls at that interval.
async fn a_refused_persistent_search_falls_back_to_polling(result_code: u8) {
    let slapd = Slapd::start();
    let proxy = RefusingProxy::start(&slapd.ldap_url, result_code).await;
    let (store, _path) = harness::store().await;
    let config = authchain::config::Config::from_toml(&format!(
        r#"
chain = ["{SOURCE}"]
[modules.{SOURCE}]
type = "ldap"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = "{password}"
user_search_base = "{people}"
[[modules.{SOURCE}.role_mapping.rules]]
group = "admins"
role = "admin"
[[modules.{SOURCE}.role_mapping.rules]]
group = "staff"
role = "staff"
[sync]
module = "{SOURCE}"
user_base = "{people}"
group_base = "{groups}"
mode = "persist"
poll_interval = "PT0.2S"
"#,
        url = proxy.url(),
        bind_dn = slapd.service_dn,
        password = slapd.service_password,
        people = slapd::PEOPLE,
        groups = slapd::GROUPS,
    ))
    .expect("configuration");
    let synchronizer = config
        .synchronizer(std::sync::Arc::new(store.clone()))
        .expect("synchroniser")
        .expect("a [sync] table");
    assert_eq!(
        synchronizer.status().borrow().poll_interval,
        None,
        "persist mode starts with a persistent search"
    );
    let mut running = start(synchronizer);

    let first = running
        .wait_for("a completed poll", |s| s.refreshed && s.poll_interval.is_some())
        .await;
    assert_eq!(first.poll_interval, Some(Duration::from_millis(200)), "{first:?}");
    assert!(first.sessions >= 2, "the refused session, then a poll: {first:?}");
    assert!(proxy.refused() >= 1, "the persistent search was refused");
    assert!(proxy.refresh_only() >= 2, "users and groups were polled");
    // The initial load is complete.
    assert_eq!(first.report.created, 4, "{first:?}");
    assert_eq!(store.account_count().await.unwrap(), 4);
    let alice = account(&store, "alice").await.expect("alice synced");
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(mapped(&alice), set(&["admin", "staff"]));
    assert_eq!(mapped(&account(&store, "bob").await.unwrap()), set(&["staff"]));

    // Later changes arrive with the next polls.
    let polls = proxy.refresh_only();
    let mut dir = Directory::connect(&slapd).await;
    dir.add_user("polled", "polled@example.org").await;
    dir.add_member("admins", "polled").await;
    dir.delete(&user_dn("carol")).await;
    eventually("the changes, by polling", || async {
        account(&store, "carol").await.filter(|c| c.disabled)?;
        account(&store, "polled")
            .await
            .filter(|a| mapped(a) == set(&["admin"]))
    })
    .await;
    assert!(proxy.refresh_only() > polls);
    let status = running.status.borrow().clone();
    assert_eq!(
        status.poll_interval,
        Some(Duration::from_millis(200)),
        "{status:?}"
    );
    assert!(status.sessions > first.sessions, "{status:?}");
    // Refused once (by both searches of the first session at most), never asked again.
    assert!((1..=2).contains(&proxy.refused()), "{}", proxy.refused());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_refused_as_unwilling_to_perform_falls_back_to_polling() {
    a_refused_persistent_search_falls_back_to_polling(53).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_refused_as_unavailable_critical_extension_falls_back_to_polling() {
    a_refused_persistent_search_falls_back_to_polling(12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_refused_as_admin_limit_exceeded_falls_back_to_polling() {
    a_refused_persistent_search_falls_back_to_polling(11).await;
}

/// Any other failure of a persistent search is an error: reported, retried with
/// backoff, still as a persistent search.
async fn other_persistent_search_failures_are_retried_not_polled(result_code: u8) {
    let slapd = Slapd::start();
    let proxy = RefusingProxy::start(&slapd.ldap_url, result_code).await;
    let (store, _path) = harness::store().await;
    let source = harness::source_builder(&slapd, &proxy.url())
        .fallback_poll_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut running = start(synchronizer_of(source, &store, scope()));
    let status = running
        .wait_for("a third failed session", |s| {
            s.sessions >= 3 && s.phase == SyncPhase::Connecting && s.last_error.is_some()
        })
        .await;
    let error = status.last_error.clone().unwrap();
    assert!(
        matches!(
            error,
            SyncError::Directory {
                kind: EntryKind::User | EntryKind::Group,
                cause: LdapError::Result {
                    operation: LdapOperation::Search,
                    code,
                },
            } if code == u32::from(result_code)
        ),
        "{error:?}"
    );
    assert_eq!(status.poll_interval, None, "{status:?}");
    assert!(!status.refreshed, "{status:?}");
    assert!(
        proxy.refused() >= 3,
        "each retry asked for a persistent search again"
    );
    assert_eq!(proxy.refresh_only(), 0, "never polled");
    assert_eq!(store.account_count().await.unwrap(), 0);
    assert_eq!(running.stop().await.created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_failing_with_insufficient_access_rights_is_retried_not_polled() {
    other_persistent_search_failures_are_retried_not_polled(50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_failing_with_operations_error_is_retried_not_polled() {
    other_persistent_search_failures_are_retried_not_polled(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_policy_can_delete_accounts() {
    let slapd = Slapd::start();
    let (store, _path) = harness::store().await;
    let mut running = start(synchronizer(
        &slapd,
        &store,
        scope().on_delete(DeletePolicy::Delete),
        SyncMode::Persist,
    ));
    running.live().await;
    let carol = account(&store, "carol").await.unwrap();
    Directory::connect(&slapd).await.delete(&user_dn("carol")).await;
    eventually("carol deleted", || async {
        store.account(&carol.id).await.unwrap().is_none().then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_login_finds_the_synced_account() {
    let slapd = Slapd::start();
    let (store, _path) = harness::store().await;
    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    running.live().await;
    let synced = account(&store, "alice").await.unwrap();

    let store = std::sync::Arc::new(store);
    let chain = AuthChain::builder(store.clone())
        .module(harness::module(&slapd))
        .build()
        .unwrap();
    let request =
        AuthRequest::new("127.0.0.1:40000".parse().unwrap()).with_password("alice", "alice-password");
    let LoginResult::Authenticated(principal) = chain.login(&request).await.unwrap() else {
        panic!("a password login never redirects")
    };
    assert_eq!(principal.account_id, synced.id);
    assert!(principal.has_role("admin"), "{:?}", principal.roles);
    assert_eq!(store.account_count().await.unwrap(), 4);
    running.stop().await;
}

/// The seeded service account whose searches slapd cuts off after
/// `LIMITED_SIZE` entries (`limits dn.exact=... size=2` in tests/peers/slapd.sh).
const LIMITED_DN: &str = "cn=authchain-limited,ou=service,dc=example,dc=org";
const LIMITED_PASSWORD: &str = "limited-password";

/// A store that already holds the four seeded users (under their real
/// entryUUIDs) and a "ghost" the directory does not list, and no cookie: the next
/// session is a full refresh.
async fn store_with_ghost(slapd: &Slapd) -> (SqliteStore, std::path::PathBuf) {
    let (store, path) = harness::store().await;
    let mut dir = Directory::connect(slapd).await;
    let mut changes = vec![user("ghost-0000-0000-0000-000000000000", "ghost")];
    for uid in ["alice", "bob", "carol"] {
        let uuid = dir.entry_uuid(&user_dn(uid)).await;
        changes.push(DirectoryChange::UserUpserted(DirectoryUser::new(
            uuid.clone(),
            uuid,
            user_dn(uid),
            uid,
        )));
    }
    let report = store.apply(&scope(), &batch(changes)).await.unwrap();
    assert_eq!(report.created, 4, "{report:?}");
    (store, path)
}

async fn partial_answers_disable_nothing(mode: SyncMode) {
    let slapd = Slapd::start();
    let (store, _path) = store_with_ghost(&slapd).await;
    let mut settings = authchain::modules::ldap::LdapSettings::new([slapd.ldap_url.parse().unwrap()]);
    settings.bind_dn = Some(LIMITED_DN.into());
    settings.bind_password = Some(authchain::SecretSource::Inline(LIMITED_PASSWORD.into()));
    settings.user_search_base = Some(slapd::PEOPLE.into());
    settings.user_search_filter = "(uid=%s)".into();
    let module = authchain::modules::LdapModule::new(harness::SOURCE, settings).unwrap();
    let source = authchain::sync::LdapSource::builder(module)
        .users(slapd::PEOPLE, "(objectClass=inetOrgPerson)")
        .groups(slapd::GROUPS, "(objectClass=groupOfNames)")
        .disabled(authchain::sync::DisabledRule::ns_account_lock())
        .mode(mode)
        .build()
        .unwrap();
    let mut running = start(synchronizer_of(source, &store, scope()));
    // Several sessions, each cut off after two entries.
    let status = running
        .wait_for("partial refreshes", |s| s.partial_refreshes >= 2)
        .await;
    assert!(
        matches!(
            status.last_error,
            Some(SyncError::PartialRefresh {
                reason: authchain::sync::PartialRefresh::Ended { code: 4 },
                ..
            })
        ),
        "sizeLimitExceeded is reported as a partial refresh: {status:?}"
    );
    assert!(!status.refreshed, "{status:?}");
    assert_eq!(status.report.disabled, 0, "{status:?}");
    running.stop().await;
    for login in ["ghost", "alice", "bob", "carol"] {
        let found = account(&store, login).await.expect("kept");
        assert!(!found.disabled, "{login} was disabled by a partial answer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limited_persistent_refresh_disables_nobody() {
    partial_answers_disable_nothing(SyncMode::Persist).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limited_polled_refresh_disables_nobody() {
    partial_answers_disable_nothing(SyncMode::Poll(Duration::from_millis(100))).await;
}

/// The control: the same store and a complete refresh (the unlimited service
/// account) disables the ghost, and only the ghost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_refresh_disables_what_the_directory_no_longer_lists() {
    let slapd = Slapd::start();
    let (store, _path) = store_with_ghost(&slapd).await;
    let mut running = start(synchronizer(&slapd, &store, scope(), SyncMode::Persist));
    let status = running.live().await;
    assert_eq!(status.partial_refreshes, 0);
    running.stop().await;
    assert!(account(&store, "ghost").await.unwrap().disabled);
    for login in ["alice", "bob", "carol", "smith, john"] {
        assert!(!account(&store, login).await.unwrap().disabled, "{login}");
    }
}

#[tokio::test]
async fn sync_configuration_names_bad_keys() {
    let base = r#"
        chain = ["corp-ldap", "local"]
        [modules.local]
        type = "local"
        [modules.corp-ldap]
        type = "ldap"
        urls = ["ldap://127.0.0.1:1"]
        user_search_base = "ou=people,dc=example,dc=org"
    "#;
    let cases = [
        (
            "[sync]\nmodule = \"nope\"\nuser_base = \"ou=people\"",
            "sync.module",
        ),
        (
            "[sync]\nmodule = \"local\"\nuser_base = \"ou=people\"",
            "sync.module",
        ),
        (
            "[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\nuser_filter = \"(uid=\"",
            "sync.user_filter",
        ),
        (
            "[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\ndisabled = { attribute = \"x\" }",
            "sync.disabled",
        ),
        (
            "[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\npoll_interval = \"PT0S\"",
            "sync.poll_interval",
        ),
        (
            "[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\nmode = \"poll\"\npoll_interval = \"PT0S\"",
            "sync.poll_interval",
        ),
        (
            "[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\nmax_batch = 0",
            "sync.max_batch",
        ),
        (
            "[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\ngroup_filter = \"(cn=*)\"",
            "sync.group_filter",
        ),
    ];
    let (store, _path) = harness::store().await;
    let target = std::sync::Arc::new(store);
    for (table, key) in cases {
        let text = format!("{base}\n{table}");
        let err = authchain::config::Config::from_toml(&text)
            .and_then(|config| config.synchronizer(target.clone()).map(|_| ()))
            .expect_err(table);
        assert_eq!(err.key(), Some(key), "{table}: {err}");
    }
    // `poll_interval` sets the interval of `poll` mode, and that of the fallback of `persist` mode.
    for mode in ["poll", "persist"] {
        let good = format!(
            "{base}\n[sync]\nmodule = \"corp-ldap\"\nuser_base = \"ou=people\"\nmode = \"{mode}\"\npoll_interval = \"PT5S\""
        );
        let config = authchain::config::Config::from_toml(&good).unwrap();
        let status = config
            .synchronizer(target.clone())
            .unwrap()
            .expect("a synchroniser")
            .status();
        let expected = (mode == "poll").then_some(Duration::from_secs(5));
        assert_eq!(status.borrow().poll_interval, expected, "{mode}");
    }
}

// The SQLite target on its own: one batch whose later changes depend on its
// earlier ones (the target reads ahead once per batch and must see its own writes).

fn batch(changes: Vec<DirectoryChange>) -> SyncBatch {
    let mut batch = SyncBatch::default();
    batch.changes = changes;
    batch
}

fn user(sync_id: &str, login: &str) -> DirectoryChange {
    DirectoryChange::UserUpserted(DirectoryUser::new(
        sync_id,
        format!("stable-{sync_id}"),
        format!("uid={login},ou=people,dc=example,dc=org"),
        login,
    ))
}

#[tokio::test]
async fn one_batch_sees_its_own_earlier_changes() {
    let (store, _) = harness::store().await;
    let staff = DirectoryChange::GroupUpserted(DirectoryGroup::new(
        "g1",
        "cn=staff,ou=groups,dc=example,dc=org",
        "staff",
        vec![
            "uid=anne,ou=people,dc=example,dc=org".into(),
            "uid=ann,ou=people,dc=example,dc=org".into(),
        ],
    ));
    store
        .apply(&scope(), &batch(vec![user("s0", "zed")]))
        .await
        .unwrap();
    let report = store
        .apply(
            &scope(),
            &batch(vec![
                // A rename takes a name that was free when the batch began...
                user("s0", "carl"),
                // ...so a newcomer with that name is skipped.
                user("s4", "carl"),
                user("s1", "ann"),
                // Another entry wants the name the first took a moment ago: skipped.
                user("s2", "ANN"),
                // The first is renamed, which frees `ann` for a newcomer.
                user("s1", "anne"),
                user("s3", "ann"),
                staff,
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.created, report.renamed, report.skipped),
        (2, 2, 2),
        "{report:?}"
    );
    assert_eq!(store.account_count().await.unwrap(), 3);
    assert!(store.find_by_link(SOURCE, "stable-s4").await.unwrap().is_none());
    let anne = account(&store, "anne").await.expect("s1, renamed");
    let ann = account(&store, "ann").await.expect("s3");
    assert_ne!(anne.id, ann.id);
    assert_eq!(
        store.find_by_link(SOURCE, "stable-s1").await.unwrap().unwrap().id,
        anne.id
    );
    assert_eq!(
        store.find_by_link(SOURCE, "stable-s3").await.unwrap().unwrap().id,
        ann.id
    );
    assert!(store.find_by_link(SOURCE, "stable-s2").await.unwrap().is_none());
    assert_eq!(mapped(&anne), set(&["staff"]));
    assert_eq!(mapped(&ann), set(&["staff"]));
}

#[tokio::test]
async fn a_sync_batch_hands_its_connection_back_durable() {
    // One connection, so the one the batch used is the one read below.
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sync-durable-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open_with(&path, SqliteOptions::default().max_connections(1))
        .await
        .unwrap();
    let report = store
        .apply(&scope(), &batch(vec![user("s1", "bob")]))
        .await
        .unwrap();
    assert_eq!(report.created, 1);
    // The batch committed with `NORMAL`; logins after it get the store's `FULL` (2).
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(synchronous, 2);
    assert!(account(&store, "bob").await.is_some());
    store.close().await;
}

#[tokio::test]
async fn a_user_deleted_and_added_again_in_one_batch() {
    for policy in [DeletePolicy::Disable, DeletePolicy::Delete] {
        let (store, _) = harness::store().await;
        let scope = scope().on_delete(policy);
        store
            .apply(&scope, &batch(vec![user("s1", "bob")]))
            .await
            .unwrap();
        let first = account(&store, "bob").await.unwrap();
        let deleted = DirectoryChange::UserDeleted { sync_id: "s1".into() };
        let report = store
            .apply(&scope, &batch(vec![deleted, user("s1", "bob")]))
            .await
            .unwrap();
        let again = account(&store, "bob").await.expect("bob is back");
        assert!(!again.disabled, "{policy:?}");
        assert_eq!(store.account_count().await.unwrap(), 1);
        match policy {
            // The link outlived the entry: the old account is adopted again.
            DeletePolicy::Disable => {
                assert_eq!(again.id, first.id);
                assert_eq!((report.disabled, report.enabled, report.created), (1, 1, 0));
            }
            _ => {
                assert_ne!(again.id, first.id);
                assert_eq!((report.deleted, report.created), (1, 1));
            }
        }
    }
}

#[tokio::test]
async fn incremental_member_values_patch_the_stored_members() {
    let (store, _) = harness::store().await;
    let dn = |login: &str| format!("uid={login},ou=people,dc=example,dc=org");
    let staff = |members: Vec<String>| {
        DirectoryGroup::new("g1", "cn=staff,ou=groups,dc=example,dc=org", "staff", members)
    };
    // A patch for a group not stored yet creates it with the added members.
    let report = store
        .apply(
            &scope(),
            &batch(vec![
                user("s1", "anne"),
                user("s2", "bert"),
                user("s3", "cleo"),
                DirectoryChange::GroupMembersChanged {
                    group: staff(vec![dn("anne"), dn("bert")]),
                    removed: vec![],
                },
            ]),
        )
        .await
        .unwrap();
    assert_eq!(report.groups_upserted, 1, "{report:?}");
    for (login, roles) in [("anne", &["staff"][..]), ("bert", &["staff"]), ("cleo", &[])] {
        assert_eq!(
            mapped(&account(&store, login).await.unwrap()),
            set(roles),
            "{login}"
        );
    }
    // Removed and added values change only those members (a DN written differently
    // still matches); the others keep their roles.
    let report = store
        .apply(
            &scope(),
            &batch(vec![DirectoryChange::GroupMembersChanged {
                group: staff(vec![dn("cleo")]),
                removed: vec!["UID=Anne, ou=people,dc=example,dc=org".into()],
            }]),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.groups_upserted, report.roles_changed),
        (1, 2),
        "{report:?}"
    );
    for (login, roles) in [("anne", &[][..]), ("bert", &["staff"]), ("cleo", &["staff"])] {
        assert_eq!(
            mapped(&account(&store, login).await.unwrap()),
            set(roles),
            "{login}"
        );
    }
    // Nothing new: nothing changes.
    let report = store
        .apply(
            &scope(),
            &batch(vec![DirectoryChange::GroupMembersChanged {
                group: staff(vec![dn("bert")]),
                removed: vec![dn("anne")],
            }]),
        )
        .await
        .unwrap();
    assert!(report.is_empty(), "{report:?}");
}
