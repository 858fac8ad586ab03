//! OIDC benchmarks.
//!
//! * `id_token_validation/rs256_cached_jwks`: one RS256 (2048-bit) ID token checked
//!   completely — signature, iss, aud, exp, iat, nonce — with the JWKS cached.
//!   Unit: validations/s (criterion's elem/s). Target ≥ 30,000/s.
//! * `callback_login/start_and_callback_through_chain`: a whole redirect login through
//!   the chain (start → callback → token request → ID-token validation → account
//!   resolution) against a local token endpoint on 127.0.0.1 that signs with ES256
//!   (cheap to sign, so the figure is ours, not the fake provider's). Unit: logins/s.
//!   HTTP requests per login are counted and printed; the target is exactly 1.
//!
//! `cargo bench --features oidc,oauth2 --bench oidc`
//!
//! Paired mode (`OIDC_PAIRED=1 cargo bench --features oidc,oauth2 --bench oidc`): the
//! machine may be loaded by other work, so instead of criterion's runs one after the
//! other, ring's raw RSA verify and the module's full `validate_id_token` run in
//! alternating batches of 200 calls over 150 rounds in one process, so both see the same
//! load. It prints the median batch mean of each and the median of the per-round ratios
//! (ring ÷ full validation; the target is ≥ 80 %), plus the same for a validation whose
//! claims are then read as a JSON map (what a login's claim mapping does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authchain::account::{MemoryUserStore, Provisioning};
use authchain::chain::ModuleSettings;
use authchain::flow::OAuthClientSettings;
use authchain::modules::oidc::Algorithm;
use authchain::modules::{OidcModule, OidcSettings};
use authchain::{AuthChain, AuthRequest, Credentials, LoginResult};
use base64ct::{Base64UrlUnpadded, Encoding};
use criterion::{Criterion, Throughput, criterion_group};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";
const CLIENT: &str = "client-1";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn b64(value: &Value) -> String {
    Base64UrlUnpadded::encode_string(value.to_string().as_bytes())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Endpoints configured, no discovery.
fn settings(token_endpoint: String, jwks_uri: String) -> OidcSettings {
    let url = |text: &str| text.parse().unwrap();
    let client = OAuthClientSettings::new(CLIENT.parse().unwrap(), url("https://app.test/callback"));
    let mut settings = OidcSettings::new(url(ISSUER), client);
    settings.discovery = false;
    settings.authorization_endpoint = Some(url(&format!("{ISSUER}/auth")));
    settings.token_endpoint = Some(url(&token_endpoint));
    settings.jwks_uri = Some(url(&jwks_uri));
    settings
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn id_token_validation(c: &mut Criterion) {
    let rt = runtime();
    let der = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/keys/rsa-a.der")).unwrap();
    let key = RsaKeyPair::from_der(&der).unwrap();
    let public: ring::signature::RsaPublicKeyComponents<Vec<u8>> = key.public().into();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": Base64UrlUnpadded::encode_string(&public.n), "e": Base64UrlUnpadded::encode_string(&public.e)}]});
    let base = rt.block_on(serve(axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    )));
    let public = &public;
    let module = OidcModule::new(
        "oidc",
        settings(format!("{ISSUER}/token"), format!("{base}/jwks")),
    )
    .unwrap();
    let t = now();
    let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "248289761001", "exp": t + 3600, "iat": t,
        "nonce": "n-0S6_WzA2Mj", "name": "Jane Doe", "email": "janedoe@example.com",
        "preferred_username": "jane", "groups": ["staff", "admins"]});
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})),
        b64(&claims)
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let token = format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig));
    rt.block_on(module.validate_id_token(&token, Some("n-0S6_WzA2Mj")))
        .expect("valid");

    let mut group = c.benchmark_group("id_token_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rs256_cached_jwks", |b| {
        b.to_async(&rt).iter(|| async {
            module
                .validate_id_token(&token, Some("n-0S6_WzA2Mj"))
                .await
                .unwrap();
        })
    });
    // The floor: the RSA verification alone (ring), same key and token.
    let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
    let signature = Base64UrlUnpadded::decode_vec(sig_b64).unwrap();
    group.bench_function("floor_rsa_verify_only", |b| {
        b.iter(|| {
            ring::signature::RsaPublicKeyComponents {
                n: &public.n,
                e: &public.e,
            }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input.as_bytes(),
                &signature,
            )
            .unwrap()
        })
    });
    group.finish();
    println!(
        "id_token_validation: JWKS fetches in total: {}",
        module.requests().jwks
    );
}

