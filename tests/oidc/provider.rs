//! Starts a real OpenID Connect provider (npm `oidc-provider`, through
//! tests/peers/oidc-provider.sh) and plays the browser's part at it.
//!
//! A missing node or npm makes the tests fail, never skip.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::peer::Peer;

/// The clients and users of tests/peers/oidc-provider/server.mjs.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";
pub const CONFIDENTIAL_CLIENT: &str = "authchain-confidential";
pub const CONFIDENTIAL_SECRET: &str = "confidential-secret";
pub const PUBLIC_CLIENT: &str = "authchain-public";
/// `private_key_jwt` clients (keys in tests/oidc/keys) and the `client_secret_jwt` one.
pub const PKJWT_RS256_CLIENT: &str = "authchain-pkjwt-rs256";
pub const PKJWT_ES256_CLIENT: &str = "authchain-pkjwt-es256";
pub const SECRET_JWT_CLIENT: &str = "authchain-secret-jwt";
pub const SECRET_JWT_SECRET: &str = "secret-jwt-secret-of-at-least-32-bytes";
/// The tenant of the second (Entra-style) provider, at `<issuer>/<TENANT>/v2.0`.
pub const TENANT: &str = "3f2d0c6e-5b1a-4c1e-9d7a-1b2c3d4e5f60";

pub struct Provider {
    _peer: Peer,
    pub issuer: String,
}

impl Provider {
    /// Starts a fresh provider on a free port of 127.0.0.1.
    pub fn start() -> Provider {
        let peer = Peer::start("oidc-provider", 1, "needs node >= 18 and npm");
        Provider {
            issuer: peer.var("OIDC_ISSUER"),
            _peer: peer,
        }
    }

    /// The provider most tests share (stopped by its owner-pid watcher when the
    /// test binary exits).
    pub fn shared() -> &'static Provider {
        static SHARED: OnceLock<Provider> = OnceLock::new();
        SHARED.get_or_init(Provider::start)
    }

    /// The issuer of the Entra-style tenant provider on the same port.
    pub fn tenant_issuer(&self) -> String {
        format!("{}/{TENANT}/v2.0", self.issuer)
    }

    /// Rotates the provider's signing key; answers the new kid.
    pub async fn rotate_key(&self) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/__rotate", self.issuer))
            .send()
            .await
            .expect("rotate")
            .json()
            .await
            .expect("rotate answer");
        answer["kid"].as_str().expect("kid").to_owned()
    }
}

/// A browser at the provider.
#[derive(Default)]
pub struct Browser(crate::browser::Browser);

impl Browser {
    pub fn new() -> Browser {
        Browser::default()
    }

    /// Follows `location` (the module's redirect) through the provider's login form
    /// with these credentials, up to the redirect back to the client. Answers the
    /// callback URL's query parameters.
    pub async fn login(&mut self, location: &str, user: &str, password: &str) -> BTreeMap<String, String> {
        let mut url = location.to_owned();
        let mut posted = false;
        for _ in 0..10 {
            if url.starts_with(REDIRECT_URI) {
                let parsed = url::Url::parse(&url).expect("callback URL");
                return parsed.query_pairs().into_owned().collect();
            }
            let response = if !posted && url.contains("/interaction/") {
                posted = true;
                let form = [("username", user), ("password", password)];
                let post = self.0.http().post(format!("{url}/login")).form(&form);
                self.0.send(post).await
            } else {
                let get = self.0.http().get(&url);
                self.0.send(get).await
            };
            let status = response.status();
            assert!(
                status.is_redirection(),
                "provider answered {status} at {url}: {}",
                response.text().await.unwrap_or_default()
            );
            url = crate::browser::location(&response, &url);
        }
        panic!("too many redirects at the provider");
    }
}
