#![cfg(all(feature = "oidc", feature = "oauth2"))]
//! OpenID Connect and OAuth2 logins: the full code flow against a real provider
//! (npm `oidc-provider`, started by tests/peers/oidc-provider.sh), flow one-time use
//! and browser binding, provisioning, key rotation, and ID-token validation against a
//! small test-only token issuer.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "oidc/issuer.rs"]
mod issuer;
use common::state::peer;
#[path = "oidc/provider.rs"]
mod provider;
// private_key_jwt and client_secret_jwt at the real provider.
#[path = "oidc/client_auth.rs"]
mod client_auth;
// The provider presets of docs/modules/oidc.md (Entra ID, Okta, Keycloak, Google).
#[path = "oidc/presets.rs"]
mod presets;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authchain::account::{MemoryUserStore, Provisioning, RoleMapping, UserStore};
use authchain::chain::ModuleSettings;
use authchain::config::{Config, Stores};
use authchain::flow::{FlowError, HttpError, OAuthClientSettings, OAuthError, SameSite};
use authchain::modules::oidc::{Algorithm, OidcModule, OidcSettings, TokenError};
use authchain::modules::{OAuth2Module, OAuth2Settings};
use authchain::settings::{ModuleSettingsType, ProviderUrl};
use authchain::{
    AuthChain, AuthError, AuthRequest, ConfigError, Credentials, LoginResult, ModuleError, Prompt, Redirect,
    RequestError, SecretSource, StartError, StartLogin,
};
use common::{callback_request, principal, start_request};
use issuer::{JwksServer, TestKey, now, sign_hs256, unsigned};
use provider::{Browser, CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET, PUBLIC_CLIENT, Provider, REDIRECT_URI};
use serde_json::json;

const SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

fn roles() -> RoleMapping {
    RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "staff")
        .build()
        .expect("role mapping")
}

fn settings(provisioning: Provisioning) -> ModuleSettings {
    ModuleSettings::new().provisioning(provisioning).roles(roles())
}

fn url(text: impl AsRef<str>) -> ProviderUrl {
    text.as_ref().parse().expect("a valid URL")
}

fn client(id: &str, redirect_uri: &str) -> OAuthClientSettings {
    OAuthClientSettings::new(id.parse().expect("a client id"), url(redirect_uri))
}

fn secret(text: &str) -> Option<SecretSource> {
    Some(SecretSource::Inline(text.into()))
}

/// `value`, changed by `f` (settings are adjusted field by field).
fn edit<T>(mut value: T, f: impl FnOnce(&mut T)) -> T {
    f(&mut value);
    value
}

fn confidential(provider: &Provider) -> OidcSettings {
    edit(
        OidcSettings::new(url(&provider.issuer), client(CONFIDENTIAL_CLIENT, REDIRECT_URI)),
        |s| {
            s.client.client_secret = secret(CONFIDENTIAL_SECRET);
            s.scopes = SCOPES.map(String::from).to_vec();
        },
    )
}

fn public(provider: &Provider) -> OidcSettings {
    edit(
        OidcSettings::new(url(&provider.issuer), client(PUBLIC_CLIENT, REDIRECT_URI)),
        |s| s.scopes = SCOPES.map(String::from).to_vec(),
    )
}

fn oidc(settings: OidcSettings) -> OidcModule {
    OidcModule::new("oidc", settings).expect("module")
}

fn chain_of(module: Arc<OidcModule>, provisioning: Provisioning) -> (AuthChain, Arc<MemoryUserStore>) {
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .shared_module(module, settings(provisioning))
        .build()
        .expect("chain");
    (chain, store)
}

async fn start(chain: &AuthChain, module: &str) -> Redirect {
    match chain.login(&start_request(module, Some("/after/login"))).await {
        Ok(LoginResult::Redirect(redirect)) => redirect,
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

/// Start → the provider's login form → callback, through the chain.
async fn full_login(chain: &AuthChain, user: &str, password: &str) -> Result<LoginResult, AuthError> {
    let redirect = start(chain, "oidc").await;
    let params = Browser::new().login(&redirect.location, user, password).await;
    chain
        .login(&callback_request(params, redirect.flow_cookie_value()))
        .await
}

#[tokio::test]
async fn confidential_client_full_code_flow_maps_groups_to_roles() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, store) = chain_of(module.clone(), Provisioning::Create);

    let redirect = start(&chain, "oidc").await;
    let auth = query(&redirect.location);
    assert!(
        redirect
            .location
            .starts_with(&format!("{}/auth?", provider.issuer))
    );
    assert_eq!(auth["code_challenge_method"], "S256");
    assert_eq!(auth["code_challenge"].len(), 43);
    assert_eq!(auth["client_id"], CONFIDENTIAL_CLIENT);
    assert!(auth["scope"].split(' ').any(|s| s == "groups"));
    assert!(auth["state"].len() >= 43 && auth["nonce"].len() >= 43 && auth["state"] != auth["nonce"]);
    let cookie = redirect
        .flow_cookie_value()
        .map(str::to_owned)
        .expect("flow cookie");
    assert!(
        !redirect.location.contains(&cookie),
        "the cookie must not travel in the URL"
    );

    let params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    assert_eq!(
        params.get("iss"),
        Some(&provider.issuer),
        "the provider sends RFC 9207 iss"
    );
    let p = principal(chain.login(&callback_request(params, Some(&cookie))).await);
    assert_eq!(p.login, "alice");
    assert_eq!(p.identity.subject, "alice");
    assert_eq!(p.email.as_deref(), Some("alice@example.org"));
    assert_eq!(p.identity.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(p.identity.groups, ["admins", "staff"]);
    assert!(p.has_role("admin") && p.has_role("staff"), "roles: {:?}", p.roles);
    assert_eq!(p.return_to.as_deref(), Some("/after/login"));
    assert!(
        !p.identity.attributes.contains_key("return_to"),
        "return_to is not an attribute"
    );
    let linked = store
        .find_by_link("oidc", "alice")
        .await
        .expect("store")
        .expect("linked account");
    assert_eq!(linked.id, p.account_id);

    let after_first = module.requests();
    assert_eq!(
        (after_first.discovery, after_first.jwks, after_first.token),
        (1, 1, 1)
    );
    assert_eq!(after_first.userinfo, 0);

    // A second login costs exactly one HTTP request: the token request.
    let p2 = principal(full_login(&chain, "alice", "alice-password").await);
    assert_eq!(p2.account_id, p.account_id, "same subject, same account");
    let after_second = module.requests();
    assert_eq!(after_second.total() - after_first.total(), 1, "{after_second:?}");
    assert_eq!(after_second.token, 2);
}

#[tokio::test]
async fn access_rules_refuse_provider_users_outside_them_uncreated() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .shared_module(
            module,
            settings(Provisioning::Create)
                .allowed_groups(["admins"])
                .allowed_email_domains(["example.org"]),
        )
        .build()
        .expect("chain");
    assert_eq!(
        principal(full_login(&chain, "alice", "alice-password").await).login,
        "alice"
    );
    // bob is in `staff` only: the provider signed him in, the rule refuses him.
    let err = full_login(&chain, "bob", "bob-password").await.unwrap_err();
    assert!(
        matches!(&err, AuthError::AccessDenied { module, rule: authchain::chain::AccessRule::AllowedGroups } if module == "oidc"),
        "{err:?}"
    );
    assert!(store.find_by_link("oidc", "bob").await.unwrap().is_none());
}

#[tokio::test]
async fn public_client_with_pkce_and_userinfo() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(edit(public(provider), |s| s.userinfo = true)));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    let p = principal(full_login(&chain, "bob", "bob-password").await);
    assert_eq!(p.login, "bob");
    assert_eq!(p.role_names().collect::<Vec<_>>(), ["staff"]);
    let requests = module.requests();
    assert_eq!((requests.token, requests.userinfo), (1, 1), "{requests:?}");
}

