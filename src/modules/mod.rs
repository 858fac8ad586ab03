//! The built-in authentication modules.
//!
//! Each module is an [`Authenticator`](crate::Authenticator): it verifies a request
//! and answers an [`Identity`](crate::Identity); the chain does the rest.

pub mod header;
pub mod local;

pub use header::HeaderModule;
pub use local::LocalModule;
