//! `check-config`: parse, build and judge a configuration, writing nothing.

use std::path::Path;
use std::sync::Arc;

use authchain::ConfigError;
use authchain::account::MemoryUserStore;
use authchain::config::{Config, StoreConfig, Stores};

/// Every error with its line and key path, one a line; `Err` (a non-zero exit)
/// when there is any, or when the configuration can never authenticate anybody.
pub fn check_config(path: &Path, json: bool) -> Result<(), String> {
    let (config, errors) = match Config::from_file_with_env(path) {
        Ok(config) => {
            // Built over memory stores: the configured store is not opened, so no
            // database file is created or migrated.
            let built = config.build(Stores::new(Arc::new(MemoryUserStore::new())));
            let mut errors: Vec<Error> = built.err().iter().flat_map(Error::all).collect();
            errors.extend(config.dead_ends().iter().flat_map(Error::all));
            (Some(config), errors)
        }
        Err(error) => (None, Error::all(&error)),
    };
    if json {
        let report = serde_json::json!({
            "file": path.display().to_string(),
            "ok": errors.is_empty(),
            "modules": config.as_ref().map(|c| c.module_ids().collect::<Vec<_>>()).unwrap_or_default(),
            "store": config.as_ref().map(|c| store_text(c.store())),
            "errors": errors.iter().map(|e| serde_json::json!({
                "key": e.key, "line": e.line, "column": e.column, "message": e.message,
            })).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else if let (true, Some(config)) = (errors.is_empty(), config.as_ref()) {
        println!("{}: ok", path.display());
        println!("  store {}", store_text(config.store()));
        for id in config.module_ids() {
            println!("  module {id}");
        }
    } else {
        for error in &errors {
            let line = error.line.map(|l| format!("{l}:{}: ", error.column.unwrap_or(1)));
            eprintln!(
                "{}:{}{}",
                path.display(),
                line.unwrap_or_else(|| " ".into()),
                error.message
            );
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err("1 configuration error".into()),
        n => Err(format!("{n} configuration errors")),
    }
}

fn store_text(store: Option<&StoreConfig>) -> String {
    match store {
        None | Some(StoreConfig::Memory) => "memory".into(),
        Some(StoreConfig::Sqlite { path, .. }) => format!("sqlite {}", path.display()),
        Some(other) => format!("{other:?}"),
    }
}

/// One error as the report shows it.
struct Error {
    key: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

impl Error {
    fn all(error: &ConfigError) -> Vec<Error> {
        error
            .errors()
            .into_iter()
            .map(|e| Error {
                key: e.key().map(str::to_owned),
                line: e.location().map(|l| l.line),
                column: e.location().map(|l| l.column),
                message: e.to_string(),
            })
            .collect()
    }
}
