//! Group → role mapping and reconciliation.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use authchain::account::{NewAccount, Provisioning, RoleMapping};
use authchain::chain::ModuleSettings;
use authchain::{AuthChain, AuthRequest};
use common::{Scripted, TestStore, peer, principal};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn union_of_matching_rules_deduplicated() {
    let mapping = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("admins", "editor")
        .rule("devs", "editor")
        .rule("devs", "developer")
        .rule("finance", "billing")
        .build()
        .unwrap();
    assert_eq!(
        mapping.map(["admins", "devs", "unrelated"]),
        set(&["admin", "developer", "editor"])
    );
    assert_eq!(mapping.map::<&str>([]), set(&[]));
}

#[test]
fn default_role_only_for_unmapped_users() {
    let mapping = RoleMapping::builder()
        .rule("admins", "admin")
        .default_for_unmapped("viewer")
        .build()
        .unwrap();
    assert_eq!(mapping.map(["nobody-knows"]), set(&["viewer"]));
    assert_eq!(mapping.map::<&str>([]), set(&["viewer"]));
    assert_eq!(mapping.map(["admins"]), set(&["admin"]));
}

#[test]
fn dn_and_name_matching() {
    let by_name = RoleMapping::builder()
        .rule("admins", "admin")
        .match_dn(true)
        .build()
        .unwrap();
    assert_eq!(
        by_name.map(["cn=admins,ou=groups,dc=example,dc=org"]),
        set(&["admin"])
    );
    assert_eq!(by_name.map(["admins"]), set(&["admin"]));
    // Only the first RDN's value counts: an `ou=admins` further right does not.
    assert_eq!(by_name.map(["cn=users,ou=admins,dc=example,dc=org"]), set(&[]));

    let without_dn = RoleMapping::builder().rule("admins", "admin").build().unwrap();
    assert_eq!(
        without_dn.map(["cn=admins,ou=groups,dc=example,dc=org"]),
        set(&[])
    );

    let by_dn = RoleMapping::builder()
        .rule("cn=ops,ou=groups,dc=example,dc=org", "operator")
        .build()
        .unwrap();
    assert_eq!(
        by_dn.map(["cn=ops,ou=groups,dc=example,dc=org"]),
        set(&["operator"])
    );
    assert_eq!(by_dn.map(["ops"]), set(&[]));
}

#[test]
fn case_insensitive_matching_only_when_configured() {
    let sensitive = RoleMapping::builder()
        .rule("Admins", "admin")
        .match_dn(true)
        .build()
        .unwrap();
    assert_eq!(sensitive.map(["admins"]), set(&[]));
    let insensitive = RoleMapping::builder()
        .rule("Admins", "admin")
        .match_dn(true)
        .case_insensitive(true)
        .build()
        .unwrap();
    assert_eq!(insensitive.map(["ADMINS"]), set(&["admin"]));
    assert_eq!(insensitive.map(["CN=ADMINS,OU=Groups,DC=corp"]), set(&["admin"]));
}

#[test]
fn bad_rules_are_configuration_errors() {
    let err = RoleMapping::builder().rule("", "admin").build().unwrap_err();
    assert_eq!(err.key(), Some("role_mapping.rules[0].group"));
    let err = RoleMapping::builder().rule("x", " ").build().unwrap_err();
    assert_eq!(err.key(), Some("role_mapping.rules[0].role"));
}

async fn reconciliation_keeps_hand_granted_roles<S: TestStore>(store: Arc<S>) {
    // An administrator granted `auditor` by hand; `admin` is also granted by hand.
    let account = store
        .create_account(
            NewAccount::new("alice")
                .role("auditor")
                .role("admin")
                .linked_to("sso", "alice"),
        )
        .await
        .unwrap();
    let mapping = || {
        RoleMapping::builder()
            .rule("admins", "admin")
            .rule("devs", "developer")
            .build()
            .unwrap()
    };
    let chain = |groups: &[&str]| {
        AuthChain::builder(store.clone())
            .module_with(
                Scripted::user("sso", "alice", groups),
                ModuleSettings::new()
                    .provisioning(Provisioning::Existing)
                    .roles(mapping()),
            )
            .build()
            .unwrap()
    };
    let login = AuthRequest::new(peer("192.0.2.1"));

    let p = principal(chain(&["admins", "devs"]).login(&login).await);
    assert_eq!(
        p.role_names().map(str::to_owned).collect::<BTreeSet<_>>(),
        set(&["admin", "auditor", "developer"])
    );

    // Removed from both groups in the directory: the mapped roles go, the
    // hand-granted ones (even `admin`, which the mapping also manages) stay.
    let p = principal(chain(&[]).login(&login).await);
    assert_eq!(
        p.role_names().map(str::to_owned).collect::<BTreeSet<_>>(),
        set(&["admin", "auditor"])
    );
    let stored = store.account(&account.id).await.unwrap().unwrap();
    assert_eq!(stored.roles, set(&["admin", "auditor"]));
    assert_eq!(stored.mapped_roles.get("sso"), Some(&set(&[])));

    // Revoking the hand grant leaves only what the directory says.
    store.set_local_role(&account.id, "admin", false).await.unwrap();
    let p = principal(chain(&["devs"]).login(&login).await);
    assert_eq!(
        p.role_names().map(str::to_owned).collect::<BTreeSet<_>>(),
        set(&["auditor", "developer"])
    );
}

async fn a_provider_without_mapping_leaves_mapped_roles_alone<S: TestStore>(store: Arc<S>) {
    let account = store
        .create_account(NewAccount::new("alice").linked_to("sso", "alice"))
        .await
        .unwrap();
    let mapped = AuthChain::builder(store.clone())
        .module_with(
            Scripted::user("sso", "alice", &["devs"]),
            ModuleSettings::new().roles(RoleMapping::builder().rule("devs", "developer").build().unwrap()),
        )
        .build()
        .unwrap();
    principal(mapped.login(&AuthRequest::new(peer("192.0.2.1"))).await);
    let unmapped = AuthChain::builder(store.clone())
        .module(Scripted::user("sso", "alice", &[]))
        .build()
        .unwrap();
    let p = principal(unmapped.login(&AuthRequest::new(peer("192.0.2.1"))).await);
    assert_eq!(
        p.role_names().map(str::to_owned).collect::<BTreeSet<_>>(),
        set(&["developer"])
    );
    assert_eq!(p.account_id, account.id);
}

// The reconciliation tests run against the memory and the SQLite store.
store_tests!(
    reconciliation_keeps_hand_granted_roles,
    a_provider_without_mapping_leaves_mapped_roles_alone,
);
