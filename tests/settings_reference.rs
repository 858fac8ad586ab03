//! The configuration reference is exact: every key a module's settings type reads
//! is documented on its page (`` `key` `` in a settings table).

use authchain::settings::ModuleSettingsType;

fn page(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn assert_documented<S: ModuleSettingsType>(page_path: &str) {
    let text = page(page_path);
    let keys = S::keys();
    assert!(
        !keys.is_empty(),
        "{page_path}: no keys read from the settings type"
    );
    for key in keys {
        assert!(
            text.contains(&format!("| `{key}` |")),
            "{page_path} has no row for `{key}`"
        );
    }
}

#[test]
fn local_settings_are_documented() {
    assert_documented::<authchain::modules::LocalSettings>("docs/configuration.md");
}

#[test]
fn header_settings_are_documented() {
    assert_documented::<authchain::modules::HeaderSettings>("docs/configuration.md");
}

#[cfg(feature = "ldap")]
#[test]
fn ldap_settings_are_documented() {
    assert_documented::<authchain::modules::LdapSettings>("docs/modules/ldap.md");
    // One settings table: each key has exactly one row.
    let text = page("docs/modules/ldap.md");
    for key in authchain::modules::LdapSettings::keys() {
        let row = format!("| `{key}` |");
        let rows = text.lines().filter(|line| line.starts_with(&row)).count();
        assert_eq!(rows, 1, "docs/modules/ldap.md: {rows} rows for `{key}`");
    }
}
