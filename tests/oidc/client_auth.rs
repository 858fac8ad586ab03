//! JWT client authentication (`private_key_jwt` RS256 / ES256, `client_secret_jwt`)
//! at the real provider, whose clients require each method; a wrong key or secret
//! is refused by the provider.

use super::*;
use authchain::flow::ClientAuthMethod;
use provider::{PKJWT_ES256_CLIENT, PKJWT_RS256_CLIENT, SECRET_JWT_CLIENT, SECRET_JWT_SECRET};

fn key_file(name: &str) -> Option<SecretSource> {
    Some(SecretSource::File(
        format!("{}/tests/oidc/keys/{name}", env!("CARGO_MANIFEST_DIR")).into(),
    ))
}

/// The OIDC client `client_id` authenticating with `private_key_jwt` under the key
/// in `key` (tests/oidc/keys).
fn key_client(provider: &Provider, client_id: &str, key: &str, kid: Option<&str>) -> OidcSettings {
    edit(
        OidcSettings::new(url(&provider.issuer), client(client_id, REDIRECT_URI)),
        |s| {
            s.client.token_endpoint_auth_method = Some(ClientAuthMethod::PrivateKeyJwt);
            s.client.client_private_key = key_file(key);
            s.client.client_key_id = kid.map(str::to_owned);
            s.scopes = SCOPES.map(String::from).to_vec();
        },
    )
}

fn secret_jwt_client(provider: &Provider, secret_text: &str) -> OidcSettings {
    edit(
        OidcSettings::new(url(&provider.issuer), client(SECRET_JWT_CLIENT, REDIRECT_URI)),
        |s| {
            s.client.token_endpoint_auth_method = Some(ClientAuthMethod::ClientSecretJwt);
            s.client.client_secret = secret(secret_text);
            s.scopes = SCOPES.map(String::from).to_vec();
        },
    )
}

async fn login_as_alice(settings: OidcSettings) -> Result<LoginResult, AuthError> {
    let (chain, _) = chain_of(Arc::new(oidc(settings)), Provisioning::Create);
    full_login(&chain, "alice", "alice-password").await
}

#[tokio::test]
async fn private_key_jwt_rs256_and_es256_log_in_where_the_provider_requires_them() {
    let provider = Provider::shared();
    for (client_id, key, kid, kty) in [
        (PKJWT_RS256_CLIENT, "client-rsa.pem", None, "RSA"),
        (PKJWT_ES256_CLIENT, "client-p256.pem", Some("client-p256"), "EC"),
    ] {
        let settings = key_client(provider, client_id, key, kid);
        let module = oidc(settings.clone());
        // The JWKS the host serves: the public key only, with kid, use and alg.
        let jwks: serde_json::Value =
            serde_json::from_str(&module.client_jwks().expect("a JWKS")).expect("JSON");
        let jwk = &jwks["keys"][0];
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            (jwk["kty"].as_str(), jwk["use"].as_str()),
            (Some(kty), Some("sig"))
        );
        assert!(
            jwk.get("d").is_none() && jwk.get("p").is_none(),
            "no private part: {jwk}"
        );
        if let Some(kid) = kid {
            assert_eq!(jwk["kid"], kid);
        } else {
            // The default kid is the RFC 7638 thumbprint, which the provider registered.
            assert_eq!(jwk["kid"].as_str().map(str::len), Some(43));
        }
        let p = principal(login_as_alice(settings).await);
        assert_eq!(p.login, "alice", "{client_id}");
        assert!(p.has_role("admin"), "{client_id}");
    }
    assert_eq!(oidc(confidential(provider)).client_jwks(), None);
}

#[tokio::test]
async fn the_provider_verifies_with_the_jwks_the_host_serves() {
    let provider = Provider::shared();
    // The host serves its module's client_jwks() (the module's client id does not
    // change the JWKS: the client registered below gets its id from the provider).
    let jwks = oidc(key_client(provider, "draft", "client-rsa.pem", None))
        .client_jwks()
        .expect("a JWKS");
    let app = axum::Router::new().route(
        "/client-jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { ([("content-type", "application/jwk-set+json")], jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let jwks_uri = format!("http://{}/client-jwks", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let registered: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/reg", provider.issuer))
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "RS256",
            "jwks_uri": jwks_uri,
        }))
        .send()
        .await
        .expect("registration")
        .json()
        .await
        .expect("registration answer");
    let client_id = registered["client_id"].as_str().expect("a client id");
    let p = principal(login_as_alice(key_client(provider, client_id, "client-rsa.pem", None)).await);
    assert_eq!(p.login, "alice");
    // Another key under that client id: the served JWKS does not hold it.
    let err = login_as_alice(key_client(provider, client_id, "client-rsa-other.pem", None))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Misconfigured(_)), "{err:?}");
}

