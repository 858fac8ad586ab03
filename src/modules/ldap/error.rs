//! Why an LDAP login failed.

/// Why the directory refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LdapError {
    /// No server could be reached (every URL failed).
    #[error("no directory server reachable: {0}")]
    Unreachable(String),
    /// Every pooled connection stayed busy for longer than the operation timeout.
    #[error("every pooled connection is busy")]
    PoolExhausted,
    /// An operation took longer than the operation timeout.
    #[error("the directory did not answer in time")]
    Timeout,
    /// The service account's bind was refused (result code).
    #[error("the service account's bind was refused (LDAP result {0})")]
    ServiceBindRefused(u32),
    /// An operation failed with this LDAP result code.
    #[error("the directory answered LDAP result {code}")]
    Result {
        /// The LDAP result code.
        code: u32,
    },
    /// The protocol failed (connection lost, bad answer).
    #[error("LDAP protocol error: {0}")]
    Protocol(String),
    /// The user search matched several entries.
    #[error("the login matches several directory entries")]
    Ambiguous,
    /// The directory entry lacks the attribute that gives the login name or subject.
    #[error("the directory entry has no usable `{0}`")]
    MissingAttribute(String),
}
