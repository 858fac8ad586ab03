//! Pieces shared by the modules' settings types (`modules/<name>/settings.rs`).
//!
//! A module's settings are one struct, deserialized from its TOML table and
//! validated once by the module's `new`. Settings shared by several modules (flow,
//! HTTP, OAuth client) are field groups: their own structs, nested in Rust but flat
//! in TOML (`flow_ttl` sits beside `issuer`). serde cannot combine `flatten` with
//! `deny_unknown_fields`, so [`flat`] splits the table by each group's field names
//! (read from serde itself, so they are never written twice) and deserializes every
//! group with `deny_unknown_fields`; a key no group knows is an error naming it.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// `#[serde(default = "crate::settings::yes")]`: a switch that is on unless set.
pub(crate) fn yes() -> bool {
    true
}

/// A configured attribute, claim or path name: unset is `default`, `""` is none.
#[cfg_attr(
    not(any(
        feature = "ldap",
        feature = "oidc",
        feature = "oauth2",
        feature = "saml",
        feature = "cas"
    )),
    allow(dead_code)
)]
pub(crate) fn name_or_default(value: &Option<String>, default: Option<&str>) -> Option<String> {
    match value.as_deref() {
        None => default.map(str::to_owned),
        Some("") => None,
        Some(name) => Some(name.to_owned()),
    }
}

/// The field names of a struct that derives `Deserialize`, as serde knows them.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Names(&'static [&'static str]);
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
    match T::deserialize(Names(&[])) {
        Ok(_) => &[],
        Err(Found(fields)) => fields,
    }
}

/// One group of a flat settings table: a struct deserialized from the keys it
/// names.
pub trait FieldGroup: DeserializeOwned {}
impl<T: DeserializeOwned> FieldGroup for T {}

/// Splits a flat table between groups by their field names and deserializes each
/// (see the module docs). Used by the settings types' `Deserialize` impls:
/// `let (own, flow, http): (OidcFields, FlowSettings, HttpSettings) = flat(d)?;`
pub(crate) fn flat<'de, D, G>(deserializer: D) -> Result<G, D::Error>
where
    D: Deserializer<'de>,
    G: Groups,
{
    let table = toml::Table::deserialize(deserializer)?;
    G::split(table).map_err(de::Error::custom)
}

/// A tuple of [`FieldGroup`]s.
pub(crate) trait Groups: Sized {
    fn split(table: toml::Table) -> Result<Self, String>;
}

use serde::Deserialize as _;

fn take_group<T: DeserializeOwned>(table: &mut toml::Table) -> Result<T, String> {
    let names = field_names::<T>();
    let mut part = toml::Table::new();
    for name in names {
        if let Some((k, v)) = table.remove_entry(*name) {
            part.insert(k, v);
        }
    }
    part.try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())
}

fn no_leftovers(table: toml::Table, known: &[&[&str]]) -> Result<(), String> {
    match table.keys().next() {
        None => Ok(()),
        Some(key) => {
            let mut all: Vec<&str> = known.iter().flat_map(|g| g.iter().copied()).collect();
            all.sort_unstable();
            Err(format!(
                "unknown field `{key}`, expected one of {}",
                all.join(", ")
            ))
        }
    }
}

macro_rules! groups_for_tuple {
    ($($t:ident),+) => {
        impl<$($t: DeserializeOwned),+> Groups for ($($t,)+) {
            fn split(mut table: toml::Table) -> Result<Self, String> {
                let value = ($(take_group::<$t>(&mut table)?,)+);
                no_leftovers(table, &[$(field_names::<$t>()),+])?;
                Ok(value)
            }
        }
    };
}
groups_for_tuple!(A, B);
groups_for_tuple!(A, B, C);
groups_for_tuple!(A, B, C, D);
groups_for_tuple!(A, B, C, D, E);

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

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct C {
        #[serde(default)]
        c: bool,
    }

    #[test]
    fn field_names_come_from_serde() {
        assert_eq!(field_names::<A>(), &["a", "b"]);
    }

    #[test]
    fn flat_tables_split_between_groups() {
        let table: toml::Table = toml::from_str("a = 1\nc = true").unwrap();
        let (a, c): (A, C) = Groups::split(table).unwrap();
        assert_eq!(a, A { a: 1, b: None });
        assert!(c.c);
        let table: toml::Table = toml::from_str("a = 1\nd = true").unwrap();
        let err = <(A, C)>::split(table).unwrap_err();
        assert!(err.contains("`d`"), "{err}");
    }
}
