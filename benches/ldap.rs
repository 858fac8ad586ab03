//! LDAP logins per second against a real slapd on loopback (tests/peers/slapd.sh):
//! search mode with the service account, memberOf groups, warm pools.
//!
//! `cargo bench --features ldap --bench ldap`

#[path = "../tests/common/peer.rs"]
mod peer;
#[path = "../tests/ldap/slapd.rs"]
mod slapd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authchain::modules::ldap::{LdapModule, LdapSettings};
use authchain::{AuthRequest, Authenticator, Outcome, SecretSource};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CONCURRENCY: usize = 32;

fn module(server: &slapd::Slapd) -> Arc<LdapModule> {
    let mut settings = LdapSettings::new([server.ldap_url.parse().expect("URL")]);
    settings.bind_dn = Some(server.service_dn.clone());
    settings.bind_password = Some(SecretSource::Inline(server.service_password.as_str().into()));
    settings.user_search_base = Some(slapd::PEOPLE.into());
    settings.user_search_filter = "(uid=%s)".into();
    settings.pool_size = CONCURRENCY;
    Arc::new(LdapModule::new("corp-ldap", settings).expect("module"))
}

async fn login(module: &LdapModule, request: &AuthRequest) {
    match module.authenticate(request).await {
        Ok(Outcome::Authenticated(_)) => {}
        other => panic!("login failed: {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let server = slapd::Slapd::shared();
    // Sequential logins on a single-threaded runtime (no cross-thread wake-ups),
    // concurrent ones on a multi-threaded one; each runtime gets its own module,
    // since pooled connections are driven by tasks of the runtime that opened them.
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sequential_module = module(server);
    let module = module(server);
    let request = Arc::new(
        AuthRequest::new("127.0.0.1:40000".parse().expect("addr")).with_password("alice", "alice-password"),
    );

    let mut group = c.benchmark_group("ldap");
    group.throughput(Throughput::Elements(1));
    group.bench_function("login_sequential", |b| {
        b.to_async(&single).iter(|| login(&sequential_module, &request));
    });
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.bench_function("login_32_concurrent", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let module = module.clone();
            let request = request.clone();
            async move {
                let started = Instant::now();
                for _ in 0..iters {
                    let tasks: Vec<_> = (0..CONCURRENCY)
                        .map(|_| {
                            let module = module.clone();
                            let request = request.clone();
                            tokio::spawn(async move { login(&module, &request).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                }
                started.elapsed()
            }
        });
    });
    group.finish();

    // A plain figure for the report: logins per second over a fixed number of logins.
    let n = 5_000;
    // Baseline: the same two operations with ldap3 alone (no pool, no module).
    let raw = single.block_on(async {
        use ldap3::{LdapConnAsync, Scope, SearchEntry};
        let (conn, mut service) = LdapConnAsync::new(&server.ldap_url).await.expect("connect");
        ldap3::drive!(conn);
        let (conn, mut user) = LdapConnAsync::new(&server.ldap_url).await.expect("connect");
        ldap3::drive!(conn);
        service
            .simple_bind(&server.service_dn, &server.service_password)
            .await
            .expect("bind")
            .success()
            .expect("bind");
        let attrs = ["entryUUID", "uid", "mail", "cn", "memberOf"];
        let started = Instant::now();
        for _ in 0..n {
            let (entries, _) = service
                .search(slapd::PEOPLE, Scope::Subtree, "(uid=alice)", &attrs[..])
                .await
                .expect("search")
                .success()
                .expect("search");
            let entry = SearchEntry::construct(entries.into_iter().next().expect("entry"));
            user.simple_bind(&entry.dn, "alice-password")
                .await
                .expect("bind")
                .success()
                .expect("bind");
        }
        n as f64 / started.elapsed().as_secs_f64()
    });
    let sequential = single.block_on(async {
        let started = Instant::now();
        for _ in 0..n {
            login(&sequential_module, &request).await;
        }
        n as f64 / started.elapsed().as_secs_f64()
    });
    runtime.block_on(async {
        let started = Instant::now();
        let per_task = n / CONCURRENCY;
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let module = module.clone();
                let request = request.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        login(&module, &request).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let concurrent = (per_task * CONCURRENCY) as f64 / started.elapsed().as_secs_f64();
        println!(
            "ldap logins/s: sequential {sequential:.0}, {CONCURRENCY} concurrent {concurrent:.0} \
             (bare ldap3 search + bind, sequential: {raw:.0})"
        );
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = bench
}
criterion_main!(benches);
