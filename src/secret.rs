//! Secrets that never print, and where configuration finds them.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use zeroize::Zeroize;

use crate::ConfigError;

/// A string that must not appear in logs: passwords, client secrets, bind
/// passwords. `Debug` and `Display` print `[redacted]`; the memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(secret.into())
    }

    /// The secret itself. Call this only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        SecretString::new(value)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

/// Where a configured secret comes from: `"inline"`, `{ env = "NAME" }` or
/// `{ file = "path" }` in TOML. Resolved once, when the chain is built.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The secret written in the configuration itself.
    Inline(SecretString),
    /// The value of an environment variable.
    Env(String),
    /// The contents of a file, without a trailing newline.
    File(std::path::PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline([redacted])"),
            SecretSource::Env(name) => write!(f, "Env({name:?})"),
            SecretSource::File(path) => write!(f, "File({path:?})"),
        }
    }
}

impl SecretSource {
    /// Reads the secret. `key` names the configuration key in errors.
    pub fn resolve(&self, key: &str) -> Result<SecretString, ConfigError> {
        match self {
            SecretSource::Inline(secret) => Ok(secret.clone()),
            SecretSource::Env(name) => std::env::var(name)
                .map(SecretString::from)
                .map_err(|_| ConfigError::invalid(key, format!("environment variable `{name}` is not set"))),
            SecretSource::File(path) => {
                let mut text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::io(key, path, source))?;
                while text.ends_with('\n') || text.ends_with('\r') {
                    text.pop();
                }
                Ok(SecretString::from(text))
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;

        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SecretSource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, { env = "NAME" } or { file = "path" }"#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<SecretSource, E> {
                Ok(SecretSource::Inline(SecretString::new(value)))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSource, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("empty secret table: give `env` or `file`"));
                };
                let source = match kind.as_str() {
                    "env" => SecretSource::Env(map.next_value()?),
                    "file" => SecretSource::File(map.next_value()?),
                    other => return Err(de::Error::unknown_field(other, &["env", "file"])),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "unexpected key `{extra}`: a secret has exactly one of `env` or `file`"
                    )));
                }
                Ok(source)
            }
        }

        deserializer.deserialize_any(SourceVisitor)
    }
}
