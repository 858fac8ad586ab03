//! The `authchain` command line, run as a user would: a real slapd, a real SQLite
//! file, a real PostgreSQL (tests/peers/postgres.sh).

#[path = "common/browser.rs"]
mod browser;
// Only the login helpers are used here.
#[allow(dead_code)]
#[path = "cas/server.rs"]
mod cas_server;
#[path = "common/peer.rs"]
mod peer;
#[path = "ldap/slapd.rs"]
mod slapd;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use authchain::SecretString;
use authchain::account::{PasswordPolicy, SqliteStore, UserStore, Verification};

fn authchain() -> Command {
    Command::new(env!("CARGO_BIN_EXE_authchain"))
}

fn temp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn sync_once_mirrors_the_directory_and_prints_a_summary() {
    let slapd = slapd::Slapd::start();
    let dir = temp("sync");
    let db = dir.join("authchain.db");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            r#"
chain = ["corp-ldap"]
[store]
type = "sqlite"
path = "{db}"
[modules.corp-ldap]
type = "ldap"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = {{ env = "TEST_LDAP_PASSWORD" }}
user_search_base = "{people}"
[[modules.corp-ldap.role_mapping.rules]]
group = "admins"
role = "admin"
[sync]
module = "corp-ldap"
user_base = "{people}"
group_base = "{groups}"
"#,
            db = db.display(),
            url = slapd.ldap_url,
            bind_dn = slapd.service_dn,
            people = slapd::PEOPLE,
            groups = slapd::GROUPS,
        ),
    )
    .unwrap();
    let out = authchain()
        .args(["sync", "--once", "--config"])
        .arg(&config)
        .env("TEST_LDAP_PASSWORD", &slapd.service_password)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sync stopped: 4 created"), "{stdout}");
    assert!(stderr.contains("refresh done (full)"), "{stderr}");
    assert!(!stderr.contains("polling"), "persistent search: {stderr}");
    assert!(
        !stderr.contains(&slapd.service_password),
        "the password is never printed"
    );

    let store = SqliteStore::open(&db).await.unwrap();
    let alice = store
        .find_by_login("alice", false)
        .await
        .unwrap()
        .expect("alice synced");
    assert!(alice.effective_roles().contains("admin"));
    store.close().await;

    // A second run, polling, resumes from the stored cookie: nothing to do.
    let mut polling = std::fs::read_to_string(&config).unwrap();
    polling.push_str("mode = \"poll\"\npoll_interval = \"PT30S\"\n");
    std::fs::write(&config, polling).unwrap();
    let again = authchain()
        .args(["sync", "--once", "--config"])
        .arg(&config)
        .env("TEST_LDAP_PASSWORD", &slapd.service_password)
        .output()
        .unwrap();
    assert!(again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("resumed from the stored cookie"), "{stderr}");
    assert!(stderr.contains("polling the directory every 30 s"), "{stderr}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("sync stopped: 0 created"));
}

#[tokio::test]
async fn sync_once_writes_into_a_postgres_store() {
    let slapd = slapd::Slapd::start();
    let postgres = peer::Peer::start("postgres", 3, "PostgreSQL: apt-get install postgresql");
    let url = postgres.var("PG_URL");
    let dir = temp("sync-postgres");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            r#"
chain = ["corp-ldap"]
[store]
type = "postgres"
url = {{ env = "TEST_DATABASE_URL" }}
[modules.corp-ldap]
type = "ldap"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = {{ env = "TEST_LDAP_PASSWORD" }}
user_search_base = "{people}"
[[modules.corp-ldap.role_mapping.rules]]
group = "admins"
role = "admin"
[sync]
module = "corp-ldap"
user_base = "{people}"
group_base = "{groups}"
"#,
            url = slapd.ldap_url,
            bind_dn = slapd.service_dn,
            people = slapd::PEOPLE,
            groups = slapd::GROUPS,
        ),
    )
    .unwrap();
    let out = authchain()
        .args(["sync", "--once", "--config"])
        .arg(&config)
        .env("TEST_LDAP_PASSWORD", &slapd.service_password)
        .env("TEST_DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sync stopped: 4 created"), "{stdout}");
    assert!(
        !stderr.contains(&postgres.var("PG_PASSWORD")),
        "the password is never printed"
    );
    let store = authchain::account::PgStore::connect(&url, Default::default())
        .await
        .unwrap();
    let alice = store
        .find_by_login("alice", false)
        .await
        .unwrap()
        .expect("alice synced");
    assert!(alice.effective_roles().contains("admin"));
    store.close().await;
}

