//! Account resolution: linking by (provider, subject), and the provisioning
//! policies existing / link_by_login / create; each test runs against the memory
//! and the SQLite store.

mod common;

use std::sync::Arc;

use authchain::account::{NewAccount, Provisioning};
use authchain::chain::ModuleSettings;
use authchain::{AuthChain, AuthError, AuthRequest};
use common::{Scripted, TestStore, peer, principal};

fn chain<S: TestStore>(store: &Arc<S>, subject: &str, provisioning: Provisioning) -> AuthChain {
    AuthChain::builder(store.clone())
        .module_with(
            Scripted::user("sso", subject, &[]),
            ModuleSettings::new().provisioning(provisioning),
        )
        .build()
        .unwrap()
}

fn request() -> AuthRequest {
    AuthRequest::new(peer("192.0.2.1"))
}

async fn existing_refuses_unknown_subjects_and_creates_nothing<S: TestStore>(store: Arc<S>) {
    store.create_account(NewAccount::new("alice")).await.unwrap();
    let err = chain(&store, "alice", Provisioning::Existing)
        .login(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
    assert_eq!(err.status_code(), 403);
    assert_eq!(store.count().await, 1);
    assert!(
        store.find_by_link("sso", "alice").await.unwrap().is_none(),
        "existing never links by name"
    );
}

async fn existing_accepts_a_linked_subject<S: TestStore>(store: Arc<S>) {
    let account = store
        .create_account(NewAccount::new("a.smith").linked_to("sso", "alice"))
        .await
        .unwrap();
    let p = principal(
        chain(&store, "alice", Provisioning::Existing)
            .login(&request())
            .await,
    );
    assert_eq!(p.account_id, account.id);
    assert_eq!(p.login, "a.smith", "the local login name, not the provider's");
    // The same subject at another provider is somebody else.
    let other = AuthChain::builder(store.clone())
        .module(Scripted::user("other-sso", "alice", &[]))
        .build()
        .unwrap();
    assert!(matches!(
        other.login(&request()).await.unwrap_err(),
        AuthError::Forbidden { .. }
    ));
}

async fn link_by_login_links_once_then_by_subject<S: TestStore>(store: Arc<S>) {
    let account = store.create_account(NewAccount::new("bob")).await.unwrap();
    let p = principal(
        chain(&store, "bob", Provisioning::LinkByLogin)
            .login(&request())
            .await,
    );
    assert_eq!(p.account_id, account.id);
    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.links.len(), 1);
    assert!(stored.last_login.is_some());
    assert_eq!(
        store.find_by_link("sso", "bob").await.unwrap().unwrap().id,
        account.id
    );

    // No local account of that name: refused, nothing created.
    let err = chain(&store, "nobody", Provisioning::LinkByLogin)
        .login(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }));
    assert_eq!(store.count().await, 1);
}

async fn link_by_login_matches_login_names_never_emails<S: TestStore>(store: Arc<S>) {
    store
        .create_account(NewAccount::new("admin").email("eve@example.org"))
        .await
        .unwrap();
    // The provider asserts a login name equal to the admin's email address.
    let chain = AuthChain::builder(store.clone())
        .login_names(authchain::account::LoginNames {
            case_insensitive: true,
            attribute: authchain::account::LoginAttribute::AutoDetectEmail,
        })
        .module_with(
            Scripted::user("sso", "eve@example.org", &[]),
            ModuleSettings::new().provisioning(Provisioning::LinkByLogin),
        )
        .build()
        .unwrap();
    let err = chain.login(&request()).await.unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
    assert!(
        store
            .find_by_link("sso", "eve@example.org")
            .await
            .unwrap()
            .is_none()
    );
}

async fn link_by_login_never_relinks_an_account_to_a_second_subject<S: TestStore>(store: Arc<S>) {
    store
        .create_account(NewAccount::new("carol").linked_to("sso", "carol-original"))
        .await
        .unwrap();
    // A different subject at the same provider now claims the login name `carol`.
    let impostor = AuthChain::builder(store.clone())
        .module_with(
            Scripted::new(
                "sso",
                common::Answer::Identity {
                    subject: "carol".into(),
                    groups: vec![],
                },
            ),
            ModuleSettings::new().provisioning(Provisioning::LinkByLogin),
        )
        .build()
        .unwrap();
    let err = impostor.login(&request()).await.unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
    assert!(store.find_by_link("sso", "carol").await.unwrap().is_none());
}

async fn create_makes_an_account_just_in_time<S: TestStore>(store: Arc<S>) {
    let p = principal(
        chain(&store, "dave", Provisioning::Create)
            .login(&request())
            .await,
    );
    assert_eq!(p.login, "dave");
    assert_eq!(store.count().await, 1);
    let again = principal(
        chain(&store, "dave", Provisioning::Create)
            .login(&request())
            .await,
    );
    assert_eq!(again.account_id, p.account_id, "the second login finds the link");
    assert_eq!(store.count().await, 1);
}

async fn concurrent_first_logins_of_one_subject_share_one_account<S: TestStore>(store: Arc<S>) {
    let chain = Arc::new(chain(&store, "erin", Provisioning::Create));
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.login(&request()).await })
        })
        .collect();
    let mut accounts = Vec::new();
    for login in logins {
        // The logins that lose the race to create the account find the winner's.
        accounts.push(principal(login.await.unwrap()).account_id);
    }
    accounts.dedup();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(store.count().await, 1);
}

async fn create_never_takes_over_an_existing_name<S: TestStore>(store: Arc<S>) {
    let admin = store
        .create_account(NewAccount::new("Admin").role("admin"))
        .await
        .unwrap();
    let err = chain(&store, "admin", Provisioning::Create)
        .login(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Forbidden { .. }), "{err:?}");
    let stored = store.account(&admin.id).await.unwrap().unwrap();
    assert!(stored.links.is_empty());
    assert_eq!(store.count().await, 1);
}

store_tests!(
    existing_refuses_unknown_subjects_and_creates_nothing,
    existing_accepts_a_linked_subject,
    link_by_login_links_once_then_by_subject,
    link_by_login_matches_login_names_never_emails,
    link_by_login_never_relinks_an_account_to_a_second_subject,
    create_makes_an_account_just_in_time,
    concurrent_first_logins_of_one_subject_share_one_account,
    create_never_takes_over_an_existing_name,
);
