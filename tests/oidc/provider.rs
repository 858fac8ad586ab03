//! Starts a real OpenID Connect provider (npm `oidc-provider`, through
//! tests/peers/oidc-provider.sh) and plays the browser's part at it.
//!
//! A missing node or npm makes the tests fail, never skip.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

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

/// A browser at the provider: no automatic redirects, a cookie jar by name.
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("request to the provider");
        self.remember(&response);
        response
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
                let post = self.http.post(format!("{url}/login")).form(&form);
                self.send(post).await
            } else {
                let get = self.http.get(&url);
                self.send(get).await
            };
            let status = response.status();
            assert!(
                status.is_redirection(),
                "provider answered {status} at {url}: {}",
                response.text().await.unwrap_or_default()
            );
            let next = response.headers()[LOCATION]
                .to_str()
                .expect("location")
                .to_owned();
            url = if next.starts_with('/') {
                let base = url::Url::parse(&url).expect("url");
                base.join(&next).expect("join").to_string()
            } else {
                next
            };
        }
        panic!("too many redirects at the provider");
    }
}
