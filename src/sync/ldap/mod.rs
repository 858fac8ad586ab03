//! The LDAP source: RFC 4533 content synchronisation (refreshAndPersist, or
//! refreshOnly polling) over the LDAP module's connection code.
//!
//! Users and groups are two searches, each with its own cookie. Group
//! membership comes from the group entries' `member` values: OpenLDAP does not
//! replicate `memberOf` changes, nor the removal of a deleted user from its groups.

pub(crate) mod mapping;
pub(crate) mod wire;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::controls::{MakeCritical, RawControl, RefreshMode, SyncRequest};
use ldap3::{Scope, SearchEntry};
use tokio::sync::mpsc;
use tracing::{debug, warn};

pub use mapping::DisabledRule;
use mapping::{GroupMapping, UserMapping};
use wire::{EntryState, SyncInfo};

use super::{DirectoryChange, DirectorySource, EntryKind, PartialRefresh, Resume, SourceEvent, SyncError};
use crate::ConfigError;
use crate::audit::AUDIT_TARGET;
use crate::modules::LdapModule;
use crate::modules::ldap::connection::describe;
use crate::modules::ldap::{LdapError, LdapOperation};
use crate::{AuthError, ModuleError, OtherError};

/// How the source follows the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// refreshAndPersist: the directory pushes each change as it happens. When it
    /// refuses persistent searches, the source polls instead, every
    /// [`fallback_poll_interval`](LdapSourceBuilder::fallback_poll_interval).
    Persist,
    /// refreshOnly, repeated at this interval (for directories that refuse
    /// persistent searches).
    Poll(Duration),
}

/// Result codes with which a directory refuses a persistent search but may still
/// answer a refresh-only one.
const PERSIST_REFUSED: [u32; 3] = [11, 12, 53];

/// Result codes that end a search early with only part of its answer: 3
/// timeLimitExceeded, 4 sizeLimitExceeded, 10 referral, 11 adminLimitExceeded.
const CUT_SHORT: [u32; 4] = [3, 4, 10, 11];

/// Default polling interval, of `mode = "poll"` and of the fallback when a
/// persistent search is refused.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Mirrors users and groups from an LDAP directory. Built with
/// [`LdapSource::builder`] from an [`LdapModule`], whose servers, TLS settings,
/// timeouts and service account it uses.
#[derive(Debug)]
pub struct LdapSource {
    pub(crate) module: LdapModule,
    pub(crate) users: Search,
    pub(crate) groups: Option<Search>,
    pub(crate) user_mapping: UserMapping,
    pub(crate) group_mapping: GroupMapping,
    pub(crate) mode: SyncMode,
    /// How often to poll once a persistent search was refused.
    pub(crate) fallback_interval: Duration,
    /// Set when the directory refused a persistent search: poll from then on.
    persist_refused: AtomicBool,
}

#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub(crate) base: String,
    pub(crate) filter: String,
}

/// Builds an [`LdapSource`]; [`build`](LdapSourceBuilder::build) names the key
/// (`sync.<field>`) of any bad setting.
#[derive(Debug)]
#[must_use]
pub struct LdapSourceBuilder {
    module: LdapModule,
    user_base: Option<String>,
    user_filter: String,
    group_base: Option<String>,
    group_filter: String,
    stable_id: Option<String>,
    login: Option<String>,
    email: Option<String>,
    display_name: Option<String>,
    disabled: Option<DisabledRule>,
    group_name: String,
    member: String,
    only_groups: Option<Vec<String>>,
    mode: SyncMode,
    fallback_interval: Duration,
}

