//! The browser half of sign-in for axum services (feature `axum`): routes, sessions,
//! extractors, guards, CSRF checks, error pages and logout. The guide is
//! [`manual::web`](crate::manual::web).
//!
//! One call mounts everything under a prefix (default `/auth`):
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET login` | the visible modules as JSON (`Accept: application/json`), else a small HTML page |
//! | `POST login` | a password login (form or JSON: `login`, `password`, optional `module`, `return_to`) |
//! | `GET login/{module}` | starts a redirect login, or runs an ambient module (proxy headers) |
//! | `GET`/`POST callback/{module}` | where identity providers send the browser back (SAML ACS: the POST; SAML single logout: a GET with `SAMLRequest` / `SAMLResponse`) |
//! | `GET metadata/{module}` | a SAML module's SP metadata |
//! | `POST logout` | ends the session (and, when configured, goes on to the provider's logout) |
//! | `POST backchannel-logout/{module}` | OIDC back-channel logout: the provider's logout token ends the sessions it names |
//!
//! Every redirect module's redirect URI (OIDC / OAuth2 `redirect_uri`, SAML ACS URL,
//! CAS `service_url`) is `<public origin><prefix>/callback/<module id>`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use authchain::axum::{CurrentUser, WebAuth, require_login};
//! use axum::{Router, routing::get};
//! use tower_sessions::MemoryStore;
//!
//! # async fn run(chain: authchain::AuthChain) -> std::io::Result<()> {
//! let app = Router::new()
//!     .route("/me", get(|user: CurrentUser| async move { user.login }))
//!     .layer(require_login());
//! let app = WebAuth::new(Arc::new(chain)).mount(app, MemoryStore::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
//! # }
//! ```

mod csrf;
mod error;
mod extract;
mod guard;
mod index;
mod logout;
mod routes;
mod session;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ::axum::{Extension, Router};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

use crate::AuthChain;
use crate::flow::ReturnToPolicy;
use crate::secret::SecretString;

pub use error::{ErrorContext, ErrorRenderer, WebError};
pub use extract::CurrentUser;
pub use guard::{Guard, require_login, require_role};
pub use index::MAX_SESSIONS_PER_KEY;
pub use session::SessionEnds;

/// The settings of the web integration, with the defaults of [`WebSettings::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebSettings {
    /// Where the routes are mounted (`/auth`).
    pub prefix: String,
    /// Where a login without a return-to URL lands (`/`).
    pub after_login: String,
    /// Where a logout lands when no provider logout applies (`/`).
    pub after_logout: String,
    /// A session unused this long ends (30 minutes).
    pub idle_timeout: Duration,
    /// A session ends this long after its login, however busy (8 hours).
    pub absolute_timeout: Duration,
    /// How often a session's account is read again from the user store, so that a
    /// disabled account or changed roles take effect (1 minute; zero: every request).
    pub revalidate_every: Duration,
    /// The session cookie's name (`authchain_session`).
    pub cookie_name: String,
    /// Session cookies without `Secure`, for plain-http development only.
    pub insecure_http_cookies: bool,
    /// Which return-to URLs a password login and the guards accept (relative paths).
    pub return_to: ReturnToPolicy,
    /// Per module: where the browser goes after the local logout (the provider's
    /// logout URL, such as a CAS server's `/logout?service=...`).
    pub logout_redirects: BTreeMap<String, String>,
    /// Provider logout: when set, the logout of a user signed in through an OIDC
    /// module (whose provider publishes an `end_session_endpoint`) or a CAS module
    /// goes on to the provider's logout, which sends the browser back to this
    /// absolute URL (register it at the provider: OIDC `post_logout_redirect_uris`).
    pub provider_logout_return: Option<String>,
    /// The key the session index's record ids are derived with (see
    /// [`WebAuth::end_provider_sessions`]); default a random key per process.
    /// Replicas sharing one session store must share this key too, or a provider's
    /// logout received by one replica misses the sessions indexed by another.
    pub session_index_key: Option<SecretString>,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            prefix: "/auth".into(),
            after_login: "/".into(),
            after_logout: "/".into(),
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(8 * 3600),
            revalidate_every: Duration::from_secs(60),
            cookie_name: "authchain_session".into(),
            insecure_http_cookies: false,
            return_to: ReturnToPolicy::relative_only(),
            logout_redirects: BTreeMap::new(),
            provider_logout_return: None,
            session_index_key: None,
        }
    }
}

