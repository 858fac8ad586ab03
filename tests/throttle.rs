//! Login throttling: lockout, retry-after, reset on success, and no lock-out of a
//! user by an attacker elsewhere.

mod common;

use std::sync::Arc;
use std::time::Duration;

use authchain::account::{LoginNames, MemoryAttemptStore, ThrottlePolicy};
use authchain::{AuthChain, AuthError, AuthRequest};
use common::{Scripted, calls, local, peer, principal, store_with_admin};

fn policy(max_attempts: u32, max_attempts_per_ip: u32) -> ThrottlePolicy {
    ThrottlePolicy {
        max_attempts,
        max_attempts_per_ip,
        window: Duration::from_secs(600),
    }
}

fn from(ip: &str, login: &str, password: &str) -> AuthRequest {
    AuthRequest::new(peer(ip)).with_password(login, password)
}

async fn chain(policy: ThrottlePolicy) -> (AuthChain, Arc<std::sync::atomic::AtomicUsize>) {
    let store = store_with_admin().await;
    let spy = Scripted::new("spy", common::Answer::Abstain);
    let spy_calls = spy.counter();
    let chain = AuthChain::builder(store.clone())
        .login_names(LoginNames {
            case_insensitive: true,
            ..LoginNames::default()
        })
        .throttle(policy, Arc::new(MemoryAttemptStore::new()))
        .module(spy)
        .module(
            authchain::modules::LocalModule::builder("local", store)
                .passwords(common::passwords())
                .login_names(LoginNames {
                    case_insensitive: true,
                    ..LoginNames::default()
                })
                .build(),
        )
        .build()
        .unwrap();
    (chain, spy_calls)
}

