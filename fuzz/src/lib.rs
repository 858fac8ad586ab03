//! authchain's fuzz targets (cargo-fuzz). Each binary in `fuzzers/` hands
//! libFuzzer's input to one function here:
//!
//! * [`targets`]: through the public API (shared with the main crate's
//!   `tests/fuzz_regressions.rs`, which runs every seed and reproducer);
//! * [`sync`]: the RFC 4533 decoders of the directory synchroniser, private to the
//!   crate and reached through `authchain::fuzzing` (compiled under
//!   `--cfg fuzzing` only; their seeds run in the crate's own unit tests).
#![forbid(unsafe_code)]

pub mod targets;

/// The RFC 4533 decoders.
#[cfg(fuzzing)]
pub use authchain::fuzzing::sync;
