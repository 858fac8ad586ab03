//! The Active Directory source: DirSync (1.2.840.113556.1.4.841) with incremental
//! member values and deletions through `isDeleted`, or `uSNChanged` polling when
//! the service account may not use DirSync; change notification
//! (1.2.840.113556.1.4.528) optionally wakes the poll as soon as the directory
//! changes.
//!
//! Users and groups are two DirSync searches from the naming context's root, each
//! with its own cookie (stored like the RFC 4533 cookies, prefixed `D` for DirSync
//! and `U` for a `uSNChanged` mark, so a switch between the two starts over with a
//! full refresh). A DirSync search lists only the attributes that changed: a
//! changed user is read again whole, a changed group is read again for its name,
//! and its member values are applied one by one
//! ([`DirectoryChange::GroupMembersChanged`]). With nested groups flattened,
//! a changed group and every group that contains it are read again with their
//! users through the in-chain matching rule (1.2.840.113556.1.4.1941).

pub(crate) mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::controls::RawControl;
use ldap3::{Ldap, Scope, SearchEntry, ldap_escape};
use serde::Deserialize;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use super::ldap::mapping::{GroupMapping, UserMapping};
use super::ldap::{LdapSource, Search, deleted, wire as ldap_wire};
use super::{DirectoryChange, DirectorySource, EntryKind, Resume, SourceEvent, SyncError};
use crate::ConfigError;
use crate::audit::AUDIT_TARGET;
use crate::modules::LdapModule;
use crate::modules::ldap::connection::describe;
use crate::modules::ldap::{LdapError, LdapOperation};
use crate::{AuthError, ModuleError, OtherError};

/// Result code 50, insufficientAccessRights: the account may not use DirSync.
const INSUFFICIENT_ACCESS: u32 = 50;

/// Entries per page of a `uSNChanged` or in-chain search (AD's MaxPageSize is
/// 1000 by default).
const PAGE_SIZE: u32 = 500;

/// Most DirSync rounds (each ends with "more results") in one catch-up: a
/// directory that keeps saying "more" without end is cut off there.
const MAX_DIRSYNC_ROUNDS: usize = 100_000;

/// Most groups read again for one flattened change (the group and its ancestors).
const MAX_FLATTEN_GROUPS: usize = 10_000;

/// Most slices of one ranged member list read (`member;range=N-*`).
const MAX_SLICES: usize = 100;

/// How long change notifications are gathered before the poll they trigger.
const NOTIFY_SETTLE: Duration = Duration::from_millis(10);

/// The in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN).
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// How an [`AdSource`] learns what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdChanges {
    /// DirSync; `uSNChanged` polling once the directory refuses DirSync with
    /// insufficientAccessRights (the default).
    #[default]
    Auto,
    /// DirSync only: a refusal is an error, retried with backoff.
    Dirsync,
    /// `uSNChanged` polling only (deletions found by listing the entries' ids).
    Usn,
}

/// The `[sync.ad]` table: how the Active Directory source works.
///
/// ```toml
/// [sync]
/// source = "active_directory"
/// module = "corp-ad"
/// user_base = "CN=Users,DC=example,DC=test"
/// group_base = "CN=Users,DC=example,DC=test"
/// poll_interval = "PT30S"
///
/// [sync.ad]
/// changes = "auto"                  # "dirsync" | "usn"
/// change_notification = true
/// flatten_nested_groups = true
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AdSettings {
    /// DirSync, `uSNChanged` polling, or DirSync falling back to polling (default `auto`).
    #[serde(default)]
    pub changes: AdChanges,
    /// Follow a change notification search and poll as soon as anything changes
    /// (default `false`: poll at `poll_interval` only).
    #[serde(default)]
    pub change_notification: bool,
    /// Groups list the users of their nested groups too (default `false`: direct
    /// members only).
    #[serde(default)]
    pub flatten_nested_groups: bool,
    /// The root of the naming context DirSync reads (default: the `DC=` components
    /// of `user_base`).
    pub naming_context: Option<String>,
}

/// Mirrors users and groups from Active Directory (or a Samba AD DC). Built with
/// [`AdSource::new`] from an [`LdapSource`] (its module, searches and attribute
/// mapping) and [`AdSettings`]; [`AdSource::defaults`] gives a builder the AD
/// defaults.
#[derive(Debug)]
pub struct AdSource {
    module: LdapModule,
    naming_context: String,
    users: Search,
    groups: Option<Search>,
    user_mapping: UserMapping,
    group_mapping: GroupMapping,
    changes: AdChanges,
    notification: bool,
    flatten: bool,
    poll: Duration,
    /// Set when the directory refused DirSync (`changes = "auto"`): poll
    /// `uSNChanged` from then on.
    dirsync_refused: AtomicBool,
}

