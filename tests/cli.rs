//! The `authchain` command line, run as a user would: a real slapd, a real SQLite
//! file.

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
        child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
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
