//! The LDAP module against a real Active Directory domain controller (Debian's Samba
//! AD DC, tests/peers/samba.sh): UPN, down-level and search-then-bind logins,
//! nested groups through the in-chain matching rule, `objectGUID` subjects, AD's bind
//! sub-codes, LDAPS and StartTLS with the DC's CA, and search references not chased.
#![cfg(feature = "ldap")]

#[path = "common/samba.rs"]
mod samba;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use authchain::account::{
    AttemptStore, FailureCount, MemoryAttemptStore, MemoryUserStore, Provisioning, ThrottlePolicy,
};
use authchain::chain::ModuleSettings;
use authchain::modules::ldap::{GroupSource, LdapError, LdapModule, LdapSettings, LdapUrl};
use authchain::{
    AccountRestriction, AuthChain, AuthError, AuthRequest, Authenticator, Identity, LoginResult, ModuleError,
    Outcome, SecretSource, StoreError,
};
use samba::{
    ALICE, BASE_DN, BOB, DISABLED, DOMAIN, ENGINEERS, EXPIRED, LOCKED, LOGON_HOURS, MUST_CHANGE, STAFF,
    Samba, UPN_SUFFIX, password,
};

const ID: &str = "corp-ad";

fn request(login: &str, password: &str) -> AuthRequest {
    AuthRequest::new("127.0.0.1:40000".parse().unwrap()).with_password(login, password)
}

fn url(url: &str) -> LdapUrl {
    url.parse().unwrap()
}

/// Active Directory attribute names, users looked up from the domain root by
/// `sAMAccountName` (the root answers search references too), over `url`.
fn ad_settings(url_text: &str) -> LdapSettings {
    let mut s = LdapSettings::new([url(url_text)]);
    s.user_search_base = Some(BASE_DN.into());
    s.user_search_filter = "(sAMAccountName=%s)".into();
    s.subject_attribute = "objectGUID".into();
    s.login_attribute = "sAMAccountName".into();
    s.display_name_attribute = "displayName".into();
    s.connect_timeout = Duration::from_secs(5);
    s.operation_timeout = Duration::from_secs(5);
    s
}

/// Direct binds with `bind_format` over plain ldap://.
fn direct(dc: &Samba, bind_format: &str) -> LdapModule {
    let mut s = ad_settings(&dc.ldap_url);
    s.bind_format = Some(bind_format.into());
    LdapModule::new(ID, s).unwrap()
}

/// Search-then-bind as the service account; nested groups when `nested`.
fn search(dc: &Samba, nested: bool) -> LdapModule {
    let mut s = ad_settings(&dc.ldap_url);
    s.bind_dn = Some(dc.service_dn.clone());
    s.bind_password = Some(SecretSource::Inline(dc.service_password.as_str().into()));
    if nested {
        s.groups = GroupSource::Search;
        s.group_search_base = Some(BASE_DN.into());
        s.nested_groups = true;
    }
    LdapModule::new(ID, s).unwrap()
}

