//! The axum integration (`authchain::axum`) over real HTTP: sessions, revalidation,
//! guards, CSRF, negotiated errors, logout. (tests/browser.rs drives it in Chromium.)

#[path = "common/browser.rs"]
mod browser;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authchain::account::{
    MemoryAttemptStore, MemoryUserStore, NewAccount, PasswordPolicy, ThrottlePolicy, UserStore,
};
use authchain::axum::{CurrentUser, WebAuth, WebSettings, require_login, require_role};
use authchain::modules::LocalModule;
use authchain::{AccountId, AuthChain};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use browser::Browser;
use reqwest::StatusCode;

struct App {
    base: String,
    store: Arc<MemoryUserStore>,
    web: WebAuth,
    alice: AccountId,
}

/// A server on 127.0.0.1 with `alice` (role `staff`) and `root` (role `admin`),
/// `/me` behind `require_login`, `/admin` behind `require_role("admin")`.
async fn serve(configure: impl FnOnce(&mut WebSettings)) -> App {
    let store = Arc::new(MemoryUserStore::new());
    let passwords = Arc::new(PasswordPolicy::fast_insecure_for_tests());
    let alice = store
        .create_account(
            NewAccount::new("alice")
                .password_hash(passwords.hash("alice-pw").unwrap())
                .role("staff"),
        )
        .await
        .unwrap();
    store
        .create_account(
            NewAccount::new("root")
                .password_hash(passwords.hash("root-pw").unwrap())
                .role("admin"),
        )
        .await
        .unwrap();
    let throttle = ThrottlePolicy {
        max_attempts: 3,
        ..ThrottlePolicy::default()
    };
    let chain = AuthChain::builder(store.clone())
        .module(
            LocalModule::builder("local", store.clone())
                .passwords(passwords)
                .build(),
        )
        .throttle(throttle, Arc::new(MemoryAttemptStore::new()))
        .build()
        .unwrap();
    let mut settings = WebSettings::default();
    configure(&mut settings);
    let web = WebAuth::with_settings(Arc::new(chain), settings);
    let app = Router::new()
        .route("/me", get(|user: CurrentUser| async move { Json(user) }))
        .layer(require_login())
        .route(
            "/admin",
            get(|| async { "admin area" }).layer(require_role("admin")),
        )
        .route(
            "/maybe",
            get(|user: Option<CurrentUser>| async move {
                user.map(|u| u.login).unwrap_or_default().into_response()
            }),
        );
    let app = web.clone().mount(app, tower_sessions::MemoryStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    App {
        base,
        store,
        web,
        alice: alice.id,
    }
}

const HTML: &str = "text/html,application/xhtml+xml";

impl App {
    async fn login(
        &self,
        browser: &mut Browser,
        login: &str,
        password: &str,
        extra: &str,
    ) -> reqwest::Response {
        browser
            .send(
                browser
                    .http()
                    .post(format!("{}/auth/login", self.base))
                    .header("accept", HTML)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("module=local&login={login}&password={password}{extra}")),
            )
            .await
    }

    async fn get(&self, browser: &mut Browser, path: &str, accept: &str) -> reqwest::Response {
        browser
            .send(
                browser
                    .http()
                    .get(format!("{}{path}", self.base))
                    .header("accept", accept),
            )
            .await
    }
}

