//! Chain policy: order, abstention, on_reject / on_unavailable, hidden and
//! disabled modules, explicit selection, nested chains, the final error.

mod common;

use std::sync::Arc;

use authchain::account::{MemoryUserStore, NewAccount, Provisioning};
use authchain::chain::{ModuleSettings, OnFailure};
use authchain::modules::header::{HeaderError, HeaderProblem};
use authchain::modules::{HeaderModule, LocalModule};
use authchain::net::ProxyTrust;
use authchain::{
    AuthChain, AuthError, AuthRequest, Credentials, ModuleError, ModuleKind, RequestError, StartLogin,
};
use common::{Answer, Scripted, calls, local, password_request, peer, principal, store_with_admin};

fn create() -> ModuleSettings {
    ModuleSettings::new().provisioning(Provisioning::Create)
}

fn ambient() -> AuthRequest {
    AuthRequest::new(peer("192.0.2.1"))
}

#[tokio::test]
async fn modules_run_in_order_and_the_first_identity_wins() {
    let store = Arc::new(MemoryUserStore::new());
    let first = Scripted::user("first", "alice", &[]);
    let second = Scripted::user("second", "bob", &[]);
    let second_calls = second.counter();
    let chain = AuthChain::builder(store)
        .module_with(first, create())
        .module_with(second, create())
        .build()
        .unwrap();
    let p = principal(chain.login(&ambient()).await);
    assert_eq!(p.login, "alice");
    assert_eq!(p.module, "first");
    assert_eq!(calls(&second_calls), 0, "a module after the winner must not run");
}

#[tokio::test]
async fn abstain_moves_to_the_next_module() {
    let store = Arc::new(MemoryUserStore::new());
    let chain = AuthChain::builder(store)
        .module(Scripted::new("quiet", Answer::Abstain))
        .module_with(Scripted::user("second", "bob", &[]), create())
        .build()
        .unwrap();
    assert_eq!(principal(chain.login(&ambient()).await).module, "second");
}

/// Every combination of policy and failure: `next` falls through to the module
/// after, `stop` answers with the failing module's error.
#[tokio::test]
async fn each_policy_combination() {
    let cases = [
        (Answer::Reject, OnFailure::Next, OnFailure::Next, true),
        (Answer::Reject, OnFailure::Stop, OnFailure::Next, false),
        (Answer::Reject, OnFailure::Next, OnFailure::Stop, true),
        (Answer::Reject, OnFailure::Stop, OnFailure::Stop, false),
        (Answer::Unavailable, OnFailure::Next, OnFailure::Next, true),
        (Answer::Unavailable, OnFailure::Stop, OnFailure::Next, true),
        (Answer::Unavailable, OnFailure::Next, OnFailure::Stop, false),
        (Answer::Unavailable, OnFailure::Stop, OnFailure::Stop, false),
    ];
    for (answer, on_reject, on_unavailable, reaches_next) in cases {
        let store = Arc::new(MemoryUserStore::new());
        let failing = Scripted::new("failing", answer.clone());
        let next = Scripted::user("next", "bob", &[]);
        let next_calls = next.counter();
        let chain = AuthChain::builder(store)
            .module_with(
                failing,
                ModuleSettings::new()
                    .on_reject(on_reject)
                    .on_unavailable(on_unavailable),
            )
            .module_with(next, create())
            .build()
            .unwrap();
        let result = chain.login(&ambient()).await;
        let label = format!(
            "{} reject={on_reject:?} unavailable={on_unavailable:?}",
            matches!(answer, Answer::Reject)
        );
        if reaches_next {
            assert_eq!(principal(result).module, "next", "{label}");
            assert_eq!(calls(&next_calls), 1, "{label}");
        } else {
            let err = result.expect_err(&label);
            match answer {
                Answer::Reject => assert_eq!(err, AuthError::InvalidCredentials, "{label}"),
                _ => assert!(
                    matches!(err, AuthError::Unavailable { ref module, .. } if module == "failing"),
                    "{label}"
                ),
            }
            assert_eq!(calls(&next_calls), 0, "{label}");
        }
    }
}

