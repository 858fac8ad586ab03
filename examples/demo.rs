//! The authchain demo: a small web service on 127.0.0.1 that signs people in with
//! a chain built from `examples/config/demo.toml`:
//!
//! * `proxy` — identity headers (`remote-user`, `remote-groups`), believed only
//!   from the pretend reverse proxy at 127.0.0.2;
//! * `local` — username and password; an `admin` account is created on the first
//!   start, and its initial password printed then (it keeps working until `--reset-admin-password`).
//!
//! Accounts live in an SQLite file, `<data dir>/authchain.sqlite3` (default data
//! dir: `.demo-data` in the working directory), so they survive restarts; delete the
//! directory to start over.
//!
//! ```text
//! cargo run --example demo                      # http://127.0.0.1:3000
//! cargo run --example demo -- --addr 127.0.0.1:0 --data-dir /tmp/demo
//! cargo run --example demo -- --reset-admin-password
//! curl --interface 127.0.0.2 -H 'remote-user: alice' -H 'remote-groups: admins' \
//!      -c jar -L http://127.0.0.1:3000/login/proxy
//! ```
//! No external server is needed. With `--config FILE` the demo runs another
//! chain instead (and uses that file's `[store]`, if it has one); redirect modules
//! (OIDC, OAuth2, CAS; build with `--features oidc,oauth2,cas`) get a button, and
//! their redirect URI (a CAS module's `service_url`) is
//! `http://<addr>/callback/<module id>`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use authchain::account::{NewAccount, PasswordPolicy, UserStore};
use authchain::config::{Config, StoreConfig};
use authchain::{
    AuthChain, AuthError, AuthRequest, Credentials, LoginResult, ModuleKind, Principal, StartLogin,
};
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

const CONFIG: &str = include_str!("config/demo.toml");
const SESSION_COOKIE: &str = "demo_session";

#[derive(Clone)]
struct App {
    chain: Arc<AuthChain>,
    sessions: Arc<Mutex<HashMap<String, Principal>>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;

    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::from_toml(CONFIG)?,
    };
    let store = match config.store() {
        Some(configured) => configured.clone(),
        None => StoreConfig::sqlite(args.data_dir.join("authchain.sqlite3")),
    };
    let stores = store.open().await?;
    match &store {
        StoreConfig::Sqlite { path, .. } => println!("accounts in {}", path.display()),
        _ => println!("accounts in memory"),
    }
    seed_admin(stores.users().as_ref(), args.reset_admin_password).await?;
    let chain = config.build(stores)?;
    let app = App {
        chain: Arc::new(chain),
        sessions: Arc::default(),
    };

    let router = Router::new()
        .route("/", get(login_page))
        .route("/login", post(password_login))
        .route("/login/{module}", get(module_login))
        .route("/callback/{module}", get(callback))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let bound = listener.local_addr()?;
    println!(
        "sign in via the proxy module: curl --interface 127.0.0.2 -H 'remote-user: alice' -H 'remote-groups: admins' http://{bound}/login/proxy"
    );
    // Last: tests wait for this line.
    println!("authchain demo listening on http://{bound}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Creates the `admin` account on the first start (or gives it a new password when
/// asked) and prints the password; later starts keep it.
async fn seed_admin(store: &dyn UserStore, reset: bool) -> Result<(), Box<dyn std::error::Error>> {
    let existing = store.find_by_login("admin", true).await?;
    if existing.is_some() && !reset {
        println!(
            "admin account exists (its password was printed when it was created; --reset-admin-password sets a new one)"
        );
        return Ok(());
    }
    let password = random_token(16);
    let hash = PasswordPolicy::owasp().hash(&password)?;
    match existing {
        Some(admin) => store.set_password_hash(&admin.id, &hash).await?,
        None => {
            store
                .create_account(NewAccount::new("admin").password_hash(hash).role("admin"))
                .await?;
        }
    }
    println!("admin initial password: {password}");
    Ok(())
}

struct Args {
    addr: SocketAddr,
    config: Option<String>,
    data_dir: PathBuf,
    reset_admin_password: bool,
}

fn parse_args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr = std::env::var("AUTHCHAIN_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let mut config = None;
    let mut data_dir = PathBuf::from(".demo-data");
    let mut reset_admin_password = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?,
            "--config" => config = Some(args.next().ok_or("--config needs a file")?),
            "--data-dir" => data_dir = args.next().ok_or("--data-dir needs a directory")?.into(),
            "--reset-admin-password" => reset_admin_password = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (try --addr 127.0.0.1:3000 --config FILE --data-dir DIR --reset-admin-password)"
                )
                .into());
            }
        }
    }
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err("the demo listens on loopback addresses only".into());
    }
    Ok(Args {
        addr,
        config,
        data_dir,
        reset_admin_password,
    })
}