/// The web integration of one chain: cheap to clone, shared by every request (it is
/// put in the request extensions by [`WebAuth::mount`]).
#[derive(Clone)]
pub struct WebAuth {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    chain: Arc<AuthChain>,
    settings: WebSettings,
    renderer: ErrorRenderer,
    ends: SessionEnds,
    /// Set by [`WebAuth::mount`], over the session store (shared with the clones
    /// taken before it).
    index: Arc<std::sync::OnceLock<index::SessionIndex>>,
}

impl WebAuth {
    /// The integration of `chain` with the default settings.
    pub fn new(chain: Arc<AuthChain>) -> Self {
        WebAuth::with_settings(chain, WebSettings::default())
    }

    /// The integration of `chain` with `settings`.
    pub fn with_settings(chain: Arc<AuthChain>, mut settings: WebSettings) -> Self {
        settings.prefix = settings.prefix.trim_end_matches('/').to_owned();
        WebAuth {
            inner: Arc::new(Inner {
                chain,
                settings,
                renderer: Arc::new(error::default_renderer),
                ends: SessionEnds::default(),
                index: Arc::default(),
            }),
        }
    }

    /// Replaces how errors are shown (the default: browsers are sent back to the
    /// login page with a short code, API clients get the JSON body).
    pub fn error_renderer(self, renderer: ErrorRenderer) -> Self {
        let mut inner = (*self.inner).clone();
        inner.renderer = renderer;
        WebAuth {
            inner: Arc::new(inner),
        }
    }

    /// The chain.
    pub fn chain(&self) -> &Arc<AuthChain> {
        &self.inner.chain
    }

    /// The settings.
    pub fn settings(&self) -> &WebSettings {
        &self.inner.settings
    }

    /// Ended sessions: [`SessionEnds::end_account`] ends every session of an
    /// account (when an administrator disables it, say).
    pub fn session_ends(&self) -> &SessionEnds {
        &self.inner.ends
    }

    /// The login page's path (`/auth/login`).
    pub fn login_path(&self) -> String {
        format!("{}/login", self.inner.settings.prefix)
    }

    /// Mounts the routes under the prefix into `router` and wraps it all in the
    /// session layer over `store`. Call it last: routes added afterwards get no
    /// session. The server must be run with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (the chain needs the
    /// client's address).
    pub fn mount<S: SessionStore + Clone>(self, router: Router, store: S) -> Router {
        // Mounted twice: the first store keeps the index.
        let _ = self.inner.index.set(index::SessionIndex::new(
            Arc::new(store.clone()),
            index_key(self.inner.settings.session_index_key.as_ref()),
        ));
        let settings = &self.inner.settings;
        let idle = tower_sessions::cookie::time::Duration::seconds(
            i64::try_from(settings.idle_timeout.as_secs()).unwrap_or(i64::MAX),
        );
        let sessions = SessionManagerLayer::new(store)
            .with_name(settings.cookie_name.clone())
            .with_http_only(true)
            .with_secure(!settings.insecure_http_cookies)
            .with_same_site(SameSite::Lax)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(idle))
            // Saved on every request: the idle timeout counts from the last request.
            .with_always_save(true);
        let routes = routes::router();
        let router = if settings.prefix.is_empty() {
            router.merge(routes)
        } else {
            router.nest(&settings.prefix, routes)
        };
        router.layer(Extension(self)).layer(sessions)
    }
}

/// The session index key: the configured one (hashed to 32 bytes), else random.
fn index_key(configured: Option<&SecretString>) -> [u8; 32] {
    use sha2::Digest;
    match configured {
        Some(key) => sha2::Sha256::digest(key.expose().as_bytes()).into(),
        None => {
            let mut key = [0u8; 32];
            if getrandom::fill(&mut key).is_err() {
                // No system randomness (never seen in practice): a last-resort
                // per-process value; set `session_index_key` to rely on none.
                let seed = format!("{:p}{:?}", &key, std::time::SystemTime::now());
                key = sha2::Sha256::digest(seed.as_bytes()).into();
            }
            key
        }
    }
}
