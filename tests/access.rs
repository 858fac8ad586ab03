//! Access restriction (`allowed_groups`, `allowed_email_domains`, `required_roles`)
//! and the host's login policy hook, through a chain with a trusted-header module:
//! a refused identity is `AccessDenied` naming the rule, and gets no account.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authchain::account::{MemoryUserStore, NewAccount, Provisioning, RoleMapping, UserStore};
use authchain::chain::{AccessRule, LoginCandidate, LoginPolicy, ModuleSettings, PolicyDecision};
use authchain::config::{Config, Stores};
use authchain::modules::HeaderModule;
use authchain::net::ProxyTrust;
use authchain::{AuthChain, AuthError, AuthRequest, LoginResult, Principal};
use http::{HeaderMap, HeaderName, HeaderValue};

const PROXY: &str = "10.0.0.5";

fn proxy() -> HeaderModule {
    HeaderModule::builder("proxy")
        .trusted_proxies(ProxyTrust::new(["10.0.0.0/24".parse().unwrap()]))
        .email_header(Some("remote-email".into()))
        .build()
        .unwrap()
}

fn request(user: &str, groups: &str, email: Option<&str>) -> AuthRequest {
    let mut headers = HeaderMap::new();
    let mut set = |name: &str, value: &str| {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    };
    set("remote-user", user);
    if !groups.is_empty() {
        set("remote-groups", groups);
    }
    if let Some(email) = email {
        set("remote-email", email);
    }
    AuthRequest::new(common::peer(PROXY)).with_headers(headers)
}

fn chain(store: Arc<MemoryUserStore>, settings: ModuleSettings) -> AuthChain {
    AuthChain::builder(store)
        .module_with(proxy(), settings.provisioning(Provisioning::Create))
        .build()
        .unwrap()
}

fn principal(result: Result<LoginResult, AuthError>) -> Principal {
    match result {
        Ok(LoginResult::Authenticated(p)) => *p,
        other => panic!("expected a principal, got {other:?}"),
    }
}

/// Refused by `rule`, with no account for `login` afterwards.
async fn assert_denied(
    store: &MemoryUserStore,
    result: Result<LoginResult, AuthError>,
    login: &str,
    rule: AccessRule,
) {
    match result {
        Err(AuthError::AccessDenied { module, rule: found }) => {
            assert_eq!(module, "proxy");
            assert_eq!(found, rule, "{login}");
        }
        other => panic!("{login}: expected AccessDenied({rule:?}), got {other:?}"),
    }
    assert!(
        store.find_by_login(login, false).await.unwrap().is_none(),
        "{login}: an account was created"
    );
}

#[tokio::test]
async fn allowed_groups_admit_members_only_and_create_nothing_for_others() {
    let store = Arc::new(MemoryUserStore::new());
    let chain = chain(
        store.clone(),
        ModuleSettings::new()
            .roles(
                RoleMapping::builder()
                    .case_insensitive(true)
                    .match_dn(true)
                    .build()
                    .unwrap(),
            )
            .allowed_groups(["Staff"]),
    );
    // Matched like role-mapping groups: case-insensitively, and by a DN's first RDN.
    assert_eq!(
        principal(chain.login(&request("alice", "devs, staff", None)).await).login,
        "alice"
    );
    assert_eq!(
        principal(
            chain
                .login(&request("bob", "cn=STAFF,ou=groups,dc=example,dc=org", None))
                .await
        )
        .login,
        "bob"
    );
    let err = chain.login(&request("mallory", "devs", None)).await;
    assert_denied(&store, err, "mallory", AccessRule::AllowedGroups).await;
    let err = chain.login(&request("eve", "", None)).await;
    assert_denied(&store, err, "eve", AccessRule::AllowedGroups).await;
}

#[tokio::test]
async fn allowed_email_domains_are_exact() {
    let store = Arc::new(MemoryUserStore::new());
    let chain = chain(
        store.clone(),
        ModuleSettings::new().allowed_email_domains(["Example.org"]),
    );
    assert_eq!(
        principal(
            chain
                .login(&request("alice", "", Some("alice@EXAMPLE.org")))
                .await
        )
        .login,
        "alice"
    );
    for (login, email) in [
        ("sub", Some("sub@mail.example.org")),
        ("lookalike", Some("x@example.org.evil.test")),
        ("other", Some("other@evil.test")),
        ("none", None),
    ] {
        let err = chain.login(&request(login, "", email)).await;
        assert_denied(&store, err, login, AccessRule::AllowedEmailDomains).await;
    }
}

