//! Configuration: a whole chain from TOML. See `docs/configuration.md`.
