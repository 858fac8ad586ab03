//! The LDAP module against a real OpenLDAP server (tests/peers/slapd.sh).
#![cfg(feature = "ldap")]

#[path = "common/ldap_proxy.rs"]
mod ldap_proxy;
#[path = "common/peer.rs"]
mod peer;
#[path = "ldap/proxy.rs"]
mod proxy;
#[path = "ldap/slapd.rs"]
mod slapd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use authchain::account::{MemoryUserStore, NewAccount, PasswordPolicy, Provisioning, RoleMapping, UserStore};
use authchain::chain::ModuleSettings;
use authchain::modules::LocalModule;
use authchain::modules::ldap::{
    AD_NESTED_GROUP_FILTER, GroupNames, GroupSource, LdapError, LdapModule, LdapOperation, LdapSettings,
    LdapUrl, UrlFailure,
};
use authchain::settings::ModuleSettingsType;
use authchain::{
    AuthChain, AuthError, AuthRequest, Authenticator, Identity, LoginResult, ModuleError, Outcome,
    RequestError, SecretSource,
};
use slapd::{BASE_DN, GROUPS, PEOPLE, Slapd};

const SHORT: Duration = Duration::from_secs(1);

fn request(login: &str, password: &str) -> AuthRequest {
    AuthRequest::new("127.0.0.1:40000".parse().unwrap()).with_password(login, password)
}

const ID: &str = "corp-ldap";

fn urls<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Vec<LdapUrl> {
    urls.into_iter().map(|u| u.as_ref().parse().unwrap()).collect()
}

/// Settings for `url`, with every other field at its default.
fn settings(url: &str) -> LdapSettings {
    LdapSettings::new(urls([url]))
}

fn build(settings: LdapSettings) -> LdapModule {
    LdapModule::new(ID, settings).unwrap()
}

/// Search mode over plain ldap:// with the service account, memberOf groups.
fn search_settings(server: &Slapd) -> LdapSettings {
    let mut s = settings(&server.ldap_url);
    s.bind_dn = Some(server.service_dn.clone());
    s.bind_password = Some(SecretSource::Inline(server.service_password.as_str().into()));
    s.user_search_base = Some(PEOPLE.into());
    s.user_search_filter = "(uid=%s)".into();
    s.connect_timeout = Duration::from_secs(5);
    s.operation_timeout = Duration::from_secs(5);
    s
}

/// [`search_settings`] changed by `change`, built.
fn search_module(server: &Slapd, change: impl FnOnce(&mut LdapSettings)) -> LdapModule {
    let mut s = search_settings(server);
    change(&mut s);
    build(s)
}

/// Groups from a search under `base` with the default filter `(member=%s)`.
fn group_search(s: &mut LdapSettings, base: &str) {
    s.groups = GroupSource::Search;
    s.group_search_base = Some(base.into());
    s.group_search_filter = Some("(member=%s)".into());
}

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

