//! Load through a whole configured chain — [header, LDAP, local] with the SQLite
//! store — against the real slapd (tests/peers/slapd.sh): many logins at once
//! must all succeed, hold a bounded number of LDAP connections, and never meet a
//! locked database. A soak (`soak_memory_reaches_a_plateau`, ignored by default;
//! `tests/soak.sh` runs it) adds flow starts and failed logins from many addresses
//! and prints the process's memory as a series.
#![cfg(all(feature = "ldap", feature = "sqlite", feature = "oauth2"))]

#[path = "common/peer.rs"]
mod peer;
#[path = "ldap/slapd.rs"]
mod slapd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authchain::account::{NewAccount, UserStore};
use authchain::chain::AuthChain;
use authchain::config::Config;
use authchain::modules::LdapModule;
use authchain::{AuthError, AuthRequest, Credentials, LoginResult};
use http::{HeaderMap, HeaderValue};
use slapd::{GROUPS, PEOPLE, Slapd};

const LOGINS: usize = 10_000;
const CONCURRENCY: usize = 64;
const POOL_SIZE: usize = 8;
const HEADER_USERS: usize = 50;
const LOCAL_USERS: usize = 20;
const LDAP_USERS: [(&str, &str); 2] = [("alice", "alice-password"), ("bob", "bob-password")];
const PROXY: &str = "10.0.0.1:40000";

fn config(server: &Slapd, db: &std::path::Path) -> Config {
    let text = format!(
        r#"
chain = ["proxy", "corp", "local", "social"]

[passwords]
argon2_m_cost_kib = 8
argon2_t_cost = 1
argon2_p_cost = 1

[store]
type = "sqlite"
path = "{db}"
max_connections = 4

[throttle]
max_attempts = 5
max_attempts_per_ip = 10000

[modules.proxy]
type = "header"
trusted_proxies = ["10.0.0.1"]
provisioning = "create"

[modules.corp]
type = "ldap"
urls = ["{url}"]
bind_dn = "{dn}"
bind_password = "{pw}"
user_search_base = "{PEOPLE}"
groups = "search"
group_search_base = "{GROUPS}"
pool_size = {POOL_SIZE}
provisioning = "create"

[modules.local]
type = "local"

[modules.social]
type = "oauth2"
client_id = "soak"
client_secret = "soak-secret"
redirect_uri = "https://app.example/auth/callback/social"
authorization_endpoint = "https://provider.example/authorize"
token_endpoint = "https://provider.example/token"
userinfo_endpoint = "https://provider.example/user"
flow_ttl = "PT5S"
"#,
        db = db.display(),
        url = server.ldap_url,
        dn = server.service_dn,
        pw = server.service_password,
    );
    Config::from_toml(&text).expect("the load configuration parses")
}

/// The chain over a fresh SQLite file, with `LOCAL_USERS` local accounts.
async fn chain(name: &str) -> (Arc<AuthChain>, Arc<dyn UserStore>) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("load");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!("{name}.sqlite3"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let config = config(Slapd::shared(), &db);
    let stores = config.open_stores().await.expect("open the SQLite store");
    let users = stores.users().clone();
    let passwords = config.password_policy().unwrap();
    for i in 0..LOCAL_USERS {
        let hash = passwords.hash(&format!("local-password-{i}")).unwrap();
        users
            .create_account(NewAccount::new(format!("local{i}")).password_hash(hash))
            .await
            .unwrap();
    }
    (Arc::new(config.build(stores).expect("the chain builds")), users)
}

fn header_login(i: usize) -> AuthRequest {
    let mut headers = HeaderMap::new();
    headers.insert(
        "remote-user",
        HeaderValue::from_str(&format!("proxied{}", i % HEADER_USERS)).unwrap(),
    );
    AuthRequest::new(PROXY.parse().unwrap()).with_headers(headers)
}

fn client(i: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, (i % 200) as u8 + 1], 50000))
}

/// The `i`-th login of the mix: a third each through the header, LDAP and local
/// modules, and the login name it must end as.
fn login(i: usize) -> (AuthRequest, String) {
    match i % 3 {
        0 => (header_login(i), format!("proxied{}", i % HEADER_USERS)),
        1 => {
            let (user, password) = LDAP_USERS[i % LDAP_USERS.len()];
            (
                AuthRequest::new(client(i)).with_password(user, password),
                user.to_owned(),
            )
        }
        _ => {
            let n = i % LOCAL_USERS;
            (
                AuthRequest::new(client(i)).with_password(format!("local{n}"), format!("local-password-{n}")),
                format!("local{n}"),
            )
        }
    }
}

