//! Audit events: `tracing` events with the target [`AUDIT_TARGET`], one per
//! decision. Every layer (chain, modules, flows, sync) writes them; this module sits
//! below all of them.

/// Where audit events go: `tracing` events with this target, one per decision.
pub const AUDIT_TARGET: &str = "authchain::audit";
