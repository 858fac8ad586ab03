//! Configuration: a whole chain from TOML. Every key is listed in
//! `docs/configuration.md`.
//!
//! ```toml
//! chain = ["proxy", "local"]          # module ids, in order
//! trusted_proxies = ["10.0.0.0/8"]    # whose X-Forwarded-For gives the client address
//!
//! [accounts]
//! case_insensitive = true
//! expire_inactive_after = "P90D"
//!
//! [throttle]
//! max_attempts = 5
//! window = "PT15M"
//!
//! [modules.proxy]
//! type = "header"
//! provisioning = "create"
//! [[modules.proxy.role_mapping.rules]]
//! group = "admins"
//! role = "admin"
//!
//! [modules.local]
//! type = "local"
//!
//! [store]                             # where accounts live (default: memory)
//! type = "sqlite"
//! path = "/var/lib/myapp/accounts.sqlite3"
//! ```
//!
//! (TOML cannot hold both a `modules = [...]` list and `[modules.x]` tables, so the
//! order lives in `chain`.)

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::account::{
    AttemptStore, DEFAULT_MAX_CONNECTIONS, LoginAttribute, LoginNames, MemoryAttemptStore, MemoryUserStore,
    PasswordPolicy, Provisioning, RoleMapping, RoleRule, Synchronous, ThrottlePolicy, UserStore,
};
use crate::chain::{ModuleSettings, OnFailure};
use crate::iso8601::IsoDuration;
use crate::modules::{HeaderModule, HeaderSettings, LocalModule, LocalSettings};
use crate::net::{ForwardedHeader, ProxyTrust};
use crate::settings::ModuleSettingsType;
use crate::{AuthChain, Authenticator, ChainBuilder, ConfigError};

pub use crate::error::Location;

mod check;
mod env;
mod shared;
pub use env::ENV_PREFIX;

/// A parsed configuration, ready to build an [`AuthChain`].
#[derive(Debug, Clone)]
pub struct Config {
    raw: RawConfig,
    modules: Vec<ModuleConfig>,
    store: Option<StoreConfig>,
    state: Option<crate::state::StateConfig>,
    /// The TOML text, to give later errors the line of their key.
    text: SourceText,
}

/// The configuration's text. Its `Debug` prints only the length: the text may
/// hold inline secrets.
#[derive(Clone)]
struct SourceText(Arc<str>);