async fn login(module: &LdapModule, login: &str, password: &str) -> Result<Identity, AuthError> {
    match module.authenticate(&request(login, password)).await? {
        Outcome::Authenticated(identity) => Ok(identity),
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn assert_rejected(result: Result<Identity, AuthError>, what: &str) {
    match result {
        Err(AuthError::InvalidCredentials)
        | Err(AuthError::InvalidRequest(RequestError::TooLong { field: "login", .. })) => {}
        other => panic!("{what}: expected a rejection, got {other:?}"),
    }
}

/// An outage of `corp-ldap` whose LDAP cause satisfies `cause`.
fn assert_unavailable(result: Result<Identity, AuthError>, what: &str, cause: impl Fn(&LdapError) -> bool) {
    match result {
        Err(AuthError::Unavailable {
            module,
            cause: ModuleError::Ldap(found),
            ..
        }) => {
            assert_eq!(module, "corp-ldap", "{what}");
            assert!(cause(&found), "{what}: unexpected cause {found:?}");
        }
        other => panic!("{what}: expected Unavailable with an LDAP cause, got {other:?}"),
    }
}

/// Every URL in `urls` failed, in that order, each as `failure` says.
fn unreachable(urls: &[&str], failure: impl Fn(&LdapError) -> bool) -> impl Fn(&LdapError) -> bool {
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    move |err| match err {
        LdapError::Unreachable(failures) => {
            failures
                .iter()
                .map(|f| f.url.as_str())
                .eq(urls.iter().map(String::as_str))
                && failures.iter().all(|UrlFailure { error, .. }| failure(error))
        }
        _ => false,
    }
}

fn connect_failed(err: &LdapError) -> bool {
    matches!(err, LdapError::Connect(_))
}

/// A port with nothing listening on it.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("ldap://127.0.0.1:{port}")
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[tokio::test]
async fn allowed_groups_and_email_domains_restrict_directory_users() {
    let server = Slapd::shared();
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .module_with(
            search_module(server, |_| {}),
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .allowed_groups(["admins"])
                .allowed_email_domains(["example.org"]),
        )
        .build()
        .unwrap();
    let LoginResult::Authenticated(alice) = chain.login(&request("alice", "alice-password")).await.unwrap()
    else {
        panic!("no principal")
    };
    assert_eq!(alice.login, "alice");
    // bob is in `staff` only: verified by the directory, refused by the rule, no account.
    let err = chain.login(&request("bob", "bob-password")).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::AccessDenied { module, rule: authchain::chain::AccessRule::AllowedGroups } if module == ID),
        "{err:?}"
    );
    assert!(store.find_by_login("bob", false).await.unwrap().is_none());
    // A wrong password is still a wrong password, not an access question.
    assert_eq!(
        chain.login(&request("bob", "wrong")).await.unwrap_err(),
        AuthError::InvalidCredentials
    );
}

#[tokio::test]
async fn good_password_gives_identity_groups_and_roles() {
    let server = Slapd::shared();
    let module = search_module(server, |_| {});
    let roles = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "user")
        .default_for_unmapped("guest")
        .build()
        .unwrap();
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store.clone())
        .module_with(
            module,
            ModuleSettings::new()
                .provisioning(Provisioning::Create)
                .roles(roles),
        )
        .build()
        .unwrap();

    let LoginResult::Authenticated(alice) = chain.login(&request("alice", "alice-password")).await.unwrap()
    else {
        panic!("no principal")
    };
    assert_eq!(alice.login, "alice");
    assert_eq!(alice.module, "corp-ldap");
    assert_eq!(alice.role_names().collect::<Vec<_>>(), ["admin", "user"]);
    let identity = &alice.identity;
    assert!(
        is_uuid(&identity.subject),
        "subject should be the entryUUID, got {}",
        identity.subject
    );
    assert_eq!(identity.email.as_deref(), Some("alice@example.org"));
    assert_eq!(identity.display_name.as_deref(), Some("Alice Liddell"));
    let mut groups: Vec<&str> = identity.groups.iter().collect();
    groups.sort();
    assert_eq!(groups, ["admins", "staff"]);
    assert_eq!(identity.attributes["dn"], [format!("uid=alice,{PEOPLE}")]);

    let LoginResult::Authenticated(carol) = chain.login(&request("carol", "carol-password")).await.unwrap()
    else {
        panic!("no principal")
    };
    assert!(carol.identity.groups.is_empty());
    assert_eq!(carol.role_names().collect::<Vec<_>>(), ["guest"]);
    // The second login of alice resolves to the same account (stable subject).
    let LoginResult::Authenticated(again) = chain.login(&request("alice", "alice-password")).await.unwrap()
    else {
        panic!("no principal")
    };
    assert_eq!(again.account_id, alice.account_id);
}

