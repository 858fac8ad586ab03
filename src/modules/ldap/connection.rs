//! Talking to the directory: pooled connections, service and user binds, searches,
//! the operation timeout, and the two login flows built from them.

use ldap3::{Ldap, LdapError as Ldap3Error, Scope, SearchEntry, SearchOptions};
use tracing::{debug, error, warn};

use super::pool::{Conn, Pooled};
use super::{Groups, Inner, LdapError, LdapModule, LdapOperation, Lookup, MAX_GROUPS, UrlFailure, template};
use crate::audit::AUDIT_TARGET;
use crate::{AccountRestriction, AuthError, Identity, SecretString};

/// Text for an ldap3 error, without secrets (ldap3 errors never carry the password).
pub(crate) fn describe(err: &Ldap3Error) -> String {
    match err {
        Ldap3Error::LdapResult { result } => format!("result {} {}", result.rc, result.text),
        other => other.to_string(),
    }
}

/// An operation's failure, classified.
enum Fail {
    /// The directory refused the user's credentials.
    Reject,
    /// The directory refused the account whatever the password (AD sub-codes).
    Restricted(AccountRestriction),
    /// The directory failed or answered wrongly: an outage.
    Down(LdapError),
    /// The connection broke (it may have been a stale pooled one: worth one retry).
    Transport(LdapError),
    /// The module cannot work as configured.
    Misconfigured(String),
}

impl LdapModule {
    /// A new connection bound as the service account, outside the pools: the
    /// directory synchroniser holds it for a long-running search.
    #[cfg(feature = "sync")]
    pub(crate) async fn connect_service(&self) -> Result<Conn, AuthError> {
        self.inner
            .connect_bound()
            .await
            .map_err(|f| self.inner.fail_to_error(f))
    }
}

impl Inner {
    /// An outage of this module's directory.
    pub(super) fn unavailable(&self, cause: LdapError) -> AuthError {
        AuthError::unavailable(self.id.clone(), cause)
    }

    /// A refusal of this login by this module.
    pub(super) fn rejected(&self, cause: LdapError) -> AuthError {
        AuthError::rejected(self.id.clone(), cause)
    }

    fn fail_to_error(&self, fail: Fail) -> AuthError {
        match fail {
            Fail::Reject => AuthError::InvalidCredentials,
            Fail::Restricted(restriction) => AuthError::AccountRestricted {
                module: self.id.to_string(),
                restriction,
            },
            Fail::Down(cause) | Fail::Transport(cause) => self.unavailable(cause),
            Fail::Misconfigured(why) => AuthError::Misconfigured(why),
        }
    }

