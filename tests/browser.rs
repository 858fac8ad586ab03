#![cfg(all(feature = "oidc", feature = "saml", feature = "cas"))]
//! The web integration in a real browser: Debian's Chromium, headless, driven over
//! WebDriver (chromedriver) on loopback, against the real OpenID provider, SAML IdP
//! and CAS server (tests/peers/{oidc-provider,saml-idp,cas-server}.sh). A missing chromium or chromedriver fails the test.
//! A failed scenario leaves a screenshot in `target/tmp/browser-screenshots/`.

#[path = "common/peer.rs"]
mod peer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authchain::account::{NewAccount, PasswordPolicy};
use authchain::axum::{CurrentUser, WebAuth, WebSettings, require_login};
use authchain::config::{Config, StoreConfig};
use axum::body::Body;
use axum::extract::Request;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use fantoccini::{Client, ClientBuilder, Locator};

type Outcome = Result<(), String>;

/// A chromedriver with one headless Chromium session, ended on drop.
struct Chrome {
    driver: Child,
    client: Option<Client>,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn chrome(name: &str) -> Chrome {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver (apt-get install chromium chromium-driver)");
    let profile =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chrome-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1024,768",
    ];
    let mut args: Vec<String> = args.map(String::from).to_vec();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    let mut chrome = Chrome { driver, client: None };
    let mut last = String::new();
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => {
                chrome.client = Some(client);
                return chrome;
            }
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start a Chromium session: {last}");
}

/// Runs a scenario in a fresh browser; on failure saves a screenshot and answers why.
async fn scenario<F, Fut>(name: &str, f: F) -> Outcome
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut chrome = chrome(name).await;
    let client = chrome.client.take().expect("client");
    let result = f(client.clone()).await;
    if result.is_err() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }
    let _ = client.close().await;
    result.map_err(|e| format!("{name}: {e}"))
}

fn fail(what: impl std::fmt::Display) -> String {
    what.to_string()
}

async fn wait_for(client: &Client, css: &str) -> Result<fantoccini::elements::Element, String> {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| format!("waiting for {css}: {e}"))
}

/// Asks `check` every 100 ms for up to 15 s until it answers `Ok`; its last
/// `Err` (why not yet) is the answer when the time is up.
async fn poll_until(mut check: impl AsyncFnMut() -> Outcome) -> Outcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let not_yet = match check().await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if std::time::Instant::now() > deadline {
            return Err(not_yet);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser is at `path` (a form's POST and its redirect may still
/// be under way; an element found before then goes stale).
async fn wait_for_path(client: &Client, path: &str) -> Outcome {
    poll_until(async || {
        let url = client.current_url().await.map_err(fail)?;
        ensure(url.path() == path, || {
            format!("still at {url}, waiting for {path}")
        })
    })
    .await
}

async fn text(client: &Client, css: &str) -> Result<String, String> {
    wait_for(client, css).await?.text().await.map_err(fail)
}

async fn fill(client: &Client, css: &str, value: &str) -> Outcome {
    wait_for(client, css).await?.send_keys(value).await.map_err(fail)
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(what()) }
}

/// The local password form on the built-in page.
async fn password_login(client: &Client, login: &str, password: &str) -> Outcome {
    fill(client, "#form-local input[name=login]", login).await?;
    fill(client, "#form-local input[name=password]", password).await?;
    wait_for(client, "#form-local button")
        .await?
        .click()
        .await
        .map_err(fail)
}

/// A provider's own login form: username, password, Enter.
async fn provider_form(client: &Client, user: &str, password: &str) -> Outcome {
    fill(client, "input[name=username]", user).await?;
    fill(client, "input[name=password]", &format!("{password}\u{E007}")).await
}

/// Back at the app's `/me` (the `return_to`), signed in through `module`.
async fn back_at_me(client: &Client, site: &Site, module: &str) -> Outcome {
    let me = url::Url::parse(&format!("{}/me", site.app)).map_err(fail)?;
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_url(&me)
        .await
        .map_err(|e| format!("not back at /me: {e}"))?;
    let body = text(client, "body").await?;
    ensure(body.contains(&format!("\"module\":\"{module}\"")), || {
        format!("/me showed {body}")
    })
}

/// Clicks "Sign out" on the signed-in page; answers the button, which goes
/// stale once that page is gone.
async fn click_sign_out(client: &Client) -> Result<fantoccini::elements::Element, String> {
    let button = wait_for(client, "#logout").await?;
    button.click().await.map_err(fail)?;
    Ok(button)
}

/// Waits for the signed-out login page. The signed-in page is the same
/// `/auth/login` with the same links, so neither the URL nor a link says the
/// logout has finished: only the signed-in page gone (its `button` stale) and a
/// login page without `#who` does.
async fn signed_out_page(client: &Client, site: &Site, button: fantoccini::elements::Element) -> Outcome {
    poll_until(async || {
        let stale = button.tag_name().await.is_err();
        ensure(stale, || "the signed-in page stayed".into())
    })
    .await?;
    poll_until(async || {
        // While a navigation is under way these calls may fail: that is "not yet".
        let url = client.current_url().await.map_err(fail)?;
        let at_login = url.as_str().starts_with(&site.app) && url.path() == "/auth/login";
        let signed_out = at_login
            && client.find(Locator::Css("#form-local")).await.is_ok()
            && client.find(Locator::Css("#who")).await.is_err();
        ensure(signed_out, || format!("no signed-out login page; at {url}"))?;
        let error = client.find(Locator::Css("#error")).await;
        ensure(error.is_err() && !url.as_str().contains("error="), || {
            format!("signed out with an error: {url}")
        })
    })
    .await
}

struct Site {
    app: String,
    proxy: String,
    evil: String,
}

async fn serve(listener: tokio::net::TcpListener, app: Router) {
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .expect("serve")
    });
}

