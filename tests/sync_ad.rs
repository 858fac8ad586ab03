//! Directory sync from Active Directory: the AD source against a real Samba AD DC
//! (tests/peers/samba.sh) into a real SQLite file. DirSync as the administrator,
//! `uSNChanged` polling as a plain domain user, a DC restarted mid-sync.
#![cfg(all(feature = "sync", feature = "sqlite"))]
// tests/common/samba.rs brings its own copy of peer.rs; the slapd harness needs the
// crate-level one.
#![allow(clippy::duplicate_mod)]

#[path = "sync/harness.rs"]
mod harness;
#[path = "common/peer.rs"]
mod peer;
#[path = "common/samba.rs"]
mod samba;
#[path = "ldap/slapd.rs"]
mod slapd;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use authchain::SecretSource;
use authchain::account::{Account, RoleMapping, SqliteStore, UserStore};
use authchain::modules::{LdapModule, LdapSettings};
use authchain::sync::{
    AdChanges, AdSettings, AdSource, DirectorySource, LdapSource, SyncMode, SyncScope, Synchronizer,
};
use harness::{eventually, start};
use ldap3::{LdapConnAsync, Mod};
use samba::Samba;

const SOURCE: &str = "corp-ad";

/// The tests share one DC and one of them stops it: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn module(dc: &Samba, bind_dn: &str, password: &str) -> LdapModule {
    let mut settings = LdapSettings::new([dc.ldap_url.parse().expect("an LDAP URL")]);
    settings.bind_dn = Some(bind_dn.into());
    settings.bind_password = Some(SecretSource::Inline(password.into()));
    settings.user_search_base = Some(samba::USERS_DN.into());
    settings.user_search_filter = "(sAMAccountName=%s)".into();
    settings.connect_timeout = Duration::from_secs(2);
    settings.operation_timeout = Duration::from_secs(10);
    LdapModule::new(SOURCE, settings).expect("LDAP module")
}

/// How a test runs the source.
struct Setup {
    admin: bool,
    changes: AdChanges,
    notification: bool,
    flatten: bool,
}

impl Setup {
    fn new(admin: bool, changes: AdChanges, notification: bool, flatten: bool) -> Setup {
        Setup {
            admin,
            changes,
            notification,
            flatten,
        }
    }
}

fn source(dc: &Samba, setup: &Setup) -> Arc<AdSource> {
    let (dn, password) = if setup.admin {
        (&dc.admin_dn, &dc.admin_password)
    } else {
        (&dc.service_dn, &dc.service_password)
    };
    let base = AdSource::defaults(LdapSource::builder(module(dc, dn, password)))
        .users(samba::USERS_DN, authchain::sync::AD_USER_FILTER)
        .groups(samba::USERS_DN, authchain::sync::AD_GROUP_FILTER)
        .mode(SyncMode::Poll(Duration::from_millis(300)))
        .build()
        .expect("LDAP source");
    let mut settings = AdSettings::default();
    settings.changes = setup.changes;
    settings.change_notification = setup.notification;
    settings.flatten_nested_groups = setup.flatten;
    Arc::new(AdSource::new(base, settings).expect("AD source"))
}

fn scope() -> SyncScope {
    let roles = RoleMapping::builder()
        .rule(samba::STAFF, "staff")
        .rule(samba::ENGINEERS, "eng")
        .rule("ad-team", "team")
        .build()
        .expect("role mapping");
    SyncScope::new(SOURCE).roles(Arc::new(roles))
}

fn synchronizer(source: Arc<AdSource>, store: &SqliteStore) -> Synchronizer {
    Synchronizer::new(
        source as Arc<dyn DirectorySource>,
        Arc::new(store.clone()),
        scope(),
    )
    .backoff(Duration::from_millis(100), Duration::from_millis(500))
}

async fn account(store: &SqliteStore, login: &str) -> Option<Account> {
    store.find_by_login(login, true).await.expect("store lookup")
}

