//! Chain benchmarks: a trusted-header login through the chain with role mapping
//! (memory and SQLite stores), the header module reading 1,024 groups, role
//! mapping at scale, and a local-password login beside the bare argon2 cost.
//!
//! `cargo bench --bench chain`. Figures are per login (criterion's median). Before
//! criterion runs, the header login through the chain (memory store) is also
//! counted: heap allocations per login (a counting global allocator, here in the
//! bench only) and instructions per login (this binary run twice under valgrind's
//! callgrind, doing N logins and none, when valgrind is installed).

use std::sync::Arc;

use authchain::account::{
    MemoryUserStore, NewAccount, PasswordPolicy, Provisioning, RoleMapping, SqliteOptions, SqliteStore,
    Synchronous, UserStore,
};
use authchain::chain::ModuleSettings;
use authchain::modules::{HeaderModule, LocalModule};
use authchain::net::ProxyTrust;
use authchain::{AuthChain, AuthRequest, Authenticator, LoginResult, Outcome, SecretString};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use http::HeaderMap;

mod counting {
    //! A global allocator that counts allocations (bench binaries only: the
    //! library forbids `unsafe`).
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct Counting;

    static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

    /// Allocations (and reallocations) so far.
    pub fn allocations() -> u64 {
        ALLOCATIONS.load(Ordering::Relaxed)
    }

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the caller's contract is System's.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as above.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Set in the environment of the callgrind runs: log in this many times, print
/// nothing, exit.
const LOGINS_ONLY: &str = "AUTHCHAIN_BENCH_LOGINS_ONLY";
/// Logins the counts are taken over.
const COUNTED_LOGINS: u64 = 20_000;
/// Logins before counting starts (lazy initialisation, caches).
const WARM_UP_LOGINS: u64 = 100;

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
            b.to_async(&rt).iter(|| one_header_login(&chain, &request))
        });
    }
    group.finish();
}

/// One header login through the chain (memory store), checked.
async fn one_header_login(chain: &AuthChain, request: &AuthRequest) {
    match chain.login(request).await.unwrap() {
        LoginResult::Authenticated(p) => assert!(p.has_role("admin")),
        other => panic!("{other:?}"),
    }
}

/// `count` header logins after the warm-up, on a fresh memory-store chain.
fn header_logins(count: u64) {
    let rt = runtime();
    let (chain, request) = header_chain(&rt, Arc::new(MemoryUserStore::new()));
    rt.block_on(async {
        for _ in 0..WARM_UP_LOGINS + count {
            one_header_login(&chain, &request).await;
        }
    });
}

/// Instructions per header login: callgrind's total of this binary doing
/// `COUNTED_LOGINS` logins minus its total doing none. `None` without valgrind.
fn instructions_per_login() -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).ok()?;
    let total = |logins: u64| -> Option<u64> {
        let out = dir.join(format!("callgrind.header_login.{logins}"));
        let run = std::process::Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .env(LOGINS_ONLY, logins.to_string())
            .output()
            .ok()?;
        let stderr = String::from_utf8_lossy(&run.stderr);
        let collected = stderr.lines().find_map(|l| l.split_once("Collected :"))?.1;
        collected.trim().parse().ok()
    };
    let none = total(0)?;
    let some = total(COUNTED_LOGINS)?;
    Some(some.saturating_sub(none) as f64 / COUNTED_LOGINS as f64)
}

/// Prints allocations, instructions and logins/s of the memory-store header login.
fn header_login_counts() {
    let rt = runtime();
    let (chain, request) = header_chain(&rt, Arc::new(MemoryUserStore::new()));
    let (allocations, seconds) = rt.block_on(async {
        for _ in 0..WARM_UP_LOGINS {
            one_header_login(&chain, &request).await;
        }
        let before = counting::allocations();
        let started = std::time::Instant::now();
        for _ in 0..COUNTED_LOGINS {
            one_header_login(&chain, &request).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        (counting::allocations() - before, seconds)
    });
    let per_login = allocations as f64 / COUNTED_LOGINS as f64;
    let logins_per_second = COUNTED_LOGINS as f64 / seconds;
    let instructions =
        instructions_per_login().map_or_else(|| "(valgrind not installed)".to_owned(), |i| format!("{i:.0}"));
    println!(
        "header_login/through_chain_with_role_mapping (memory store): {instructions} instructions/login, \
         {per_login:.1} allocations/login, {logins_per_second:.0} logins/s ({COUNTED_LOGINS} logins, one pass)"
    );
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

/// The header module alone reading the most groups it accepts (1,024 distinct
/// names of 16 bytes): the cost of splitting, checking and de-duplicating them.
fn header_many_groups(c: &mut Criterion) {
    let rt = runtime();
    let module = HeaderModule::builder("proxy")
        .trusted_proxies(ProxyTrust::new(["10.0.0.0/8".parse().unwrap()]))
        .build()
        .unwrap();
    let groups: Vec<String> = (0..1_024).map(|i| format!("group-{i:010}")).collect();
    let mut headers = HeaderMap::new();
    headers.insert("remote-user", "alice".parse().unwrap());
    headers.insert("remote-groups", groups.join(",").parse().unwrap());
    let request = AuthRequest::new("10.0.0.5:40000".parse().unwrap()).with_headers(headers);
    let mut group = c.benchmark_group("header_module");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1024_distinct_groups", |b| {
        b.to_async(&rt).iter(|| async {
            match module.authenticate(&request).await.unwrap() {
                Outcome::Authenticated(identity) => assert_eq!(identity.groups.len(), 1_024),
                other => panic!("{other:?}"),
            }
        })
    });
    group.finish();
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

criterion_group!(
    benches,
    header_login,
    header_many_groups,
    role_mapping,
    local_login
);
fn main() {
    if let Ok(count) = std::env::var(LOGINS_ONLY) {
        header_logins(count.parse().expect("a number of logins"));
        return;
    }
    header_login_counts();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
