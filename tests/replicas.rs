//! Several instances of a host sharing one PostgreSQL and one Redis: two separate
//! processes (this binary started again as a replica: `AUTHCHAIN_REPLICA_CONFIG`
//! set) built from one configuration file with `[store] type = "postgres"` and
//! `[state] type = "redis"`, driven over their stdin/stdout with one JSON line per
//! request. Real servers: tests/peers/postgres.sh, redis.sh and oidc-provider.sh.
//!
//! Checked: an OIDC login started on one replica finishes on the other, its
//! callback replayed to either is refused; failed logins on both reach the
//! throttle limit together; concurrent first logins of one subject on both create
//! one account; Redis stopped → redirect logins `Unavailable` at once while
//! password logins go on (throttle open) and everything recovers when Redis is
//! back; a hung (SIGSTOPped) Redis is bounded by the client's timeouts;
//! PostgreSQL restarted → the replicas reconnect without a restart.
//!
//! `harness = false`: `main` runs the checks in order (they share the servers and
//! the two replicas) and prints `N passed, M failed`.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "oidc/provider.rs"]
#[allow(dead_code)] // Shared with tests/oidc.rs, which uses all of it.
mod provider;
use common::state::peer;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authchain::config::Config;
use authchain::{AuthRequest, Credentials, LoginResult};
use serde_json::{Value, json};

use provider::{Browser, CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, Provider, REDIRECT_URI};

const CONFIG_VAR: &str = "AUTHCHAIN_REPLICA_CONFIG";
const PROXY: &str = "127.0.0.1";

// ---------------------------------------------------------------------------
// The replica: a chain from the configuration file, answering one JSON line per
// request line.

fn error_json(err: &authchain::AuthError) -> Value {
    let debug = format!("{err:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    json!({ "error": variant, "status": err.status_code().as_u16() })
}

async fn serve_replica(config_path: &str) {
    let config = Config::from_file(config_path).expect("replica configuration");
    let stores = config.open_stores().await.expect("replica stores");
    let chain = Arc::new(config.build(stores).expect("replica chain"));
    println!("REPLICA ready");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let command: Value = serde_json::from_str(&line).expect("a JSON command");
        let peer = |ip: &str| format!("{ip}:40000").parse().expect("peer address");
        let request = match command["op"].as_str().unwrap_or_default() {
            "password" => AuthRequest::new(peer(command["ip"].as_str().unwrap_or("192.0.2.1")))
                .with_password(
                    command["login"].as_str().unwrap_or_default(),
                    command["password"].as_str().unwrap_or_default(),
                )
                .select("local"),
            "header" => {
                let mut headers = http::HeaderMap::new();
                headers.insert(
                    "x-remote-user",
                    command["user"]
                        .as_str()
                        .unwrap_or_default()
                        .parse()
                        .expect("header value"),
                );
                AuthRequest::new(peer(PROXY))
                    .with_headers(headers)
                    .select("proxy")
            }
            "start" => AuthRequest::new(peer("192.0.2.30"))
                .with_credentials(Credentials::Start(None.into()))
                .select("sso"),
            "callback" => {
                let params: BTreeMap<String, String> =
                    serde_json::from_value(command["params"].clone()).expect("callback parameters");
                let mut request =
                    AuthRequest::new(peer("192.0.2.30")).with_credentials(Credentials::Callback { params });
                request.flow_cookie = command["cookie"].as_str().map(str::to_owned);
                request
            }
            "exit" => break,
            other => panic!("unknown replica command {other:?}"),
        };
        let answer = match chain.login(&request).await {
            Ok(LoginResult::Authenticated(p)) => json!({ "account": p.account_id.0, "login": p.login }),
            Ok(LoginResult::Redirect(r)) => {
                json!({ "location": r.location, "cookie": r.flow_cookie_value() })
            }
            Err(err) => error_json(&err),
            Ok(other) => json!({ "unexpected": format!("{other:?}") }),
        };
        println!("REPLICA {answer}");
    }
}

// ---------------------------------------------------------------------------
// The driver.

struct Replica {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Replica {
    fn start(config: &std::path::Path) -> Replica {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .env(CONFIG_VAR, config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a replica process");
        let stdin = child.stdin.take().expect("replica stdin");
        let stdout = BufReader::new(child.stdout.take().expect("replica stdout"));
        let mut replica = Replica { child, stdin, stdout };
        assert_eq!(replica.read_line(), "ready");
        replica
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read the replica");
            assert!(n > 0, "the replica exited");
            if let Some(rest) = line.trim_end().strip_prefix("REPLICA ") {
                return rest.to_owned();
            }
        }
    }