#[tokio::test]
async fn final_error_prefers_a_rejection_then_an_outage_then_unauthenticated() {
    let run = |answers: Vec<Answer>| async move {
        let mut builder = AuthChain::builder(Arc::new(MemoryUserStore::new()));
        for (i, answer) in answers.into_iter().enumerate() {
            builder = builder.module(Scripted::new(&format!("m{i}"), answer));
        }
        builder.build().unwrap().login(&ambient()).await.unwrap_err()
    };
    // An outage first, a rejection later: the rejection is the answer.
    let err = run(vec![Answer::Unavailable, Answer::Reject, Answer::Abstain]).await;
    assert_eq!(err, AuthError::InvalidCredentials);
    let err = run(vec![Answer::Reject, Answer::Unavailable]).await;
    assert_eq!(err, AuthError::InvalidCredentials);
    // Only outages: Unavailable, naming the first module that failed.
    let err = run(vec![Answer::Abstain, Answer::Unavailable, Answer::Unavailable]).await;
    assert!(
        matches!(err, AuthError::Unavailable { ref module, .. } if module == "m1"),
        "{err:?}"
    );
    // Nobody applied.
    let err = run(vec![Answer::Abstain, Answer::Abstain]).await;
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
    assert_eq!(err.status_code(), 401);
    // An empty chain authenticates nobody.
    let err = run(vec![]).await;
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
}

/// A misconfigured module under `on_unavailable = next` lets the later modules run
/// (break-glass still works) but is never hidden behind their failure: it outranks
/// a rejection, an outage and an abstention as the chain's answer.
#[tokio::test]
async fn a_misconfigured_module_is_the_final_answer_unless_a_later_module_signs_in() {
    let run = |later: Answer| async move {
        let later = Scripted::new("later", later);
        let later_calls = later.counter();
        let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
            .module_with(
                Scripted::new("broken", Answer::Misconfigured),
                create().on_unavailable(OnFailure::Next),
            )
            .module_with(later, create())
            .build()
            .unwrap();
        let result = chain.login(&ambient()).await;
        assert_eq!(calls(&later_calls), 1, "the later module still runs");
        result
    };
    for later in [Answer::Reject, Answer::Unavailable, Answer::Abstain] {
        let err = run(later).await.unwrap_err();
        assert!(matches!(err, AuthError::Misconfigured(_)), "{err:?}");
        assert_eq!(err.status_code(), 500);
    }
    // A later module that signs somebody in wins.
    let p = principal(
        run(Answer::Identity {
            subject: "bob".into(),
            groups: vec![],
        })
        .await,
    );
    assert_eq!(p.module, "later");

    // Break-glass: a misconfigured directory in front of the local admin.
    let store = store_with_admin().await;
    let chain = AuthChain::builder(store.clone())
        .module(Scripted::new("corp-ldap", Answer::Misconfigured))
        .module(local(store))
        .build()
        .unwrap();
    let p = principal(chain.login(&password_request("root", "break-glass")).await);
    assert_eq!(p.module, "local");
    assert!(p.has_role("admin"));
    // A wrong password there: the misconfiguration is the answer, not the rejection.
    let err = chain.login(&password_request("root", "nope")).await.unwrap_err();
    assert!(matches!(err, AuthError::Misconfigured(_)), "{err:?}");

    // Under `stop` the misconfiguration ends the login at once.
    let later = Scripted::user("later", "bob", &[]);
    let later_calls = later.counter();
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module_with(
            Scripted::new("broken", Answer::Misconfigured),
            ModuleSettings::new().on_unavailable(OnFailure::Stop),
        )
        .module_with(later, create())
        .build()
        .unwrap();
    let err = chain.login(&ambient()).await.unwrap_err();
    assert!(matches!(err, AuthError::Misconfigured(_)), "{err:?}");
    assert_eq!(calls(&later_calls), 0);
}