/// The default user filter of an AD source (users, not computers).
pub const AD_USER_FILTER: &str = "(&(objectClass=user)(!(objectClass=computer)))";
/// The default group filter of an AD source.
pub const AD_GROUP_FILTER: &str = "(objectClass=group)";

impl AdSource {
    /// `builder` with Active Directory's defaults: `objectGUID` as the stable id,
    /// `sAMAccountName` as the login, the user and group filters
    /// [`AD_USER_FILTER`] and [`AD_GROUP_FILTER`], disabled by
    /// `userAccountControl` bit 2.
    pub fn defaults(builder: super::LdapSourceBuilder) -> super::LdapSourceBuilder {
        builder
            .stable_id_attribute("objectGUID")
            .login_attribute("sAMAccountName")
            .disabled(super::DisabledRule::active_directory())
    }

    /// The AD source over `base`'s module, searches and mapping; it polls at
    /// `base`'s poll interval (`SyncMode::Poll`, or the fallback interval of
    /// `SyncMode::Persist`).
    pub fn new(base: LdapSource, settings: AdSettings) -> Result<AdSource, ConfigError> {
        let invalid = |field: &str, message: &str| ConfigError::invalid(format!("sync.{field}"), message);
        let naming_context = match settings.naming_context {
            Some(nc) if nc.trim().is_empty() => {
                return Err(invalid("ad.naming_context", "must not be empty"));
            }
            Some(nc) => nc,
            None => domain_root(&base.users.base).ok_or_else(|| {
                invalid(
                    "ad.naming_context",
                    "user_base has no DC= components: give the naming context",
                )
            })?,
        };
        for (field, search) in [
            ("user_base", Some(&base.users)),
            ("group_base", base.groups.as_ref()),
        ] {
            if let Some(search) = search
                && !under(&search.base, &naming_context)
            {
                return Err(invalid(field, "is not under the naming context"));
            }
        }
        let poll = match base.mode {
            super::SyncMode::Poll(every) => every,
            super::SyncMode::Persist => base.fallback_interval,
        };
        Ok(AdSource {
            module: base.module,
            naming_context,
            users: base.users,
            groups: base.groups,
            user_mapping: base.user_mapping,
            group_mapping: base.group_mapping,
            changes: settings.changes,
            notification: settings.change_notification,
            flatten: settings.flatten_nested_groups,
            poll,
            dirsync_refused: AtomicBool::new(false),
        })
    }

    /// Whether the source polls `uSNChanged` (configured, or after DirSync was refused).
    pub fn polls_usn(&self) -> bool {
        self.changes == AdChanges::Usn || self.dirsync_refused.load(Ordering::Relaxed)
    }
}

/// The `DC=` components at the end of `dn`, `None` without any.
fn domain_root(dn: &str) -> Option<String> {
    let parts: Vec<&str> = dn.split(',').map(str::trim).collect();
    let start = parts
        .iter()
        .rposition(|p| !p.get(..3).is_some_and(|k| k.eq_ignore_ascii_case("dc=")))
        .map_or(0, |i| i + 1);
    (start < parts.len()).then(|| parts[start..].join(","))
}

/// `dn` lower-cased without spaces around separators (for comparisons only).
fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `dn` is `base` or under it.
fn under(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn_key(dn), dn_key(base));
    dn == base || dn.ends_with(&format!(",{base}"))
}

/// A cookie as stored: `D` + DirSync cookie, or `U` + the decimal `uSNChanged` mark.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cookie {
    DirSync(Vec<u8>),
    Usn(u64),
}

impl Cookie {
    fn parse(stored: Option<Vec<u8>>) -> Option<Cookie> {
        let stored = stored?;
        match stored.split_first() {
            Some((b'D', rest)) => Some(Cookie::DirSync(rest.to_vec())),
            Some((b'U', rest)) => std::str::from_utf8(rest).ok()?.parse().ok().map(Cookie::Usn),
            _ => None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Cookie::DirSync(raw) => [b"D".as_slice(), raw].concat(),
            Cookie::Usn(usn) => format!("U{usn}").into_bytes(),
        }
    }
}

/// An entry's `objectGUID` in its text form.
fn guid(entry: &SearchEntry) -> Option<String> {
    crate::modules::ldap::entry::subject(entry, "objectGUID")
}

/// Escapes an objectGUID (text form) for a filter: `\xx` for each byte.
fn guid_filter(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| &hex[2 * i..2 * i + 2];
    // The first three fields are little-endian.
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    Some(order.iter().map(|i| format!("\\{}", byte(*i))).collect())
}