/// The reverse proxy the header module trusts: it connects from 127.0.0.2 and
/// asserts `dave`, as an SSO gateway would.
fn reverse_proxy(app: String) -> Router {
    let http = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("address")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Router::new().fallback(move |request: Request| {
        let (http, app) = (http.clone(), app.clone());
        async move {
            let (parts, body) = request.into_parts();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let mut headers = parts.headers.clone();
            headers.retain_identity_headers();
            let body = axum::body::to_bytes(body, 1 << 20).await.expect("request body");
            let upstream = http
                .request(parts.method.clone(), format!("{app}{path}"))
                .headers(headers)
                .header("remote-user", "dave")
                .header("remote-groups", "staff")
                .body(body)
                .send()
                .await
                .expect("the app answers");
            let mut response = Response::builder().status(upstream.status());
            for (name, value) in upstream.headers() {
                response = response.header(name, value);
            }
            response
                .body(Body::from(upstream.bytes().await.expect("body")))
                .expect("response")
        }
    })
}

trait RetainIdentity {
    fn retain_identity_headers(&mut self);
}

impl RetainIdentity for http::HeaderMap {
    /// Drops what the browser said about identity: only the proxy asserts it.
    fn retain_identity_headers(&mut self) {
        self.remove("remote-user");
        self.remove("remote-groups");
        self.remove(http::header::HOST);
    }
}

