//! Directory sync from Active Directory (a real Samba AD DC, tests/peers/samba.sh)
//! into a real SQLite file:
//! * the initial load of 1,000 users and 20 groups by DirSync (unit: entries/s), and
//! * the change-to-store latency: from one LDAP modify returning until the store
//!   answers the new value, with change notification and with 200 ms polling
//!   (ms per change, median and p99 printed at the end).
//!
//! `cargo bench --bench sync_ad --features sync,sqlite` (needs root for the DC).
// tests/common/samba.rs brings its own copy of peer.rs; the slapd harness needs the
// crate-level one.
#![allow(clippy::duplicate_mod)]

#[path = "../tests/sync/harness.rs"]
mod harness;
#[path = "../tests/common/peer.rs"]
mod peer;
#[path = "../tests/common/samba.rs"]
mod samba;
#[path = "../tests/ldap/slapd.rs"]
mod slapd;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authchain::SecretSource;
use authchain::account::{SqliteStore, UserStore};
use authchain::modules::{LdapModule, LdapSettings};
use authchain::sync::{AdSettings, AdSource, DirectorySource, LdapSource, SyncMode, SyncScope, Synchronizer};
use criterion::{Criterion, Throughput, criterion_group};
use ldap3::{LdapConnAsync, Mod};
use samba::Samba;

const USERS: usize = 1_000;
const GROUPS: usize = 20;

fn source(dc: &Samba, notification: bool) -> Arc<dyn DirectorySource> {
    let mut settings = LdapSettings::new([dc.ldap_url.parse().expect("an LDAP URL")]);
    settings.bind_dn = Some(dc.admin_dn.clone());
    settings.bind_password = Some(SecretSource::Inline(dc.admin_password.as_str().into()));
    settings.user_search_base = Some(samba::USERS_DN.into());
    settings.operation_timeout = Duration::from_secs(30);
    let module = LdapModule::new("corp-ad", settings).expect("LDAP module");
    let base = AdSource::defaults(LdapSource::builder(module))
        .users(samba::USERS_DN, authchain::sync::AD_USER_FILTER)
        .groups(samba::USERS_DN, authchain::sync::AD_GROUP_FILTER)
        .mode(SyncMode::Poll(Duration::from_millis(200)))
        .build()
        .expect("LDAP source");
    let mut ad = AdSettings::default();
    ad.change_notification = notification;
    Arc::new(AdSource::new(base, ad).expect("AD source"))
}

fn synchronizer(dc: &Samba, store: &SqliteStore, notification: bool) -> Synchronizer {
    Synchronizer::new(
        source(dc, notification),
        Arc::new(store.clone()),
        SyncScope::new("corp-ad"),
    )
}

/// `USERS` users `b0000`.. and `GROUPS` groups `bg00`.. (user `i` in group `i % GROUPS`),
/// with one `ldapadd`.
fn seed(dc: &Samba) {
    let mut ldif = String::new();
    for i in 0..USERS {
        ldif.push_str(&format!(
            "dn: CN=b{i:04},{users}\nobjectClass: user\nsAMAccountName: b{i:04}\n\
             mail: b{i:04}@example.test\nuserAccountControl: 544\n\n",
            users = samba::USERS_DN
        ));
    }
    for g in 0..GROUPS {
        ldif.push_str(&format!(
            "dn: CN=bg{g:02},{users}\nobjectClass: group\nsAMAccountName: bg{g:02}\n",
            users = samba::USERS_DN
        ));
        for i in (g..USERS).step_by(GROUPS) {
            ldif.push_str(&format!("member: CN=b{i:04},{}\n", samba::USERS_DN));
        }
        ldif.push('\n');
    }
    let started = Instant::now();
    harness::ldapadd(&dc.ldap_url, &dc.admin_dn, &dc.admin_password, &ldif);
    println!(
        "seeded {USERS} users and {GROUPS} groups in {:?}",
        started.elapsed()
    );
}

fn initial_load(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dc = Samba::shared();
    seed(dc);
    let rates = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("sync_ad");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements((USERS + GROUPS) as u64));
    group.bench_function("initial load of 1,020 AD entries by DirSync (entries/s)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (store, path) = harness::store().await;
                    let started = Instant::now();
                    let mut running = harness::start(synchronizer(dc, &store, false));
                    let status = running.live().await;
                    let took = started.elapsed();
                    total += took;
                    rates
                        .lock()
                        .unwrap()
                        .push(status.refresh_changes as f64 / took.as_secs_f64());
                    running.stop().await;
                    assert!(store.account_count().await.unwrap() > USERS as u64);
                    harness::discard(store, &path).await;
                }
                total
            })
        })
    });
    group.finish();
    // Directory entries received / time until the refresh is done.
    harness::print_median_rate("AD initial load", rates.into_inner().unwrap());
}

fn change_latency(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dc = Samba::shared();
    for notification in [true, false] {
        let label = if notification {
            "change notification"
        } else {
            "polling every 200 ms"
        };
        let (store, _path) = rt.block_on(harness::store());
        let running = rt.block_on(async {
            let mut running = harness::start(synchronizer(dc, &store, notification));
            running.live().await;
            running
        });
        let mut ldap = rt.block_on(async {
            let (conn, mut ldap) = LdapConnAsync::new(&dc.ldap_url).await.expect("connect");
            ldap3::drive!(conn);
            ldap.simple_bind(&dc.admin_dn, &dc.admin_password)
                .await
                .and_then(|r| r.success())
                .expect("bind");
            ldap
        });
        let latencies = Mutex::new(Vec::new());
        let mut n = 0u64;
        let mut group = c.benchmark_group("sync_ad");
        group.sample_size(10).measurement_time(Duration::from_secs(5));
        group.bench_function(format!("AD change to store, {label}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        n += 1;
                        let login = format!("b{:04}", n % USERS as u64);
                        let mail = format!("{login}-{n}@example.test");
                        let values: HashSet<String> = [mail.clone()].into();
                        ldap.modify(
                            &format!("CN={login},{}", samba::USERS_DN),
                            vec![Mod::Replace("mail".to_string(), values)],
                        )
                        .await
                        .and_then(|r| r.success())
                        .expect("modify");
                        let started = Instant::now();
                        loop {
                            let found = store.find_by_login(&login, true).await.expect("lookup");
                            if found.and_then(|a| a.email).as_deref() == Some(mail.as_str()) {
                                break;
                            }
                            assert!(
                                started.elapsed() < Duration::from_secs(20),
                                "no change within 20 s"
                            );
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        let took = started.elapsed();
                        latencies.lock().unwrap().push(took);
                        total += took;
                    }
                    total
                })
            })
        });
        group.finish();
        rt.block_on(async {
            let _ = ldap.unbind().await;
        });
        rt.block_on(running.stop());
        let mut latencies = latencies.into_inner().unwrap();
        latencies.sort();
        if !latencies.is_empty() {
            let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
            println!(
                "AD change to store ({label}) over {} changes: median {:.1} ms, p99 {:.1} ms",
                latencies.len(),
                at(0.5),
                at(0.99)
            );
        }
    }
}

criterion_group!(benches, initial_load, change_latency);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
