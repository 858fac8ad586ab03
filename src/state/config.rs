//! The `[state]` section: where pending logins, the replay cache and throttle
//! counters live.

use std::path::PathBuf;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
use std::sync::Arc;

use serde::Deserialize;

use super::{SharedState, ThrottleOnOutage};
use crate::{ConfigError, SecretSource};

/// The `[state]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StateConfig {
    /// `type` and its connection settings.
    pub backend: StateBackend,
    /// `throttle_on_outage` (default [`ThrottleOnOutage::Closed`]).
    pub throttle_on_outage: ThrottleOnOutage,
}

/// Where the state lives: `[state] type`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StateBackend {
    /// `memory`: this process only (each module its own flow store).
    #[default]
    Memory,
    /// `sqlite` (feature `sqlite`): processes on one host sharing a database
    /// file; `path`, or without it the `[store]`'s file.
    Sqlite {
        /// `path`.
        path: Option<PathBuf>,
    },
    /// `postgres` (feature `postgres`): `url`, or without it the `[store]`'s
    /// database and pool.
    Postgres {
        /// `url`.
        url: Option<SecretSource>,
        /// `max_connections` of its own pool.
        max_connections: Option<u32>,
    },
    /// `redis` (feature `redis`).
    Redis {
        /// `url` (`redis://[user:password@]host:port/db`).
        url: SecretSource,
        /// `prefix` of every key (default `authchain:`).
        prefix: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    #[serde(rename = "type")]
    kind: String,
    url: Option<SecretSource>,
    path: Option<PathBuf>,
    prefix: Option<String>,
    max_connections: Option<u32>,
    #[serde(default)]
    throttle_on_outage: ThrottleOnOutage,
}

/// Refuses the keys given that `kind` does not read.
fn only(kind: &str, given: &[(&str, bool)], allowed: &[&str]) -> Result<(), ConfigError> {
    match given.iter().find(|(key, set)| *set && !allowed.contains(key)) {
        Some((key, _)) => Err(ConfigError::invalid(
            format!("state.{key}"),
            format!("a `type = \"{kind}\"` state has no such setting"),
        )),
        None => Ok(()),
    }
}

fn needs_feature(kind: &str) -> ConfigError {
    ConfigError::invalid(
        "state.type",
        format!("state type `{kind}` needs the crate feature `{kind}`"),
    )
}

impl StateConfig {
    pub(crate) fn parse(raw: &RawState) -> Result<StateConfig, ConfigError> {
        let given = [
            ("url", raw.url.is_some()),
            ("path", raw.path.is_some()),
            ("prefix", raw.prefix.is_some()),
            ("max_connections", raw.max_connections.is_some()),
        ];
        let kind = raw.kind.as_str();
        let backend = match kind {
            "memory" => {
                only(kind, &given, &[])?;
                StateBackend::Memory
            }
            "sqlite" if !cfg!(feature = "sqlite") => return Err(needs_feature(kind)),
            "sqlite" => {
                only(kind, &given, &["path"])?;
                if raw.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                    return Err(ConfigError::invalid("state.path", "must not be empty"));
                }
                StateBackend::Sqlite {
                    path: raw.path.clone(),
                }
            }
            "postgres" if !cfg!(feature = "postgres") => return Err(needs_feature(kind)),
            "postgres" => {
                only(kind, &given, &["url", "max_connections"])?;
                if raw.max_connections.is_some() && raw.url.is_none() {
                    return Err(ConfigError::invalid(
                        "state.max_connections",
                        "only with a `url` of its own (without one the [store]'s pool is shared)",
                    ));
                }
                if let Some(n) = raw.max_connections
                    && !(1..=1000).contains(&n)
                {
                    return Err(ConfigError::invalid(
                        "state.max_connections",
                        format!("{n} is outside 1..=1000"),
                    ));
                }
                StateBackend::Postgres {
                    url: raw.url.clone(),
                    max_connections: raw.max_connections,
                }
            }
            "redis" if !cfg!(feature = "redis") => return Err(needs_feature(kind)),
            "redis" => {
                only(kind, &given, &["url", "prefix"])?;
                let url = raw.url.clone().ok_or_else(|| {
                    ConfigError::invalid("state.url", "a `type = \"redis\"` state needs a `url`")
                })?;
                if let Some(prefix) = &raw.prefix
                    && prefix.len() > 128
                {
                    return Err(ConfigError::invalid("state.prefix", "longer than 128 bytes"));
                }
                StateBackend::Redis {
                    url,
                    prefix: raw.prefix.clone(),
                }
            }
            other => {
                return Err(ConfigError::invalid(
                    "state.type",
                    format!("unknown state type `{other}` (known: memory, sqlite, postgres, redis)"),
                ));
            }
        };
        Ok(StateConfig {
            backend,
            throttle_on_outage: raw.throttle_on_outage,
        })
    }

    /// Opens the state stores. `store` is what the `[store]` section opened, for
    /// a `sqlite` or `postgres` state without a location of its own. Failures name
    /// the key at fault (`state.url`, `state.path`).
    pub(crate) async fn open(&self, store: &super::OpenedStore) -> Result<SharedState, ConfigError> {
        let _ = store;
        let state = match &self.backend {
            StateBackend::Memory => SharedState::memory(),
            #[cfg(feature = "sqlite")]
            StateBackend::Sqlite { path } => match (path, store) {
                (Some(path), _) => SharedState::all_in(Arc::new(
                    crate::account::SqliteStore::open(path)
                        .await
                        .map_err(|e| ConfigError::invalid("state.path", e.to_string()))?,
                )),
                (None, super::OpenedStore::Sqlite(store)) => SharedState::all_in(Arc::new(store.clone())),
                (None, _) => {
                    return Err(ConfigError::invalid(
                        "state.path",
                        "needed unless [store] is `type = \"sqlite\"`",
                    ));
                }
            },
            #[cfg(feature = "postgres")]
            StateBackend::Postgres { url, max_connections } => match (url, store) {
                (Some(url), _) => {
                    let url = url.resolve("state.url")?;
                    let mut options = crate::account::PgOptions::default();
                    if let Some(n) = max_connections {
                        options = options.max_connections(*n);
                    }
                    SharedState::all_in(Arc::new(
                        crate::account::PgStore::connect(url.expose(), options)
                            .await
                            .map_err(|e| ConfigError::invalid("state.url", e.to_string()))?,
                    ))
                }
                (None, super::OpenedStore::Postgres(store)) => SharedState::all_in(Arc::new(store.clone())),
                (None, _) => {
                    return Err(ConfigError::invalid(
                        "state.url",
                        "needed unless [store] is `type = \"postgres\"`",
                    ));
                }
            },
            #[cfg(feature = "redis")]
            StateBackend::Redis { url, prefix } => {
                let url = url.resolve("state.url")?;
                let mut options = super::RedisOptions::default();
                if let Some(prefix) = prefix {
                    options = options.prefix(prefix.clone());
                }
                SharedState::all_in(Arc::new(
                    super::RedisState::connect(url.expose(), options)
                        .await
                        .map_err(|e| ConfigError::invalid("state.url", e.to_string()))?,
                ))
            }
            #[allow(unreachable_patterns)]
            _ => return Err(ConfigError::invalid("state.type", "not built into this crate")),
        };
        Ok(state.throttle_on_outage(self.throttle_on_outage))
    }
}