/// Starts the app (proxy, local and OIDC modules), the reverse proxy, another site's
/// page that auto-posts the login form, and the OpenID provider.
async fn site() -> (Site, Vec<peer::Peer>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = format!("http://{}", listener.local_addr().expect("addr"));
    let redirect_uri = format!("{app}/auth/callback/oidc");
    let provider = peer::Peer::start_with_env(
        "oidc-provider",
        3,
        "needs node >= 18 and npm",
        &[
            ("OIDC_EXTRA_REDIRECT_URIS", &redirect_uri),
            ("OIDC_POST_LOGOUT_URIS", &format!("{app}/")),
        ],
    );
    let issuer = provider.var("OIDC_ISSUER");
    let idp = peer::Peer::start("saml-idp", 3, "needs python3 with venv, PyPI and xmlsec1");
    let cas = peer::Peer::start("cas-server", 3, "needs python3 with venv, and PyPI");
    let (idp_url, idp_metadata, cas_url) = (
        idp.var("SAML_IDP_URL"),
        idp.var("SAML_IDP_METADATA"),
        cas.var("CAS_URL"),
    );
    let config = Config::from_toml(&format!(
        r#"
chain = ["proxy", "local", "oidc", "saml", "campus"]
trusted_proxies = ["127.0.0.2"]

[modules.proxy]
type = "header"
description = "Corporate gateway"
provisioning = "create"

[modules.local]
type = "local"
description = "Password"

[modules.oidc]
type = "oidc"
description = "OpenID provider"
issuer = "{issuer}"
client_id = "authchain-confidential"
client_secret = "confidential-secret"
redirect_uri = "{redirect_uri}"
scopes = ["openid", "profile", "email", "groups"]
provisioning = "create"

[modules.saml]
type = "saml"
description = "SAML IdP"
sp_entity_id = "{app}/saml"
acs_url = "{app}/auth/callback/saml"
idp_metadata_file = "{idp_metadata}"
provisioning = "create"

[modules.campus]
type = "cas"
description = "CAS server"
server_url = "{cas_url}"
service_url = "{app}/auth/callback/campus"
provisioning = "create"
"#
    ))
    .expect("config");
    let stores = StoreConfig::Memory.open().await.expect("stores");
    let hash = PasswordPolicy::fast_insecure_for_tests()
        .hash("lucy-pw")
        .expect("hash");
    stores
        .users()
        .create_account(NewAccount::new("lucy").password_hash(hash))
        .await
        .expect("alice");
    let mut settings = WebSettings::default();
    settings.insecure_http_cookies = true;
    settings.provider_logout_return = Some(format!("{app}/"));
    let web = WebAuth::with_settings(Arc::new(config.build(stores).expect("chain")), settings);
    let routes = Router::new()
        .route("/me", get(|user: CurrentUser| async move { Json(user) }))
        .layer(require_login())
        .route("/", get(|| async { Redirect::to("/auth/login") }));
    serve(
        listener,
        web.mount(routes, tower_sessions::MemoryStore::default()),
    )
    .await;
    // The IdP learns the SP from the metadata route.
    let metadata = reqwest::get(format!("{app}/auth/metadata/saml"))
        .await
        .expect("metadata");
    assert_eq!(metadata.headers()["content-type"], "application/samlmetadata+xml");
    let registered = reqwest::Client::new()
        .post(format!("{idp_url}/admin/sp"))
        .body(metadata.text().await.expect("metadata"))
        .send()
        .await
        .expect("register the SP");
    assert_eq!(registered.status(), 204, "the IdP refused the SP metadata");

    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = format!("http://{}", proxy_listener.local_addr().expect("addr"));
    serve(proxy_listener, reverse_proxy(app.clone())).await;

    // `localhost` is another site than `127.0.0.1`.
    let evil_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let evil = format!(
        "http://localhost:{}",
        evil_listener.local_addr().expect("addr").port()
    );
    let target = format!("{app}/auth/login");
    let page = move || {
        let target = target.clone();
        async move {
            Html(format!(
                "<form id=f method=post action=\"{target}\"><input name=module value=local>\
                 <input name=login value=lucy><input name=password value=alice-pw></form>\
                 <script>document.getElementById('f').submit()</script>"
            ))
            .into_response()
        }
    };
    serve(evil_listener, Router::new().route("/", get(page))).await;
    (Site { app, proxy, evil }, vec![provider, idp, cas])
}

