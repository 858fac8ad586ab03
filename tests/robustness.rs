//! Bounded work for stored values: password hashes whose own parameters ask for
//! unbounded cost are refused before any hashing (issue 16's reproducers).

use std::sync::Arc;

use authchain::account::{
    CostLimitExceeded, HashCheckError, HashLimits, HashScheme, MemoryUserStore, NewAccount, PasswordPolicy,
    SqliteStore, UserStore, Verification,
};
use authchain::modules::LocalModule;
use authchain::{AuthChain, AuthError, AuthRequest, StoreError};

const SALT: &str = "c2FsdHNhbHRzYWx0c2FsdA";
const HASH: &str = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// The fuzzer's failing inputs, each with the parameter that must stop it.
fn over_limit() -> Vec<(String, HashScheme, &'static str, u64)> {
    let bcrypt_tail = "LhayLxezLhK1LhWvKxCyLOj0j1u.Kj0jZ0pEmm134uzrQlFvQJLF6";
    vec![
        // A 1 TiB allocation: aborted the process.
        (format!("$scrypt$ln=30,r=8,p=1${SALT}${HASH}"), HashScheme::Scrypt, "ln", 30),
        // 16 s and 1 GiB.
        (format!("$scrypt$ln=20,r=8,p=1${SALT}${HASH}"), HashScheme::Scrypt, "ln", 20),
        (format!("$scrypt$ln=15,r=1024,p=1${SALT}${HASH}"), HashScheme::Scrypt, "r", 1024),
        (format!("$2b$31${bcrypt_tail}"), HashScheme::Bcrypt, "cost", 31),
        (format!("$2y$$31${bcrypt_tail}"), HashScheme::Bcrypt, "cost", 31),
        (
            format!("$pbkdf2-sha256$i=4294967295,l=32${SALT}${HASH}"),
            HashScheme::Pbkdf2,
            "i",
            4_294_967_295,
        ),
        (
            format!("$pbkdf2-sha512$i=99999999999999999999999${SALT}${HASH}"),
            HashScheme::Pbkdf2,
            "i",
            u64::MAX,
        ),
        (
            "$6$rounds=999999999$saltsalt$Dbd8gD9ZmBr7jgSd5ibSzfeLN1Mk8Mb9DkclzpuBx3sXKmiuIUEz6F6h0ehNeq8uG6m6ec8j9bdsG3FIE1RHM1"
                .into(),
            HashScheme::ShaCrypt,
            "rounds",
            999_999_999,
        ),
        (
            "$5$rounds=5000$x$rounds=999999999$y".into(),
            HashScheme::ShaCrypt,
            "rounds",
            999_999_999,
        ),
        (
            format!("$argon2id$v=19$m=19456,t=199999999,p=1${SALT}${HASH}"),
            HashScheme::Argon2,
            "t",
            199_999_999,
        ),
        (
            format!("$argon2id$v=19$m=1048576,t=2,p=1${SALT}${HASH}"),
            HashScheme::Argon2,
            "m",
            1_048_576,
        ),
        (
            format!("$argon2i$v=19$m=65536,t=2,p=255${SALT}${HASH}"),
            HashScheme::Argon2,
            "p",
            255,
        ),
        // A repeated parameter counts whichever occurrence the hasher reads.
        (
            format!("$argon2d$v=19$m=64,t=1,p=1,m=1048576${SALT}${HASH}"),
            HashScheme::Argon2,
            "m",
            1_048_576,
        ),
    ]
}

#[test]
fn hashes_over_the_cost_limits_are_refused_unverified() {
    let policy = PasswordPolicy::fast_insecure_for_tests();
    for (hash, scheme, parameter, value) in over_limit() {
        let verification = policy.verify(&"password".into(), &hash);
        let Verification::OverCostLimit(exceeded) = verification else {
            panic!("{hash}: {verification:?}");
        };
        assert_eq!(
            (exceeded.scheme, exceeded.parameter, exceeded.value),
            (scheme, parameter, value),
            "{hash}"
        );
        assert!(matches!(
            HashLimits::default().check(&hash),
            Err(HashCheckError::OverLimit(CostLimitExceeded { .. }))
        ));
    }
}

#[test]
fn costs_not_written_as_plain_digits_are_unreadable() {
    let policy = PasswordPolicy::fast_insecure_for_tests();
    for hash in [
        "$2b$+4$LhayLxezLhK1LhWvKxCyLOj0j1u.Kj0jZ0pEmm134uzrQlFvQJLF6".to_owned(),
        "$6$rounds=+999999999$salt$hash".to_owned(),
        format!("$scrypt$ln=0x1e,r=8,p=1${SALT}${HASH}"),
        format!("$argon2id$v=19$m=,t=2,p=1${SALT}${HASH}"),
        format!("$pbkdf2-sha256$i=1e9${SALT}${HASH}"),
        format!("$argon2id$v=19$m=64,t=1,p=1${}${HASH}", "A".repeat(600)),
    ] {
        assert_eq!(
            policy.verify(&"password".into(), &hash),
            Verification::UnreadableHash,
            "{hash}"
        );
    }
}