#[tokio::test]
async fn prefetch_loads_discovery_and_keys_once_and_logins_reuse_them() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    module.prefetch().await.expect("prefetch");
    assert_eq!((module.requests().discovery, module.requests().jwks), (1, 1));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    principal(full_login(&chain, "bob", "bob-password").await);
    let requests = module.requests();
    assert_eq!(
        (requests.discovery, requests.jwks, requests.token),
        (1, 1, 1),
        "{requests:?}"
    );
}

#[tokio::test]
async fn wrong_client_secret_is_a_misconfiguration() {
    let provider = Provider::shared();
    let module = oidc(edit(confidential(provider), |s| {
        s.client.client_secret = secret("not-the-secret")
    }));
    let (chain, _) = chain_of(Arc::new(module), Provisioning::Create);
    let err = full_login(&chain, "alice", "alice-password").await.unwrap_err();
    assert!(matches!(err, AuthError::Misconfigured(_)), "{err:?}");
}

#[tokio::test]
async fn replayed_state_is_rejected() {
    let provider = Provider::shared();
    let (chain, _) = chain_of(Arc::new(oidc(confidential(provider))), Provisioning::Create);
    let redirect = start(&chain, "oidc").await;
    let params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    let request = callback_request(params, redirect.flow_cookie_value());
    principal(chain.login(&request).await);
    let err = chain.login(&request).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::Flow(FlowError::Replayed),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn state_from_another_browser_is_rejected() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    let victim = start(&chain, "oidc").await;
    let attacker = start(&chain, "oidc").await;
    let params = Browser::new()
        .login(&victim.location, "alice", "alice-password")
        .await;
    for cookie in [attacker.flow_cookie_value(), None, Some("forged")] {
        let err = chain
            .login(&callback_request(params.clone(), cookie))
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
            "{cookie:?}: {err:?}"
        );
        assert_eq!(err.status_code(), http::StatusCode::FORBIDDEN);
    }
    assert_eq!(
        module.requests().token,
        0,
        "a mismatched cookie never reaches the token endpoint"
    );
    // The mismatch did not burn the flow: the browser that started it finishes it.
    principal(
        chain
            .login(&callback_request(params, victim.flow_cookie_value()))
            .await,
    );
}

#[tokio::test]
async fn expired_flow_is_rejected() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(edit(confidential(provider), |s| {
        s.flow.ttl = Duration::from_millis(300)
    })));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    let redirect = start(&chain, "oidc").await;
    let params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = chain
        .login(&callback_request(params, redirect.flow_cookie_value()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::Flow(FlowError::Expired),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(module.requests().token, 0);
}

#[tokio::test]
async fn unknown_subject_is_forbidden_under_existing_and_created_under_create() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, store) = chain_of(module.clone(), Provisioning::Existing);
    let err = full_login(&chain, "carol", "carol-password").await.unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
    assert!(store.find_by_link("oidc", "carol").await.unwrap().is_none());

    let (chain, store) = chain_of(module, Provisioning::Create);
    let p = principal(full_login(&chain, "carol", "carol-password").await);
    assert_eq!(p.login, "carol");
    assert!(p.roles.is_empty(), "carol has no groups: {:?}", p.roles);
    assert!(store.find_by_link("oidc", "carol").await.unwrap().is_some());
}

#[tokio::test]
async fn key_rotation_at_the_provider_refetches_the_jwks_once() {
    let provider = Provider::start(); // its own: rotation must not disturb other tests
    let module = Arc::new(oidc(edit(confidential(&provider), |s| {
        s.jwks_min_refetch_interval = Duration::from_millis(200)
    })));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    principal(full_login(&chain, "alice", "alice-password").await);
    assert_eq!(module.requests().jwks, 1);

    provider.rotate_key().await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let p = principal(full_login(&chain, "bob", "bob-password").await);
    assert_eq!(p.login, "bob");
    let requests = module.requests();
    assert_eq!(
        requests.jwks, 2,
        "exactly one refetch for the new kid: {requests:?}"
    );
    assert_eq!(requests.discovery, 1);

    principal(full_login(&chain, "alice", "alice-password").await);
    assert_eq!(module.requests().jwks, 2, "the new key is cached");
}

#[tokio::test]
async fn provider_errors_become_clear_errors() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    for code in ["access_denied", "login_required", "temporarily_unavailable"] {
        let redirect = start(&chain, "oidc").await;
        let state = query(&redirect.location)["state"].clone();
        let params = BTreeMap::from([
            ("state".to_owned(), state),
            ("error".to_owned(), code.to_owned()),
            (
                "error_description".to_owned(),
                "User said \"no\"\n<script>".to_owned(),
            ),
        ]);
        let err = chain
            .login(&callback_request(params, redirect.flow_cookie_value()))
            .await
            .unwrap_err();
        let sanitized = Some("User said no<script>".to_owned());
        match (code, &err) {
            ("access_denied", AuthError::Forbidden { reason }) => {
                // The refusal shows the provider's text: only sanitized.
                assert!(
                    !reason.contains('\n') && !reason.contains('"'),
                    "sanitized: {reason}"
                );
            }
            (
                "login_required",
                AuthError::Rejected {
                    cause: ModuleError::OAuth(OAuthError::Provider { code: c, description }),
                    ..
                },
            )
            | (
                "temporarily_unavailable",
                AuthError::Unavailable {
                    cause: ModuleError::OAuth(OAuthError::Provider { code: c, description }),
                    ..
                },
            ) => {
                assert_eq!(c, code);
                assert_eq!(description, &sanitized, "sanitized");
            }
            _ => panic!("{code}: {err:?}"),
        }
    }
    assert_eq!(module.requests().token, 0);
}

