//! The configuration reference lists every key a module's settings type reads:
//! for each key of `<Name>Settings::keys()`, the module's page in `docs/modules/`
//! holds `` `key` ``.

#[allow(unused_imports)]
use authchain::settings::ModuleSettingsType;

/// Every key of `keys` missing from the page `docs/modules/<page>.md`.
#[allow(dead_code)]
fn missing(page: &str, keys: Vec<&'static str>) -> Vec<&'static str> {
    let path = format!("{}/docs/modules/{page}.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the module's page");
    keys.into_iter()
        .filter(|key| !text.contains(&format!("`{key}`")))
        .collect()
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
    assert_eq!(missing("saml", keys), Vec::<&str>::new());
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
    assert_eq!(missing("cas", keys), Vec::<&str>::new());
}
