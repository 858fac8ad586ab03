//! The bounded memory stores at and past their caps: 200,000 failed logins from
//! distinct addresses through a throttled chain (twice the attempt store's
//! 100,000 keys), then a user's login; 200,000 redirect-login starts from one
//! address (twice the flow store's 100,000 flows), then another client's start
//! and finish. Each flood should take under a second, the other user unaffected.
//!
//! `cargo bench --bench stores`. Three runs each, on fresh stores; printed in
//! logins/s (starts/s) and µs per request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use authchain::account::{
    MemoryAttemptStore, MemoryUserStore, NewAccount, PasswordPolicy, ThrottlePolicy, UserStore,
};
use authchain::flow::{Flows, MemoryFlowStore};
use authchain::modules::LocalModule;
use authchain::{AuthChain, AuthError, AuthRequest, LoginResult, StartLogin};

const FLOOD: u32 = 200_000;
const RUNS: usize = 3;

/// CPU time of this thread so far (Linux: `/proc/thread-self/schedstat`), so a
/// figure on a loaded machine can be read beside its wall time.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e9)
}

/// Wall and CPU seconds of `work`.
async fn timed<F: std::future::Future<Output = ()>>(work: F) -> (f64, String) {
    let cpu = cpu_seconds();
    let started = Instant::now();
    work.await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = match (cpu, cpu_seconds()) {
        (Some(before), Some(after)) => format!("{:.3} s on the CPU", after - before),
        _ => "CPU time unknown".to_owned(),
    };
    (wall, cpu)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for run in 1..=RUNS {
        rt.block_on(throttle_flood(run));
    }
    for run in 1..=RUNS {
        rt.block_on(flow_flood(run));
    }
}

async fn throttle_flood(run: usize) {
    let passwords = Arc::new(PasswordPolicy::fast_insecure_for_tests());
    let store = Arc::new(MemoryUserStore::new());
    let hash = passwords.hash("correct horse").unwrap();
    store
        .create_account(NewAccount::new("alice").password_hash(hash))
        .await
        .unwrap();
    let chain = AuthChain::builder(store.clone())
        .throttle(ThrottlePolicy::default(), Arc::new(MemoryAttemptStore::new()))
        .module(LocalModule::builder("local", store).passwords(passwords).build())
        .build()
        .unwrap();
    let (flood, cpu) = timed(async {
        for i in 0..FLOOD {
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
            // An empty password fails before any hashing: the flood costs the store.
            let request = AuthRequest::new(SocketAddr::new(ip.into(), 40000)).with_password("mallory", "");
            assert_eq!(
                chain.login(&request).await.unwrap_err(),
                AuthError::InvalidCredentials
            );
        }
    })
    .await;
    let user = Instant::now();
    let request =
        AuthRequest::new("192.0.2.7:40000".parse().unwrap()).with_password("alice", "correct horse");
    assert!(matches!(
        chain.login(&request).await,
        Ok(LoginResult::Authenticated(_))
    ));
    let user = user.elapsed().as_secs_f64();
    println!(
        "throttle flood (run {run}): {FLOOD} failed logins from distinct addresses in {flood:.3} s ({cpu}; \
         {:.0} logins/s, {:.2} µs/login); then a user's password login: authenticated in {:.0} µs",
        f64::from(FLOOD) / flood,
        flood * 1e6 / f64::from(FLOOD),
        user * 1e6
    );
}

async fn flow_flood(run: usize) {
    let store = Arc::new(MemoryFlowStore::default());
    let flows = Flows::new(store.clone());
    let flooder = StartLogin::new().client(IpAddr::from([198, 51, 100, 66]));
    let (flood, cpu) = timed(async {
        for _ in 0..FLOOD {
            flows.start("oidc", &flooder).await.unwrap();
        }
    })
    .await;
    let user = Instant::now();
    let begun = flows
        .start("oidc", &StartLogin::new().client(IpAddr::from([192, 0, 2, 7])))
        .await
        .unwrap();
    flows
        .take("oidc", &begun.flow.state, Some(&begun.cookie.value))
        .await
        .unwrap();
    let user = user.elapsed().as_secs_f64();
    println!(
        "flow flood (run {run}): {FLOOD} flow starts from one address in {flood:.3} s ({cpu}; \
         {:.0} starts/s, {:.2} µs/start, {} flows held); then another client's start and finish: ok in {:.0} µs",
        f64::from(FLOOD) / flood,
        flood * 1e6 / f64::from(FLOOD),
        store.len(),
        user * 1e6
    );
}
