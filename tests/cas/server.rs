//! Starts a real CAS server (PyPI django-mama-cas, through tests/peers/cas-server.sh)
//! and plays the browser's part at its login form.
//!
//! A missing python3 (with venv) or PyPI makes the tests fail, never skip.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::browser::{Browser, location};
use crate::peer::Peer;

/// The services the tests use (the server allows any `http://127.0.0.1/...`).
pub const SERVICE: &str = "http://127.0.0.1/callback";
pub const OTHER_SERVICE: &str = "http://127.0.0.1/other/callback";

pub struct CasServer {
    peer: Peer,
    /// The server URL (`http://127.0.0.1:PORT/cas`).
    pub url: String,
}

impl CasServer {
    /// Starts a fresh server on a free port of 127.0.0.1, with its own database.
    pub fn start() -> CasServer {
        let peer = Peer::start("cas-server", 1, "needs python3 with venv, and PyPI");
        CasServer {
            url: peer.var("CAS_URL"),
            peer,
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
        self.peer.stop();
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
