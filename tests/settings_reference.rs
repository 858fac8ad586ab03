//! The configuration reference is exact: every key a module's settings type reads
//! (`ModuleSettingsType::keys()`) has a row (`` | `key` | ``) on its page.

use authchain::settings::ModuleSettingsType;

/// The keys of `S` that have no row on `page` (a path below the crate root).
fn undocumented<S: ModuleSettingsType>(page: &str) -> Vec<&'static str> {
    let path = format!("{}/{page}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let keys = S::keys();
    assert!(!keys.is_empty(), "{page}: the settings type reads no key");
    keys.into_iter()
        .filter(|key| !text.contains(&format!("| `{key}` |")))
        .collect()
}

#[test]
fn local_settings_are_documented() {
    let missing = undocumented::<authchain::modules::LocalSettings>("docs/configuration.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[test]
fn header_settings_are_documented() {
    let missing = undocumented::<authchain::modules::HeaderSettings>("docs/configuration.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[cfg(feature = "oidc")]
#[test]
fn oidc_settings_are_documented() {
    let keys = authchain::modules::OidcSettings::keys();
    assert!(keys.contains(&"issuer") && keys.contains(&"client_id") && keys.contains(&"flow_ttl"));
    let missing = undocumented::<authchain::modules::OidcSettings>("docs/modules/oidc.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[cfg(feature = "oauth2")]
#[test]
fn oauth2_settings_are_documented() {
    let keys = authchain::modules::OAuth2Settings::keys();
    assert!(
        keys.contains(&"userinfo_endpoint") && keys.contains(&"redirect_uri") && keys.contains(&"ca_file")
    );
    let missing = undocumented::<authchain::modules::OAuth2Settings>("docs/modules/oidc.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[cfg(feature = "saml")]
#[test]
fn saml_settings_are_documented() {
    let keys = authchain::modules::SamlSettings::keys();
    assert!(
        keys.contains(&"acs_url") && keys.contains(&"flow_ttl"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"flow") && !keys.contains(&"replay"), "{keys:?}");
    let missing = undocumented::<authchain::modules::SamlSettings>("docs/modules/saml.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[cfg(feature = "cas")]
#[test]
fn cas_settings_are_documented() {
    let keys = authchain::modules::CasSettings::keys();
    assert!(
        keys.contains(&"server_url") && keys.contains(&"return_to_allowed"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"flow"), "{keys:?}");
    let missing = undocumented::<authchain::modules::CasSettings>("docs/modules/cas.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[cfg(feature = "ldap")]
#[test]
fn ldap_settings_are_documented() {
    let keys = authchain::modules::LdapSettings::keys();
    assert!(keys.contains(&"urls") && keys.contains(&"bind_password") && keys.contains(&"pool_size"));
    let missing = undocumented::<authchain::modules::LdapSettings>("docs/modules/ldap.md");
    assert_eq!(missing, Vec::<&str>::new());
    // One settings table: each key has exactly one row.
    let text = include_str!("../docs/modules/ldap.md");
    for key in keys {
        let row = format!("| `{key}` |");
        let rows = text.lines().filter(|line| line.starts_with(&row)).count();
        assert_eq!(rows, 1, "docs/modules/ldap.md: {rows} rows for `{key}`");
    }
}

#[cfg(feature = "signed-header")]
#[test]
fn signed_header_settings_are_documented() {
    let keys = authchain::modules::SignedHeaderSettings::keys();
    assert!(
        keys.contains(&"audience") && keys.contains(&"jwks_url") && keys.contains(&"ca_file"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"http"), "{keys:?}");
    let missing = undocumented::<authchain::modules::SignedHeaderSettings>("docs/modules/signed_header.md");
    assert_eq!(missing, Vec::<&str>::new());
}

#[cfg(feature = "key-login")]
#[test]
fn key_login_settings_are_documented() {
    let keys = authchain::modules::KeyLoginSettings::keys();
    assert!(
        keys.contains(&"audience") && keys.contains(&"max_lifetime"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"replay"), "{keys:?}");
    let missing = undocumented::<authchain::modules::KeyLoginSettings>("docs/modules/key_login.md");
    assert_eq!(missing, Vec::<&str>::new());
}
