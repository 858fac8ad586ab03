//! Why a CAS login failed.

use super::response::MalformedResponse;

/// Why a CAS ticket validation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CasError {
    /// The callback's ticket is missing or malformed.
    #[error("the callback's CAS ticket is missing or malformed")]
    BadTicket,
    /// The server refused the ticket (`INVALID_TICKET`, `INVALID_SERVICE`, ...).
    #[error("the CAS server refused the ticket ({code})")]
    Refused {
        /// The failure code, reduced to `A-Z0-9_`.
        code: String,
    },
    /// The server reported its own failure (`INTERNAL_ERROR`).
    #[error("the CAS server failed ({code})")]
    ServerFailed {
        /// The failure code.
        code: String,
    },
    /// The answer could not be read.
    #[error(transparent)]
    Malformed(#[from] MalformedResponse),
}
