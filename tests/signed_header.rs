//! Signed identity headers: tokens signed by an independent JOSE implementation
//! (jwcrypto, tests/peers/jose-signer.sh), keys made by openssl and served as a JWKS by a
//! real local HTTP server. Every refusal asserts its error variant.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authchain::account::{MemoryUserStore, Provisioning};
use authchain::chain::ModuleSettings;
use authchain::jose::{Algorithm, JwsError};
use authchain::modules::signed_header::{SignedHeaderError, SignedHeaderModule, SignedHeaderSettings};
use authchain::net::{ProxyNet, ProxyTrust};
use authchain::{AuthChain, AuthError, AuthRequest, Authenticator, ModuleError, Outcome, RequestError};
use common::peer;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

const ISSUER: &str = "https://iap.example.org";
const AUDIENCE: &str = "/projects/1/apps/intranet";
const PROXY: &str = "10.0.0.5";
const HEADER: &str = "x-identity-assertion";

/// The keys, made once per test binary with openssl.
struct Keys {
    dir: PathBuf,
}

impl Keys {
    /// The keys of this test binary, made once: tests run in parallel, and two
    /// making the same files at once would sign with a key the JWKS does not hold.
    fn make() -> &'static Keys {
        static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
        KEYS.get_or_init(Keys::generate)
    }

    fn generate() -> Keys {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("signed-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(status.status.success(), "openssl {args:?}");
        };
        for (name, algorithm) in [
            (
                "ec",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
            (
                "ec-other",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
            (
                "rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            ),
        ] {
            if !dir.join(format!("{name}.pem")).exists() {
                let out = format!("{name}.pem");
                let mut args = vec!["genpkey"];
                args.extend_from_slice(algorithm);
                args.extend_from_slice(&["-out", &out]);
                run(&args);
                run(&["pkey", "-in", &out, "-pubout", "-out", &format!("{name}.pub.pem")]);
            }
        }
        Keys { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// jwcrypto, through tests/peers/jose-signer.sh.
fn signer(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/jose-signer.sh");
    let out = Command::new(script).arg("run").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "jose-signer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "email": "alice@example.org",
        "groups": ["staff", "ops"], "iat": now(), "exp": now() + 300,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> String {
    claims[key] = value;
    claims.to_string()
}

/// A JWKS served by axum, counting its fetches; the document can be replaced.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(doc: String) -> JwksServer {
        let doc = Arc::new(Mutex::new(doc));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (d, f) = (d.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = d.lock().unwrap().clone();
                    ([(http::header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { url, doc, fetches }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn settings(jwks: &JwksServer) -> SignedHeaderSettings {
    let mut s = SignedHeaderSettings::new(ISSUER, AUDIENCE);
    s.jwks_url = Some(jwks.url.parse().unwrap());
    s.trusted_proxies = Some(vec![ProxyNet("10.0.0.0/24".parse().unwrap())]);
    s
}

fn request(from: &str, tokens: &[&str]) -> AuthRequest {
    let mut map = HeaderMap::new();
    for token in tokens {
        map.append(
            HeaderName::from_static(HEADER),
            HeaderValue::from_str(token).unwrap(),
        );
    }
    AuthRequest::new(peer(from)).with_headers(map)
}

fn refusal(result: Result<Outcome, AuthError>) -> SignedHeaderError {
    match result {
        Err(AuthError::Rejected {
            cause: ModuleError::SignedHeader(err),
            ..
        }) => err,
        other => panic!("expected a signed-header rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn verifies_tokens_and_rejects_each_forgery() {
    let keys = Keys::make();
    let (ec, rsa) = (keys.path("ec.pem"), keys.path("rsa.pem"));
    let jwks = JwksServer::start(signer(&["jwks", &format!("{ec}:k1"), &format!("{rsa}:r1")])).await;
    let mut s = settings(&jwks);
    s.jwks_min_refetch_interval = Duration::ZERO;
    let module = SignedHeaderModule::new("iap", s).unwrap();

    // ES256 and RS256 (the defaults) verify.
    for (alg, key, kid) in [("ES256", &ec, "k1"), ("RS256", &rsa, "r1")] {
        let token = signer(&["sign", alg, key, kid, &claims().to_string()]);
        match module.authenticate(&request(PROXY, &[&token])).await {
            Ok(Outcome::Authenticated(identity)) => {
                assert_eq!(identity.subject, "u-1");
                assert_eq!(identity.login, "alice@example.org");
                assert_eq!(identity.email.as_deref(), Some("alice@example.org"));
                assert_eq!(identity.groups, ["staff", "ops"]);
            }
            other => panic!("{alg}: {other:?}"),
        }
    }
    assert_eq!(jwks.fetches(), 1, "the JWKS is cached");

    let sign = |claims: String| signer(&["sign", "ES256", &ec, "k1", &claims]);
    let check = |token: String| {
        let module = &module;
        async move { module.authenticate(&request(PROXY, &[&token])).await }
    };

    // Wrong audience, wrong issuer, expired, not yet valid.
    assert_eq!(
        refusal(check(sign(with(claims(), "aud", json!("other")))).await),
        SignedHeaderError::WrongAudience
    );
    assert_eq!(
        refusal(check(sign(with(claims(), "iss", json!("https://evil.example")))).await),
        SignedHeaderError::WrongIssuer
    );
    assert_eq!(
        refusal(check(sign(with(claims(), "exp", json!(now() - 3600)))).await),
        SignedHeaderError::Expired
    );
    assert_eq!(
        refusal(check(sign(with(claims(), "nbf", json!(now() + 3600)))).await),
        SignedHeaderError::NotYetValid
    );
    // alg: none.
    assert_eq!(
        refusal(check(signer(&["none", &claims().to_string()])).await),
        SignedHeaderError::Jws(JwsError::Unsigned)
    );
    // HS256 keyed with the (published) public key's PEM.
    let hs = signer(&["hs256-public", &keys.path("ec.pub.pem"), &claims().to_string()]);
    assert_eq!(
        refusal(check(hs).await),
        SignedHeaderError::Jws(JwsError::SymmetricAlgorithm("HS256".into()))
    );
    // A key that is not published, under a published kid.
    let forged = signer(&[
        "sign",
        "ES256",
        &keys.path("ec-other.pem"),
        "k1",
        &claims().to_string(),
    ]);
    assert_eq!(
        refusal(check(forged).await),
        SignedHeaderError::Jws(JwsError::BadSignature)
    );
    // RS256 claimed for the EC key's kid.
    let mismatched = signer(&["sign", "RS256", &rsa, "k1", &claims().to_string()]);
    assert_eq!(
        refusal(check(mismatched).await),
        SignedHeaderError::Jws(JwsError::AlgorithmNotForKey(Algorithm::RS256))
    );
    assert_eq!(jwks.fetches(), 1, "none of these needed a refetch");
    // An unknown kid: refetched exactly once, then refused.
    let unknown = signer(&[
        "sign",
        "ES256",
        &keys.path("ec-other.pem"),
        "k9",
        &claims().to_string(),
    ]);
    assert_eq!(
        refusal(check(unknown).await),
        SignedHeaderError::Jws(JwsError::UnknownKey(Some("k9".into())))
    );
    assert_eq!(jwks.fetches(), 2, "one refetch for the unknown kid");

    // A valid token from a peer that is not a trusted proxy.
    let valid = sign(claims().to_string());
    assert_eq!(
        refusal(module.authenticate(&request("192.0.2.7", &[&valid])).await),
        SignedHeaderError::UntrustedPeer
    );
    // A valid token in a duplicated header.
    match module.authenticate(&request(PROXY, &[&valid, &valid])).await {
        Err(AuthError::InvalidRequest(RequestError::Module {
            cause: ModuleError::SignedHeader(SignedHeaderError::Repeated),
            ..
        })) => {}
        other => panic!("expected a repeated-header refusal, got {other:?}"),
    }
    // No header: the module abstains.
    assert!(matches!(
        module.authenticate(&request(PROXY, &[])).await,
        Ok(Outcome::Abstain)
    ));
}

#[tokio::test]
async fn rotation_refetches_and_the_refetch_is_rate_limited() {
    let keys = Keys::make();
    let (ec, other) = (keys.path("ec.pem"), keys.path("ec-other.pem"));
    let jwks = JwksServer::start(signer(&["jwks", &format!("{ec}:k1")])).await;
    let module = SignedHeaderModule::new("iap", settings(&jwks)).unwrap();
    module.prefetch().await.unwrap();
    assert_eq!(jwks.fetches(), 1);
    // The proxy rotates to k2; a token with k2 within the refetch interval of the last
    // fetch is a temporary outage with a retry time, not a rejection.
    *jwks.doc.lock().unwrap() = signer(&["jwks", &format!("{ec}:k1"), &format!("{other}:k2")]);
    let rotated = signer(&["sign", "ES256", &other, "k2", &claims().to_string()]);
    match module.authenticate(&request(PROXY, &[&rotated])).await {
        Err(AuthError::Unavailable {
            cause: ModuleError::SignedHeader(SignedHeaderError::Jws(JwsError::UnknownKey(Some(kid)))),
            retry_after: Some(_),
            ..
        }) => assert_eq!(kid, "k2"),
        other => panic!("expected a rate-limited refetch, got {other:?}"),
    }
    assert_eq!(jwks.fetches(), 1, "rate limited: no fetch");
    // With no rate limit the rotated key is fetched and accepted.
    let mut s = settings(&jwks);
    s.jwks_min_refetch_interval = Duration::ZERO;
    let module = SignedHeaderModule::new("iap", s).unwrap();
    let old = signer(&["sign", "ES256", &ec, "k1", &claims().to_string()]);
    assert!(matches!(
        module.authenticate(&request(PROXY, &[&old])).await,
        Ok(Outcome::Authenticated(_))
    ));
    assert!(matches!(
        module.authenticate(&request(PROXY, &[&rotated])).await,
        Ok(Outcome::Authenticated(_))
    ));
}

#[tokio::test]
async fn pem_keys_and_chain_trust() {
    let keys = Keys::make();
    let rsa = keys.path("rsa.pem");
    let mut s = SignedHeaderSettings::new(ISSUER, AUDIENCE);
    s.public_key_files = vec![keys.path("rsa.pub.pem").into()];
    s.login_claim = "sub".into();
    // No proxy list of its own: the chain's.
    let module = SignedHeaderModule::new("iap", s).unwrap();
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store)
        .client_ip_from(ProxyTrust::new(["10.0.0.0/24".parse().unwrap()]))
        .module_with(module, ModuleSettings::new().provisioning(Provisioning::Create))
        .build()
        .unwrap();
    let token = signer(&["sign", "RS256", &rsa, "", &claims().to_string()]);
    let principal = common::principal(chain.login(&request(PROXY, &[&token])).await);
    assert_eq!(principal.login, "u-1");
    match chain.login(&request("192.0.2.7", &[&token])).await {
        Err(AuthError::Rejected {
            cause: ModuleError::SignedHeader(SignedHeaderError::UntrustedPeer),
            ..
        }) => {}
        other => panic!("expected an untrusted-peer refusal, got {other:?}"),
    }
    // Configuration errors name their key.
    let mut bad = SignedHeaderSettings::new(ISSUER, AUDIENCE);
    assert_eq!(
        SignedHeaderModule::new("iap", bad.clone()).unwrap_err().key(),
        Some("jwks_url")
    );
    bad.public_key_files = vec![keys.path("rsa.pub.pem").into()];
    bad.clock_skew = Duration::from_secs(600);
    assert_eq!(
        SignedHeaderModule::new("iap", bad).unwrap_err().key(),
        Some("clock_skew")
    );
}
