//! The metrics of real logins, read back from an installed recorder
//! (`metrics-util`'s debugging recorder, standing in for a Prometheus exporter).

#[path = "sync/harness.rs"]
mod harness;
#[path = "common/peer.rs"]
mod peer;
#[path = "ldap/slapd.rs"]
mod slapd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authchain::account::{KeyFamily, NewPublicKey};
use authchain::account::{MemoryUserStore, NewAccount, PasswordPolicy, UserStore};
use authchain::config::{Config, Stores};
use authchain::flow::{FlowError, ReplayError};
use authchain::{AuthChain, AuthError, AuthRequest, Credentials, LoginResult, ModuleError, StartLogin};
use base64ct::{Base64UrlUnpadded, Encoding};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// One test at a time: a snapshot takes (and zeroes) every figure.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The recorder of this test binary (one per process), installed by the first test.
fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this test binary");
        snapshotter
    })
}

/// (kind, name, sorted labels) → value.
type Snapshot = BTreeMap<(String, String, Vec<(String, String)>), DebugValue>;

fn snapshot(snapshotter: &metrics_util::debugging::Snapshotter) -> Snapshot {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let kind = match key.kind() {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((kind.to_owned(), key.key().name().to_owned(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

fn counter(snapshot: &Snapshot, name: &str, pairs: &[(&str, &str)]) -> u64 {
    match snapshot.get(&("counter".to_owned(), name.to_owned(), labels(pairs))) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(snapshot: &Snapshot, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
    match snapshot.get(&("gauge".to_owned(), name.to_owned(), labels(pairs))) {
        Some(DebugValue::Gauge(value)) => Some(value.0),
        None => None,
        Some(other) => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

/// The table of a SAML module `corp-saml` (its IdP a metadata file: no IdP is
/// needed to start a login), with `extra` settings.
fn saml_module(extra: &str) -> String {
    let idp = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/fixtures/saml/idp-metadata.xml"
    );
    format!(
        r#"
[modules.corp-saml]
type = "saml"
sp_entity_id = "https://app.example.org/saml"
acs_url = "https://app.example.org/saml/acs"
idp_metadata_file = "{idp}"
{extra}
"#
    )
}

/// A chain of the SAML module alone.
fn saml_chain(extra: &str) -> AuthChain {
    Config::from_toml(&format!("chain = [\"corp-saml\"]\n{}", saml_module(extra)))
        .expect("config")
        .build(Stores::new(Arc::new(MemoryUserStore::new()) as Arc<dyn UserStore>))
        .expect("chain")
}

/// A SAML login started: what its callback needs.
struct StartedSaml {
    relay_state: String,
    flow_cookie: Option<String>,
}

impl StartedSaml {
    /// The callback of this login, with a response that is not SAML.
    fn callback(&self) -> AuthRequest {
        let mut params = BTreeMap::new();
        params.insert("SAMLResponse".to_owned(), "bm90IFNBTUw=".to_owned());
        params.insert("RelayState".to_owned(), self.relay_state.clone());
        let mut callback = AuthRequest::new(peer())
            .with_credentials(Credentials::Callback { params })
            .select("corp-saml");
        callback.flow_cookie = self.flow_cookie.clone();
        callback
    }
}

async fn start_saml(chain: &AuthChain) -> StartedSaml {
    let start = AuthRequest::new(peer())
        .with_credentials(Credentials::Start(StartLogin::new()))
        .select("corp-saml");
    let Ok(LoginResult::Redirect(redirect)) = chain.login(&start).await else {
        panic!("a redirect");
    };
    let relay_state = url::Url::parse(&redirect.location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .expect("RelayState");
    StartedSaml {
        relay_state,
        flow_cookie: redirect.flow_cookie_value().map(str::to_owned),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn logins_throttling_and_flows_are_counted() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    // What an earlier test left.
    snapshotter.snapshot();

    let config = Config::from_toml(&format!(
        r#"
chain = ["local", "corp-saml"]
[throttle]
max_attempts = 2
window = "PT15M"
[modules.local]
type = "local"
[[modules.local.role_mapping.rules]]
group = "x"
role = "y"
{saml}
"#,
        saml = saml_module("")
    ))
    .expect("config");
    let store = Arc::new(MemoryUserStore::new());
    let hash = PasswordPolicy::owasp().hash("right").unwrap();
    store
        .create_account(NewAccount::new("alice").password_hash(hash))
        .await
        .unwrap();
    store
        .create_account(NewAccount::new("bob").password_hash(PasswordPolicy::owasp().hash("right").unwrap()))
        .await
        .unwrap();
    let chain = config
        .build(Stores::new(store.clone() as Arc<dyn UserStore>))
        .expect("chain");
    let password = |login: &str, password: &str| {
        AuthRequest::new(peer())
            .with_password(login, password)
            .select("local")
    };

    for _ in 0..2 {
        assert!(matches!(
            chain.login(&password("alice", "right")).await,
            Ok(LoginResult::Authenticated(_))
        ));
    }
    // bob: two wrong passwords, then the throttle refuses even the right one.
    for _ in 0..2 {
        chain.login(&password("bob", "wrong")).await.unwrap_err();
    }
    let throttled = chain.login(&password("bob", "right")).await.unwrap_err();
    assert_eq!(throttled.kind(), "throttled");

    // A SAML login started: one pending flow; its callback with a bogus response
    // consumes the flow and is refused.
    let started = start_saml(&chain).await;
    let refused = chain.login(&started.callback()).await.unwrap_err();
    assert_eq!(refused.kind(), "rejected");

    let seen = snapshot(snapshotter);
    let logins = "authchain_logins_total";
    assert_eq!(
        counter(
            &seen,
            logins,
            &[("module", "local"), ("outcome", "authenticated")]
        ),
        2,
        "{seen:#?}"
    );
    assert_eq!(
        counter(
            &seen,
            logins,
            &[("module", "local"), ("outcome", "invalid_credentials")]
        ),
        2
    );
    assert_eq!(
        counter(&seen, logins, &[("module", "local"), ("outcome", "throttled")]),
        1
    );
    assert_eq!(
        counter(&seen, logins, &[("module", "corp-saml"), ("outcome", "redirect")]),
        1
    );
    assert_eq!(
        counter(&seen, logins, &[("module", "corp-saml"), ("outcome", "rejected")]),
        1
    );
    assert_eq!(counter(&seen, "authchain_throttled_total", &[]), 1);
    assert_eq!(
        counter(&seen, "authchain_flows_started_total", &[("module", "corp-saml")]),
        1
    );
    assert_eq!(
        counter(
            &seen,
            "authchain_flows_completed_total",
            &[("module", "corp-saml")]
        ),
        1
    );
    assert_eq!(
        gauge(&seen, "authchain_flows_pending", &[("module", "corp-saml")]),
        Some(0.0)
    );
    match seen.get(&(
        "histogram".to_owned(),
        "authchain_login_duration_seconds".to_owned(),
        labels(&[("module", "local")]),
    )) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 5),
        other => panic!("login latency: {other:?}"),
    }
    // No label carries a login name or an address.
    for (_, _, labels) in seen.keys() {
        for (_, value) in labels {
            assert!(
                !["alice", "bob", "127.0.0.1"].contains(&value.as_str()),
                "{labels:?}"
            );
        }
    }
}

/// LDAP logins against a real slapd: connections and round trips by operation.
#[tokio::test(flavor = "current_thread")]
async fn ldap_connections_and_round_trips_are_counted() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    // What an earlier test left.
    snapshotter.snapshot();
    let slapd = slapd::Slapd::shared();
    let config = Config::from_toml(&format!(
        r#"
chain = ["corp-ldap"]
[modules.corp-ldap]
type = "ldap"
provisioning = "create"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = "{password}"
user_search_base = "{people}"
"#,
        url = slapd.ldap_url,
        bind_dn = slapd.service_dn,
        password = slapd.service_password,
        people = slapd::PEOPLE,
    ))
    .expect("config");
    let chain = config
        .build(Stores::new(Arc::new(MemoryUserStore::new()) as Arc<dyn UserStore>))
        .expect("chain");
    let ok = chain
        .login(&AuthRequest::new(peer()).with_password("alice", "alice-password"))
        .await;
    assert!(matches!(ok, Ok(LoginResult::Authenticated(_))), "{ok:?}");
    chain
        .login(&AuthRequest::new(peer()).with_password("alice", "wrong"))
        .await
        .unwrap_err();

    let seen = snapshot(snapshotter);
    let module = ("module", "corp-ldap");
    assert!(
        counter(
            &seen,
            "authchain_ldap_connections_total",
            &[module, ("result", "ok")]
        ) >= 1,
        "{seen:#?}"
    );
    let ops = "authchain_ldap_operations_total";
    assert!(
        counter(&seen, ops, &[module, ("operation", "search"), ("result", "ok")]) >= 2,
        "{seen:#?}"
    );
    assert_eq!(
        counter(
            &seen,
            ops,
            &[module, ("operation", "user bind"), ("result", "ok")]
        ),
        2,
        "{seen:#?}"
    );
    assert_eq!(
        counter(
            &seen,
            "authchain_logins_total",
            &[module, ("outcome", "authenticated")]
        ),
        1
    );
    match seen.get(&(
        "histogram".to_owned(),
        "authchain_ldap_operation_duration_seconds".to_owned(),
        labels(&[module, ("operation", "user bind")]),
    )) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 2),
        other => panic!("user bind round trips: {other:?}"),
    }
}

/// A callback after the flow's `flow_ttl` is refused as expired and counted so;
/// the flow no longer counts as pending.
#[tokio::test(flavor = "current_thread")]
async fn expired_flows_are_counted() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    // What an earlier test left.
    snapshotter.snapshot();
    let chain = saml_chain(r#"flow_ttl = "PT1S""#);
    let started = start_saml(&chain).await;
    // Past the flow's lifetime (the flow store compares wall-clock times).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refused = chain.login(&started.callback()).await;
    assert!(
        matches!(
            refused,
            Err(AuthError::Rejected {
                cause: ModuleError::Flow(FlowError::Expired),
                ..
            })
        ),
        "{refused:?}"
    );
    let seen = snapshot(snapshotter);
    let module = [("module", "corp-saml")];
    assert_eq!(
        counter(&seen, "authchain_flows_started_total", &module),
        1,
        "{seen:#?}"
    );
    assert_eq!(counter(&seen, "authchain_flows_expired_total", &module), 1);
    assert_eq!(counter(&seen, "authchain_flows_completed_total", &module), 0);
    assert_eq!(gauge(&seen, "authchain_flows_pending", &module), Some(0.0));
}

/// A key-login assertion (its `jti`) presented twice: the second is refused as a
/// replay and counted.
#[tokio::test(flavor = "current_thread")]
async fn replayed_assertions_are_counted() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    // What an earlier test left.
    snapshotter.snapshot();
    let audience = "https://app.example.org";
    let store = Arc::new(MemoryUserStore::new());
    let alice = store.create_account(NewAccount::new("alice")).await.unwrap();
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    store
        .add_public_key(
            &alice.id,
            NewPublicKey::new(KeyFamily::Ed25519, key.public_key_to_der().unwrap()),
        )
        .await
        .unwrap();
    let chain = Config::from_toml(&format!(
        r#"
chain = ["keys"]
[modules.keys]
type = "key_login"
audience = "{audience}"
"#
    ))
    .expect("config")
    .build(Stores::new(store as Arc<dyn UserStore>))
    .expect("chain");

    let b64 = |bytes: &[u8]| Base64UrlUnpadded::encode_string(bytes);
    let iat = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT"});
    let claims =
        serde_json::json!({"sub": "alice", "aud": audience, "iat": iat, "exp": iat + 120, "jti": "once"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = openssl::sign::Signer::new_without_digest(&key)
        .unwrap()
        .sign_oneshot_to_vec(input.as_bytes())
        .unwrap();
    let assertion = format!("{input}.{}", b64(&signature));
    let login = AuthRequest::new(peer()).with_assertion(assertion.as_str());

    let first = chain.login(&login).await;
    assert!(matches!(first, Ok(LoginResult::Authenticated(_))), "{first:?}");
    let again = chain.login(&login).await;
    assert!(
        matches!(
            again,
            Err(AuthError::Rejected {
                cause: ModuleError::Replay(ReplayError::Replayed),
                ..
            })
        ),
        "{again:?}"
    );
    let seen = snapshot(snapshotter);
    assert_eq!(
        counter(&seen, "authchain_replay_refusals_total", &[("module", "keys")]),
        1,
        "{seen:#?}"
    );
    assert_eq!(
        counter(
            &seen,
            "authchain_logins_total",
            &[("module", "keys"), ("outcome", "authenticated")]
        ),
        1
    );
}

/// Starts beyond `max_flows_per_client` evict the client's oldest flows, which no
/// callback ever reports: the pending gauge still equals the flows held.
#[tokio::test(flavor = "current_thread")]
async fn the_pending_gauge_follows_evictions() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    // What an earlier test left.
    snapshotter.snapshot();
    let chain = saml_chain("max_flows_per_client = 2");
    let mut started = Vec::new();
    for _ in 0..5 {
        started.push(start_saml(&chain).await);
    }
    let seen = snapshot(snapshotter);
    let module = [("module", "corp-saml")];
    assert_eq!(
        counter(&seen, "authchain_flows_started_total", &module),
        5,
        "{seen:#?}"
    );
    assert_eq!(gauge(&seen, "authchain_flows_pending", &module), Some(2.0));

    // Held indeed: the callbacks of the three oldest find no flow (SAML then reads
    // them as IdP-initiated), those of the two newest consume theirs.
    for (i, flow) in started.iter().enumerate() {
        chain.login(&flow.callback()).await.unwrap_err();
        let seen = snapshot(snapshotter);
        let completed = counter(&seen, "authchain_flows_completed_total", &module);
        assert_eq!(completed, u64::from(i >= 3), "flow {i}: {seen:#?}");
        if i == 4 {
            assert_eq!(gauge(&seen, "authchain_flows_pending", &module), Some(0.0));
        }
    }
}

/// A synchroniser following a real slapd: the lag gauge reads 0 once it is live,
/// and grows after the directory crashed.
#[tokio::test(flavor = "current_thread")]
async fn sync_lag_is_recorded() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    // What an earlier test left.
    snapshotter.snapshot();
    // Its own server: this test kills it.
    let slapd = slapd::Slapd::start();
    let (store, _path) = harness::store().await;
    let synchronizer = harness::synchronizer(
        &slapd,
        &store,
        harness::scope(),
        authchain::sync::SyncMode::Persist,
    );
    let lag_of = || {
        let seen = snapshot(snapshotter);
        gauge(
            &seen,
            "authchain_sync_lag_seconds",
            &[("source", harness::SOURCE)],
        )
    };
    let recording = tokio::spawn(synchronizer.record_lag(Duration::from_millis(20)));
    let mut running = harness::start(synchronizer);
    running.live().await;
    harness::eventually("a lag of 0 while live", || async {
        lag_of().filter(|lag| *lag == 0.0)
    })
    .await;
    slapd.kill();
    running
        .wait_for("the lost directory", |s| s.last_error.is_some())
        .await;
    harness::eventually("a lag growing while the directory is away", || async {
        lag_of().filter(|lag| *lag > 0.0)
    })
    .await;
    running.stop().await;
    // The recording ends with the synchroniser.
    recording.await.expect("the lag recording");
}

/// Requests to an identity provider are counted by purpose and result and timed:
/// an OIDC start whose discovery meets a closed port counts one failed discovery.
#[tokio::test(flavor = "current_thread")]
async fn provider_requests_are_counted_by_purpose_and_result() {
    let _serial = SERIAL.lock().await;
    let snapshotter = recorder();
    snapshotter.snapshot();
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let config = Config::from_toml(
        r#"
chain = ["sso"]
[modules.sso]
type = "oidc"
issuer = "http://127.0.0.1:1"
client_id = "app"
client_secret = "s"
redirect_uri = "http://127.0.0.1:3000/auth/callback/sso"
http_timeout = "PT2S"
"#,
    )
    .expect("config");
    let chain = config
        .build(Stores::new(Arc::new(MemoryUserStore::new())))
        .expect("chain");
    let start = AuthRequest::new(peer())
        .with_credentials(Credentials::Start(StartLogin::new()))
        .select("sso");
    let result = chain.login(&start).await;
    assert!(
        matches!(result, Err(AuthError::Unavailable { ref module, .. }) if module == "sso"),
        "{result:?}"
    );
    let figures = snapshot(snapshotter);
    let failed = [("module", "sso"), ("purpose", "discovery"), ("result", "error")];
    assert!(
        counter(&figures, "authchain_provider_requests_total", &failed) >= 1,
        "{figures:?}"
    );
    assert_eq!(
        counter(
            &figures,
            "authchain_provider_requests_total",
            &[("module", "sso"), ("purpose", "discovery"), ("result", "ok")]
        ),
        0
    );
    let timed = figures.get(&(
        "histogram".to_owned(),
        "authchain_provider_request_duration_seconds".to_owned(),
        labels(&[("module", "sso"), ("purpose", "discovery")]),
    ));
    assert!(
        matches!(timed, Some(DebugValue::Histogram(values)) if !values.is_empty()),
        "{timed:?}"
    );
}