#[test]
fn hashes_within_the_limits_still_verify() {
    let policy = PasswordPolicy::fast_insecure_for_tests();
    let hash = policy.hash("s3cret").unwrap();
    assert!(matches!(
        policy.verify(&"s3cret".into(), &hash),
        Verification::Valid { .. }
    ));
    // Raised limits admit what the defaults refuse (and the hasher then reads it).
    let raised = HashLimits {
        bcrypt_cost: 31,
        ..HashLimits::default()
    };
    assert_eq!(
        raised.check("$2b$31$LhayLxezLhK1LhWvKxCyLOj0j1u.Kj0jZ0pEmm134uzrQlFvQJLF6"),
        Ok(HashScheme::Bcrypt)
    );
    // A policy whose own parameters are above its limits cannot be built.
    let tight = HashLimits {
        argon2_m_kib: 8,
        ..HashLimits::default()
    };
    assert!(PasswordPolicy::owasp().with_limits(tight).is_err());
}

fn assert_refused(result: Result<impl std::fmt::Debug, StoreError>, scheme: HashScheme) {
    match result {
        Err(StoreError::HashCost(exceeded)) => assert_eq!(exceeded.scheme, scheme),
        other => panic!("expected StoreError::HashCost, got {other:?}"),
    }
}

#[tokio::test]
async fn stores_refuse_to_write_hashes_over_the_limits() {
    let memory: Arc<dyn UserStore> = Arc::new(MemoryUserStore::new());
    let sqlite: Arc<dyn UserStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    for store in [memory, sqlite] {
        for (hash, scheme, _, _) in over_limit() {
            assert_refused(
                store
                    .create_account(NewAccount::new("victim").password_hash(hash.clone()))
                    .await,
                scheme,
            );
        }
        // Nothing was written.
        assert!(store.find_by_login("victim", false).await.unwrap().is_none());
        let ok = PasswordPolicy::fast_insecure_for_tests().hash("pw").unwrap();
        let account = store
            .create_account(NewAccount::new("victim").password_hash(ok.clone()))
            .await
            .unwrap();
        for (hash, scheme, _, _) in over_limit() {
            assert_refused(store.set_password_hash(&account.id, &hash).await, scheme);
        }
        let kept = store.account(&account.id).await.unwrap().unwrap();
        assert_eq!(kept.password_hash.as_deref(), Some(ok.as_str()));
    }
}

/// A hash that reached the store anyway (a legacy import into a store with raised
/// limits): a login for that account answers like a wrong password, without the
/// hash's work, and with an error-level audit event.
#[tokio::test]
async fn a_login_against_a_hash_over_the_limits_is_a_wrong_password() {
    let unlimited = HashLimits {
        argon2_m_kib: u32::MAX,
        argon2_t: u32::MAX,
        argon2_p: u32::MAX,
        scrypt_ln: u32::MAX,
        scrypt_r: u32::MAX,
        scrypt_p: u32::MAX,
        bcrypt_cost: u32::MAX,
        pbkdf2_iterations: u32::MAX,
        sha_crypt_rounds: u32::MAX,
    };
    let store = Arc::new(MemoryUserStore::new().with_hash_limits(unlimited));
    let mut logins = Vec::new();
    for (i, (hash, _, _, _)) in over_limit().into_iter().enumerate() {
        // Even "unlimited" refuses an iteration count beyond u32.
        let login = format!("legacy{i}");
        if store
            .create_account(NewAccount::new(login.clone()).password_hash(hash))
            .await
            .is_ok()
        {
            logins.push(login);
        }
    }
    assert_eq!(logins.len(), over_limit().len() - 1);
    let local = LocalModule::builder("local", store.clone())
        .passwords(Arc::new(PasswordPolicy::fast_insecure_for_tests()))
        .build();
    let chain = AuthChain::builder(store.clone()).module(local).build().unwrap();
    for login in logins {
        let request =
            AuthRequest::new("127.0.0.1:40000".parse().unwrap()).with_password(login.clone(), "password");
        let err = chain.login(&request).await.unwrap_err();
        assert!(matches!(err, AuthError::InvalidCredentials), "{login}: {err:?}");
    }
}

#[test]
fn the_passwords_section_sets_the_limits() {
    let config = authchain::config::Config::from_toml(
        r#"
chain = []
[passwords.max_cost]
bcrypt_cost = 12
scrypt_ln = 16
"#,
    )
    .unwrap();
    let policy = config.password_policy().unwrap();
    assert_eq!(policy.limits().bcrypt_cost, 12);
    assert_eq!(policy.limits().scrypt_ln, 16);
    assert_eq!(policy.limits().pbkdf2_iterations, 2_000_000);
    assert!(matches!(
        policy.verify(
            &"x".into(),
            "$2b$13$LhayLxezLhK1LhWvKxCyLOj0j1u.Kj0jZ0pEmm134uzrQlFvQJLF6"
        ),
        Verification::OverCostLimit(_)
    ));
    // The policy's own parameters above its limits: refused, naming the key.
    let err = authchain::config::Config::from_toml(
        r#"
chain = []
[passwords]
argon2_m_cost_kib = 300000
"#,
    )
    .and_then(|c| c.password_policy().map(|_| ()))
    .unwrap_err();
    assert!(
        matches!(&err, authchain::ConfigError::Invalid { key, .. } if key == "passwords.max_cost"),
        "{err:?}"
    );
    assert!(authchain::config::Config::from_toml("chain = []\n[passwords.max_cost]\nbcrypt = 12\n").is_err());
}