impl std::fmt::Debug for SourceText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceText({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    chain: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    forwarded_header: ForwardedHeader,
    #[serde(default)]
    accounts: AccountsConfig,
    #[serde(default)]
    passwords: PasswordsConfig,
    throttle: Option<ThrottlePolicy>,
    #[serde(default)]
    modules: BTreeMap<String, toml::Table>,
    store: Option<RawStore>,
    state: Option<crate::state::RawState>,
    #[cfg(feature = "sync")]
    sync: Option<crate::sync::SyncConfig>,
    #[cfg(not(feature = "sync"))]
    sync: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    synchronous: Option<String>,
    max_connections: Option<u32>,
    url: Option<crate::SecretSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsConfig {
    #[serde(default)]
    case_insensitive: bool,
    #[serde(default)]
    login_attribute: LoginAttribute,
    expire_inactive_after: Option<IsoDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PasswordsConfig {
    argon2_m_cost_kib: u32,
    argon2_t_cost: u32,
    argon2_p_cost: u32,
    /// `[passwords.max_cost]`: the most work a stored hash may ask for.
    max_cost: crate::account::HashLimits,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        PasswordsConfig {
            argon2_m_cost_kib: 19_456,
            argon2_t_cost: 2,
            argon2_p_cost: 1,
            max_cost: crate::account::HashLimits::default(),
        }
    }
}

/// The keys every module table accepts, whatever its type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonConfig {
    #[serde(rename = "type")]
    kind: String,
    description: Option<String>,
    #[serde(default = "crate::settings::yes")]
    enabled: bool,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    on_reject: OnFailure,
    #[serde(default)]
    on_unavailable: OnFailure,
    #[serde(default)]
    provisioning: Provisioning,
    #[serde(default)]
    role_mapping: RoleMappingConfig,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    required_roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleMappingConfig {
    #[serde(default)]
    case_insensitive: bool,
    #[serde(default)]
    match_dn: bool,
    #[serde(default)]
    rules: Vec<RoleRule>,
}

#[derive(Debug, Clone)]
struct ModuleConfig {
    id: String,
    common: CommonConfig,
    kind: ModuleType,
}

#[derive(Debug, Clone)]
enum ModuleType {
    Local(LocalSettings),
    Header(HeaderSettings),
    #[cfg(feature = "ldap")]
    Ldap(Box<crate::modules::LdapSettings>),
    #[cfg(feature = "oidc")]
    Oidc(Box<crate::modules::OidcSettings>),
    #[cfg(feature = "oauth2")]
    OAuth2(Box<crate::modules::OAuth2Settings>),
    #[cfg(feature = "cas")]
    Cas(Box<crate::modules::CasSettings>),
    #[cfg(feature = "saml")]
    Saml(Box<crate::modules::SamlSettings>),
    #[cfg(feature = "signed-header")]
    SignedHeader(Box<crate::modules::SignedHeaderSettings>),
    #[cfg(feature = "key-login")]
    KeyLogin(Box<crate::modules::KeyLoginSettings>),
}

/// Where accounts and throttle counters live: the `[store]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreConfig {
    /// `type = "memory"`: a [`MemoryUserStore`] and in-memory throttle counters,
    /// gone when the process ends.
    #[default]
    Memory,
    /// `type = "sqlite"` (feature `sqlite`): accounts and throttle counters in the
    /// SQLite database file at `path`, created with its directories if missing.
    Sqlite {
        /// The database file (relative paths are relative to the working directory).
        path: PathBuf,
        /// `synchronous` (default `full`).
        synchronous: Synchronous,
        /// Connections in the pool (default [`DEFAULT_MAX_CONNECTIONS`]).
        max_connections: u32,
    },
    /// `type = "postgres"` (feature `postgres`): accounts and throttle counters
    /// (and, with `[state] type = "postgres"`, the rest of the shared state) in the
    /// PostgreSQL database at `url`, a secret (`{ env = "..." }`, `{ file = "..." }`).
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: crate::SecretSource,
        /// Connections in the pool (default
        /// [`DEFAULT_PG_MAX_CONNECTIONS`](crate::account::DEFAULT_PG_MAX_CONNECTIONS), 10).
        max_connections: u32,
    },
}

