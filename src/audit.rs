//! Audit events: `tracing` events with the target [`AUDIT_TARGET`], one per
//! decision. Every layer (chain, modules, flows, sync) writes them; this module sits
//! below all of them.
//!
//! Field values are plain: text as it is (control characters escaped, so a login
//! name cannot forge a log line), lists joined by `,`, durations in whole
//! milliseconds. The event names and their fields are a stable list in
//! `docs/security.md` ("Audit events").

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use tracing::field::{DisplayValue, display};
use tracing::{info, warn};

use crate::{AuthError, AuthRequest, LoginResult};

/// Where audit events go: `tracing` events with this target, one per decision.
pub const AUDIT_TARGET: &str = "authchain::audit";

/// A text field value: the text, with control characters escaped.
#[derive(Debug, Clone, Copy)]
pub struct Plain<'a>(pub &'a str);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// `text` as a plain field value.
pub fn text(text: &str) -> DisplayValue<Plain<'_>> {
    display(Plain(text))
}

/// Items as one field value, joined by `,` (each escaped like [`text`]).
pub fn list<I>(items: I) -> DisplayValue<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let joined = items
        .into_iter()
        .map(|item| Plain(item.as_ref()).to_string())
        .collect::<Vec<_>>()
        .join(",");
    display(joined)
}

/// A duration as a field value: whole milliseconds.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The module a login's answer came from: the one that answered, else the one
/// the request selected, else `none`.
pub(crate) fn answering_module<'a>(
    request: &'a AuthRequest,
    result: &'a Result<LoginResult, AuthError>,
) -> &'a str {
    match result {
        Ok(LoginResult::Authenticated(principal)) => &principal.module,
        Err(AuthError::Rejected { module, .. } | AuthError::Unavailable { module, .. }) => module,
        _ => request.module.as_deref().unwrap_or("none"),
    }
}

/// The outcome label of a login's answer: `authenticated`, `redirect`, or the
/// error's [`kind`](AuthError::kind).
pub(crate) fn outcome(result: &Result<LoginResult, AuthError>) -> &'static str {
    match result {
        Ok(LoginResult::Authenticated(_)) => "authenticated",
        Ok(LoginResult::Redirect(_)) => "redirect",
        Err(err) => err.kind(),
    }
}

/// The `login finished` event (one per [`AuthChain::login`](crate::AuthChain::login)
/// call, with its duration) and the login metrics.
pub(crate) fn login_finished(
    chain: &str,
    request: &AuthRequest,
    client_ip: Option<IpAddr>,
    result: &Result<LoginResult, AuthError>,
    took: Duration,
) {
    let module = answering_module(request, result);
    let outcome = outcome(result);
    crate::metrics::login(module, outcome, took);
    let login = match result {
        Ok(LoginResult::Authenticated(principal)) => Some(principal.login.as_str()),
        _ => request.login(),
    };
    let duration_ms = millis(took);
    match result {
        Ok(LoginResult::Authenticated(principal)) => {
            info!(target: AUDIT_TARGET, chain = %text(chain), module = %text(module), outcome = %outcome,
                login = login.map(text), account = %text(&principal.account_id.0),
                client_ip = client_ip.map(display), roles = %list(&principal.roles),
                groups = %list(&principal.identity.groups), duration_ms, "login finished");
        }
        Ok(_) => {
            info!(target: AUDIT_TARGET, chain = %text(chain), module = %text(module), outcome = %outcome,
                client_ip = client_ip.map(display), duration_ms, "login finished");
        }
        Err(err) => {
            warn!(target: AUDIT_TARGET, chain = %text(chain), module = %text(module), outcome = %outcome,
                login = login.map(text), client_ip = client_ip.map(display),
                reason = %err, duration_ms, "login finished");
        }
    }
}
