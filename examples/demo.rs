//! The authchain demo: sign-in for a small axum service on 127.0.0.1 with the chain of
//! `examples/config/demo.toml` (a trusted proxy at 127.0.0.2, local passwords; an `admin`
//! account is made on the first start and its password printed), accounts in
//! `<--data-dir>/authchain.sqlite3`. `--config FILE` runs another chain;
//! `bash examples/demo-with-peers.sh` runs it against the test suite's OIDC, SAML and CAS servers.
//!
//! ```text
//! cargo run --example demo -- [--addr 127.0.0.1:3000] [--data-dir .demo-data] [--reset-admin-password]
//! ```
use std::{net::SocketAddr, sync::Arc};

use authchain::account::{NewAccount, PasswordPolicy, UserStore};
use authchain::axum::{CurrentUser, WebAuth, WebSettings, require_login};
use authchain::config::{Config, StoreConfig};
use axum::response::Redirect;
use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = arg("--addr").unwrap_or_else(|| "127.0.0.1:3000".into()).parse()?;
    if !addr.ip().is_loopback() {
        return Err("the demo listens on loopback addresses only".into());
    }
    let config = match arg("--config") {
        Some(path) => Config::from_file(&path)?,
        None => Config::from_toml(include_str!("config/demo.toml"))?,
    };
    let dir = arg("--data-dir").unwrap_or_else(|| ".demo-data".into());
    let store = config.store().cloned();
    let stores = store
        .unwrap_or(StoreConfig::sqlite(format!("{dir}/authchain.sqlite3")))
        .open()
        .await?;
    println!("{}", seed_admin(stores.users().as_ref()).await?);

    let mut settings = WebSettings::default();
    settings.insecure_http_cookies = true; // plain http, on loopback only
    let web = WebAuth::with_settings(Arc::new(config.build(stores)?), settings);
    let app = Router::new()
        .route("/me", get(|user: CurrentUser| async move { Json(user) }))
        .layer(require_login())
        .route("/", get(|| async { Redirect::to("/auth/login") }));
    let app = web.mount(app, tower_sessions::MemoryStore::default());

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("authchain demo listening on http://{}", listener.local_addr()?); // tests wait for it
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

/// The value after `name` on the command line.
fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// Creates `admin` on the first start (or resets its password); says its password.
async fn seed_admin(store: &dyn UserStore) -> Result<String, Box<dyn std::error::Error>> {
    let existing = store.find_by_login("admin", true).await?;
    if existing.is_some() && !std::env::args().any(|a| a == "--reset-admin-password") {
        return Ok("admin exists (--reset-admin-password sets a new password)".into());
    }
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw)?;
    let password: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let hash = PasswordPolicy::owasp().hash(&password)?;
    match existing {
        Some(admin) => store.set_password_hash(&admin.id, &hash).await?,
        None => drop(
            store
                .create_account(NewAccount::new("admin").password_hash(hash).role("admin"))
                .await?,
        ),
    }
    Ok(format!("admin initial password: {password}"))
}
