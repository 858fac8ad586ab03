//! Why a CAS login failed.

use super::response::MalformedResponse;

/// Why a CAS login failed. Transport failures and error statuses of the
/// validation request are [`HttpError`](crate::flow::HttpError)s, flow failures
/// [`FlowError`](crate::flow::FlowError)s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CasError {
    /// The callback's ticket is empty, too long or not printable ASCII (answered
    /// as [`RequestError::Module`](crate::RequestError::Module)).
    #[error("the callback's CAS ticket is malformed")]
    BadTicket,
    /// The server refused the ticket (`INVALID_TICKET`, `INVALID_SERVICE`, ...):
    /// a refusal ([`AuthError::Rejected`](crate::AuthError::Rejected)).
    #[error("the CAS server refused the ticket ({code})")]
    Refused {
        /// The failure code, reduced to `A-Z0-9_`.
        code: String,
    },
    /// The server reported its own failure (`INTERNAL_ERROR`): an outage
    /// ([`AuthError::Unavailable`](crate::AuthError::Unavailable)).
    #[error("the CAS server failed ({code})")]
    ServerFailed {
        /// The failure code.
        code: String,
    },
    /// The server answered a success status with something that is not a
    /// readable validation answer. (An unreadable answer with an error status is
    /// [`HttpError::Status`](crate::flow::HttpError::Status).)
    #[error("malformed CAS validation answer: {0}")]
    Malformed(#[from] MalformedResponse),
}
