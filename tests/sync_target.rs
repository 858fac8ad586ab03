//! The `DirectoryTarget` contract, run against every store that is one: SQLite
//! (one fresh file per test) and, with the feature `postgres`, a real PostgreSQL
//! (one fresh database per test, tests/peers/postgres.sh). Batches are applied
//! directly, without a directory: what a batch does to accounts, links, roles and
//! cookies, and what it refuses.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use authchain::account::{Account, NewAccount, RoleMapping};
use authchain::sync::{
    DeletePolicy, DirectoryChange, DirectoryGroup, DirectoryTarget, DirectoryUser, EntryKind, SyncBatch,
    SyncScope,
};
use common::TestStore;

const SOURCE: &str = "corp-ldap";

/// A store the contract runs against.
trait Target: TestStore + DirectoryTarget {}
impl<T: TestStore + DirectoryTarget> Target for T {}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn scope() -> SyncScope {
    let roles = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "staff")
        .build()
        .expect("role mapping");
    SyncScope::new(SOURCE).roles(Arc::new(roles))
}

fn batch(changes: Vec<DirectoryChange>) -> SyncBatch {
    let mut batch = SyncBatch::default();
    batch.changes = changes;
    batch
}

fn dn(login: &str) -> String {
    format!("uid={login},ou=people,dc=example,dc=org")
}

fn directory_user(sync_id: &str, login: &str) -> DirectoryUser {
    DirectoryUser::new(sync_id, format!("stable-{sync_id}"), dn(login), login)
}

fn user(sync_id: &str, login: &str) -> DirectoryChange {
    DirectoryChange::UserUpserted(directory_user(sync_id, login))
}

fn group(sync_id: &str, name: &str, members: &[&str]) -> DirectoryChange {
    DirectoryChange::GroupUpserted(DirectoryGroup::new(
        sync_id,
        format!("cn={name},ou=groups,dc=example,dc=org"),
        name,
        members.iter().map(|m| dn(m)).collect(),
    ))
}

async fn account<S: Target>(store: &S, login: &str) -> Option<Account> {
    store.find_by_login(login, true).await.expect("store lookup")
}

fn mapped(account: &Account) -> BTreeSet<String> {
    account.mapped_roles.get(SOURCE).cloned().unwrap_or_default()
}

async fn cookies_are_kept_per_source_and_kind<S: Target>(store: Arc<S>) {
    assert_eq!(store.sync_cookie(SOURCE, EntryKind::User).await.unwrap(), None);
    let mut first = batch(vec![user("s1", "bob")]);
    first.cookies = vec![
        (EntryKind::User, b"u-1".to_vec()),
        (EntryKind::Group, b"g-1".to_vec()),
    ];
    store.apply(&scope(), &first).await.unwrap();
    // A batch of cookies only: the users' search moved on, the groups' did not.
    let mut second = SyncBatch::default();
    second.cookies = vec![(EntryKind::User, b"u-2".to_vec())];
    store.apply(&scope(), &second).await.unwrap();
    assert_eq!(
        store.sync_cookie(SOURCE, EntryKind::User).await.unwrap(),
        Some(b"u-2".to_vec())
    );
    assert_eq!(
        store.sync_cookie(SOURCE, EntryKind::Group).await.unwrap(),
        Some(b"g-1".to_vec())
    );
    assert_eq!(store.sync_cookie("other", EntryKind::User).await.unwrap(), None);
    assert!(account(&*store, "bob").await.is_some());
}

