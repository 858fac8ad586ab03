//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): the host installs a recorder (a Prometheus or OpenTelemetry
//! exporter) and the crate's counters, histograms and gauges go to it. Without the
//! feature, or without a recorder, recording costs nothing.
//!
//! The names and labels are a stable list in `docs/metrics.md`. Labels are module
//! ids and fixed words only: never login names, subjects or addresses.

use std::time::Duration;

/// `authchain_logins_total` (counter; `module`, `outcome`).
pub const LOGINS: &str = "authchain_logins_total";
/// `authchain_login_duration_seconds` (histogram; `module`).
pub const LOGIN_DURATION: &str = "authchain_login_duration_seconds";
/// `authchain_throttled_total` (counter): logins refused by the throttle before any module ran.
pub const THROTTLED: &str = "authchain_throttled_total";
/// `authchain_flows_started_total` (counter; `module`).
pub const FLOWS_STARTED: &str = "authchain_flows_started_total";
/// `authchain_flows_completed_total` (counter; `module`).
pub const FLOWS_COMPLETED: &str = "authchain_flows_completed_total";
/// `authchain_flows_expired_total` (counter; `module`).
pub const FLOWS_EXPIRED: &str = "authchain_flows_expired_total";
/// `authchain_flows_pending` (gauge; `module`).
pub const FLOWS_PENDING: &str = "authchain_flows_pending";
/// `authchain_replay_refusals_total` (counter; `module`).
pub const REPLAY_REFUSALS: &str = "authchain_replay_refusals_total";
/// `authchain_provider_requests_total` (counter; `module`, `purpose`, `result`):
/// discovery and JWKS fetches, token, userinfo and ticket-validation calls.
pub const PROVIDER_REQUESTS: &str = "authchain_provider_requests_total";
/// `authchain_ldap_connections_total` (counter; `module`, `result`): connections opened.
pub const LDAP_CONNECTIONS: &str = "authchain_ldap_connections_total";
/// `authchain_ldap_operations_total` (counter; `module`, `operation`, `result`).
pub const LDAP_OPERATIONS: &str = "authchain_ldap_operations_total";
/// `authchain_ldap_operation_duration_seconds` (histogram; `module`, `operation`).
pub const LDAP_OPERATION_DURATION: &str = "authchain_ldap_operation_duration_seconds";
/// `authchain_provider_request_duration_seconds` (histogram; `module`, `purpose`).
pub const PROVIDER_REQUEST_DURATION: &str = "authchain_provider_request_duration_seconds";
/// `authchain_sync_lag_seconds` (gauge; `source`): since when the synchronised
/// accounts may be behind the directory (`Synchronizer::record_lag`).
pub const SYNC_LAG: &str = "authchain_sync_lag_seconds";

/// One finished login of a chain.
pub(crate) fn login(module: &str, outcome: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let module = module.to_owned();
        ::metrics::counter!(LOGINS, "module" => module.clone(), "outcome" => outcome).increment(1);
        ::metrics::histogram!(LOGIN_DURATION, "module" => module).record(took.as_secs_f64());
        if outcome == "throttled" {
            ::metrics::counter!(THROTTLED).increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (module, outcome, took);
}

/// What became of a redirect login's pending flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowEvent {
    /// Started (stored, the browser sent to the provider).
    Started,
    /// Its callback came and consumed it.
    Completed,
    /// Its callback came too late.
    Expired,
}

/// A flow of `module` started, completed or expired (the pending gauge is the
/// memory flow store's: [`flows_pending`]).
pub(crate) fn flow(module: &str, event: FlowEvent) {
    #[cfg(feature = "metrics")]
    {
        let name = match event {
            FlowEvent::Started => FLOWS_STARTED,
            FlowEvent::Completed => FLOWS_COMPLETED,
            FlowEvent::Expired => FLOWS_EXPIRED,
        };
        ::metrics::counter!(name, "module" => module.to_owned()).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (module, event);
}

/// A memory flow store now holds `held` pending flows of `module`.
pub(crate) fn flows_pending(module: &str, held: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!(FLOWS_PENDING, "module" => module.to_owned()).set(held as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (module, held);
}

/// A one-time value (assertion id, ticket, token id) of `module` seen again and refused.
#[allow(dead_code)] // used by the modules that keep a replay cache
pub(crate) fn replay_refused(module: &str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(REPLAY_REFUSALS, "module" => module.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = module;
}

/// One LDAP operation (`connect`, `service bind`, `user bind`, `search`) of
/// `module`, `ok` when the server answered in time (whatever its result code).
#[allow(dead_code)] // used by the LDAP module
pub(crate) fn ldap_operation(module: &str, operation: &'static str, ok: bool, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let module = module.to_owned();
        let result = if ok { "ok" } else { "error" };
        ::metrics::counter!(LDAP_OPERATIONS, "module" => module.clone(), "operation" => operation, "result" => result)
            .increment(1);
        ::metrics::histogram!(LDAP_OPERATION_DURATION, "module" => module, "operation" => operation)
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (module, operation, ok, took);
}

/// A connection to an LDAP server of `module` opened (`ok`) or failed.
#[allow(dead_code)] // used by the LDAP module
pub(crate) fn ldap_connection(module: &str, ok: bool) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(LDAP_CONNECTIONS, "module" => module.to_owned(), "result" => if ok { "ok" } else { "error" })
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (module, ok);
}

/// One request to an identity provider (`purpose`: discovery, jwks, token,
/// userinfo, validation, metadata), `ok` when it got a success status.
#[allow(dead_code)] // used by the modules that talk to providers
pub(crate) fn provider_request(module: &str, purpose: &'static str, ok: bool, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let module = module.to_owned();
        let result = if ok { "ok" } else { "error" };
        ::metrics::counter!(PROVIDER_REQUESTS, "module" => module.clone(), "purpose" => purpose, "result" => result)
            .increment(1);
        ::metrics::histogram!(PROVIDER_REQUEST_DURATION, "module" => module, "purpose" => purpose)
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (module, purpose, ok, took);
}

/// The synchronised accounts of `source` may be `lag` behind the directory.
#[cfg(all(feature = "sync", feature = "metrics"))]
pub(crate) fn sync_lag(source: &str, lag: Duration) {
    ::metrics::gauge!(SYNC_LAG, "source" => source.to_owned()).set(lag.as_secs_f64());
}