#[tokio::test]
async fn wrong_password_unknown_user_and_empty_password_are_rejected() {
    let server = Slapd::shared();
    let module = search_module(server, |_| {});
    assert!(login(&module, "alice", "alice-password").await.is_ok());
    assert_eq!(
        login(&module, "alice", "wrong").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        login(&module, "nobody", "alice-password").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        login(&module, "alice", "").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        login(&module, "", "alice-password").await,
        Err(AuthError::InvalidCredentials)
    );

    // An empty password never reaches a server (RFC 4513 unauthenticated bind):
    // against a dead server it is still a rejection, not an outage.
    let dead = dead_url();
    let offline = build({
        let mut s = settings(&dead);
        s.user_search_base = Some(PEOPLE.into());
        s
    });
    assert_eq!(
        login(&offline, "alice", "").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_unavailable(
        login(&offline, "alice", "alice-password").await,
        "dead server",
        unreachable(&[&dead], connect_failed),
    );

    // Not a password request: abstain.
    let ambient = AuthRequest::new("127.0.0.1:40000".parse().unwrap());
    assert_eq!(module.authenticate(&ambient).await.unwrap(), Outcome::Abstain);
}

const HOSTILE: &[&str] = &[
    "*",
    "alice)(uid=*",
    "*)(|(objectClass=*",
    "alice\\",
    "a*",
    "alice\0",
    "\\2a",
    "(uid=*)",
];

#[tokio::test]
async fn hostile_logins_never_match_another_entry() {
    let server = Slapd::shared();
    let search = search_module(server, |_| {});
    // Direct-bind mode as well: the login goes into a DN there.
    let direct = build({
        let mut s = settings(&server.ldap_url);
        s.bind_format = Some(format!("uid=%s,{PEOPLE}"));
        s
    });
    let long = "a".repeat(10 * 1024);
    let mut logins: Vec<&str> = HOSTILE.to_vec();
    logins.push(&long);
    for module in [&search, &direct] {
        for &hostile in &logins {
            // Every seeded password, so a wrongly matched entry would let us in.
            for password in ["alice-password", "bob-password", "service-password"] {
                let shown: String = hostile.chars().take(40).collect();
                assert_rejected(
                    login(module, hostile, password).await,
                    &format!("login {shown:?}"),
                );
            }
        }
        // The module still works afterwards.
        assert!(login(module, "alice", "alice-password").await.is_ok());
    }
}

#[tokio::test]
async fn a_filter_matching_several_entries_is_refused() {
    let server = Slapd::shared();
    let module = search_module(server, |s| s.user_search_filter = "(mail=%s)".into());
    let bob = login(&module, "bob@example.org", "bob-password").await.unwrap();
    assert_eq!(bob.login, "bob");
    // team@example.org is bob's and carol's: never pick one of them.
    for password in ["bob-password", "carol-password"] {
        let err = login(&module, "team@example.org", password).await.unwrap_err();
        // Answered like a wrong password: no hint that the login exists twice.
        assert_eq!(err, AuthError::InvalidCredentials, "{err:?}");
    }
}

#[tokio::test]
async fn direct_bind_escapes_the_dn() {
    let server = Slapd::shared();
    let module = build({
        let mut s = settings(&server.ldap_url);
        s.bind_format = Some(format!("uid=%s,{PEOPLE}"));
        s
    });
    let alice = login(&module, "alice", "alice-password").await.unwrap();
    assert!(is_uuid(&alice.subject));
    let mut groups: Vec<&str> = alice.groups.iter().collect();
    groups.sort();
    assert_eq!(groups, ["admins", "staff"]);
    // `smith, john` must become uid=smith\2c john (RFC 4514), or the bind fails.
    let smith = login(&module, "smith, john", "smith-password").await.unwrap();
    assert_eq!(smith.login, "smith, john");
    assert_eq!(smith.groups, ["staff"]);
    assert_eq!(
        login(&module, "alice", "bob-password").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        login(&module, "nobody", "x").await,
        Err(AuthError::InvalidCredentials)
    );

    // The entry found by a search after the bind (the AD `user@domain` shape), and
    // groups searched as the user (no service account).
    let searched = build({
        let mut s = settings(&server.ldap_url);
        s.bind_format = Some(format!("uid=%s,{PEOPLE}"));
        s.user_search_base = Some(PEOPLE.into());
        s.user_search_filter = "(uid=%s)".into();
        group_search(&mut s, GROUPS);
        s
    });
    let bob = login(&searched, "bob", "bob-password").await.unwrap();
    assert_eq!(bob.email.as_deref(), Some("bob@example.org"));
    assert_eq!(bob.groups, ["staff"]);
    assert_eq!(
        login(&searched, "bob", "alice-password").await,
        Err(AuthError::InvalidCredentials)
    );
}

#[tokio::test]
async fn groups_from_a_group_search() {
    let server = Slapd::shared();
    let by_name = search_module(server, |s| group_search(s, GROUPS));
    let alice = login(&by_name, "alice", "alice-password").await.unwrap();
    let mut groups: Vec<&str> = alice.groups.iter().collect();
    groups.sort();
    assert_eq!(groups, ["admins", "staff"]);
    // A DN with an escaped comma is matched as a DN, not as text.
    let smith = login(&by_name, "smith, john", "smith-password").await.unwrap();
    assert_eq!(smith.groups, ["staff"]);
    let carol = login(&by_name, "carol", "carol-password").await.unwrap();
    assert!(carol.groups.is_empty());

    let by_dn = search_module(server, |s| {
        group_search(s, GROUPS);
        s.group_names = GroupNames::Dn;
    });
    let bob = login(&by_dn, "bob", "bob-password").await.unwrap();
    assert_eq!(bob.groups, [format!("cn=staff,{GROUPS}")]);

    // memberOf by DN, and a role mapping that matches DNs by their first RDN.
    let member_of_dn = search_module(server, |s| s.group_names = GroupNames::Dn);
    let alice = login(&member_of_dn, "alice", "alice-password").await.unwrap();
    assert!(
        alice.groups.contains(&format!("cn=admins,{GROUPS}")),
        "{:?}",
        alice.groups
    );
    let roles = RoleMapping::builder()
        .rule("admins", "admin")
        .match_dn(true)
        .build()
        .unwrap();
    assert!(roles.map(&alice.groups).contains("admin"));

    // A missing search base is an outage (and an error in the log), not "no groups".
    let typo = search_module(server, |s| group_search(s, "ou=gruops,dc=example,dc=org"));
    assert_unavailable(
        login(&typo, "alice", "alice-password").await,
        "missing group base",
        |err| {
            matches!(err, LdapError::NoSuchBase { setting: "group_search_base", base }
                if base == "ou=gruops,dc=example,dc=org")
        },
    );
    let typo = search_module(server, |s| {
        s.user_search_base = Some("ou=poeple,dc=example,dc=org".into())
    });
    assert_unavailable(
        login(&typo, "alice", "alice-password").await,
        "missing user base",
        |err| {
            matches!(err, LdapError::NoSuchBase { setting: "user_search_base", base }
                if base == "ou=poeple,dc=example,dc=org")
        },
    );

    // Groups off.
    let none = search_module(server, |s| s.groups = GroupSource::None);
    assert!(
        login(&none, "alice", "alice-password")
            .await
            .unwrap()
            .groups
            .is_empty()
    );
}

#[tokio::test]
async fn nested_groups_filter_uses_the_ad_matching_rule() {
    // OpenLDAP has no LDAP_MATCHING_RULE_IN_CHAIN: check the filter that would be sent.
    let ad = || {
        let mut s = settings("ldaps://dc1.corp.example");
        s.user_search_base = Some("DC=corp,DC=example".into());
        s.user_search_filter = "(sAMAccountName=%s)".into();
        s.nested_groups = true;
        s
    };
    let module = build({
        let mut s = ad();
        s.groups = GroupSource::Search;
        s.group_search_base = Some("DC=corp,DC=example".into());
        s
    });
    let filter = module
        .group_filter_for("CN=Smith\\, John,OU=Users,DC=corp,DC=example", "jsmith")
        .unwrap();
    assert_eq!(
        filter,
        "(member:1.2.840.113556.1.4.1941:=CN=Smith\\5c, John,OU=Users,DC=corp,DC=example)"
    );
    assert_eq!(AD_NESTED_GROUP_FILTER, "(member:1.2.840.113556.1.4.1941:=%s)");
    // Nested groups need a group search.
    let err = LdapModule::new(ID, ad()).unwrap_err();
    assert_eq!(err.key(), Some("nested_groups"));
}

#[tokio::test]
async fn ldaps_and_starttls_verify_the_server_with_the_ca_bundle() {
    let server = Slapd::shared();
    let ldaps = search_module(server, |s| {
        s.urls = urls([&server.ldaps_url]);
        s.ca_file = Some(server.ca_file.clone());
    });
    assert_eq!(
        login(&ldaps, "alice", "alice-password").await.unwrap().login,
        "alice"
    );
    assert_eq!(
        login(&ldaps, "alice", "nope").await,
        Err(AuthError::InvalidCredentials)
    );

    let starttls = search_module(server, |s| {
        s.starttls = true;
        s.ca_file = Some(server.ca_file.clone());
    });
    assert_eq!(
        login(&starttls, "bob", "bob-password").await.unwrap().login,
        "bob"
    );

    let wrong_ldaps = search_module(server, |s| {
        s.urls = urls([&server.ldaps_url]);
        s.ca_file = Some(server.wrong_ca_file.clone());
    });
    assert_unavailable(
        login(&wrong_ldaps, "alice", "alice-password").await,
        "ldaps, wrong CA",
        unreachable(&[&server.ldaps_url], connect_failed),
    );
    let wrong_starttls = search_module(server, |s| {
        s.starttls = true;
        s.ca_file = Some(server.wrong_ca_file.clone());
    });
    assert_unavailable(
        login(&wrong_starttls, "alice", "alice-password").await,
        "starttls, wrong CA",
        unreachable(&[&server.ldap_url], connect_failed),
    );

    // Opting out of verification accepts a certificate no configured CA signed.
    let insecure = search_module(server, |s| {
        s.urls = urls([&server.ldaps_url]);
        s.insecure_skip_tls_verify = true;
    });
    assert!(login(&insecure, "alice", "alice-password").await.is_ok());
}

#[tokio::test]
async fn a_dead_first_url_fails_over_to_the_second() {
    let server = Slapd::shared();
    let module = search_module(server, |s| s.urls = urls([dead_url(), server.ldap_url.clone()]));
    assert_eq!(
        login(&module, "alice", "alice-password").await.unwrap().login,
        "alice"
    );
    assert_eq!(
        login(&module, "alice", "wrong").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(login(&module, "bob", "bob-password").await.unwrap().login, "bob");
}

/// The layout the LDAP guide recommends, `[ldap (on_unavailable = "next"), local]`,
/// with throttling (3 failures per login): `alice` logged in once while the directory
/// was up, so her account is linked to it; `root` is a local break-glass admin.
async fn break_glass_chain(module: Arc<LdapModule>) -> AuthChain {
    let store = Arc::new(MemoryUserStore::new());
    let passwords = Arc::new(PasswordPolicy::fast_insecure_for_tests());
    let hash = passwords.hash("root-password").unwrap();
    store
        .create_account(NewAccount::new("root").password_hash(hash).role("admin"))
        .await
        .unwrap();
    let policy = authchain::account::ThrottlePolicy {
        max_attempts: 3,
        max_attempts_per_ip: 100,
        window: Duration::from_secs(600),
    };
    AuthChain::builder(store.clone())
        .shared_module(module, ModuleSettings::new().provisioning(Provisioning::Create))
        .module(
            LocalModule::builder("local", store.clone())
                .passwords(passwords)
                .build(),
        )
        .throttle(policy, Arc::new(authchain::account::MemoryAttemptStore::new()))
        .build()
        .unwrap()
}

/// While the directory is out (`stop_or_hang` did it): a directory user gets
/// `Unavailable` (503), however often, and is never throttled for it; a name the
/// directory alone could know gets the same; the local admin gets in; a wrong
/// local password is still a rejection.
async fn assert_break_glass(chain: &AuthChain, what: &str) {
    for _ in 0..5 {
        for name in ["alice", "nobody-knows-me"] {
            match chain.login(&request(name, "alice-password")).await {
                Err(AuthError::Unavailable {
                    module,
                    cause: ModuleError::Ldap(_),
                    ..
                }) => {
                    assert_eq!(module, "corp-ldap", "{what}: {name}")
                }
                other => panic!("{what}: {name}: expected Unavailable, got {other:?}"),
            }
        }
    }
    let LoginResult::Authenticated(root) = chain.login(&request("root", "root-password")).await.unwrap()
    else {
        panic!("{what}: no principal")
    };
    assert_eq!(root.module, "local", "{what}");
    assert!(root.has_role("admin"), "{what}");
    assert_eq!(
        chain.login(&request("root", "wrong")).await.unwrap_err(),
        AuthError::InvalidCredentials,
        "{what}"
    );
}

#[tokio::test]
async fn stopped_server_is_unavailable_and_break_glass_admin_gets_in() {
    let server = Slapd::start();
    let module = Arc::new(search_module(&server, |_| {}));
    let chain = break_glass_chain(module.clone()).await;
    assert_eq!(
        principal_of(chain.login(&request("alice", "alice-password")).await).module,
        ID
    );
    server.stop();
    assert_unavailable(
        login(&module, "alice", "alice-password").await,
        "stopped server",
        unreachable(&[&server.ldap_url], connect_failed),
    );
    assert_break_glass(&chain, "stopped slapd").await;
}

#[tokio::test]
async fn hung_server_is_unavailable_and_break_glass_admin_gets_in() {
    let server = Slapd::start();
    let module = Arc::new(search_module(&server, |s| {
        s.connect_timeout = SHORT;
        s.operation_timeout = SHORT;
    }));
    let chain = break_glass_chain(module.clone()).await;
    assert_eq!(
        principal_of(chain.login(&request("alice", "alice-password")).await).module,
        ID
    );
    server.freeze();
    assert_break_glass(&chain, "hung slapd").await;
    server.thaw();
    // Back: the directory user gets in again, and the outage left no lockout.
    assert_eq!(
        principal_of(chain.login(&request("alice", "alice-password")).await).login,
        "alice"
    );
}

fn principal_of(result: Result<LoginResult, AuthError>) -> authchain::Principal {
    match result {
        Ok(LoginResult::Authenticated(principal)) => *principal,
        other => panic!("expected a principal, got {other:?}"),
    }
}

/// Accepts connections and never answers.
async fn hung_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr.to_string(), task)
}