#[tokio::test]
async fn required_roles_come_from_the_mapping_or_the_account() {
    let store = Arc::new(MemoryUserStore::new());
    // `carol` was granted `operator` by hand and is linked to the proxy already.
    store
        .create_account(
            NewAccount::new("carol")
                .role("operator")
                .linked_to("proxy", "carol"),
        )
        .await
        .unwrap();
    let chain = chain(
        store.clone(),
        ModuleSettings::new()
            .roles(RoleMapping::builder().rule("ops", "operator").build().unwrap())
            .required_roles(["operator"]),
    );
    let dave = principal(chain.login(&request("dave", "ops", None)).await);
    assert!(dave.has_role("operator"));
    // No mapped role, but the account holds it.
    assert_eq!(
        principal(chain.login(&request("carol", "devs", None)).await).login,
        "carol"
    );
    // A first login without it is refused before the account is created.
    let err = chain.login(&request("erin", "devs", None)).await;
    assert_denied(&store, err, "erin", AccessRule::RequiredRoles).await;
    // An existing account without it is refused, and its last login is not written.
    store
        .create_account(NewAccount::new("frank").linked_to("proxy", "frank"))
        .await
        .unwrap();
    let err = chain.login(&request("frank", "devs", None)).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::AccessDenied {
                rule: AccessRule::RequiredRoles,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status_code(), 403);
    let frank = store.find_by_login("frank", false).await.unwrap().unwrap();
    assert!(frank.last_login.is_none());
}

/// Refuses `mallory`, renames contractors and strips their `admins` group.
struct Contractors {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl LoginPolicy for Contractors {
    async fn decide(&self, login: &mut LoginCandidate<'_>) -> PolicyDecision {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let identity = login.identity();
        if identity.login == "mallory" {
            return PolicyDecision::Refuse("blocked by the security team".into());
        }
        if identity
            .email
            .as_deref()
            .is_some_and(|e| e.ends_with("@contractor.example"))
        {
            let name = format!("ext-{}", identity.login);
            let groups = identity
                .groups
                .iter()
                .filter(|g| *g != "admins")
                .collect::<authchain::Groups>();
            login.set_login(name);
            login.set_groups(groups);
            login.set_email(None);
        }
        PolicyDecision::Allow
    }
}

#[tokio::test]
async fn a_login_policy_allows_refuses_and_rewrites() {
    let store = Arc::new(MemoryUserStore::new());
    let policy = Arc::new(Contractors {
        calls: AtomicUsize::new(0),
    });
    let chain = AuthChain::builder(store.clone())
        .module_with(
            proxy(),
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .roles(RoleMapping::builder().rule("admins", "admin").build().unwrap()),
        )
        .policy(policy.clone())
        .build()
        .unwrap();
    // Allowed unchanged.
    let alice = principal(
        chain
            .login(&request("alice", "admins", Some("alice@example.org")))
            .await,
    );
    assert!(alice.has_role("admin"));
    // Refused, with the host's reason, and no account.
    let err = chain.login(&request("mallory", "admins", None)).await;
    assert_denied(
        &store,
        err,
        "mallory",
        AccessRule::Policy("blocked by the security team".into()),
    )
    .await;
    // Rewritten: another login name, no admin group, no email; the subject stays.
    let bob = principal(
        chain
            .login(&request("bob", "admins, devs", Some("bob@contractor.example")))
            .await,
    );
    assert_eq!(bob.login, "ext-bob");
    assert!(!bob.has_role("admin"));
    assert_eq!(bob.email, None);
    assert_eq!(bob.identity.subject, "bob");
    assert_eq!(policy.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn access_rules_from_configuration_and_a_policy_for_a_configured_module() {
    let config = Config::from_toml(
        r#"
        chain = ["proxy"]
        trusted_proxies = ["10.0.0.0/24"]
        [modules.proxy]
        type = "header"
        provisioning = "create"
        email_header = "remote-email"
        allowed_groups = ["staff"]
        allowed_email_domains = ["example.org"]
        required_roles = ["member"]
        [[modules.proxy.role_mapping.rules]]
        group = "staff"
        role = "member"
        "#,
    )
    .unwrap();
    let store = Arc::new(MemoryUserStore::new());
    let policy = Arc::new(Contractors {
        calls: AtomicUsize::new(0),
    });
    let chain = config
        .chain_builder(Stores::new(store.clone()))
        .unwrap()
        .module_policy("proxy", policy.clone())
        .build()
        .unwrap();
    principal(
        chain
            .login(&request("alice", "staff", Some("alice@example.org")))
            .await,
    );
    let err = chain
        .login(&request("gina", "devs", Some("gina@example.org")))
        .await;
    assert_denied(&store, err, "gina", AccessRule::AllowedGroups).await;
    let err = chain
        .login(&request("hank", "staff", Some("hank@other.test")))
        .await;
    assert_denied(&store, err, "hank", AccessRule::AllowedEmailDomains).await;
    let err = chain
        .login(&request("mallory", "staff", Some("m@example.org")))
        .await;
    assert_denied(
        &store,
        err,
        "mallory",
        AccessRule::Policy("blocked by the security team".into()),
    )
    .await;
    assert_eq!(policy.calls.load(Ordering::SeqCst), 4);

    // A policy for a module the chain does not have is a configuration error.
    let err = config
        .chain_builder(Stores::new(store.clone()))
        .unwrap()
        .module_policy("nope", policy)
        .build()
        .err()
        .expect("refused");
    assert_eq!(err.key(), Some("modules.nope"));
    // An empty group is refused with its key.
    let err =
        Config::from_toml("chain = [\"p\"]\n[modules.p]\ntype = \"header\"\nallowed_groups = [\" \"]\n")
            .and_then(|c| c.build(Stores::new(Arc::new(MemoryUserStore::new()))).map(|_| ()))
            .unwrap_err();
    assert_eq!(err.key(), Some("modules.p.allowed_groups"));
}
