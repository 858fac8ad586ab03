//! A synchroniser between a real slapd and a real SQLite file, and an
//! administrator's connection to change the directory while it runs.
#![allow(dead_code)] // shared with benches/sync.rs

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authchain::SecretSource;
use authchain::account::{RoleMapping, SqliteStore};
use authchain::modules::{LdapModule, LdapSettings};
use authchain::sync::{
    DisabledRule, LdapSource, LdapSourceBuilder, SyncError, SyncMode, SyncPhase, SyncReport, SyncScope,
    SyncStatus, Synchronizer,
};
use ldap3::{LdapConnAsync, Mod};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::slapd::{GROUPS, PEOPLE, Slapd};

pub const SOURCE: &str = "corp-ldap";

/// A fresh SQLite file under the target dir.
pub async fn store() -> (SqliteStore, PathBuf) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sync-{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    remove_files(&path);
    (
        SqliteStore::open(&path).await.expect("open the SQLite store"),
        path,
    )
}

/// Closes a store from [`store`] and removes its files.
pub async fn discard(store: SqliteStore, path: &std::path::Path) {
    store.close().await;
    remove_files(path);
}

/// Prints the median of `rates` (entries/s) after `what` (for the benches).
pub fn print_median_rate(what: &str, mut rates: Vec<f64>) {
    rates.sort_by(f64::total_cmp);
    if !rates.is_empty() {
        println!(
            "{what} over {} runs: median {:.0} entries/s",
            rates.len(),
            rates[rates.len() / 2]
        );
    }
}

fn remove_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The LDAP module the synchroniser borrows its connection settings from.
pub fn module(slapd: &Slapd) -> LdapModule {
    module_at(slapd, &slapd.ldap_url)
}

/// The same, reaching `slapd` through `url` (a proxy).
pub fn module_at(slapd: &Slapd, url: &str) -> LdapModule {
    let mut settings = LdapSettings::new([url.parse().expect("an LDAP URL")]);
    settings.bind_dn = Some(slapd.service_dn.clone());
    settings.bind_password = Some(SecretSource::Inline(slapd.service_password.as_str().into()));
    settings.user_search_base = Some(PEOPLE.into());
    settings.user_search_filter = "(uid=%s)".into();
    settings.connect_timeout = Duration::from_secs(2);
    settings.operation_timeout = Duration::from_secs(5);
    LdapModule::new(SOURCE, settings).expect("LDAP module")
}

pub fn source(slapd: &Slapd, mode: SyncMode) -> LdapSource {
    source_builder(slapd, &slapd.ldap_url)
        .mode(mode)
        .build()
        .expect("LDAP source")
}

/// The seeded users and groups, reached through `url`.
pub fn source_builder(slapd: &Slapd, url: &str) -> LdapSourceBuilder {
    LdapSource::builder(module_at(slapd, url))
        .users(PEOPLE, "(objectClass=inetOrgPerson)")
        .groups(GROUPS, "(objectClass=groupOfNames)")
        .disabled(DisabledRule::ns_account_lock())
}

/// admins → admin, staff → staff, gNN → rNN.
pub fn roles() -> Arc<RoleMapping> {
    let mut mapping = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "staff");
    for n in 0..50 {
        mapping = mapping.rule(format!("g{n:02}"), format!("r{n:02}"));
    }
    Arc::new(mapping.build().expect("role mapping"))
}

/// A running synchroniser.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<SyncReport, SyncError>>,
    pub status: watch::Receiver<SyncStatus>,
}

impl Running {
    /// Stops it and returns what it changed.
    pub async fn stop(mut self) -> SyncReport {
        let _ = self.stop.take().expect("running").send(());
        self.task
            .await
            .expect("the synchroniser panicked")
            .expect("the synchroniser failed")
    }

    /// Waits until the refresh is done and live changes flow.
    pub async fn live(&mut self) -> SyncStatus {
        self.wait_for("the refresh to finish", |s| s.phase == SyncPhase::Live)
            .await
    }

    pub async fn wait_for(&mut self, what: &str, mut ok: impl FnMut(&SyncStatus) -> bool) -> SyncStatus {
        let waited = tokio::time::timeout(Duration::from_secs(20), self.status.wait_for(|s| ok(s)))
            .await
            .map(|found| found.map(|status| status.clone()));
        match waited {
            Ok(Ok(status)) => status,
            Ok(Err(_)) => panic!("the synchroniser stopped while waiting for {what}"),
            Err(_) => panic!("no {what} within 20 s: {:?}", *self.status.borrow()),
        }
    }
}

pub fn start(synchronizer: Synchronizer) -> Running {
    let status = synchronizer.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(synchronizer.run(async {
        let _ = stopped.await;
    }));
    Running {
        stop: Some(stop),
        task,
        status,
    }
}

pub fn synchronizer(slapd: &Slapd, store: &SqliteStore, scope: SyncScope, mode: SyncMode) -> Synchronizer {
    synchronizer_of(source(slapd, mode), store, scope)
}

pub fn synchronizer_of(source: LdapSource, store: &SqliteStore, scope: SyncScope) -> Synchronizer {
    Synchronizer::new(Arc::new(source), Arc::new(store.clone()), scope)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
}