fn location(response: &reqwest::Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_login_starts_a_fresh_session_with_safe_cookie_attributes() {
    let app = serve(|_| {}).await;
    let mut browser = Browser::new();
    let response = app.login(&mut browser, "alice", "alice-pw", "").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("authchain_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing: {set_cookie}"
        );
    }
    let first = browser.cookie("authchain_session").unwrap().to_owned();
    let me = json(app.get(&mut browser, "/me", "application/json").await).await;
    assert_eq!(me["login"], "alice");
    assert_eq!(me["roles"], serde_json::json!(["staff"]));
    assert_eq!(me["module"], "local");

    // A second login in the same browser gets a new session id; the old one is gone.
    app.login(&mut browser, "root", "root-pw", "").await;
    let second = browser.cookie("authchain_session").unwrap().to_owned();
    assert_ne!(first, second);
    let old = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header("cookie", format!("authchain_session={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);

    // Logout ends it: the cookie is replaced and the old id no longer works.
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/logout", app.base))
                .header("accept", HTML)
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let response = reqwest::Client::new()
        .get(format!("{}/me", app.base))
        .header("cookie", format!("authchain_session={second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"], "not_signed_in");
}

#[tokio::test]
async fn plain_http_cookies_only_when_asked() {
    let app = serve(|s| s.insecure_http_cookies = true).await;
    let response = app.login(&mut Browser::new(), "alice", "alice-pw", "").await;
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
}

#[tokio::test]
async fn a_disabled_account_is_refused_at_the_next_revalidation() {
    // Revalidated on every request.
    let app = serve(|s| s.revalidate_every = Duration::ZERO).await;
    let mut browser = Browser::new();
    app.login(&mut browser, "alice", "alice-pw", "").await;
    assert_eq!(
        app.get(&mut browser, "/me", "application/json").await.status(),
        StatusCode::OK
    );
    // Roles changed by an administrator show at once.
    app.store
        .set_local_role(&app.alice, "auditor", true)
        .await
        .unwrap();
    let me = json(app.get(&mut browser, "/me", "application/json").await).await;
    assert_eq!(me["roles"], serde_json::json!(["auditor", "staff"]));
    app.store.set_disabled(&app.alice, true).await.unwrap();
    let response = app.get(&mut browser, "/me", "application/json").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(response).await["error"], "account_disabled");
    // The session is gone, even once the account is enabled again.
    app.store.set_disabled(&app.alice, false).await.unwrap();
    let response = app.get(&mut browser, "/me", "application/json").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Within the interval the session is trusted as it is (no store read per request).
    let app = serve(|s| s.revalidate_every = Duration::from_secs(3600)).await;
    let mut browser = Browser::new();
    app.login(&mut browser, "alice", "alice-pw", "").await;
    app.store.set_disabled(&app.alice, true).await.unwrap();
    assert_eq!(
        app.get(&mut browser, "/me", "application/json").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_session_of_an_account_can_be_ended() {
    let app = serve(|_| {}).await;
    let (mut laptop, mut phone, mut other) = (Browser::new(), Browser::new(), Browser::new());
    app.login(&mut laptop, "alice", "alice-pw", "").await;
    app.login(&mut phone, "alice", "alice-pw", "").await;
    app.login(&mut other, "root", "root-pw", "").await;
    app.web.session_ends().end_account(&app.alice);
    for browser in [&mut laptop, &mut phone] {
        assert_eq!(
            app.get(browser, "/me", "application/json").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get(&mut other, "/me", "application/json").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_absolute_timeout_ends_a_session_however_busy() {
    let app = serve(|s| s.absolute_timeout = Duration::ZERO).await;
    let mut browser = Browser::new();
    app.login(&mut browser, "alice", "alice-pw", "").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        app.get(&mut browser, "/me", "application/json").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn guards_redirect_browsers_and_answer_api_clients() {
    let app = serve(|_| {}).await;
    let mut browser = Browser::new();
    let response = app.get(&mut browser, "/me?tab=1", HTML).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        "/auth/login?return_to=/me%3Ftab%3D1&error=not_signed_in"
    );
    let response = app.get(&mut browser, "/me", "application/json").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(response).await["error"], "not_signed_in");
    assert_eq!(
        app.get(&mut browser, "/maybe", HTML).await.text().await.unwrap(),
        ""
    );

    // return_to is followed after the login; an absolute one is not (open redirect).
    let response = app
        .login(&mut browser, "alice", "alice-pw", "&return_to=%2Fme%3Ftab%3D1")
        .await;
    assert_eq!(location(&response), "/me?tab=1");
    let response = app
        .login(
            &mut browser,
            "alice",
            "alice-pw",
            "&return_to=https%3A%2F%2Fevil.test%2F",
        )
        .await;
    assert_eq!(location(&response), "/");
    assert_eq!(
        app.get(&mut browser, "/maybe", HTML).await.text().await.unwrap(),
        "alice"
    );

    // Signed in without the role: 403 for both.
    let response = app.get(&mut browser, "/admin", HTML).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.get(&mut browser, "/admin", "application/json").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(response).await["error"], "missing_role");
    app.login(&mut browser, "root", "root-pw", "").await;
    assert_eq!(
        app.get(&mut browser, "/admin", HTML).await.text().await.unwrap(),
        "admin area"
    );
}

#[tokio::test]
async fn cross_site_login_and_logout_posts_are_refused() {
    let app = serve(|_| {}).await;
    let mut browser = Browser::new();
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/login", app.base))
                .header("accept", "application/json")
                .header("origin", "http://evil.test")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("login=alice&password=alice-pw"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(json(response).await["error"], "cross_site");

    app.login(&mut browser, "alice", "alice-pw", "").await;
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/logout", app.base))
                .header("accept", "application/json")
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&mut browser, "/me", "application/json").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn errors_are_negotiated_and_carry_retry_after() {
    let app = serve(|_| {}).await;
    let mut browser = Browser::new();
    let response = app.login(&mut browser, "alice", "wrong", "").await;
    assert_eq!(location(&response), "/auth/login?error=invalid_credentials");
    let page = app
        .get(&mut browser, "/auth/login?error=invalid_credentials", HTML)
        .await;
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Wrong login name or password.")
    );
    for _ in 0..3 {
        app.login(&mut browser, "alice", "wrong", "").await;
    }
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/login", app.base))
                .json(&serde_json::json!({"login": "alice", "password": "alice-pw"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(json(response).await["error"], "throttled");
    let response = app.login(&mut browser, "alice", "alice-pw", "").await;
    assert_eq!(location(&response), "/auth/login?error=throttled");
    assert!(response.headers().get("retry-after").is_some());

    // The module list for a host-built page; unknown modules.
    let modules = json(app.get(&mut browser, "/auth/login", "application/json").await).await;
    assert_eq!(modules["modules"][0]["id"], "local");
    assert_eq!(modules["modules"][0]["kind"], "password");
    let response = app
        .get(&mut browser, "/auth/metadata/local", "application/json")
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_host_can_render_errors_itself() {
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .module(LocalModule::builder("local", store).build())
        .build()
        .unwrap();
    let web = WebAuth::new(Arc::new(chain)).error_renderer(Arc::new(|err, context| {
        (
            StatusCode::IM_A_TEAPOT,
            format!("{} {}", err.code(), context.browser),
        )
            .into_response()
    }));
    let app = web.mount(Router::new(), tower_sessions::MemoryStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap()
    });
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .header("accept", HTML)
        .form(&[("login", "nobody"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.text().await.unwrap(), "invalid_credentials true");
}

#[tokio::test]
async fn the_idle_timeout_ends_an_unused_session() {
    let app = serve(|s| s.idle_timeout = Duration::ZERO).await;
    let mut browser = Browser::new();
    app.login(&mut browser, "alice", "alice-pw", "").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get(&mut browser, "/me", "application/json").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_goes_to_the_modules_logout_redirect() {
    let app = serve(|s| {
        s.logout_redirects
            .insert("local".into(), "https://sso.example.org/logout".into());
    })
    .await;
    let mut browser = Browser::new();
    app.login(&mut browser, "alice", "alice-pw", "").await;
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/logout", app.base))
                .header("accept", HTML),
        )
        .await;
    assert_eq!(location(&response), "https://sso.example.org/logout");
    // Without a session there is no module, so no module redirect; API clients get JSON.
    let response = browser
        .send(
            browser
                .http()
                .post(format!("{}/auth/logout", app.base))
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(
        json(response).await,
        serde_json::json!({"signed_out": true, "redirect": "/"})
    );
}