#[tokio::test]
async fn a_hung_server_is_unavailable_within_the_timeout() {
    let server = Slapd::shared();
    let (addr, task) = hung_server().await;
    for url in [format!("ldap://{addr}"), format!("ldaps://{addr}")] {
        let module = search_module(server, |s| {
            s.urls = urls([&url]);
            s.ca_file = Some(server.ca_file.clone());
            s.connect_timeout = SHORT;
            s.operation_timeout = SHORT;
        });
        let started = Instant::now();
        // ldap:// connects, then the service bind hangs; ldaps:// hangs in the
        // TLS handshake.
        assert_unavailable(
            login(&module, "alice", "alice-password").await,
            &url,
            unreachable(&[&url], |err| {
                matches!(
                    err,
                    LdapError::Timeout {
                        operation: LdapOperation::ServiceBind | LdapOperation::Connect,
                        ..
                    } | LdapError::Connect(_)
                )
            }),
        );
        let took = started.elapsed();
        assert!(took >= SHORT && took < SHORT * 3, "{url}: took {took:?}");
    }
    // Direct-bind mode: the user bind itself hangs.
    let direct = build({
        let mut s = settings(&format!("ldap://{addr}"));
        s.bind_format = Some(format!("uid=%s,{PEOPLE}"));
        s.operation_timeout = SHORT;
        s
    });
    let started = Instant::now();
    assert_unavailable(
        login(&direct, "alice", "alice-password").await,
        "direct bind",
        |err| {
            matches!(
                err,
                LdapError::Timeout {
                    operation: LdapOperation::UserBind,
                    after: SHORT,
                }
            )
        },
    );
    assert!(started.elapsed() < SHORT * 3);
    // A hung first server, a good second one: the login still succeeds.
    let failover = search_module(server, |s| {
        s.urls = urls([format!("ldap://{addr}"), server.ldap_url.clone()]);
        s.operation_timeout = SHORT;
    });
    assert!(login(&failover, "alice", "alice-password").await.is_ok());
    task.abort();
}

