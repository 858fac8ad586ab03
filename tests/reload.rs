//! Reloading a configured chain: a reload that adds a module keeps pending
//! redirect logins and throttle counters; a broken one is refused and the old
//! chain keeps serving.

use std::collections::BTreeMap;
use std::sync::Arc;

use authchain::account::{MemoryUserStore, NewAccount, PasswordPolicy, UserStore};
use authchain::config::{Config, Stores};
use authchain::flow::FlowError;
use authchain::reload::ReloadableChain;
use authchain::{AuthError, AuthRequest, ConfigError, Credentials, LoginResult, ModuleError, StartLogin};

const IDP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/fixtures/saml/idp-metadata.xml"
);

fn config(extra_module: bool) -> Config {
    let mut chain = vec!["\"local\"", "\"corp-saml\""];
    if extra_module {
        chain.push("\"second\"");
    }
    let mut text = format!(
        r#"
chain = [{}]
[throttle]
max_attempts = 2
window = "PT15M"
[modules.local]
type = "local"
[modules.corp-saml]
type = "saml"
sp_entity_id = "https://app.example.org/saml"
acs_url = "https://app.example.org/saml/acs"
idp_metadata_file = "{IDP}"
"#,
        chain.join(", ")
    );
    if extra_module {
        text.push_str("[modules.second]\ntype = \"local\"\ndescription = \"Second\"\n");
    }
    Config::from_toml(&text).expect("config")
}

async fn users() -> Arc<dyn UserStore> {
    let store = MemoryUserStore::new();
    let hash = PasswordPolicy::owasp().hash("right").unwrap();
    store
        .create_account(NewAccount::new("alice").password_hash(hash))
        .await
        .unwrap();
    Arc::new(store)
}

fn peer() -> std::net::SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

/// Starts a SAML login: its RelayState (the flow's state).
async fn start_saml(chain: &ReloadableChain) -> String {
    let start = AuthRequest::new(peer())
        .with_credentials(Credentials::Start(StartLogin::new()))
        .select("corp-saml");
    let Ok(LoginResult::Redirect(redirect)) = chain.login(&start).await else {
        panic!("a redirect");
    };
    url::Url::parse(&redirect.location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .expect("RelayState")
}

/// A callback for the flow `state` from another browser (a wrong flow cookie):
/// refused as a cookie mismatch when the flow is known.
fn foreign_callback(state: &str) -> AuthRequest {
    let mut params = BTreeMap::new();
    params.insert("SAMLResponse".to_owned(), "bm90IFNBTUw=".to_owned());
    params.insert("RelayState".to_owned(), state.to_owned());
    let mut request = AuthRequest::new(peer())
        .with_credentials(Credentials::Callback { params })
        .select("corp-saml");
    request.flow_cookie = Some("another browser".into());
    request
}

#[tokio::test]
async fn a_reload_adding_a_module_keeps_pending_logins_and_throttle_counters() {
    let chain = ReloadableChain::new(&config(false), Stores::new(users().await)).unwrap();
    let state = start_saml(&chain).await;
    let password = |pw: &str| {
        AuthRequest::new(peer())
            .with_password("alice", pw)
            .select("local")
    };
    for _ in 0..2 {
        assert!(matches!(
            chain.login(&password("wrong")).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    let before = chain.current();

    chain.reload(&config(true)).expect("the new configuration builds");
    let ids = |c: &authchain::AuthChain| c.visible_modules().into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(&chain.current()), ["local", "corp-saml", "second"]);
    // A request holding the old chain finishes on it.
    assert_eq!(ids(&before), ["local", "corp-saml"]);

    // The throttle counters survived: the right password is still throttled.
    assert!(matches!(
        chain.login(&password("right")).await,
        Err(AuthError::Throttled { .. })
    ));
    // The pending login survived: the new chain knows its flow.
    let err = chain.login(&foreign_callback(&state)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AuthError::Rejected {
                cause: ModuleError::Flow(FlowError::CookieMismatch),
                ..
            }
        ),
        "{err:?}"
    );

    // Control: a chain that did not start the flow does not know it.
    let fresh = ReloadableChain::new(&config(false), Stores::new(users().await)).unwrap();
    let err = fresh
        .login(&foreign_callback(&start_saml(&chain).await))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            AuthError::Rejected {
                cause: ModuleError::Saml(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_broken_configuration_is_refused_and_the_old_chain_keeps_serving() {
    let chain = ReloadableChain::new(&config(false), Stores::new(users().await)).unwrap();
    let serving = chain.current();
    let dir = std::env::temp_dir().join(format!("authchain-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "chain = [\"local\", \"missing\"]\n[modules.local]\ntype = \"local\"\nmax_password_bytes = 0\n",
    )
    .unwrap();
    let err = chain.reload_file(&broken).unwrap_err();
    assert!(matches!(err, ConfigError::Several(_)), "{err}");
    assert!(err.errors().iter().any(|e| e.key() == Some("chain[1]")), "{err}");
    assert!(Arc::ptr_eq(&serving, &chain.current()), "the old chain serves on");

    // A module that fails to build (its IdP metadata is missing) is refused too.
    let unbuildable = Config::from_toml(&format!(
        "chain = [\"corp-saml\"]\n[modules.corp-saml]\ntype = \"saml\"\nsp_entity_id = \"https://a/\"\nacs_url = \"https://a/acs\"\nidp_metadata_file = \"{}\"\n",
        dir.join("no-such-metadata.xml").display()
    ))
    .unwrap();
    assert!(chain.reload(&unbuildable).is_err());
    // So is a change of store (that takes a restart).
    let sqlite = Config::from_toml("chain = [\"local\"]\n[store]\ntype = \"sqlite\"\npath = \"x.db\"\n[modules.local]\ntype = \"local\"\n").unwrap();
    let err = chain.reload(&sqlite).unwrap_err();
    assert_eq!(err.key(), Some("store"));
    assert!(Arc::ptr_eq(&serving, &chain.current()));
    let ok = chain
        .login(
            &AuthRequest::new(peer())
                .with_password("alice", "right")
                .select("local"),
        )
        .await;
    assert!(matches!(ok, Ok(LoginResult::Authenticated(_))));
    let _ = std::fs::remove_dir_all(&dir);
}
