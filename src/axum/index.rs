//! Which browser sessions belong to a provider's session (OIDC `sid`, SAML
//! `SessionIndex`) or to an external subject, so that a logout the provider sends
//! (OIDC back-channel logout, a SAML IdP-initiated LogoutRequest) ends them.
//!
//! The index lives in the host's session store itself, so it is shared wherever the
//! sessions are (Redis, SQL stores behind several replicas): one record per key,
//! under a session id derived from the key with `session_index_key` (a keyed
//! SHA-256, so nobody can guess the id and present it as a session cookie), holding
//! the ids of the sessions the key names (at most [`MAX_SESSIONS_PER_KEY`], oldest
//! dropped) until the last of them expires. Updates are read-modify-write: two
//! logins of the same subject at the same instant on two replicas can lose one
//! entry (that session then ends only by its own timeouts or revalidation).

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tower_sessions::SessionStore;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};

use super::WebError;

/// Most sessions one index key remembers (the oldest goes first beyond that).
pub const MAX_SESSIONS_PER_KEY: usize = 64;
/// The record member holding the indexed session ids.
const INDEX_MEMBER: &str = "authchain.index";

/// What an index key names: a provider session or a subject, of one module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IndexKey<'a> {
    /// The provider's session id (OIDC `sid`, SAML `SessionIndex`).
    ProviderSession { module: &'a str, id: &'a str },
    /// The external subject (OIDC `sub`, SAML NameID).
    Subject { module: &'a str, subject: &'a str },
}

#[derive(Clone)]
pub(crate) struct SessionIndex {
    store: Arc<dyn SessionStore>,
    key: Arc<[u8; 32]>,
}

fn store_error(err: tower_sessions::session_store::Error) -> WebError {
    WebError::Session(err.to_string())
}

impl SessionIndex {
    pub(crate) fn new(store: Arc<dyn SessionStore>, key: [u8; 32]) -> SessionIndex {
        SessionIndex {
            store,
            key: Arc::new(key),
        }
    }

    fn record_id(&self, key: IndexKey<'_>) -> Id {
        let (kind, module, value) = match key {
            IndexKey::ProviderSession { module, id } => ("sid", module, id),
            IndexKey::Subject { module, subject } => ("sub", module, subject),
        };
        let mut hash = Sha256::new();
        hash.update(b"authchain session index v1\0");
        hash.update(self.key.as_slice());
        for part in [kind, module, value] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Id(i128::from_le_bytes(id))
    }

    /// The sessions `key` names, with their expiry (unix seconds).
    async fn load(&self, id: &Id) -> Result<Vec<(i128, i64)>, WebError> {
        let record = self.store.load(id).await.map_err(store_error)?;
        Ok(record
            .and_then(|r| r.data.get(INDEX_MEMBER).cloned())
            .and_then(|v| serde_json::from_value::<Vec<(String, i64)>>(v).ok())
            .unwrap_or_default()
            .into_iter()
            .take(MAX_SESSIONS_PER_KEY)
            .filter_map(|(id, until)| id.parse::<i128>().ok().map(|id| (id, until)))
            .collect())
    }

    /// Remembers that `session` (expiring at `until`) belongs to each of `keys`.
    pub(crate) async fn add(
        &self,
        keys: &[IndexKey<'_>],
        session: Id,
        until: OffsetDateTime,
    ) -> Result<(), WebError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        for key in keys {
            let id = self.record_id(*key);
            let mut sessions = self.load(&id).await?;
            sessions.retain(|(s, t)| *t > now && *s != session.0);
            sessions.push((session.0, until.unix_timestamp()));
            if sessions.len() > MAX_SESSIONS_PER_KEY {
                let extra = sessions.len() - MAX_SESSIONS_PER_KEY;
                sessions.drain(..extra);
            }
            let last = sessions.iter().map(|(_, t)| *t).max().unwrap_or(now);
            let list: Vec<(String, i64)> = sessions.into_iter().map(|(s, t)| (s.to_string(), t)).collect();
            let mut data = HashMap::new();
            data.insert(
                INDEX_MEMBER.to_owned(),
                serde_json::to_value(list).map_err(|e| WebError::Session(e.to_string()))?,
            );
            let record = Record {
                id,
                data,
                expiry_date: OffsetDateTime::from_unix_timestamp(last).unwrap_or(until),
            };
            self.store.save(&record).await.map_err(store_error)?;
        }
        Ok(())
    }

    /// Ends every session `key` names (deleting them from the store) and forgets
    /// the key; answers how many sessions were named.
    pub(crate) async fn end(&self, key: IndexKey<'_>) -> Result<usize, WebError> {
        let id = self.record_id(key);
        let sessions = self.load(&id).await?;
        for (session, _) in &sessions {
            self.store.delete(&Id(*session)).await.map_err(store_error)?;
        }
        self.store.delete(&id).await.map_err(store_error)?;
        Ok(sessions.len())
    }
}