#[tokio::test]
async fn a_wrong_client_key_is_refused_by_the_provider() {
    let provider = Provider::shared();
    for (client_id, key, kid) in [
        // A key the provider does not know, under the registered kid.
        (PKJWT_ES256_CLIENT, "client-rsa-other.pem", Some("client-p256")),
        // Another RSA key (its own thumbprint as kid).
        (PKJWT_RS256_CLIENT, "client-rsa-other.pem", None),
        // The right key under a kid the provider does not know.
        (PKJWT_ES256_CLIENT, "client-p256.pem", Some("not-registered")),
    ] {
        let err = login_as_alice(key_client(provider, client_id, key, kid))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::Misconfigured(_)),
            "{client_id} {key}: {err:?}"
        );
    }
}

#[tokio::test]
async fn client_secret_jwt_logs_in_and_a_wrong_secret_or_method_is_refused() {
    let provider = Provider::shared();
    let p = principal(login_as_alice(secret_jwt_client(provider, SECRET_JWT_SECRET)).await);
    assert_eq!(p.login, "alice");

    let wrong = login_as_alice(secret_jwt_client(
        provider,
        "another-secret-of-at-least-32-bytes!",
    ))
    .await
    .unwrap_err();
    assert!(matches!(wrong, AuthError::Misconfigured(_)), "{wrong:?}");

    // The right secret by another method: the provider requires client_secret_jwt.
    let basic = edit(secret_jwt_client(provider, SECRET_JWT_SECRET), |s| {
        s.client.token_endpoint_auth_method = Some(ClientAuthMethod::ClientSecretBasic)
    });
    let err = login_as_alice(basic).await.unwrap_err();
    assert!(matches!(err, AuthError::Misconfigured(_)), "{err:?}");
}

#[tokio::test]
async fn oauth2_module_authenticates_with_private_key_jwt() {
    let provider = Provider::shared();
    let oauth = edit(oauth2_settings(provider), |s| {
        s.client = client(PKJWT_ES256_CLIENT, REDIRECT_URI);
        s.client.client_private_key = key_file("client-p256.pem");
        s.client.client_key_id = Some("client-p256".into());
        s.login_paths = vec!["preferred_username".into()];
    });
    let module = Arc::new(OAuth2Module::new("gitlike", oauth).expect("module"));
    assert!(
        module
            .client_jwks()
            .is_some_and(|jwks| jwks.contains("\"crv\":\"P-256\""))
    );
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store)
        .shared_module(module.clone(), settings(Provisioning::Create))
        .build()
        .expect("chain");
    let redirect = redirect_of(&chain, &start_request("gitlike", None)).await;
    let params = Browser::new()
        .login(&redirect.location, "bob", "bob-password")
        .await;
    let request = callback_request(params, redirect.flow_cookie_value());
    assert_eq!(principal(chain.login(&request).await).login, "bob");
}

#[test]
fn jwt_client_authentication_settings_are_checked_and_name_the_key() {
    let key = format!("{}/tests/oidc/keys/client-rsa.pem", env!("CARGO_MANIFEST_DIR"));
    let base = r#"
        issuer = "https://sso.example.org/realms/corp"
        client_id = "intranet"
        redirect_uri = "https://app.example.org/cb"
    "#;
    let ok = oidc_from_toml(&format!(
        "{base}\nclient_private_key = {{ file = {key:?} }}\nclient_key_id = \"k1\"\nclient_assertion_lifetime = \"PT30S\""
    ))
    .expect("private_key_jwt is the default with a key");
    assert!(
        ok.client_jwks()
            .is_some_and(|j| j.contains("\"kid\":\"k1\"") && j.contains("RS256"))
    );
    oidc_from_toml(&format!(
        "{base}\ntoken_endpoint_auth_method = \"client_secret_jwt\"\nclient_secret = \"{}\"",
        "x".repeat(32)
    ))
    .expect("client_secret_jwt");
    for (extra, key) in [
        (
            "token_endpoint_auth_method = \"private_key_jwt\"",
            "client_private_key",
        ),
        (
            "token_endpoint_auth_method = \"client_secret_jwt\"\nclient_secret = \"short\"",
            "client_secret",
        ),
        (
            "token_endpoint_auth_method = \"client_secret_jwt\"",
            "client_secret",
        ),
        (
            &format!(
                "client_private_key = {{ file = {key:?} }}\ntoken_endpoint_auth_method = \"client_secret_post\"\nclient_secret = \"s\""
            ),
            "client_private_key",
        ),
        ("client_private_key = \"not a PEM key\"", "client_private_key"),
        ("client_key_id = \"k1\"\nclient_secret = \"s\"", "client_key_id"),
        (
            &format!("client_private_key = {{ file = {key:?} }}\nclient_key_id = \"\""),
            "client_key_id",
        ),
        (
            &format!("client_private_key = {{ file = {key:?} }}\nclient_assertion_lifetime = \"PT1H\""),
            "client_assertion_lifetime",
        ),
    ] {
        let err = oidc_from_toml(&format!("{base}\n{extra}")).unwrap_err();
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
}
