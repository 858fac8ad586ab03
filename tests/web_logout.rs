//! Logout with the identity providers over real HTTP, through the axum integration:
//! OIDC RP-initiated logout with `id_token_hint` and OIDC back-channel logout
//! against the real OpenID provider (tests/peers/oidc-provider.sh); SAML single
//! logout, SP- and IdP-initiated, against the pysaml2 IdP (tests/peers/saml-idp.sh).

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

/// Serves the chain of `toml` on `listener` (`/me` behind `require_login`), plain-http
/// cookies, provider logout back to `<app>/`. Answers the served integration and a
/// second replica of it (not served) over the same session store and
/// `session_index_key`, as two instances behind a load balancer would be.
async fn serve(listener: tokio::net::TcpListener, app: &str, toml: &str) -> (WebAuth, WebAuth) {
    let sessions = tower_sessions::MemoryStore::default();
    let config = Config::from_toml(toml).expect("config");
    let mut settings = WebSettings::default();
    settings.insecure_http_cookies = true;
    settings.provider_logout_return = Some(format!("{app}/"));
    settings.session_index_key = Some("the key every replica shares".into());
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let stores = StoreConfig::Memory.open().await.expect("stores");
        let chain = Arc::new(config.build(stores).expect("chain"));
        replicas.push(WebAuth::with_settings(chain, settings.clone()));
    }
    let (web, replica) = (replicas.remove(0), replicas.remove(0));
    let _unserved = replica.clone().mount(Router::new(), sessions.clone());
    let routes = Router::new()
        .route("/me", get(|user: CurrentUser| async move { Json(user) }))
        .layer(require_login());
    let router = web.clone().mount(routes, sessions);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve")
    });
    (web, replica)
}

/// `POST <app>/auth/logout` from the app's own page.
async fn logout(app: &str, browser: &mut Browser) -> reqwest::Response {
    browser
        .send(
            browser
                .http()
                .post(format!("{app}/auth/logout"))
                .header("accept", HTML)
                .header("sec-fetch-site", "same-origin"),
        )
        .await
}

/// The raw query string of `url`.
fn raw_query(url: &str) -> String {
    url::Url::parse(url)
        .expect("url")
        .query()
        .expect("query")
        .to_owned()
}

/// `GET <app>/me` as an API client: 200 signed in, 401 not.
async fn me(app: &str, browser: &mut Browser) -> StatusCode {
    browser
        .send(
            browser
                .http()
                .get(format!("{app}/me"))
                .header("accept", "application/json"),
        )
        .await
        .status()
}

struct Site {
    app: String,
    issuer: String,
    /// Another instance over the same session store.
    replica: WebAuth,
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
    let toml = format!(
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
    );
    let (_, replica) = serve(listener, &app, &toml).await;
    Site {
        app,
        issuer,
        replica,
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
    assert_eq!(me(&site.app, &mut browser).await, StatusCode::OK);
    let response = logout(&site.app, &mut browser).await;
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
    assert_eq!(me(&site.app, &mut browser).await, StatusCode::UNAUTHORIZED);
    let back = provider_logout(&mut browser, &end_session).await;
    assert_eq!(back, format!("{}/", site.app));

    // Back-channel logout: signed in at the app, then the provider's session ends
    // (at the provider, not through the app): the provider POSTs a logout token
    // naming the session's `sid`, and the app's session is gone.
    let (mut laptop, mut other) = (Browser::new(), Browser::new());
    sign_in(&site, &mut laptop, "alice", "alice-password").await;
    sign_in(&site, &mut other, "bob", "bob-password").await;
    assert_eq!(me(&site.app, &mut laptop).await, StatusCode::OK);
    let end_session = format!("{}/session/end?client_id=authchain-confidential", site.issuer);
    provider_logout(&mut laptop, &end_session).await;
    assert_eq!(me(&site.app, &mut laptop).await, StatusCode::UNAUTHORIZED);
    // Another user's session (another provider session) is untouched.
    assert_eq!(me(&site.app, &mut other).await, StatusCode::OK);

    // A subject's every session can be ended at once (a logout token without sid),
    // here by another replica over the same session store: the index is shared.
    let (mut one, mut two) = (Browser::new(), Browser::new());
    sign_in(&site, &mut one, "carol", "carol-password").await;
    sign_in(&site, &mut two, "carol", "carol-password").await;
    let ended = site
        .replica
        .end_provider_sessions("oidc", Some("carol"), None)
        .await
        .expect("index");
    assert_eq!(ended, 2);
    assert_eq!(me(&site.app, &mut one).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&site.app, &mut two).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&site.app, &mut other).await, StatusCode::OK);

    // A token that does not verify is refused with 400 and ends nothing.
    let refused = reqwest::Client::new()
        .post(format!("{}/auth/backchannel-logout/oidc", site.app))
        .form(&[("logout_token", "e30.e30.AAAA")])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(me(&site.app, &mut other).await, StatusCode::OK);
}

