//! The local module: argon2id, legacy hashes verified and upgraded, exact
//! passwords, login names, linked accounts and break-glass fallback.

mod common;

use std::sync::Arc;

use authchain::account::{
    LoginAttribute, LoginNames, MemoryUserStore, NewAccount, PasswordPolicy, UserStore, Verification,
};
use authchain::modules::LocalModule;
use authchain::{AuthChain, AuthError, RequestError};
use common::{password_request, principal};

const LEGACY_PASSWORD: &str = "Legacy-Pa55";

/// Hashes made by other software (Python's crypt / hashlib, see the test below),
/// all of `Legacy-Pa55`.
const LEGACY: &[(&str, &str)] = &[
    (
        "bcrypt",
        "$2b$04$NKnTd5o2mbyDuBRgZK1YtebsVn01gEgwcVHHsXShn1yuS1v.ymiPS",
    ),
    (
        "sha512-crypt",
        "$6$rounds=5000$saltsaltsalt$.nS2p2JZvCBdiSFMJuBghFTnupxqtM2zAW74H5j.ya5dDl7Wp3npIXVHjSqMoBRuTh09XtUl933iFpkc0NHlG/",
    ),
    (
        "sha256-crypt",
        "$5$saltsaltsalt$M8AjkPamMeFeW5B2bGpbtTx44N3B5Q5Ms6r1MzZTGW9",
    ),
    (
        "pbkdf2-sha256",
        "$pbkdf2-sha256$i=10000,l=32$MDEyMzQ1Njc4OWFiY2RlZg$/qlilDeG4zEjWGmX2v0w/re1PY7gC69CZhg9gyWLha8",
    ),
    (
        "pbkdf2-sha512",
        "$pbkdf2-sha512$i=10000,l=64$MDEyMzQ1Njc4OWFiY2RlZg$TlcBzWZue2IGQOHKMVUrVSIBmQpqQWO9gYFAP527HhEtqtDT+voStepWo9OboK7xfBwnO8tF9doTd8K7r5ygAg",
    ),
    (
        "scrypt",
        "$scrypt$ln=10,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg$ilgOq+uRSPxOVKKwNSn7WhuS0y9ueSUEXosOmzifOG8",
    ),
];

async fn chain_with(store: Arc<MemoryUserStore>, module: LocalModule) -> AuthChain {
    AuthChain::builder(store).module(module).build().unwrap()
}

