//! The provider presets of docs/modules/oidc.md, each read from its TOML keys and
//! run against the real provider issuing tokens of that provider's shape (the
//! users and the tenant provider of tests/peers/oidc-provider/server.mjs), with the
//! must-reject variants: a groups overage without fallback, a wrong `hd`, a wrong
//! tenant issuer.

use super::*;
use provider::TENANT;

/// A module table for the provider's confidential client, with the preset's keys.
/// `scopes` always asks for `groups` and `roles` too: the test provider releases
/// those claims by scope (Entra ID and Keycloak by their own configuration).
fn preset(issuer: &str, keys: &str) -> OidcModule {
    oidc_from_toml(&format!(
        r#"
        issuer = "{issuer}"
        client_id = "{CONFIDENTIAL_CLIENT}"
        client_secret = "{CONFIDENTIAL_SECRET}"
        redirect_uri = "{REDIRECT_URI}"
        scopes = ["openid", "profile", "email", "groups", "roles"]
        {keys}
        "#
    ))
    .expect("preset")
}

/// Logs `user` (password `<user>-password`) in through `module` (id `sso`).
async fn login(module: OidcModule, user: &str) -> Result<LoginResult, AuthError> {
    let (chain, _) = chain_of(Arc::new(module), Provisioning::Create);
    let redirect = start(&chain, "sso").await;
    let params = Browser::new()
        .login(&redirect.location, user, &format!("{user}-password"))
        .await;
    chain
        .login(&callback_request(params, redirect.flow_cookie_value()))
        .await
}

fn rejected_by(err: &AuthError) -> Option<&OAuthError> {
    match err {
        AuthError::Rejected {
            cause: ModuleError::OAuth(cause),
            ..
        } => Some(cause),
        _ => None,
    }
}

const ENTRA: &str = r#"
    login_claims = ["preferred_username", "email"]
    groups_claim = "groups"
"#;

#[tokio::test]
async fn entra_id_tenant_issuer_gives_group_ids_and_the_tenant() {
    let provider = Provider::shared();
    let p = principal(login(preset(&provider.tenant_issuer(), ENTRA), "entra-ada").await);
    assert_eq!(p.login, "ada@contoso.example");
    assert_eq!(
        p.identity.groups,
        [
            "6f1f9a3c-0e7d-4d38-9a51-2b8e4c7d1a01",
            "a2c4e6f8-1b3d-4f5a-8c7e-9d0b1a2c3e4f"
        ]
    );
    assert_eq!(p.identity.attributes.get("tid"), Some(&vec![TENANT.to_owned()]));
    assert_eq!(
        p.identity.attributes.get("iss"),
        Some(&vec![provider.tenant_issuer()])
    );
}

#[tokio::test]
async fn entra_id_multi_tenant_issuer_accepts_allowed_tenants_only() {
    let provider = Provider::shared();
    let multi = |tenants: &str| {
        preset(
            &provider.tenant_issuer(),
            &format!(
                "{ENTRA}\nissuer_template = \"{}/{{tenantid}}/v2.0\"\nallowed_tenants = [{tenants}]",
                provider.issuer
            ),
        )
    };
    let p = principal(login(multi(&format!("\"{TENANT}\"")), "entra-ada").await);
    assert_eq!(p.identity.attributes.get("tid"), Some(&vec![TENANT.to_owned()]));

    // A token of a tenant not allowed: its issuer is refused (at the callback's
    // RFC 9207 `iss`, before the token request).
    let err = login(multi("\"9188040d-6c67-4c5b-b112-36a304b66dad\""), "entra-ada")
        .await
        .unwrap_err();
    assert!(
        matches!(rejected_by(&err), Some(OAuthError::IssuerMismatch)),
        "{err:?}"
    );
}

#[tokio::test]
async fn entra_id_groups_overage_is_refused_without_a_fallback() {
    let provider = Provider::shared();
    for user in ["entra-overage", "entra-hasgroups"] {
        let err = login(preset(&provider.tenant_issuer(), ENTRA), user)
            .await
            .unwrap_err();
        assert!(
            matches!(rejected_by(&err), Some(OAuthError::GroupsOverage)),
            "{user}: {err:?}"
        );
    }
    // With the userinfo fallback, userinfo without groups is refused the same way.
    let fallback = format!("{ENTRA}\ngroups_overage = \"userinfo\"");
    let err = login(preset(&provider.tenant_issuer(), &fallback), "entra-hasgroups")
        .await
        .unwrap_err();
    assert!(
        matches!(rejected_by(&err), Some(OAuthError::GroupsOverage)),
        "{err:?}"
    );
}

#[tokio::test]
async fn entra_id_groups_overage_fallbacks_are_explicit() {
    let provider = Provider::shared();
    let userinfo = format!("{ENTRA}\ngroups_overage = \"userinfo\"");
    let p = principal(login(preset(&provider.tenant_issuer(), &userinfo), "entra-overage").await);
    assert_eq!(p.identity.groups, ["6f1f9a3c-0e7d-4d38-9a51-2b8e4c7d1a01"]);
    assert_eq!(p.identity.attributes.get("groups_overage"), None);

    let none = format!("{ENTRA}\ngroups_overage = \"no_groups\"");
    let p = principal(login(preset(&provider.tenant_issuer(), &none), "entra-overage").await);
    assert!(p.identity.groups.is_empty());
    assert_eq!(
        p.identity.attributes.get("groups_overage"),
        Some(&vec!["true".to_owned()])
    );
}

#[tokio::test]
async fn okta_groups_claim() {
    let provider = Provider::shared();
    let p = principal(login(preset(&provider.issuer, "groups_claim = \"groups\""), "okta-olga").await);
    assert_eq!(p.identity.groups, ["Everyone", "Engineering"]);
}

#[tokio::test]
async fn keycloak_realm_roles_by_nested_claim_path() {
    let provider = Provider::shared();
    let realm = preset(&provider.issuer, "groups_claim = \"realm_access.roles\"");
    let p = principal(login(realm, "kc-kim").await);
    assert_eq!(p.identity.groups, ["offline_access", "app-admin"]);
    let client = preset(
        &provider.issuer,
        "groups_claim = \"resource_access.intranet.roles\"",
    );
    let p = principal(login(client, "kc-kim").await);
    assert_eq!(p.identity.groups, ["editor"]);
}

#[tokio::test]
async fn google_workspace_hd_is_checked() {
    let provider = Provider::shared();
    let google = || {
        preset(
            &provider.issuer,
            r#"
            groups_claim = ""
            required_claims = { hd = ["example.org"] }
            extra_auth_params = { hd = "example.org" }
            "#,
        )
    };
    let p = principal(login(google(), "google-gina").await);
    assert_eq!(p.identity.email.as_deref(), Some("gina@example.org"));
    // Another Workspace domain, and a consumer account (no `hd`).
    for user in ["google-gail", "google-gus"] {
        let err = login(google(), user).await.unwrap_err();
        assert!(
            matches!(rejected_by(&err), Some(OAuthError::ClaimNotAllowed(claim)) if claim == "hd"),
            "{user}: {err:?}"
        );
    }
    let err = oidc_from_toml(
        r#"
        issuer = "https://accounts.google.com"
        client_id = "c"
        redirect_uri = "https://app.example.org/cb"
        required_claims = { hd = [] }
        "#,
    )
    .unwrap_err();
    assert_eq!(err.key(), Some("required_claims.hd"));
}