    fn ask(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to the replica");
        self.stdin.flush().expect("flush");
        serde_json::from_str(&self.read_line()).expect("a JSON answer")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({ "op": "exit" }));
        let _ = self.child.wait();
    }
}

fn error_of(answer: &Value) -> &str {
    answer["error"].as_str().unwrap_or("none")
}

struct World {
    one: Replica,
    two: Replica,
    redis: &'static common::state::Peer,
    postgres: &'static common::state::Peer,
}

async fn oidc_login_started_on_one_finishes_on_the_other(w: &mut World) {
    let started = w.one.ask(json!({ "op": "start" }));
    let location = started["location"].as_str().expect("a redirect").to_owned();
    let cookie = started["cookie"].as_str().expect("a flow cookie").to_owned();
    let params = Browser::new().login(&location, "alice", "alice-password").await;
    let callback = json!({ "op": "callback", "params": params, "cookie": cookie });
    let done = w.two.ask(callback.clone());
    assert_eq!(done["login"], "alice", "{done}");
    // The same callback again, at either replica: a replayed state.
    for replica in [&mut w.one, &mut w.two] {
        let again = replica.ask(callback.clone());
        assert_eq!(error_of(&again), "Rejected", "{again}");
    }
}

async fn failed_logins_on_both_reach_the_throttle_limit_together(w: &mut World) {
    // max_attempts = 4: two failures on each replica, then both refuse.
    let attempt = json!({ "op": "password", "login": "root", "password": "wrong", "ip": "192.0.2.77" });
    for _ in 0..2 {
        for replica in [&mut w.one, &mut w.two] {
            let answer = replica.ask(attempt.clone());
            assert_eq!(error_of(&answer), "InvalidCredentials", "{answer}");
        }
    }
    let right = json!({ "op": "password", "login": "root", "password": "break-glass", "ip": "192.0.2.77" });
    for replica in [&mut w.one, &mut w.two] {
        let answer = replica.ask(right.clone());
        assert_eq!(error_of(&answer), "Throttled", "{answer}");
    }
}

async fn concurrent_first_logins_create_one_account(w: &mut World) {
    for round in 0..5 {
        let user = format!("newcomer-{round}");
        let command = json!({ "op": "header", "user": user });
        // Both requests in flight before either answer is read.
        for replica in [&mut w.one, &mut w.two] {
            writeln!(replica.stdin, "{command}").unwrap();
            replica.stdin.flush().unwrap();
        }
        let a: Value = serde_json::from_str(&w.one.read_line()).unwrap();
        let b: Value = serde_json::from_str(&w.two.read_line()).unwrap();
        assert!(a["account"].is_string(), "{a}");
        assert_eq!(a["account"], b["account"], "one account for {user}: {a} {b}");
    }
}

