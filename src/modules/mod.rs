//! The built-in authentication modules.
//!
//! Each module is an [`Authenticator`](crate::Authenticator): it verifies a request
//! and answers an [`Identity`](crate::Identity); the chain does the rest.

pub mod header;
#[cfg(feature = "ldap")]
pub mod ldap;
pub mod local;

pub use header::HeaderModule;
#[cfg(feature = "ldap")]
pub use ldap::{LdapConfig, LdapModule};
pub use local::LocalModule;