async fn users_are_created_linked_by_name_and_profiles_follow<S: Target>(store: Arc<S>) {
    // A local account that predates the sync is adopted by login name, its own
    // role kept.
    let local = store
        .create_account(NewAccount::new("Alice").role("auditor"))
        .await
        .unwrap();
    let mut carol = directory_user("s3", "carol");
    carol.email = Some("carol@example.org".into());
    carol.display_name = Some("Carol".into());
    carol.enabled = false;
    let report = store
        .apply(
            &scope(),
            &batch(vec![
                user("s1", "alice"),
                user("s2", "bob"),
                DirectoryChange::UserUpserted(carol.clone()),
            ]),
        )
        .await
        .unwrap();
    assert_eq!((report.created, report.linked), (2, 1), "{report:?}");
    assert_eq!(store.count().await, 3);
    let alice = account(&*store, "alice").await.unwrap();
    assert_eq!(alice.id, local.id);
    assert_eq!(alice.roles, set(&["auditor"]));
    assert_eq!(
        store
            .find_by_link(SOURCE, "stable-s1")
            .await
            .unwrap()
            .map(|a| a.id),
        Some(local.id)
    );
    let stored = account(&*store, "carol").await.unwrap();
    assert_eq!(stored.email.as_deref(), Some("carol@example.org"));
    assert_eq!(stored.display_name.as_deref(), Some("Carol"));
    assert!(stored.disabled);
    // Enabled again, with a new address: one update, one enable; the same again
    // changes nothing.
    carol.enabled = true;
    carol.email = Some("c@example.org".into());
    let change = batch(vec![DirectoryChange::UserUpserted(carol)]);
    let report = store.apply(&scope(), &change).await.unwrap();
    assert_eq!((report.updated, report.enabled), (1, 1), "{report:?}");
    let report = store.apply(&scope(), &change).await.unwrap();
    assert_eq!(report, Default::default());
    let stored = account(&*store, "carol").await.unwrap();
    assert!(!stored.disabled);
    assert_eq!(stored.email.as_deref(), Some("c@example.org"));
}

