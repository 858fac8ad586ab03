//! A small test-only token issuer: RSA keys (tests/oidc/keys), a JWKS served over
//! HTTP on 127.0.0.1 (counting fetches), and signing of arbitrary ID tokens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Value, json};

pub struct TestKey {
    pub kid: String,
    pair: RsaKeyPair,
}

impl TestKey {
    pub fn load(name: &str, kid: &str) -> TestKey {
        let path = format!("{}/tests/oidc/keys/{name}.der", env!("CARGO_MANIFEST_DIR"));
        let der = std::fs::read(&path).expect("test key");
        TestKey {
            kid: kid.to_owned(),
            pair: RsaKeyPair::from_der(&der).expect("RSA key (DER)"),
        }
    }

    pub fn jwk(&self) -> Value {
        let public: RsaPublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": Base64UrlUnpadded::encode_string(&public.n),
            "e": Base64UrlUnpadded::encode_string(&public.e),
        })
    }

    /// Signs `claims` with RS256 under `header` (which should name alg and kid).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("sign");
        format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}), claims)
    }
}

pub fn b64_bytes(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

pub fn b64(value: &Value) -> String {
    Base64UrlUnpadded::encode_string(value.to_string().as_bytes())
}

/// HS256 over the token with `secret` (an attacker who knows the client secret).
pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    let input = format!("{}.{}", b64(&json!({"alg": "HS256", "typ": "JWT"})), b64(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", Base64UrlUnpadded::encode_string(tag.as_ref()))
}

pub fn unsigned(claims: &Value) -> String {
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A JWKS endpoint on 127.0.0.1 whose keys can be changed, counting fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    pub jwks: Arc<Mutex<Value>>,
    pub fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: &[&TestKey]) -> JwksServer {
        let jwks = Arc::new(Mutex::new(
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (j, f) = (jwks.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (j, f) = (j.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = j.lock().expect("jwks").clone();
                    axum::Json(body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer { addr, jwks, fetches }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.jwks.lock().expect("jwks") = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }
}
