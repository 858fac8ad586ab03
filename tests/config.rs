//! Configuration from TOML: a full file parses and builds; every mistake is an
//! error that names its key.

mod common;

use std::sync::Arc;

use authchain::account::MemoryUserStore;
use authchain::config::{Config, Stores};
use authchain::{ConfigError, SecretSource};

fn stores() -> Stores {
    Stores::new(Arc::new(MemoryUserStore::new()))
}

#[test]
fn the_full_example_parses_and_builds() {
    let config =
        Config::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config/full.toml")).unwrap();
    assert_eq!(
        config.module_ids().collect::<Vec<_>>(),
        ["proxy", "local", "backup-local"]
    );
    assert_eq!(config.store(), Some(&authchain::config::StoreConfig::Memory));
    let chain = config.build(stores()).unwrap();
    let visible: Vec<_> = chain
        .visible_modules()
        .into_iter()
        .map(|m| (m.id, m.description))
        .collect();
    assert_eq!(
        visible,
        [
            ("proxy".to_owned(), "Single sign-on".to_owned()),
            ("local".to_owned(), "Username and password".to_owned())
        ]
    );
}

#[test]
fn the_demo_configuration_builds() {
    let config =
        Config::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config/demo.toml")).unwrap();
    config.build(stores()).unwrap();
}

fn error(text: &str) -> ConfigError {
    match Config::from_toml(text).and_then(|c| c.build(stores()).map(|_| ())) {
        Ok(()) => panic!("configuration should be refused:\n{text}"),
        Err(err) => err,
    }
}

