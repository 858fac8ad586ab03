//! `sp-metadata`: the SAML service provider metadata of one module, for the IdP.

use std::path::Path;
use std::sync::Arc;

use authchain::account::MemoryUserStore;
use authchain::config::{Config, Stores};
use authchain::modules::SamlModule;

pub fn sp_metadata(path: &Path, module: &str) -> Result<(), String> {
    let config = Config::from_file_with_env(path).map_err(|e| e.to_string())?;
    match config.module_type(module) {
        Some("saml") => {}
        Some(other) => return Err(format!("module `{module}` is of type \"{other}\", not \"saml\"")),
        None => return Err(format!("{}: no module `{module}` in `chain`", path.display())),
    }
    // The metadata needs no account: the configured store is not opened.
    let chain = config
        .build(Stores::new(Arc::new(MemoryUserStore::new())))
        .map_err(|e| e.to_string())?;
    let saml = chain
        .module::<SamlModule>(module)
        .ok_or_else(|| format!("module `{module}` is not a SAML module"))?;
    println!("{}", saml.sp_metadata_xml());
    Ok(())
}