#[tokio::test]
async fn connections_are_pooled() {
    let server = Slapd::shared();
    let module = search_module(server, |_| {});
    for _ in 0..20 {
        login(&module, "alice", "alice-password").await.unwrap();
        assert_eq!(
            login(&module, "bob", "wrong").await,
            Err(AuthError::InvalidCredentials)
        );
    }
    // Sequential logins reuse one service connection and one user-bind connection.
    assert_eq!(module.idle_connections(), (1, 1));

    let module = Arc::new(module);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let module = module.clone();
        tasks.push(tokio::spawn(async move {
            let (user, password) = if i % 2 == 0 {
                ("alice", "alice-password")
            } else {
                ("bob", "bob-password")
            };
            login(&module, user, password).await.map(|id| id.login)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let expected = if i % 2 == 0 { "alice" } else { "bob" };
        assert_eq!(task.await.unwrap().unwrap(), expected);
    }
    let (service, user) = module.idle_connections();
    assert!(
        (1..=16).contains(&service) && (1..=16).contains(&user),
        "({service}, {user})"
    );
}

#[tokio::test]
async fn wrong_service_password_is_unavailable() {
    let server = Slapd::shared();
    let module = search_module(server, |s| {
        s.bind_password = Some(SecretSource::Inline("not-the-password".into()));
    });
    let result = login(&module, "alice", "alice-password").await;
    // The refused password appears nowhere in the error.
    assert!(!format!("{result:?}").contains("not-the-password"), "{result:?}");
    if let Err(err) = &result {
        assert!(!err.to_string().contains("not-the-password"), "{err}");
    }
    assert_unavailable(result, "service bind refused", |err| {
        matches!(err, LdapError::ServiceBindRefused { code: 49 })
    });
}

#[tokio::test]
async fn built_from_configuration() {
    let server = Slapd::shared();
    let text = format!(
        r#"
        urls = ["{dead}", "{url}"]
        starttls = true
        ca_file = "{ca}"
        connect_timeout = "PT2S"
        operation_timeout = "PT2S"
        bind_dn = "{dn}"
        bind_password = {{ file = "{pw_file}" }}
        user_search_base = "{PEOPLE}"
        user_search_filter = "(|(uid=%s)(mail=%s))"
        groups = "search"
        group_search_base = "{GROUPS}"
        group_names = "dn"
        extra_attributes = ["sn"]
        pool_size = 4
        "#,
        dead = dead_url(),
        url = server.ldap_url,
        ca = server.ca_file.display(),
        dn = server.service_dn,
        pw_file = {
            let path = std::env::temp_dir().join(format!("authchain-ldap-pw-{}", std::process::id()));
            std::fs::write(&path, format!("{}\n", server.service_password)).unwrap();
            path.display().to_string()
        },
    );
    let module = LdapModule::new(ID, LdapSettings::from_table(table(&text)).unwrap()).unwrap();
    let alice = login(&module, "alice@example.org", "alice-password")
        .await
        .unwrap();
    assert_eq!(alice.login, "alice");
    assert!(alice.groups.contains(&format!("cn=admins,{GROUPS}")));
    assert_eq!(alice.attributes["sn"], ["Liddell"]);

    // Unknown keys and bad values are refused, naming the key (relative to the
    // module's table; the configuration file prefixes `modules.<id>.`).
    let unknown =
        LdapSettings::from_table(table("urls = [\"ldap://x\"]\nuser_serch_base = \"dc=x\"")).unwrap_err();
    assert_eq!(unknown.key(), Some("user_serch_base"), "{unknown}");
    let bad = |extra: &str| {
        let settings = LdapSettings::from_table(table(&format!("urls = [\"ldaps://x\"]\n{extra}"))).unwrap();
        LdapModule::new(ID, settings)
            .unwrap_err()
            .key()
            .map(str::to_owned)
    };
    assert_eq!(bad("").as_deref(), Some("user_search_base"));
    assert_eq!(
        bad("user_search_base = \"dc=x\"\nuser_search_filter = \"(uid=x)\"").as_deref(),
        Some("user_search_filter")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\nuser_search_filter = \"(uid=%s\"").as_deref(),
        Some("user_search_filter")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\nbind_dn = \"cn=x\"").as_deref(),
        Some("bind_password")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\nbind_password = { env = \"AUTHCHAIN_TEST_SURELY_UNSET\" }\nbind_dn = \"cn=x\"")
            .as_deref(),
        Some("bind_password")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\ngroups = \"search\"").as_deref(),
        Some("group_search_base")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\nstarttls = true").as_deref(),
        Some("starttls")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\nca_file = \"/nonexistent/ca.pem\"").as_deref(),
        Some("ca_file") // an I/O error: names the path and the key
    );
    assert_eq!(
        bad("bind_format = \"%s@corp.example\"").as_deref(),
        Some("user_search_base")
    );
    assert_eq!(
        bad("user_search_base = \"dc=x\"\noperation_timeout = \"PT0S\"").as_deref(),
        Some("operation_timeout")
    );
    // URLs are typed: a bad one is refused when the table is read.
    let err =
        LdapSettings::from_table(table("urls = [\"http://x\"]\nuser_search_base = \"dc=x\"")).unwrap_err();
    assert_eq!(err.key(), Some("urls[0]"), "{err}");
    assert!("ldap://".parse::<LdapUrl>().is_err());
    let _ = BASE_DN;
}