    /// Runs `op` under the operation timeout and classifies transport failures.
    async fn timed<T>(
        &self,
        operation: LdapOperation,
        op: impl std::future::Future<Output = Result<T, Ldap3Error>>,
    ) -> Result<T, Fail> {
        let started = std::time::Instant::now();
        let answered = tokio::time::timeout(self.operation_timeout, op).await;
        crate::metrics::ldap_operation(
            &self.id,
            operation.as_str(),
            matches!(answered, Ok(Ok(_))),
            started.elapsed(),
        );
        match answered {
            Err(_) => Err(Fail::Down(LdapError::Timeout {
                operation,
                after: self.operation_timeout,
            })),
            Ok(Err(Ldap3Error::FilterParsing)) => Err(Fail::Misconfigured(format!(
                "module `{}`: {operation}: the filter does not parse",
                self.id
            ))),
            Ok(Err(err)) => Err(Fail::Transport(LdapError::Protocol {
                operation,
                detail: describe(&err),
            })),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// A service-account connection (bound when a service account is configured).
    async fn service_conn(&self, fresh: bool) -> Result<Pooled<'_>, AuthError> {
        let pools = &self.pools;
        let (idle, permit) = pools.service.checkout().await.map_err(|e| self.unavailable(e))?;
        if let Some(conn) = idle.filter(|_| !fresh) {
            return Ok(pools.service.pooled(conn, true, permit));
        }
        let conn = self.connect_bound().await.map_err(|f| self.fail_to_error(f))?;
        Ok(pools.service.pooled(conn, false, permit))
    }

    /// A new connection bound as the service account (when one is configured):
    /// connect and bind, trying the next URL when a server accepts TCP but then
    /// fails or hangs. Every URL failing is [`LdapError::Unreachable`] with each
    /// one's failure; a refused service bind is [`LdapError::ServiceBindRefused`]
    /// at once.
    async fn connect_bound(&self) -> Result<Conn, Fail> {
        let pools = &self.pools;
        let mut failures = Vec::new();
        for _ in 0..pools.connector.urls.len() {
            let mut conn = match pools.connector.connect().await {
                Ok(conn) => conn,
                Err(LdapError::Unreachable(more)) => {
                    failures.extend(more);
                    break;
                }
                Err(other) => return Err(Fail::Down(other)),
            };
            match self.service_bind(&mut conn).await {
                Ok(()) => return Ok(conn),
                // The server answered and refused: the same account will be refused
                // by its replicas too. A configuration problem, logged loudly.
                Err(refused @ Fail::Down(LdapError::ServiceBindRefused { .. })) => return Err(refused),
                Err(Fail::Transport(cause) | Fail::Down(cause)) => {
                    pools.connector.demote(conn.url);
                    failures.push(UrlFailure::new(pools.connector.urls[conn.url].clone(), cause));
                }
                Err(fail @ (Fail::Reject | Fail::Restricted(_) | Fail::Misconfigured(_))) => {
                    return Err(fail);
                }
            }
        }
        Err(Fail::Down(LdapError::Unreachable(failures)))
    }

    async fn service_bind(&self, conn: &mut Conn) -> Result<(), Fail> {
        let Some((dn, password)) = &self.service else {
            return Ok(());
        };
        let result = self
            .timed(
                LdapOperation::ServiceBind,
                conn.ldap.simple_bind(dn, password.expose()),
            )
            .await?;
        match result.rc {
            0 => Ok(()),
            rc => {
                error!(target: AUDIT_TARGET, module = %self.id, bind_dn = %dn, rc, text = %result.text,
                    "LDAP service account bind refused: check bind_dn and bind_password");
                Err(Fail::Down(LdapError::ServiceBindRefused { code: rc }))
            }
        }
    }

    /// A connection for user binds (never bound as the service account).
    async fn user_conn(&self, fresh: bool) -> Result<Pooled<'_>, AuthError> {
        let pools = &self.pools;
        let (idle, permit) = pools.user.checkout().await.map_err(|e| self.unavailable(e))?;
        if let Some(conn) = idle.filter(|_| !fresh) {
            return Ok(pools.user.pooled(conn, true, permit));
        }
        let conn = pools.connector.connect().await.map_err(|e| self.unavailable(e))?;
        Ok(pools.user.pooled(conn, false, permit))
    }

