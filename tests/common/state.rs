//! Shared-state servers for the tests: one PostgreSQL and one Redis per test
//! binary (started on first use by tests/peers/postgres.sh and redis.sh, stopped
//! when the binary exits), and fresh stores on them.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

#[path = "peer.rs"]
pub mod peer;

pub use peer::Peer;

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The binary's PostgreSQL server.
pub fn postgres() -> &'static Peer {
    static SERVER: OnceLock<Peer> = OnceLock::new();
    SERVER.get_or_init(|| Peer::start("postgres", 3, "PostgreSQL: apt-get install postgresql"))
}

/// The binary's Redis server.
pub fn redis() -> &'static Peer {
    static SERVER: OnceLock<Peer> = OnceLock::new();
    SERVER.get_or_init(|| Peer::start("redis", 3, "Redis: apt-get install redis-server"))
}

/// The URL of a new, empty database on the binary's PostgreSQL server.
#[cfg(feature = "postgres")]
pub async fn fresh_pg_url() -> String {
    use sqlx::Connection;
    let server = postgres();
    let name = format!("t{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(&server.var("PG_URL"))
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("drop an old test database");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.ok();
    format!(
        "postgres://{}:{}@127.0.0.1:{}/{name}",
        server.var("PG_USER"),
        server.var("PG_PASSWORD"),
        server.var("PG_PORT")
    )
}

/// A PostgreSQL store on a new, empty database.
#[cfg(feature = "postgres")]
pub async fn pg_store() -> std::sync::Arc<authchain::account::PgStore> {
    let url = fresh_pg_url().await;
    std::sync::Arc::new(
        authchain::account::PgStore::connect(&url, authchain::account::PgOptions::default())
            .await
            .expect("connect the PostgreSQL store"),
    )
}

/// A key prefix no other test of the binary uses, for Redis stores sharing the server.
pub fn fresh_redis_prefix() -> String {
    format!("t{}:", NEXT_DB.fetch_add(1, Ordering::Relaxed))
}

/// A Redis state store on the binary's Redis server, under a fresh key prefix.
#[cfg(feature = "redis")]
pub async fn redis_state() -> std::sync::Arc<authchain::state::RedisState> {
    redis_state_with(authchain::state::RedisOptions::default()).await
}

/// [`redis_state`] with these options (the prefix is replaced by a fresh one).
#[cfg(feature = "redis")]
pub async fn redis_state_with(
    options: authchain::state::RedisOptions,
) -> std::sync::Arc<authchain::state::RedisState> {
    std::sync::Arc::new(
        authchain::state::RedisState::connect(
            &redis().var("REDIS_URL"),
            options.prefix(fresh_redis_prefix()),
        )
        .await
        .expect("connect to the test Redis server"),
    )
}