async fn redis_down_fails_redirects_at_once_and_recovers(w: &mut World) {
    w.redis.stop();
    // An answer, not a hang: every Redis call is bounded by the client's timeouts.
    let answer = w.one.ask(json!({ "op": "start" }));
    assert_eq!(error_of(&answer), "Unavailable", "{answer}");
    assert_eq!(answer["status"], 503);
    // Password logins go on: throttle_on_outage = "open".
    let right = json!({ "op": "password", "login": "root", "password": "break-glass", "ip": "192.0.2.78" });
    let answer = w.two.ask(right.clone());
    assert!(answer["account"].is_string(), "{answer}");
    w.redis.command("resume");
    // The connection manager reconnects on the next calls by itself.
    let mut answer = Value::Null;
    for _ in 0..50 {
        answer = w.one.ask(json!({ "op": "start" }));
        if answer["location"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answer["location"].is_string(), "no recovery: {answer}");
    let answer = w.two.ask(json!({ "op": "start" }));
    assert!(answer["location"].is_string(), "{answer}");
}

async fn a_hung_redis_is_bounded_by_timeouts(w: &mut World) {
    // SIGSTOP: the server holds its port and accepts connections, answers nothing.
    w.redis.command("freeze");
    let answer = w.one.ask(json!({ "op": "start" }));
    w.redis.command("thaw");
    assert_eq!(error_of(&answer), "Unavailable", "{answer}");
    let mut answer = Value::Null;
    for _ in 0..50 {
        answer = w.one.ask(json!({ "op": "start" }));
        if answer["location"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answer["location"].is_string(), "no recovery: {answer}");
}

async fn postgres_restart_is_survived_without_restarting_the_replicas(w: &mut World) {
    w.postgres.command("stop");
    let right = json!({ "op": "password", "login": "root", "password": "break-glass", "ip": "192.0.2.79" });
    let answer = w.one.ask(right.clone());
    assert_eq!(error_of(&answer), "Unavailable", "{answer}");
    w.postgres.command("resume");
    for replica in [&mut w.one, &mut w.two] {
        let mut answer = Value::Null;
        for _ in 0..50 {
            answer = replica.ask(right.clone());
            if answer["account"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(answer["account"].is_string(), "no reconnection: {answer}");
    }
}

fn write_config(dir: &std::path::Path, provider: &Provider) -> std::path::PathBuf {
    let postgres = common::state::postgres();
    let redis = common::state::redis();
    std::fs::create_dir_all(dir).unwrap();
    let url_file = dir.join("database-url");
    std::fs::write(&url_file, format!("{}\n", postgres.var("PG_URL"))).unwrap();
    let text = format!(
        r#"
chain = ["proxy", "local", "sso"]
trusted_proxies = ["{PROXY}/32"]

[throttle]
max_attempts = 4
max_attempts_per_ip = 100
window = "PT10M"

[store]
type = "postgres"
url = {{ file = "{url_file}" }}
max_connections = 4

[state]
type = "redis"
url = "{redis_url}"
prefix = "replicas-test:"
throttle_on_outage = "open"

[modules.proxy]
type = "header"
principal_header = "X-Remote-User"
provisioning = "create"

[modules.local]
type = "local"

[modules.sso]
type = "oidc"
issuer = "{issuer}"
client_id = "{CONFIDENTIAL_CLIENT}"
client_secret = "{CONFIDENTIAL_SECRET}"
redirect_uri = "{REDIRECT_URI}"
scopes = ["openid", "profile", "email", "groups"]
provisioning = "create"
"#,
        url_file = url_file.display(),
        redis_url = redis.var("REDIS_URL"),
        issuer = provider.issuer,
    );
    let path = dir.join("authchain.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The local admin both replicas log in as (the test's own connection).
async fn seed_admin(config: &std::path::Path) {
    let config = Config::from_file(config).expect("configuration");
    let stores = config.open_stores().await.expect("stores");
    let hash = common::passwords().hash("break-glass").expect("hash");
    stores
        .users()
        .create_account(authchain::account::NewAccount::new("root").password_hash(hash))
        .await
        .expect("admin account");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(config) = std::env::var(CONFIG_VAR) {
        runtime.block_on(serve_replica(&config));
        return;
    }
    let (passed, failed) = runtime.block_on(async {
        let provider = Provider::shared();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("replicas-{}", std::process::id()));
        let config = write_config(&dir, provider);
        seed_admin(&config).await;
        let mut world = World {
            one: Replica::start(&config),
            two: Replica::start(&config),
            redis: common::state::redis(),
            postgres: common::state::postgres(),
        };
        let (mut passed, mut failed) = (0, 0);
        macro_rules! check {
            ($($name:ident),*) => {$(
                let outcome = futures_catch(stringify!($name), $name(&mut world)).await;
                if outcome { passed += 1 } else { failed += 1 }
            )*};
        }
        check!(
            oidc_login_started_on_one_finishes_on_the_other,
            failed_logins_on_both_reach_the_throttle_limit_together,
            concurrent_first_logins_create_one_account,
            redis_down_fails_redirects_at_once_and_recovers,
            a_hung_redis_is_bounded_by_timeouts,
            postgres_restart_is_survived_without_restarting_the_replicas
        );
        drop(world);
        let _ = std::fs::remove_dir_all(&dir);
        (passed, failed)
    });
    println!("test result: {passed} passed, {failed} failed");
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Runs one check, reporting a panic as a failure (the next checks still run).
async fn futures_catch(name: &str, check: impl std::future::Future<Output = ()>) -> bool {
    let outcome = CatchUnwindFuture(Box::pin(check)).await;
    match outcome {
        Ok(()) => {
            println!("test {name} ... ok");
            true
        }
        Err(_) => {
            println!("test {name} ... FAILED");
            false
        }
    }
}

/// `catch_unwind` for a future, without the futures crate.
struct CatchUnwindFuture<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchUnwindFuture<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}
