//! Every key of every module's settings type is documented in the module's page of
//! the configuration reference (`docs/modules/<name>.md`), so a new field cannot be
//! added without its row.

#[allow(unused_imports)]
use authchain::settings::ModuleSettingsType;

/// The keys of `T` that `page` does not mention as
/// `` `key` ``.
#[allow(dead_code)]
fn undocumented<T: ModuleSettingsType>(page: &str) -> Vec<&'static str> {
    T::keys()
        .into_iter()
        .filter(|key| !page.contains(&format!("`{key}`")))
        .collect()
}

#[cfg(feature = "ldap")]
#[test]
fn ldap_settings_are_documented() {
    let page = include_str!("../docs/modules/ldap.md");
    let missing = undocumented::<authchain::modules::LdapSettings>(page);
    assert!(missing.is_empty(), "docs/modules/ldap.md lacks {missing:?}");
    // One settings table: each key has exactly one row.
    for key in authchain::modules::LdapSettings::keys() {
        let rows = page
            .lines()
            .filter(|line| line.starts_with(&format!("| `{key}` |")))
            .count();
        assert_eq!(rows, 1, "docs/modules/ldap.md: {rows} rows for `{key}`");
    }
}
