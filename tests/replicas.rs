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
//! PostgreSQL restarted → the replicas reconnect without a restart, and restarted
//! under concurrent write load (first logins on both replicas, throttle counters
//! from a third host) it loses and doubles nothing; directory
//! sync (real slapd, RFC 4533) writing into the PostgreSQL store while both serve
//! LDAP logins: a user added in the directory logs in on both, one disabled or
//! deleted is refused on both; an IdP-initiated SAML response (real pysaml2 IdP)
//! accepted by one replica is refused as a replay by the other.
//!
//! `harness = false`: `main` runs the checks in order (they share the servers and
//! the two replicas) and prints `N passed, M failed`.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "sync/harness.rs"]
mod harness;
#[path = "saml/idp.rs"]
#[allow(dead_code)] // Shared with tests/saml.rs, which uses all of it.
mod idp;
#[path = "oidc/provider.rs"]
#[allow(dead_code)] // Shared with tests/oidc.rs, which uses all of it.
mod provider;
#[path = "ldap/slapd.rs"]
mod slapd;
use common::state::peer;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authchain::account::UserStore as _;
use authchain::config::Config;
use authchain::{AuthRequest, Credentials, LoginResult};
use serde_json::{Value, json};

use provider::{Browser, CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, Provider, REDIRECT_URI};

const CONFIG_VAR: &str = "AUTHCHAIN_REPLICA_CONFIG";
const PROXY: &str = "127.0.0.1";

// ---------------------------------------------------------------------------
// The replica: a chain from the configuration file, answering one JSON line per
// request line.

