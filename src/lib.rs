//! # authchain
//!
//! Enterprise sign-in for Rust web services: an ordered **chain of authentication
//! modules** (local passwords, trusted reverse-proxy headers, and — behind feature
//! flags — LDAP, OpenID Connect, OAuth2, SAML and CAS) with fallback semantics,
//! account linking, group-to-role mapping and login throttling.
//!
//! The host application keeps its HTTP server, its session cookie and its database.
//! It turns what it saw into an [`AuthRequest`], asks an [`AuthChain`] to
//! [`login`](AuthChain::login), and receives a [`Principal`] (or an [`AuthError`] that
//! says which status code to answer with).
//!
//! ```
//! use std::sync::Arc;
//! use authchain::{AuthChain, AuthRequest, LoginResult};
//! use authchain::account::{MemoryUserStore, NewAccount, PasswordPolicy, UserStore};
//! use authchain::modules::LocalModule;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryUserStore::new());
//! let passwords = Arc::new(PasswordPolicy::fast_insecure_for_tests());
//! let hash = passwords.hash("correct horse")?;
//! store.create_account(NewAccount::new("alice").password_hash(hash)).await?;
//!
//! let chain = AuthChain::builder(store.clone())
//!     .module(LocalModule::builder("local", store).passwords(passwords).build())
//!     .build()?;
//!
//! let request = AuthRequest::new("127.0.0.1:50000".parse()?).with_password("alice", "correct horse");
//! match chain.login(&request).await? {
//!     LoginResult::Authenticated(principal) => assert_eq!(principal.login, "alice"),
//!     _ => unreachable!("the local module never redirects"),
//! }
//! # Ok(()) }
//! ```
//!
//! The [manual] is the guide: the [architecture](manual::architecture) of the
//! crate, the [configuration](manual::configuration) that builds a whole chain from
//! TOML, [security](manual::security), and one page per module.
//!
//! Modules and items behind a crate feature are marked with it; docs.rs builds with
//! every feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
pub mod audit;
mod authenticator;
pub mod chain;
pub mod config;
pub(crate) mod dn;
mod error;
pub mod flow;
pub mod future;
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
pub mod iso8601;
#[cfg(feature = "jose")]
#[cfg_attr(docsrs, doc(cfg(feature = "jose")))]
pub mod jose;
pub mod manual;
pub mod metrics;
pub mod modules;
pub mod net;
pub mod reload;
mod request;
mod secret;
pub mod settings;
pub mod state;
#[cfg(feature = "sync")]
#[cfg_attr(docsrs, doc(cfg(feature = "sync")))]
pub mod sync;
mod toml_location;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

/// The README's code blocks, compiled as doctests (the guide's are in [`manual`]).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct Readme;

pub use authenticator::{Authenticator, ModuleKind, Outcome, Redirect};
pub use chain::{AuthChain, ChainBuilder, LoginResult, ModuleInfo};
pub use error::{
    AccountRestriction, AuthError, ConfigError, ModuleError, OtherError, RequestError, StoreError,
};
pub use flow::FlowCookie;
pub use identity::{AccountId, Groups, GroupsIter, Identity, ModuleId, Principal, ProviderSession, Roles};
pub use request::{
    AuthRequest, Credentials, MAX_DOMAIN_HINT_BYTES, MAX_LOGIN_HINT_BYTES, Prompt, StartError, StartLogin,
};
pub use secret::{SecretSource, SecretString};
