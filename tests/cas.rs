#![cfg(feature = "cas")]
//! CAS logins against a real CAS server (PyPI django-mama-cas, started by
//! tests/peers/cas-server.sh): the whole redirect round trip with groups and roles,
//! CAS 2 and CAS 3 validation, reused tickets, tickets for another service, an
//! unreachable server, forged flows; and a hand-made malicious CAS server for the
//! answers a real one does not give (DTDs, garbage, hangs).

#[path = "common/browser.rs"]
mod browser;
mod common;
use common::state::peer;
#[path = "cas/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authchain::ConfigError;
use authchain::account::{MemoryUserStore, Provisioning, RoleMapping, UserStore};
use authchain::chain::ModuleSettings;
use authchain::config::{Config, Stores};
use authchain::flow::{FlowError, HttpError, SameSite};
use authchain::modules::LocalModule;
use authchain::modules::cas::response::{BadValue, MalformedResponse};
use authchain::modules::cas::{CasError, CasModule, CasSettings};
use authchain::settings::ModuleSettingsType;
use authchain::{AuthChain, AuthError, LoginResult, ModuleError, ModuleKind, Redirect, RequestError};
use browser::Browser;
use common::{callback_request, principal, start_request};
use server::{CasServer, OTHER_SERVICE, SERVICE, query};

fn roles() -> RoleMapping {
    RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "staff")
        .build()
        .expect("role mapping")
}

/// A module id and its settings, to adjust before building.
struct Cas {
    id: String,
    settings: CasSettings,
}

impl Cas {
    /// The module `id` for the CAS server at `server_url`, called back at `service_url`.
    fn new(id: &str, server_url: impl AsRef<str>, service_url: &str) -> Cas {
        Cas {
            id: id.to_owned(),
            settings: CasSettings::new(
                server_url.as_ref().parse().expect("server URL"),
                service_url.parse().expect("service URL"),
            ),
        }
    }

    /// The same with `change` applied to the settings.
    fn with(mut self, change: impl FnOnce(&mut CasSettings)) -> Cas {
        change(&mut self.settings);
        self
    }

    fn build(self) -> Result<CasModule, ConfigError> {
        CasModule::new(self.id, self.settings)
    }
}

fn module(id: &str, server: &CasServer) -> Cas {
    Cas::new(id, &server.url, SERVICE)
}

fn chain_of(modules: Vec<Arc<CasModule>>) -> (AuthChain, Arc<MemoryUserStore>) {
    let store = Arc::new(MemoryUserStore::new());
    let mut builder = AuthChain::builder(store.clone());
    for module in modules {
        let settings = ModuleSettings::new()
            .provisioning(Provisioning::Create)
            .roles(roles());
        builder = builder.shared_module(module, settings);
    }
    (builder.build().expect("chain"), store)
}

async fn start(chain: &AuthChain, module: &str, return_to: Option<&str>) -> Redirect {
    match chain.login(&start_request(module, return_to)).await {
        Ok(LoginResult::Redirect(redirect)) => redirect,
        other => panic!("expected a redirect, got {other:?}"),
    }
}

/// Start at `module` → the CAS login form → back at the service: the callback's
/// parameters and the flow cookie (the ticket is not redeemed yet).
async fn ticket_for(chain: &AuthChain, module: &str, user: &str) -> (BTreeMap<String, String>, String) {
    let redirect = start(chain, module, None).await;
    let back = server::login(
        &mut Browser::new(),
        &redirect.location,
        user,
        &format!("{user}-password"),
    )
    .await;
    (
        query(&back),
        redirect
            .flow_cookie_value()
            .map(str::to_owned)
            .expect("flow cookie"),
    )
}

/// The cause of a refusal by `module`.
fn rejection(result: Result<LoginResult, AuthError>, module: &str) -> ModuleError {
    match result {
        Err(AuthError::Rejected { module: m, cause }) if m == module => cause,
        other => panic!("expected a refusal by `{module}`, got {other:?}"),
    }
}

/// The CAS server refused the ticket with `code`.
fn refused(code: &str) -> ModuleError {
    ModuleError::Cas(CasError::Refused { code: code.into() })
}