impl LdapSource {
    /// A source over `module`'s connection settings and service account. The
    /// source id is the module id, so synced accounts are linked exactly as the
    /// module's logins link them.
    pub fn builder(module: LdapModule) -> LdapSourceBuilder {
        LdapSourceBuilder {
            module,
            user_base: None,
            user_filter: "(objectClass=inetOrgPerson)".into(),
            group_base: None,
            group_filter: "(objectClass=groupOfNames)".into(),
            stable_id: None,
            login: None,
            email: None,
            display_name: None,
            disabled: None,
            group_name: "cn".into(),
            member: "member".into(),
            only_groups: None,
            mode: SyncMode::Persist,
            fallback_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl LdapSourceBuilder {
    /// Where users are, and which entries are users (default
    /// `(objectClass=inetOrgPerson)`). Required.
    pub fn users(mut self, base: impl Into<String>, filter: impl Into<String>) -> Self {
        self.user_base = Some(base.into());
        self.user_filter = filter.into();
        self
    }

    /// Where groups are, and which entries are groups (default
    /// `(objectClass=groupOfNames)`). Without it no groups are mirrored.
    pub fn groups(mut self, base: impl Into<String>, filter: impl Into<String>) -> Self {
        self.group_base = Some(base.into());
        self.group_filter = filter.into();
        self
    }

    /// The attribute holding the stable id that accounts are linked by (default:
    /// the module's `subject_attribute`, `entryUUID`; `objectGUID` for AD,
    /// `ipaUniqueID` for FreeIPA).
    pub fn stable_id_attribute(mut self, name: impl Into<String>) -> Self {
        self.stable_id = Some(name.into());
        self
    }

    /// The login name attribute (default: the module's, `uid`).
    pub fn login_attribute(mut self, name: impl Into<String>) -> Self {
        self.login = Some(name.into());
        self
    }

    /// The email attribute (default: the module's, `mail`).
    pub fn email_attribute(mut self, name: impl Into<String>) -> Self {
        self.email = Some(name.into());
        self
    }

    /// The display name attribute (default: the module's, `cn`).
    pub fn display_name_attribute(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// When an entry counts as disabled (default: never).
    pub fn disabled(mut self, rule: DisabledRule) -> Self {
        self.disabled = Some(rule);
        self
    }

    /// The group name attribute (default `cn`; the DN's first RDN value when absent).
    pub fn group_name_attribute(mut self, name: impl Into<String>) -> Self {
        self.group_name = name.into();
        self
    }

    /// The attribute listing member DNs (default `member`).
    pub fn member_attribute(mut self, name: impl Into<String>) -> Self {
        self.member = name.into();
        self
    }

    /// Mirrors only these groups (by name, ignoring case); default: every group the
    /// group filter finds.
    pub fn only_groups<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only_groups = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Persistent search (the default) or polling.
    pub fn mode(mut self, mode: SyncMode) -> Self {
        self.mode = mode;
        self
    }

    /// How often to poll in [`SyncMode::Persist`] once the directory has refused a
    /// persistent search (result 11, 12 or 53) and the source polls instead
    /// (default 60 s; `poll_interval` with `mode = "persist"` in configuration).
    pub fn fallback_poll_interval(mut self, every: Duration) -> Self {
        self.fallback_interval = every;
        self
    }

    /// Checks every setting.
    pub fn build(self) -> Result<LdapSource, ConfigError> {
        let invalid = |field: &str, message: &str| ConfigError::invalid(format!("sync.{field}"), message);
        let nonempty = |field: &str, value: &str| {
            if value.trim().is_empty() {
                Err(invalid(field, "must not be empty"))
            } else {
                Ok(value.to_owned())
            }
        };
        let user_base = self
            .user_base
            .ok_or_else(|| invalid("user_base", "where the users are is required"))?;
        let users = Search {
            base: nonempty("user_base", &user_base)?,
            filter: filter("user_filter", &self.user_filter)?,
        };
        let groups = match self.group_base {
            Some(base) => Some(Search {
                base: nonempty("group_base", &base)?,
                filter: filter("group_filter", &self.group_filter)?,
            }),
            None => None,
        };
        if let Some(rule) = &self.disabled {
            rule.check().map_err(|why| invalid("disabled", &why))?;
        }
        if self.fallback_interval.is_zero() || self.mode == SyncMode::Poll(Duration::ZERO) {
            return Err(invalid("poll_interval", "must be longer than zero"));
        }
        let defaults = self.module.user_attributes();
        let user_mapping = UserMapping {
            stable_id: nonempty(
                "stable_id_attribute",
                self.stable_id.as_deref().unwrap_or(defaults.subject),
            )?,
            login: nonempty("login_attribute", self.login.as_deref().unwrap_or(defaults.login))?,
            email: nonempty("email_attribute", self.email.as_deref().unwrap_or(defaults.email))?,
            display_name: nonempty(
                "display_name_attribute",
                self.display_name.as_deref().unwrap_or(defaults.display_name),
            )?,
            disabled: self.disabled,
        };
        let group_mapping = GroupMapping {
            name: nonempty("group_name_attribute", &self.group_name)?,
            member: nonempty("member_attribute", &self.member)?,
            only: self
                .only_groups
                .map(|names| names.iter().map(|n| n.to_lowercase()).collect()),
        };
        Ok(LdapSource {
            module: self.module,
            users,
            groups,
            user_mapping,
            group_mapping,
            mode: self.mode,
            fallback_interval: self.fallback_interval,
            persist_refused: AtomicBool::new(false),
        })
    }
}

fn filter(field: &str, value: &str) -> Result<String, ConfigError> {
    if ldap3::parse_filter(value).is_err() {
        return Err(ConfigError::invalid(
            format!("sync.{field}"),
            format!("`{value}` is not an LDAP filter"),
        ));
    }
    Ok(value.to_owned())
}

#[async_trait]
impl DirectorySource for LdapSource {
    fn id(&self) -> &str {
        crate::Authenticator::id(&self.module)
    }

    async fn session(&self, resume: Resume, events: mpsc::Sender<SourceEvent>) -> Result<(), SyncError> {
        let users = self.follow(EntryKind::User, &self.users, resume.users, events.clone());
        match &self.groups {
            Some(groups) => {
                let groups = self.follow(EntryKind::Group, groups, resume.groups, events);
                tokio::try_join!(users, groups).map(|_| ())
            }
            None => users.await,
        }
    }

    fn kinds(&self) -> Vec<EntryKind> {
        match self.groups {
            Some(_) => vec![EntryKind::User, EntryKind::Group],
            None => vec![EntryKind::User],
        }
    }

    fn poll_interval(&self) -> Option<Duration> {
        match self.mode {
            SyncMode::Poll(every) => Some(every),
            SyncMode::Persist if self.persist_refused.load(Ordering::Relaxed) => Some(self.fallback_interval),
            SyncMode::Persist => None,
        }
    }
}

/// What one search has seen of its refresh.
struct Refresh {
    /// Started without a cookie: the refresh lists every entry.
    full: bool,
    /// Still refreshing (`false` once live changes flow).
    active: bool,
    /// Every id seen as present, added or modified during the refresh.
    present: BTreeSet<String>,
    /// Set when part of the refresh is missing (a referral): what it did not list
    /// is then not taken as gone.
    partial: Option<PartialRefresh>,
}

impl LdapSource {
    fn unavailable(&self, kind: EntryKind, cause: LdapError) -> SyncError {
        SyncError::Directory { kind, cause }
    }

    /// The directory broke the sync protocol.
    fn protocol(&self, kind: EntryKind, detail: impl std::fmt::Display) -> SyncError {
        self.unavailable(
            kind,
            LdapError::Protocol {
                operation: LdapOperation::Search,
                detail: detail.to_string(),
            },
        )
    }

    /// The sync search itself failed in the LDAP client.
    fn transport(&self, kind: EntryKind, err: &ldap3::LdapError) -> SyncError {
        self.protocol(kind, describe(err))
    }

    /// Runs the sync search for `kind` until it fails, `events` closes, or (polling)
    /// its refresh is over.
    async fn follow(
        &self,
        kind: EntryKind,
        search: &Search,
        cookie: Option<Vec<u8>>,
        events: mpsc::Sender<SourceEvent>,
    ) -> Result<(), SyncError> {
        let persist = self.poll_interval().is_none();
        let mut conn = self.module.connect_service().await.map_err(|err| match err {
            AuthError::Unavailable {
                cause: ModuleError::Ldap(cause),
                ..
            } => self.unavailable(kind, cause),
            other => SyncError::Source(OtherError::new(other)),
        })?;
        let request = SyncRequest {
            mode: if persist {
                RefreshMode::RefreshAndPersist
            } else {
                RefreshMode::RefreshOnly
            },
            cookie: cookie.clone(),
            reload_hint: false,
        };
        let control: RawControl = request.critical().into();
        let attributes = match kind {
            EntryKind::User => self.user_mapping.attributes(),
            EntryKind::Group => self.group_mapping.attributes(),
        };
        let mut stream = conn
            .ldap
            .with_controls(control)
            .streaming_search(&search.base, Scope::Subtree, &search.filter, attributes)
            .await
            .map_err(|err| self.transport(kind, &err))?;
        debug!(source = %self.id(), %kind, resumed = cookie.is_some(), "sync search started");
        let mut refresh = Refresh {
            full: cookie.is_none(),
            active: true,
            present: BTreeSet::new(),
            partial: None,
        };
        loop {
            let entry = match stream.next().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(err) => return Err(self.transport(kind, &err)),
            };
            let mut out = Vec::new();
            if entry.is_intermediate() {
                match wire::sync_info(&entry) {
                    Ok(Some(info)) => self.on_sync_info(kind, info, &mut refresh, &mut out),
                    Ok(None) => {}
                    Err(bad) => return Err(self.protocol(kind, bad)),
                }
            } else if entry.is_ref() {
                warn!(source = %self.id(), %kind, "the directory sent a referral; referrals are not followed");
                if refresh.active {
                    refresh.partial = Some(PartialRefresh::Referral);
                }
            } else {
                self.on_entry(kind, &entry, &mut refresh, &mut out)?;
            }
            for event in out {
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
            // A refresh that ended incomplete ends the session (after applying
            // what it did list): the next one starts over.
            if !refresh.active
                && let Some(reason) = refresh.partial
            {
                return Err(SyncError::PartialRefresh { kind, reason });
            }
        }
        let result = stream.finish().await;
        if result.rc != 0 && refresh.active && CUT_SHORT.contains(&result.rc) {
            // Whatever the refresh had listed was applied as upserts; nothing was
            // retained (no RefreshedPresent), so no account is disabled for it.
            if persist && PERSIST_REFUSED.contains(&result.rc) {
                warn!(target: AUDIT_TARGET, source = %self.id(), rc = result.rc, text = %result.text,
                    "the directory refuses persistent sync searches: polling instead");
                self.persist_refused.store(true, Ordering::Relaxed);
            }
            debug!(source = %self.id(), %kind, rc = result.rc, text = %result.text, "sync search cut short");
            return Err(SyncError::PartialRefresh {
                kind,
                reason: PartialRefresh::Ended { code: result.rc },
            });
        }
        if result.rc != 0 {
            if persist && refresh.active && PERSIST_REFUSED.contains(&result.rc) {
                warn!(target: AUDIT_TARGET, source = %self.id(), rc = result.rc, text = %result.text,
                    "the directory refuses persistent sync searches: polling instead");
                self.persist_refused.store(true, Ordering::Relaxed);
            }
            debug!(source = %self.id(), %kind, rc = result.rc, text = %result.text, "sync search failed");
            return Err(self.unavailable(
                kind,
                LdapError::Result {
                    operation: LdapOperation::Search,
                    code: result.rc,
                },
            ));
        }
        if persist {
            return Err(self.protocol(kind, "the directory ended the persistent search"));
        }
        // refreshOnly: the Sync Done control closes the refresh.
        let done = match wire::control_value(&result.ctrls, wire::SYNC_DONE_OID) {
            Some(value) => wire::sync_done(value).map_err(|bad| self.protocol(kind, bad))?,
            None => return Err(self.protocol(kind, "the refresh ended without a Sync Done control")),
        };
        let mut out = Vec::new();
        self.finish_refresh(kind, done.cookie, !done.refresh_deletes, &mut refresh, &mut out);
        for event in out {
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
        match refresh.partial {
            Some(reason) => Err(SyncError::PartialRefresh { kind, reason }),
            None => Ok(()),
        }
    }

    fn on_entry(
        &self,
        kind: EntryKind,
        entry: &ldap3::ResultEntry,
        refresh: &mut Refresh,
        out: &mut Vec<SourceEvent>,
    ) -> Result<(), SyncError> {
        let Some(state) = wire::control_value(&entry.1, wire::SYNC_STATE_OID) else {
            return Err(self.protocol(kind, "an entry came without a Sync State control"));
        };
        let state = wire::sync_state(state).map_err(|bad| self.protocol(kind, bad))?;
        let decoded = wire::search_entry(entry);
        if refresh.active && state.state != EntryState::Delete {
            refresh.present.insert(state.uuid.clone());
        }
        let change = match (state.state, decoded) {
            (EntryState::Present, _) => None,
            (EntryState::Delete, _) => Some(deleted(kind, state.uuid)),
            (EntryState::Add | EntryState::Modify, Ok(found)) => Some(self.changed(kind, state.uuid, &found)),
            (EntryState::Add | EntryState::Modify, Err(bad)) => Some(DirectoryChange::Skipped {
                sync_id: Some(state.uuid),
                dn: None,
                reason: bad.to_string(),
            }),
        };
        out.extend(change.map(SourceEvent::Change));
        out.extend(state.cookie.map(|c| SourceEvent::Cookie(kind, c)));
        Ok(())
    }

    fn changed(&self, kind: EntryKind, sync_id: String, entry: &SearchEntry) -> DirectoryChange {
        match kind {
            EntryKind::User => self.user_mapping.change(sync_id, entry),
            EntryKind::Group => self.group_mapping.change(sync_id, entry),
        }
    }

    fn on_sync_info(
        &self,
        kind: EntryKind,
        info: SyncInfo,
        refresh: &mut Refresh,
        out: &mut Vec<SourceEvent>,
    ) {
        match info {
            SyncInfo::NewCookie(cookie) => out.push(SourceEvent::Cookie(kind, cookie)),
            SyncInfo::RefreshPresent { cookie, done } => {
                if done {
                    self.finish_refresh(kind, cookie, true, refresh, out);
                } else {
                    // A present phase ended and a delete phase follows.
                    let present = std::mem::take(&mut refresh.present);
                    if refresh.partial.is_none() {
                        out.push(SourceEvent::Change(DirectoryChange::RefreshedPresent {
                            kind,
                            present,
                        }));
                    }
                    refresh.full = false;
                    out.extend(cookie.map(|c| SourceEvent::Cookie(kind, c)));
                }
            }
            SyncInfo::RefreshDelete { cookie, done } => {
                if done {
                    self.finish_refresh(kind, cookie, false, refresh, out);
                } else {
                    out.extend(cookie.map(|c| SourceEvent::Cookie(kind, c)));
                }
            }
            SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                uuids,
            } => {
                if refresh_deletes {
                    let gone: HashSet<&String> = uuids.iter().collect();
                    refresh.present.retain(|id| !gone.contains(id));
                    out.extend(uuids.into_iter().map(|id| SourceEvent::Change(deleted(kind, id))));
                } else {
                    refresh.present.extend(uuids);
                }
                out.extend(cookie.map(|c| SourceEvent::Cookie(kind, c)));
            }
        }
    }

    /// The refresh is over. After a present phase, or a full refresh (no cookie: the
    /// directory listed everything), whatever was not listed is gone — unless the
    /// refresh was partial (a referral), when nothing is taken as gone.
    fn finish_refresh(
        &self,
        kind: EntryKind,
        cookie: Option<Vec<u8>>,
        present_phase: bool,
        refresh: &mut Refresh,
        out: &mut Vec<SourceEvent>,
    ) {
        if (present_phase || refresh.full) && refresh.partial.is_none() {
            let present = std::mem::take(&mut refresh.present);
            out.push(SourceEvent::Change(DirectoryChange::RefreshedPresent {
                kind,
                present,
            }));
        }
        refresh.present = BTreeSet::new();
        refresh.active = false;
        out.extend(cookie.map(|c| SourceEvent::Cookie(kind, c)));
        out.push(SourceEvent::RefreshDone(kind));
    }
}

pub(crate) fn deleted(kind: EntryKind, sync_id: String) -> DirectoryChange {
    match kind {
        EntryKind::User => DirectoryChange::UserDeleted { sync_id },
        EntryKind::Group => DirectoryChange::GroupDeleted { sync_id },
    }
}