fn mapped(account: &Account) -> BTreeSet<String> {
    account.mapped_roles.get(SOURCE).cloned().unwrap_or_default()
}

/// The administrator's LDAP connection, to change the directory.
struct Admin {
    ldap: ldap3::Ldap,
}

impl Admin {
    async fn connect(dc: &Samba) -> Admin {
        let (conn, mut ldap) = LdapConnAsync::new(&dc.ldap_url).await.expect("connect to the DC");
        ldap3::drive!(conn);
        ldap.simple_bind(&dc.admin_dn, &dc.admin_password)
            .await
            .and_then(|r| r.success())
            .expect("bind as Administrator");
        Admin { ldap }
    }

    async fn modify(&mut self, dn: &str, mods: Vec<Mod<String>>) {
        self.ldap
            .modify(dn, mods)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("modify {dn}: {e}"));
    }

    async fn replace(&mut self, dn: &str, attribute: &str, value: &str) {
        let values: HashSet<String> = [value.to_string()].into();
        self.modify(dn, vec![Mod::Replace(attribute.into(), values)])
            .await;
    }

    async fn member(&mut self, group: &str, user: &str, add: bool) {
        let values: HashSet<String> = [samba::dn(user)].into();
        let change = if add {
            Mod::Add("member".into(), values)
        } else {
            Mod::Delete("member".into(), values)
        };
        self.modify(&samba::dn(group), vec![change]).await;
    }

    /// A user (`sAMAccountName` = CN = `name`), enabled, with a mail address.
    async fn add_user(&mut self, name: &str) {
        let attrs: Vec<(String, HashSet<String>)> = vec![
            ("objectClass".into(), ["user".to_string()].into()),
            ("sAMAccountName".into(), [name.to_string()].into()),
            ("mail".into(), [format!("{name}@example.test")].into()),
            // NORMAL_ACCOUNT | PASSWD_NOTREQD: enabled without a password.
            ("userAccountControl".into(), ["544".to_string()].into()),
        ];
        let dn = samba::dn(name);
        self.ldap
            .add(&dn, attrs)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    }

    async fn add_group(&mut self, name: &str) {
        let attrs: Vec<(String, HashSet<String>)> = vec![
            ("objectClass".into(), ["group".to_string()].into()),
            ("sAMAccountName".into(), [name.to_string()].into()),
        ];
        let dn = samba::dn(name);
        self.ldap
            .add(&dn, attrs)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    }

    async fn delete(&mut self, name: &str) {
        let dn = samba::dn(name);
        self.ldap
            .delete(&dn)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("delete {dn}: {e}"));
    }

    /// Deletes the entry if it is there (left by an earlier run of the shared DC).
    async fn remove(&mut self, name: &str) {
        let _ = self.ldap.delete(&samba::dn(name)).await;
    }
}