#[tokio::test]
async fn a_warm_login_costs_two_round_trips() {
    let server = Slapd::shared();
    let counter = proxy::CountingProxy::start(&server.ldap_url).await;
    let module = search_module(server, |s| s.urls = urls([counter.url()]));
    login(&module, "alice", "alice-password").await.unwrap();
    // Cold: connect + service bind, search, connect + user bind.
    assert_eq!((counter.connections(), counter.requests()), (2, 3));

    counter.reset();
    for _ in 0..10 {
        login(&module, "alice", "alice-password").await.unwrap();
        assert_eq!(
            login(&module, "bob", "wrong").await,
            Err(AuthError::InvalidCredentials)
        );
    }
    // Warm: one search and one bind per login, no new connection.
    assert_eq!((counter.connections(), counter.requests()), (0, 40));

    // With a group search: three.
    let module = search_module(server, |s| {
        s.urls = urls([counter.url()]);
        group_search(s, GROUPS);
    });
    login(&module, "alice", "alice-password").await.unwrap();
    counter.reset();
    for _ in 0..10 {
        assert_eq!(
            login(&module, "alice", "alice-password")
                .await
                .unwrap()
                .groups
                .len(),
            2
        );
    }
    assert_eq!((counter.connections(), counter.requests()), (0, 30));

    // Unknown users cost the search only; empty passwords cost nothing.
    counter.reset();
    assert_eq!(
        login(&module, "nobody", "x").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        login(&module, "alice", "").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(counter.requests(), 1);
}