impl StoreConfig {
    /// An SQLite store at `path` with the default settings.
    pub fn sqlite(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig::Sqlite {
            path: path.into(),
            synchronous: Synchronous::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    fn parse(raw: &RawStore) -> Result<StoreConfig, ConfigError> {
        if raw.kind == "memory" {
            let sqlite_only = [
                ("store.path", raw.path.is_some()),
                ("store.synchronous", raw.synchronous.is_some()),
                ("store.max_connections", raw.max_connections.is_some()),
                ("store.url", raw.url.is_some()),
            ];
            if let Some((key, _)) = sqlite_only.iter().find(|(_, given)| *given) {
                return Err(ConfigError::invalid(
                    *key,
                    "a `type = \"memory\"` store has no such setting",
                ));
            }
        }
        if raw.kind == "postgres" {
            return StoreConfig::parse_postgres(raw);
        }
        if raw.kind == "sqlite" && raw.url.is_some() {
            return Err(ConfigError::invalid(
                "store.url",
                "a `type = \"sqlite\"` store has a `path`, no `url`",
            ));
        }
        match (raw.kind.as_str(), &raw.path) {
            ("memory", _) => Ok(StoreConfig::Memory),
            ("sqlite", _) if !cfg!(feature = "sqlite") => Err(ConfigError::invalid(
                "store.type",
                "store type `sqlite` needs the crate feature `sqlite`",
            )),
            ("sqlite", None) => Err(ConfigError::invalid(
                "store.path",
                "a `type = \"sqlite\"` store needs the database file's path",
            )),
            ("sqlite", Some(path)) if path.as_os_str().is_empty() => {
                Err(ConfigError::invalid("store.path", "must not be empty"))
            }
            ("sqlite", Some(path)) => {
                let synchronous = match raw.synchronous.as_deref() {
                    None | Some("full") => Synchronous::Full,
                    Some("normal") => Synchronous::Normal,
                    Some(other) => {
                        return Err(ConfigError::invalid(
                            "store.synchronous",
                            format!("`{other}` is not one of: full, normal"),
                        ));
                    }
                };
                let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
                if !(1..=64).contains(&max_connections) {
                    return Err(ConfigError::invalid(
                        "store.max_connections",
                        format!("{max_connections} is outside 1..=64"),
                    ));
                }
                Ok(StoreConfig::Sqlite {
                    path: path.clone(),
                    synchronous,
                    max_connections,
                })
            }
            (other, _) => Err(ConfigError::invalid(
                "store.type",
                format!("unknown store type `{other}` (known: memory, sqlite, postgres)"),
            )),
        }
    }

    fn parse_postgres(raw: &RawStore) -> Result<StoreConfig, ConfigError> {
        if !cfg!(feature = "postgres") {
            return Err(ConfigError::invalid(
                "store.type",
                "store type `postgres` needs the crate feature `postgres`",
            ));
        }
        for (key, given) in [
            ("store.path", raw.path.is_some()),
            ("store.synchronous", raw.synchronous.is_some()),
        ] {
            if given {
                return Err(ConfigError::invalid(
                    key,
                    "a `type = \"postgres\"` store has a `url`, no file settings",
                ));
            }
        }
        let url = raw.url.clone().ok_or_else(|| {
            ConfigError::invalid(
                "store.url",
                "a `type = \"postgres\"` store needs the database `url`",
            )
        })?;
        let max_connections = raw.max_connections.unwrap_or(10);
        if !(1..=1000).contains(&max_connections) {
            return Err(ConfigError::invalid(
                "store.max_connections",
                format!("{max_connections} is outside 1..=1000"),
            ));
        }
        Ok(StoreConfig::Postgres { url, max_connections })
    }

    /// Opens the store (for SQLite: the file, brought up to date with the crate's
    /// schema). Failures name the key `store.path`.
    pub async fn open(&self) -> Result<Stores, ConfigError> {
        Ok(self.open_limited(crate::account::HashLimits::default()).await?.0)
    }

    async fn open_limited(
        &self,
        limits: crate::account::HashLimits,
    ) -> Result<(Stores, crate::state::OpenedStore), ConfigError> {
        use crate::state::OpenedStore;
        match self {
            StoreConfig::Memory => Ok((
                Stores::new(Arc::new(MemoryUserStore::new().with_hash_limits(limits))),
                OpenedStore::Other,
            )),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite { .. } => {
                let store = self.open_sqlite().await?.with_hash_limits(limits);
                let stores = Stores::new(Arc::new(store.clone())).attempts(Arc::new(store.clone()));
                Ok((stores, OpenedStore::Sqlite(store)))
            }
            #[cfg(not(feature = "sqlite"))]
            StoreConfig::Sqlite { .. } => Err(ConfigError::invalid(
                "store.type",
                "store type `sqlite` needs the crate feature `sqlite`",
            )),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres { url, max_connections } => {
                let url = url.resolve("store.url")?;
                let options = crate::account::PgOptions::default()
                    .max_connections(*max_connections)
                    .hash_limits(limits);
                let store = crate::account::PgStore::connect(url.expose(), options)
                    .await
                    .map_err(|e| ConfigError::invalid("store.url", e.to_string()))?;
                let stores = Stores::new(Arc::new(store.clone())).attempts(Arc::new(store.clone()));
                Ok((stores, OpenedStore::Postgres(store)))
            }
            #[cfg(not(feature = "postgres"))]
            StoreConfig::Postgres { .. } => Err(ConfigError::invalid(
                "store.type",
                "store type `postgres` needs the crate feature `postgres`",
            )),
        }
    }

    /// Opens the store this names as the target of directory sync (`[sync]`): the
    /// SQLite or the PostgreSQL store (either brought up to date with the crate's
    /// schema). A memory store is refused (`store.type`): what it mirrored would be
    /// gone with the process.
    #[cfg(feature = "sync")]
    pub async fn open_sync_target(&self) -> Result<Arc<dyn crate::sync::DirectoryTarget>, ConfigError> {
        match self {
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite { .. } => Ok(Arc::new(self.open_sqlite().await?)),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres { .. } => match self.open_limited(Default::default()).await?.1 {
                crate::state::OpenedStore::Postgres(store) => Ok(Arc::new(store)),
                _ => Err(ConfigError::invalid(
                    "store.type",
                    "not a `type = \"postgres\"` store",
                )),
            },
            _ => Err(ConfigError::invalid(
                "store.type",
                "directory sync writes into a `sqlite` or `postgres` store (with its crate feature)",
            )),
        }
    }

    /// Opens the SQLite store this names (brought up to date with the crate's
    /// schema); failures name `store.path`, a memory store `store.type`.
    #[cfg(feature = "sqlite")]
    pub async fn open_sqlite(&self) -> Result<crate::account::SqliteStore, ConfigError> {
        let StoreConfig::Sqlite {
            path,
            synchronous,
            max_connections,
        } = self
        else {
            return Err(ConfigError::invalid(
                "store.type",
                "not a `type = \"sqlite\"` store",
            ));
        };
        let options = crate::account::SqliteOptions::default()
            .synchronous(*synchronous)
            .max_connections(*max_connections);
        crate::account::SqliteStore::open_with(path, options)
            .await
            .map_err(|e| ConfigError::invalid("store.path", e.to_string()))
    }
}

/// The stores a configured chain uses.
#[derive(Clone)]
pub struct Stores {
    users: Arc<dyn UserStore>,
    attempts: Option<Arc<dyn AttemptStore>>,
    /// The `[state]` stores, when given (see [`Stores::state`]).
    state: Option<crate::state::SharedState>,
    /// Pending redirect logins and one-time values, shared by every module (and
    /// kept across reloads); `None`: each module keeps its own in memory.
    shared: shared::SharedState,
}

impl Stores {
    /// The host's user store; throttle counters in memory, each redirect module
    /// its own in-memory flow store.
    pub fn new(users: Arc<dyn UserStore>) -> Self {
        Stores {
            users,
            attempts: None,
            state: None,
            shared: shared::SharedState::default(),
        }
    }

    /// Keeps pending logins, the replay cache and throttle counters in `state`
    /// (shared between instances): every OIDC, OAuth2, SAML and CAS module that
    /// was not given a flow store of its own uses `state.flows`, every SAML and
    /// key-login module without a replay cache `state.replay`, and the throttle
    /// `state.attempts`.
    pub fn state(mut self, state: crate::state::SharedState) -> Self {
        self.attempts = Some(state.attempts.clone());
        self.shared.flows = Some(state.flows.clone());
        self.shared.replay = Some(state.replay.clone());
        self.state = Some(state);
        self
    }

    /// The shared state, when one was given.
    pub fn shared_state(&self) -> Option<&crate::state::SharedState> {
        self.state.as_ref()
    }

    /// Keeps throttle counters in `attempts` (shared between instances).
    pub fn attempts(mut self, attempts: Arc<dyn AttemptStore>) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// The user store (for seeding accounts, or an administration page).
    pub fn users(&self) -> &Arc<dyn UserStore> {
        &self.users
    }
}

fn syntax(err: toml::de::Error) -> ConfigError {
    ConfigError::Syntax(crate::settings::plain_language(err.to_string().trim_end()))
}

impl Config {
    /// Parses a TOML configuration and checks it: unknown keys, unknown module
    /// types, a `chain` entry without a table, or a table not in `chain` are errors.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(syntax)?;
        let located = |e: ConfigError| e.located(&|key: &str| crate::toml_location::locate(text, key));
        // Every error in the text is reported, not only the first.
        let mut errors = Vec::new();
        let mut modules = Vec::with_capacity(raw.chain.len());
        for (i, id) in raw.chain.iter().enumerate() {
            if raw.chain[..i].contains(id) {
                errors.push(ConfigError::invalid(
                    format!("chain[{i}]"),
                    format!("module `{id}` is listed twice"),
                ));
                continue;
            }
            match raw.modules.get(id) {
                Some(table) => match parse_module(id, table) {
                    Ok(module) => modules.push(module),
                    Err(e) => errors.push(e),
                },
                None => errors.push(ConfigError::invalid(
                    format!("chain[{i}]"),
                    format!("no [modules.{id}] table"),
                )),
            }
        }
        for unused in raw.modules.keys().filter(|id| !raw.chain.contains(id)) {
            errors.push(ConfigError::invalid(
                format!("modules.{unused}"),
                "module is configured but not listed in `chain`",
            ));
        }
        for (i, cidr) in raw.trusted_proxies.iter().enumerate() {
            if let Err(e) = parse_cidr(&format!("trusted_proxies[{i}]"), cidr) {
                errors.push(e);
            }
        }
        let store = match raw.store.as_ref().map(StoreConfig::parse).transpose() {
            Ok(store) => store,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let state = match raw
            .state
            .as_ref()
            .map(crate::state::StateConfig::parse)
            .transpose()
        {
            Ok(state) => state,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if let Some(error) = ConfigError::collect(errors) {
            return Err(located(error));
        }
        let config = Config {
            raw,
            modules,
            store,
            state,
            text: SourceText(Arc::from(text)),
        };
        config.check_sync().map_err(located)?;
        Ok(config)
    }

    /// `error` with the line of its key in this configuration's text.
    fn located(&self, error: ConfigError) -> ConfigError {
        error.located(&|key: &str| crate::toml_location::locate(&self.text.0, key))
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            key: None,
            path: path.display().to_string(),
            source,
            location: None,
        })?;
        Config::from_toml(&text)
    }

    #[cfg(not(feature = "sync"))]
    fn check_sync(&self) -> Result<(), ConfigError> {
        match self.raw.sync {
            Some(_) => Err(ConfigError::invalid(
                "sync",
                "directory sync needs the crate feature `sync`",
            )),
            None => Ok(()),
        }
    }

    #[cfg(feature = "sync")]
    fn check_sync(&self) -> Result<(), ConfigError> {
        match &self.raw.sync {
            Some(sync) => self.sync_module(sync).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The ldap module `[sync]` names.
    #[cfg(feature = "sync")]
    fn sync_module(
        &self,
        sync: &crate::sync::SyncConfig,
    ) -> Result<(&ModuleConfig, &crate::modules::LdapSettings), ConfigError> {
        let module = self.modules.iter().find(|m| m.id == sync.module).ok_or_else(|| {
            ConfigError::invalid("sync.module", format!("no module `{}` in `chain`", sync.module))
        })?;
        match &module.kind {
            ModuleType::Ldap(ldap) => Ok((module, ldap)),
            _ => Err(ConfigError::invalid(
                "sync.module",
                format!("module `{}` is not of type \"ldap\"", sync.module),
            )),
        }
    }

    /// The directory synchroniser `[sync]` describes, writing into `target`;
    /// `None` without a `[sync]` table. Accounts are linked, and roles mapped,
    /// under the named ldap module's id and with its role mapping.
    #[cfg(feature = "sync")]
    pub fn synchronizer(
        &self,
        target: Arc<dyn crate::sync::DirectoryTarget>,
    ) -> Result<Option<crate::sync::Synchronizer>, ConfigError> {
        use crate::sync::{SyncScope, Synchronizer};
        let Some(sync) = &self.raw.sync else {
            return Ok(None);
        };
        let (module, ldap) = self.sync_module(sync)?;
        let ldap = crate::modules::LdapModule::new(module.id.clone(), ldap.clone())
            .map_err(|e| e.under(&format!("modules.{}", module.id)))?;
        let source = sync.directory_source(ldap)?;
        let scope = SyncScope::new(module.id.clone())
            .on_delete(sync.on_delete)
            .roles(Arc::new(role_mapping(&module.id, &module.common)?));
        let mut synchronizer = Synchronizer::new(source, target, scope);
        if let Some(max) = sync.max_batch {
            if max == 0 {
                return Err(ConfigError::invalid("sync.max_batch", "must be at least 1"));
            }
            synchronizer = synchronizer.max_batch(max);
        }
        if let Some(max) = sync.max_backoff {
            if max.0.is_zero() {
                return Err(ConfigError::invalid(
                    "sync.max_backoff",
                    "must be longer than zero",
                ));
            }
            synchronizer = synchronizer.backoff(std::time::Duration::from_millis(100).min(max.0), max.0);
        }
        Ok(Some(synchronizer))
    }

    /// The module ids, in chain order.
    pub fn module_ids(&self) -> impl Iterator<Item = &str> {
        self.raw.chain.iter().map(String::as_str)
    }

    /// The `[store]` section, when the file has one.
    pub fn store(&self) -> Option<&StoreConfig> {
        self.store.as_ref()
    }

    /// Opens the stores the `[store]` section names (in memory when it is absent),
    /// for [`Config::build`].
    ///
    /// The user store checks written password hashes against
    /// `[passwords.max_cost]`.
    ///
    /// With a `[state]` section, pending logins, the replay cache and throttle
    /// counters go where it says (see [`Stores::state`]).
    pub async fn open_stores(&self) -> Result<Stores, ConfigError> {
        let (stores, opened) = self
            .store
            .clone()
            .unwrap_or_default()
            .open_limited(self.raw.passwords.max_cost)
            .await?;
        match &self.state {
            Some(state) => Ok(stores.state(state.open(&opened).await?)),
            None => Ok(stores),
        }
    }

    /// The `[state]` section, when the file has one.
    pub fn state(&self) -> Option<&crate::state::StateConfig> {
        self.state.as_ref()
    }

    /// The `[passwords]` section's policy: argon2id parameters for new hashes and
    /// `[passwords.max_cost]` limits on stored ones.
    pub fn password_policy(&self) -> Result<PasswordPolicy, ConfigError> {
        let p = &self.raw.passwords;
        PasswordPolicy::argon2id(p.argon2_m_cost_kib, p.argon2_t_cost, p.argon2_p_cost)
            .map_err(|e| ConfigError::invalid("passwords", e.to_string()))?
            .with_limits(p.max_cost)
            .map_err(|e| ConfigError::invalid("passwords.max_cost", e.to_string()))
    }

    /// Builds the chain.
    pub fn build(&self, stores: Stores) -> Result<AuthChain, ConfigError> {
        self.chain_builder(stores)?.build().map_err(|e| self.located(e))
    }

    /// A builder holding every configured module, for hosts that add their own
    /// modules (appended after the configured ones) before building.
    pub fn chain_builder(&self, stores: Stores) -> Result<ChainBuilder, ConfigError> {
        self.configured_builder(stores).map_err(|e| self.located(e))
    }

    fn configured_builder(&self, stores: Stores) -> Result<ChainBuilder, ConfigError> {
        let raw = &self.raw;
        let names = LoginNames {
            case_insensitive: raw.accounts.case_insensitive,
            attribute: raw.accounts.login_attribute,
        };
        let passwords = Arc::new(self.password_policy()?);
        let proxies = parse_cidrs("trusted_proxies", &raw.trusted_proxies)?;
        let mut builder = AuthChain::builder(stores.users.clone())
            .login_names(names)
            .client_ip_from(ProxyTrust::new(proxies.clone()).with_forwarded_header(raw.forwarded_header));
        if let Some(idle) = raw.accounts.expire_inactive_after {
            if idle.0.is_zero() {
                return Err(ConfigError::invalid(
                    "accounts.expire_inactive_after",
                    "must be longer than zero",
                ));
            }
            builder = builder.expire_inactive_after(idle.0);
        }
        if let Some(policy) = raw.throttle {
            let attempts = stores
                .attempts
                .clone()
                .unwrap_or_else(|| Arc::new(MemoryAttemptStore::new()));
            builder = builder.throttle(policy, attempts);
        }
        for module in &self.modules {
            let id = &module.id;
            let built: Arc<dyn Authenticator> = match &stores.shared.inject(&module.kind) {
                ModuleType::Local(cfg) => Arc::new(
                    LocalModule::builder(id.clone(), stores.users.clone())
                        .passwords(passwords.clone())
                        .login_names(names)
                        .settings(cfg.clone())
                        .build(),
                ),
                // Without its own `trusted_proxies` it believes the chain's.
                ModuleType::Header(cfg) => Arc::new(
                    HeaderModule::new(id.clone(), cfg.clone())
                        .map_err(|e| e.under(&format!("modules.{id}")))?,
                ),
                #[cfg(feature = "ldap")]
                ModuleType::Ldap(settings) => Arc::new(
                    crate::modules::LdapModule::new(id.clone(), (**settings).clone())
                        .map_err(|e| e.under(&format!("modules.{id}")))?,
                ),
                #[cfg(feature = "oidc")]
                ModuleType::Oidc(s) => Arc::new(
                    crate::modules::OidcModule::new(id.clone(), (**s).clone())
                        .map_err(|e| e.rekey(|k| format!("modules.{id}.{k}")))?,
                ),
                #[cfg(feature = "oauth2")]
                ModuleType::OAuth2(s) => Arc::new(
                    crate::modules::OAuth2Module::new(id.clone(), (**s).clone())
                        .map_err(|e| e.rekey(|k| format!("modules.{id}.{k}")))?,
                ),
                #[cfg(feature = "cas")]
                ModuleType::Cas(s) => Arc::new(
                    crate::modules::CasModule::new(id.clone(), (**s).clone())
                        .map_err(|e| e.rekey(|k| format!("modules.{id}.{k}")))?,
                ),
                #[cfg(feature = "saml")]
                ModuleType::Saml(s) => Arc::new(
                    crate::modules::SamlModule::new(id.clone(), (**s).clone())
                        .map_err(|e| e.rekey(|k| format!("modules.{id}.{k}")))?,
                ),
                // Without its own `trusted_proxies` it believes the chain's.
                #[cfg(feature = "signed-header")]
                ModuleType::SignedHeader(s) => Arc::new(
                    crate::modules::SignedHeaderModule::new(id.clone(), (**s).clone())
                        .map_err(|e| e.rekey(|k| format!("modules.{id}.{k}")))?,
                ),
                #[cfg(feature = "key-login")]
                ModuleType::KeyLogin(s) => Arc::new(
                    crate::modules::KeyLoginModule::new(id.clone(), stores.users.clone(), (**s).clone())
                        .map_err(|e| e.under(&format!("modules.{id}")))?
                        .login_names(names),
                ),
            };
            builder = builder.shared_module(built, settings(id, &module.common)?);
        }
        Ok(builder)
    }
}

fn parse_module(id: &str, table: &toml::Table) -> Result<ModuleConfig, ConfigError> {
    let key = format!("modules.{id}");
    let common_keys = crate::settings::field_names::<CommonConfig>();
    let mut common = toml::Table::new();
    let mut specific = toml::Table::new();
    for (k, v) in table {
        if common_keys.contains(&k.as_str()) {
            common.insert(k.clone(), v.clone());
        } else {
            specific.insert(k.clone(), v.clone());
        }
    }
    // The common keys and the type's own keys are checked both, so that an error
    // in each is reported.
    let common: Result<CommonConfig, ConfigError> =
        crate::settings::deserialize(toml::Value::Table(common)).map_err(|e| e.under(&key));
    let (common, kind_name) = match common {
        Ok(common) => {
            let kind = common.kind.clone();
            (Ok(common), kind)
        }
        Err(error) => match table.get("type").and_then(toml::Value::as_str) {
            Some(kind) => (Err(error), kind.to_owned()),
            None => return Err(error),
        },
    };
    let kind = module_type(&key, &kind_name, specific);
    match (common, kind) {
        (Ok(common), Ok(kind)) => Ok(ModuleConfig {
            id: id.to_owned(),
            common,
            kind,
        }),
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => Err(error),
        (Err(common), Err(kind)) => Err(ConfigError::Several(vec![common, kind])),
    }
}

/// The type-specific settings of the module table `key`.
fn module_type(key: &str, kind: &str, specific: toml::Table) -> Result<ModuleType, ConfigError> {
    let key = key.to_owned();
    Ok(match kind {
        "local" => ModuleType::Local(LocalSettings::from_table(specific).map_err(|e| e.under(&key))?),
        "header" => ModuleType::Header(HeaderSettings::from_table(specific).map_err(|e| e.under(&key))?),
        #[cfg(feature = "ldap")]
        "ldap" => ModuleType::Ldap(Box::new(
            crate::modules::LdapSettings::from_table(specific).map_err(|e| e.under(&key))?,
        )),
        #[cfg(feature = "oidc")]
        "oidc" => ModuleType::Oidc(Box::new(
            <crate::modules::OidcSettings as crate::settings::ModuleSettingsType>::from_table(specific)
                .map_err(|e| e.rekey(|k| format!("{key}.{k}")))?,
        )),
        #[cfg(feature = "oauth2")]
        "oauth2" => ModuleType::OAuth2(Box::new(
            <crate::modules::OAuth2Settings as crate::settings::ModuleSettingsType>::from_table(specific)
                .map_err(|e| e.rekey(|k| format!("{key}.{k}")))?,
        )),
        #[cfg(feature = "cas")]
        "cas" => ModuleType::Cas(Box::new(
            <crate::modules::CasSettings as crate::settings::ModuleSettingsType>::from_table(specific)
                .map_err(|e| e.rekey(|k| format!("{key}.{k}")))?,
        )),
        #[cfg(feature = "saml")]
        "saml" => ModuleType::Saml(Box::new(
            <crate::modules::SamlSettings as crate::settings::ModuleSettingsType>::from_table(specific)
                .map_err(|e| e.rekey(|k| format!("{key}.{k}")))?,
        )),
        #[cfg(feature = "signed-header")]
        "signed_header" => ModuleType::SignedHeader(Box::new(
            <crate::modules::SignedHeaderSettings as crate::settings::ModuleSettingsType>::from_table(
                specific,
            )
            .map_err(|e| e.rekey(|k| format!("{key}.{k}")))?,
        )),
        #[cfg(not(feature = "signed-header"))]
        "signed_header" => {
            return Err(ConfigError::invalid(
                format!("{key}.type"),
                "module type `signed_header` needs the crate feature `signed-header`",
            ));
        }
        #[cfg(feature = "key-login")]
        "key_login" => ModuleType::KeyLogin(Box::new(
            <crate::modules::KeyLoginSettings as crate::settings::ModuleSettingsType>::from_table(specific)
                .map_err(|e| e.under(&key))?,
        )),
        #[cfg(not(feature = "key-login"))]
        "key_login" => {
            return Err(ConfigError::invalid(
                format!("{key}.type"),
                "module type `key_login` needs the crate feature `key-login`",
            ));
        }
        feature if ["ldap", "oidc", "oauth2", "saml", "cas"].contains(&feature) => {
            return Err(ConfigError::invalid(
                format!("{key}.type"),
                format!("module type `{feature}` needs the crate feature `{feature}`"),
            ));
        }
        other => {
            return Err(ConfigError::invalid(
                format!("{key}.type"),
                format!(
                    "unknown module type `{other}` (known: local, header, signed_header, ldap, oidc, oauth2, saml, cas, key_login)"
                ),
            ));
        }
    })
}

fn role_mapping(id: &str, common: &CommonConfig) -> Result<RoleMapping, ConfigError> {
    RoleMapping::builder()
        .case_insensitive(common.role_mapping.case_insensitive)
        .match_dn(common.role_mapping.match_dn)
        .rules(common.role_mapping.rules.iter().cloned())
        .build()
        .map_err(|e| e.under(&format!("modules.{id}")))
}

fn settings(id: &str, common: &CommonConfig) -> Result<ModuleSettings, ConfigError> {
    let mapping = role_mapping(id, common)?;
    let mut settings = ModuleSettings::new()
        .enabled(common.enabled)
        .hidden(common.hidden)
        .on_reject(common.on_reject)
        .on_unavailable(common.on_unavailable)
        .provisioning(common.provisioning)
        .roles(mapping)
        .allowed_groups(common.allowed_groups.iter().cloned())
        .allowed_email_domains(common.allowed_email_domains.iter().cloned())
        .required_roles(common.required_roles.iter().cloned());
    if let Some(text) = &common.description {
        settings = settings.description(text.clone());
    }
    Ok(settings)
}

fn parse_cidrs(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, text)| parse_cidr(&format!("{key}[{i}]"), text))
        .collect()
}

/// `10.0.0.0/8`, `::1/128`, or a bare address meaning just that host.
fn parse_cidr(key: &str, text: &str) -> Result<IpNet, ConfigError> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| ConfigError::invalid(key, format!("{text:?} is not an IP address or CIDR network")))
}
