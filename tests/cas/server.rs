//! Starts a real CAS server (PyPI django-mama-cas, through tests/peers/cas-server.sh)
//! and plays the browser's part at its login form.
//!
//! A missing python3 (with venv) or PyPI makes the tests fail, never skip.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::browser::{Browser, location};

/// The services the tests use (the server allows any `http://127.0.0.1/...`).
pub const SERVICE: &str = "http://127.0.0.1/callback";
pub const OTHER_SERVICE: &str = "http://127.0.0.1/other/callback";

pub struct CasServer {
    dir: PathBuf,
    /// The server URL (`http://127.0.0.1:PORT/cas`).
    pub url: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/cas-server.sh")
}

impl CasServer {
    /// Starts a fresh server on a free port of 127.0.0.1, with its own database.
    pub fn start() -> CasServer {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cas-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the server directory");
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run tests/peers/cas-server.sh (needs bash)");
        assert!(
            out.status.success(),
            "could not start the CAS server (needs python3 with venv, and PyPI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        CasServer {
            dir,
            url: vars.get("CAS_URL").expect("CAS_URL").to_string(),
        }
    }

    /// The server most tests share (stopped by its owner-pid watcher when the test
    /// binary exits).
    pub fn shared() -> &'static CasServer {
        static SHARED: OnceLock<CasServer> = OnceLock::new();
        SHARED.get_or_init(CasServer::start)
    }

    /// Stops the server (by the PID the script recorded).
    pub fn stop(&self) {
        let status = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .status()
            .expect("run tests/peers/cas-server.sh stop");
        assert!(status.success());
    }
}

impl Drop for CasServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Follows `login_url` (the module's redirect) through the CAS login form with
/// these credentials, up to the redirect back to the service. Answers the service
/// URL the server sent the browser to.
pub async fn login(browser: &mut Browser, login_url: &str, user: &str, password: &str) -> String {
    let form = browser.send(browser.http().get(login_url)).await;
    if form.status().is_redirection() {
        // Already signed in at the server (single sign-on): straight back.
        return location(&form, login_url);
    }
    assert_eq!(form.status(), 200, "the login form");
    assert!(
        browser.cookie("csrftoken").is_some(),
        "the form sets the CSRF cookie"
    );
    let html = form.text().await.expect("form");
    let token = hidden_input(&html, "csrfmiddlewaretoken").expect("csrfmiddlewaretoken");
    let fields = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("username", user),
        ("password", password),
    ];
    let post = browser.http().post(login_url).form(&fields);
    let answer = browser.send(post).await;
    let status = answer.status();
    assert_eq!(
        status,
        302,
        "the CAS server did not accept {user}: {}",
        answer.text().await.unwrap_or_default()
    );
    location(&answer, login_url)
}

/// The value of `<input ... name="NAME" value="...">` in Django's form.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let value = rest.split("value=\"").nth(1)?;
    Some(value.split('"').next()?.to_owned())
}

/// The query parameters of a URL.
pub fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}
