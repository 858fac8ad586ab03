//! The built-in authentication modules.
//!
//! Each module is an [`Authenticator`](crate::Authenticator): it verifies a request
//! and answers an [`Identity`](crate::Identity); the chain does the rest.

#[cfg(feature = "cas")]
#[cfg_attr(docsrs, doc(cfg(feature = "cas")))]
pub mod cas;
pub mod header;
#[cfg(feature = "key-login")]
#[cfg_attr(docsrs, doc(cfg(feature = "key-login")))]
pub mod key_login;
#[cfg(feature = "ldap")]
#[cfg_attr(docsrs, doc(cfg(feature = "ldap")))]
pub mod ldap;
pub mod local;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod oauth2;
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub mod oidc;
#[cfg(feature = "saml")]
#[cfg_attr(docsrs, doc(cfg(feature = "saml")))]
pub mod saml;
#[cfg(feature = "signed-header")]
#[cfg_attr(docsrs, doc(cfg(feature = "signed-header")))]
pub mod signed_header;
#[cfg(any(feature = "saml", feature = "cas"))]
mod xml;

#[cfg(feature = "cas")]
#[cfg_attr(docsrs, doc(cfg(feature = "cas")))]
pub use cas::{CasModule, CasSettings};
pub use header::{HeaderModule, HeaderSettings};
#[cfg(feature = "key-login")]
#[cfg_attr(docsrs, doc(cfg(feature = "key-login")))]
pub use key_login::{KeyLoginModule, KeyLoginSettings};
#[cfg(feature = "ldap")]
#[cfg_attr(docsrs, doc(cfg(feature = "ldap")))]
pub use ldap::{LdapModule, LdapSettings};
pub use local::{LocalModule, LocalSettings};
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub use oauth2::{OAuth2Module, OAuth2Settings};
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub use oidc::{OidcModule, OidcSettings};
#[cfg(feature = "saml")]
#[cfg_attr(docsrs, doc(cfg(feature = "saml")))]
pub use saml::{SamlModule, SamlSettings};
#[cfg(feature = "signed-header")]
#[cfg_attr(docsrs, doc(cfg(feature = "signed-header")))]
pub use signed_header::{SignedHeaderModule, SignedHeaderSettings};