#[tokio::test]
async fn sign_in_and_out_in_chromium() {
    let (site, _peers) = site().await;
    let site = &site;
    let mut failures = Vec::new();

    // The local form, reached from a guarded page: return_to is followed.
    failures.push(
        scenario("local-form-and-return-to", |c| async move {
            c.goto(&format!("{}/me", site.app)).await.map_err(fail)?;
            password_login(&c, "lucy", "lucy-pw").await?;
            wait_for_path(&c, "/me").await?;
            let body = text(&c, "body").await?;
            ensure(body.contains("\"login\":\"lucy\""), || {
                format!("/me showed {body}")
            })
        })
        .await,
    );

    // A wrong password: the readable error on the login page.
    failures.push(
        scenario("wrong-password", |c| async move {
            c.goto(&format!("{}/auth/login", site.app)).await.map_err(fail)?;
            password_login(&c, "lucy", "not-her-password").await?;
            let error = text(&c, "#error").await?;
            ensure(error == "Wrong login name or password.", || {
                format!("error shown: {error:?}")
            })
        })
        .await,
    );

    // Logout: signed out afterwards.
    failures.push(
        scenario("logout", |c| async move {
            c.goto(&format!("{}/auth/login", site.app)).await.map_err(fail)?;
            password_login(&c, "lucy", "lucy-pw").await?;
            wait_for(&c, "#who").await?;
            let button = click_sign_out(&c).await?;
            signed_out_page(&c, site, button).await?;
            c.goto(&format!("{}/me", site.app)).await.map_err(fail)?;
            let url = c.current_url().await.map_err(fail)?;
            ensure(url.path() == "/auth/login", || {
                format!("after logout /me went to {url}")
            })
        })
        .await,
    );

    // Another site auto-posts the login form: refused, nobody signed in.
    failures.push(
        scenario("cross-origin-post", |c| async move {
            c.goto(&site.evil).await.map_err(fail)?;
            let error = text(&c, "#error").await?;
            ensure(error.contains("another site"), || {
                format!("error shown: {error:?}")
            })?;
            let who = c.find(Locator::Css("#who")).await;
            ensure(who.is_err(), || "signed in by a cross-site post".into())
        })
        .await,
    );

    // Through the trusted reverse proxy.
    failures.push(
        scenario("trusted-proxy", |c| async move {
            c.goto(&format!("{}/auth/login/proxy", site.proxy))
                .await
                .map_err(fail)?;
            let who = text(&c, "#who").await?;
            ensure(who.contains("Signed in as dave via proxy"), || {
                format!("shown: {who:?}")
            })
        })
        .await,
    );

    // The OpenID provider's own login page, and back.
    failures.push(
        scenario("oidc-provider", |c| async move {
            c.goto(&format!("{}/auth/login?return_to=%2Fme", site.app))
                .await
                .map_err(fail)?;
            wait_for(&c, "#login-oidc").await?.click().await.map_err(fail)?;
            provider_form(&c, "alice", "alice-password").await?;
            back_at_me(&c, site, "oidc").await
        })
        .await,
    );

    // The SAML IdP's login form, its auto-submitted HTTP-POST back to the ACS.
    failures.push(
        scenario("saml-idp", |c| async move {
            c.goto(&format!("{}/auth/login?return_to=%2Fme", site.app))
                .await
                .map_err(fail)?;
            wait_for(&c, "#login-saml").await?.click().await.map_err(fail)?;
            provider_form(&c, "bob", "bob-password").await?;
            back_at_me(&c, site, "saml").await
        })
        .await,
    );

    // The CAS server's login form, and the ticket back to the service URL.
    failures.push(
        scenario("cas-server", |c| async move {
            c.goto(&format!("{}/auth/login?return_to=%2Fme", site.app))
                .await
                .map_err(fail)?;
            wait_for(&c, "#login-campus").await?.click().await.map_err(fail)?;
            provider_form(&c, "carol", "carol-password").await?;
            back_at_me(&c, site, "campus").await
        })
        .await,
    );

    // Logout goes on to the OpenID provider (RP-initiated logout) and back: the
    // provider asks for the password again afterwards.
    failures.push(
        scenario("oidc-logout", |c| async move {
            c.goto(&format!("{}/auth/login/oidc", site.app))
                .await
                .map_err(fail)?;
            provider_form(&c, "alice", "alice-password").await?;
            wait_for(&c, "#who").await?;
            let button = click_sign_out(&c).await?;
            // The provider's confirmation page.
            wait_for(&c, "button[name=logout]")
                .await?
                .click()
                .await
                .map_err(fail)?;
            signed_out_page(&c, site, button).await?;
            wait_for(&c, "#login-oidc").await?.click().await.map_err(fail)?;
            wait_for(&c, "input[name=username]").await.map(drop)
        })
        .await,
    );

    // Logout goes on to the CAS server's /logout?service=: its single sign-on ends.
    failures.push(
        scenario("cas-logout", |c| async move {
            c.goto(&format!("{}/auth/login/campus", site.app))
                .await
                .map_err(fail)?;
            provider_form(&c, "carol", "carol-password").await?;
            wait_for(&c, "#who").await?;
            let button = click_sign_out(&c).await?;
            signed_out_page(&c, site, button).await?;
            wait_for(&c, "#login-campus").await?.click().await.map_err(fail)?;
            wait_for(&c, "input[name=username]").await.map(drop)
        })
        .await,
    );

    // SAML single logout: a LogoutRequest to the IdP, its verified LogoutResponse
    // back at the ACS URL, then signed out.
    failures.push(
        scenario("saml-logout", |c| async move {
            c.goto(&format!("{}/auth/login/saml", site.app))
                .await
                .map_err(fail)?;
            provider_form(&c, "bob", "bob-password").await?;
            wait_for(&c, "#who").await?;
            let button = click_sign_out(&c).await?;
            signed_out_page(&c, site, button).await?;
            c.goto(&format!("{}/me", site.app)).await.map_err(fail)?;
            let url = c.current_url().await.map_err(fail)?;
            ensure(url.path() == "/auth/login", || {
                format!("after the SAML logout /me went to {url}")
            })
        })
        .await,
    );

    let failures: Vec<String> = failures.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
