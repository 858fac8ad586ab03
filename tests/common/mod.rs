//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use authchain::account::{MemoryUserStore, NewAccount, PasswordPolicy, SqliteStore, UserStore};
use authchain::modules::LocalModule;
use authchain::{
    AuthError, AuthRequest, Authenticator, Credentials, Identity, LoginResult, Outcome, Principal,
};

pub fn peer(addr: &str) -> SocketAddr {
    format!("{addr}:40000").parse().expect("test address")
}

/// A module that always gives the same answer and counts how often it was asked:
/// for exercising chain policy (failure injection), not for standing in for a peer.
pub struct Scripted {
    id: String,
    answer: Answer,
    pub calls: Arc<AtomicUsize>,
}

#[derive(Clone)]
pub enum Answer {
    Abstain,
    Reject,
    Unavailable,
    Misconfigured,
    Identity { subject: String, groups: Vec<String> },
}

impl Scripted {
    pub fn new(id: &str, answer: Answer) -> Self {
        Scripted {
            id: id.to_owned(),
            answer,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn user(id: &str, subject: &str, groups: &[&str]) -> Self {
        Scripted::new(
            id,
            Answer::Identity {
                subject: subject.to_owned(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
        )
    }

    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }
}

pub fn calls(counter: &Arc<AtomicUsize>) -> usize {
    counter.load(Ordering::SeqCst)
}

#[async_trait]
impl Authenticator for Scripted {
    fn id(&self) -> &str {
        &self.id
    }

    async fn authenticate(&self, _request: &AuthRequest) -> Result<Outcome, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.answer {
            Answer::Abstain => Ok(Outcome::Abstain),
            Answer::Reject => Err(AuthError::InvalidCredentials),
            Answer::Unavailable => Err(AuthError::unavailable(
                self.id.clone(),
                authchain::OtherError::msg("backend down (scripted)"),
            )),
            Answer::Misconfigured => Err(AuthError::Misconfigured(format!(
                "module `{}`: misconfigured (scripted)",
                self.id
            ))),
            Answer::Identity { subject, groups } => Ok(Outcome::Authenticated(
                Identity::new(self.id.clone(), subject.clone(), subject.clone()).with_groups(groups.clone()),
            )),
        }
    }
}

pub fn passwords() -> Arc<PasswordPolicy> {
    Arc::new(PasswordPolicy::fast_insecure_for_tests())
}

/// A store with a local admin `root` / `break-glass`.
pub async fn store_with_admin() -> Arc<MemoryUserStore> {
    let store = Arc::new(MemoryUserStore::new());
    let hash = passwords().hash("break-glass").expect("hash");
    store
        .create_account(NewAccount::new("root").password_hash(hash).role("admin"))
        .await
        .expect("admin account");
    store
}

pub fn local(store: Arc<dyn UserStore>) -> LocalModule {
    LocalModule::builder("local", store)
        .passwords(passwords())
        .build()
}

pub fn password_request(login: &str, password: &str) -> AuthRequest {
    AuthRequest::new(peer("192.0.2.10")).with_password(login, password)
}

pub fn principal(result: Result<LoginResult, AuthError>) -> Principal {
    match result {
        Ok(LoginResult::Authenticated(principal)) => *principal,
        other => panic!("expected a principal, got {other:?}"),
    }
}

/// A user store the shared store tests run against: in memory, or SQLite.
#[async_trait]
pub trait TestStore: UserStore + 'static {
    /// Number of accounts.
    async fn count(&self) -> u64;

    /// Whether the store refuses this name (with `StoreError::InvalidValue`)
    /// instead of storing it: PostgreSQL holds no NUL and bounds indexed names.
    fn refuses(_name: &str) -> bool {
        false
    }
}

#[async_trait]
impl TestStore for MemoryUserStore {
    async fn count(&self) -> u64 {
        self.len() as u64
    }
}

#[async_trait]
impl TestStore for SqliteStore {
    async fn count(&self) -> u64 {
        self.account_count().await.expect("count accounts")
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl TestStore for authchain::account::PgStore {
    async fn count(&self) -> u64 {
        self.account_count().await.expect("count accounts")
    }

    fn refuses(name: &str) -> bool {
        name.contains('\0') || name.len() > authchain::account::MAX_PG_NAME_BYTES
    }
}

/// A path for a fresh SQLite database file under the target directory, named after
/// `name` (old files of that name, with their WAL, are removed).
pub fn fresh_db_path(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sqlite");
    std::fs::create_dir_all(&dir).expect("test database directory");
    let file = name.replace("::", "-");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{file}.sqlite3{suffix}")));
    }
    dir.join(format!("{file}.sqlite3"))
}

/// An SQLite store in a fresh file.
pub async fn sqlite_store(name: &str) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(fresh_db_path(name))
            .await
            .expect("open the SQLite store"),
    )
}

/// Runs each listed `async fn name(store: Arc<impl TestStore>)` once against a
/// `MemoryUserStore` (module `memory`), once against a fresh `SqliteStore` file
/// (module `sqlite`) and, with the feature `postgres`, once against a fresh
/// database on the binary's PostgreSQL server (module `postgres`).
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(::std::sync::Arc::new(::authchain::account::MemoryUserStore::new())).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let name = concat!(module_path!(), "::", stringify!($name));
                    super::$name($crate::common::sqlite_store(name).await).await
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::state::pg_store().await).await
                }
            )*
        }
    };
}

/// `Start` at the redirect module `module`.
pub fn start_request(module: &str, return_to: Option<&str>) -> AuthRequest {
    AuthRequest::new(peer("192.0.2.20"))
        .with_credentials(Credentials::Start(return_to.map(str::to_owned).into()))
        .select(module)
}

/// A redirect callback with these parameters and flow cookie.
pub fn callback_request(
    params: std::collections::BTreeMap<String, String>,
    cookie: Option<&str>,
) -> AuthRequest {
    let mut request = AuthRequest::new(peer("192.0.2.20")).with_credentials(Credentials::Callback { params });
    request.flow_cookie = cookie.map(str::to_owned);
    request
}