/// Runs `count` logins of the mix on `CONCURRENCY` tasks; answers the failures.
async fn run(chain: &Arc<AuthChain>, count: usize) -> Vec<(usize, String)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (chain, next) = (chain.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return failures;
                }
                let (request, expected) = login(i);
                match chain.login(&request).await {
                    Ok(LoginResult::Authenticated(p)) if p.login == expected => {}
                    other => failures.push((i, format!("{other:?}"))),
                }
            }
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.expect("a login task panicked"));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_logins_at_64_concurrent_through_header_ldap_and_local() {
    let (chain, users) = chain("ten-thousand").await;
    let failures = run(&chain, LOGINS).await;
    // Every login succeeds: no "database is locked", no pool exhaustion, no race
    // between concurrent first logins of one subject.
    assert!(
        failures.is_empty(),
        "{} of {LOGINS} logins failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    // Concurrent first logins created one account per subject.
    let header_accounts = accounts_named(&users, (0..HEADER_USERS).map(|i| format!("proxied{i}"))).await;
    assert_eq!(header_accounts, HEADER_USERS);
    let ldap_accounts = accounts_named(&users, LDAP_USERS.iter().map(|(u, _)| u.to_string())).await;
    assert_eq!(ldap_accounts, LDAP_USERS.len());
    // The LDAP pool stays within its size however many logins ran at once.
    let ldap = chain.module::<LdapModule>("corp").expect("the ldap module");
    let (service, user) = ldap.idle_connections();
    assert!(
        (1..=POOL_SIZE).contains(&service) && (1..=POOL_SIZE).contains(&user),
        "idle LDAP connections ({service}, {user}) beyond pool_size {POOL_SIZE}"
    );
}

/// How many of these login names have an account.
async fn accounts_named(users: &Arc<dyn UserStore>, logins: impl Iterator<Item = String>) -> usize {
    let mut found = 0;
    for login in logins {
        if users.find_by_login(&login, false).await.unwrap().is_some() {
            found += 1;
        }
    }
    found
}

/// The process's resident memory, in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A start at the OAuth2 module that is never finished (its flow expires after
/// 5 s), from one of 4,096 addresses.
fn abandoned_start(i: usize) -> AuthRequest {
    let i = i % 4096;
    AuthRequest::new(SocketAddr::from(([198, 51, (i >> 8) as u8, i as u8], 40000)))
        .with_credentials(Credentials::Start(Default::default()))
        .select("social")
}

/// A failed password login from one of 4,096 addresses for one of 1,000 names
/// (throttle counters for every one of them, renewed all the time).
fn failed_login(i: usize) -> AuthRequest {
    let i = i % 4096;
    AuthRequest::new(SocketAddr::from(([203, 0, (i >> 8) as u8, i as u8], 40000)))
        .with_password(format!("nobody{}", i % 1000), "wrong")
}

/// Steady load for `AUTHCHAIN_SOAK_SECS` (default 600) seconds: the login mix,
/// abandoned redirect starts and failed logins from many addresses. Prints one
/// line of memory figures per 30 s; the series must level off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a 10-minute soak: run by tests/soak.sh"]
async fn soak_memory_reaches_a_plateau() {
    let secs: u64 = std::env::var("AUTHCHAIN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let (chain, _) = chain("soak").await;
    let started = Instant::now();
    let mut series = Vec::new();
    let mut round = 0usize;
    let mut totals = BTreeMap::from([("logins", 0usize), ("starts", 0), ("failures", 0)]);
    let mut next_report = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        let failures = run(&chain, 600).await;
        assert!(failures.is_empty(), "{:?}", &failures[..failures.len().min(3)]);
        *totals.get_mut("logins").unwrap() += 600;
        for k in 0..200 {
            let i = round * 200 + k;
            match chain.login(&abandoned_start(i)).await {
                Ok(LoginResult::Redirect(_)) => *totals.get_mut("starts").unwrap() += 1,
                other => panic!("start {i}: {other:?}"),
            }
            match chain.login(&failed_login(i)).await {
                Err(AuthError::InvalidCredentials | AuthError::Throttled { .. }) => {
                    *totals.get_mut("failures").unwrap() += 1
                }
                other => panic!("failed login {i}: {other:?}"),
            }
        }
        round += 1;
        if started.elapsed() >= next_report {
            let line = format!(
                "t={:>4}s rss={} KiB logins={} starts={} failed={}",
                started.elapsed().as_secs(),
                rss_kib(),
                totals["logins"],
                totals["starts"],
                totals["failures"]
            );
            println!("{line}");
            series.push(rss_kib());
            next_report += Duration::from_secs(30);
        }
    }
    // The last third of the series grows by less than a tenth over the middle third.
    let third = series.len() / 3;
    if third > 0 {
        let middle = series[third..2 * third].iter().max().copied().unwrap_or(0);
        let last = series[2 * third..].iter().max().copied().unwrap_or(0);
        assert!(last <= middle + middle / 10, "memory still growing: {series:?}");
    }
}