/// `module::<T>(id)` finds a module of a built chain by id and type, nested
/// chains included.
#[tokio::test]
async fn modules_are_reachable_by_id_and_type() {
    let store = store_with_admin().await;
    let inner = AuthChain::builder(store.clone())
        .id("inner")
        .module(local(store.clone()))
        .build()
        .unwrap();
    let outer = AuthChain::builder(store.clone())
        .module(Scripted::new("first", Answer::Abstain))
        .module(inner)
        .build()
        .unwrap();
    let found = outer
        .module::<LocalModule>("local")
        .expect("the nested local module");
    assert_eq!(authchain::Authenticator::id(found), "local");
    assert!(outer.module::<AuthChain>("inner").is_some());
    assert!(outer.module::<common::Scripted>("first").is_some());
    // A wrong type or an unknown id: nothing.
    assert!(outer.module::<HeaderModule>("local").is_none());
    assert!(outer.module::<LocalModule>("first").is_none());
    assert!(outer.module::<LocalModule>("nowhere").is_none());

    let flat = AuthChain::builder(store.clone())
        .module(local(store))
        .build()
        .unwrap();
    assert!(flat.module::<LocalModule>("local").is_some());
}

/// A refusal carries its typed cause, reachable through `Error::source`.
#[tokio::test]
async fn a_rejection_exposes_its_cause_as_the_error_source() {
    use std::error::Error as _;

    let strict = HeaderModule::builder("proxy")
        .trusted_proxies(ProxyTrust::new(["10.0.0.0/24".parse().unwrap()]))
        .fail_if_missing(true)
        .build()
        .unwrap();
    let chain = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module(strict)
        .build()
        .unwrap();
    let err = chain
        .login(&AuthRequest::new(peer("10.0.0.5")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Rejected {
                ref module,
                cause: ModuleError::Header(HeaderError {
                    problem: HeaderProblem::Missing,
                    ..
                }),
            } if module == "proxy"
        ),
        "{err:?}"
    );
    assert_eq!(err.status_code(), 401);
    // The source is the module's cause, which holds the header error.
    let source = err.source().expect("a rejection has a source");
    let Some(ModuleError::Header(header)) = source.downcast_ref::<ModuleError>() else {
        panic!("the source is not the header error: {source:?}");
    };
    assert_eq!(header.problem, HeaderProblem::Missing);
    assert_eq!(header.header, "remote-user");
    assert_eq!(err.module_error(), Some(&ModuleError::Header(header.clone())));
}

#[tokio::test]
async fn hidden_modules_run_only_when_selected_and_disabled_never() {
    let store = Arc::new(MemoryUserStore::new());
    let hidden = Scripted::user("hidden", "alice", &[]);
    let hidden_calls = hidden.counter();
    let disabled = Scripted::user("disabled", "mallory", &[]);
    let disabled_calls = disabled.counter();
    let chain = AuthChain::builder(store)
        .module_with(hidden, create().hidden(true))
        .module_with(disabled, create().enabled(false))
        .module(Scripted::new("visible", Answer::Abstain))
        .build()
        .unwrap();
    let visible: Vec<_> = chain.visible_modules().into_iter().map(|m| m.id).collect();
    assert_eq!(visible, ["visible"]);

    let err = chain.login(&ambient()).await.unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }));
    assert_eq!(calls(&hidden_calls), 0);

    let p = principal(chain.login(&ambient().select("hidden")).await);
    assert_eq!(p.login, "alice");

    let err = chain.login(&ambient().select("disabled")).await.unwrap_err();
    assert!(
        matches!(err, AuthError::InvalidRequest(RequestError::NoSuchModule(ref m)) if m == "disabled"),
        "{err:?}"
    );
    assert_eq!(calls(&disabled_calls), 0);
}