pub fn scope() -> SyncScope {
    SyncScope::new(SOURCE).roles(roles())
}

/// Polls `check` until it answers `Some`, for up to 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An administrator's connection to the directory.
pub struct Directory {
    ldap: ldap3::Ldap,
}

pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},{PEOPLE}")
}

pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},{GROUPS}")
}

fn set(values: &[&str]) -> HashSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

impl Directory {
    pub async fn connect(slapd: &Slapd) -> Directory {
        let (conn, mut ldap) = LdapConnAsync::new(&slapd.ldap_url)
            .await
            .expect("connect to slapd");
        ldap3::drive!(conn);
        ldap.simple_bind(&slapd.admin_dn, &slapd.admin_password)
            .await
            .and_then(|r| r.success())
            .expect("bind as the directory administrator");
        Directory { ldap }
    }

    pub async fn add(&mut self, dn: &str, attrs: &[(&str, &[&str])]) {
        let attrs: Vec<(String, HashSet<String>)> =
            attrs.iter().map(|(k, v)| (k.to_string(), set(v))).collect();
        self.ldap
            .add(dn, attrs)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    }

    pub async fn add_user(&mut self, uid: &str, mail: &str) {
        let dn = user_dn(uid);
        self.add(
            &dn,
            &[
                ("objectClass", &["inetOrgPerson", "authchainLockable"]),
                ("uid", &[uid]),
                ("cn", &[uid]),
                ("sn", &[uid]),
                ("mail", &[mail]),
            ],
        )
        .await;
    }

    pub async fn modify(&mut self, dn: &str, mods: Vec<Mod<String>>) {
        self.ldap
            .modify(dn, mods)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("modify {dn}: {e}"));
    }

    pub async fn replace(&mut self, dn: &str, attribute: &str, values: &[&str]) {
        self.modify(dn, vec![Mod::Replace(attribute.to_string(), set(values))])
            .await;
    }

    pub async fn add_member(&mut self, group: &str, uid: &str) {
        let member = user_dn(uid);
        self.modify(&group_dn(group), vec![Mod::Add("member".into(), set(&[&member]))])
            .await;
    }

    pub async fn remove_member(&mut self, group: &str, uid: &str) {
        let member = user_dn(uid);
        self.modify(
            &group_dn(group),
            vec![Mod::Delete("member".into(), set(&[&member]))],
        )
        .await;
    }

    pub async fn rename(&mut self, dn: &str, new_rdn: &str) {
        self.ldap
            .modifydn(dn, new_rdn, true, None)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("rename {dn}: {e}"));
    }

    pub async fn delete(&mut self, dn: &str) {
        self.ldap
            .delete(dn)
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("delete {dn}: {e}"));
    }

    /// The entryUUID of an entry.
    pub async fn entry_uuid(&mut self, dn: &str) -> String {
        let (entries, _) = self
            .ldap
            .search(dn, ldap3::Scope::Base, "(objectClass=*)", vec!["entryUUID"])
            .await
            .and_then(|r| r.success())
            .unwrap_or_else(|e| panic!("read {dn}: {e}"));
        let entry = ldap3::SearchEntry::construct(entries.into_iter().next().expect("the entry"));
        entry.attrs["entryUUID"][0].clone()
    }
}

/// Adds `users` users `u0000`.. (mail `uNNNN@example.org`) and 50 groups `g00`..`g49`
/// (user `i` in group `i % 50`) with one `ldapadd`.
pub fn seed_bulk(slapd: &Slapd, users: usize) {
    let mut ldif = String::new();
    for i in 0..users {
        ldif.push_str(&format!(
            "dn: uid=u{i:04},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: authchainLockable\n\
             uid: u{i:04}\ncn: User {i}\nsn: {i}\nmail: u{i:04}@example.org\n\n"
        ));
    }
    for g in 0..50 {
        ldif.push_str(&format!(
            "dn: cn=g{g:02},{GROUPS}\nobjectClass: groupOfNames\ncn: g{g:02}\n"
        ));
        let mut any = false;
        for i in (g..users).step_by(50) {
            ldif.push_str(&format!("member: uid=u{i:04},{PEOPLE}\n"));
            any = true;
        }
        if !any {
            ldif.push_str(&format!("member: {}\n", slapd.admin_dn));
        }
        ldif.push('\n');
    }
    ldapadd(&slapd.ldap_url, &slapd.admin_dn, &slapd.admin_password, &ldif);
}

/// Adds the entries of `ldif` with one `ldapadd`, bound as `dn`.
pub fn ldapadd(url: &str, dn: &str, password: &str, ldif: &str) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "seed-{}-{}.ldif",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, ldif).expect("write the LDIF");
    let out = std::process::Command::new("ldapadd")
        .args(["-x", "-H", url, "-D", dn, "-w", password, "-f"])
        .arg(&path)
        .output()
        .expect("run ldapadd (apt-get install ldap-utils)");
    let _ = std::fs::remove_file(path);
    assert!(
        out.status.success(),
        "ldapadd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