    /// Searches on a service connection, retrying once on a fresh connection when a
    /// pooled one turns out to be broken.
    async fn service_search(
        &self,
        base: &str,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<(Vec<SearchEntry>, u32), AuthError> {
        let mut fresh = false;
        loop {
            let mut conn = self.service_conn(fresh).await?;
            match self
                .search(&mut conn.conn.ldap, base, filter, attrs, size_limit)
                .await
            {
                Ok(found) => {
                    conn.release();
                    return Ok(found);
                }
                Err(Fail::Transport(_)) if conn.reused && !fresh => {
                    debug!(module = %self.id, "pooled LDAP connection was broken; retrying on a new one");
                    fresh = true;
                }
                Err(fail) => {
                    if let Fail::Transport(_) | Fail::Down(_) = &fail {
                        self.pools.connector.demote(conn.conn.url);
                    }
                    return Err(self.fail_to_error(fail));
                }
            }
        }
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<(Vec<SearchEntry>, u32), Fail> {
        let scope = if filter.is_empty() {
            Scope::Base
        } else {
            Scope::Subtree
        };
        let filter = if filter.is_empty() {
            "(objectClass=*)"
        } else {
            filter
        };
        ldap.with_search_options(SearchOptions::new().sizelimit(size_limit));
        let result = self
            .timed(LdapOperation::Search, ldap.search(base, scope, filter, attrs))
            .await?;
        let (raw, status) = (result.0, result.1);
        match status.rc {
            0 | 4 => {}
            32 => {
                // noSuchObject: the base is missing (a configuration problem) or, for
                // a base read in direct-bind mode, the entry is.
                return Ok((Vec::new(), status.rc));
            }
            code => {
                debug!(module = %self.id, rc = code, text = %status.text, "LDAP search failed");
                return Err(Fail::Down(LdapError::Result {
                    operation: LdapOperation::Search,
                    code,
                }));
            }
        }
        let mut entries = Vec::with_capacity(raw.len());
        for entry in raw {
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            // `SearchEntry::construct` panics on a malformed entry: a broken server
            // must not take the host down.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(entry))) {
                Ok(entry) => entries.push(entry),
                Err(_) => {
                    return Err(Fail::Down(LdapError::Protocol {
                        operation: LdapOperation::Search,
                        detail: "the server sent a malformed entry".into(),
                    }));
                }
            }
        }
        Ok((entries, status.rc))
    }

    /// Binds as the user on `ldap`; `Ok(())` only for result 0.
    async fn user_bind(&self, ldap: &mut Ldap, name: &str, password: &SecretString) -> Result<(), Fail> {
        let result = self
            .timed(LdapOperation::UserBind, ldap.simple_bind(name, password.expose()))
            .await?;
        match result.rc {
            0 => Ok(()),
            // Active Directory says why in a sub-code: a disabled, expired or
            // locked-out account is not a wrong password.
            49 if let Some(restriction) = super::error::ad_restriction(&result.text) => {
                debug!(module = %self.id, restriction = restriction.as_str(), "LDAP bind refused: account restricted");
                Err(Fail::Restricted(restriction))
            }
            // invalidCredentials, inappropriateAuthentication, invalidDNSyntax,
            // noSuchObject, insufficientAccessRights, constraintViolation (password
            // policy), unwillingToPerform (AD: account restrictions), protocolError.
            49 | 48 | 34 | 32 | 50 | 19 | 53 | 2 => {
                debug!(module = %self.id, rc = result.rc, text = %result.text, "LDAP bind refused");
                Err(Fail::Reject)
            }
            // operationsError, timeLimitExceeded, adminLimitExceeded, busy,
            // unavailable, other: the server, not the user.
            1 | 3 | 11 | 51 | 52 | 80 => {
                debug!(module = %self.id, rc = result.rc, text = %result.text, "LDAP user bind failed");
                Err(Fail::Down(LdapError::Result {
                    operation: LdapOperation::UserBind,
                    code: result.rc,
                }))
            }
            rc => {
                warn!(module = %self.id, rc, text = %result.text, "LDAP bind refused with an unexpected result");
                Err(Fail::Reject)
            }
        }
    }

    /// Binds as the user on a user-bind connection, retrying once on a fresh
    /// connection when a pooled one is broken. Returns the bound connection.
    async fn bind_as_user(&self, name: &str, password: &SecretString) -> Result<Pooled<'_>, AuthError> {
        let mut fresh = false;
        loop {
            let mut conn = self.user_conn(fresh).await?;
            match self.user_bind(&mut conn.conn.ldap, name, password).await {
                Ok(()) => return Ok(conn),
                Err(fail @ (Fail::Reject | Fail::Restricted(_))) => {
                    // The connection is fine (now anonymous): keep it.
                    conn.release();
                    return Err(self.fail_to_error(fail));
                }
                Err(Fail::Transport(_)) if conn.reused && !fresh => fresh = true,
                Err(fail) => {
                    if let Fail::Transport(_) | Fail::Down(_) = &fail {
                        self.pools.connector.demote(conn.conn.url);
                    }
                    return Err(self.fail_to_error(fail));
                }
            }
        }
    }