#[test]
fn sync_without_a_sqlite_store_or_sync_table_is_refused() {
    let dir = temp("refused");
    let config = dir.join("memory.toml");
    std::fs::write(
        &config,
        "chain = [\"local\"]\n[modules.local]\ntype = \"local\"\n",
    )
    .unwrap();
    let out = authchain()
        .args(["sync", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite"));

    let out = authchain().args(["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = authchain()
        .args(["sync", "--config", "/nonexistent/authchain.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/authchain.toml"));
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = temp("check");
    let good = dir.join("good.toml");
    std::fs::write(&good, "chain = [\"local\"]\n[modules.local]\ntype = \"local\"\n").unwrap();
    let out = authchain()
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("module local"));

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "chain = [\"local\"]\n[modules.local]\ntype = \"local\"\nmax_password_bytes = 0\n",
    )
    .unwrap();
    let out = authchain()
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("modules.local.max_password_bytes"));
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_hash() {
    let mut child = authchain()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let policy = PasswordPolicy::owasp();
    assert!(matches!(
        policy.verify(&SecretString::new("correct horse"), hash),
        Verification::Valid { needs_rehash: false }
    ));
    assert!(matches!(
        policy.verify(&SecretString::new("wrong"), hash),
        Verification::Invalid
    ));
}

/// `hash-password --config` hashes with the file's `[passwords]` parameters, and
/// refuses a configuration whose parameters are above its `[passwords.max_cost]`.
#[test]
fn hash_password_uses_the_configured_parameters_and_limits() {
    let dir = std::env::temp_dir().join(format!("authchain-cli-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |toml: &str| {
        let path = dir.join("authchain.toml");
        std::fs::write(&path, toml).unwrap();
        let mut child = authchain()
            .arg("hash-password")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A refused configuration exits before reading the password: the write
        // may then meet a closed pipe, which is no failure of the test.
        let _ = child.stdin.take().unwrap().write_all(b"pw\n");
        child.wait_with_output().unwrap()
    };
    let out = run("chain = []\n[passwords]\nargon2_m_cost_kib = 64\nargon2_t_cost = 1\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.trim().starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
    let out = run("chain = []\n[passwords]\nargon2_t_cost = 3\n[passwords.max_cost]\nargon2_t = 2\n");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the binary with `stdin` as its standard input (not a terminal: secrets
/// are read as lines) and `env` added to its environment.
fn run_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut child = authchain()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn run(args: &[&str], stdin: &str) -> std::process::Output {
    run_with(args, stdin, &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

#[test]
fn check_config_writes_nothing_and_reports_every_error_with_its_line() {
    let dir = temp("check-all");
    let db = dir.join("not-created").join("authchain.db");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            "chain = [\"local\"]\n[store]\ntype = \"sqlite\"\npath = \"{}\"\n[modules.local]\ntype = \"local\"\nmax_password_bytes = \"many\"\n[[modules.local.role_mapping.rules]]\ngroup = 5\nrole = \"admin\"\n",
            db.display()
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let out = run(&["check-config", "--config", path], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("modules.local.max_password_bytes` (line 7"),
        "{stderr}"
    );
    assert!(
        stderr.contains("modules.local.role_mapping.rules[0].group"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected a whole number"),
        "plain words: {stderr}"
    );
    assert!(!stderr.contains("usize"), "{stderr}");
    assert!(stderr.contains("2 configuration errors"), "{stderr}");

    let out = run(&["check-config", "--json", "--config", path], "");
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["ok"], false);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{report}");
    assert!(errors.iter().all(|e| e["line"].as_u64().is_some()), "{report}");

    // A good configuration over the same store path: ok, and still nothing written.
    std::fs::write(
        &config,
        format!(
            "chain = [\"local\"]\n[store]\ntype = \"sqlite\"\npath = \"{}\"\n[modules.local]\ntype = \"local\"\n",
            db.display()
        ),
    )
    .unwrap();
    let out = run(&["check-config", "--config", path], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("store sqlite"));
    assert!(
        !db.parent().unwrap().exists(),
        "check-config created the store's directory"
    );
}

#[test]
fn check_config_refuses_configurations_that_can_never_authenticate() {
    let dir = temp("check-dead");
    let config = dir.join("authchain.toml");
    let path = config.to_str().unwrap();
    let check = |toml: &str| {
        std::fs::write(&config, toml).unwrap();
        run(&["check-config", "--json", "--config", path], "")
    };
    let keys = |out: &std::process::Output| -> Vec<String> {
        json(out)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // A header module trusting nobody: neither its own list nor the chain's.
    let out = check(
        "chain = [\"proxy\", \"local\"]\n[modules.proxy]\ntype = \"header\"\n[modules.local]\ntype = \"local\"\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(keys(&out), ["modules.proxy"]);
    let out = check("chain = [\"proxy\"]\n[modules.proxy]\ntype = \"header\"\ntrusted_proxies = []\n");
    assert_eq!(keys(&out), ["modules.proxy.trusted_proxies"]);
    // Trusting the chain's proxies is fine.
    let out =
        check("chain = [\"proxy\"]\ntrusted_proxies = [\"10.0.0.1\"]\n[modules.proxy]\ntype = \"header\"\n");
    assert!(out.status.success(), "{}", text(&out.stdout));
    // Every module disabled or hidden.
    let out = check(
        "chain = [\"a\", \"b\"]\n[modules.a]\ntype = \"local\"\nenabled = false\n[modules.b]\ntype = \"local\"\nhidden = true\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(keys(&out), ["chain"]);
    let out = check("chain = []\n");
    assert_eq!(keys(&out), ["chain"]);
}

#[test]
fn check_config_applies_environment_overrides() {
    let dir = temp("check-env");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        "chain = [\"corp-local\"]\n[modules.corp-local]\ntype = \"local\"\n",
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let out = run_with(
        &["check-config", "--config", path],
        "",
        &[("AUTHCHAIN__MODULES__CORP_LOCAL__MAX_PASSWORD_BYTES", "0")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("modules.corp-local.max_password_bytes"),
        "{}",
        text(&out.stderr)
    );
    let out = run_with(
        &["check-config", "--config", path],
        "",
        &[("AUTHCHAIN__MODULES__CORP_LOCAL__ENABLED", "false")],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the override disabled the only module"
    );
}

#[test]
fn user_commands_manage_accounts_of_the_configured_store() {
    let dir = temp("users");
    let db = dir.join("authchain.db");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            "chain = [\"local\"]\n[store]\ntype = \"sqlite\"\npath = \"{}\"\n[passwords]\nargon2_m_cost_kib = 64\nargon2_t_cost = 1\n[modules.local]\ntype = \"local\"\n",
            db.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    };
    ok(run(
        &[
            "user",
            "add",
            "--config",
            cfg,
            "--login",
            "alice",
            "--email",
            "alice@example.org",
            "--role",
            "editor",
            "--password",
        ],
        "first password\n",
    ));
    ok(run(&["user", "add", "--config", cfg, "--login", "bob"], ""));
    let refused = run(&["user", "add", "--config", cfg, "--login", "ALICE"], "");
    assert_eq!(refused.status.code(), Some(1), "the login name is taken");

    let list = json(&ok(run(&["user", "list", "--json", "--config", cfg], "")));
    let logins: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["alice", "bob"]);
    assert_eq!(list[0]["has_password"], true);
    assert!(list[0].get("password_hash").is_none(), "hashes are never printed");
    assert!(
        !text(&run(&["user", "show", "--config", cfg, "--login", "alice"], "").stdout).contains("$argon2")
    );

    // The stored hash follows the [passwords] policy.
    let hash = tokio_run(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let alice = store.find_by_login("alice", false).await.unwrap().unwrap();
        store.close().await;
        alice.password_hash.unwrap()
    });
    assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");

    let try_login = |password: &str| {
        run(
            &[
                "try-login",
                "--json",
                "--config",
                cfg,
                "--module",
                "local",
                "--login",
                "alice",
            ],
            &format!("{password}\n"),
        )
    };
    let out = ok(try_login("first password"));
    assert_eq!(json(&out)["roles"], serde_json::json!(["editor"]));

    ok(run(&["user", "disable", "--config", cfg, "--login", "alice"], ""));
    let out = try_login("first password");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"], "account_disabled");
    ok(run(&["user", "enable", "--config", cfg, "--login", "alice"], ""));

    ok(run(
        &["user", "set-password", "--config", cfg, "--login", "alice"],
        "second password\n",
    ));
    assert_eq!(json(&try_login("first password"))["error"], "invalid_credentials");
    ok(try_login("second password"));

    ok(run(
        &[
            "user", "grant", "--config", cfg, "--login", "alice", "--role", "admin",
        ],
        "",
    ));
    ok(run(
        &[
            "user", "revoke", "--config", cfg, "--login", "alice", "--role", "editor",
        ],
        "",
    ));
    let alice = json(&ok(run(
        &["user", "show", "--json", "--config", cfg, "--login", "alice"],
        "",
    )));
    assert_eq!(alice["roles"], serde_json::json!(["admin"]));
    assert_eq!(
        json(&ok(try_login("second password")))["roles"],
        serde_json::json!(["admin"])
    );

    let missing = run(&["user", "disable", "--config", cfg, "--login", "nobody"], "");
    assert_eq!(missing.status.code(), Some(1));
    let empty = run(&["user", "set-password", "--config", cfg, "--login", "alice"], "");
    assert_eq!(empty.status.code(), Some(1), "no password given");
    ok(try_login("second password"));
    let usage = run(&["user", "grant", "--config", cfg, "--login", "alice"], "");
    assert_eq!(usage.status.code(), Some(2), "--role is missing");
}

fn tokio_run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// `try-login` through a real slapd: groups and mapped roles; `user unlink`
/// removes the link and the roles mapped through it.
#[test]
fn try_login_through_ldap_then_unlink() {
    let slapd = slapd::Slapd::shared();
    let dir = temp("try-ldap");
    let db = dir.join("authchain.db");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            r#"
chain = ["corp-ldap"]
[store]
type = "sqlite"
path = "{db}"
[modules.corp-ldap]
type = "ldap"
provisioning = "create"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = {{ env = "TEST_LDAP_PASSWORD" }}
user_search_base = "{people}"
[[modules.corp-ldap.role_mapping.rules]]
group = "admins"
role = "admin"
"#,
            db = db.display(),
            url = slapd.ldap_url,
            bind_dn = slapd.service_dn,
            people = slapd::PEOPLE,
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = [("TEST_LDAP_PASSWORD", slapd.service_password.as_str())];
    let out = run_with(
        &[
            "try-login",
            "--config",
            cfg,
            "--module",
            "corp-ldap",
            "--login",
            "alice",
        ],
        "alice-password\n",
        &env,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("authenticated: alice"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("groups:") && l.contains("admins")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("roles:") && l.contains("admin")),
        "{stdout}"
    );
    assert!(
        !text(&out.stderr).contains("alice-password"),
        "the password is never printed"
    );

    let out = run_with(
        &[
            "try-login",
            "--json",
            "--config",
            cfg,
            "--module",
            "corp-ldap",
            "--login",
            "alice",
        ],
        "wrong\n",
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"], "invalid_credentials");

    let show = |env: &[(&str, &str)]| {
        json(&run_with(
            &["user", "show", "--json", "--config", cfg, "--login", "alice"],
            "",
            env,
        ))
    };
    let alice = show(&env);
    assert_eq!(alice["links"][0]["provider"], "corp-ldap");
    assert_eq!(alice["effective_roles"], serde_json::json!(["admin"]));
    let out = run_with(
        &[
            "user",
            "unlink",
            "--config",
            cfg,
            "--login",
            "alice",
            "--provider",
            "corp-ldap",
        ],
        "",
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alice = show(&env);
    assert_eq!(alice["links"], serde_json::json!([]));
    assert_eq!(alice["effective_roles"], serde_json::json!([]));
    let again = run_with(
        &[
            "user",
            "unlink",
            "--config",
            cfg,
            "--login",
            "alice",
            "--provider",
            "corp-ldap",
        ],
        "",
        &env,
    );
    assert_eq!(again.status.code(), Some(1), "no link left");
}

#[test]
fn sp_metadata_prints_the_saml_modules_metadata() {
    let dir = temp("sp-metadata");
    let config = dir.join("authchain.toml");
    let idp = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/fixtures/saml/idp-metadata.xml"
    );
    std::fs::write(
        &config,
        format!(
            r#"
chain = ["corp-saml", "local"]
[modules.corp-saml]
type = "saml"
sp_entity_id = "https://app.example.org/saml"
acs_url = "https://app.example.org/saml/acs"
idp_metadata_file = "{idp}"
[modules.local]
type = "local"
"#
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let out = run(&["sp-metadata", "--config", cfg, "--module", "corp-saml"], "");
    let xml = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(xml.contains("entityID=\"https://app.example.org/saml\""), "{xml}");
    assert!(
        xml.contains("Location=\"https://app.example.org/saml/acs\""),
        "{xml}"
    );
    let out = run(&["sp-metadata", "--config", cfg, "--module", "local"], "");
    assert_eq!(out.status.code(), Some(1), "not a SAML module");
    let out = run(&["sp-metadata", "--config", cfg], "");
    assert_eq!(out.status.code(), Some(2), "--module is missing");
}

/// The lines a child writes on stderr, as they come.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (lines, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Reads lines until one contains `wanted` (the lines before it returned too).
fn wait_for(lines: &std::sync::mpsc::Receiver<String>, wanted: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        // A bound on a hung process, not a timing assertion.
        match lines.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(line) => {
                let done = line.contains(wanted);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {wanted:?} ({e}); saw {seen:#?}"),
        }
    }
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A running `sync` re-reads its configuration on SIGHUP: a broken one is refused
/// and the sync goes on; a good one restarts it. The progress is plain lines
/// when stderr is not a terminal.
#[test]
fn sync_reloads_its_configuration_on_sighup() {
    let slapd = slapd::Slapd::shared();
    let dir = temp("sync-hup");
    let db = dir.join("authchain.db");
    let config = dir.join("authchain.toml");
    let write = |role: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
chain = ["corp-ldap"]
[store]
type = "sqlite"
path = "{db}"
[modules.corp-ldap]
type = "ldap"
urls = ["{url}"]
bind_dn = "{bind_dn}"
bind_password = {{ env = "TEST_LDAP_PASSWORD" }}
user_search_base = "{people}"
[[modules.corp-ldap.role_mapping.rules]]
group = "admins"
role = "{role}"
[sync]
module = "corp-ldap"
user_base = "{people}"
group_base = "{groups}"
"#,
                db = db.display(),
                url = slapd.ldap_url,
                bind_dn = slapd.service_dn,
                people = slapd::PEOPLE,
                groups = slapd::GROUPS,
            ),
        )
        .unwrap()
    };
    write("admin");
    let mut child = authchain()
        .args(["sync", "--progress-every", "1", "--config"])
        .arg(&config)
        .env("TEST_LDAP_PASSWORD", &slapd.service_password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let first = wait_for(&lines, "refresh done (full)");

    std::fs::write(&config, "chain = [\"corp-ldap\"]\n[sync]\nmodule = \"nope\"\n").unwrap();
    signal(&child, "HUP");
    wait_for(&lines, "reload refused");
    assert!(child.try_wait().unwrap().is_none(), "the sync goes on");

    write("superuser");
    signal(&child, "HUP");
    wait_for(&lines, "configuration reloaded");
    let second = wait_for(&lines, "refresh done");
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.matches("sync stopped:").count(),
        2,
        "one summary per run: {stdout}"
    );
    for line in first.iter().chain(&second) {
        assert!(!line.contains('\r'), "a log gets whole lines: {line:?}");
    }
    assert!(
        first.last().unwrap().contains("changes in"),
        "the summary has the count and rate: {first:?}"
    );
}

/// Runs `try-login --json` of the redirect module `campus`: `paste` gets the URL
/// it prints and answers the callback to paste. Answers the exit status, the JSON
/// result and the pasted callback.
fn try_redirect_login(
    config: &std::path::Path,
    paste: impl FnOnce(&str) -> String,
) -> (std::process::ExitStatus, serde_json::Value, String) {
    use std::io::BufRead;
    let mut child = authchain()
        .args(["try-login", "--json", "--module", "campus", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    let callback = paste(url.trim());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{callback}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let result =
        serde_json::from_str(rest.trim()).unwrap_or_else(|e| panic!("{e}: {rest}\n{}", text(&out.stderr)));
    (out.status, result, callback)
}

/// `try-login` of a redirect module against a real CAS server: it prints the URL
/// to open, the test signs in there as a browser would, and pastes the URL the
/// browser lands on.
#[test]
fn try_login_through_cas_reads_the_pasted_callback() {
    let cas = cas_server::CasServer::shared();
    let dir = temp("try-cas");
    let config = dir.join("authchain.toml");
    std::fs::write(
        &config,
        format!(
            "chain = [\"campus\"]\n[modules.campus]\ntype = \"cas\"\nprovisioning = \"create\"\nserver_url = \"{}\"\nservice_url = \"{}\"\n",
            cas.url,
            cas_server::SERVICE
        ),
    )
    .unwrap();
    let (status, principal, landed) = try_redirect_login(&config, |url| {
        assert!(url.starts_with(&cas.url), "the CAS login URL: {url:?}");
        tokio_run(cas_server::login(
            &mut browser::Browser::new(),
            url,
            "alice",
            "alice-password",
        ))
    });
    assert!(landed.contains("ticket="), "{landed}");
    assert!(status.success(), "{principal}");
    assert_eq!(principal["login"], "alice");
    assert_eq!(principal["module"], "campus");

    // The same callback pasted into another login (its flow another browser's:
    // the module does not recognise it) is the typed refusal.
    let (status, refusal, _) = try_redirect_login(&config, |_| landed.clone());
    assert_eq!(status.code(), Some(1));
    assert_eq!(refusal["ok"], false, "{refusal}");
    assert_eq!(refusal["error"], "unauthenticated", "{refusal}");
}