/// The error's variant, its status, and (for the inner variants a test names)
/// its debug form.
fn error_json(err: &authchain::AuthError) -> Value {
    let debug = format!("{err:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    json!({ "error": variant, "status": err.status_code().as_u16(), "detail": debug })
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
                .select(command["module"].as_str().unwrap_or("local")),
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
    slapd: &'static slapd::Slapd,
    idp: &'static idp::Idp,
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

/// `answer` names the error variant `variant` and, inside it, `inner`.
fn assert_refused(answer: &Value, variant: &str, inner: &str) {
    assert_eq!(error_of(answer), variant, "{answer}");
    let detail = answer["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(inner), "{inner} in {answer}");
}

/// Asks both replicas `command` until `done` holds for both answers (10 s at most).
async fn on_both_eventually(
    w: &mut World,
    command: Value,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> [Value; 2] {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answers = [w.one.ask(command.clone()), w.two.ask(command.clone())];
        if answers.iter().all(&done) {
            return answers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within 10 s: {what}: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn directory_sync_into_postgres_while_both_serve_logins(w: &mut World) {
    let login = |user: &str, password: &str| json!({ "op": "password", "module": "corp", "login": user, "password": password, "ip": "192.0.2.90" });
    // Synced in the refresh: carol logs in on both, into the one synced account.
    let carol = on_both_eventually(w, login("carol", "carol-password"), "carol synced", |a| {
        a["account"].is_string()
    })
    .await;
    assert_eq!(carol[0]["account"], carol[1]["account"], "{carol:?}");
    let mut dir = harness::Directory::connect(w.slapd).await;
    // Added in the directory: unknown to both at first (provisioning "existing"),
    // then, once the sync wrote it into PostgreSQL, it logs in on both.
    dir.add(
        &harness::user_dn("dave"),
        &[
            ("objectClass", &["inetOrgPerson", "authchainLockable"]),
            ("uid", &["dave"]),
            ("cn", &["Dave"]),
            ("sn", &["Dave"]),
            ("userPassword", &["dave-password"]),
        ],
    )
    .await;
    let dave = on_both_eventually(w, login("dave", "dave-password"), "dave synced", |a| {
        a["account"].is_string()
    })
    .await;
    assert_eq!(dave[0]["account"], dave[1]["account"], "{dave:?}");
    // Disabled in the directory (the bind still succeeds there): refused on both
    // by the account check.
    dir.replace(&harness::user_dn("dave"), "nsAccountLock", &["true"])
        .await;
    let refused = on_both_eventually(w, login("dave", "dave-password"), "dave disabled", |a| {
        error_of(a) == "AccountDisabled"
    })
    .await;
    assert_eq!(refused[0]["status"], 403, "{refused:?}");
    // Deleted in the directory: its account is disabled (on_delete = "disable")
    // and both refuse.
    dir.delete(&harness::user_dn("carol")).await;
    let store = authchain::account::PgStore::connect(
        &w.postgres.var("PG_URL"),
        authchain::account::PgOptions::default(),
    )
    .await
    .expect("the test's own connection");
    harness::eventually("carol's account disabled", || async {
        let account = store.find_by_login("carol", false).await.expect("lookup")?;
        account.disabled.then_some(())
    })
    .await;
    store.close().await;
    for replica in [&mut w.one, &mut w.two] {
        let answer = replica.ask(login("carol", "carol-password"));
        assert_eq!(error_of(&answer), "InvalidCredentials", "{answer}");
    }
}

async fn a_saml_response_replayed_to_the_other_replica_is_refused(w: &mut World) {
    let form = w
        .idp
        .unsolicited(
            SAML_SP,
            idp::Unsolicited {
                user: "bob",
                ..Default::default()
            },
        )
        .await;
    let callback = json!({ "op": "callback", "params": form.params() });
    let accepted = w.one.ask(callback.clone());
    assert_eq!(accepted["login"], "bob", "{accepted}");
    // The same response at the other replica: its assertion id is in the shared
    // replay cache (Redis).
    let replayed = w.two.ask(callback.clone());
    assert_refused(&replayed, "Rejected", "Replayed");
    let again = w.one.ask(callback);
    assert_refused(&again, "Rejected", "Replayed");
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

/// The SAML SP both replicas are.
const SAML_SP: &str = "http://127.0.0.1:9/replicas-sp";

async fn postgres_restarted_under_write_load_loses_and_doubles_nothing(w: &mut World) {
    use authchain::account::AttemptStore as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    const USERS: usize = 24;
    const WRITERS: usize = 8;
    // A third host: throttle-counter writes straight into the PostgreSQL store.
    let store = Arc::new(
        authchain::account::PgStore::connect(
            &w.postgres.var("PG_URL"),
            authchain::account::PgOptions::default().max_connections(WRITERS as u32),
        )
        .await
        .expect("the test's own connection"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let key = format!("pg-restart-load-{t}");
                let (mut acknowledged, mut tried) = (0u32, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    tried += 1;
                    let written = store
                        .record_failure(&key, std::time::SystemTime::now(), Duration::from_secs(3600))
                        .await;
                    acknowledged += u32::from(written.is_ok());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (key, acknowledged, tried)
            })
        })
        .collect();
    // Every user's first login sent to both replicas at once, all before any
    // answer is read; PostgreSQL is restarted while they are being served.
    for i in 0..USERS {
        let command = json!({ "op": "header", "user": format!("pgload-{i}") });
        for replica in [&mut w.one, &mut w.two] {
            writeln!(replica.stdin, "{command}").unwrap();
        }
    }
    for replica in [&mut w.one, &mut w.two] {
        replica.stdin.flush().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    w.postgres.command("stop");
    w.postgres.command("resume");
    let mut answers = Vec::new();
    for _ in 0..USERS {
        let a: Value = serde_json::from_str(&w.one.read_line()).unwrap();
        let b: Value = serde_json::from_str(&w.two.read_line()).unwrap();
        answers.push([a, b]);
    }
    let refused = answers
        .iter()
        .flatten()
        .filter(|a| !a["account"].is_string())
        .count();
    for answer in answers.iter().flatten() {
        assert!(
            answer["account"].is_string() || error_of(answer) == "Unavailable",
            "an outage answers Unavailable, nothing else: {answer}"
        );
    }
    // Logins refused during the outage are tried again: the same account.
    for (i, pair) in answers.iter_mut().enumerate() {
        let command = json!({ "op": "header", "user": format!("pgload-{i}") });
        for (answer, replica) in pair.iter_mut().zip([&mut w.one, &mut w.two]) {
            for _ in 0..50 {
                if answer["account"].is_string() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                *answer = replica.ask(command.clone());
            }
        }
        assert!(pair[0]["account"].is_string(), "no recovery: {pair:?}");
        assert_eq!(
            pair[0]["account"], pair[1]["account"],
            "one account for pgload-{i}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = Vec::new();
    for writer in writers {
        counts.push(writer.await.expect("writer task"));
    }
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE login LIKE 'pgload-%'")
        .fetch_one(store.pool())
        .await
        .expect("count the accounts");
    assert_eq!(accounts, USERS as i64, "exactly one account per user");
    let mut lost_answers = 0;
    for (key, acknowledged, tried) in counts {
        let stored = store
            .failures_since(&key, std::time::UNIX_EPOCH)
            .await
            .expect("read the counter")
            .count;
        // Every acknowledged write is kept; no write is stored twice (a write whose
        // answer the restart cut off may or may not have committed).
        assert!(
            (acknowledged..=tried).contains(&stored),
            "{key}: {stored} stored, {acknowledged} acknowledged of {tried}"
        );
        lost_answers += tried - acknowledged;
    }
    println!("postgres restart under load: {refused} logins refused, {lost_answers} counter writes failed");
    store.close().await;
}

fn write_config(
    dir: &std::path::Path,
    provider: &Provider,
    ldap: &slapd::Slapd,
    idp: &idp::Idp,
) -> std::path::PathBuf {
    let postgres = common::state::postgres();
    let redis = common::state::redis();
    std::fs::create_dir_all(dir).unwrap();
    let url_file = dir.join("database-url");
    std::fs::write(&url_file, format!("{}\n", postgres.var("PG_URL"))).unwrap();
    let text = format!(
        r#"
chain = ["proxy", "local", "sso", "corp", "saml"]
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

[modules.corp]
type = "ldap"
urls = ["{ldap_url}"]
bind_dn = "{bind_dn}"
bind_password = "{bind_password}"
user_search_base = "{people}"
provisioning = "existing"

[modules.saml]
type = "saml"
sp_entity_id = "{SAML_SP}"
acs_url = "http://127.0.0.1:9/acs"
idp_metadata_file = "{idp_metadata}"
allow_idp_initiated = true
provisioning = "create"

# alice and bob log in through OIDC and SAML (provisioning "create"): not synced,
# so their login names stay free for those accounts.
[sync]
module = "corp"
user_base = "{people}"
user_filter = "(&(objectClass=inetOrgPerson)(!(uid=alice))(!(uid=bob)))"
group_base = "{groups}"
disabled = {{ attribute = "nsAccountLock", values = ["true"] }}
on_delete = "disable"
"#,
        ldap_url = ldap.ldap_url,
        bind_dn = ldap.service_dn,
        bind_password = ldap.service_password,
        people = slapd::PEOPLE,
        groups = slapd::GROUPS,
        idp_metadata = idp.metadata_file.display(),
        url_file = url_file.display(),
        redis_url = redis.var("REDIS_URL"),
        issuer = provider.issuer,
    );
    let path = dir.join("authchain.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The local admin both replicas log in as (the test's own connection), the
/// SP registered at the IdP, and the directory synchroniser writing into the
/// configured PostgreSQL store (stopped when the returned sender is dropped).
async fn seed(config: &std::path::Path, idp: &idp::Idp) -> tokio::sync::oneshot::Sender<()> {
    let config = Config::from_file(config).expect("configuration");
    let stores = config.open_stores().await.expect("stores");
    let chain = config.build(stores.clone()).expect("chain");
    let saml = chain
        .module::<authchain::modules::SamlModule>("saml")
        .expect("the SAML module");
    idp.register(SAML_SP, saml).await;
    let target = config
        .store()
        .expect("a [store] table")
        .open_sync_target()
        .await
        .expect("the PostgreSQL sync target");
    let synchronizer = config
        .synchronizer(target)
        .expect("synchroniser")
        .expect("a [sync] table")
        .backoff(Duration::from_millis(100), Duration::from_millis(500));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(synchronizer.run(async {
        let _ = stopped.await;
    }));
    let hash = common::passwords().hash("break-glass").expect("hash");
    stores
        .users()
        .create_account(authchain::account::NewAccount::new("root").password_hash(hash))
        .await
        .expect("admin account");
    stop
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
        let ldap = slapd::Slapd::shared();
        let saml_idp = idp::Idp::shared();
        let config = write_config(&dir, provider, ldap, saml_idp);
        let sync = seed(&config, saml_idp).await;
        let mut world = World {
            one: Replica::start(&config),
            two: Replica::start(&config),
            redis: common::state::redis(),
            postgres: common::state::postgres(),
            slapd: ldap,
            idp: saml_idp,
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
            directory_sync_into_postgres_while_both_serve_logins,
            a_saml_response_replayed_to_the_other_replica_is_refused,
            redis_down_fails_redirects_at_once_and_recovers,
            a_hung_redis_is_bounded_by_timeouts,
            postgres_restart_is_survived_without_restarting_the_replicas,
            postgres_restarted_under_write_load_loses_and_doubles_nothing
        );
        drop(world);
        drop(sync);
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