#[test]
fn unknown_keys_are_named() {
    let err = error("chain = []\nbogus_key = 1\n");
    assert!(err.to_string().contains("bogus_key"), "{err}");

    let err = error("chain = [\"l\"]\n[modules.l]\ntype = \"local\"\nlocal_acount_fallback = true\n");
    assert_eq!(err.key(), Some("modules.l.local_acount_fallback"));

    let err = error("chain = []\n[accounts]\ncase_sensitive = true\n");
    assert!(err.to_string().contains("case_sensitive"), "{err}");

    let err = error(
        "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\n[modules.p.role_mapping]\nmatch_dns = true\n",
    );
    assert_eq!(err.key(), Some("modules.p.role_mapping.match_dns"), "{err}");

    // A bad value deep in a role-mapping rule names its path.
    let err = error(
        "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\n[[modules.p.role_mapping.rules]]\ngroup = \"a\"\nrole = 1\n",
    );
    assert_eq!(err.key(), Some("modules.p.role_mapping.rules[0].role"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        ("chain = [\"x\"]\n", "chain[0]"),
        (
            "chain = [\"x\", \"x\"]\n[modules.x]\ntype = \"local\"\n",
            "chain[1]",
        ),
        ("chain = []\n[modules.x]\ntype = \"local\"\n", "modules.x"),
        (
            "chain = [\"x\"]\n[modules.x]\ntype = \"kerberos\"\n",
            "modules.x.type",
        ),
        (
            "chain = []\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
            "trusted_proxies[0]",
        ),
        (
            "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\ntrusted_proxies = [\"nope\"]\n",
            "modules.p.trusted_proxies[0]",
        ),
        (
            "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\ntrusted_proxies = []\ninsecure_trust_any_peer = true\n",
            "modules.p.insecure_trust_any_peer",
        ),
        (
            "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\nprincipal_header = \"a b\"\n",
            "modules.p.principal_header",
        ),
        (
            "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\n[[modules.p.role_mapping.rules]]\nrole = \"x\"\n",
            "modules.p.role_mapping.rules[0].group",
        ),
        ("chain = []\n[passwords]\nargon2_t_cost = 0\n", "passwords"),
        (
            "chain = []\n[throttle]\nmax_attempts = 0\n",
            "throttle.max_attempts",
        ),
        (
            "chain = []\n[throttle]\nmax_attempts_per_ip = 0\n",
            "throttle.max_attempts_per_ip",
        ),
        (
            "chain = []\n[throttle]\nmax_attempts_per_ip = 20000\n",
            "throttle.max_attempts_per_ip",
        ),
        (
            "chain = []\n[accounts]\nexpire_inactive_after = \"PT0S\"\n",
            "accounts.expire_inactive_after",
        ),
        (
            "chain = [\"l\"]\n[modules.l]\ntype = \"local\"\nmax_password_bytes = 0\n",
            "modules.l.max_password_bytes",
        ),
        ("chain = []\n[store]\ntype = \"redis\"\n", "store.type"),
        ("chain = []\n[store]\ntype = \"sqlite\"\n", "store.path"),
        (
            "chain = []\n[store]\ntype = \"sqlite\"\npath = \"\"\n",
            "store.path",
        ),
        (
            "chain = []\n[store]\ntype = \"memory\"\npath = \"x.db\"\n",
            "store.path",
        ),
        (
            "chain = []\n[store]\ntype = \"memory\"\nsynchronous = \"normal\"\n",
            "store.synchronous",
        ),
        (
            "chain = []\n[store]\ntype = \"sqlite\"\npath = \"x.db\"\nsynchronous = \"off\"\n",
            "store.synchronous",
        ),
        (
            "chain = []\n[store]\ntype = \"sqlite\"\npath = \"x.db\"\nmax_connections = 0\n",
            "store.max_connections",
        ),
    ];
    for (text, key) in cases {
        let err = error(text);
        assert_eq!(err.key(), Some(key), "{text}\n→ {err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn bad_syntax_and_types_point_at_the_key() {
    let err = error("chain = []\n[accounts]\nexpire_inactive_after = \"90 days\"\n");
    let text = err.to_string();
    assert!(
        text.contains("expire_inactive_after") && text.contains("ISO 8601"),
        "{text}"
    );
    let err = error("chain = []\n[throttle]\nwindow = \"P1M\"\n");
    assert!(err.to_string().contains("window"), "{err}");
    let err = error("chain = []\n[accounts]\nlogin_attribute = \"phone\"\n");
    assert!(err.to_string().contains("login_attribute"), "{err}");
    let err = error("chain = [\"l\"]\n[modules.l]\ntype = \"local\"\non_reject = \"maybe\"\n");
    assert!(err.to_string().contains("maybe"), "{err}");
    let err = error("chain = [\n");
    assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
}

#[derive(serde::Deserialize)]
struct WithSecret {
    secret: SecretSource,
}

#[test]
fn secrets_by_reference_or_inline() {
    let inline: WithSecret = toml::from_str("secret = \"s3cret\"").unwrap();
    assert_eq!(inline.secret.resolve("secret").unwrap().expose(), "s3cret");
    assert!(!format!("{:?}", inline.secret).contains("s3cret"));

    // PATH is set in every test environment; reading it needs no unsafe set_var.
    let path = std::env::var("PATH").unwrap();
    let env: WithSecret = toml::from_str("secret = { env = \"PATH\" }").unwrap();
    assert_eq!(env.secret.resolve("secret").unwrap().expose(), path);

    let missing: WithSecret = toml::from_str("secret = { env = \"AUTHCHAIN_TEST_NOT_SET\" }").unwrap();
    let err = missing.secret.resolve("modules.ldap.bind_password").unwrap_err();
    assert_eq!(err.key(), Some("modules.ldap.bind_password"));

    let dir = std::env::temp_dir().join(format!("authchain-secret-{}", std::process::id()));
    std::fs::write(&dir, "from-file\n").unwrap();
    let file: WithSecret =
        toml::from_str(&format!("secret = {{ file = {:?} }}", dir.display().to_string())).unwrap();
    assert_eq!(file.secret.resolve("secret").unwrap().expose(), "from-file");
    std::fs::remove_file(&dir).unwrap();

    assert!(toml::from_str::<WithSecret>("secret = { vault = \"x\" }").is_err());
    assert!(toml::from_str::<WithSecret>("secret = { env = \"A\", file = \"b\" }").is_err());
    assert!(toml::from_str::<WithSecret>("secret = {}").is_err());
}

/// The LDAP module's table: errors name the key under `modules.<id>.`, whether
/// the table is refused when read (unknown key, bad URL, bad duration) or when the
/// module is built (a filter without `%s`, a zero timeout).
#[cfg(feature = "ldap")]
#[test]
fn ldap_errors_name_their_key_under_the_module() {
    let table = |extra: &str| {
        format!(
            "chain = [\"corp\"]\n[modules.corp]\ntype = \"ldap\"\nurls = [\"ldaps://dc1.example.org\"]\nuser_search_base = \"dc=example,dc=org\"\n{extra}\n"
        )
    };
    let good = Config::from_toml(&table(
        "connect_timeout = \"PT2S\"\nbind_dn = \"cn=x\"\nbind_password = \"pw\"",
    ))
    .unwrap();
    good.build(stores()).unwrap();
    let cases = [
        (
            "user_serch_filter = \"(uid=%s)\"",
            "modules.corp.user_serch_filter",
        ),
        ("urls = [\"https://dc1.example.org\"]", "modules.corp.urls[0]"),
        ("operation_timeout = \"10s\"", "modules.corp.operation_timeout"),
        ("operation_timeout = \"PT0S\"", "modules.corp.operation_timeout"),
        (
            "user_search_filter = \"(uid=x)\"",
            "modules.corp.user_search_filter",
        ),
        ("bind_dn = \"cn=x\"", "modules.corp.bind_password"),
        ("groups = \"search\"", "modules.corp.group_search_base"),
    ];
    for (extra, key) in cases {
        let text = table(extra).replacen(
            "urls = [\"ldaps://dc1.example.org\"]\n",
            "",
            usize::from(extra.starts_with("urls")),
        );
        let err = error(&text);
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
    let err = error("chain = [\"corp\"]\n[modules.corp]\ntype = \"ldap\"\nuser_search_base = \"dc=x\"\n");
    assert_eq!(err.key(), Some("modules.corp.urls"), "{err}");
}

/// Errors found after the text parsed (inside a module table, a role-mapping rule,
/// a file a key names) still carry the key's line and column.
#[test]
fn errors_inside_modules_carry_the_line_of_their_key() {
    let text = "chain = [\"l\"]\n\n[modules.l]\ntype = \"local\"\nenabled = \"yes\"\n";
    let err = error(text);
    assert!(
        matches!(&err, ConfigError::Invalid { key, .. } if key == "modules.l.enabled"),
        "{err:?}"
    );
    assert_eq!(err.location().map(|l| (l.line, l.column)), Some((5, 1)), "{err}");
    assert!(err.to_string().contains("line 5"), "{err}");
    // Type errors in the words of a configuration file, not of Rust.
    assert!(err.to_string().contains("expected true or false"), "{err}");
    let err = error("chain = [\"l\"]\n[modules.l]\ntype = \"local\"\nmax_password_bytes = \"x\"\n");
    assert!(err.to_string().contains("expected a whole number"), "{err}");
    assert!(!err.to_string().contains("usize"), "{err}");
    let err = error("chain = []\n[throttle]\nmax_attempts = true\n");
    assert!(
        !err.to_string().contains("u32") && !err.to_string().contains("usize"),
        "{err}"
    );

    let text = "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\n[[modules.p.role_mapping.rules]]\ngroup = \"a\"\nrole = \"r\"\n[[modules.p.role_mapping.rules]]\ngroup = \"b\"\n  role = 1\n";
    let err = error(text);
    assert_eq!(err.key(), Some("modules.p.role_mapping.rules[1].role"), "{err}");
    assert_eq!(err.location().map(|l| (l.line, l.column)), Some((9, 3)), "{err}");

    // A missing key points at its table.
    let text =
        "chain = [\"p\"]\n[modules.p]\ntype = \"header\"\n\n[[modules.p.role_mapping.rules]]\nrole = \"x\"\n";
    let err = error(text);
    assert_eq!(err.key(), Some("modules.p.role_mapping.rules[0].group"), "{err}");
    assert_eq!(err.location().map(|l| l.line), Some(5), "{err}");
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = "chain = [\"a\", \"b\", \"a\"]\ntrusted_proxies = [\"nope\"]\n[modules.a]\ntype = \"local\"\nenabled = 3\n[modules.b]\ntype = \"header\"\nprincipal_header = \"a b\"\n[modules.c]\ntype = \"local\"\n";
    let err = error(text);
    let ConfigError::Several(errors) = &err else {
        panic!("expected several errors, got {err:?}");
    };
    let keys: Vec<_> = errors.iter().map(|e| e.key().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "modules.a.enabled",
            "modules.b.principal_header",
            "chain[2]",
            "modules.c",
            "trusted_proxies[0]"
        ],
        "{err}"
    );
    assert!(errors.iter().all(|e| e.location().is_some()), "{err}");
    assert_eq!(err.errors().len(), 5);
}

/// A secret file that cannot be read names its key, its line and the path.
#[cfg(feature = "ldap")]
#[test]
fn a_missing_secret_file_names_its_key_and_line() {
    let text = "chain = [\"d\"]\n[modules.d]\ntype = \"ldap\"\nurls = [\"ldap://127.0.0.1:1\"]\nbind_dn = \"cn=svc\"\nbind_password = { file = \"/nonexistent/authchain-secret\" }\nuser_search_base = \"dc=x\"\n";
    let err = error(text);
    assert!(
        matches!(&err, ConfigError::Io { key: Some(key), path, .. }
            if key == "modules.d.bind_password" && path == "/nonexistent/authchain-secret"),
        "{err:?}"
    );
    assert_eq!(err.location().map(|l| l.line), Some(6), "{err}");
}

#[cfg(all(feature = "postgres", feature = "redis"))]
#[test]
fn state_and_postgres_mistakes_name_their_key() {
    let cases = [
        ("chain = []\n[store]\ntype = \"postgres\"\n", "store.url"),
        (
            "chain = []\n[store]\ntype = \"postgres\"\nurl = \"postgres://h/db\"\npath = \"x.db\"\n",
            "store.path",
        ),
        (
            "chain = []\n[store]\ntype = \"postgres\"\nurl = \"postgres://h/db\"\nmax_connections = 0\n",
            "store.max_connections",
        ),
        (
            "chain = []\n[store]\ntype = \"sqlite\"\npath = \"x.db\"\nurl = \"postgres://h/db\"\n",
            "store.url",
        ),
        (
            "chain = []\n[store]\ntype = \"memory\"\nurl = \"postgres://h/db\"\n",
            "store.url",
        ),
        ("chain = []\n[state]\ntype = \"etcd\"\n", "state.type"),
        ("chain = []\n[state]\ntype = \"redis\"\n", "state.url"),
        (
            "chain = []\n[state]\ntype = \"redis\"\nurl = \"redis://h\"\npath = \"x\"\n",
            "state.path",
        ),
        (
            "chain = []\n[state]\ntype = \"memory\"\nurl = \"redis://h\"\n",
            "state.url",
        ),
        (
            "chain = []\n[state]\ntype = \"postgres\"\nmax_connections = 4\n",
            "state.max_connections",
        ),
        (
            "chain = []\n[state]\ntype = \"sqlite\"\nprefix = \"x:\"\n",
            "state.prefix",
        ),
        (
            "chain = []\n[state]\ntype = \"sqlite\"\npath = \"\"\n",
            "state.path",
        ),
    ];
    for (text, key) in cases {
        let err = error(text);
        assert_eq!(err.key(), Some(key), "{text}\n→ {err}");
    }
    // A bad enum value names the key too.
    let err = error("chain = []\n[state]\ntype = \"memory\"\nthrottle_on_outage = \"sometimes\"\n");
    assert!(err.to_string().contains("throttle_on_outage"), "{err}");
}

#[cfg(all(feature = "postgres", feature = "redis"))]
#[tokio::test]
async fn store_and_state_urls_are_secrets_resolved_when_opened() {
    // Unset variables are reported when the stores are opened, naming the key,
    // and the URL (a password in it) is never echoed.
    let text =
        "chain = []\n[store]\ntype = \"postgres\"\nurl = { env = \"AUTHCHAIN_TEST_NO_SUCH_DB_URL\" }\n";
    let config = Config::from_toml(text).expect("parses");
    let err = config.open_stores().await.err().expect("no such variable");
    assert_eq!(err.key(), Some("store.url"), "{err}");
    let text = "chain = []\n[state]\ntype = \"redis\"\nurl = \"redis://user:hunter2-secret@127.0.0.1:1/\"\n";
    let config = Config::from_toml(text).expect("parses");
    assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
    let err = config
        .open_stores()
        .await
        .err()
        .expect("nothing listens on port 1");
    assert_eq!(err.key(), Some("state.url"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    // `[state] type = "postgres"` without a url needs a postgres [store].
    let text = "chain = []\n[state]\ntype = \"postgres\"\n";
    let err = Config::from_toml(text)
        .unwrap()
        .open_stores()
        .await
        .err()
        .expect("no [store]");
    assert_eq!(err.key(), Some("state.url"), "{err}");
}

#[cfg(feature = "oauth2")]
#[tokio::test]
async fn a_sqlite_state_is_where_every_redirect_module_keeps_its_flows() {
    use authchain::account::SqliteStore;
    use authchain::flow::FlowStore;
    use authchain::{AuthRequest, Credentials, LoginResult};
    let path = common::fresh_db_path("config::sqlite_state");
    let text = format!(
        r#"
chain = ["oauth"]
[state]
type = "sqlite"
path = "{path}"
[modules.oauth]
type = "oauth2"
client_id = "app"
client_secret = "secret"
authorization_endpoint = "https://idp.example.org/authorize"
token_endpoint = "https://idp.example.org/token"
userinfo_endpoint = "https://idp.example.org/userinfo"
redirect_uri = "https://app.example.org/callback"
"#,
        path = path.display()
    );
    let config = Config::from_toml(&text).expect("parses");
    let chain = config
        .build(config.open_stores().await.expect("opens"))
        .expect("builds");
    let start = AuthRequest::new("192.0.2.1:1000".parse().unwrap())
        .with_credentials(Credentials::Start(None.into()))
        .select("oauth");
    let Ok(LoginResult::Redirect(redirect)) = chain.login(&start).await else {
        panic!("a redirect");
    };
    let state = url::Url::parse(&redirect.location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state parameter");
    // Another process opening the file finds the pending login there.
    let other = SqliteStore::open(&path).await.unwrap();
    let cookie = redirect.flow_cookie_value().expect("a flow cookie");
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(cookie.as_bytes()).into();
    let flow = other
        .take("oauth", &state, Some(digest), std::time::SystemTime::now())
        .await
        .expect("the flow is in the shared file");
    assert_eq!(flow.module, "oauth");
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `AUTHCHAIN__…` variables set any key over the file: nested tables, module ids
/// with dashes, typed values, new tables; secrets stay references.
#[tokio::test]
async fn environment_overrides_win_over_the_file() {
    let file = "chain = [\"corp-local\"]\n[throttle]\nmax_attempts = 5\nwindow = \"PT15M\"\n[modules.corp-local]\ntype = \"local\"\ndescription = \"From the file\"\n";
    let config = Config::from_toml_with_overrides(
        file,
        vars(&[
            (
                "AUTHCHAIN__MODULES__CORP_LOCAL__DESCRIPTION",
                "From the environment",
            ),
            ("AUTHCHAIN__THROTTLE__MAX_ATTEMPTS", "1"),
            ("AUTHCHAIN__ACCOUNTS__CASE_INSENSITIVE", "true"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .expect("overridden");
    let chain = config
        .build(Stores::new(Arc::new(MemoryUserStore::new())))
        .unwrap();
    assert_eq!(chain.visible_modules()[0].description, "From the environment");

    // A wrongly typed value is reported as the file's would be.
    let err = Config::from_toml_with_overrides(file, vars(&[("AUTHCHAIN__THROTTLE__MAX_ATTEMPTS", "many")]))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Syntax(m) if m.contains("max_attempts")),
        "{err}"
    );
    // An unknown key is refused as in the file.
    let err = Config::from_toml_with_overrides(
        file,
        vars(&[("AUTHCHAIN__MODULES__CORP_LOCAL__NO_SUCH_KEY", "1")]),
    )
    .unwrap_err();
    assert!(
        err.key().is_some_and(|k| k.starts_with("modules.corp-local")),
        "{err}"
    );
    // Below a value that is not a table, nothing can be set.
    let err =
        Config::from_toml_with_overrides(file, vars(&[("AUTHCHAIN__THROTTLE__WINDOW__X", "1")])).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid { ref key, .. } if key == "AUTHCHAIN__THROTTLE__WINDOW__X"),
        "{err}"
    );
    let err = Config::from_toml_with_overrides(file, vars(&[("AUTHCHAIN__MODULES____X", "1")])).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    // Without an override variable the file is read as it is, lines and all.
    let err =
        Config::from_toml_with_overrides("chain = []\nbogus = 1\n", vars(&[("HOME", "/root")])).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Syntax(m) if m.contains("line 2")),
        "{err}"
    );
}

#[cfg(feature = "ldap")]
#[test]
fn a_secret_set_from_the_environment_stays_a_reference() {
    let file = "chain = [\"corp\"]\n[modules.corp]\ntype = \"ldap\"\nurls = [\"ldap://127.0.0.1:1\"]\nbind_dn = \"cn=svc\"\nbind_password = { env = \"FROM_FILE\" }\nuser_search_base = \"dc=x\"\n";
    let config = Config::from_toml_with_overrides(
        file,
        vars(&[(
            "AUTHCHAIN__MODULES__CORP__BIND_PASSWORD",
            "{ env = \"AUTHCHAIN_TEST_LDAP_PASSWORD_UNSET\" }",
        )]),
    )
    .unwrap();
    // The reference names an unset variable: the build says so, naming the key.
    let Err(err) = config.build(Stores::new(Arc::new(MemoryUserStore::new()))) else {
        panic!("the secret's variable is unset");
    };
    assert_eq!(err.key(), Some("modules.corp.bind_password"), "{err}");
    assert!(
        err.to_string().contains("AUTHCHAIN_TEST_LDAP_PASSWORD_UNSET"),
        "{err}"
    );
}
