//! Chain policy: order, abstention, on_reject / on_unavailable, hidden and
//! disabled modules, explicit selection, nested chains, the final error.

mod common;

use std::sync::Arc;

use authchain::account::{MemoryUserStore, NewAccount, Provisioning};
use authchain::chain::{ModuleSettings, OnFailure};
use authchain::{AuthChain, AuthError, AuthRequest, ModuleKind};
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
    assert!(matches!(err, AuthError::InvalidRequest(_)), "{err:?}");
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
        matches!(err, AuthError::InvalidRequest(ref m) if m.contains("no-such-module")),
        "{err:?}"
    );

    // Starting a redirect login without naming the module is a bad request.
    let start = ambient().with_credentials(authchain::Credentials::Start(authchain::StartLogin::new()));
    assert!(matches!(
        chain.login(&start).await.unwrap_err(),
        AuthError::InvalidRequest(_)
    ));
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

async fn disabled_and_expired_accounts_are_refused_without_writes<S: common::TestStore>(store: Arc<S>) {
    let acct = store
        .create_account(NewAccount::new("alice").linked_to("sso", "alice").disabled(true))
        .await
        .unwrap();
    let chain = AuthChain::builder(store.clone())
        .module(Scripted::user("sso", "alice", &[]))
        .build()
        .unwrap();
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
    let expiring = AuthChain::builder(store.clone())
        .module(Scripted::user("sso", "alice", &[]))
        .expire_inactive_after(std::time::Duration::from_secs(90 * 86_400))
        .build()
        .unwrap();
    assert_eq!(
        expiring.login(&ambient()).await.unwrap_err(),
        AuthError::AccountExpired
    );
    assert_eq!(
        store.account(&acct.id).await.unwrap().unwrap().last_login,
        Some(old)
    );
    // Within the limit the same account gets in.
    let lenient = AuthChain::builder(store.clone())
        .module(Scripted::user("sso", "alice", &[]))
        .expire_inactive_after(std::time::Duration::from_secs(120 * 86_400))
        .build()
        .unwrap();
    assert_eq!(principal(lenient.login(&ambient()).await).login, "alice");
}

// Account checks read and write the store: memory and SQLite.
store_tests!(disabled_and_expired_accounts_are_refused_without_writes);
