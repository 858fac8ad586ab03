//! Key-based login end to end: keys made by the `openssl` CLI, registered with the
//! real `authchain key` binary into an SQLite file, assertions signed by `openssl`
//! (`dgst` / `pkeyutl`; ES256's DER signature converted to raw r||s here), verified
//! by a chain built from TOML.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use authchain::account::{MemoryUserStore, NewAccount, SqliteStore, UserStore};
use authchain::config::Config;
use authchain::flow::{MemoryReplayCache, ReplayError};
use authchain::jose::JwsError;
use authchain::modules::key_login::KeyLoginError;
use authchain::modules::{KeyLoginModule, KeyLoginSettings};
use authchain::{AuthChain, AuthError, AuthRequest, LoginResult, ModuleError, RequestError};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};

const AUD: &str = "https://app.example.org";

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn temp(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("key-login-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rsa,
    P256,
    Ed25519,
}

/// A private key file and its public key (PEM), made by `openssl genpkey`.
struct Key {
    private: PathBuf,
    public: PathBuf,
    kind: Kind,
}

fn genkey(dir: &Path, name: &str, kind: Kind) -> Key {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let mut keygen = Command::new("openssl");
    keygen.arg("genpkey").arg("-out").arg(&private);
    match kind {
        Kind::Rsa => keygen.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        Kind::P256 => keygen.args(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        Kind::Ed25519 => keygen.args(["-algorithm", "ED25519"]),
    };
    run(&mut keygen);
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public));
    Key {
        private,
        public,
        kind,
    }
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` → 32-byte r || 32-byte s.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30);
    let mut i = if der[1] & 0x80 != 0 { 3 } else { 2 };
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

/// A compact JWS over `header` and `claims`, signed by `openssl` with `key`; the
/// signature scheme follows `sign_as` (independent of the header's `alg`).
fn sign_with(key: &Key, sign_as: &str, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let dir = key.private.parent().unwrap();
    let file = dir.join(format!("input-{}", rand_id()));
    std::fs::write(&file, &input).unwrap();
    let mut cmd = Command::new("openssl");
    match sign_as {
        "RS256" | "ES256" => cmd.args(["dgst", "-sha256", "-sign"]).arg(&key.private),
        "PS256" => cmd
            .args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt"])
            .args(["rsa_pss_saltlen:32", "-sign"])
            .arg(&key.private),
        "EdDSA" => cmd
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(&key.private)
            .arg("-in"),
        other => panic!("{other}"),
    };
    cmd.arg(&file);
    let mut signature = run(&mut cmd);
    if sign_as == "ES256" {
        signature = der_to_raw(&signature);
    }
    let _ = std::fs::remove_file(&file);
    format!("{input}.{}", b64(&signature))
}

fn alg_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Rsa => "RS256",
        Kind::P256 => "ES256",
        Kind::Ed25519 => "EdDSA",
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn rand_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    b64(&bytes)
}

fn claims(sub: &str) -> Value {
    let iat = now();
    json!({"sub": sub, "aud": AUD, "iat": iat, "exp": iat + 120, "jti": rand_id()})
}

fn sign(key: &Key, claims: Value) -> String {
    let alg = alg_of(key.kind);
    sign_with(key, alg, json!({"alg": alg, "typ": "JWT"}), claims)
}

fn peer() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

/// A deployment: an SQLite store with `alice` and `bob`, keys registered with the
/// real CLI, and the chain of `config.toml`.
struct Setup {
    dir: PathBuf,
    config: PathBuf,
    chain: AuthChain,
    alice: Vec<Key>,
    bob: Key,
}

fn authchain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_authchain"))
}

fn key_add(config: &Path, login: &str, key: &Key) -> String {
    let out = run(authchain()
        .args(["key", "add", "--config"])
        .arg(config)
        .args(["--login", login, "--file"])
        .arg(&key.public)
        .args(["--label", "test key"]));
    String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn setup(name: &str) -> Setup {
    let dir = temp(name);
    let db = dir.join("accounts.sqlite3");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            r#"
chain = ["keys"]
[store]
type = "sqlite"
path = "{}"
[modules.keys]
type = "key_login"
audience = "{AUD}"
"#,
            db.display()
        ),
    )
    .unwrap();
    {
        let store = SqliteStore::open(&db).await.unwrap();
        store.create_account(NewAccount::new("alice")).await.unwrap();
        store.create_account(NewAccount::new("bob")).await.unwrap();
        store.close().await;
    }
    let alice = vec![
        genkey(&dir, "alice-rsa", Kind::Rsa),
        genkey(&dir, "alice-p256", Kind::P256),
        genkey(&dir, "alice-ed", Kind::Ed25519),
    ];
    let bob = genkey(&dir, "bob-ed", Kind::Ed25519);
    for key in &alice {
        key_add(&config, "alice", key);
    }
    key_add(&config, "bob", &bob);
    let parsed = Config::from_file(&config).unwrap();
    let chain = parsed.build(parsed.open_stores().await.unwrap()).unwrap();
    Setup {
        dir,
        config,
        chain,
        alice,
        bob,
    }
}

impl Setup {
    async fn login(&self, token: &str) -> Result<LoginResult, AuthError> {
        self.chain
            .login(&AuthRequest::new(peer()).with_assertion(token))
            .await
    }

    async fn account_of(&self, token: &str) -> String {
        match self.login(token).await {
            Ok(LoginResult::Authenticated(p)) => p.login,
            other => panic!("expected a login, got {other:?}"),
        }
    }
}

fn rejected_with(result: Result<LoginResult, AuthError>) -> ModuleError {
    match result {
        Err(AuthError::Rejected { cause, .. }) => cause,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn key_login_error(result: Result<LoginResult, AuthError>) -> KeyLoginError {
    match rejected_with(result) {
        ModuleError::KeyLogin(err) => err,
        other => panic!("expected a key-login error, got {other:?}"),
    }
}

fn invalid_credentials(result: Result<LoginResult, AuthError>, what: &str) {
    assert!(
        matches!(result, Err(AuthError::InvalidCredentials)),
        "{what}: {result:?}"
    );
}

#[tokio::test]
async fn every_key_type_signs_in_and_each_jti_is_accepted_once() {
    let s = setup("types").await;
    for key in &s.alice {
        let token = sign(key, claims("alice"));
        assert_eq!(s.account_of(&token).await, "alice");
        let again = rejected_with(s.login(&token).await);
        assert_eq!(again, ModuleError::Replay(ReplayError::Replayed), "replayed jti");
    }
    // PS256 with the RSA key; a `kid` naming the registered key.
    let token = sign_with(&s.alice[0], "PS256", json!({"alg": "PS256"}), claims("alice"));
    assert_eq!(s.account_of(&token).await, "alice");
    let bob_id = {
        let out = run(authchain()
            .args(["key", "list", "--json", "--config"])
            .arg(&s.config)
            .args(["--login", "bob"]));
        let list: Value = serde_json::from_slice(&out).unwrap();
        list[0]["id"].as_str().unwrap().to_owned()
    };
    let token = sign_with(
        &s.bob,
        "EdDSA",
        json!({"alg": "EdDSA", "kid": bob_id}),
        claims("bob"),
    );
    assert_eq!(s.account_of(&token).await, "bob");
    let token = sign_with(
        &s.bob,
        "EdDSA",
        json!({"alg": "EdDSA", "kid": "999"}),
        claims("bob"),
    );
    invalid_credentials(s.login(&token).await, "a kid of no key of bob's");
}

#[tokio::test]
async fn refusals_each_have_their_own_answer() {
    let s = setup("refusals").await;
    let ed = &s.alice[2];

    // Another account's key, and an unknown login: the same answer.
    invalid_credentials(
        s.login(&sign(&s.bob, claims("alice"))).await,
        "bob's key for alice",
    );
    invalid_credentials(s.login(&sign(ed, claims("mallory"))).await, "unknown login");
    invalid_credentials(s.login(&sign(&s.bob, claims("nobody"))).await, "unknown login");

    // Expired, too long-lived, issued in the future, wrong audience.
    let t = now();
    let mut c = claims("alice");
    c["iat"] = json!(t - 600);
    c["exp"] = json!(t - 400);
    assert_eq!(
        key_login_error(s.login(&sign(ed, c)).await),
        KeyLoginError::Expired
    );
    let mut c = claims("alice");
    c["exp"] = json!(t + 301);
    c["iat"] = json!(t);
    assert_eq!(
        key_login_error(s.login(&sign(ed, c)).await),
        KeyLoginError::TooLongLived
    );
    let mut c = claims("alice");
    c["iat"] = json!(t + 200);
    c["exp"] = json!(t + 260);
    assert_eq!(
        key_login_error(s.login(&sign(ed, c)).await),
        KeyLoginError::IssuedInFuture
    );
    let mut c = claims("alice");
    c["aud"] = json!("https://other.example.org");
    assert_eq!(
        key_login_error(s.login(&sign(ed, c)).await),
        KeyLoginError::WrongAudience
    );
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        key_login_error(s.login(&sign(ed, c)).await),
        KeyLoginError::BadClaim("jti")
    );

    // An algorithm not allowed for the key type: an Ed25519 signature labelled
    // ES256 (alice has a P-256 key, but it did not sign) and RS256 labelled on an
    // Ed25519-only account: like a wrong key.
    let token = sign_with(ed, "EdDSA", json!({"alg": "ES256"}), claims("alice"));
    invalid_credentials(s.login(&token).await, "EdDSA signature as ES256");
    let token = sign_with(&s.bob, "EdDSA", json!({"alg": "RS256"}), claims("bob"));
    invalid_credentials(s.login(&token).await, "RS256 for an Ed25519 key");
    // Algorithms no key type allows here: refused by name.
    let token = sign_with(&s.alice[0], "RS256", json!({"alg": "RS384"}), claims("alice"));
    assert!(matches!(
        key_login_error(s.login(&token).await),
        KeyLoginError::Jws(JwsError::AlgorithmNotAllowed(_))
    ));
    let hs = format!(
        "{}.{}.{}",
        b64(br#"{"alg":"HS256"}"#),
        b64(claims("alice").to_string().as_bytes()),
        b64(&[1; 32])
    );
    assert!(matches!(
        key_login_error(s.login(&hs).await),
        KeyLoginError::Jws(JwsError::SymmetricAlgorithm(_))
    ));
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims("alice").to_string().as_bytes())
    );
    assert_eq!(
        key_login_error(s.login(&none).await),
        KeyLoginError::Jws(JwsError::Unsigned)
    );

    // Malformed JWS: a bad request.
    for bad in ["", "a.b", "not a token", "a.b.c.d", "....", "e30.e30.AA"] {
        match s.login(bad).await {
            Err(AuthError::InvalidRequest(RequestError::Module { cause, .. })) => {
                assert!(
                    matches!(cause, ModuleError::KeyLogin(KeyLoginError::Jws(_))),
                    "{bad:?}: {cause:?}"
                );
            }
            other => panic!("{bad:?}: expected a bad request, got {other:?}"),
        }
    }
    let no_sub = sign(ed, json!({"aud": AUD, "iat": t, "exp": t + 60, "jti": "x"}));
    assert!(matches!(
        s.login(&no_sub).await,
        Err(AuthError::InvalidRequest(RequestError::Module {
            cause: ModuleError::KeyLogin(KeyLoginError::BadClaim("sub")),
            ..
        }))
    ));
    // A tampered payload: the signature no longer verifies.
    let token = sign(ed, claims("alice"));
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(claims("alice").to_string().as_bytes());
    parts[1] = &forged;
    invalid_credentials(s.login(&parts.join(".")).await, "tampered payload");

    // A revoked key: its assertions no longer sign in.
    let out = run(authchain()
        .args(["key", "list", "--json", "--config"])
        .arg(&s.config)
        .args(["--login", "alice"]));
    let list: Value = serde_json::from_slice(&out).unwrap();
    let ed_id = list[2]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[2]["family"], "ed25519");
    run(authchain()
        .args(["key", "revoke", "--config"])
        .arg(&s.config)
        .args(["--login", "alice", "--key", &ed_id]));
    invalid_credentials(s.login(&sign(ed, claims("alice"))).await, "revoked key");
    // The other keys still work.
    assert_eq!(s.account_of(&sign(&s.alice[1], claims("alice"))).await, "alice");
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[tokio::test]
async fn the_replay_cache_is_shared_between_instances() {
    let dir = temp("shared");
    let key = genkey(&dir, "ed", Kind::Ed25519);
    let store = Arc::new(MemoryUserStore::new());
    let alice = store.create_account(NewAccount::new("alice")).await.unwrap();
    let spki = {
        let pem = std::fs::read_to_string(&key.public).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64ct::Base64::decode_vec(&body).unwrap()
    };
    store
        .add_public_key(
            &alice.id,
            authchain::account::NewPublicKey::new(authchain::account::KeyFamily::Ed25519, spki),
        )
        .await
        .unwrap();
    let cache = Arc::new(MemoryReplayCache::default());
    let instance = || {
        let mut settings = KeyLoginSettings::new(AUD);
        settings.replay = Some(cache.clone());
        AuthChain::builder(store.clone())
            .module(KeyLoginModule::new("keys", store.clone(), settings).unwrap())
            .build()
            .unwrap()
    };
    let (one, two) = (instance(), instance());
    let token = sign(&key, claims("alice"));
    let request = AuthRequest::new(peer()).with_assertion(token.as_str());
    assert!(matches!(
        one.login(&request).await,
        Ok(LoginResult::Authenticated(_))
    ));
    assert_eq!(
        rejected_with(two.login(&request).await),
        ModuleError::Replay(ReplayError::Replayed)
    );
}

#[test]
fn the_cli_refuses_keys_key_login_cannot_use() {
    let dir = temp("cli");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            "chain = [\"keys\"]\n[store]\ntype = \"sqlite\"\npath = \"{}\"\n[modules.keys]\ntype = \"key_login\"\naudience = \"{AUD}\"\n",
            dir.join("db.sqlite3").display()
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(dir.join("db.sqlite3")).await.unwrap();
        store.create_account(NewAccount::new("alice")).await.unwrap();
        store.close().await;
    });
    let small = dir.join("rsa1024.pem");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
        ])
        .arg(&small));
    let p384 = dir.join("p384.pem");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
        ])
        .arg(&p384));
    let big = dir.join("big.pem");
    std::fs::write(&big, "x".repeat(20_000)).unwrap();
    for private in [&small, &p384] {
        let public = private.with_extension("pub.pem");
        run(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(private)
            .arg("-out")
            .arg(&public));
    }
    for (file, what) in [
        (small.with_extension("pub.pem"), "RSA 1024"),
        (p384.with_extension("pub.pem"), "P-384"),
        (big, "20 KB"),
        (small.clone(), "a private key"),
    ] {
        let out = authchain()
            .args(["key", "add", "--config"])
            .arg(&config)
            .args(["--login", "alice", "--file"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what} accepted");
    }
    let out = run(authchain()
        .args(["key", "list", "--json", "--config"])
        .arg(&config)
        .args(["--login", "alice"]));
    assert_eq!(String::from_utf8(out).unwrap().trim(), "[]", "nothing registered");
    let out = authchain()
        .args(["key", "list", "--config"])
        .arg(&config)
        .args(["--login", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = authchain()
        .args(["key", "revoke", "--config"])
        .arg(&config)
        .args(["--login", "alice", "--key", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no such key");
}

#[test]
fn bad_settings_name_their_key() {
    for (table, key) in [
        ("", "modules.keys.audience"),
        (
            "audience = \"a\"\nmax_lifetime = \"PT10M\"",
            "modules.keys.max_lifetime",
        ),
        (
            "audience = \"a\"\nmax_lifetime = \"PT0S\"",
            "modules.keys.max_lifetime",
        ),
        (
            "audience = \"a\"\nclock_skew = \"PT1H\"",
            "modules.keys.clock_skew",
        ),
        ("audience = \"a\"\nreplay = 1", "modules.keys.replay"),
    ] {
        let text = format!("chain = [\"keys\"]\n[modules.keys]\ntype = \"key_login\"\n{table}\n");
        match Config::from_toml(&text) {
            Err(authchain::ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key, "{table}"),
            other => panic!("{table}: {other:?}"),
        }
    }
}
