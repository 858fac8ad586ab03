//! With feature `axum`: an [`AuthError`] is a response (status code, a JSON body
//! naming the error kind, `Retry-After` when throttled). The body never says more
//! than the error's kind and message, which reveal no secret and do not tell
//! "no such user" from "wrong password".

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use crate::AuthError;

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        // Messages of outages and misconfigurations stay in the audit log.
        let message = match &self {
            AuthError::Unavailable { .. } => "authentication is temporarily unavailable".to_owned(),
            AuthError::Misconfigured(_) => "authentication is misconfigured".to_owned(),
            other => other.to_string(),
        };
        let body = format!(
            "{{\"error\":\"{}\",\"message\":\"{}\"}}",
            self.kind(),
            message
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace(|c: char| c.is_control(), " ")
        );
        let mut response = (
            self.status_code(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(retry_after) = self.retry_after() {
            // Rounded up: "retry after 0 s" would invite an immediate retry.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_carries_retry_after_and_outages_hide_details() {
        let response = AuthError::Throttled {
            retry_after: std::time::Duration::from_secs(42),
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let response =
            AuthError::unavailable("ldap", crate::OtherError::msg("connection refused to 10.1.2.3"))
                .into_response();
        assert_eq!(response.status(), 503);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let response = AuthError::Unavailable {
            module: "oidc".into(),
            cause: crate::OtherError::msg("key rotation").into(),
            retry_after: Some(std::time::Duration::from_millis(1500)),
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