#[tokio::test]
async fn callback_iss_of_another_issuer_is_rejected_before_the_token_request() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    let redirect = start(&chain, "oidc").await;
    let mut params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    params.insert("iss".into(), "https://evil.test".into());
    let err = chain
        .login(&callback_request(params.clone(), redirect.flow_cookie_value()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::OAuth(OAuthError::IssuerMismatch),
                ..
            }
        ),
        "{err:?}"
    );

    // The provider promises `iss`; a callback without it is refused too.
    let redirect = start(&chain, "oidc").await;
    let mut params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    params.remove("iss");
    let err = chain
        .login(&callback_request(params, redirect.flow_cookie_value()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::OAuth(OAuthError::MissingIssuer),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(module.requests().token, 0);
}

#[tokio::test]
async fn callbacks_that_are_not_ours_abstain() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, _) = chain_of(module, Provisioning::Create);
    for params in [
        BTreeMap::from([("ticket".to_owned(), "ST-1".to_owned())]),
        BTreeMap::from([
            ("state".to_owned(), "never-issued".to_owned()),
            ("code".to_owned(), "x".to_owned()),
        ]),
    ] {
        let err = chain
            .login(&callback_request(params, Some("c")))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn oauth2_access_rules_refuse_users_outside_the_allowed_groups() {
    let provider = Provider::shared();
    let module = OAuth2Module::new(
        "gitlike",
        edit(oauth2_settings(provider), |s| {
            s.login_paths = vec!["preferred_username".into()];
            s.groups_path = "groups".into();
        }),
    )
    .expect("module");
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .shared_module(
            Arc::new(module),
            settings(Provisioning::Create).allowed_groups(["admins"]),
        )
        .build()
        .unwrap();
    for (user, allowed) in [("alice", true), ("bob", false)] {
        let redirect = match chain.login(&start_request("gitlike", None)).await {
            Ok(LoginResult::Redirect(r)) => r,
            other => panic!("{other:?}"),
        };
        let params = Browser::new()
            .login(&redirect.location, user, &format!("{user}-password"))
            .await;
        let result = chain
            .login(&callback_request(params, redirect.flow_cookie_value()))
            .await;
        if allowed {
            assert_eq!(principal(result).login, user);
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    &err,
                    AuthError::AccessDenied {
                        rule: authchain::chain::AccessRule::AllowedGroups,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(store.find_by_login(user, false).await.unwrap().is_none());
        }
    }
}

#[tokio::test]
async fn oauth2_module_logs_in_through_the_userinfo_endpoint() {
    let provider = Provider::shared();
    let module = OAuth2Module::new(
        "gitlike",
        edit(oauth2_settings(provider), |s| {
            s.login_paths = vec!["preferred_username".into()];
            s.groups_path = "groups".into();
        }),
    )
    .expect("module");
    let module = Arc::new(module);
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store)
        .shared_module(module.clone(), settings(Provisioning::Create))
        .build()
        .unwrap();
    let redirect = match chain.login(&start_request("gitlike", None)).await {
        Ok(LoginResult::Redirect(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(query(&redirect.location)["code_challenge_method"], "S256");
    let params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    let request = callback_request(params, redirect.flow_cookie_value());
    let p = principal(chain.login(&request).await);
    assert_eq!(p.login, "alice");
    assert_eq!(p.identity.subject, "alice");
    assert!(p.has_role("admin"));
    let requests = module.requests();
    assert_eq!((requests.token, requests.userinfo, requests.total()), (1, 1, 2));
    let err = chain.login(&request).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::Flow(FlowError::Replayed),
                ..
            }
        ),
        "replay: {err:?}"
    );

    // RFC 9207: an `iss` naming another issuer is refused before the token request.
    let redirect = match chain.login(&start_request("gitlike", None)).await {
        Ok(LoginResult::Redirect(r)) => r,
        other => panic!("{other:?}"),
    };
    let mut params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    params.insert("iss".into(), "https://evil.test".into());
    let err = chain
        .login(&callback_request(params, redirect.flow_cookie_value()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                cause: ModuleError::OAuth(OAuthError::IssuerMismatch),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(module.requests().token, 1, "no token request for the mix-up");
}

// ---------------------------------------------------------------------------
// ID-token validation against the test-only issuer.

const ISSUER: &str = "https://issuer.test";
const CLIENT: &str = "client-1";
const NONCE: &str = "nonce-1";

/// Endpoints configured, no discovery: the JWKS from `jwks_uri`.
fn without_discovery(jwks_uri: impl AsRef<str>) -> OidcSettings {
    edit(
        OidcSettings::new(url(ISSUER), client(CLIENT, "https://app.test/callback")),
        |s| {
            s.discovery = false;
            s.authorization_endpoint = Some(url(format!("{ISSUER}/auth")));
            s.token_endpoint = Some(url(format!("{ISSUER}/token")));
            s.jwks_uri = Some(url(jwks_uri));
        },
    )
}

fn module_for(jwks: &JwksServer) -> OidcSettings {
    edit(without_discovery(jwks.url()), |s| {
        s.client.client_secret = secret("client-secret-shared-with-the-provider")
    })
}

fn claims() -> serde_json::Value {
    let t = now();
    json!({"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "exp": t + 300, "iat": t, "nonce": NONCE})
}

fn with(mut value: serde_json::Value, key: &str, new: serde_json::Value) -> serde_json::Value {
    value[key] = new;
    value
}

fn without(mut value: serde_json::Value, key: &str) -> serde_json::Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

#[tokio::test]
async fn id_token_checks() {
    let key = TestKey::load("rsa-a", "key-a");
    let other = TestKey::load("rsa-b", "key-a"); // same kid, other key: a forged signature
    let jwks = JwksServer::start(&[&key]).await;
    let module = oidc(module_for(&jwks));

    let good = module
        .validate_id_token(&key.sign(&claims()), Some(NONCE))
        .await
        .expect("a valid token");
    assert_eq!(good.subject(), "u-1");

    let t = now();
    let cases: Vec<(&str, String, TokenError)> = vec![
        ("bad signature", other.sign(&claims()), TokenError::BadSignature),
        (
            "wrong issuer",
            key.sign(&with(claims(), "iss", json!("https://evil.test"))),
            TokenError::WrongIssuer,
        ),
        (
            "wrong audience",
            key.sign(&with(claims(), "aud", json!("other-client"))),
            TokenError::WrongAudience,
        ),
        (
            "several audiences, no azp",
            key.sign(&with(claims(), "aud", json!([CLIENT, "other"]))),
            TokenError::WrongAudience,
        ),
        (
            "azp of another client",
            key.sign(&with(claims(), "azp", json!("other"))),
            TokenError::WrongAudience,
        ),
        (
            "expired",
            key.sign(&with(
                with(claims(), "exp", json!(t - 120)),
                "iat",
                json!(t - 600),
            )),
            TokenError::Expired,
        ),
        (
            "issued in the future",
            key.sign(&with(claims(), "iat", json!(t + 120))),
            TokenError::NotYetValid,
        ),
        (
            "not yet valid",
            key.sign(&with(claims(), "nbf", json!(t + 120))),
            TokenError::NotYetValid,
        ),
        (
            "nonce mismatch",
            key.sign(&with(claims(), "nonce", json!("another-login"))),
            TokenError::NonceMismatch,
        ),
        (
            "missing nonce",
            key.sign(&without(claims(), "nonce")),
            TokenError::NonceMismatch,
        ),
        (
            "missing exp",
            key.sign(&without(claims(), "exp")),
            TokenError::MissingClaim("exp"),
        ),
        (
            "missing sub",
            key.sign(&without(claims(), "sub")),
            TokenError::MissingClaim("sub"),
        ),
        (
            "alg none",
            unsigned(&claims()),
            TokenError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "alg none with a signature",
            format!("{}sig", unsigned(&claims())),
            TokenError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "HS256 with the client secret",
            sign_hs256(b"client-secret-shared-with-the-provider", &claims()),
            TokenError::AlgorithmNotAllowed("HS256".into()),
        ),
    ];
    for (name, token, want) in cases {
        match module.validate_id_token(&token, Some(NONCE)).await {
            Err(AuthError::Rejected {
                cause: ModuleError::Token(got),
                ..
            }) => assert_eq!(got, want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // `typ` other than JWT (an access token, a logout token), `cty` and `crit` are
    // refused too (openidconnect's JOSE header checks; `typ` was ignored before).
    let header = |extra: serde_json::Value| {
        let mut h = json!({"alg": "RS256", "kid": "key-a"});
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        key.sign_with_header(&h, &claims())
    };
    for (name, token) in [
        ("garbage", "a.b.c".to_owned()),
        ("encrypted (5 parts)", "a.b.c.d.e".to_owned()),
        ("empty", String::new()),
        ("typ at+jwt", header(json!({"typ": "at+jwt"}))),
        ("typ logout+jwt", header(json!({"typ": "logout+jwt"}))),
        ("cty JWT (nested)", header(json!({"cty": "JWT"}))),
        ("crit", header(json!({"crit": ["exp"], "exp": 1}))),
        (
            "standard claim of the wrong type",
            key.sign(&with(claims(), "email_verified", json!(5))),
        ),
    ] {
        let err = module.validate_id_token(&token, Some(NONCE)).await.unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::Rejected {
                    cause: ModuleError::Token(TokenError::Malformed(_)),
                    ..
                }
            ),
            "{name}: {err:?}"
        );
    }
    // `typ: JWT` in any case, no `typ` at all, no `kid` (one key), and the string
    // boolean some providers send are fine.
    for (name, token) in [
        ("typ jwt", header(json!({"typ": "jwt"}))),
        ("no typ", header(json!({}))),
        (
            "no kid",
            key.sign_with_header(&json!({"alg": "RS256"}), &claims()),
        ),
        (
            "email_verified \"true\"",
            key.sign(&with(claims(), "email_verified", json!("true"))),
        ),
    ] {
        module
            .validate_id_token(&token, Some(NONCE))
            .await
            .unwrap_or_else(|err| panic!("{name}: {err:?}"));
    }
    // Within the skew is fine; several audiences with our azp are fine.
    let skewed = key.sign(&with(with(claims(), "exp", json!(t - 30)), "iat", json!(t + 30)));
    module
        .validate_id_token(&skewed, Some(NONCE))
        .await
        .expect("within 60 s of skew");
    let azp = key.sign(&with(
        with(claims(), "aud", json!([CLIENT, "api"])),
        "azp",
        json!(CLIENT),
    ));
    module
        .validate_id_token(&azp, Some(NONCE))
        .await
        .expect("azp names us");
    assert_eq!(jwks.fetches(), 1, "the JWKS is fetched once and cached");
}

#[tokio::test]
async fn unsigned_tokens_only_with_the_insecure_option() {
    let key = TestKey::load("rsa-a", "key-a");
    let jwks = JwksServer::start(&[&key]).await;
    let module = oidc(edit(module_for(&jwks), |s| {
        s.insecure_allow_unsigned_id_tokens = true
    }));
    module
        .validate_id_token(&unsigned(&claims()), Some(NONCE))
        .await
        .expect("explicitly allowed");
    // Only a token whose header says `none` skips the signature check; its claims are
    // still checked. Every other token goes to the normal verifier.
    let other = TestKey::load("rsa-b", "key-a"); // same kid, other key: a forged signature
    let t = now();
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "unsigned, wrong issuer",
            unsigned(&with(claims(), "iss", json!("https://evil.test"))),
            TokenError::WrongIssuer,
        ),
        (
            "unsigned, wrong audience",
            unsigned(&with(claims(), "aud", json!("other-client"))),
            TokenError::WrongAudience,
        ),
        (
            "unsigned, expired",
            unsigned(&with(
                with(claims(), "exp", json!(t - 120)),
                "iat",
                json!(t - 600),
            )),
            TokenError::Expired,
        ),
        (
            "unsigned, nonce of another login",
            unsigned(&with(claims(), "nonce", json!("another-login"))),
            TokenError::NonceMismatch,
        ),
        (
            "`none` with a signature",
            format!("{}sig", unsigned(&claims())),
            TokenError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "RS256, forged signature",
            other.sign(&claims()),
            TokenError::BadSignature,
        ),
        (
            "HS256 with the client secret",
            sign_hs256(b"client-secret-shared-with-the-provider", &claims()),
            TokenError::AlgorithmNotAllowed("HS256".into()),
        ),
    ];
    for (name, token, want) in cases {
        match module.validate_id_token(&token, Some(NONCE)).await {
            Err(AuthError::Rejected {
                cause: ModuleError::Token(got),
                ..
            }) => assert_eq!(got, want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let signed = module
        .validate_id_token(&key.sign(&claims()), Some(NONCE))
        .await
        .expect("a signed token still verifies");
    assert_eq!(signed.subject(), "u-1");
    assert_eq!(jwks.fetches(), 1, "signed tokens use the JWKS");
    // `none` is not an algorithm: no `Algorithm` names it, and configuration
    // refuses the name.
    let table = toml::from_str(&format!(
        "issuer = \"{ISSUER}\"\nclient_id = \"{CLIENT}\"\nredirect_uri = \"https://app.test/cb\"\nid_token_algorithms = [\"none\"]"
    ))
    .unwrap();
    let err = OidcSettings::from_table(table).expect_err("`none` is not an algorithm");
    assert_eq!(err.key(), Some("id_token_algorithms[0]"));
    // No algorithm at all is refused (without the insecure option).
    let err = OidcModule::new("oidc", edit(module_for(&jwks), |s| s.id_token_algorithms.clear()))
        .expect_err("no algorithm");
    assert_eq!(err.key(), Some("id_token_algorithms"));
}

#[tokio::test]
async fn multi_tenant_issuer_template() {
    let key = TestKey::load("rsa-a", "key-a");
    let jwks = JwksServer::start(&[&key]).await;
    let settings = edit(
        OidcSettings::new(
            url("https://login.test/common/v2.0"),
            client(CLIENT, "https://app.test/cb"),
        ),
        |s| {
            s.issuer_template = Some("https://login.test/{tenantid}/v2.0".into());
            s.allowed_tenants = vec!["tenant-1".into(), "tenant-2".into()];
            s.discovery = false;
            s.authorization_endpoint = Some(url("https://login.test/common/oauth2/v2.0/authorize"));
            s.token_endpoint = Some(url("https://login.test/common/oauth2/v2.0/token"));
            s.jwks_uri = Some(url(jwks.url()));
        },
    );
    let module = OidcModule::new("entra", settings).expect("module");
    let token = |iss: &str, tid: Option<&str>| {
        let mut c = with(claims(), "iss", json!(iss));
        if let Some(tid) = tid {
            c["tid"] = json!(tid);
        }
        key.sign(&c)
    };
    let ok = module
        .validate_id_token(
            &token("https://login.test/tenant-2/v2.0", Some("tenant-2")),
            Some(NONCE),
        )
        .await
        .expect("an allowed tenant");
    assert_eq!(ok.get("tid"), Some(&json!("tenant-2")));
    for (iss, tid) in [
        ("https://login.test/tenant-3/v2.0", Some("tenant-3")), // not allowed
        ("https://login.test/tenant-1/v2.0", Some("tenant-2")), // iss of another tenant
        ("https://login.test/tenant-1/v2.0", None),             // no tid
        ("https://login.test/common/v2.0", Some("common")),     // not allowed either
        ("https://login.test/{tenantid}/v2.0", Some("{tenantid}")),
    ] {
        let err = module
            .validate_id_token(&token(iss, tid), Some(NONCE))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::Rejected {
                    cause: ModuleError::Token(TokenError::WrongIssuer),
                    ..
                }
            ),
            "{iss} {tid:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn es256_tokens_verify_only_when_allowed() {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = ec.public_key().as_ref();
    let rsa = TestKey::load("rsa-a", "key-a");
    let jwks = JwksServer::start(&[&rsa]).await;
    *jwks.jwks.lock().unwrap() = json!({"keys": [rsa.jwk(), {"kty": "EC", "crv": "P-256", "kid": "ec-1",
        "x": issuer::b64_bytes(&point[1..33]), "y": issuer::b64_bytes(&point[33..65])}]});
    let input = format!(
        "{}.{}",
        issuer::b64(&json!({"alg": "ES256", "kid": "ec-1"})),
        issuer::b64(&claims())
    );
    let sig = ec.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", issuer::b64_bytes(sig.as_ref()));

    let rs256_only = oidc(module_for(&jwks));
    let err = rs256_only
        .validate_id_token(&token, Some(NONCE))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            AuthError::Rejected {
                cause: ModuleError::Token(TokenError::AlgorithmNotAllowed(alg)),
                ..
            } if alg == "ES256"
        ),
        "{err:?}"
    );
    let both = oidc(edit(module_for(&jwks), |s| {
        s.id_token_algorithms = vec![Algorithm::RS256, Algorithm::ES256]
    }));
    both.validate_id_token(&token, Some(NONCE))
        .await
        .expect("ES256 allowed");
    both.validate_id_token(&rsa.sign(&claims()), Some(NONCE))
        .await
        .expect("RS256 still");
    // The EC key cannot verify an RS256 token claiming its kid.
    let confused = rsa.sign_with_header(&json!({"alg": "RS256", "kid": "ec-1"}), &claims());
    let err = both.validate_id_token(&confused, Some(NONCE)).await.unwrap_err();
    // No key fits; the JWKS was just fetched, so the refetch is rate limited.
    assert!(
        matches!(
            err,
            AuthError::Unavailable {
                cause: ModuleError::Token(TokenError::UnknownKey(_)),
                retry_after: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let a = TestKey::load("rsa-a", "key-a");
    let b = TestKey::load("rsa-b", "key-b");
    let jwks = JwksServer::start(&[&a]).await;
    let module = oidc(edit(module_for(&jwks), |s| {
        s.jwks_min_refetch_interval = Duration::from_secs(1)
    }));
    module
        .validate_id_token(&a.sign(&claims()), Some(NONCE))
        .await
        .unwrap();
    assert_eq!(jwks.fetches(), 1);

    // A kid nobody publishes: refetched at most once, then rate limited (a
    // temporary condition with a retry time, not a refusal).
    let stranger = b.sign(&claims());
    let mut limited = 0;
    for _ in 0..21 {
        match module.validate_id_token(&stranger, Some(NONCE)).await {
            Err(AuthError::Rejected {
                cause: ModuleError::Token(TokenError::UnknownKey(Some(kid))),
                ..
            }) => assert_eq!(kid, "key-b"),
            Err(AuthError::Unavailable {
                cause: ModuleError::Token(TokenError::UnknownKey(Some(kid))),
                retry_after: Some(wait),
                ..
            }) => {
                assert_eq!(kid, "key-b");
                assert!(wait <= Duration::from_secs(1), "{wait:?}");
                limited += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(limited >= 19, "rate limited: {limited}");
    assert!(jwks.fetches() <= 2, "rate limited: {}", jwks.fetches());

    // The provider rotates to key b: after the interval one refetch finds it.
    jwks.set_keys(&[&a, &b]);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let before = jwks.fetches();
    module
        .validate_id_token(&b.sign(&claims()), Some(NONCE))
        .await
        .expect("rotated key");
    module
        .validate_id_token(&b.sign(&claims()), Some(NONCE))
        .await
        .expect("cached");
    assert_eq!(jwks.fetches(), before + 1);
}

#[tokio::test]
async fn open_redirect_return_to_values_are_rejected() {
    let key = TestKey::load("rsa-a", "key-a");
    let jwks = JwksServer::start(&[&key]).await;
    let module = oidc(edit(module_for(&jwks), |s| {
        s.flow.return_to_allowed = vec!["https://app.test/".into()]
    }));
    let (chain, _) = chain_of(Arc::new(module), Provisioning::Create);
    for bad in [
        "//evil.test",
        "https://evil.test",
        "/\\evil.test",
        "javascript:alert(1)",
        "https://app.test.evil.test/",
        "http://app.test/",
    ] {
        let err = chain.login(&start_request("oidc", Some(bad))).await.unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidRequest(RequestError::ReturnTo(_))),
            "{bad}: {err:?}"
        );
    }
    for good in ["/", "/app/page?x=1", "https://app.test/dashboard"] {
        let result = chain.login(&start_request("oidc", Some(good))).await;
        assert!(
            matches!(result, Ok(LoginResult::Redirect(_))),
            "{good}: {result:?}"
        );
    }
}

/// A provider answering garbage, huge or slow responses makes the module
/// unavailable; nothing panics.
#[tokio::test]
async fn malicious_provider_responses_are_unavailable() {
    let app = axum::Router::new()
        .route(
            "/huge",
            axum::routing::get(|| async { "x".repeat(2 * 1024 * 1024) }),
        )
        .route(
            "/garbage",
            axum::routing::get(|| async { "{\"keys\": [{\"kty\": \"RSA\", \"n\": 1}" }),
        )
        .route(
            "/not-keys",
            axum::routing::get(|| async { axum::Json(json!({"keys": "nope"})) }),
        )
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "{}"
            }),
        )
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(|| async {
                axum::Json(json!({"issuer": "http://127.0.0.1:1", "jwks_uri": 5}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let key = TestKey::load("rsa-a", "key-a");
    let token = key.sign(&claims());
    type Expected = fn(&HttpError) -> bool;
    let cases: [(&str, Expected); 5] = [
        ("/huge", |e| matches!(e, HttpError::TooLarge { .. })),
        ("/garbage", |e| matches!(e, HttpError::Malformed { .. })),
        ("/not-keys", |e| {
            matches!(e, HttpError::Malformed { status: 200, .. })
        }),
        ("/slow", |e| matches!(e, HttpError::Timeout { .. })),
        ("/missing", |e| matches!(e, HttpError::Status { status: 404, .. })),
    ];
    for (path, expected) in cases {
        let module = oidc(edit(without_discovery(format!("{base}{path}")), |s| {
            s.http.http_timeout = Duration::from_millis(300)
        }));
        let err = module.validate_id_token(&token, Some(NONCE)).await.unwrap_err();
        match &err {
            AuthError::Unavailable {
                cause: ModuleError::Http(http),
                ..
            } => assert!(expected(http), "{path}: {err:?}"),
            _ => panic!("{path}: {err:?}"),
        }
    }
    // Discovery naming another issuer is refused.
    let module = oidc(OidcSettings::new(
        url(&base),
        client(CLIENT, "https://app.test/callback"),
    ));
    let (chain, _) = chain_of(Arc::new(module), Provisioning::Create);
    let err = chain.login(&start_request("oidc", None)).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Unavailable {
                cause: ModuleError::OAuth(OAuthError::DiscoveryIssuerMismatch),
                ..
            }
        ),
        "{err:?}"
    );
}

/// A module table read and built as `Config` does, without the `modules.<id>.`
/// prefix: errors name keys of the table.
fn oidc_from_toml(text: &str) -> Result<OidcModule, ConfigError> {
    let table: toml::Table = toml::from_str(text).expect("toml");
    OidcModule::new("sso", OidcSettings::from_table(table)?)
}

fn oauth2_from_toml(text: &str) -> Result<OAuth2Module, ConfigError> {
    let table: toml::Table = toml::from_str(text).expect("toml");
    OAuth2Module::new("github", OAuth2Settings::from_table(table)?)
}

#[test]
fn configuration_is_checked_and_names_the_key() {
    let base = r#"
        issuer = "https://sso.example.org/realms/corp"
        client_id = "intranet"
        client_secret = "s3cret"
        redirect_uri = "https://intranet.example.org/callback"
    "#;
    oidc_from_toml(base).expect("a valid configuration");
    let cases = [
        ("id_token_algorithms = [\"HS256\"]", "id_token_algorithms[0]"),
        ("id_token_algorithms = []", "id_token_algorithms"),
        ("clock_skew = \"PT1H\"", "clock_skew"),
        ("clock_skew = \"one minute\"", "clock_skew"),
        ("discovery = false", "authorization_endpoint"),
        (
            "issuer_template = \"https://login.example.org/common\"",
            "issuer_template",
        ),
        ("allowed_tenants = [\"t1\"]", "allowed_tenants"),
        (
            "token_endpoint = \"http://sso.example.org/token\"",
            "token_endpoint",
        ),
        ("discovery_url = \"not a url\"", "discovery_url"),
        ("scopes = [\"two words\"]", "scopes"),
        ("login_claims = [\"\"]", "login_claims"),
        ("metadata_refresh = \"PT0S\"", "metadata_refresh"),
        (
            "return_to_allowed = [\"https://app.example.org\"]",
            "return_to_allowed",
        ),
        ("flow_ttl = \"PT0S\"", "flow_ttl"),
        ("http_timeout = \"PT0S\"", "http_timeout"),
        ("max_response_bytes = 10", "max_response_bytes"),
        (
            "extra_auth_params = { state = \"fixed\" }",
            "extra_auth_params.state",
        ),
        (
            "token_endpoint_auth_method = \"tls_client_auth\"",
            "token_endpoint_auth_method",
        ),
        ("unknown_key = 1", "unknown_key"),
    ];
    for (extra, key) in cases {
        let err = oidc_from_toml(&format!("{base}\n{extra}")).unwrap_err();
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
    let http_issuer = base.replace("https://sso", "http://sso");
    let err = oidc_from_toml(&http_issuer).unwrap_err();
    assert_eq!(err.key(), Some("issuer"));
    for required in ["issuer", "client_id", "redirect_uri"] {
        let text: String = base
            .lines()
            .filter(|l| !l.trim_start().starts_with(required))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = oidc_from_toml(&text).unwrap_err();
        assert_eq!(err.key(), Some(required), "{err}");
    }
    let err = oidc_from_toml(&base.replace("\"intranet\"", "\"\"")).unwrap_err();
    assert_eq!(err.key(), Some("client_id"), "an empty client id");
    let err = oidc_from_toml(&base.replace("\"s3cret\"", "\"\"")).unwrap_err();
    assert_eq!(err.key(), Some("client_secret"), "an empty secret");

    let oauth2 = r#"
        authorization_endpoint = "https://github.com/login/oauth/authorize"
        token_endpoint = "https://github.com/login/oauth/access_token"
        userinfo_endpoint = "https://api.github.com/user"
        client_id = "Iv1.abc"
        redirect_uri = "https://app.example.org/cb"
        "#;
    oauth2_from_toml(oauth2).expect("a public client");
    for (extra, key) in [
        (
            "token_endpoint_auth_method = \"client_secret_post\"",
            "client_secret",
        ),
        ("subject_path = \"\"", "subject_path"),
        ("flow_ttl = \"PT0S\"", "flow_ttl"),
        ("max_response_bytes = 10", "max_response_bytes"),
        ("extra_auth_params = { nonce = \"n\" }", "extra_auth_params.nonce"),
        ("issuer_template = \"x\"", "issuer_template"),
    ] {
        let err = oauth2_from_toml(&format!("{oauth2}\n{extra}")).unwrap_err();
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
    let err =
        oauth2_from_toml(&oauth2.replace("https://api.github.com", "http://api.github.com")).unwrap_err();
    assert_eq!(err.key(), Some("userinfo_endpoint"));

    // Through `Config`, keys are prefixed with `modules.<id>.`, for errors found
    // reading the table and for those found building the module.
    let public = base.replace("client_secret = \"s3cret\"", "");
    let config = |extra: &str| {
        let table = format!("chain = [\"sso\"]\n[modules.sso]\ntype = \"oidc\"\n{public}\n{extra}");
        Config::from_toml(&table).and_then(|c| c.build(Stores::new(Arc::new(MemoryUserStore::new()))))
    };
    config("").expect("a valid configuration");
    for (extra, key) in [
        (
            "token_endpoint = \"http://sso.example.org/token\"",
            "modules.sso.token_endpoint",
        ),
        ("clock_skew = \"PT1H\"", "modules.sso.clock_skew"),
        (
            "extra_auth_params = { state = \"fixed\" }",
            "modules.sso.extra_auth_params.state",
        ),
        (
            "client_secret = { env = \"AUTHCHAIN_TEST_NOT_SET\" }",
            "modules.sso.client_secret",
        ),
    ] {
        let err = config(extra).err().expect(extra);
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Per-login start parameters, the flow cookie, return_to, key refetch limits and
// configured chains, against the real provider.

fn start_with(module: &str, start: StartLogin) -> AuthRequest {
    AuthRequest::new(common::peer("192.0.2.20"))
        .with_credentials(Credentials::Start(start))
        .select(module)
}

async fn redirect_of(chain: &AuthChain, request: &AuthRequest) -> Redirect {
    match chain.login(request).await {
        Ok(LoginResult::Redirect(redirect)) => redirect,
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn oauth2_settings(provider: &Provider) -> OAuth2Settings {
    edit(
        OAuth2Settings::new(
            url(format!("{}/auth", provider.issuer)),
            url(format!("{}/token", provider.issuer)),
            url(format!("{}/me", provider.issuer)),
            client(CONFIDENTIAL_CLIENT, REDIRECT_URI),
        ),
        |s| {
            s.client.client_secret = secret(CONFIDENTIAL_SECRET);
            s.scopes = SCOPES.map(String::from).to_vec();
            s.issuer = Some(provider.issuer.clone());
            s.subject_path = "sub".into();
        },
    )
}

#[tokio::test]
async fn login_hints_travel_in_the_authorization_url_of_oidc_and_oauth2() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(edit(confidential(provider), |s| {
        s.client
            .extra_auth_params
            .insert("acr_values".into(), "urn:mfa".into());
    })));
    let (oidc_chain, _) = chain_of(module, Provisioning::Create);
    let oauth2 = Arc::new(
        OAuth2Module::new(
            "gitlike",
            edit(oauth2_settings(provider), |s| {
                s.client
                    .extra_auth_params
                    .insert("allow_signup".into(), "false".into());
            }),
        )
        .unwrap(),
    );
    let store = Arc::new(MemoryUserStore::new());
    let oauth2_chain = AuthChain::builder(store)
        .shared_module(oauth2, settings(Provisioning::Create))
        .build()
        .unwrap();

    let hints = StartLogin::new()
        .return_to("/after/login")
        .login_hint("alice@example.org")
        .prompt(Prompt::SelectAccount)
        .domain_hint("example.org");
    for (chain, id, extra) in [
        (&oidc_chain, "oidc", ("acr_values", "urn:mfa")),
        (&oauth2_chain, "gitlike", ("allow_signup", "false")),
    ] {
        let redirect = redirect_of(chain, &start_with(id, hints.clone())).await;
        let auth = query(&redirect.location);
        assert_eq!(auth["login_hint"], "alice@example.org", "{id}");
        assert_eq!(auth["prompt"], "select_account", "{id}");
        assert_eq!(auth["domain_hint"], "example.org", "{id}");
        assert_eq!(auth[extra.0], extra.1, "{id}: configured extras still go");
        assert_eq!(auth["client_id"], CONFIDENTIAL_CLIENT, "{id}");
        let pairs = url::Url::parse(&redirect.location).unwrap();
        assert_eq!(
            pairs.query_pairs().filter(|(k, _)| k == "prompt").count(),
            1,
            "{id}: one prompt"
        );

        // Without hints, none of them is sent.
        let plain = redirect_of(chain, &start_with(id, StartLogin::new())).await;
        let auth = query(&plain.location);
        for name in ["login_hint", "prompt", "domain_hint"] {
            assert!(!auth.contains_key(name), "{id}: {name} in {}", plain.location);
        }
    }

    // The provider accepts a hinted request: prompt=login with a login_hint runs
    // the whole login.
    let redirect = redirect_of(
        &oidc_chain,
        &start_with(
            "oidc",
            StartLogin::new().login_hint("alice").prompt(Prompt::Login),
        ),
    )
    .await;
    let params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    let p = principal(
        oidc_chain
            .login(&callback_request(params, redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.login, "alice");
}

#[tokio::test]
async fn a_malformed_login_hint_is_refused_before_any_module_runs() {
    let provider = Provider::shared();
    let module = Arc::new(oidc(confidential(provider)));
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    for hint in ["", "alice\n@example.org", &"x".repeat(300)] {
        let err = chain
            .login(&start_with("oidc", StartLogin::new().login_hint(hint)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::InvalidRequest(RequestError::Start(StartError::LoginHint))
            ),
            "{hint:?}: {err:?}"
        );
    }
    let err = chain
        .login(&start_with(
            "oidc",
            StartLogin::new().domain_hint("a&prompt=none"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::Start(StartError::DomainHint))
        ),
        "{err:?}"
    );
    // The module never ran: not even discovery (fetched on its first start).
    assert_eq!(module.requests().total(), 0, "{:?}", module.requests());
}

#[test]
fn reserved_authorization_parameters_are_refused_in_both_modules() {
    const RESERVED: [&str; 14] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "login_hint",
        "prompt",
        "domain_hint",
        "request",
        "request_uri",
        "response_mode",
    ];
    let oidc_base = r#"
        issuer = "https://sso.example.org/realms/corp"
        client_id = "intranet"
        client_secret = "s3cret"
        redirect_uri = "https://intranet.example.org/callback"
    "#;
    let oauth2_base = r#"
        authorization_endpoint = "https://github.com/login/oauth/authorize"
        token_endpoint = "https://github.com/login/oauth/access_token"
        userinfo_endpoint = "https://api.github.com/user"
        client_id = "Iv1.abc"
        client_secret = "s3cret"
        redirect_uri = "https://app.example.org/cb"
    "#;
    let invalid_key = |err: ConfigError| match err {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("{other:?}"),
    };
    for name in RESERVED {
        let extra = format!("extra_auth_params = {{ {name} = \"x\", acr_values = \"y\" }}");
        let err = oidc_from_toml(&format!("{oidc_base}\n{extra}")).unwrap_err();
        assert_eq!(invalid_key(err), format!("extra_auth_params.{name}"));
        let err = oauth2_from_toml(&format!("{oauth2_base}\n{extra}")).unwrap_err();
        assert_eq!(invalid_key(err), format!("extra_auth_params.{name}"));

        // Settings built in code are refused too: the check is in the shared
        // client settings, which both modules build from.
        let mut client = client("c", "https://app.test/cb");
        client.extra_auth_params.insert(name.into(), "x".into());
        let err =
            OidcModule::new("b", OidcSettings::new(url("https://sso.test"), client.clone())).unwrap_err();
        assert_eq!(invalid_key(err), format!("extra_auth_params.{name}"));
        let oauth2 = OAuth2Settings::new(
            url("https://p.test/auth"),
            url("https://p.test/token"),
            url("https://p.test/me"),
            client,
        );
        let err = OAuth2Module::new("b", oauth2).unwrap_err();
        assert_eq!(invalid_key(err), format!("extra_auth_params.{name}"));
    }
    // Other parameters are fine.
    let extra = "extra_auth_params = { acr_values = \"urn:mfa\", ui_locales = \"de\" }";
    oidc_from_toml(&format!("{oidc_base}\n{extra}")).expect("acr_values is not reserved");
    oauth2_from_toml(&format!("{oauth2_base}\n{extra}")).expect("ui_locales is not reserved");
}

#[tokio::test]
async fn flow_cookie_attributes_and_return_to_of_an_oidc_login() {
    let provider = Provider::shared();
    let ttl = Duration::from_secs(120);
    let module = Arc::new(oidc(edit(confidential(provider), |s| s.flow.ttl = ttl)));
    let (chain, _) = chain_of(module, Provisioning::Create);

    let redirect = start(&chain, "oidc").await;
    let cookie = redirect.flow_cookie.clone().expect("a flow cookie");
    assert_eq!(cookie.name, authchain::flow::flow_cookie_name("oidc"));
    assert_eq!(cookie.attributes.same_site, SameSite::Lax);
    assert_eq!(
        cookie.attributes.path,
        url::Url::parse(REDIRECT_URI).unwrap().path()
    );
    assert!(
        !cookie.attributes.secure,
        "an http loopback redirect_uri gets no Secure"
    );
    assert_eq!(cookie.max_age, ttl);

    // The callback's principal carries the started return_to.
    let params = Browser::new()
        .login(&redirect.location, "alice", "alice-password")
        .await;
    let p = principal(chain.login(&callback_request(params, Some(&cookie.value))).await);
    assert_eq!(p.return_to.as_deref(), Some("/after/login"));
    assert_eq!(p.identity.return_to.as_deref(), Some("/after/login"));

    // No return_to at the start: none at the end.
    let redirect = redirect_of(&chain, &start_request("oidc", None)).await;
    let params = Browser::new()
        .login(&redirect.location, "bob", "bob-password")
        .await;
    let p = principal(
        chain
            .login(&callback_request(params, redirect.flow_cookie_value()))
            .await,
    );
    assert_eq!(p.return_to, None);
}

#[tokio::test]
async fn unknown_kid_right_after_a_refetch_is_unavailable_with_a_retry_time() {
    let provider = Provider::shared();
    let interval = Duration::from_millis(500);
    let module = oidc(edit(confidential(provider), |s| {
        s.jwks_min_refetch_interval = interval
    }));
    module.prefetch().await.expect("prefetch");
    assert_eq!(module.requests().jwks, 1);

    // A token signed by a key the provider never published.
    let stranger = TestKey::load("rsa-b", "kid-nobody-publishes");
    let t = now();
    let token = stranger.sign(&json!({"iss": provider.issuer, "aud": CONFIDENTIAL_CLIENT,
        "sub": "alice", "exp": t + 300, "iat": t, "nonce": NONCE}));

    // Keys are cached, none matches, the JWKS was fetched a moment ago: the
    // refetch is rate limited, and the answer is "retry shortly" (503), not 401.
    let limited = |err: &AuthError| match err {
        AuthError::Unavailable {
            cause: ModuleError::Token(TokenError::UnknownKey(kid)),
            retry_after: Some(wait),
            ..
        } => {
            assert_eq!(kid.as_deref(), Some("kid-nobody-publishes"));
            assert!(!wait.is_zero() && *wait <= interval, "{wait:?}");
            true
        }
        _ => false,
    };
    let err = module.validate_id_token(&token, Some(NONCE)).await.unwrap_err();
    assert!(limited(&err), "{err:?}");
    assert_eq!(err.status_code(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(err.retry_after().is_some());
    assert_eq!(module.requests().jwks, 1, "no refetch inside the interval");

    // After the interval the token does trigger a refetch; the provider still
    // has no such key, so that answer is a refusal...
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let err = module.validate_id_token(&token, Some(NONCE)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AuthError::Rejected {
                cause: ModuleError::Token(TokenError::UnknownKey(Some(kid))),
                ..
            } if kid == "kid-nobody-publishes"
        ),
        "{err:?}"
    );
    assert_eq!(module.requests().jwks, 2);
    // ...and right after that refetch the same token is "retry shortly" again.
    let err = module.validate_id_token(&token, Some(NONCE)).await.unwrap_err();
    assert!(limited(&err), "{err:?}");
    assert_eq!(module.requests().jwks, 2);
}

#[tokio::test]
async fn a_chain_from_toml_reaches_its_oidc_module_by_type() {
    let provider = Provider::shared();
    let text = format!(
        r#"
        chain = ["oidc"]

        [modules.oidc]
        type = "oidc"
        issuer = "{issuer}"
        client_id = "{CONFIDENTIAL_CLIENT}"
        client_secret = "{CONFIDENTIAL_SECRET}"
        redirect_uri = "{REDIRECT_URI}"
        scopes = ["openid", "profile", "email", "groups"]
        provisioning = "create"
        "#,
        issuer = provider.issuer,
    );
    let chain = Config::from_toml(&text)
        .expect("config")
        .build(Stores::new(Arc::new(MemoryUserStore::new())))
        .expect("chain");
    let module = chain.module::<OidcModule>("oidc").expect("the oidc module");
    module.prefetch().await.expect("prefetch through the chain");
    let requests = module.requests();
    assert_eq!((requests.discovery, requests.jwks), (1, 1), "{requests:?}");
    assert!(chain.module::<OAuth2Module>("oidc").is_none(), "wrong type");
    assert!(chain.module::<OidcModule>("nope").is_none(), "no such module");

    // Logins reuse what prefetch loaded.
    let p = principal(full_login(&chain, "alice", "alice-password").await);
    assert_eq!(p.login, "alice");
    let requests = chain.module::<OidcModule>("oidc").unwrap().requests();
    assert_eq!(
        (requests.discovery, requests.jwks, requests.token),
        (1, 1, 1),
        "{requests:?}"
    );
}

/// The test provider is an odd one on purpose: it advertises `ES256K` (which this
/// crate cannot verify) beside RS256 and publishes a secp256k1 key. Discovery and
/// the JWKS are still read, and logins still work with RS256.
#[tokio::test]
async fn a_provider_advertising_es256k_beside_rs256_still_works() {
    let provider = Provider::shared();
    let http = reqwest::Client::new();
    let discovery: serde_json::Value = http
        .get(format!("{}/.well-known/openid-configuration", provider.issuer))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
    let algs = discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .expect("algorithm list");
    assert!(
        algs.contains(&json!("ES256K")) && algs.contains(&json!("RS256")),
        "{algs:?}"
    );
    let jwks: serde_json::Value = http
        .get(discovery["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JWKS JSON");
    assert!(
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["crv"] == "secp256k1"),
        "{jwks}"
    );

    let module = Arc::new(oidc(confidential(provider)));
    module.prefetch().await.expect("discovery and JWKS are read");
    let (chain, _) = chain_of(module.clone(), Provisioning::Create);
    let p = principal(full_login(&chain, "alice", "alice-password").await);
    assert_eq!(p.login, "alice");
    let requests = module.requests();
    assert_eq!(
        (requests.discovery, requests.jwks, requests.token),
        (1, 1, 1),
        "{requests:?}"
    );
}

/// The real provider's token endpoint behind a proxy that can tamper with the answer.
async fn token_proxy(
    provider: &Provider,
    tamper: bool,
) -> (String, Arc<std::sync::Mutex<Option<serde_json::Value>>>) {
    let upstream = format!("{}/token", provider.issuer);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            let (upstream, record) = (upstream.clone(), record.clone());
            async move {
                let mut request = reqwest::Client::new()
                    .post(&upstream)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
                if let Some(auth) = headers.get("authorization") {
                    request = request.header("authorization", auth.to_str().unwrap());
                }
                let mut answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
                *record.lock().unwrap() = Some(answer.clone());
                if tamper {
                    answer["access_token"] = json!("an-access-token-of-another-session");
                }
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn at_hash_of_the_real_provider_is_checked_and_a_swapped_access_token_is_refused() {
    let provider = Provider::shared();
    for tamper in [false, true] {
        let (token_endpoint, seen) = token_proxy(provider, tamper).await;
        let module = Arc::new(oidc(edit(confidential(provider), |s| {
            s.token_endpoint = Some(url(&token_endpoint))
        })));
        let (chain, _) = chain_of(module, Provisioning::Create);
        let result = full_login(&chain, "alice", "alice-password").await;
        // The provider really issued an at_hash.
        let answer = seen.lock().unwrap().clone().expect("a token answer");
        let id_token = answer["id_token"].as_str().expect("an ID token");
        let payload = id_token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &<base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode_vec(payload).unwrap(),
        )
        .unwrap();
        assert!(
            claims["at_hash"].is_string(),
            "the provider issues at_hash: {claims}"
        );
        if tamper {
            match result {
                Err(AuthError::Rejected {
                    cause: ModuleError::Token(TokenError::AtHashMismatch),
                    ..
                }) => {}
                other => panic!("expected an at_hash mismatch, got {other:?}"),
            }
        } else {
            assert_eq!(principal(result).login, "alice");
        }
    }
}

// Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.6).

fn logout_claims() -> serde_json::Value {
    let t = now();
    json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "u-1", "sid": "sid-1", "iat": t, "exp": t + 120,
        "jti": format!("jti-{t}-{}", rand_suffix()),
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    })
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn rejected_token(result: Result<authchain::modules::oidc::LogoutToken, AuthError>) -> TokenError {
    match result {
        Err(AuthError::Rejected {
            cause: ModuleError::Token(err),
            ..
        }) => err,
        other => panic!("expected a token rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn logout_token_checks() {
    let key = TestKey::load("rsa-a", "key-a");
    let other = TestKey::load("rsa-b", "key-a");
    let jwks = JwksServer::start(&[&key]).await;
    let module = oidc(module_for(&jwks));

    let good = module
        .verify_logout_token(&key.sign(&logout_claims()))
        .await
        .expect("a valid logout token");
    assert_eq!(good.subject.as_deref(), Some("u-1"));
    assert_eq!(good.session_id.as_deref(), Some("sid-1"));
    // `sub` alone names every session of the subject.
    let by_subject = module
        .verify_logout_token(&key.sign(&without(logout_claims(), "sid")))
        .await
        .expect("sub only");
    assert_eq!(
        (by_subject.subject.as_deref(), by_subject.session_id),
        (Some("u-1"), None)
    );

    let t = now();
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "bad signature",
            other.sign(&logout_claims()),
            TokenError::BadSignature,
        ),
        (
            "missing events",
            key.sign(&without(logout_claims(), "events")),
            TokenError::MissingClaim("events"),
        ),
        (
            "another event",
            key.sign(&with(
                logout_claims(),
                "events",
                json!({"https://other.test/event": {}}),
            )),
            TokenError::MissingClaim("events"),
        ),
        (
            "nonce present (an ID token)",
            key.sign(&with(logout_claims(), "nonce", json!(NONCE))),
            TokenError::UnexpectedNonce,
        ),
        (
            "wrong audience",
            key.sign(&with(logout_claims(), "aud", json!("other-client"))),
            TokenError::WrongAudience,
        ),
        (
            "wrong issuer",
            key.sign(&with(logout_claims(), "iss", json!("https://evil.test"))),
            TokenError::WrongIssuer,
        ),
        (
            "issued in the future",
            key.sign(&with(logout_claims(), "iat", json!(t + 600))),
            TokenError::NotYetValid,
        ),
        (
            "too old",
            key.sign(&with(without(logout_claims(), "exp"), "iat", json!(t - 3600))),
            TokenError::Expired,
        ),
        (
            "neither sid nor sub",
            key.sign(&without(without(logout_claims(), "sid"), "sub")),
            TokenError::MissingClaim("sid"),
        ),
        (
            "no jti",
            key.sign(&without(logout_claims(), "jti")),
            TokenError::MissingClaim("jti"),
        ),
        (
            "HS256",
            sign_hs256(b"client-secret-shared-with-the-provider", &logout_claims()),
            TokenError::AlgorithmNotAllowed("HS256".into()),
        ),
    ];
    for (what, token, expected) in cases {
        let err = rejected_token(module.verify_logout_token(&token).await);
        assert_eq!(err, expected, "{what}");
    }

    // A jti is accepted once: the same token again is a replay.
    let token = key.sign(&logout_claims());
    module.verify_logout_token(&token).await.expect("first use");
    let again = module.verify_logout_token(&token).await;
    assert!(
        matches!(
            again,
            Err(AuthError::Rejected {
                cause: ModuleError::Replay(authchain::flow::ReplayError::Replayed),
                ..
            })
        ),
        "{again:?}"
    );
}
