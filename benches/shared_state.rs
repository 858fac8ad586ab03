//! Shared-state benchmarks against real servers (tests/peers/postgres.sh and
//! redis.sh, started here): trusted-header and local-password logins with the
//! PostgreSQL store (one instance, and two instances with a pool each, 64 logins
//! in flight), and a redirect flow's start + take with Redis. Before the timings,
//! the Redis commands of one login are counted on the server
//! (`total_commands_processed`) and printed.
//!
//! `cargo bench --bench shared_state --features postgres,redis`. Local logins use
//! a deliberately cheap password hash: what is measured is the store, not argon2.

#[path = "../tests/common/state.rs"]
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authchain::account::{
    AttemptStore, NewAccount, PasswordPolicy, PgStore, Provisioning, ThrottlePolicy, UserStore,
};
use authchain::chain::ModuleSettings;
use authchain::flow::{FlowStore, Flows};
use authchain::modules::{HeaderModule, LocalModule};
use authchain::net::ProxyTrust;
use authchain::state::RedisState;
use authchain::{AuthChain, AuthRequest, LoginResult};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;

const IN_FLIGHT: usize = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn header_request(user: &str) -> AuthRequest {
    let mut headers = HeaderMap::new();
    headers.insert("remote-user", user.parse().unwrap());
    headers.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
    AuthRequest::new("10.0.0.5:40000".parse().unwrap()).with_headers(headers)
}

fn password_request() -> AuthRequest {
    AuthRequest::new("192.0.2.1:40000".parse().unwrap()).with_password("alice", "bench-password")
}

/// A chain of a header module and a local module over `store`, throttled with
/// counters in `attempts`.
fn chain(store: Arc<PgStore>, attempts: Arc<dyn AttemptStore>) -> AuthChain {
    let trust = ProxyTrust::new(["10.0.0.0/8".parse().unwrap()]);
    let header = HeaderModule::builder("proxy")
        .trusted_proxies(trust.clone())
        .build()
        .unwrap();
    let local = LocalModule::builder("local", store.clone())
        .passwords(Arc::new(PasswordPolicy::fast_insecure_for_tests()))
        .build();
    AuthChain::builder(store)
        .client_ip_from(trust)
        .throttle(ThrottlePolicy::default(), attempts)
        .module_with(header, ModuleSettings::new().provisioning(Provisioning::Existing))
        .module(local)
        .build()
        .unwrap()
}

struct Setup {
    chains: Vec<Arc<AuthChain>>,
}

fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    rt.block_on(async {
        let pg_url = state::fresh_pg_url().await;
        let redis = state::redis_state().await;
        let mut chains = Vec::new();
        for instance in 0..2 {
            let store = Arc::new(
                PgStore::connect(&pg_url, authchain::account::PgOptions::default())
                    .await
                    .unwrap(),
            );
            if instance == 0 {
                let hash = PasswordPolicy::fast_insecure_for_tests()
                    .hash("bench-password")
                    .unwrap();
                // A local account, and one the proxy signs in (the local module
                // leaves linked accounts to their provider).
                store
                    .create_account(NewAccount::new("alice").password_hash(hash))
                    .await
                    .unwrap();
                store
                    .create_account(NewAccount::new("bob").linked_to("proxy", "bob"))
                    .await
                    .unwrap();
            }
            chains.push(Arc::new(chain(store, redis.clone())));
        }
        Setup { chains }
    })
}

async fn redis_commands(redis: &state::Peer) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.var("REDIS_PORT"), "info", "stats"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_commands_processed")
}

/// Counts the Redis commands of `LOGINS` logins of each kind and prints them per
/// login (the counting's own `INFO` is subtracted). PostgreSQL statements per
/// login are fixed by the code: see docs/deployment.md.
fn round_trips(rt: &tokio::runtime::Runtime, setup: &Setup) {
    const LOGINS: u64 = 100;
    let redis_peer = state::redis();
    rt.block_on(async {
        for (label, request) in [("header", header_request("bob")), ("local", password_request())] {
            let r0 = redis_commands(redis_peer).await;
            let r_idle = redis_commands(redis_peer).await;
            for _ in 0..LOGINS {
                assert!(matches!(
                    setup.chains[0].login(&request).await,
                    Ok(LoginResult::Authenticated(_))
                ));
            }
            let r1 = redis_commands(redis_peer).await;
            let redis_calls = (r1 - r_idle).saturating_sub(r_idle - r0) as f64 / LOGINS as f64;
            // Redis counts the commands a script runs as well as the EVALSHA itself.
            println!("Redis commands per {label} login (inside scripts included): {redis_calls:.1}");
        }
    });
}

/// `IN_FLIGHT` logins at once over `chains` (round robin); the time per login.
async fn concurrent_logins(chains: &[Arc<AuthChain>], request: &AuthRequest, rounds: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..rounds {
        let mut tasks = Vec::with_capacity(IN_FLIGHT);
        for i in 0..IN_FLIGHT {
            let chain = chains[i % chains.len()].clone();
            let request = request.clone();
            tasks.push(tokio::spawn(async move {
                let result = chain.login(&request).await;
                assert!(matches!(result, Ok(LoginResult::Authenticated(_))), "{result:?}");
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    started.elapsed() / IN_FLIGHT as u32
}

fn logins(c: &mut Criterion) {
    let rt = runtime();
    let setup = setup(&rt);
    round_trips(&rt, &setup);
    let mut group = c.benchmark_group("postgres_store_login");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (label, request) in [("header", header_request("bob")), ("local", password_request())] {
        group.bench_function(format!("{label}_one_instance_sequential"), |b| {
            b.to_async(&rt).iter(|| async {
                assert!(matches!(
                    setup.chains[0].login(&request).await,
                    Ok(LoginResult::Authenticated(_))
                ));
            })
        });
        for (instances, chains) in [(1, &setup.chains[..1]), (2, &setup.chains[..])] {
            group.bench_function(
                format!("{label}_{instances}_instances_{IN_FLIGHT}_in_flight"),
                |b| {
                    b.to_async(&rt)
                        .iter_custom(|rounds| concurrent_logins(chains, &request, rounds))
                },
            );
        }
    }
    group.finish();
}

fn redis_flows(c: &mut Criterion) {
    let rt = runtime();
    let redis: Arc<RedisState> = rt.block_on(state::redis_state());
    let flows = Flows::new(redis.clone() as Arc<dyn FlowStore>);
    let mut group = c.benchmark_group("redis_flow");
    group.throughput(Throughput::Elements(1));
    group.bench_function("start_and_take", |b| {
        b.to_async(&rt).iter(|| async {
            let started = flows.start("sso", &authchain::StartLogin::new()).await.unwrap();
            let taken = flows
                .take("sso", &started.flow.state, Some(&started.cookie.value))
                .await
                .unwrap();
            assert_eq!(taken.state, started.flow.state);
        })
    });
    group.finish();
}

criterion_group!(benches, logins, redis_flows);
criterion_main!(benches);
