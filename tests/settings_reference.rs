//! The configuration reference lists every settings key: for each module, every
//! key its settings type reads (`ModuleSettingsType::keys()`) appears as `` `key` ``
//! on the module's page under docs/modules/.

#[allow(unused_imports)]
use authchain::settings::ModuleSettingsType;

/// The keys of `keys` missing from the page `docs/modules/<page>.md`.
#[allow(dead_code)]
fn missing_from(page: &str, keys: Vec<&'static str>) -> Vec<&'static str> {
    let path = format!("{}/docs/modules/{page}.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    keys.into_iter()
        .filter(|key| !text.contains(&format!("`{key}`")))
        .collect()
}

#[cfg(feature = "oidc")]
#[test]
fn oidc_settings_are_all_documented() {
    let keys = authchain::modules::OidcSettings::keys();
    assert!(keys.contains(&"issuer") && keys.contains(&"client_id") && keys.contains(&"flow_ttl"));
    assert_eq!(missing_from("oidc", keys), Vec::<&str>::new());
}

#[cfg(feature = "oauth2")]
#[test]
fn oauth2_settings_are_all_documented() {
    let keys = authchain::modules::OAuth2Settings::keys();
    assert!(
        keys.contains(&"userinfo_endpoint") && keys.contains(&"redirect_uri") && keys.contains(&"ca_file")
    );
    assert_eq!(missing_from("oidc", keys), Vec::<&str>::new());
}