#[tokio::test]
async fn login_end_to_end_with_groups_and_roles() {
    let server = CasServer::shared();
    let module = Arc::new(module("cas", server).build().expect("module"));
    let (chain, store) = chain_of(vec![module.clone()]);

    let redirect = start(&chain, "cas", Some("/after/login")).await;
    assert!(
        redirect
            .location
            .starts_with(&format!("{}/login?service=", server.url)),
        "{}",
        redirect.location
    );
    let service = query(&redirect.location)["service"].clone();
    let flow = query(&service)["flow"].clone();
    assert!(service.starts_with(&format!("{SERVICE}?flow=")), "{service}");
    assert_eq!(flow.len(), 43, "256-bit state");
    let cookie = redirect
        .flow_cookie_value()
        .map(str::to_owned)
        .expect("flow cookie");
    assert!(
        !redirect.location.contains(&cookie),
        "the cookie never travels in a URL"
    );
    // The CAS server sends the browser back by a GET: Lax, on the service URL's path
    // (plain http on loopback: not Secure).
    let attributes = &redirect.flow_cookie.as_ref().expect("flow cookie").attributes;
    assert_eq!(attributes.same_site, SameSite::Lax);
    assert_eq!(attributes.path, "/callback");
    assert!(!attributes.secure);

    let back = server::login(&mut Browser::new(), &redirect.location, "alice", "alice-password").await;
    assert!(
        back.starts_with(&service),
        "the server returns to the service: {back}"
    );
    let params = query(&back);
    assert!(params["ticket"].starts_with("ST-"), "{params:?}");
    assert_eq!(params["flow"], flow);

    let p = principal(chain.login(&callback_request(params, Some(&cookie))).await);
    assert_eq!(p.login, "alice");
    assert_eq!(p.identity.subject, "alice");
    assert_eq!(p.identity.provider, "cas");
    assert_eq!(p.email.as_deref(), Some("alice@example.org"));
    assert_eq!(p.identity.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(p.identity.groups, ["admins", "staff"]);
    assert!(p.has_role("admin") && p.has_role("staff"), "roles: {:?}", p.roles);
    assert_eq!(p.identity.attributes["full_name"], ["Alice Liddell"]);
    assert_eq!(p.identity.attributes["groups"], ["admins", "staff"]);
    assert_eq!(p.return_to.as_deref(), Some("/after/login"));
    assert_eq!(p.identity.return_to.as_deref(), Some("/after/login"));
    assert!(!p.identity.attributes.contains_key("return_to"));
    let linked = store.find_by_link("cas", "alice").await.unwrap().expect("linked");
    assert_eq!(linked.id, p.account_id);
    assert_eq!(
        module.requests().validation,
        1,
        "one validation request per login"
    );
    assert_eq!(module.requests().total(), 1);

    // Bob is in `staff` only; carol in no group: no roles.
    let (params, cookie) = ticket_for(&chain, "cas", "bob").await;
    let bob = principal(chain.login(&callback_request(params, Some(&cookie))).await);
    assert_eq!(
        (bob.identity.groups.iter().collect::<Vec<_>>(), bob.roles.len()),
        (vec!["staff"], 1)
    );
    assert!(bob.has_role("staff") && !bob.has_role("admin"));
    let (params, cookie) = ticket_for(&chain, "cas", "carol").await;
    let carol = principal(chain.login(&callback_request(params, Some(&cookie))).await);
    assert!(
        carol.identity.groups.is_empty() && carol.roles.is_empty(),
        "{carol:?}"
    );
}

#[tokio::test]
async fn allowed_groups_refuse_cas_users_outside_them_uncreated() {
    let server = CasServer::shared();
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .module_with(
            module("cas", server).build().expect("module"),
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .allowed_groups(["admins"]),
        )
        .build()
        .expect("chain");
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;
    assert_eq!(
        principal(chain.login(&callback_request(params, Some(&cookie))).await).login,
        "alice"
    );
    let (params, cookie) = ticket_for(&chain, "cas", "bob").await;
    let err = chain
        .login(&callback_request(params, Some(&cookie)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::AccessDenied { module, rule: authchain::chain::AccessRule::AllowedGroups } if module == "cas"),
        "{err:?}"
    );
    assert!(store.find_by_link("cas", "bob").await.unwrap().is_none());
}

#[tokio::test]
async fn the_flow_cookie_is_lax_on_the_service_path() {
    // No server is asked at start: any server URL will do.
    let module = Cas::new(
        "campus",
        "https://cas.example.edu/cas",
        "https://app.example.edu/login/cas/callback?tenant=1",
    )
    .build()
    .expect("module");
    let (chain, _) = chain_of(vec![Arc::new(module)]);
    let redirect = start(&chain, "campus", None).await;
    let cookie = redirect.flow_cookie.as_ref().expect("flow cookie");
    assert_eq!(cookie.name, "authchain_flow_campus");
    assert_eq!(cookie.attributes.same_site, SameSite::Lax);
    assert_eq!(cookie.attributes.path, "/login/cas/callback");
    assert!(cookie.attributes.secure);
}

#[tokio::test]
async fn cas2_validation_and_configured_attributes() {
    let server = CasServer::shared();
    let module = module("cas", server)
        .with(|s| {
            s.validate_path = "serviceValidate".into();
            s.login_attribute = Some("email".into());
            s.name_attribute = Some("short_name".into());
            s.groups_attribute = None;
        })
        .build()
        .expect("module");
    let (chain, _) = chain_of(vec![Arc::new(module)]);
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;
    let p = principal(chain.login(&callback_request(params, Some(&cookie))).await);
    assert_eq!(p.identity.subject, "alice", "the subject stays the CAS user");
    assert_eq!(p.login, "alice@example.org");
    assert_eq!(p.identity.display_name.as_deref(), Some("Alice"));
    assert!(
        p.identity.groups.is_empty() && p.roles.is_empty(),
        "no groups attribute"
    );
}

#[tokio::test]
async fn a_reused_ticket_is_rejected() {
    let server = CasServer::shared();
    let module = Arc::new(module("cas", server).build().unwrap());
    let (chain, _) = chain_of(vec![module.clone()]);
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;
    let request = callback_request(params.clone(), Some(&cookie));
    principal(chain.login(&request).await);

    // The same callback again: the flow is spent, the server is not even asked.
    assert_eq!(
        rejection(chain.login(&request).await, "cas"),
        ModuleError::Flow(FlowError::Replayed)
    );
    assert_eq!(module.requests().validation, 1);

    // The ticket with a fresh flow of the same browser: the server refuses it.
    let fresh = start(&chain, "cas", None).await;
    let mut replay = params;
    replay.insert(
        "flow".into(),
        query(&query(&fresh.location)["service"])["flow"].clone(),
    );
    let result = chain
        .login(&callback_request(replay, fresh.flow_cookie_value()))
        .await;
    assert_eq!(rejection(result, "cas"), refused("INVALID_TICKET"));
    assert_eq!(module.requests().validation, 2);
}

#[tokio::test]
async fn a_ticket_for_another_service_is_rejected() {
    let server = CasServer::shared();
    let ours = Arc::new(module("ours", server).build().unwrap());
    let other = Arc::new(Cas::new("other", &server.url, OTHER_SERVICE).build().unwrap());
    let (chain, _) = chain_of(vec![ours.clone(), other.clone()]);

    // A ticket issued for the other service, presented to ours with our own flow.
    let (params, _) = ticket_for(&chain, "other", "alice").await;
    let redirect = start(&chain, "ours", None).await;
    let mut forged = params;
    forged.insert(
        "flow".into(),
        query(&query(&redirect.location)["service"])["flow"].clone(),
    );
    let result = chain
        .login(&callback_request(forged, redirect.flow_cookie_value()))
        .await;
    assert_eq!(rejection(result, "ours"), refused("INVALID_SERVICE"));
    assert_eq!(ours.requests().validation, 1);
    assert_eq!(other.requests().validation, 0, "the other module abstained");
}

#[tokio::test]
async fn a_stopped_cas_server_is_unavailable() {
    let server = CasServer::start(); // its own: it is stopped below
    let module = Arc::new(module("cas", &server).build().unwrap());
    let (chain, _) = chain_of(vec![module.clone()]);
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;
    server.stop();
    match chain.login(&callback_request(params, Some(&cookie))).await {
        Err(
            err @ AuthError::Unavailable {
                cause:
                    ModuleError::Http(HttpError::Transport {
                        what: "ticket validation",
                        ..
                    }),
                ..
            },
        ) => {
            assert!(matches!(&err, AuthError::Unavailable { module, .. } if module == "cas"));
            let (text, debug) = (err.to_string(), format!("{err:?}"));
            assert!(
                !text.contains("ST-") && !debug.contains("ST-"),
                "the ticket is not in the error: {text} / {debug}"
            );
        }
        other => panic!("expected an unreachable validation endpoint, got {other:?}"),
    }
    // Starting a login does not need the server.
    start(&chain, "cas", None).await;
}

#[tokio::test]
async fn a_client_flooding_starts_pushes_out_only_its_own_logins() {
    let server = CasServer::shared();
    let module = Arc::new(
        module("cas", server)
            .with(|s| s.flow.max_flows_per_client = std::num::NonZeroUsize::new(4).unwrap())
            .build()
            .unwrap(),
    );
    let (chain, _) = chain_of(vec![module.clone()]);
    // The flooder's first start, then enough more to exceed its cap.
    let mut flood = common::start_request("cas", None);
    flood.peer = common::peer("198.51.100.66");
    let flood_start = |_| async {
        match chain.login(&flood).await {
            Ok(LoginResult::Redirect(redirect)) => redirect,
            other => panic!("expected a redirect, got {other:?}"),
        }
    };
    let first = flood_start(0).await;
    let mut last = first.clone();
    for i in 1..100 {
        last = flood_start(i).await;
    }
    // Another client's login, started after the flood, goes through.
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;
    let alice = principal(chain.login(&callback_request(params, Some(&cookie))).await);
    assert_eq!(alice.login, "alice");
    // The chain passed the flooder's address to the store: its first flow is
    // gone (nobody takes the callback), its last one is still there (the module
    // takes it and asks the CAS server about the ticket, which refuses it).
    let callback = |redirect: &Redirect| {
        let service = query(&redirect.location)["service"].clone();
        let mut params = BTreeMap::new();
        params.insert("ticket".to_owned(), "ST-0-never-issued".to_owned());
        params.insert("flow".to_owned(), query(&service)["flow"].clone());
        callback_request(params, redirect.flow_cookie_value())
    };
    let err = chain.login(&callback(&first)).await.unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
    assert!(matches!(
        chain.login(&callback(&last)).await,
        Err(AuthError::Rejected {
            cause: ModuleError::Cas(_),
            ..
        })
    ));
}

#[tokio::test]
async fn forged_foreign_and_expired_flows_are_rejected() {
    let server = CasServer::shared();
    // Long enough for the checks below on a loaded machine (a 2 s flow expired
    // before them once in CI), short enough to wait out at the end.
    let module = Arc::new(
        module("cas", server)
            .with(|s| s.flow.ttl = Duration::from_secs(6))
            .build()
            .unwrap(),
    );
    let (chain, _) = chain_of(vec![module.clone()]);
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;

    // A flow that was never issued, or no flow at all: nobody takes the callback.
    for (name, value) in [("flow", Some("never-issued")), ("flow", None)] {
        let mut forged = params.clone();
        match value {
            Some(v) => forged.insert(name.into(), v.into()),
            None => forged.remove(name),
        };
        let err = chain
            .login(&callback_request(forged, Some(&cookie)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::Unauthenticated { .. }),
            "{value:?}: {err:?}"
        );
    }
    // Another browser's cookie, or none: refused, and the flow stays usable.
    let other = start(&chain, "cas", None).await;
    for wrong in [other.flow_cookie_value(), None, Some("forged")] {
        let err = chain
            .login(&callback_request(params.clone(), wrong))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::Rejected {
                    cause: ModuleError::Flow(FlowError::CookieMismatch),
                    ..
                }
            ),
            "{wrong:?}: {err:?}"
        );
        assert_eq!(err.status_code(), 403);
    }
    // A malformed ticket with a genuine flow: refused before the server is asked.
    let (mut bad, bad_cookie) = ticket_for(&chain, "cas", "bob").await;
    bad.insert("ticket".into(), "ST-1 <script>".into());
    let err = chain
        .login(&callback_request(bad, Some(&bad_cookie)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            AuthError::InvalidRequest(RequestError::Module {
                module,
                cause: ModuleError::Cas(CasError::BadTicket),
            }) if module == "cas"
        ),
        "{err:?}"
    );
    assert_eq!(
        module.requests().validation,
        0,
        "none of these reached the CAS server"
    );

    principal(chain.login(&callback_request(params, Some(&cookie))).await);

    // Too slow: the flow expired.
    let (params, cookie) = ticket_for(&chain, "cas", "alice").await;
    tokio::time::sleep(Duration::from_millis(6100)).await;
    assert_eq!(
        rejection(chain.login(&callback_request(params, Some(&cookie))).await, "cas"),
        ModuleError::Flow(FlowError::Expired)
    );
    assert_eq!(module.requests().validation, 1);

    // An open redirect as return-to is refused at start.
    for bad in ["//evil.test", "https://evil.test/"] {
        let err = chain.login(&start_request("cas", Some(bad))).await.unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidRequest(RequestError::ReturnTo(_))),
            "{bad}: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A malicious CAS server (failure injection), on 127.0.0.1.