// SAML single logout against the pysaml2 IdP.

struct SamlSite {
    app: String,
    idp: String,
    sp_entity_id: String,
    web: WebAuth,
    _idp: peer::Peer,
}

/// An RSA key pair for the SP (signed LogoutRequests), made with the openssl
/// command line in the test's own directory.
fn sp_key_files() -> (String, String) {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("web-logout-sp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (key, cert) = (dir.join("sp.key"), dir.join("sp.crt"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=authchain test SP",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (needs the openssl command line)");
    assert!(status.success(), "openssl req failed");
    (key.display().to_string(), cert.display().to_string())
}

async fn saml_site() -> SamlSite {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = format!("http://{}", listener.local_addr().expect("addr"));
    let idp = peer::Peer::start("saml-idp", 3, "needs python3 with venv, PyPI and xmlsec1");
    let (idp_url, idp_metadata) = (idp.var("SAML_IDP_URL"), idp.var("SAML_IDP_METADATA"));
    let (key, cert) = sp_key_files();
    let sp_entity_id = format!("{app}/saml");
    let toml = format!(
        r#"
chain = ["saml"]

[modules.saml]
type = "saml"
sp_entity_id = "{sp_entity_id}"
acs_url = "{app}/auth/callback/saml"
idp_metadata_file = "{idp_metadata}"
sp_key = {{ file = "{key}" }}
sp_certificate_file = "{cert}"
provisioning = "create"
"#
    );
    let (web, _) = serve(listener, &app, &toml).await;
    let metadata = reqwest::get(format!("{app}/auth/metadata/saml"))
        .await
        .expect("metadata")
        .text()
        .await
        .expect("metadata");
    assert!(metadata.contains("SingleLogoutService"), "{metadata}");
    let registered = reqwest::Client::new()
        .post(format!("{idp_url}/admin/sp"))
        .body(metadata)
        .send()
        .await
        .expect("register the SP");
    assert_eq!(registered.status(), 204);
    SamlSite {
        app,
        idp: idp_url,
        sp_entity_id,
        web,
        _idp: idp,
    }
}

fn form_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("end") + start;
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

async fn saml_sign_in(site: &SamlSite, browser: &mut Browser, user: &str, password: &str) {
    let start = format!("{}/auth/login/saml", site.app);
    let response = browser
        .send(browser.http().get(&start).header("accept", HTML))
        .await;
    let at_idp = location(&response, &start);
    let page = browser
        .send(browser.http().get(&at_idp))
        .await
        .text()
        .await
        .expect("form");
    let key = page
        .split("name=key value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("key")
        .to_owned();
    let posted = browser
        .send(browser.http().post(format!("{}/sso/login", site.idp)).form(&[
            ("key", key.as_str()),
            ("username", user),
            ("password", password),
        ]))
        .await
        .text()
        .await
        .expect("auto-submit form");
    let action = posted
        .split("action=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("action")
        .to_owned();
    let saml_response = form_value(&posted, "SAMLResponse");
    let relay_state = form_value(&posted, "RelayState");
    let response = browser
        .send(browser.http().post(&action).header("accept", HTML).form(&[
            ("SAMLResponse", saml_response.as_str()),
            ("RelayState", relay_state.as_str()),
        ]))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = location(&response, &action);
    assert!(!to.contains("error="), "the SAML login failed: {to}");
}

async fn slo_log(site: &SamlSite) -> Vec<serde_json::Value> {
    reqwest::get(format!("{}/slo/log", site.idp))
        .await
        .expect("log")
        .json()
        .await
        .expect("json")
}

/// Where the IdP's `/slo/initiate` sends the browser (not followed).
async fn idp_initiated(site: &SamlSite, extra: &str) -> String {
    let url = format!(
        "{}/slo/initiate?sp={}&user=alice{extra}",
        site.idp,
        url::form_urlencoded::byte_serialize(site.sp_entity_id.as_bytes()).collect::<String>()
    );
    let response = Browser::new().send(Browser::new().http().get(&url)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{url}");
    location(&response, &url)
}

fn saml_rejection(
    result: Result<authchain::modules::saml::SingleLogout, authchain::AuthError>,
) -> authchain::modules::saml::SamlError {
    match result {
        Err(authchain::AuthError::Rejected {
            cause: authchain::ModuleError::Saml(err),
            ..
        }) => err,
        other => panic!("expected a SAML rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn saml_single_logout_both_ways() {
    use authchain::modules::SamlModule;
    use authchain::modules::saml::{SamlError, SignedPart, StatusCode as SamlStatus};

    let site = saml_site().await;

    // SP-initiated: the local session ends, a signed LogoutRequest for the login's
    // NameID and SessionIndex goes to the IdP, its signed LogoutResponse comes back
    // and is accepted once.
    let mut browser = Browser::new();
    saml_sign_in(&site, &mut browser, "alice", "alice-password").await;
    assert_eq!(me(&site.app, &mut browser).await, StatusCode::OK);
    let response = logout(&site.app, &mut browser).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to_idp = location(&response, &site.app);
    assert!(
        to_idp.starts_with(&format!("{}/slo/redirect?SAMLRequest=", site.idp)),
        "{to_idp}"
    );
    assert!(
        to_idp.contains("&SigAlg=") && to_idp.contains("&Signature="),
        "{to_idp}"
    );
    assert_eq!(me(&site.app, &mut browser).await, StatusCode::UNAUTHORIZED);
    let response = browser.send(browser.http().get(&to_idp)).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let back = location(&response, &to_idp);
    assert!(
        back.starts_with(&format!("{}/auth/callback/saml?SAMLResponse=", site.app)),
        "{back}"
    );
    let log = slo_log(&site).await;
    let request = &log[0];
    assert_eq!(request["kind"], "LogoutRequest");
    assert_eq!(request["name_id"], "alice");
    assert_eq!(request["signature"], "ok");
    assert_eq!(request["session_indexes"].as_array().map(Vec::len), Some(1));
    let done = browser
        .send(browser.http().get(&back).header("accept", HTML))
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done, &back), format!("{}/", site.app));
    // The same LogoutResponse again: its pending logout is used up.
    let saml = site.web.chain().module::<SamlModule>("saml").expect("module");
    let query = raw_query(&back);
    let again = saml
        .single_logout(&query, browser.cookie("authchain_flow_saml"))
        .await;
    assert!(
        matches!(
            again,
            Err(authchain::AuthError::Rejected {
                cause: authchain::ModuleError::Flow(_),
                ..
            })
        ),
        "{again:?}"
    );

    // A LogoutResponse whose status is not Success is refused as such.
    reqwest::Client::new()
        .post(format!("{}/admin/slo-status", site.idp))
        .body("urn:oasis:names:tc:SAML:2.0:status:Requester")
        .send()
        .await
        .expect("status");
    let redirect = saml
        .logout_request("alice", None, None)
        .await
        .expect("request")
        .expect("the IdP has single logout");
    let cookie = redirect.flow_cookie.as_ref().expect("flow cookie").set_cookie();
    let cookie = cookie
        .split(';')
        .next()
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.to_owned());
    let response = Browser::new()
        .send(Browser::new().http().get(&redirect.location))
        .await;
    let answer = location(&response, &redirect.location);
    let query = raw_query(&answer);
    let refused = saml_rejection(saml.single_logout(&query, cookie.as_deref()).await);
    assert!(
        matches!(
            refused,
            SamlError::Status {
                code: SamlStatus::Requester,
                ..
            }
        ),
        "{refused:?}"
    );
    reqwest::Client::new()
        .post(format!("{}/admin/slo-status", site.idp))
        .body("")
        .send()
        .await
        .expect("status");

    // IdP-initiated: a signed LogoutRequest for alice's SessionIndex ends her
    // session and is answered with a LogoutResponse (Success) to the IdP.
    let (mut laptop, mut other) = (Browser::new(), Browser::new());
    saml_sign_in(&site, &mut laptop, "alice", "alice-password").await;
    saml_sign_in(&site, &mut other, "bob", "bob-password").await;
    assert_eq!(me(&site.app, &mut laptop).await, StatusCode::OK);
    let at_sp = idp_initiated(&site, "&relay_state=after-logout").await;
    assert!(
        at_sp.starts_with(&format!("{}/auth/callback/saml?SAMLRequest=", site.app)),
        "{at_sp}"
    );
    let response = laptop
        .send(laptop.http().get(&at_sp).header("accept", HTML))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let answer = location(&response, &at_sp);
    assert!(
        answer.starts_with(&format!("{}/slo/redirect?SAMLResponse=", site.idp)),
        "{answer}"
    );
    assert!(
        answer.contains("RelayState=after-logout") && answer.contains("&Signature="),
        "{answer}"
    );
    let received = laptop.send(laptop.http().get(&answer)).await;
    assert_eq!(received.status(), StatusCode::OK);
    let log = slo_log(&site).await;
    let logged = log.last().expect("a LogoutResponse");
    assert_eq!(logged["kind"], "LogoutResponse");
    assert_eq!(logged["status"], "urn:oasis:names:tc:SAML:2.0:status:Success");
    assert_eq!(logged["signature"], "ok");
    assert!(logged["in_response_to"].is_string());
    assert_eq!(me(&site.app, &mut laptop).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&site.app, &mut other).await, StatusCode::OK);
    // The same LogoutRequest again is a replay.
    let query = raw_query(&at_sp);
    let replayed = saml.single_logout(&query, None).await;
    assert!(
        matches!(
            replayed,
            Err(authchain::AuthError::Rejected {
                cause: authchain::ModuleError::Replay(authchain::flow::ReplayError::Replayed),
                ..
            })
        ),
        "{replayed:?}"
    );

    // Must-reject: signed with another key, unsigned, tampered with.
    let rogue = idp_initiated(&site, "&signer=rogue").await;
    let query = raw_query(&rogue);
    let err = saml_rejection(saml.single_logout(&query, None).await);
    assert!(matches!(err, SamlError::Signature(_)), "{err:?}");
    let unsigned = idp_initiated(&site, "&unsigned=1").await;
    let query = raw_query(&unsigned);
    let err = saml_rejection(saml.single_logout(&query, None).await);
    assert!(
        matches!(err, SamlError::Unsigned(SignedPart::LogoutMessage)),
        "{err:?}"
    );
    let signed = idp_initiated(&site, "&relay_state=a").await;
    let query = url::Url::parse(&signed)
        .expect("url")
        .query()
        .expect("query")
        .replace("RelayState=a", "RelayState=b");
    let err = saml_rejection(saml.single_logout(&query, None).await);
    assert!(matches!(err, SamlError::Signature(_)), "{err:?}");
    assert_eq!(me(&site.app, &mut other).await, StatusCode::OK);
}
