//! Pieces shared by the modules' settings types (`modules/<name>/settings.rs`).
//!
//! Settings shared by several modules (flow, HTTP, OAuth client) are field groups:
//! their own structs, nested in Rust but flat in TOML (`flow_ttl` sits beside
//! `issuer`). serde cannot combine `flatten` with `deny_unknown_fields`, so a table
//! is split by each group's field names, read from serde itself by
//! [`field_names`] (never written twice), and every group is deserialized with
//! `deny_unknown_fields`.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::ConfigError;

/// A module's settings type (`modules/<name>/settings.rs`): what the module's TOML
/// table deserializes into and what the module is built from
/// (`XxxModule::new(id, settings)` validates it once).
pub trait ModuleSettingsType: Sized {
    /// Reads the module's table, without the keys every module entry has (`type`,
    /// `enabled`, `role_mapping`, ...). Errors name keys relative to the table.
    fn from_table(table: toml::Table) -> Result<Self, ConfigError>;

    /// Every key the table may hold: the configuration reference lists each.
    fn keys() -> Vec<&'static str>;
}

/// Takes the keys of field group `T` out of `table` and deserializes them (with
/// `T`'s own `deny_unknown_fields`); what is left is for the other groups.
#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
pub(crate) fn take_group<T: DeserializeOwned>(table: &mut toml::Table) -> Result<T, ConfigError> {
    let mut part = toml::Table::new();
    for name in field_names::<T>() {
        if let Some((key, value)) = table.remove_entry(*name) {
            part.insert(key, value);
        }
    }
    from_part(part)
}

/// Deserializes the rest of a table into `T`; a key `T` does not know is an error
/// naming it.
pub(crate) fn take_rest<T: DeserializeOwned>(table: toml::Table) -> Result<T, ConfigError> {
    from_part(table)
}

fn from_part<T: DeserializeOwned>(part: toml::Table) -> Result<T, ConfigError> {
    deserialize(toml::Value::Table(part))
}

/// Deserializes `value`; an error names the path of the bad value inside it
/// (`rules[2].role`), or the missing field.
pub(crate) fn deserialize<T: DeserializeOwned>(value: toml::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = plain_language(e.into_inner().message());
        let key = if path == "." {
            missing_field(&message).unwrap_or_default().to_owned()
        } else {
            path
        };
        ConfigError::invalid(key, message)
    })
}

/// serde's type names (`expected usize`) in the words of a configuration file.
pub(crate) fn plain_language(message: &str) -> String {
    const WORDS: [(&str, &str); 15] = [
        ("invalid type: ", "wrong type: found "),
        ("a nonzero usize", "a whole number (1 or more)"),
        ("a nonzero u32", "a whole number (1 or more)"),
        ("a nonzero u64", "a whole number (1 or more)"),
        ("invalid value: ", "value out of range: "),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number (0 to 65535)"),
        ("expected u8", "expected a whole number (0 to 255)"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected a list [ ... ]"),
    ];
    let mut text = message.to_owned();
    for (from, to) in WORDS {
        text = text.replace(from, to);
    }
    text
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// `#[serde(default = "crate::settings::yes")]`: a switch that is on unless set.
pub(crate) fn yes() -> bool {
    true
}

/// An https URL (http only on a loopback host: tests, a local provider): an
/// identity provider's issuer or endpoint, or the redirect URI registered there.
/// Checked when parsed (`"https://sso.example.org".parse::<ProviderUrl>()?`) and
/// when read from TOML, so a module never holds an unchecked one.
#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderUrl(String);

#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
impl ProviderUrl {
    /// A placeholder for a `#[serde(skip)]` group's default, refused where used.
    #[cfg(any(feature = "oidc", feature = "oauth2"))]
    pub(crate) fn unset() -> Self {
        ProviderUrl(String::new())
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
impl std::str::FromStr for ProviderUrl {
    type Err = ConfigError;

    /// Errors carry no key (`ConfigError::key()` is `""`): the caller knows it.
    fn from_str(value: &str) -> Result<Self, ConfigError> {
        crate::flow::check_url("", value)?;
        Ok(ProviderUrl(value.to_owned()))
    }
}

#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
impl std::fmt::Display for ProviderUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(any(
    feature = "oidc",
    feature = "oauth2",
    feature = "saml",
    feature = "cas",
    feature = "signed-header"
))]
impl<'de> serde::Deserialize<'de> for ProviderUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| match e {
            ConfigError::Invalid { message, .. } => de::Error::custom(message),
            other => de::Error::custom(other),
        })
    }
}

/// An OAuth2 client id: not empty, no control character.
#[cfg(any(feature = "oidc", feature = "oauth2"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

#[cfg(any(feature = "oidc", feature = "oauth2"))]
impl ClientId {
    /// A placeholder for a `#[serde(skip)]` group's default, refused where used.
    pub(crate) fn unset() -> Self {
        ClientId(String::new())
    }

    /// The id as registered at the provider.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(any(feature = "oidc", feature = "oauth2"))]
impl std::str::FromStr for ClientId {
    type Err = ConfigError;

    /// Errors carry no key (`ConfigError::key()` is `""`): the caller knows it.
    fn from_str(value: &str) -> Result<Self, ConfigError> {
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "",
                "must not be empty or hold a control character",
            ));
        }
        Ok(ClientId(value.to_owned()))
    }
}

#[cfg(any(feature = "oidc", feature = "oauth2"))]
impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(any(feature = "oidc", feature = "oauth2"))]
impl<'de> serde::Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| match e {
            ConfigError::Invalid { message, .. } => de::Error::custom(message),
            other => de::Error::custom(other),
        })
    }
}

/// The field names of a struct that derives `Deserialize`, as serde knows them.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: std::fmt::Display>(_msg: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> Deserializer<'de> for Names {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Names) {
        Ok(_) => &[],
        Err(Found(fields)) => fields,
    }
}

/// `#[serde(default = ..., deserialize_with = "crate::settings::optional_name")]`:
/// an attribute, claim or path name where `""` means none.
#[cfg(any(feature = "saml", feature = "cas"))]
pub(crate) fn optional_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let name = <String as serde::Deserialize>::deserialize(deserializer)?;
    Ok((!name.is_empty()).then_some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct A {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn field_names_come_from_serde() {
        assert_eq!(field_names::<A>(), &["a", "b"]);
    }

    #[test]
    fn errors_name_the_key_at_fault() {
        let key = |text: &str| {
            let table: toml::Table = toml::from_str(text).unwrap();
            take_rest::<A>(table).unwrap_err().key().map(str::to_owned)
        };
        assert_eq!(key("a = 1\nb = 5").as_deref(), Some("b"));
        assert_eq!(key("a = \"x\"\nb = \"y\"").as_deref(), Some("a"));
        assert_eq!(key("a = 1\nzz = 1").as_deref(), Some("zz"));
        assert_eq!(key("b = \"y\"").as_deref(), Some("a"));
    }

    #[cfg(any(
        feature = "oidc",
        feature = "oauth2",
        feature = "saml",
        feature = "cas",
        feature = "signed-header"
    ))]
    #[test]
    fn a_group_takes_only_its_own_keys() {
        let mut table: toml::Table = toml::from_str("a = 1\nc = 3").unwrap();
        let group = take_group::<A>(&mut table).unwrap();
        assert_eq!(group, A { a: 1, b: None });
        assert_eq!(table.keys().collect::<Vec<_>>(), ["c"]);
    }
}
