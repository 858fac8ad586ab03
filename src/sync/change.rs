//! What a directory source reports and a target applies.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::account::RoleMapping;

/// Users or groups: each is mirrored by its own search, with its own cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// User entries.
    User,
    /// Group entries.
    Group,
}

impl EntryKind {
    /// `"users"` or `"groups"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::User => "users",
            EntryKind::Group => "groups",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user entry as the directory holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectoryUser {
    /// The synchronisation id (RFC 4533 entryUUID, text form): what deletions name.
    pub sync_id: String,
    /// The stable id linked to the local account (`(source, stable_id)`): the
    /// same subject the LDAP login module reports, so logins and sync meet.
    pub stable_id: String,
    /// The entry's DN (changes on rename).
    pub dn: String,
    /// The login name.
    pub login: String,
    /// Email address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Whether the account may sign in.
    pub enabled: bool,
}

impl DirectoryUser {
    /// A user with the required fields; email and display name unset, enabled.
    pub fn new(
        sync_id: impl Into<String>,
        stable_id: impl Into<String>,
        dn: impl Into<String>,
        login: impl Into<String>,
    ) -> Self {
        DirectoryUser {
            sync_id: sync_id.into(),
            stable_id: stable_id.into(),
            dn: dn.into(),
            login: login.into(),
            email: None,
            display_name: None,
            enabled: true,
        }
    }
}

/// A group entry as the directory holds it now, with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectoryGroup {
    /// The synchronisation id.
    pub sync_id: String,
    /// The entry's DN.
    pub dn: String,
    /// The group name role mapping sees.
    pub name: String,
    /// Member DNs (users; members that are not synced users are kept and ignored).
    pub members: Vec<String>,
}

impl DirectoryGroup {
    /// A group with these members.
    pub fn new(
        sync_id: impl Into<String>,
        dn: impl Into<String>,
        name: impl Into<String>,
        members: Vec<String>,
    ) -> Self {
        DirectoryGroup {
            sync_id: sync_id.into(),
            dn: dn.into(),
            name: name.into(),
            members,
        }
    }
}

/// One change, in the order the directory sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectoryChange {
    /// A user was added or changed: created, renamed, re-mailed, disabled or
    /// enabled locally as needed.
    UserUpserted(DirectoryUser),
    /// A user left the directory (or the synced scope).
    UserDeleted {
        /// Its synchronisation id.
        sync_id: String,
    },
    /// A group was added or changed; its member list replaces the stored one.
    GroupUpserted(DirectoryGroup),
    /// Values of a group's member list were added and removed (Active
    /// Directory's DirSync incremental values); the group is stored (or its DN and
    /// name updated) as `group` says, `group.members` being the added members.
    GroupMembersChanged {
        /// The group now, with the added member DNs as `members`.
        group: DirectoryGroup,
        /// Member DNs removed.
        removed: Vec<String>,
    },
    /// A group left the directory (or the synced scope).
    GroupDeleted {
        /// Its synchronisation id.
        sync_id: String,
    },
    /// A full refresh of `kind` finished: every stored entry of that kind whose id
    /// is not in `present` is gone from the directory.
    RefreshedPresent {
        /// Users or groups.
        kind: EntryKind,
        /// Every synchronisation id the directory holds now.
        present: BTreeSet<String>,
    },
    /// An entry was unusable and is left as it was (reported, never fatal).
    Skipped {
        /// Its synchronisation id, when known.
        sync_id: Option<String>,
        /// Its DN, when known.
        dn: Option<String>,
        /// Why.
        reason: String,
    },
}

/// Changes applied together, with the cookies that resume after them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SyncBatch {
    /// The changes, in order.
    pub changes: Vec<DirectoryChange>,
    /// For each search, the cookie to store once the changes are in.
    pub cookies: Vec<(EntryKind, Vec<u8>)>,
}

impl SyncBatch {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.cookies.is_empty()
    }
}

/// What happens to the local account of a user who left the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Disable the account and drop its directory roles (the default: history and
    /// locally granted roles stay).
    #[default]
    Disable,
    /// Delete the account.
    Delete,
}

/// Who is syncing and under which rules; passed to every [`apply`].
///
/// [`apply`]: super::DirectoryTarget::apply
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncScope {
    /// The source id: the provider of the accounts' links and of their mapped
    /// roles. Use the id of the LDAP login module, so logins find synced accounts.
    pub source: String,
    /// Deleted users.
    pub on_delete: DeletePolicy,
    /// Group names → roles, as for logins.
    pub roles: Arc<RoleMapping>,
}

impl SyncScope {
    /// A scope for `source` with the default delete policy and no role mapping.
    pub fn new(source: impl Into<String>) -> Self {
        SyncScope {
            source: source.into(),
            on_delete: DeletePolicy::default(),
            roles: Arc::new(RoleMapping::default()),
        }
    }

    /// Sets the delete policy.
    pub fn on_delete(mut self, policy: DeletePolicy) -> Self {
        self.on_delete = policy;
        self
    }

    /// Sets the role mapping.
    pub fn roles(mut self, roles: Arc<RoleMapping>) -> Self {
        self.roles = roles;
        self
    }
}

/// What a batch (or a whole run) changed in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Accounts created.
    pub created: u64,
    /// Existing local accounts linked on first sight (matched by login name).
    pub linked: u64,
    /// Accounts whose email or display name changed.
    pub updated: u64,
    /// Accounts whose login name changed.
    pub renamed: u64,
    /// Accounts disabled (by the directory's flag, or because the user left).
    pub disabled: u64,
    /// Accounts enabled again.
    pub enabled: u64,
    /// Accounts deleted (policy `delete`).
    pub deleted: u64,
    /// Groups added or changed.
    pub groups_upserted: u64,
    /// Groups deleted.
    pub groups_deleted: u64,
    /// Accounts whose mapped roles changed.
    pub roles_changed: u64,
    /// Entries reported and skipped.
    pub skipped: u64,
}

impl SyncReport {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &SyncReport) {
        self.created += other.created;
        self.linked += other.linked;
        self.updated += other.updated;
        self.renamed += other.renamed;
        self.disabled += other.disabled;
        self.enabled += other.enabled;
        self.deleted += other.deleted;
        self.groups_upserted += other.groups_upserted;
        self.groups_deleted += other.groups_deleted;
        self.roles_changed += other.roles_changed;
        self.skipped += other.skipped;
    }

    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        *self == SyncReport::default()
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} linked, {} updated, {} renamed, {} disabled, {} enabled, {} deleted, \
             {} groups changed, {} groups deleted, {} role changes, {} skipped",
            self.created,
            self.linked,
            self.updated,
            self.renamed,
            self.disabled,
            self.enabled,
            self.deleted,
            self.groups_upserted,
            self.groups_deleted,
            self.roles_changed,
            self.skipped
        )
    }
}