#[tokio::test]
async fn each_legacy_format_verifies_and_is_upgraded_on_login() {
    let policy = common::passwords();
    for (name, hash) in LEGACY {
        let store = Arc::new(MemoryUserStore::new());
        let account = store
            .create_account(NewAccount::new("legacy").password_hash(*hash))
            .await
            .unwrap();
        let chain = chain_with(store.clone(), common::local(store.clone())).await;

        // Wrong password first: rejected, hash untouched.
        let err = chain
            .login(&password_request("legacy", "legacy-pa55"))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::InvalidCredentials, "{name}");
        assert_eq!(
            store
                .account(&account.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .as_deref(),
            Some(*hash)
        );

        principal(chain.login(&password_request("legacy", LEGACY_PASSWORD)).await);
        let upgraded = store
            .account(&account.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        assert!(
            upgraded.starts_with("$argon2id$"),
            "{name} was not re-hashed: {upgraded}"
        );
        assert_eq!(
            policy.verify(&LEGACY_PASSWORD.into(), &upgraded),
            Verification::Valid { needs_rehash: false },
            "{name}"
        );
        // And the upgraded hash logs in.
        principal(chain.login(&password_request("legacy", LEGACY_PASSWORD)).await);
    }
}

#[tokio::test]
async fn weaker_argon2_parameters_are_upgraded_too() {
    let weak = PasswordPolicy::argon2id(8, 1, 1).unwrap().hash("pw").unwrap();
    let store = Arc::new(MemoryUserStore::new());
    let account = store
        .create_account(NewAccount::new("a").password_hash(weak.clone()))
        .await
        .unwrap();
    let stronger = Arc::new(PasswordPolicy::argon2id(16, 1, 1).unwrap());
    let module = LocalModule::builder("local", store.clone())
        .passwords(stronger)
        .build();
    principal(
        chain_with(store.clone(), module)
            .await
            .login(&password_request("a", "pw"))
            .await,
    );
    let now = store
        .account(&account.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert_ne!(now, weak);
    assert!(now.contains("m=16"), "{now}");
}

#[tokio::test]
async fn passwords_are_exact() {
    let store = common::store_with_admin().await;
    let chain = chain_with(store.clone(), common::local(store)).await;
    for wrong in [
        "Break-glass",
        "BREAK-GLASS",
        "break-glass ",
        " break-glass",
        "break-glas",
        "",
    ] {
        assert_eq!(
            chain.login(&password_request("root", wrong)).await.unwrap_err(),
            AuthError::InvalidCredentials,
            "{wrong:?}"
        );
    }
    principal(chain.login(&password_request("root", "break-glass")).await);
}

#[tokio::test]
async fn unknown_users_and_unreadable_hashes_are_invalid_credentials() {
    let store = common::store_with_admin().await;
    store
        .create_account(NewAccount::new("broken").password_hash("plaintext"))
        .await
        .unwrap();
    store.create_account(NewAccount::new("nopass")).await.unwrap();
    let chain = chain_with(store.clone(), common::local(store)).await;
    for login in ["nobody", "broken", "nopass", "root\0", "*", "root)(uid=*"] {
        assert_eq!(
            chain
                .login(&password_request(login, "plaintext"))
                .await
                .unwrap_err(),
            AuthError::InvalidCredentials,
            "{login:?}"
        );
    }
}

#[tokio::test]
async fn absurd_passwords_are_refused_before_hashing() {
    let store = common::store_with_admin().await;
    let module = LocalModule::builder("local", store.clone())
        .passwords(common::passwords())
        .max_password_bytes(std::num::NonZeroUsize::new(64).unwrap())
        .build();
    let chain = chain_with(store, module).await;
    let err = chain
        .login(&password_request("root", &"x".repeat(65)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::TooLong {
                field: "password",
                max: 64
            })
        ),
        "{err:?}"
    );
    assert_eq!(err.status_code(), 400);
    let err = chain
        .login(&password_request("root", &"x".repeat(1 << 20)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidRequest(RequestError::TooLong {
                field: "password",
                ..
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn linked_accounts_need_local_account_fallback() {
    let store = Arc::new(MemoryUserStore::new());
    let hash = common::passwords().hash("pw").unwrap();
    store
        .create_account(
            NewAccount::new("carol")
                .password_hash(hash)
                .linked_to("corp-ldap", "uid=carol"),
        )
        .await
        .unwrap();
    let locked = chain_with(store.clone(), common::local(store.clone())).await;
    assert_eq!(
        locked.login(&password_request("carol", "pw")).await.unwrap_err(),
        AuthError::InvalidCredentials
    );

    let fallback = LocalModule::builder("local", store.clone())
        .passwords(common::passwords())
        .local_account_fallback(true)
        .build();
    let p = principal(
        chain_with(store, fallback)
            .await
            .login(&password_request("carol", "pw"))
            .await,
    );
    assert_eq!(p.login, "carol");
}

#[tokio::test]
async fn login_names_case_and_email() {
    let store = Arc::new(MemoryUserStore::new());
    let hash = common::passwords().hash("pw").unwrap();
    store
        .create_account(
            NewAccount::new("Dave")
                .email("Dave@Example.org")
                .password_hash(hash),
        )
        .await
        .unwrap();
    let with = |case_insensitive, attribute| {
        let names = LoginNames {
            case_insensitive,
            attribute,
        };
        LocalModule::builder("local", store.clone())
            .passwords(common::passwords())
            .login_names(names)
            .build()
    };
    let attempt = |module: LocalModule, login: &'static str| {
        let store = store.clone();
        async move {
            chain_with(store, module)
                .await
                .login(&password_request(login, "pw"))
                .await
        }
    };
    use LoginAttribute::*;
    assert!(attempt(with(false, Username), "Dave").await.is_ok());
    assert_eq!(
        attempt(with(false, Username), "dave").await.unwrap_err(),
        AuthError::InvalidCredentials
    );
    assert!(attempt(with(true, Username), "dAVE").await.is_ok());
    assert!(attempt(with(true, Email), "dave@example.org").await.is_ok());
    assert_eq!(
        attempt(with(true, Email), "Dave").await.unwrap_err(),
        AuthError::InvalidCredentials
    );
    assert!(
        attempt(with(true, AutoDetectEmail), "DAVE@example.org")
            .await
            .is_ok()
    );
    assert!(attempt(with(true, AutoDetectEmail), "dave").await.is_ok());
    assert_eq!(
        attempt(with(false, AutoDetectEmail), "dave@example.org")
            .await
            .unwrap_err(),
        AuthError::InvalidCredentials
    );
}

#[tokio::test]
async fn disabled_account_with_right_password_is_refused_and_hash_kept() {
    let store = Arc::new(MemoryUserStore::new());
    let (_, bcrypt) = LEGACY[0];
    let account = store
        .create_account(NewAccount::new("erin").password_hash(bcrypt).disabled(true))
        .await
        .unwrap();
    let chain = chain_with(store.clone(), common::local(store.clone())).await;
    assert_eq!(
        chain
            .login(&password_request("erin", LEGACY_PASSWORD))
            .await
            .unwrap_err(),
        AuthError::AccountDisabled
    );
    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(
        stored.password_hash.as_deref(),
        Some(bcrypt),
        "a refused login writes nothing"
    );
    assert_eq!(stored.last_login, None);
}

#[test]
fn secrets_never_print() {
    let request = password_request("root", "hunter2");
    let printed = format!("{request:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("[redacted]"));
    let store = MemoryUserStore::new();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let account = rt
        .block_on(store.create_account(NewAccount::new("x").password_hash("$argon2id$secret-hash")))
        .unwrap();
    assert!(!format!("{account:?}").contains("secret-hash"));
}