/// The initial load, then each kind of change while the sync runs, then a restart
/// that resumes by cookie and receives only what changed meanwhile.
async fn initial_load_changes_and_resume(setup: Setup, tag: &str) {
    let _serial = SERIAL.lock().await;
    let dc = Samba::shared();
    let mut admin = Admin::connect(dc).await;
    let (new, team, away) = (format!("{tag}-new"), "ad-team", format!("{tag}-away"));
    for name in [new.as_str(), &format!("{new}-renamed"), team, &away] {
        admin.remove(name).await;
    }
    let (store, _path) = harness::store().await;
    let ad = source(dc, &setup);
    let mut running = start(synchronizer(ad.clone(), &store));
    let status = running.live().await;
    assert!(!status.resumed);
    assert_eq!(ad.polls_usn(), setup.changes == AdChanges::Usn || !setup.admin);

    let alice = account(&store, samba::ALICE).await.expect("alice synced");
    assert!(!alice.disabled);
    assert_eq!(alice.email.as_deref(), Some("alice@example.test"));
    let alice_roles = if setup.flatten {
        set(&["staff", "eng"])
    } else {
        set(&["staff"])
    };
    assert_eq!(mapped(&alice), alice_roles);
    assert_eq!(mapped(&account(&store, samba::BOB).await.unwrap()), set(&["eng"]));
    assert!(
        account(&store, samba::DISABLED)
            .await
            .expect("carol synced")
            .disabled
    );
    assert!(account(&store, "Administrator").await.is_some());

    // A user is added, then put in a group (nested in engineers).
    admin.add_user(&new).await;
    admin.member(samba::STAFF, &new, true).await;
    let roles = alice_roles.clone();
    let first = eventually("the new user with staff's roles", || async {
        account(&store, &new).await.filter(|a| mapped(a) == roles)
    })
    .await;
    assert_eq!(first.email, Some(format!("{new}@example.test")));
    assert!(!first.disabled);

    // A new group with the user in it.
    admin.add_group(team).await;
    admin.member(team, &new, true).await;
    let mut with_team = alice_roles.clone();
    with_team.insert("team".into());
    eventually("the new group's role", || async {
        account(&store, &new).await.filter(|a| mapped(a) == with_team)
    })
    .await;

    // Renamed: a new sAMAccountName, the same account.
    let renamed = format!("{new}-renamed");
    admin.replace(&samba::dn(&new), "sAMAccountName", &renamed).await;
    let same = eventually("the rename", || async { account(&store, &renamed).await }).await;
    assert_eq!(same.id, first.id);
    assert!(account(&store, &new).await.is_none());

    // Disabled through userAccountControl bit 2.
    admin.replace(&samba::dn(&new), "userAccountControl", "546").await;
    eventually("the user disabled", || async {
        account(&store, &renamed).await.filter(|a| a.disabled)
    })
    .await;
    admin.replace(&samba::dn(&new), "userAccountControl", "544").await;
    eventually("the user enabled again", || async {
        account(&store, &renamed).await.filter(|a| !a.disabled)
    })
    .await;

    // Removed from a group.
    admin.member(samba::STAFF, &new, false).await;
    eventually("staff's roles dropped", || async {
        account(&store, &renamed)
            .await
            .filter(|a| mapped(a) == set(&["team"]))
    })
    .await;

    // Deleted: disabled (the default policy), its directory roles dropped.
    admin.delete(&new).await;
    let gone = eventually("the deleted user disabled", || async {
        account(&store, &renamed).await.filter(|a| a.disabled)
    })
    .await;
    assert!(mapped(&gone).is_empty(), "{:?}", gone.mapped_roles);
    let report = running.stop().await;
    assert!(report.created >= 7, "{report}");

    // Away: one user is added; the restart resumes by cookie and lists only it.
    admin.add_user(&away).await;
    let mut running = start(synchronizer(source(dc, &setup), &store));
    let status = running.live().await;
    assert!(status.resumed);
    assert_eq!(status.report.created, 1, "{:?}", status);
    assert!(status.refresh_changes <= 3, "only what changed: {status:?}");
    assert!(account(&store, &away).await.is_some());
    running.stop().await;
    admin.remove(&away).await;
    admin.remove(team).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirsync_initial_load_every_change_and_resume() {
    initial_load_changes_and_resume(Setup::new(true, AdChanges::Dirsync, false, false), "ad-ds").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirsync_with_change_notification_and_nested_groups_flattened() {
    initial_load_changes_and_resume(Setup::new(true, AdChanges::Auto, true, true), "ad-cn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usn_changed_polling_when_the_account_may_not_use_dirsync() {
    initial_load_changes_and_resume(Setup::new(false, AdChanges::Auto, false, false), "ad-usn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirsync_refused_is_an_error_when_dirsync_is_required() {
    let _serial = SERIAL.lock().await;
    let dc = Samba::shared();
    let setup = Setup::new(false, AdChanges::Dirsync, false, false);
    let (store, _path) = harness::store().await;
    let ad = source(dc, &setup);
    let mut running = start(synchronizer(ad.clone(), &store));
    let status = running.wait_for("the refusal", |s| s.last_error.is_some()).await;
    assert!(
        matches!(
            status.last_error,
            Some(authchain::sync::SyncError::Directory {
                cause: authchain::modules::ldap::LdapError::Result { code: 50, .. },
                ..
            })
        ),
        "{status:?}"
    );
    assert!(!ad.polls_usn());
    assert_eq!(store.account_count().await.unwrap(), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dc_restarted_mid_sync_and_the_sync_recovers() {
    let _serial = SERIAL.lock().await;
    let dc = Samba::shared();
    let setup = Setup::new(true, AdChanges::Dirsync, false, false);
    let name = "ad-restart";
    let mut admin = Admin::connect(dc).await;
    admin.remove(name).await;
    drop(admin);
    let (store, _path) = harness::store().await;
    let mut running = start(synchronizer(source(dc, &setup), &store));
    let before = running.live().await;
    dc.halt();
    running
        .wait_for("the session to fail", |s| s.last_error.is_some())
        .await;
    dc.resume();
    let mut admin = Admin::connect(dc).await;
    admin.add_user(name).await;
    eventually("the change after the restart", || async {
        account(&store, name).await
    })
    .await;
    let after = running.status.borrow().clone();
    assert!(after.sessions > before.sessions, "{after:?}");
    assert!(after.resumed, "{after:?}");
    running.stop().await;
    admin.remove(name).await;
}

fn ad_config(dc: &Samba, sync: &str) -> Result<authchain::config::Config, authchain::ConfigError> {
    authchain::config::Config::from_toml(&format!(
        r#"
chain = ["{SOURCE}"]
[modules.{SOURCE}]
type = "ldap"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = "{password}"
user_search_base = "{users}"
user_search_filter = "(sAMAccountName=%s)"
[[modules.{SOURCE}.role_mapping.rules]]
group = "staff"
role = "staff"
[sync]
module = "{SOURCE}"
user_base = "{users}"
group_base = "{users}"
{sync}
"#,
        url = dc.ldap_url,
        bind_dn = dc.service_dn,
        password = dc.service_password,
        users = samba::USERS_DN,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_from_toml_and_bad_ad_settings_are_refused() {
    let _serial = SERIAL.lock().await;
    let dc = Samba::shared();
    let (store, _path) = harness::store().await;
    let config = ad_config(
        dc,
        "source = \"active_directory\"\npoll_interval = \"PT0.3S\"\n[sync.ad]\nchanges = \"usn\"\n",
    )
    .expect("configuration");
    let synchronizer = config
        .synchronizer(Arc::new(store.clone()))
        .expect("synchroniser")
        .expect("a [sync] table");
    let mut running = start(synchronizer);
    running.live().await;
    let alice = account(&store, samba::ALICE).await.expect("alice synced");
    assert_eq!(mapped(&alice), set(&["staff"]));
    assert!(account(&store, samba::DISABLED).await.unwrap().disabled);
    running.stop().await;

    for (sync, key) in [
        ("[sync.ad]\nchanges = \"usn\"\n", "sync.ad"),
        (
            "source = \"active_directory\"\n[sync.ad]\nnaming_context = \" \"\n",
            "sync.ad.naming_context",
        ),
        (
            "source = \"active_directory\"\n[sync.ad]\nnaming_context = \"DC=other,DC=test\"\n",
            "sync.user_base",
        ),
    ] {
        let refused = ad_config(dc, sync).and_then(|c| c.synchronizer(Arc::new(store.clone())).map(|_| ()));
        assert!(
            matches!(&refused, Err(authchain::ConfigError::Invalid { key: k, .. }) if k == key),
            "{sync}: {refused:?}"
        );
    }
    for bad in [
        "source = \"ad\"\n",
        "source = \"active_directory\"\n[sync.ad]\nchanges = \"often\"\n",
    ] {
        // A value serde cannot read is a syntax error naming the key.
        let refused = ad_config(dc, bad);
        assert!(
            matches!(&refused, Err(authchain::ConfigError::Syntax(m)) if m.contains("variant")),
            "{bad}: {refused:?}"
        );
    }
}
