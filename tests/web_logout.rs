//! Logout with the identity providers over real HTTP, through the axum integration:
//! OIDC RP-initiated logout with `id_token_hint` and OIDC back-channel logout
//! against the real OpenID provider (tests/peers/oidc-provider.sh).

#[path = "common/browser.rs"]
mod browser;
#[path = "common/peer.rs"]
mod peer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use authchain::axum::{CurrentUser, WebAuth, WebSettings, require_login};
use authchain::config::{Config, StoreConfig};
use axum::routing::get;
use axum::{Json, Router};
use base64ct::{Base64UrlUnpadded, Encoding};
use browser::{Browser, location};
use reqwest::StatusCode;

const HTML: &str = "text/html,application/xhtml+xml";

struct Site {
    app: String,
    issuer: String,
    web: WebAuth,
    _provider: peer::Peer,
}

/// The app (an OIDC module `oidc` for the confidential client) and an OpenID
/// provider whose client has its back-channel logout URI at the app.
async fn oidc_site() -> Site {
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
            (
                "OIDC_BACKCHANNEL_LOGOUT_URI",
                &format!("{app}/auth/backchannel-logout/oidc"),
            ),
        ],
    );
    let issuer = provider.var("OIDC_ISSUER");
    let config = Config::from_toml(&format!(
        r#"
chain = ["oidc"]

[modules.oidc]
type = "oidc"
issuer = "{issuer}"
client_id = "authchain-confidential"
client_secret = "confidential-secret"
redirect_uri = "{redirect_uri}"
provisioning = "create"
"#
    ))
    .expect("config");
    let stores = StoreConfig::Memory.open().await.expect("stores");
    let mut settings = WebSettings::default();
    settings.insecure_http_cookies = true;
    settings.provider_logout_return = Some(format!("{app}/"));
    let web = WebAuth::with_settings(Arc::new(config.build(stores).expect("chain")), settings);
    let routes = Router::new()
        .route("/me", get(|user: CurrentUser| async move { Json(user) }))
        .layer(require_login());
    let router = web.clone().mount(routes, tower_sessions::MemoryStore::default());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve")
    });
    Site {
        app,
        issuer,
        web,
        _provider: provider,
    }
}

/// Follows redirects from `url`, posting the provider's login form once, until the
/// app's own callback has answered. (Provider and app share the browser's cookies,
/// as a browser shares them between two ports of one host.)
async fn sign_in(site: &Site, browser: &mut Browser, user: &str, password: &str) {
    let mut url = format!("{}/auth/login/oidc", site.app);
    let mut posted = false;
    for _ in 0..12 {
        let response = if !posted && url.contains("/interaction/") {
            posted = true;
            let form = [("username", user), ("password", password)];
            browser
                .send(browser.http().post(format!("{url}/login")).form(&form))
                .await
        } else {
            browser
                .send(browser.http().get(&url).header("accept", HTML))
                .await
        };
        let status = response.status();
        assert!(status.is_redirection(), "{status} at {url}");
        let callback = url.starts_with(&format!("{}/auth/callback/", site.app));
        url = location(&response, &url);
        if callback {
            assert!(!url.contains("error="), "the login failed: {url}");
            return;
        }
    }
    panic!("too many redirects");
}

async fn me(site: &Site, browser: &mut Browser) -> StatusCode {
    browser
        .send(
            browser
                .http()
                .get(format!("{}/me", site.app))
                .header("accept", "application/json"),
        )
        .await
        .status()
}

fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

/// Logs out at the provider itself (its `/session/end` confirmation page, "yes"):
/// the provider then POSTs a logout token to every client of that session with a
/// back-channel logout URI. `end_session` is the URL to start at. Answers where
/// the provider sends the browser afterwards.
async fn provider_logout(browser: &mut Browser, end_session: &str) -> String {
    let page = browser.send(browser.http().get(end_session)).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the provider refused {end_session}"
    );
    let html = page.text().await.expect("page");
    let xsrf = html
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the logout confirmation form")
        .to_owned();
    let action = url::Url::parse(end_session)
        .expect("url")
        .join("/session/end/confirm")
        .expect("join")
        .to_string();
    let confirmed = browser
        .send(
            browser
                .http()
                .post(&action)
                .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")]),
        )
        .await;
    assert!(confirmed.status().is_redirection(), "{}", confirmed.status());
    location(&confirmed, &action)
}

#[tokio::test]
async fn oidc_logout_sends_id_token_hint_and_back_channel_logout_ends_sessions() {
    let site = oidc_site().await;

    // RP-initiated logout: the local session ends, the provider's end_session URL
    // carries the login's ID token as id_token_hint, and the provider accepts it.
    let mut browser = Browser::new();
    sign_in(&site, &mut browser, "alice", "alice-password").await;
    assert_eq!(me(&site, &mut browser).await, StatusCode::OK);
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/logout", site.app))
                .header("accept", HTML)
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let end_session = location(&response, &site.app);
    assert!(end_session.starts_with(&site.issuer), "{end_session}");
    let params = query(&end_session);
    assert_eq!(params["client_id"], "authchain-confidential");
    assert_eq!(params["post_logout_redirect_uri"], format!("{}/", site.app));
    let hint = &params["id_token_hint"];
    let payload = hint.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).expect("base64url")).expect("claims");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "authchain-confidential");
    assert!(claims["sid"].is_string(), "{claims}");
    assert_eq!(me(&site, &mut browser).await, StatusCode::UNAUTHORIZED);
    let back = provider_logout(&mut browser, &end_session).await;
    assert_eq!(back, format!("{}/", site.app));

    // Back-channel logout: signed in at the app, then the provider's session ends
    // (at the provider, not through the app): the provider POSTs a logout token
    // naming the session's `sid`, and the app's session is gone.
    let (mut laptop, mut other) = (Browser::new(), Browser::new());
    sign_in(&site, &mut laptop, "alice", "alice-password").await;
    sign_in(&site, &mut other, "bob", "bob-password").await;
    assert_eq!(me(&site, &mut laptop).await, StatusCode::OK);
    let end_session = format!("{}/session/end?client_id=authchain-confidential", site.issuer);
    provider_logout(&mut laptop, &end_session).await;
    assert_eq!(me(&site, &mut laptop).await, StatusCode::UNAUTHORIZED);
    // Another user's session (another provider session) is untouched.
    assert_eq!(me(&site, &mut other).await, StatusCode::OK);

    // A subject's every session can be ended at once (a logout token without sid).
    let (mut one, mut two) = (Browser::new(), Browser::new());
    sign_in(&site, &mut one, "carol", "carol-password").await;
    sign_in(&site, &mut two, "carol", "carol-password").await;
    let ended = site
        .web
        .end_provider_sessions("oidc", Some("carol"), None)
        .await
        .expect("index");
    assert_eq!(ended, 2);
    assert_eq!(me(&site, &mut one).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&site, &mut two).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&site, &mut other).await, StatusCode::OK);

    // A token that does not verify is refused with 400 and ends nothing.
    let refused = reqwest::Client::new()
        .post(format!("{}/auth/backchannel-logout/oidc", site.app))
        .form(&[("logout_token", "e30.e30.AAAA")])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(me(&site, &mut other).await, StatusCode::OK);
}