async fn login_page(State(app): State<App>) -> Html<String> {
    let mut body = String::from("<!doctype html><title>authchain demo</title><h1>Sign in</h1>");
    for module in app.chain.visible_modules() {
        let id = escape(&module.id);
        let label = escape(&module.description);
        match module.kind {
            ModuleKind::Password => body.push_str(&format!(
                "<form method=post action=/login><input type=hidden name=module value=\"{id}\">\
                 <input name=login placeholder=login> <input name=password type=password placeholder=password> \
                 <button>{label}</button></form>"
            )),
            _ => body.push_str(&format!("<p><a href=\"/login/{id}\">{label}</a></p>")),
        }
    }
    body.push_str("<p><a href=/me>/me</a></p>");
    Html(body)
}

#[derive(serde::Deserialize)]
struct PasswordForm {
    module: Option<String>,
    login: String,
    password: String,
}

async fn password_login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let mut request = AuthRequest::new(peer)
        .with_headers(headers)
        .with_password(form.login, form.password);
    request.module = form.module.filter(|m| !m.is_empty());
    finish(&app, app.chain.login(&request).await)
}

async fn module_login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(module): Path<String>,
    headers: HeaderMap,
) -> Response {
    let redirects = app
        .chain
        .visible_modules()
        .iter()
        .any(|m| m.id == module && m.kind == ModuleKind::Redirect);
    let mut request = AuthRequest::new(peer).with_headers(headers).select(module);
    if redirects {
        request.credentials = Credentials::Start(StartLogin::new().return_to("/me"));
    }
    finish(&app, app.chain.login(&request).await)
}

async fn callback(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(module): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let flow_cookie = cookie(&headers, &authchain::flow::flow_cookie_name(&module));
    let mut request = AuthRequest::new(peer)
        .with_headers(headers)
        .with_credentials(Credentials::Callback { params })
        .select(module);
    request.flow_cookie = flow_cookie;
    finish(&app, app.chain.login(&request).await)
}

fn finish(app: &App, result: Result<LoginResult, AuthError>) -> Response {
    match result {
        Ok(LoginResult::Authenticated(principal)) => {
            let token = random_token(32);
            let mut sessions = app.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.insert(token.clone(), principal);
            let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax");
            ([(header::SET_COOKIE, cookie)], Redirect::to("/me")).into_response()
        }
        Ok(LoginResult::Redirect(redirect)) => {
            let mut response = Redirect::to(&redirect.location).into_response();
            if let Some(value) = redirect
                .flow_cookie
                .and_then(|flow| flow.set_cookie().parse().ok())
            {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(_) => AuthError::Misconfigured("unexpected login result".into()).into_response(),
        // Status code, JSON body and Retry-After come from the `axum` feature; outage
        // details stay in the audit log.
        Err(err) => err.into_response(),
    }
}

fn cookie(headers: &HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_owned())
}

fn session(app: &App, headers: &HeaderMap) -> Option<(String, Principal)> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let sessions = app.sessions.lock().unwrap_or_else(|p| p.into_inner());
    sessions.get(&token).map(|p| (token.clone(), p.clone()))
}

async fn me(State(app): State<App>, headers: HeaderMap) -> Response {
    match session(&app, &headers) {
        Some((_, principal)) => Json(serde_json::json!({
            "account_id": principal.account_id,
            "login": principal.login,
            "email": principal.email,
            "roles": principal.roles,
            "module": principal.module,
            "client_ip": principal.client_ip,
            "groups": principal.identity.groups,
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": "not signed in" })),
        )
            .into_response(),
    }
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some((token, _)) = session(&app, &headers) {
        app.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
    }
    Redirect::to("/").into_response()
}

/// `len` characters from an unambiguous alphabet, without modulo bias.
fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut raw = [0u8; 64];
        getrandom::fill(&mut raw).expect("the system random generator");
        out.extend(
            raw.iter()
                .filter(|b| (**b as usize) < limit)
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .take(len - out.len()),
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
