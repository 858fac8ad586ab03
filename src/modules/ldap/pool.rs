//! Connections: failover over the configured URLs, TLS settings, timeouts, and a
//! small bounded pool of idle handles.
//!
//! A pooled connection is checked out exclusively (a `Semaphore` bounds how many
//! exist, a `Vec` holds the idle ones). A checkout that is dropped without
//! [`Pooled::release`] is discarded: any error path closes the connection, so a
//! connection in an unknown state (a timed-out operation, a half-read answer) is
//! never reused.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::error::{LdapError, LdapOperation, UrlFailure};
use crate::audit::AUDIT_TARGET;

/// Where and how to connect; shared by the module's pools.
pub(crate) struct Connector {
    pub(crate) module: String,
    pub(crate) urls: Vec<String>,
    pub(crate) settings: LdapConnSettings,
    pub(crate) connect_timeout: Duration,
    /// The URL index new connections try first: the last one that worked.
    preferred: AtomicUsize,
}

impl Connector {
    pub(crate) fn new(
        module: String,
        urls: Vec<String>,
        settings: LdapConnSettings,
        connect_timeout: Duration,
    ) -> Self {
        Connector {
            module,
            urls,
            settings,
            connect_timeout,
            preferred: AtomicUsize::new(0),
        }
    }

    /// The URLs in the order to try: the configured order, starting at the last one
    /// that worked (so a dead first server costs one failed connect, not one per login).
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.urls.len();
        let start = self.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| (start + i) % n)
    }

    /// Marks URL `index` as failing: the next connection starts at the one after it.
    pub(crate) fn demote(&self, index: usize) {
        let n = self.urls.len().max(1);
        let _ = self
            .preferred
            .compare_exchange(index, (index + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Opens a connection to the first URL that answers (TCP, then TLS or StartTLS).
    /// Fails with [`LdapError::Unreachable`], listing every URL's failure.
    pub(crate) async fn connect(&self) -> Result<Conn, LdapError> {
        let mut failures = Vec::new();
        for index in self.order() {
            match self.connect_to(index).await {
                Ok(conn) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(conn);
                }
                Err(why) => {
                    warn!(target: AUDIT_TARGET, module = %self.module, url = %self.urls[index],
                        error = %why, "LDAP server unreachable");
                    failures.push(UrlFailure::new(self.urls[index].clone(), why));
                }
            }
        }
        Err(LdapError::Unreachable(failures))
    }

    /// Connects to URL `index`: [`LdapError::Timeout`] or [`LdapError::Connect`].
    pub(crate) async fn connect_to(&self, index: usize) -> Result<Conn, LdapError> {
        let url = &self.urls[index];
        let settings = self.settings.clone();
        let opened =
            tokio::time::timeout(self.connect_timeout, LdapConnAsync::with_settings(settings, url)).await;
        crate::metrics::ldap_connection(&self.module, matches!(opened, Ok(Ok(_))));
        match opened {
            Err(_) => Err(LdapError::Timeout {
                operation: LdapOperation::Connect,
                after: self.connect_timeout,
            }),
            Ok(Err(err)) => Err(LdapError::Connect(super::connection::describe(&err))),
            Ok(Ok((conn, ldap))) => {
                let module = self.module.clone();
                let driver = tokio::spawn(async move {
                    if let Err(err) = conn.drive().await {
                        debug!(module = %module, error = %err, "LDAP connection closed");
                    }
                });
                Ok(Conn {
                    ldap,
                    driver,
                    url: index,
                })
            }
        }
    }
}

/// One open connection. Dropping it stops its driver task and closes the socket.
pub(crate) struct Conn {
    pub(crate) ldap: Ldap,
    driver: JoinHandle<()>,
    /// Index of the URL it is connected to.
    pub(crate) url: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A bounded set of idle connections of one kind (service-account or user-bind).
pub(crate) struct Pool {
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    wait: Duration,
}

/// A connection checked out of a [`Pool`].
pub(crate) struct Pooled<'p> {
    pub(crate) conn: Conn,
    /// Whether it came from the idle list (it may have gone stale since).
    pub(crate) reused: bool,
    pool: &'p Pool,
    _permit: SemaphorePermit<'p>,
}

impl Pooled<'_> {
    /// Puts the connection back for the next login.
    pub(crate) fn release(self) {
        if let Ok(mut idle) = self.pool.idle.lock() {
            idle.push(self.conn);
        }
    }
}

impl Pool {
    /// A pool of at most `size` connections; a checkout waits at most `wait` for one.
    pub(crate) fn new(size: usize, wait: Duration) -> Self {
        Pool {
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
            wait,
        }
    }

    /// An idle connection, or `None` with a permit to open a new one.
    pub(crate) async fn checkout(&self) -> Result<(Option<Conn>, SemaphorePermit<'_>), LdapError> {
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| LdapError::PoolExhausted)?
            .map_err(|_| LdapError::PoolExhausted)?;
        let mut idle = self.idle.lock().map_err(|_| LdapError::PoolExhausted)?;
        while let Some(mut conn) = idle.pop() {
            if !conn.ldap.is_closed() {
                return Ok((Some(conn), permit));
            }
        }
        Ok((None, permit))
    }

    /// Wraps a connection and its permit.
    pub(crate) fn pooled<'p>(&'p self, conn: Conn, reused: bool, permit: SemaphorePermit<'p>) -> Pooled<'p> {
        Pooled {
            conn,
            reused,
            pool: self,
            _permit: permit,
        }
    }

    /// Drops every idle connection (tests, and after a configuration change).
    pub(crate) fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// How many idle connections the pool holds.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().map(|idle| idle.len()).unwrap_or(0)
    }
}

/// The module's connector and its two pools.
pub(crate) struct Pools {
    pub(crate) connector: Connector,
    pub(crate) service: Pool,
    pub(crate) user: Pool,
}