#[tokio::test]
async fn lockout_after_n_failures_with_retry_after_and_no_module_reached() {
    let (chain, spy_calls) = chain(policy(3, 100)).await;
    for _ in 0..3 {
        assert_eq!(
            chain
                .login(&from("198.51.100.1", "root", "guess"))
                .await
                .unwrap_err(),
            AuthError::InvalidCredentials
        );
    }
    assert_eq!(calls(&spy_calls), 3);
    // The fourth attempt, even with the right password, is throttled before any module.
    let err = chain
        .login(&from("198.51.100.1", "root", "break-glass"))
        .await
        .unwrap_err();
    match err {
        AuthError::Throttled { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(590) && retry_after <= Duration::from_secs(600),
                "{retry_after:?}"
            );
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert_eq!(err.status_code(), 429);
    assert_eq!(calls(&spy_calls), 3, "a throttled request must reach no module");
    // Case variants of the name share the counter.
    assert!(matches!(
        chain.login(&from("198.51.100.1", "ROOT", "x")).await,
        Err(AuthError::Throttled { .. })
    ));
}

#[tokio::test]
async fn another_address_is_not_locked_out() {
    let (chain, _) = chain(policy(3, 100)).await;
    for _ in 0..5 {
        let _ = chain.login(&from("203.0.113.66", "root", "guess")).await;
    }
    assert!(matches!(
        chain.login(&from("203.0.113.66", "root", "x")).await,
        Err(AuthError::Throttled { .. })
    ));
    let p = principal(chain.login(&from("192.0.2.50", "root", "break-glass")).await);
    assert_eq!(p.login, "root");
}

#[tokio::test]
async fn success_resets_the_pair() {
    let (chain, _) = chain(policy(3, 100)).await;
    for _ in 0..2 {
        let _ = chain.login(&from("198.51.100.2", "root", "guess")).await;
    }
    principal(chain.login(&from("198.51.100.2", "root", "break-glass")).await);
    // Two more failures are allowed again before the lock.
    for _ in 0..2 {
        assert_eq!(
            chain
                .login(&from("198.51.100.2", "root", "guess"))
                .await
                .unwrap_err(),
            AuthError::InvalidCredentials
        );
    }
    principal(chain.login(&from("198.51.100.2", "root", "break-glass")).await);
}

#[tokio::test]
async fn per_address_limit_spans_login_names() {
    let (chain, _) = chain(policy(100, 4)).await;
    for i in 0..4 {
        let _ = chain
            .login(&from("198.51.100.3", &format!("user{i}"), "guess"))
            .await;
    }
    assert!(matches!(
        chain.login(&from("198.51.100.3", "root", "break-glass")).await,
        Err(AuthError::Throttled { .. })
    ));
    principal(chain.login(&from("198.51.100.4", "root", "break-glass")).await);
}

#[tokio::test]
async fn memory_attempt_store_is_bounded() {
    use authchain::account::AttemptStore;
    let store = MemoryAttemptStore::with_bounds(10, 3);
    let now = std::time::SystemTime::now();
    for i in 0..50 {
        store
            .record_failure(&format!("k{i}"), now, Duration::from_secs(60))
            .await
            .unwrap();
    }
    assert!(store.len() <= 10, "{}", store.len());
    for _ in 0..10 {
        store
            .record_failure("hot", now, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let count = store
        .failures_since("hot", now - Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(count.count, 3);
}

#[tokio::test]
async fn a_flood_of_failures_from_distinct_addresses_leaves_users_and_throttling_working() {
    let (chain, _) = chain(policy(3, 100)).await;
    // Twice the store's 100,000-key bound: each failure writes two keys.
    for i in 0..200_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        // An empty password fails before any hashing: the flood costs the store, not argon2.
        let flood =
            AuthRequest::new(std::net::SocketAddr::new(ip.into(), 40000)).with_password("mallory", "");
        assert_eq!(
            chain.login(&flood).await.unwrap_err(),
            AuthError::InvalidCredentials
        );
    }
    principal(chain.login(&from("192.0.2.7", "root", "break-glass")).await);
    for _ in 0..3 {
        assert_eq!(
            chain
                .login(&from("203.0.113.5", "root", "guess"))
                .await
                .unwrap_err(),
            AuthError::InvalidCredentials
        );
    }
    assert!(matches!(
        chain.login(&from("203.0.113.5", "root", "break-glass")).await,
        Err(AuthError::Throttled { .. })
    ));
    // The user elsewhere is still not locked out.
    principal(chain.login(&from("192.0.2.7", "root", "break-glass")).await);
}

#[tokio::test]
async fn memory_attempt_store_evicts_the_stalest_window_first() {
    use authchain::account::AttemptStore;
    let store = MemoryAttemptStore::with_bounds(3, 10);
    let t0 = std::time::SystemTime::now();
    let window = Duration::from_secs(60);
    let at = |s: u64| t0 + Duration::from_secs(s);
    for (key, s) in [("a", 0), ("b", 1), ("c", 2), ("a", 3), ("d", 4)] {
        store.record_failure(key, at(s), window).await.unwrap();
    }
    let count = |key: &'static str| {
        let store = &store;
        async move { store.failures_since(key, t0).await.unwrap().count }
    };
    // `b` had the oldest last failure; `a` failed again after it, so it stays.
    assert_eq!(
        (
            count("a").await,
            count("b").await,
            count("c").await,
            count("d").await
        ),
        (2, 0, 1, 1)
    );
    // At 63 s the window of `c` (last failure at 2 s) has ended: it goes, the live
    // ones stay.
    store.record_failure("e", at(63), window).await.unwrap();
    assert_eq!(
        (
            count("a").await,
            count("c").await,
            count("d").await,
            count("e").await
        ),
        (2, 0, 1, 1)
    );
    assert_eq!(store.len(), 3);
}

#[tokio::test]
async fn zero_limits_do_not_build() {
    let store = store_with_admin().await;
    let err = AuthChain::builder(store.clone())
        .throttle(policy(0, 1), Arc::new(MemoryAttemptStore::new()))
        .module(local(store))
        .build()
        .err()
        .unwrap();
    assert_eq!(err.key(), Some("throttle.max_attempts"));
}
