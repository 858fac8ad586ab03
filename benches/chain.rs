//! Chain benchmarks: a trusted-header login through the chain with role mapping
//! (memory and SQLite stores), role mapping at scale, and a local-password login
//! beside the bare argon2 cost.
//!
//! `cargo bench --bench chain`. Figures are per login (criterion's median).

use std::sync::Arc;

use authchain::account::{
    MemoryUserStore, NewAccount, PasswordPolicy, Provisioning, RoleMapping, SqliteOptions, SqliteStore,
    Synchronous, UserStore,
};
use authchain::chain::ModuleSettings;
use authchain::modules::{HeaderModule, LocalModule};
use authchain::net::ProxyTrust;
use authchain::{AuthChain, AuthRequest, LoginResult, SecretString};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh SQLite file under the target directory; `synchronous = NORMAL` trades
/// the last commits on a power loss (never consistency) for no fsync per commit.
fn sqlite_store(rt: &tokio::runtime::Runtime, name: &str, normal_sync: bool) -> Arc<SqliteStore> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.sqlite3"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let synchronous = if normal_sync {
        Synchronous::Normal
    } else {
        Synchronous::Full
    };
    let options = SqliteOptions::default().synchronous(synchronous);
    rt.block_on(async { Arc::new(SqliteStore::open_with(&path, options).await.unwrap()) })
}

fn header_login(c: &mut Criterion) {
    let rt = runtime();
    let stores: [(&str, Arc<dyn UserStore>); 3] = [
        (
            "through_chain_with_role_mapping",
            Arc::new(MemoryUserStore::new()),
        ),
        (
            "through_chain_with_role_mapping_sqlite",
            sqlite_store(&rt, "header_login", false),
        ),
        (
            "through_chain_with_role_mapping_sqlite_synchronous_normal",
            sqlite_store(&rt, "header_login_normal", true),
        ),
    ];
    let mut group = c.benchmark_group("header_login");
    group.throughput(Throughput::Elements(1));
    for (label, store) in stores {
        let (chain, request) = header_chain(&rt, store);
        group.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                match chain.login(&request).await.unwrap() {
                    LoginResult::Authenticated(p) => assert!(p.has_role("admin")),
                    other => panic!("{other:?}"),
                }
            })
        });
    }
    group.finish();
}

fn header_chain(rt: &tokio::runtime::Runtime, store: Arc<dyn UserStore>) -> (AuthChain, AuthRequest) {
    rt.block_on(store.create_account(NewAccount::new("alice").linked_to("proxy", "alice")))
        .unwrap();
    let mapping = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("developers", "developer")
        .rule("ops", "operator")
        .default_for_unmapped("viewer")
        .match_dn(true)
        .case_insensitive(true)
        .build()
        .unwrap();
    let module = HeaderModule::builder("proxy")
        .trusted_proxies(ProxyTrust::new(["10.0.0.0/8".parse().unwrap()]))
        .build()
        .unwrap();
    let chain = AuthChain::builder(store)
        .client_ip_from(ProxyTrust::new(["10.0.0.0/8".parse().unwrap()]))
        .module_with(
            module,
            ModuleSettings::new()
                .provisioning(Provisioning::Existing)
                .roles(mapping),
        )
        .build()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("remote-user", "alice".parse().unwrap());
    headers.insert("remote-groups", "admins,developers,staff".parse().unwrap());
    headers.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
    headers.insert("user-agent", "bench/1.0".parse().unwrap());
    let request = AuthRequest::new("10.0.0.5:40000".parse().unwrap()).with_headers(headers);
    (chain, request)
}

fn role_mapping(c: &mut Criterion) {
    let mut builder = RoleMapping::builder().match_dn(true).case_insensitive(true);
    for i in 0..10_000 {
        builder = builder.rule(format!("group-{i}"), format!("role-{}", i % 200));
    }
    let mapping = builder.default_for_unmapped("viewer").build().unwrap();
    // 1,000 groups: half match a rule, given as DNs (the LDAP case) or names.
    let dns: Vec<String> = (0..1_000)
        .map(|i| format!("cn=Group-{},ou=groups,dc=example,dc=org", i * 20))
        .collect();
    let names: Vec<String> = (0..1_000).map(|i| format!("group-{}", i * 20)).collect();
    let mut group = c.benchmark_group("role_mapping_1000_groups_x_10000_rules");
    group.throughput(Throughput::Elements(1));
    for (label, groups) in [("names", &names), ("dns_case_insensitive", &dns)] {
        group.bench_with_input(BenchmarkId::from_parameter(label), groups, |b, groups| {
            b.iter(|| {
                let roles = mapping.map(groups);
                assert!(!roles.is_empty());
                roles
            })
        });
    }
    group.finish();
}

fn local_login(c: &mut Criterion) {
    let rt = runtime();
    let policy = Arc::new(PasswordPolicy::owasp());
    let hash = policy.hash("correct horse battery staple").unwrap();
    let store = Arc::new(MemoryUserStore::new());
    rt.block_on(store.create_account(NewAccount::new("alice").password_hash(hash.clone())))
        .unwrap();
    let chain = AuthChain::builder(store.clone())
        .module(
            LocalModule::builder("local", store)
                .passwords(policy.clone())
                .build(),
        )
        .build()
        .unwrap();
    let sqlite = sqlite_store(&rt, "local_login", false);
    rt.block_on(sqlite.create_account(NewAccount::new("alice").password_hash(hash.clone())))
        .unwrap();
    let sqlite_chain = AuthChain::builder(sqlite.clone())
        .module(
            LocalModule::builder("local", sqlite)
                .passwords(policy.clone())
                .build(),
        )
        .build()
        .unwrap();
    let request = AuthRequest::new("192.0.2.1:40000".parse().unwrap())
        .with_password("alice", "correct horse battery staple");
    let password = SecretString::new("correct horse battery staple");

    let mut group = c.benchmark_group("local_password_login");
    group.sample_size(30);
    group.throughput(Throughput::Elements(1));
    group.bench_function("argon2id_verify_alone", |b| {
        b.iter(|| {
            assert!(matches!(
                policy.verify(&password, &hash),
                authchain::account::Verification::Valid { .. }
            ))
        })
    });
    group.bench_function("through_chain", |b| {
        b.to_async(&rt)
            .iter(|| async { assert!(chain.login(&request).await.is_ok()) })
    });
    group.bench_function("through_chain_sqlite", |b| {
        b.to_async(&rt)
            .iter(|| async { assert!(sqlite_chain.login(&request).await.is_ok()) })
    });
    group.finish();
}

criterion_group!(benches, header_login, role_mapping, local_login);
criterion_main!(benches);