const CAS_NS: &str = "http://www.yale.edu/tp/cas";

struct Fake {
    base: String,
    /// The last validation request's query parameters.
    last: Arc<std::sync::Mutex<BTreeMap<String, String>>>,
    /// Requests for the external entity (must stay 0).
    entity_fetches: Arc<AtomicUsize>,
}

async fn fake_cas() -> Fake {
    use axum::extract::{Path, Query};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    let last = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let entity_fetches = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (seen, fetches, entity_url) = (last.clone(), entity_fetches.clone(), format!("{base}/entity"));
    let validate = move |Path(case): Path<String>, Query(q): Query<BTreeMap<String, String>>| {
        let seen = seen.clone();
        let entity_url = entity_url.clone();
        async move {
            *seen.lock().unwrap() = q;
            let ok = |user: &str, extra: &str| {
                format!(
                    "<cas:serviceResponse xmlns:cas='{CAS_NS}'><cas:authenticationSuccess><cas:user>{user}</cas:user>{extra}</cas:authenticationSuccess></cas:serviceResponse>"
                )
            };
            let fail = |code: &str| {
                format!(
                    "<cas:serviceResponse xmlns:cas='{CAS_NS}'><cas:authenticationFailure code='{code}'>no</cas:authenticationFailure></cas:serviceResponse>"
                )
            };
            let (status, body) = match case.as_str() {
                "success" => (
                    StatusCode::OK,
                    ok(
                        "mallory",
                        "<cas:attributes><cas:return_to>https://evil.test/</cas:return_to>\
                         <cas:groups>admins</cas:groups><cas:groups>admins</cas:groups></cas:attributes>",
                    ),
                ),
                "dtd" => (
                    StatusCode::OK,
                    format!(
                        "<!DOCTYPE r [<!ENTITY e SYSTEM '{entity_url}'>]>{}",
                        ok("&e;", "")
                    ),
                ),
                "garbage" => (StatusCode::OK, "yes\nalice\n".to_owned()),
                "html-error" => (
                    StatusCode::BAD_GATEWAY,
                    "<html><body>Bad Gateway</body></html>".to_owned(),
                ),
                "wrong-namespace" => (StatusCode::OK, ok("alice", "").replace(CAS_NS, "urn:not-cas")),
                "two-users" => (StatusCode::OK, ok("alice", "<cas:user>admin</cas:user>")),
                "empty-user" => (StatusCode::OK, ok("", "")),
                "huge" => (StatusCode::OK, ok("alice", &"<cas:x>y</cas:x>".repeat(200_000))),
                "success-on-500" => (StatusCode::INTERNAL_SERVER_ERROR, ok("alice", "")),
                "internal-error" => (StatusCode::OK, fail("INTERNAL_ERROR")),
                "invalid-ticket" => (StatusCode::OK, fail("INVALID_TICKET")),
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    (StatusCode::OK, ok("alice", ""))
                }
                _ => (StatusCode::NOT_FOUND, String::new()),
            };
            (status, [("content-type", "application/xml")], body).into_response()
        }
    };
    let app = axum::Router::new()
        .route("/{case}/p3/serviceValidate", axum::routing::get(validate))
        .route(
            "/entity",
            axum::routing::get(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                async { "alice" }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Fake {
        base,
        last,
        entity_fetches,
    }
}

/// A whole login against the fake server's `case`: start, then a callback with the
/// genuine flow and a made-up ticket.
async fn against(fake: &Fake, case: &str) -> (Result<LoginResult, AuthError>, String) {
    let module = Cas::new("cas", format!("{}/{case}", fake.base), SERVICE)
        .with(|s| {
            s.http.http_timeout = Duration::from_millis(500);
            s.http.max_response_bytes = 1024 * 1024;
        })
        .build()
        .unwrap();
    let (chain, _) = chain_of(vec![Arc::new(module)]);
    let redirect = start(&chain, "cas", None).await;
    let service = query(&redirect.location)["service"].clone();
    let params = BTreeMap::from([
        ("flow".to_owned(), query(&service)["flow"].clone()),
        ("ticket".to_owned(), "ST-1-fake".to_owned()),
    ]);
    let result = chain
        .login(&callback_request(params, redirect.flow_cookie_value()))
        .await;
    (result, service)
}

#[tokio::test]
async fn malicious_cas_answers_are_clear_errors() {
    let fake = fake_cas().await;

    // A well-formed success: validated with exactly the service URL of the flow;
    // a released `return_to` attribute does not pose as the flow's.
    let (result, service) = against(&fake, "success").await;
    let p = principal(result);
    assert_eq!(fake.last.lock().unwrap()["service"], service);
    assert_eq!(fake.last.lock().unwrap()["ticket"], "ST-1-fake");
    assert_eq!(p.identity.groups, ["admins"], "duplicates removed");
    assert_eq!(p.return_to, None);
    assert!(
        !p.identity.attributes.contains_key("return_to"),
        "{:?}",
        p.identity.attributes
    );

    fn malformed(m: MalformedResponse) -> ModuleError {
        ModuleError::Cas(CasError::Malformed(m))
    }
    fn status(status: u16) -> ModuleError {
        ModuleError::Http(HttpError::Status {
            what: "ticket validation",
            status,
        })
    }
    type Expected = fn(&ModuleError) -> bool;
    let unavailable: [(&str, Expected); 11] = [
        ("dtd", |c| *c == malformed(MalformedResponse::Dtd)),
        ("garbage", |c| {
            matches!(
                c,
                ModuleError::Cas(CasError::Malformed(MalformedResponse::NotWellFormed(_)))
            )
        }),
        // An error page with an error status: the status is the cause.
        ("html-error", |c| *c == status(502)),
        ("wrong-namespace", |c| {
            *c == malformed(MalformedResponse::NotServiceResponse)
        }),
        ("two-users", |c| *c == malformed(MalformedResponse::SeveralUsers)),
        ("empty-user", |c| {
            *c == malformed(MalformedResponse::BadUser(BadValue::Empty))
        }),
        ("huge", |c| {
            matches!(
                c,
                ModuleError::Http(HttpError::TooLarge {
                    what: "ticket validation",
                    ..
                })
            )
        }),
        ("success-on-500", |c| *c == status(500)),
        ("internal-error", |c| {
            *c == ModuleError::Cas(CasError::ServerFailed {
                code: "INTERNAL_ERROR".into(),
            })
        }),
        ("hang", |c| {
            *c == ModuleError::Http(HttpError::Timeout {
                what: "ticket validation",
            })
        }),
        ("missing", |c| *c == status(404)),
    ];
    for (case, expected) in unavailable {
        match against(&fake, case).await.0 {
            Err(AuthError::Unavailable { module, cause, .. }) => {
                assert_eq!(module, "cas");
                assert!(expected(&cause), "{case}: {cause:?}");
            }
            other => panic!("{case}: expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(
        fake.entity_fetches.load(Ordering::SeqCst),
        0,
        "no entity was fetched"
    );
    assert_eq!(
        rejection(against(&fake, "invalid-ticket").await.0, "cas"),
        refused("INVALID_TICKET")
    );
}

#[test]
fn configuration_is_checked_and_names_the_key() {
    // Read as `Config` reads a module's table, then built; keys are relative to
    // the table (`Config` prefixes `modules.<id>.`).
    let build = |text: &str| -> Result<CasModule, ConfigError> {
        let settings = CasSettings::from_table(toml::from_str(text).expect("toml"))?;
        CasModule::new("campus", settings)
    };
    let base = r#"
        server_url = "https://cas.example.edu/cas"
        service_url = "https://app.example.edu/login/cas/callback"
    "#;
    build(base).expect("a valid configuration");
    let full = r#"
        login_path = "/cas/login"
        validate_path = "serviceValidate"
        service_param = "TARGET"
        ticket_param = "SAMLart"
        flow_param = "authchain_flow"
        login_attribute = "uid"
        email_attribute = ""
        name_attribute = "cn"
        groups_attribute = "memberOf"
        flow_ttl = "PT5M"
        return_to_allowed = ["https://app.example.edu/"]
        http_timeout = "PT3S"
        max_response_bytes = 65536
    "#;
    build(&format!("{base}\n{full}")).expect("every key");
    let cases = [
        ("server_url = \"http://cas.example.edu/cas\"", "server_url"),
        ("server_url = \"https://cas.example.edu/cas?x=1\"", "server_url"),
        ("service_url = \"http://app.example.edu/cb\"", "service_url"),
        (
            "service_url = \"https://app.example.edu/cb?flow=1\"",
            "service_url",
        ),
        ("service_url = \"https://app.example.edu/cb#x\"", "service_url"),
        ("validate_path = \"p3/serviceValidate?x=1\"", "validate_path"),
        ("validate_path = \"\"", "validate_path"),
        ("login_path = \"//evil.test/login\"", "login_path"),
        ("ticket_param = \"\"", "ticket_param"),
        ("service_param = \"a b\"", "service_param"),
        ("flow_param = \"ticket\"", "flow_param"),
        (
            "return_to_allowed = [\"https://app.example.edu\"]",
            "return_to_allowed",
        ),
        ("http_timeout = \"PT0S\"", "http_timeout"),
        ("max_response_bytes = 10", "max_response_bytes"),
    ];
    for (extra, key) in cases {
        let text = format!(
            "{}\n{extra}",
            base.lines()
                .filter(|l| {
                    let field = extra.split(' ').next().unwrap();
                    !l.trim_start().starts_with(field)
                })
                .collect::<Vec<_>>()
                .join("\n")
        );
        let err = build(&text).unwrap_err();
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
    let err = build(&format!("{base}\nunknown_key = 1")).unwrap_err();
    assert_eq!(err.key(), Some("unknown_key"), "{err}");
    // http on a loopback host is fine (a local CAS server).
    let local = base
        .replace("https://cas.example.edu", "http://127.0.0.1:8443")
        .replace("https://app.example.edu", "http://127.0.0.1:3000");
    build(&local).expect("loopback http");

    // `type = "cas"` in a whole configuration.
    let text = format!("chain = [\"campus\"]\n[modules.campus]\ntype = \"cas\"\n{base}");
    let config = Config::from_toml(&text).expect("config");
    let chain = config
        .build(Stores::new(Arc::new(MemoryUserStore::new())))
        .expect("chain");
    let visible = chain.visible_modules();
    assert_eq!(
        (visible[0].id.as_str(), visible[0].kind),
        ("campus", ModuleKind::Redirect)
    );
    assert!(chain.module::<CasModule>("campus").is_some());
    assert!(chain.module::<LocalModule>("campus").is_none(), "wrong type");
    assert!(chain.module::<CasModule>("no-such-module").is_none());
    let bad = text.replace("https://cas.example.edu", "ftp://cas.example.edu");
    let result = Config::from_toml(&bad).and_then(|c| c.build(Stores::new(Arc::new(MemoryUserStore::new()))));
    let Err(err) = result else {
        panic!("an ftp server URL must be refused")
    };
    assert_eq!(err.key(), Some("modules.campus.server_url"));
}
