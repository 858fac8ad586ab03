//! Environment overrides: `AUTHCHAIN__MODULES__CORP__URL=ldaps://...` sets the key
//! `modules.corp.url`, over the file's value (docs/configuration.md,
//! "Environment overrides").

use std::path::Path;

use super::Config;
use crate::ConfigError;

/// The prefix of override variables.
pub const ENV_PREFIX: &str = "AUTHCHAIN__";
/// The most override variables read.
const MAX_OVERRIDES: usize = 256;
/// The most key segments in one variable name.
const MAX_SEGMENTS: usize = 16;
/// The longest value of one variable.
const MAX_VALUE_BYTES: usize = 64 * 1024;

impl Config {
    /// Reads a TOML file, then applies the process's `AUTHCHAIN__…` variables
    /// over it ([`Config::from_toml_with_overrides`]).
    pub fn from_file_with_env(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            key: None,
            path: path.display().to_string(),
            source,
            location: None,
        })?;
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
        Config::from_toml_with_overrides(&text, vars)
    }

    /// Parses `text` with the variables among `vars` whose names start with
    /// `AUTHCHAIN__` set over it: the rest of the name, split at `__`, is the key
    /// path (`MODULES__CORP_LDAP__URL` is `modules.corp-ldap.url` when the file
    /// has a module `corp-ldap`: segments match existing keys ignoring case and
    /// `-`/`_`), and the value is read as a TOML value (`5`, `true`,
    /// `["a", "b"]`), else taken as a string. A variable wins over the file.
    /// Secrets stay references: `…__BIND_PASSWORD__ENV=LDAP_PASSWORD`.
    ///
    /// Without any such variable the text is parsed as it is; with some, error
    /// lines refer to the merged configuration.
    pub fn from_toml_with_overrides(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut overrides: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .take(MAX_OVERRIDES + 1)
            .collect();
        if overrides.is_empty() {
            return Config::from_toml(text);
        }
        if overrides.len() > MAX_OVERRIDES {
            return Err(ConfigError::invalid(
                ENV_PREFIX,
                format!("more than {MAX_OVERRIDES} override variables"),
            ));
        }
        // Sorted, so that the result never depends on the environment's order.
        overrides.sort();
        let mut table: toml::Table = toml::from_str(text).map_err(super::syntax)?;
        let mut errors = Vec::new();
        for (name, value) in &overrides {
            if let Err(e) = apply(&mut table, name, value) {
                errors.push(e);
            }
        }
        if let Some(error) = ConfigError::collect(errors) {
            return Err(error);
        }
        let merged = toml::to_string(&table)
            .map_err(|e| ConfigError::invalid(ENV_PREFIX, format!("cannot merge the overrides: {e}")))?;
        Config::from_toml(&merged)
    }
}

/// Sets the key `name` names (without the prefix) to `value` in `table`.
fn apply(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::invalid(name, message);
    let segments: Vec<&str> = name[ENV_PREFIX.len()..].split("__").collect();
    if segments.len() > MAX_SEGMENTS {
        return Err(invalid(format!("more than {MAX_SEGMENTS} key segments")));
    }
    if segments.iter().any(|s| s.is_empty()) {
        return Err(invalid("empty key segment (`____` or a trailing `__`)".into()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(invalid(format!("value longer than {MAX_VALUE_BYTES} bytes")));
    }
    let Some((last, parents)) = segments.split_last() else {
        return Err(invalid("no key after the prefix".into()));
    };
    let mut current = table;
    for segment in parents {
        let key = existing_key(current, segment);
        let slot = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match slot {
            toml::Value::Table(inner) => inner,
            _ => return Err(invalid(format!("`{key}` is not a table, it has no keys to set"))),
        };
    }
    let key = existing_key(current, last);
    current.insert(key, parse_value(value));
    Ok(())
}

/// The key of `table` that `segment` names: an existing key equal ignoring case
/// and `-`/`_`, else the segment in lower case.
fn existing_key(table: &toml::Table, segment: &str) -> String {
    let fold = |s: &str| s.to_lowercase().replace('-', "_");
    let wanted = fold(segment);
    table
        .keys()
        .find(|k| fold(k) == wanted)
        .cloned()
        .unwrap_or_else(|| segment.to_lowercase())
}

/// A TOML value (`5`, `true`, `["a"]`, `{ env = "X" }`, `"text"`), else the text as a string.
fn parse_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}
