//! What a signed-in session holds, its timeouts and its revalidation against the
//! user store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::index::IndexKey;
use super::{WebAuth, WebError};
use crate::{AccountId, AuthError, Principal, ProviderSession};

/// The session key of the signed-in user.
const USER_KEY: &str = "authchain.user";
/// Most accounts (and provider session ids) remembered as ended at once; the
/// oldest entry goes first beyond that.
const MAX_ENDED: usize = 100_000;

/// The signed-in user as the session stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionUser {
    pub(crate) account_id: String,
    pub(crate) login: String,
    pub(crate) email: Option<String>,
    pub(crate) roles: BTreeSet<String>,
    pub(crate) module: String,
    /// When the login happened (milliseconds since the epoch).
    pub(crate) auth_time: u64,
    /// When the account was last read from the user store (milliseconds).
    pub(crate) checked_at: u64,
    /// The external subject the module verified (OIDC `sub`, SAML NameID).
    #[serde(default)]
    pub(crate) subject: String,
    /// What the provider's logout needs (ID token, `sid` / `SessionIndex`).
    #[serde(default)]
    pub(crate) provider_session: ProviderSession,
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sessions ended from outside the session itself: every session of an account
/// (an administrator disabled it), checked on each request. Kept in this process:
/// with several instances, disable the account too (revalidation then ends its
/// sessions everywhere within `revalidate_every`).
#[derive(Clone, Default)]
pub struct SessionEnds {
    /// Account id → sessions that logged in before this time (ms) are ended.
    accounts: Arc<Mutex<HashMap<String, u64>>>,
}

impl SessionEnds {
    /// Ends every session of `account` that exists now.
    pub fn end_account(&self, account: &AccountId) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() >= MAX_ENDED
            && !accounts.contains_key(account.as_str())
            && let Some(oldest) = accounts.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            accounts.remove(&oldest);
        }
        accounts.insert(account.to_string(), now_millis());
    }

    fn ended(&self, user: &SessionUser) -> bool {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts
            .get(&user.account_id)
            .is_some_and(|before| user.auth_time <= *before)
    }
}

fn session_error(err: tower_sessions::session::Error) -> WebError {
    WebError::Session(err.to_string())
}

impl WebAuth {
    /// Starts the session of a fresh login: a new session id (no fixation), then
    /// the user.
    pub(crate) async fn start_session(
        &self,
        session: &Session,
        principal: &Principal,
    ) -> Result<(), WebError> {
        session.cycle_id().await.map_err(session_error)?;
        session.clear().await;
        let now = now_millis();
        let auth_time = principal
            .authenticated_at
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or(now);
        let user = SessionUser {
            account_id: principal.account_id.to_string(),
            login: principal.login.clone(),
            email: principal.email.clone(),
            roles: principal.roles.iter().map(|role| role.to_string()).collect(),
            module: principal.module.to_string(),
            auth_time,
            checked_at: now,
            subject: principal.identity.subject.clone(),
            provider_session: principal
                .identity
                .provider_session
                .as_deref()
                .cloned()
                .unwrap_or_default(),
        };
        session.insert(USER_KEY, &user).await.map_err(session_error)?;
        self.index_session(session, &user).await
    }

    /// Records a provider login's session in the session index (by provider session
    /// id and by subject), so that the provider's logout can end it. Saves the
    /// session now: its id is known only once stored.
    async fn index_session(&self, session: &Session, user: &SessionUser) -> Result<(), WebError> {
        let Some(index) = self.inner.index.get() else {
            return Ok(());
        };
        if user.provider_session == ProviderSession::default() {
            return Ok(());
        }
        session.save().await.map_err(session_error)?;
        let Some(id) = session.id() else {
            return Ok(());
        };
        let until = tower_sessions::cookie::time::OffsetDateTime::now_utc()
            + tower_sessions::cookie::time::Duration::seconds(
                i64::try_from(self.settings().absolute_timeout.as_secs()).unwrap_or(i64::MAX / 2),
            );
        let mut keys = vec![IndexKey::Subject {
            module: &user.module,
            subject: &user.subject,
        }];
        if let Some(sid) = &user.provider_session.session_id {
            keys.push(IndexKey::ProviderSession {
                module: &user.module,
                id: sid,
            });
        }
        index.add(&keys, id, until).await
    }

    /// Ends the sessions of `module`'s login named by a provider's logout: those of
    /// its session `session_id` when given, else every one of `subject`. Answers how
    /// many sessions the index named.
    pub async fn end_provider_sessions(
        &self,
        module: &str,
        subject: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<usize, WebError> {
        let Some(index) = self.inner.index.get() else {
            return Err(WebError::Session("the session index needs WebAuth::mount".into()));
        };
        match (session_id, subject) {
            (Some(id), _) => index.end(IndexKey::ProviderSession { module, id }).await,
            (None, Some(subject)) => index.end(IndexKey::Subject { module, subject }).await,
            (None, None) => Ok(0),
        }
    }

    /// Ends the session: its data goes and the next one gets a new id.
    pub(crate) async fn end_session(&self, session: &Session) -> Result<Option<SessionUser>, WebError> {
        let user = session
            .get::<SessionUser>(USER_KEY)
            .await
            .map_err(session_error)?;
        session.flush().await.map_err(session_error)?;
        Ok(user)
    }

    /// The session's user, after the timeouts, the ended-sessions list and (every
    /// `revalidate_every`) the user store had their say. `Ok(None)`: not signed in.
    pub(crate) async fn session_user(&self, session: &Session) -> Result<Option<SessionUser>, WebError> {
        let Some(mut user) = session
            .get::<SessionUser>(USER_KEY)
            .await
            .map_err(session_error)?
        else {
            return Ok(None);
        };
        let settings = self.settings();
        let now = now_millis();
        if now.saturating_sub(user.auth_time) > millis(settings.absolute_timeout)
            || self.inner.ends.ended(&user)
        {
            self.end_session(session).await?;
            return Ok(None);
        }
        if now.saturating_sub(user.checked_at) >= millis(settings.revalidate_every) {
            let account = self
                .chain()
                .store()
                .account(&AccountId::from(user.account_id.as_str()))
                .await
                .map_err(|e| WebError::Auth(AuthError::unavailable("user-store", e)))?;
            let account = match account {
                Some(account) if !account.disabled => account,
                _ => {
                    self.end_session(session).await?;
                    return Err(WebError::Auth(AuthError::AccountDisabled));
                }
            };
            user.roles = account.effective_roles();
            user.email = account.email.clone().or(user.email);
            user.checked_at = now;
            session.insert(USER_KEY, &user).await.map_err(session_error)?;
        }
        Ok(Some(user))
    }
}