#[tokio::test]
async fn explicit_selection_runs_that_module_alone() {
    let store = store_with_admin().await;
    let first = Scripted::user("first", "alice", &[]);
    let first_calls = first.counter();
    let chain = AuthChain::builder(store.clone())
        .module_with(first, create())
        .module(local(store))
        .build()
        .unwrap();
    let p = principal(
        chain
            .login(&password_request("root", "break-glass").select("local"))
            .await,
    );
    assert_eq!(p.module, "local");
    assert_eq!(calls(&first_calls), 0);

    // A selected module that abstains is not followed by the others.
    let err = chain.login(&ambient().select("local")).await.unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");
    assert_eq!(calls(&first_calls), 0);

    let err = chain
        .login(&ambient().select("no-such-module"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::InvalidRequest(RequestError::NoSuchModule(ref m)) if m == "no-such-module"),
        "{err:?}"
    );
    assert_eq!(err.status_code(), 400);

    // Starting a redirect login without naming the module is a bad request.
    let start = ambient().with_credentials(Credentials::Start(StartLogin::new()));
    let err = chain.login(&start).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidRequest(RequestError::StartNeedsModule));
    assert_eq!(calls(&first_calls), 0, "no module runs for a malformed start");
    // ... and naming a module the chain does not have is one too.
    let err = chain.login(&start.clone().select("nowhere")).await.unwrap_err();
    assert!(
        matches!(err, AuthError::InvalidRequest(RequestError::NoSuchModule(ref m)) if m == "nowhere"),
        "{err:?}"
    );
}

#[tokio::test]
async fn nested_chain_is_a_module() {
    let store = store_with_admin().await;
    let inner = AuthChain::builder(store.clone())
        .id("inner")
        .module(Scripted::new("inner-quiet", Answer::Abstain))
        .module(local(store.clone()))
        .build()
        .unwrap();
    assert_eq!(authchain::Authenticator::kind(&inner), ModuleKind::Chain);
    let outer = AuthChain::builder(store.clone())
        .module(Scripted::new("outer-first", Answer::Abstain))
        .module(inner)
        .build()
        .unwrap();

    let p = principal(outer.login(&password_request("root", "break-glass")).await);
    assert_eq!(p.login, "root");
    assert!(p.has_role("admin"));
    assert_eq!(
        p.identity.provider, "local",
        "the identity still names the module that verified it"
    );

    // Selecting a module inside the nested chain reaches it.
    let p = principal(
        outer
            .login(&password_request("root", "break-glass").select("local"))
            .await,
    );
    assert_eq!(p.login, "root");

    // A nested chain where nobody applied abstains, so the outer chain goes on.
    let err = outer.login(&ambient()).await.unwrap_err();
    assert!(matches!(err, AuthError::Unauthenticated { .. }), "{err:?}");

    // A rejection inside surfaces outside.
    let err = outer.login(&password_request("root", "wrong")).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);
}

#[tokio::test]
async fn break_glass_admin_gets_in_when_the_directory_is_down() {
    let store = store_with_admin().await;
    let directory = Scripted::new("corp-ldap", Answer::Unavailable);
    let directory_calls = directory.counter();
    let chain = AuthChain::builder(store.clone())
        .module(directory)
        .module(local(store))
        .build()
        .unwrap();
    let p = principal(chain.login(&password_request("root", "break-glass")).await);
    assert_eq!(p.module, "local");
    assert!(p.has_role("admin"));
    assert_eq!(calls(&directory_calls), 1);

    // A wrong password with the directory down is a rejection, not an outage.
    let err = chain.login(&password_request("root", "nope")).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials);
}

#[tokio::test]
async fn duplicate_module_ids_are_refused() {
    let err = AuthChain::builder(Arc::new(MemoryUserStore::new()))
        .module(Scripted::new("same", Answer::Abstain))
        .module(Scripted::new("same", Answer::Abstain))
        .build()
        .err()
        .expect("duplicate ids must not build");
    assert_eq!(err.key(), Some("modules.same"));
}

