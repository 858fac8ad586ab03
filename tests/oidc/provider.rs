//! Starts a real OpenID Connect provider (npm `oidc-provider`, through
//! tests/peers/oidc-provider.sh) and plays the browser's part at it.
//!
//! A missing node or npm makes the tests fail, never skip.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The clients and users of tests/peers/oidc-provider/server.mjs.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";
pub const CONFIDENTIAL_CLIENT: &str = "authchain-confidential";
pub const CONFIDENTIAL_SECRET: &str = "confidential-secret";
pub const PUBLIC_CLIENT: &str = "authchain-public";

pub struct Provider {
    dir: PathBuf,
    pub issuer: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/oidc-provider.sh")
}

impl Provider {
    /// Starts a fresh provider on a free port of 127.0.0.1.
    pub fn start() -> Provider {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oidc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the provider directory");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run tests/peers/oidc-provider.sh (needs bash)");
        assert!(
            out.status.success(),
            "could not start the OIDC provider (needs node >= 18 and npm): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        Provider {
            dir,
            issuer: vars.get("OIDC_ISSUER").expect("OIDC_ISSUER").to_string(),
        }
    }

    /// The provider most tests share (stopped by its owner-pid watcher when the
    /// test binary exits).
    pub fn shared() -> &'static Provider {
        static SHARED: OnceLock<Provider> = OnceLock::new();
        SHARED.get_or_init(Provider::start)
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

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
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