fn is_deleted(entry: &SearchEntry) -> bool {
    crate::modules::ldap::entry::first_value(entry, "isDeleted")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Member values of `entry` under `attribute`: (whole list, added, removed).
/// Refuses more than [`wire::MAX_MEMBER_VALUES`] in all.
type MemberValues = (Vec<String>, Vec<String>, Vec<String>);

fn member_values(entry: &SearchEntry, attribute: &str) -> Result<MemberValues, &'static str> {
    let (mut all, mut added, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0usize;
    for (name, values) in &entry.attrs {
        let target = match wire::values_of(name, attribute) {
            Some(wire::Values::All | wire::Values::Slice { .. }) => &mut all,
            Some(wire::Values::Added) => &mut added,
            Some(wire::Values::Removed) => &mut removed,
            None => continue,
        };
        count = count.saturating_add(values.len());
        if count > wire::MAX_MEMBER_VALUES {
            return Err("too many member values in one entry");
        }
        target.extend(values.iter().filter(|v| !v.trim().is_empty()).cloned());
    }
    Ok((all, added, removed))
}

/// What one search of a round found.
#[derive(Default)]
struct Listing {
    entries: Vec<SearchEntry>,
    /// Cookie of the next page (paged) or the DirSync response.
    paged: Option<Vec<u8>>,
    dirsync: Option<wire::DirSyncResponse>,
}

#[async_trait]
impl DirectorySource for AdSource {
    fn id(&self) -> &str {
        crate::Authenticator::id(&self.module)
    }

    async fn session(&self, resume: Resume, events: mpsc::Sender<SourceEvent>) -> Result<(), SyncError> {
        let conn = self.connect(EntryKind::User).await?;
        let ldap = conn.ldap.clone();
        let notify = Arc::new(Notify::new());
        let mut watcher = if self.notification {
            let conn = self.connect(EntryKind::User).await?;
            let ldap = conn.ldap.clone();
            let notify = notify.clone();
            let base = self.naming_context.clone();
            Some(Watcher(tokio::spawn(async move {
                let _conn = conn;
                watch(ldap, base, notify).await
            })))
        } else {
            None
        };
        let mut cookies = BTreeMap::new();
        cookies.insert(EntryKind::User, Cookie::parse(resume.users));
        if self.groups.is_some() {
            cookies.insert(EntryKind::Group, Cookie::parse(resume.groups));
        }
        let mut first = true;
        let result = loop {
            for (kind, cookie) in cookies.iter_mut() {
                let mut ldap = ldap.clone();
                match self.round(*kind, &mut ldap, cookie, &events).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(err) => return Err(err),
                }
                if first && events.send(SourceEvent::RefreshDone(*kind)).await.is_err() {
                    return Ok(());
                }
            }
            first = false;
            let ended = async {
                match watcher.as_mut() {
                    Some(task) => (&mut task.0).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                () = notify.notified() => tokio::time::sleep(NOTIFY_SETTLE).await,
                () = events.closed() => break Ok(()),
                why = ended => {
                    let detail = match why {
                        Ok(Ok(())) => "the directory ended the change notification search".to_owned(),
                        Ok(Err(err)) => describe(&err),
                        Err(_) => "the change notification task failed".to_owned(),
                    };
                    watcher = None;
                    break Err(self.protocol(EntryKind::User, detail));
                }
            }
        };
        drop((watcher, conn));
        result
    }

    fn kinds(&self) -> Vec<EntryKind> {
        match self.groups {
            Some(_) => vec![EntryKind::User, EntryKind::Group],
            None => vec![EntryKind::User],
        }
    }
}

/// The change notification task, stopped with the session however it ends
/// (also when the synchroniser drops the session at shutdown).
struct Watcher(tokio::task::JoinHandle<Result<(), ldap3::LdapError>>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows a change notification search; each entry wakes the poll.
async fn watch(mut ldap: Ldap, base: String, notify: Arc<Notify>) -> Result<(), ldap3::LdapError> {
    let control = RawControl {
        ctype: wire::NOTIFICATION_OID.into(),
        crit: true,
        val: None,
    };
    let mut stream = ldap
        .with_controls(control)
        .streaming_search(&base, Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .await?;
    while let Some(entry) = stream.next().await? {
        if !entry.is_ref() && !entry.is_intermediate() {
            notify.notify_one();
        }
    }
    let result = stream.finish().await;
    result.success().map(|_| ())
}

impl AdSource {
    fn search_of(&self, kind: EntryKind) -> Option<&Search> {
        match kind {
            EntryKind::User => Some(&self.users),
            EntryKind::Group => self.groups.as_ref(),
        }
    }

    fn attributes(&self, kind: EntryKind) -> Vec<String> {
        let mut names = match kind {
            EntryKind::User => self.user_mapping.attributes(),
            EntryKind::Group => self.group_mapping.attributes(),
        };
        names.extend(["objectGUID".to_owned(), "isDeleted".to_owned()]);
        crate::modules::ldap::entry::dedup_attribute_names(names)
    }

    fn protocol(&self, kind: EntryKind, detail: impl std::fmt::Display) -> SyncError {
        SyncError::Directory {
            kind,
            cause: LdapError::Protocol {
                operation: LdapOperation::Search,
                detail: detail.to_string(),
            },
        }
    }

    fn result(&self, kind: EntryKind, code: u32) -> SyncError {
        SyncError::Directory {
            kind,
            cause: LdapError::Result {
                operation: LdapOperation::Search,
                code,
            },
        }
    }

    async fn connect(&self, kind: EntryKind) -> Result<crate::modules::ldap::pool::Conn, SyncError> {
        self.module.connect_service().await.map_err(|err| match err {
            AuthError::Unavailable {
                cause: ModuleError::Ldap(cause),
                ..
            } => SyncError::Directory { kind, cause },
            other => SyncError::Source(OtherError::new(other)),
        })
    }

    /// One search, collected: its entries (referrals and intermediate messages
    /// left out) and its DirSync or paged results response. `Err(Ok(code))` for a
    /// result code other than 0.
    async fn list(
        &self,
        kind: EntryKind,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attributes: Vec<String>,
        controls: Vec<RawControl>,
    ) -> Result<Result<Listing, u32>, SyncError> {
        let mut stream = ldap
            .with_controls(controls)
            .streaming_search(base, Scope::Subtree, filter, attributes)
            .await
            .map_err(|err| self.protocol(kind, describe(&err)))?;
        let mut listing = Listing::default();
        loop {
            let entry = match stream.next().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(err) => return Err(self.protocol(kind, describe(&err))),
            };
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            match ldap_wire::search_entry(&entry) {
                Ok(found) => listing.entries.push(found),
                Err(bad) => warn!(source = %self.id(), %kind, reason = %bad, "directory entry skipped"),
            }
        }
        let done = stream.finish().await;
        if done.rc != 0 {
            debug!(source = %self.id(), %kind, rc = done.rc, text = %done.text, "search failed");
            return Ok(Err(done.rc));
        }
        if let Some(value) = ldap_wire::control_value(&done.ctrls, wire::DIRSYNC_OID) {
            listing.dirsync = Some(wire::dirsync_response(value).map_err(|bad| self.protocol(kind, bad))?);
        }
        if let Some(value) = ldap_wire::control_value(&done.ctrls, wire::PAGED_RESULTS_OID) {
            listing.paged = wire::paged_response(value)
                .map_err(|bad| self.protocol(kind, bad))?
                .cookie;
        }
        Ok(Ok(listing))
    }

    /// Every entry under `base` matching `filter`, page by page.
    async fn paged(
        &self,
        kind: EntryKind,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attributes: &[String],
    ) -> Result<Vec<SearchEntry>, SyncError> {
        let mut all = Vec::new();
        let mut page = Vec::new();
        loop {
            let control = RawControl {
                ctype: wire::PAGED_RESULTS_OID.into(),
                crit: false,
                val: Some(wire::paged_request(PAGE_SIZE, &page)),
            };
            let listing = self
                .list(kind, ldap, base, filter, attributes.to_vec(), vec![control])
                .await?
                .map_err(|code| self.result(kind, code))?;
            all.extend(listing.entries);
            match listing.paged {
                Some(next) if next != page => page = next,
                _ => return Ok(all),
            }
        }
    }

    /// One catch-up of `kind`; `Ok(false)` when `events` closed.
    async fn round(
        &self,
        kind: EntryKind,
        ldap: &mut Ldap,
        cookie: &mut Option<Cookie>,
        events: &mpsc::Sender<SourceEvent>,
    ) -> Result<bool, SyncError> {
        if !self.polls_usn() {
            let dirsync_cookie = match cookie {
                Some(Cookie::DirSync(raw)) => Some(raw.clone()),
                _ => None,
            };
            match self.dirsync(kind, ldap, dirsync_cookie, events).await? {
                Ok(Some(next)) => {
                    *cookie = Some(Cookie::DirSync(next));
                    return Ok(true);
                }
                Ok(None) => return Ok(false),
                Err(INSUFFICIENT_ACCESS) if self.changes == AdChanges::Auto => {
                    warn!(target: AUDIT_TARGET, source = %self.id(),
                        "the directory refuses DirSync to the service account: polling uSNChanged instead");
                    self.dirsync_refused.store(true, Ordering::Relaxed);
                }
                Err(code) => return Err(self.result(kind, code)),
            }
        }
        let mark = match cookie {
            Some(Cookie::Usn(usn)) => Some(*usn),
            _ => None,
        };
        match self.usn(kind, ldap, mark, events).await? {
            Some(next) => {
                *cookie = Some(Cookie::Usn(next));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sends `changes`, then the cookie; `false` when `events` closed.
    async fn send(
        &self,
        kind: EntryKind,
        changes: Vec<DirectoryChange>,
        cookie: Option<&Cookie>,
        events: &mpsc::Sender<SourceEvent>,
    ) -> bool {
        for change in changes {
            if events.send(SourceEvent::Change(change)).await.is_err() {
                return false;
            }
        }
        match cookie {
            Some(cookie) => events
                .send(SourceEvent::Cookie(kind, cookie.encode()))
                .await
                .is_ok(),
            None => true,
        }
    }

    /// DirSync rounds until the directory has nothing more. `Ok(Ok(Some(cookie)))`
    /// when done, `Ok(Ok(None))` when `events` closed, `Ok(Err(code))` when the
    /// directory refused the search.
    async fn dirsync(
        &self,
        kind: EntryKind,
        ldap: &mut Ldap,
        cookie: Option<Vec<u8>>,
        events: &mpsc::Sender<SourceEvent>,
    ) -> Result<Result<Option<Vec<u8>>, u32>, SyncError> {
        let Some(search) = self.search_of(kind) else {
            return Ok(Ok(cookie));
        };
        let full = cookie.is_none();
        let mut cookie = cookie.unwrap_or_default();
        let class = match kind {
            EntryKind::User => "user",
            EntryKind::Group => "group",
        };
        let filter = if full {
            search.filter.clone()
        } else {
            format!("(|{}(&(isDeleted=TRUE)(objectClass={class})))", search.filter)
        };
        let mut present = BTreeSet::new();
        let mut changed_groups = BTreeSet::new();
        for _ in 0..MAX_DIRSYNC_ROUNDS {
            let controls = vec![
                RawControl {
                    ctype: wire::DIRSYNC_OID.into(),
                    crit: true,
                    val: Some(wire::dirsync_request(
                        wire::DIRSYNC_INCREMENTAL_VALUES,
                        0,
                        &cookie,
                    )),
                },
                RawControl {
                    ctype: wire::SHOW_DELETED_OID.into(),
                    crit: true,
                    val: None,
                },
            ];
            let listing = match self
                .list(
                    kind,
                    ldap,
                    &self.naming_context,
                    &filter,
                    self.attributes(kind),
                    controls,
                )
                .await?
            {
                Ok(listing) => listing,
                Err(code) => return Ok(Err(code)),
            };
            let response = listing
                .dirsync
                .ok_or_else(|| self.protocol(kind, "the DirSync search ended without a DirSync control"))?;
            let mut changes = Vec::new();
            for entry in &listing.entries {
                let Some(id) = guid(entry) else {
                    changes.push(skipped(None, entry, "no objectGUID"));
                    continue;
                };
                if is_deleted(entry) {
                    if !full {
                        changes.push(deleted(kind, id));
                    }
                    continue;
                }
                if full {
                    if !under(&entry.dn, &search.base) {
                        continue;
                    }
                    present.insert(id.clone());
                }
                match kind {
                    EntryKind::User if full => changes.push(self.user_mapping.change(id, entry)),
                    EntryKind::User => changes.push(self.reread_user(ldap, id).await?),
                    EntryKind::Group if self.flatten => {
                        changed_groups.insert(entry.dn.clone());
                    }
                    EntryKind::Group => changes.push(self.group_change(ldap, id, entry, full).await?),
                }
            }
            let more = response.more && response.cookie != cookie;
            cookie = response.cookie;
            // A full refresh keeps its cookies until the end: a restart in the middle
            // starts it over, so what it had not listed is never taken as kept.
            let stored = (!full).then(|| Cookie::DirSync(cookie.clone()));
            if !self.send(kind, changes, stored.as_ref(), events).await {
                return Ok(Ok(None));
            }
            if !more {
                let mut tail = Vec::new();
                if self.flatten && kind == EntryKind::Group && !changed_groups.is_empty() {
                    tail = self.flattened(ldap, &changed_groups, !full).await?;
                }
                if full {
                    tail.push(DirectoryChange::RefreshedPresent {
                        kind,
                        present: std::mem::take(&mut present),
                    });
                }
                let last = Cookie::DirSync(cookie.clone());
                if !self.send(kind, tail, Some(&last), events).await {
                    return Ok(Ok(None));
                }
                return Ok(Ok(Some(cookie)));
            }
        }
        Err(self.protocol(kind, "the DirSync search never ended"))
    }

    /// A changed user, read again whole; deleted when it left the synced scope.
    async fn reread_user(&self, ldap: &mut Ldap, id: String) -> Result<DirectoryChange, SyncError> {
        match self
            .reread(EntryKind::User, ldap, &id, self.user_mapping.attributes())
            .await?
        {
            Some(entry) => Ok(self.user_mapping.change(id, &entry)),
            None => Ok(deleted(EntryKind::User, id)),
        }
    }

    /// The entry with this objectGUID under the `kind` search, if it still matches.
    async fn reread(
        &self,
        kind: EntryKind,
        ldap: &mut Ldap,
        id: &str,
        attributes: Vec<String>,
    ) -> Result<Option<SearchEntry>, SyncError> {
        let Some(search) = self.search_of(kind) else {
            return Ok(None);
        };
        let Some(escaped) = guid_filter(id) else {
            return Ok(None);
        };
        let filter = format!("(&{}(objectGUID={escaped}))", search.filter);
        let listing = self
            .list(kind, ldap, &search.base, &filter, attributes, Vec::new())
            .await?
            .map_err(|code| self.result(kind, code))?;
        Ok(listing.entries.into_iter().next())
    }

    /// A DirSync group entry: the whole group on a full refresh, its member
    /// values otherwise.
    async fn group_change(
        &self,
        ldap: &mut Ldap,
        id: String,
        entry: &SearchEntry,
        full: bool,
    ) -> Result<DirectoryChange, SyncError> {
        let (all, added, removed) = match member_values(entry, &self.group_mapping.member) {
            Ok(values) => values,
            Err(why) => return Ok(skipped(Some(id), entry, why)),
        };
        if full {
            let mut whole = entry.clone();
            whole
                .attrs
                .retain(|name, _| wire::values_of(name, &self.group_mapping.member).is_none());
            whole
                .attrs
                .insert(self.group_mapping.member.clone(), [all, added].concat());
            return Ok(self.group_mapping.change(id, &whole));
        }
        let name = vec![self.group_mapping.name.clone()];
        let Some(now) = self.reread(EntryKind::Group, ldap, &id, name).await? else {
            return Ok(deleted(EntryKind::Group, id));
        };
        Ok(match self.group_mapping.change(id, &now) {
            DirectoryChange::GroupUpserted(mut group) if all.is_empty() => {
                group.members = added;
                DirectoryChange::GroupMembersChanged { group, removed }
            }
            DirectoryChange::GroupUpserted(mut group) => {
                // A whole member list (a directory without incremental values).
                group.members = all;
                DirectoryChange::GroupUpserted(group)
            }
            other => other,
        })
    }

    /// The groups with these DNs, and (`ancestors`) every group containing one of
    /// them, with the users of their nested groups as members.
    async fn flattened(
        &self,
        ldap: &mut Ldap,
        dns: &BTreeSet<String>,
        ancestors: bool,
    ) -> Result<Vec<DirectoryChange>, SyncError> {
        let Some(groups) = self.groups.clone() else {
            return Ok(Vec::new());
        };
        let kind = EntryKind::Group;
        let attributes = self.attributes(kind);
        let mut todo: BTreeMap<String, Option<SearchEntry>> =
            dns.iter().map(|dn| (dn.clone(), None)).collect();
        if ancestors {
            for dn in dns {
                let filter = format!(
                    "(&{}(member:{IN_CHAIN}:={}))",
                    groups.filter,
                    ldap_escape(dn.as_str())
                );
                for entry in self.paged(kind, ldap, &groups.base, &filter, &attributes).await? {
                    todo.insert(entry.dn.clone(), Some(entry));
                }
                if todo.len() > MAX_FLATTEN_GROUPS {
                    return Err(self.protocol(kind, "too many groups contain the changed group"));
                }
            }
        }
        let mut changes = Vec::new();
        for (dn, entry) in todo {
            let entry = match entry {
                Some(entry) => entry,
                None => {
                    let filter = groups.filter.clone();
                    let found = self
                        .list(kind, ldap, &dn, &filter, attributes.clone(), Vec::new())
                        .await?;
                    match found.ok().and_then(|l| l.entries.into_iter().next()) {
                        Some(entry) => entry,
                        None => continue,
                    }
                }
            };
            let Some(id) = guid(&entry) else {
                changes.push(skipped(None, &entry, "no objectGUID"));
                continue;
            };
            if !under(&entry.dn, &groups.base) {
                changes.push(deleted(kind, id));
                continue;
            }
            let filter = format!(
                "(&{}(memberOf:{IN_CHAIN}:={}))",
                self.users.filter,
                ldap_escape(entry.dn.as_str())
            );
            let users = self
                .paged(
                    EntryKind::User,
                    ldap,
                    &self.users.base,
                    &filter,
                    &["1.1".to_owned()],
                )
                .await?;
            let mut whole = entry.clone();
            whole
                .attrs
                .retain(|name, _| wire::values_of(name, &self.group_mapping.member).is_none());
            whole.attrs.insert(
                self.group_mapping.member.clone(),
                users.into_iter().map(|u| u.dn).collect(),
            );
            changes.push(self.group_mapping.change(id, &whole));
        }
        Ok(changes)
    }

    /// Every member of a group entry read whole: with more than the directory's
    /// `MaxValRange`, the entry holds `member;range=0-1499` and the rest is read
    /// slice by slice. `Ok(Err(why))` when the group is refused for its size.
    async fn whole_members(
        &self,
        ldap: &mut Ldap,
        entry: &SearchEntry,
    ) -> Result<Result<Vec<String>, &'static str>, SyncError> {
        let member = &self.group_mapping.member;
        let mut slice = entry.clone();
        let mut all = Vec::new();
        // AD's slices are 1,500 values: 100 of them exceed MAX_MEMBER_VALUES.
        for _ in 0..MAX_SLICES {
            let (values, _, _) = match member_values(&slice, member) {
                Ok(values) => values,
                Err(why) => return Ok(Err(why)),
            };
            all.extend(values);
            if all.len() > wire::MAX_MEMBER_VALUES {
                return Ok(Err("too many member values in one group"));
            }
            let next = slice
                .attrs
                .keys()
                .find_map(|name| match wire::values_of(name, member) {
                    Some(wire::Values::Slice { high: Some(high), .. }) => Some(high.saturating_add(1)),
                    _ => None,
                });
            let Some(low) = next else {
                return Ok(Ok(all));
            };
            let wanted = vec![format!("{member};range={low}-*")];
            let found = self
                .list(
                    EntryKind::Group,
                    ldap,
                    &entry.dn,
                    "(objectClass=*)",
                    wanted,
                    Vec::new(),
                )
                .await?
                .map_err(|code| self.result(EntryKind::Group, code))?;
            match found.entries.into_iter().next() {
                Some(more) => slice = more,
                None => return Ok(Ok(all)),
            }
        }
        Ok(Err("too many member slices in one group"))
    }

    /// The directory's highestCommittedUSN (rootDSE).
    async fn highest_usn(&self, kind: EntryKind, ldap: &mut Ldap) -> Result<u64, SyncError> {
        let mut stream = ldap
            .streaming_search("", Scope::Base, "(objectClass=*)", vec!["highestCommittedUSN"])
            .await
            .map_err(|err| self.protocol(kind, describe(&err)))?;
        let mut usn = None;
        while let Some(entry) = stream
            .next()
            .await
            .map_err(|err| self.protocol(kind, describe(&err)))?
        {
            if let Ok(found) = ldap_wire::search_entry(&entry) {
                usn = crate::modules::ldap::entry::first_value(&found, "highestCommittedUSN")
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
        }
        let done = stream.finish().await;
        if done.rc != 0 {
            return Err(self.result(kind, done.rc));
        }
        usn.ok_or_else(|| self.protocol(kind, "the rootDSE has no highestCommittedUSN"))
    }

    /// One `uSNChanged` poll of `kind`: everything (no `mark`) or what changed
    /// since, then the ids still there. `Ok(Some(mark))` when done, `Ok(None)`
    /// when `events` closed.
    async fn usn(
        &self,
        kind: EntryKind,
        ldap: &mut Ldap,
        mark: Option<u64>,
        events: &mpsc::Sender<SourceEvent>,
    ) -> Result<Option<u64>, SyncError> {
        let Some(search) = self.search_of(kind).cloned() else {
            return Ok(mark);
        };
        // Read first: what changes during the poll is listed again next time.
        let next = self.highest_usn(kind, ldap).await?;
        let filter = match mark {
            None => search.filter.clone(),
            Some(usn) => format!("(&{}(uSNChanged>={}))", search.filter, usn.saturating_add(1)),
        };
        let entries = self
            .paged(kind, ldap, &search.base, &filter, &self.attributes(kind))
            .await?;
        let mut changes = Vec::new();
        let mut present = BTreeSet::new();
        let mut changed_groups = BTreeSet::new();
        for entry in &entries {
            let Some(id) = guid(entry) else {
                changes.push(skipped(None, entry, "no objectGUID"));
                continue;
            };
            present.insert(id.clone());
            match kind {
                EntryKind::User => changes.push(self.user_mapping.change(id, entry)),
                EntryKind::Group if self.flatten => {
                    changed_groups.insert(entry.dn.clone());
                }
                EntryKind::Group => match self.whole_members(ldap, entry).await? {
                    Ok(all) => {
                        let mut whole = entry.clone();
                        whole
                            .attrs
                            .retain(|name, _| wire::values_of(name, &self.group_mapping.member).is_none());
                        whole.attrs.insert(self.group_mapping.member.clone(), all);
                        changes.push(self.group_mapping.change(id, &whole));
                    }
                    Err(why) => changes.push(skipped(Some(id), entry, why)),
                },
            }
        }
        if !changed_groups.is_empty() {
            changes.extend(self.flattened(ldap, &changed_groups, mark.is_some()).await?);
        }
        if mark.is_some() {
            // Deletions: without rights on the deleted objects, the ids still there.
            let ids = self
                .paged(
                    kind,
                    ldap,
                    &search.base,
                    &search.filter,
                    &["objectGUID".to_owned()],
                )
                .await?;
            present = ids.iter().filter_map(guid).collect();
        }
        changes.push(DirectoryChange::RefreshedPresent { kind, present });
        if !self.send(kind, changes, Some(&Cookie::Usn(next)), events).await {
            return Ok(None);
        }
        Ok(Some(next))
    }
}

fn skipped(id: Option<String>, entry: &SearchEntry, why: &str) -> DirectoryChange {
    DirectoryChange::Skipped {
        sync_id: id,
        dn: Some(entry.dn.clone()),
        reason: why.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::ldap::template::format_guid;

    #[test]
    fn naming_context_and_scope() {
        assert_eq!(
            domain_root("CN=Users, DC=example,DC=test").as_deref(),
            Some("DC=example,DC=test")
        );
        assert_eq!(domain_root("ou=people,o=x"), None);
        assert!(under(
            "CN=a,CN=Users,DC=example,DC=test",
            "cn=users, dc=example, dc=test"
        ));
        assert!(under("DC=example,DC=test", "dc=example,dc=test"));
        assert!(!under(
            "CN=a,CN=Others,DC=example,DC=test",
            "cn=users,dc=example,dc=test"
        ));
        assert!(!under("CN=a,DC=xexample,DC=test", "dc=example,dc=test"));
    }

    #[test]
    fn cookies_round_trip_and_unknown_ones_start_over() {
        for cookie in [Cookie::DirSync(vec![0, 1, 0xff]), Cookie::Usn(12345)] {
            assert_eq!(Cookie::parse(Some(cookie.encode())), Some(cookie));
        }
        // An RFC 4533 cookie (another source kind before) or garbage: a full refresh.
        for stored in [&b"rid=001,csn=x"[..], b"Uxyz", b""] {
            assert_eq!(Cookie::parse(Some(stored.to_vec())), None);
        }
        assert_eq!(Cookie::parse(None), None);
    }

    #[test]
    fn guid_filters_are_in_wire_order() {
        let raw: Vec<u8> = (0u8..16).collect();
        let text = format_guid(&raw).unwrap();
        let expected: String = raw.iter().map(|b| format!("\\{b:02x}")).collect();
        assert_eq!(guid_filter(&text).as_deref(), Some(expected.as_str()));
        assert_eq!(guid_filter("not-a-guid"), None);
        assert_eq!(guid_filter(&"g".repeat(32)), None);
    }

    #[test]
    fn member_values_are_split_and_bounded() {
        let entry = |attrs: Vec<(&str, Vec<String>)>| SearchEntry {
            dn: "CN=g,DC=x".into(),
            attrs: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            bin_attrs: Default::default(),
        };
        let e = entry(vec![
            ("member;range=1-1", vec!["CN=a".into()]),
            ("member;range=0-0", vec!["CN=b".into(), " ".into()]),
            ("cn", vec!["g".into()]),
        ]);
        assert_eq!(
            member_values(&e, "member"),
            Ok((vec![], vec!["CN=a".to_owned()], vec!["CN=b".to_owned()]))
        );
        let many = entry(vec![
            ("member", vec!["CN=a".to_owned(); wire::MAX_MEMBER_VALUES]),
            ("member;range=1-1", vec!["CN=b".to_owned()]),
        ]);
        assert!(member_values(&many, "member").is_err());
    }
}