    pub(super) async fn login_search(
        &self,
        base: &str,
        filter: &str,
        login: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        let filter = template::user_filter(filter, login);
        let (mut entries, rc) = self
            .service_search(base, &filter, &self.user_attributes, 2)
            .await?;
        if rc == 32 {
            error!(target: AUDIT_TARGET, module = %self.id, base = %base, "user_search_base does not exist");
            return Err(self.unavailable(LdapError::NoSuchBase {
                setting: "user_search_base",
                base: base.to_owned(),
            }));
        }
        let entry = match entries.len() {
            0 => return Err(AuthError::InvalidCredentials),
            1 => entries.remove(0),
            _ => {
                error!(target: AUDIT_TARGET, module = %self.id, login = %crate::audit::text(login), filter = %filter,
                    "user search matched several entries: fix user_search_filter (login refused)");
                // Answered like a wrong password: a client must not learn which
                // logins exist, nor that this one is shared.
                return Err(AuthError::InvalidCredentials);
            }
        };
        let conn = self.bind_as_user(&entry.dn, password).await?;
        conn.release();
        let groups = match &self.groups {
            Groups::Search {
                base,
                filter,
                name_attribute,
            } => {
                let filter = template::group_filter(filter, &entry.dn, login);
                let attrs = [name_attribute.clone()];
                let found = self.service_search(base, &filter, &attrs, MAX_GROUPS).await?;
                self.group_list(found, base, name_attribute)?
            }
            _ => Vec::new(),
        };
        Ok(self.identity(entry, login, groups))
    }

    pub(super) async fn login_direct(
        &self,
        format: &str,
        lookup: &Lookup,
        login: &str,
        password: &SecretString,
    ) -> Result<Identity, AuthError> {
        let name = template::bind_name(format, login);
        let mut conn = self.bind_as_user(&name, password).await?;
        let found = match lookup {
            Lookup::BoundDn => {
                self.search(&mut conn.conn.ldap, &name, "", &self.user_attributes, 2)
                    .await
            }
            Lookup::Search { base, filter } => {
                let filter = template::user_filter(filter, login);
                self.search(&mut conn.conn.ldap, base, &filter, &self.user_attributes, 2)
                    .await
            }
        };
        let (mut entries, _) = found.map_err(|f| self.fail_to_error(f))?;
        let entry = match entries.len() {
            1 => entries.remove(0),
            n => {
                error!(target: AUDIT_TARGET, module = %self.id, login = %crate::audit::text(login), entries = n,
                    "bind succeeded but the user's entry was not found exactly once: check user_search_base / user_search_filter");
                conn.release();
                return Err(self.rejected(if n == 0 {
                    LdapError::EntryNotFound
                } else {
                    LdapError::Ambiguous
                }));
            }
        };
        let groups = match &self.groups {
            Groups::Search {
                base,
                filter,
                name_attribute,
            } => {
                let filter = template::group_filter(filter, &entry.dn, login);
                let attrs = [name_attribute.clone()];
                if self.service.is_some() {
                    conn.release();
                    let found = self.service_search(base, &filter, &attrs, MAX_GROUPS).await?;
                    self.group_list(found, base, name_attribute)?
                } else {
                    let found = self
                        .search(&mut conn.conn.ldap, base, &filter, &attrs, MAX_GROUPS)
                        .await
                        .map_err(|f| self.fail_to_error(f))?;
                    conn.release();
                    self.group_list(found, base, name_attribute)?
                }
            }
            _ => {
                conn.release();
                Vec::new()
            }
        };
        Ok(self.identity(entry, login, groups))
    }
}