fn callback_login(c: &mut Criterion) {
    let rt = runtime();
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        Arc::new(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap());
    let point = key.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256",
        "x": Base64UrlUnpadded::encode_string(&point[1..33]), "y": Base64UrlUnpadded::encode_string(&point[33..65])}]});
    let served = Arc::new(AtomicU64::new(0));
    let (counter, signer) = (served.clone(), key.clone());
    // The fake token endpoint: the bench passes the flow's nonce as the code.
    let token = move |axum::Form(form): axum::Form<BTreeMap<String, String>>| {
        let (counter, signer) = (counter.clone(), signer.clone());
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            let t = now();
            let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "exp": t + 300, "iat": t,
                "nonce": form["code"], "preferred_username": "jane", "groups": ["staff"]});
            let input = format!("{}.{}", b64(&json!({"alg": "ES256", "kid": "ec1"})), b64(&claims));
            let sig = signer.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
            let id_token = format!("{input}.{}", Base64UrlUnpadded::encode_string(sig.as_ref()));
            axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}))
        }
    };
    let base = rt.block_on(serve(
        axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .route("/token", axum::routing::post(token)),
    ));
    let mut es256 = settings(format!("{base}/token"), format!("{base}/jwks"));
    es256.id_token_algorithms = vec![Algorithm::ES256];
    let module = Arc::new(OidcModule::new("oidc", es256).unwrap());
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store)
        .shared_module(
            module.clone(),
            ModuleSettings::new().provisioning(Provisioning::Create),
        )
        .build()
        .unwrap();
    let peer = "192.0.2.1:40000".parse().unwrap();
    let login = || async {
        let start = AuthRequest::new(peer)
            .with_credentials(Credentials::Start(authchain::StartLogin::new()))
            .select("oidc");
        let Ok(LoginResult::Redirect(redirect)) = chain.login(&start).await else {
            panic!("no redirect")
        };
        let query: BTreeMap<String, String> = url::Url::parse(&redirect.location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        let params = BTreeMap::from([
            ("state".to_owned(), query["state"].clone()),
            ("code".to_owned(), query["nonce"].clone()),
        ]);
        let mut callback = AuthRequest::new(peer).with_credentials(Credentials::Callback { params });
        callback.flow_cookie = redirect.flow_cookie.map(|c| c.value);
        match chain.login(&callback).await {
            Ok(LoginResult::Authenticated(_)) => {}
            other => panic!("login failed: {other:?}"),
        }
    };
    rt.block_on(login()); // warm-up: fetches the JWKS once
    let before = module.requests();
    let logins = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("callback_login");
    group.throughput(Throughput::Elements(1));
    group.bench_function("start_and_callback_through_chain", |b| {
        b.to_async(&rt).iter(|| async {
            login().await;
            logins.fetch_add(1, Ordering::Relaxed);
        })
    });
    group.finish();
    let after = module.requests();
    let n = logins.load(Ordering::Relaxed).max(1);
    println!(
        "callback_login: {n} logins, {} HTTP requests to the provider ({} token, {} JWKS, {} discovery) \
         = {:.3} requests per login; token endpoint served {}",
        after.total() - before.total(),
        after.token - before.token,
        after.jwks - before.jwks,
        after.discovery - before.discovery,
        (after.total() - before.total()) as f64 / n as f64,
        served.load(Ordering::Relaxed),
    );
}

/// One batch of `n` calls: the mean time per call, in µs.
fn batch(n: u32, mut f: impl FnMut()) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The paired-batch ratio (see the module documentation).
fn paired() {
    let rt = runtime();
    let der = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/keys/rsa-a.der")).unwrap();
    let key = RsaKeyPair::from_der(&der).unwrap();
    let public: ring::signature::RsaPublicKeyComponents<Vec<u8>> = key.public().into();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
        "n": Base64UrlUnpadded::encode_string(&public.n), "e": Base64UrlUnpadded::encode_string(&public.e)}]});
    let base = rt.block_on(serve(axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    )));
    let module = OidcModule::new(
        "oidc",
        settings(format!("{ISSUER}/token"), format!("{base}/jwks")),
    )
    .unwrap();
    let t = now();
    let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "248289761001", "exp": t + 3600, "iat": t,
        "nonce": "n-0S6_WzA2Mj", "name": "Jane Doe", "email": "janedoe@example.com",
        "preferred_username": "jane", "groups": ["staff", "admins"]});
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})),
        b64(&claims)
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let token = format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig));
    rt.block_on(module.validate_id_token(&token, Some("n-0S6_WzA2Mj")))
        .expect("valid");
    let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
    let signature = Base64UrlUnpadded::decode_vec(sig_b64).unwrap();
    let ring_verify = || {
        ring::signature::RsaPublicKeyComponents {
            n: &public.n,
            e: &public.e,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            std::hint::black_box(signing_input.as_bytes()),
            &signature,
        )
        .unwrap()
    };
    // The module's async function never waits once the JWKS is cached: a batch runs
    // inside one `block_on`, so the runtime's cost is not part of each call.
    let full = |n: u32| {
        rt.block_on(async {
            batch(n, || {
                let claims =
                    futures_now(module.validate_id_token(std::hint::black_box(&token), Some("n-0S6_WzA2Mj")));
                std::hint::black_box(claims.unwrap());
            })
        })
    };
    let full_map = |n: u32| {
        rt.block_on(async {
            batch(n, || {
                let claims =
                    futures_now(module.validate_id_token(std::hint::black_box(&token), Some("n-0S6_WzA2Mj")))
                        .unwrap();
                std::hint::black_box(claims.as_map().len());
            })
        })
    };
    for _ in 0..10 {
        batch(200, ring_verify);
        full(200);
        full_map(200);
    }
    let (rounds, n) = (150, 200);
    let (mut r, mut f, mut m, mut rf, mut rm) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let a = batch(n, ring_verify);
        let b = full(n);
        let c = full_map(n);
        let a2 = batch(n, ring_verify);
        let ring_us = (a + a2) / 2.0;
        r.push(ring_us);
        f.push(b);
        m.push(c);
        rf.push(ring_us / b);
        rm.push(ring_us / c);
    }
    println!("paired batches: {rounds} rounds x {n} calls each (RS256, 2048-bit key)");
    println!(
        "ring raw verify                   median {:7.2} µs",
        median(&mut r)
    );
    println!(
        "validate_id_token                 median {:7.2} µs   ring/this {:5.1} %",
        median(&mut f),
        median(&mut rf) * 100.0
    );
    println!(
        "validate_id_token + as_map()      median {:7.2} µs   ring/this {:5.1} %",
        median(&mut m),
        median(&mut rm) * 100.0
    );
    println!("JWKS fetches in total: {}", module.requests().jwks);
}

/// Polls a future that is ready without waiting (the JWKS is cached).
fn futures_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("validation waited (JWKS not cached?)"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = id_token_validation, callback_login
}

fn main() {
    if std::env::var_os("OIDC_PAIRED").is_some() {
        paired();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