async fn login(module: &LdapModule, user: &str, password: &str) -> Result<Identity, AuthError> {
    match module.authenticate(&request(user, password)).await? {
        Outcome::Authenticated(identity) => Ok(identity),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn groups(identity: &Identity) -> BTreeSet<&str> {
    identity.groups.iter().collect()
}

/// The user's `objectGUID` as Samba itself prints it.
fn guid_from_samba(dc: &Samba, user: &str) -> String {
    let out = dc.tool(&["user", "show", user, "--attributes=objectGUID"]);
    out.lines()
        .find_map(|l| l.strip_prefix("objectGUID: "))
        .unwrap_or_else(|| panic!("no objectGUID in {out}"))
        .trim()
        .to_owned()
}

fn is_guid_text(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

#[tokio::test]
async fn upn_bind_gives_the_object_guid_as_subject_in_text_form() {
    let dc = Samba::shared();
    let module = direct(dc, &format!("%s@{UPN_SUFFIX}"));
    let alice = login(&module, ALICE, &password(ALICE)).await.unwrap();
    assert!(is_guid_text(&alice.subject), "subject {:?}", alice.subject);
    assert_eq!(alice.subject, guid_from_samba(dc, ALICE));
    assert_eq!(alice.login, ALICE);
    assert_eq!(alice.email.as_deref(), Some("alice@example.test"));
    // memberOf holds the direct groups only.
    assert_eq!(groups(&alice), BTreeSet::from([STAFF]));

    let bob = login(&module, BOB, &password(BOB)).await.unwrap();
    assert_ne!(bob.subject, alice.subject);
    assert_eq!(groups(&bob), BTreeSet::from([ENGINEERS]));

    // Users who type their whole UPN: bound as typed, found by userPrincipalName.
    let mut s = ad_settings(&dc.ldap_url);
    s.bind_format = Some("%s".into());
    s.user_search_filter = "(userPrincipalName=%s)".into();
    let typed = LdapModule::new(ID, s).unwrap();
    let by_upn = login(&typed, &samba::upn(ALICE), &password(ALICE)).await.unwrap();
    assert_eq!(by_upn.subject, alice.subject);
    assert_eq!(by_upn.login, ALICE);
    assert!(matches!(
        login(&typed, &samba::upn(ALICE), "wrong").await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn down_level_bind_is_the_same_user() {
    let dc = Samba::shared();
    let upn = login(&direct(dc, &format!("%s@{UPN_SUFFIX}")), ALICE, &password(ALICE))
        .await
        .unwrap();
    let down_level = direct(dc, &format!("{DOMAIN}\\%s"));
    let alice = login(&down_level, ALICE, &password(ALICE)).await.unwrap();
    assert_eq!(alice.subject, upn.subject);
    assert_eq!(alice.login, ALICE);
    assert!(matches!(
        login(&down_level, ALICE, "wrong").await,
        Err(AuthError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn search_then_bind_by_sam_account_name_with_nested_groups() {
    let dc = Samba::shared();
    let nested = search(dc, true);
    let alice = login(&nested, ALICE, &password(ALICE)).await.unwrap();
    assert_eq!(alice.subject, guid_from_samba(dc, ALICE));
    // alice is in staff, staff is in engineers: the in-chain rule finds both.
    assert_eq!(groups(&alice), BTreeSet::from([STAFF, ENGINEERS]));
    assert!(
        nested
            .group_filter_for(&samba::dn(ALICE), ALICE)
            .unwrap()
            .contains("1.2.840.113556.1.4.1941"),
    );
    let bob = login(&nested, BOB, &password(BOB)).await.unwrap();
    assert_eq!(groups(&bob), BTreeSet::from([ENGINEERS]));

    // Without nesting, memberOf: the direct group only.
    let flat = login(&search(dc, false), ALICE, &password(ALICE)).await.unwrap();
    assert_eq!(groups(&flat), BTreeSet::from([STAFF]));
    assert_eq!(flat.subject, alice.subject);

    for (user, password) in [(ALICE, "wrong"), ("nobody", "nobody-password")] {
        assert!(
            matches!(
                login(&nested, user, password).await,
                Err(AuthError::InvalidCredentials)
            ),
            "{user}"
        );
    }
}

/// An [`AttemptStore`] that counts the failures recorded in it.
#[derive(Default)]
struct CountingAttempts {
    inner: MemoryAttemptStore,
    recorded: AtomicUsize,
}

impl CountingAttempts {
    fn recorded(&self) -> usize {
        self.recorded.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl AttemptStore for CountingAttempts {
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError> {
        self.inner.failures_since(key, since).await
    }
    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError> {
        self.recorded.fetch_add(1, Ordering::SeqCst);
        self.inner.record_failure(key, at, window).await
    }
    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.inner.clear(key).await
    }
}

/// A chain of the module alone, throttled after `max_attempts` failures.
fn throttled_chain(module: LdapModule, max_attempts: u32) -> (AuthChain, Arc<CountingAttempts>) {
    let attempts = Arc::new(CountingAttempts::default());
    let policy = ThrottlePolicy {
        max_attempts,
        max_attempts_per_ip: max_attempts,
        window: Duration::from_secs(600),
    };
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module_with(module, ModuleSettings::new().provisioning(Provisioning::Create))
        .throttle(policy, attempts.clone())
        .build()
        .unwrap();
    (chain, attempts)
}

fn restricted(result: &Result<impl std::fmt::Debug, AuthError>, expected: AccountRestriction) -> bool {
    matches!(
        result,
        Err(AuthError::AccountRestricted { module, restriction }) if module == ID && *restriction == expected
    )
}

#[tokio::test]
async fn ad_sub_codes_are_distinct_outcomes_and_never_counted_as_wrong_passwords() {
    let dc = Samba::shared();
    let cases = [
        (DISABLED, AccountRestriction::Disabled),
        (EXPIRED, AccountRestriction::Expired),
        (MUST_CHANGE, AccountRestriction::PasswordMustChange),
        (LOCKED, AccountRestriction::LockedOut),
        (LOGON_HOURS, AccountRestriction::LogonHours),
    ];
    for module in [direct(dc, &format!("%s@{UPN_SUFFIX}")), search(dc, true)] {
        // The module's own answers.
        for (user, expected) in cases {
            let result = login(&module, user, &password(user)).await;
            assert!(restricted(&result, expected), "{user}: {result:?}");
            let err = result.unwrap_err();
            assert_eq!(err.status_code(), http::StatusCode::FORBIDDEN);
            assert_eq!(err.kind(), "account_restricted");
        }
        // With a wrong password AD says 52e for a disabled, expired, must-change or
        // logon-hours account (nothing learned), and 775 for a locked one.
        for user in [DISABLED, EXPIRED, MUST_CHANGE, LOGON_HOURS] {
            assert!(
                matches!(
                    login(&module, user, "wrong").await,
                    Err(AuthError::InvalidCredentials)
                ),
                "{user}"
            );
        }
        let locked = login(&module, LOCKED, "wrong").await;
        assert!(restricted(&locked, AccountRestriction::LockedOut), "{locked:?}");

        // Through a throttled chain: three restricted answers in a row with a limit
        // of two attempts are all answered, none recorded as a failure.
        let (chain, attempts) = throttled_chain(module, 2);
        for _ in 0..3 {
            for (user, expected) in cases {
                let result = chain.login(&request(user, &password(user))).await;
                assert!(
                    restricted(&result, expected),
                    "{user} through the chain: {result:?}"
                );
            }
        }
        assert_eq!(
            attempts.recorded(),
            0,
            "an account restriction was counted as a failure"
        );

        // A wrong password (52e) is: one failure for the name, one for the address.
        assert!(matches!(
            chain.login(&request(ALICE, "wrong")).await,
            Err(AuthError::InvalidCredentials)
        ));
        assert_eq!(attempts.recorded(), 2);
    }
}

/// Down-level binds over TLS trusting `ca`, with `starttls` over ldap://.
fn tls_module(url_text: &str, starttls: bool, ca: &std::path::Path) -> LdapModule {
    let mut s = ad_settings(url_text);
    s.bind_format = Some(format!("{DOMAIN}\\%s"));
    s.starttls = starttls;
    s.ca_file = Some(ca.to_owned());
    LdapModule::new(ID, s).unwrap()
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_dc_ca() {
    let dc = Samba::shared();
    let ldaps_by_name = format!("ldaps://{}:636", dc.hostname);
    for (url_text, starttls) in [
        (dc.ldaps_url.as_str(), false),
        ("ldaps://localhost:636", false),
        (ldaps_by_name.as_str(), false),
        (dc.ldap_url.as_str(), true),
        ("ldap://localhost:389", true),
    ] {
        let module = tls_module(url_text, starttls, &dc.ca_file);
        let alice = login(&module, ALICE, &password(ALICE)).await;
        assert!(
            alice.as_ref().is_ok_and(|a| is_guid_text(&a.subject)),
            "{url_text} starttls={starttls}: {alice:?}"
        );
        // The sub-codes arrive over TLS too.
        assert!(restricted(
            &login(&module, DISABLED, &password(DISABLED)).await,
            AccountRestriction::Disabled
        ));

        // Another CA: the handshake fails, an outage that names the URL.
        let wrong = tls_module(url_text, starttls, &dc.wrong_ca_file);
        match login(&wrong, ALICE, &password(ALICE)).await {
            Err(AuthError::Unavailable {
                cause: ModuleError::Ldap(LdapError::Unreachable(failures)),
                ..
            }) => {
                assert_eq!(failures.len(), 1);
                assert!(matches!(failures[0].error, LdapError::Connect(_)), "{failures:?}");
            }
            other => panic!("{url_text} with the wrong CA: {other:?}"),
        }
    }
}

#[tokio::test]
async fn search_references_from_the_domain_root_are_not_chased() {
    let dc = Samba::shared();
    // The DC answers a subtree search from the domain root with search references
    // (to ldap://example.test/CN=Configuration,..., a name that does not resolve
    // here): the module must use the entries and leave the references alone.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&dc.ldap_url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&dc.service_dn, &dc.service_password)
        .await
        .unwrap()
        .success()
        .unwrap();
    let ldap3::SearchResult(entries, result) = ldap
        .search(
            BASE_DN,
            ldap3::Scope::Subtree,
            "(sAMAccountName=alice)",
            vec!["dn"],
        )
        .await
        .unwrap();
    assert_eq!(result.rc, 0);
    assert!(!result.refs.is_empty(), "the DC sent no search reference");
    assert_eq!(entries.len(), 1);
    let _ = ldap.unbind().await;

    // Search mode (user search and nested group search from the root) and
    // direct-bind mode (the entry looked up from the root) both succeed, quickly.
    for module in [search(dc, true), direct(dc, &format!("%s@{UPN_SUFFIX}"))] {
        let started = Instant::now();
        let alice = login(&module, ALICE, &password(ALICE)).await.unwrap();
        assert_eq!(alice.login, ALICE);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    // A login through the chain, provisioning the account from the AD identity.
    let (chain, _) = throttled_chain(search(dc, true), 5);
    let LoginResult::Authenticated(principal) = chain.login(&request(ALICE, &password(ALICE))).await.unwrap()
    else {
        panic!("no principal")
    };
    assert!(is_guid_text(&principal.identity.subject));
}

#[test]
fn a_second_dc_waits_for_the_machine_lock() {
    let _dc = Samba::shared();
    // The shared DC holds the lock: another start waits (here 1 s), then gives up
    // without touching the running DC.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("samba-second-{}", std::process::id()));
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/samba.sh"))
        .arg("start")
        .arg(&dir)
        .env("SAMBA_LOCK_WAIT", "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another DC holds"), "{stderr}");
}