async fn one_batch_sees_its_own_earlier_changes<S: Target>(store: Arc<S>) {
    store
        .apply(&scope(), &batch(vec![user("s0", "zed")]))
        .await
        .unwrap();
    let report = store
        .apply(
            &scope(),
            &batch(vec![
                // A rename takes a name that was free when the batch began...
                user("s0", "carl"),
                // ...so a newcomer with that name is skipped.
                user("s4", "carl"),
                user("s1", "ann"),
                // Another entry wants the name the first took a moment ago: skipped.
                user("s2", "ANN"),
                // The first is renamed, which frees `ann` for a newcomer.
                user("s1", "anne"),
                user("s3", "ann"),
                group("g1", "staff", &["anne", "ann"]),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.created, report.renamed, report.skipped),
        (2, 2, 2),
        "{report:?}"
    );
    assert_eq!(store.count().await, 3);
    assert!(store.find_by_link(SOURCE, "stable-s4").await.unwrap().is_none());
    let anne = account(&*store, "anne").await.expect("s1, renamed");
    let ann = account(&*store, "ann").await.expect("s3");
    assert_ne!(anne.id, ann.id);
    assert_eq!(
        store.find_by_link(SOURCE, "stable-s1").await.unwrap().unwrap().id,
        anne.id
    );
    assert_eq!(
        store.find_by_link(SOURCE, "stable-s3").await.unwrap().unwrap().id,
        ann.id
    );
    assert!(store.find_by_link(SOURCE, "stable-s2").await.unwrap().is_none());
    assert_eq!(mapped(&anne), set(&["staff"]));
    assert_eq!(mapped(&ann), set(&["staff"]));
}

async fn group_membership_maps_roles_and_follows_renames<S: Target>(store: Arc<S>) {
    store
        .apply(
            &scope(),
            &batch(vec![
                user("s1", "alice"),
                user("s2", "bob"),
                group("g1", "admins", &["alice"]),
                // Member values written differently from the entry's DN still match.
                DirectoryChange::GroupUpserted(DirectoryGroup::new(
                    "g2",
                    "cn=staff,ou=groups,dc=example,dc=org",
                    "staff",
                    vec!["UID=Alice, ou=People,dc=example,dc=org".into(), dn("bob")],
                )),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        mapped(&account(&*store, "alice").await.unwrap()),
        set(&["admin", "staff"])
    );
    assert_eq!(mapped(&account(&*store, "bob").await.unwrap()), set(&["staff"]));
    // Alice is renamed (modrdn): her memberships follow her new DN.
    let renamed =
        DirectoryChange::UserUpserted(DirectoryUser::new("s1", "stable-s1", dn("alice2"), "alice2"));
    let report = store.apply(&scope(), &batch(vec![renamed])).await.unwrap();
    assert_eq!(report.renamed, 1, "{report:?}");
    assert!(account(&*store, "alice").await.is_none());
    let alice = account(&*store, "alice2").await.unwrap();
    assert_eq!(mapped(&alice), set(&["admin", "staff"]));
    // Bob leaves staff; the admins group is renamed to one no rule maps.
    let report = store
        .apply(
            &scope(),
            &batch(vec![
                group("g2", "staff", &["alice2"]),
                group("g1", "wheel", &["alice2"]),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.groups_upserted, report.roles_changed),
        (2, 2),
        "{report:?}"
    );
    assert_eq!(
        mapped(&account(&*store, "alice2").await.unwrap()),
        set(&["staff"])
    );
    assert_eq!(mapped(&account(&*store, "bob").await.unwrap()), set(&[]));
    // A deleted group takes its roles with it.
    let report = store
        .apply(
            &scope(),
            &batch(vec![DirectoryChange::GroupDeleted { sync_id: "g2".into() }]),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.groups_deleted, report.roles_changed),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(mapped(&account(&*store, "alice2").await.unwrap()), set(&[]));
}

async fn deleted_users_are_disabled_or_deleted_by_policy<S: Target>(store: Arc<S>) {
    let setup = batch(vec![
        user("s1", "alice"),
        user("s2", "bob"),
        group("g1", "staff", &["alice", "bob"]),
    ]);
    store.apply(&scope(), &setup).await.unwrap();
    let deleted = |id: &str| DirectoryChange::UserDeleted { sync_id: id.into() };
    // Disable (the default): the account stays, disabled, its mapped roles cleared,
    // its locally granted ones kept.
    let alice = account(&*store, "alice").await.unwrap();
    store.set_local_role(&alice.id, "auditor", true).await.unwrap();
    let report = store.apply(&scope(), &batch(vec![deleted("s1")])).await.unwrap();
    assert_eq!((report.disabled, report.roles_changed), (1, 1), "{report:?}");
    let alice = account(&*store, "alice").await.unwrap();
    assert!(alice.disabled);
    assert_eq!(mapped(&alice), set(&[]));
    assert_eq!(alice.roles, set(&["auditor"]));
    // Delete: the account is gone. A deletion of an unknown entry changes nothing.
    let delete = scope().on_delete(DeletePolicy::Delete);
    let report = store
        .apply(&delete, &batch(vec![deleted("s2"), deleted("nobody")]))
        .await
        .unwrap();
    assert_eq!(report.deleted, 1, "{report:?}");
    assert!(account(&*store, "bob").await.is_none());
    assert_eq!(store.count().await, 1);
}

async fn a_complete_refresh_removes_what_the_directory_no_longer_lists<S: Target>(store: Arc<S>) {
    let setup = batch(vec![
        user("s1", "alice"),
        user("s2", "bob"),
        group("g1", "staff", &["alice", "bob"]),
        group("g2", "admins", &["bob"]),
    ]);
    store.apply(&scope(), &setup).await.unwrap();
    let refresh = batch(vec![
        DirectoryChange::RefreshedPresent {
            kind: EntryKind::User,
            present: set(&["s1"]),
        },
        DirectoryChange::RefreshedPresent {
            kind: EntryKind::Group,
            present: set(&["g1"]),
        },
    ]);
    let report = store.apply(&scope(), &refresh).await.unwrap();
    assert_eq!((report.disabled, report.groups_deleted), (1, 1), "{report:?}");
    assert!(account(&*store, "bob").await.unwrap().disabled);
    let alice = account(&*store, "alice").await.unwrap();
    assert!(!alice.disabled);
    assert_eq!(mapped(&alice), set(&["staff"]));
}

async fn a_user_deleted_and_added_again_in_one_batch<S: Target>(store: Arc<S>) {
    for policy in [DeletePolicy::Disable, DeletePolicy::Delete] {
        let id = format!("s-{policy:?}");
        let login = format!("bob-{policy:?}");
        let scope = scope().on_delete(policy);
        store
            .apply(&scope, &batch(vec![user(&id, &login)]))
            .await
            .unwrap();
        let first = account(&*store, &login).await.unwrap();
        let deleted = DirectoryChange::UserDeleted { sync_id: id.clone() };
        let report = store
            .apply(&scope, &batch(vec![deleted, user(&id, &login)]))
            .await
            .unwrap();
        let again = account(&*store, &login).await.expect("bob is back");
        assert!(!again.disabled, "{policy:?}");
        match policy {
            // The link outlived the entry: the old account is adopted again.
            DeletePolicy::Disable => {
                assert_eq!(again.id, first.id);
                assert_eq!((report.disabled, report.enabled, report.created), (1, 1, 0));
            }
            _ => {
                assert_ne!(again.id, first.id);
                assert_eq!((report.deleted, report.created), (1, 1));
            }
        }
    }
    assert_eq!(store.count().await, 2);
}

async fn unusable_entries_are_skipped_and_change_nothing<S: Target>(store: Arc<S>) {
    store
        .apply(&scope(), &batch(vec![user("s1", "alice")]))
        .await
        .unwrap();
    // Another directory entry with a name an entry of this source holds, a
    // rename onto it, and (where the store cannot hold them) hostile values.
    let hostile = ["nul\0name", &"x".repeat(5000)];
    let mut changes = vec![user("s2", "ALICE"), user("s3", "carol"), user("s3", "alice")];
    changes.extend(
        hostile
            .iter()
            .enumerate()
            .map(|(i, login)| user(&format!("h{i}"), login)),
    );
    changes.push(group("g1", "staff", &["carol", hostile[1]]));
    let report = store.apply(&scope(), &batch(changes)).await.unwrap();
    let refused = hostile.iter().filter(|login| S::refuses(login)).count() as u64;
    assert_eq!(report.skipped, 2 + refused, "{report:?}");
    assert_eq!(report.created, 1 + hostile.len() as u64 - refused, "{report:?}");
    assert_eq!(store.find_by_link(SOURCE, "stable-s2").await.unwrap(), None);
    // A member the store cannot hold is no reason to drop the group: the others
    // get its role.
    let carol = account(&*store, "carol").await.expect("carol kept her name");
    assert_eq!(mapped(&carol), set(&["staff"]));
    for (i, login) in hostile.iter().enumerate() {
        let linked = store.find_by_link(SOURCE, &format!("stable-h{i}")).await.unwrap();
        assert_eq!(linked.is_none(), S::refuses(login), "{i}");
    }
}

async fn incremental_member_values_patch_the_stored_members<S: Target>(store: Arc<S>) {
    let dn = |login: &str| format!("uid={login},ou=people,dc=example,dc=org");
    let staff = |members: Vec<String>| {
        DirectoryGroup::new("g1", "cn=staff,ou=groups,dc=example,dc=org", "staff", members)
    };
    // A patch for a group not stored yet creates it with the added members.
    let report = store
        .apply(
            &scope(),
            &batch(vec![
                user("s1", "anne"),
                user("s2", "bert"),
                user("s3", "cleo"),
                DirectoryChange::GroupMembersChanged {
                    group: staff(vec![dn("anne"), dn("bert")]),
                    removed: vec![],
                },
            ]),
        )
        .await
        .unwrap();
    assert_eq!(report.groups_upserted, 1, "{report:?}");
    for (login, roles) in [("anne", &["staff"][..]), ("bert", &["staff"]), ("cleo", &[])] {
        assert_eq!(
            mapped(&account(&*store, login).await.unwrap()),
            set(roles),
            "{login}"
        );
    }
    // Removed and added values change only those members (a DN written differently
    // still matches); the others keep their roles.
    let report = store
        .apply(
            &scope(),
            &batch(vec![DirectoryChange::GroupMembersChanged {
                group: staff(vec![dn("cleo")]),
                removed: vec!["UID=Anne, ou=people,dc=example,dc=org".into()],
            }]),
        )
        .await
        .unwrap();
    assert_eq!(
        (report.groups_upserted, report.roles_changed),
        (1, 2),
        "{report:?}"
    );
    for (login, roles) in [("anne", &[][..]), ("bert", &["staff"]), ("cleo", &["staff"])] {
        assert_eq!(
            mapped(&account(&*store, login).await.unwrap()),
            set(roles),
            "{login}"
        );
    }
    // Nothing new: nothing changes.
    let report = store
        .apply(
            &scope(),
            &batch(vec![DirectoryChange::GroupMembersChanged {
                group: staff(vec![dn("bert")]),
                removed: vec![dn("anne")],
            }]),
        )
        .await
        .unwrap();
    assert!(report.is_empty(), "{report:?}");
}

/// Runs each listed `async fn name(store: Arc<impl Target>)` against a fresh
/// SQLite file and, with the feature `postgres`, a fresh PostgreSQL database.
macro_rules! target_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let name = concat!(module_path!(), "::", stringify!($name));
                    super::$name(crate::common::sqlite_store(name).await).await
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::state::pg_store().await).await
                }
            )*
        }
    };
}

target_tests!(
    cookies_are_kept_per_source_and_kind,
    users_are_created_linked_by_name_and_profiles_follow,
    one_batch_sees_its_own_earlier_changes,
    group_membership_maps_roles_and_follows_renames,
    deleted_users_are_disabled_or_deleted_by_policy,
    a_complete_refresh_removes_what_the_directory_no_longer_lists,
    a_user_deleted_and_added_again_in_one_batch,
    unusable_entries_are_skipped_and_change_nothing,
    incremental_member_values_patch_the_stored_members,
);
