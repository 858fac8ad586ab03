//! The guide: how the crate is built, every configuration key, security, the
//! stores, directory sync, and one page per authentication module.
//!
//! These modules hold no code, only documentation. Each page is a Markdown file
//! under `docs/` in the source (included here with `include_str!`), and its Rust
//! examples are compiled and run as doctests.
//!
//! * [`architecture`]: the trait, the login pipeline, nested chains, storage,
//!   errors, audit events, the folder map.
//! * [`configuration`]: every TOML key, with its type, default and meaning.
//! * [`web`] (feature `axum`): sign-in routes, sessions, guards, CSRF, error
//!   pages and logout for axum services.
//! * [`security`]: deploying the header module behind a proxy, and the other
//!   defences.
//! * [`stores`] (feature `sqlite`): in memory or SQLite: semantics, schema,
//!   durability, bounds.
//! * [`deployment`]: several replicas behind a load balancer, with PostgreSQL
//!   (accounts) and Redis (pending logins, replay cache, throttle counters).
//! * [`sync`] (features `sync` and `sqlite`): mirroring LDAP users and groups into
//!   the store, `authchain sync`.
//! * [`cli`]: the `authchain` command line: `check-config`, `user`, `try-login`,
//!   `sp-metadata`, `hash-password`, `key`, `sync`.
//! * [`metrics`] (feature `metrics`): the counters, histograms and gauges, their
//!   names and labels.
//! * [`modules`]: the settings of [`ldap`](modules::ldap),
//!   [`oidc` and `oauth2`](modules::oidc), [`saml`](modules::saml),
//!   [`cas`](modules::cas) and [`key_login`](modules::key_login).
//!
//! The pages link to each other; links to the feature-gated pages resolve when
//! those features are on (docs.rs builds with every feature).

// Without `sqlite` and `sync`, the links to their pages have nothing to point at;
// the all-features documentation build (and docs.rs) checks them.
#![cfg_attr(
    not(all(feature = "sqlite", feature = "sync")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[doc = include_str!("../../docs/architecture.md")]
pub mod architecture {}

#[doc = include_str!("../../docs/configuration.md")]
pub mod configuration {}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc = include_str!("../../docs/web.md")]
pub mod web {}

#[doc = include_str!("../../docs/security.md")]
pub mod security {}

#[doc = include_str!("../../docs/cli.md")]
pub mod cli {}

#[doc = include_str!("../../docs/metrics.md")]
pub mod metrics {}

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
#[doc = include_str!("../../docs/stores.md")]
pub mod stores {}

#[doc = include_str!("../../docs/deployment.md")]
pub mod deployment {}

#[cfg(all(feature = "sync", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sync", feature = "sqlite"))))]
#[doc = include_str!("../../docs/sync.md")]
pub mod sync {}

/// One page per authentication module: what it does, every setting, how a login
/// runs, and its security notes.
///
/// The pages are readable without the module's feature; their code examples
/// compile only with it.
pub mod modules {
    #[doc = include_str!("../../docs/modules/ldap.md")]
    pub mod ldap {}

    #[doc = include_str!("../../docs/modules/oidc.md")]
    pub mod oidc {}

    #[doc = include_str!("../../docs/modules/saml.md")]
    pub mod saml {}

    #[doc = include_str!("../../docs/modules/cas.md")]
    pub mod cas {}

    #[doc = include_str!("../../docs/modules/signed_header.md")]
    pub mod signed_header {}
    #[doc = include_str!("../../docs/modules/key_login.md")]
    pub mod key_login {}
}