/// A chain whose one module answers alice of `sso`, expiring accounts idle longer than `expire`.
fn alice_chain<S: common::TestStore>(store: &Arc<S>, expire: Option<std::time::Duration>) -> AuthChain {
    let mut builder = AuthChain::builder(store.clone()).module(Scripted::user("sso", "alice", &[]));
    if let Some(limit) = expire {
        builder = builder.expire_inactive_after(limit);
    }
    builder.build().unwrap()
}

async fn disabled_and_expired_accounts_are_refused_without_writes<S: common::TestStore>(store: Arc<S>) {
    let acct = store
        .create_account(NewAccount::new("alice").linked_to("sso", "alice").disabled(true))
        .await
        .unwrap();
    let chain = alice_chain(&store, None);
    assert_eq!(
        chain.login(&ambient()).await.unwrap_err(),
        AuthError::AccountDisabled
    );
    assert_eq!(store.account(&acct.id).await.unwrap().unwrap().last_login, None);

    store.set_disabled(&acct.id, false).await.unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(100 * 86_400);
    store
        .record_login(authchain::account::LoginUpdate::new(acct.id.clone(), old))
        .await
        .unwrap();
    let expiring = alice_chain(&store, Some(std::time::Duration::from_secs(90 * 86_400)));
    assert_eq!(
        expiring.login(&ambient()).await.unwrap_err(),
        AuthError::AccountExpired
    );
    assert_eq!(
        store.account(&acct.id).await.unwrap().unwrap().last_login,
        Some(old)
    );
    // Within the limit the same account gets in.
    let lenient = alice_chain(&store, Some(std::time::Duration::from_secs(120 * 86_400)));
    assert_eq!(principal(lenient.login(&ambient()).await).login, "alice");
}

async fn last_login<S: common::TestStore>(
    store: &S,
    id: &authchain::AccountId,
) -> Option<std::time::SystemTime> {
    store.account(id).await.unwrap().unwrap().last_login
}

async fn a_repeat_login_rewrites_its_time_at_most_once_a_minute<S: common::TestStore>(store: Arc<S>) {
    use authchain::account::LoginUpdate;
    use std::time::{Duration, SystemTime};
    let acct = store
        .create_account(NewAccount::new("alice").linked_to("sso", "alice"))
        .await
        .unwrap();
    let chain = alice_chain(&store, None);
    principal(chain.login(&ambient()).await);
    let first = last_login(&*store, &acct.id)
        .await
        .expect("the first login records its time");
    principal(chain.login(&ambient()).await);
    assert_eq!(
        last_login(&*store, &acct.id).await,
        Some(first),
        "a login right after writes nothing"
    );

    // Recorded two minutes ago: rewritten.
    let old = SystemTime::now() - Duration::from_secs(120);
    store
        .record_login(LoginUpdate::new(acct.id.clone(), old))
        .await
        .unwrap();
    principal(chain.login(&ambient()).await);
    assert!(last_login(&*store, &acct.id).await.unwrap() > old + Duration::from_secs(60));

    // Recorded 30 s ago: kept; under a 1,000 s expiry (a 10 s resolution), rewritten.
    let recent = SystemTime::now() - Duration::from_secs(30);
    store
        .record_login(LoginUpdate::new(acct.id.clone(), recent))
        .await
        .unwrap();
    principal(chain.login(&ambient()).await);
    assert_eq!(last_login(&*store, &acct.id).await, Some(recent));
    let expiring = alice_chain(&store, Some(Duration::from_secs(1_000)));
    principal(expiring.login(&ambient()).await);
    assert!(last_login(&*store, &acct.id).await.unwrap() > recent + Duration::from_secs(20));
}

// Account checks read and write the store: memory and SQLite.
store_tests!(
    disabled_and_expired_accounts_are_refused_without_writes,
    a_repeat_login_rewrites_its_time_at_most_once_a_minute
);
