//! The TOML examples of the guide (`docs/**/*.md`, shown in `authchain::manual`) and
//! of the README are configurations `Config::from_toml` accepts.
//!
//! * A block with a top-level `chain` key is a whole configuration and is checked
//!   as written.
//! * A block without `chain` is a fragment (one module's table, a `[store]` table,
//!   a role mapping). It is wrapped, then checked: `chain` lists the fragment's
//!   module tables; a fragment with none gets a `local` module; a module table
//!   that shows only a sub-table (no `type`) gets `type = "header"`, a type that
//!   accepts every common key.
//!
//! A block whose top level is a Cargo manifest's (`[profile.*]`, `[dependencies]`,
//! ...: the README's advice for hosts) is not a configuration and is skipped.
//!
//! A block that names a feature-gated module type (`ldap`, `oidc`, `oauth2`, `cas`,
//! `saml`), a `[sync]` table or an SQLite `[store]` is checked only when the test
//! is built with those features (`cargo test --all-features --test docs`).

use std::path::{Path, PathBuf};

use authchain::config::Config;

/// One fenced ```toml block.
struct Block {
    page: String,
    line: usize,
    text: String,
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The ```toml blocks of a Markdown page (the first word of the info string).
fn toml_blocks(page: &Path) -> Vec<Block> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = page.strip_prefix(root).unwrap_or(page).display().to_string();
    let text = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut blocks = Vec::new();
    // (is toml, first line, text) of the open fence.
    let mut open: Option<(bool, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = fence.strip_prefix("```") {
                    let lang = info.split([',', ' ']).next().unwrap_or("").trim();
                    open = Some((lang == "toml", i + 2, String::new()));
                }
            }
            Some((is_toml, first, body)) => {
                if fence.trim_end() == "```" {
                    if *is_toml {
                        blocks.push(Block {
                            page: name.clone(),
                            line: *first,
                            text: std::mem::take(body),
                        });
                    }
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "{name}: a code block is never closed");
    blocks
}

/// Top-level keys of a Cargo manifest, none of which a configuration has.
const CARGO_MANIFEST_KEYS: &[&str] = &[
    "package",
    "workspace",
    "dependencies",
    "dev-dependencies",
    "build-dependencies",
    "features",
    "profile",
    "patch",
];

/// The crate features a block needs, and whether this build has them.
fn needed_features(table: &toml::Table) -> Vec<(&'static str, bool)> {
    let mut needed = Vec::new();
    let mut need = |feature: &'static str, enabled: bool| {
        if !needed.iter().any(|(f, _)| *f == feature) {
            needed.push((feature, enabled));
        }
    };
    if let Some(modules) = table.get("modules").and_then(toml::Value::as_table) {
        for module in modules.values() {
            match module.get("type").and_then(toml::Value::as_str) {
                Some("ldap") => need("ldap", cfg!(feature = "ldap")),
                Some("oidc") => need("oidc", cfg!(feature = "oidc")),
                Some("oauth2") => need("oauth2", cfg!(feature = "oauth2")),
                Some("cas") => need("cas", cfg!(feature = "cas")),
                Some("saml") => need("saml", cfg!(feature = "saml")),
                Some("key_login") => need("key-login", cfg!(feature = "key-login")),
                _ => {}
            }
        }
    }
    if table.contains_key("sync") {
        need("sync", cfg!(feature = "sync"));
    }
    let store_type = table
        .get("store")
        .and_then(|s| s.get("type"))
        .and_then(toml::Value::as_str);
    if store_type == Some("sqlite") {
        need("sqlite", cfg!(feature = "sqlite"));
    }
    if store_type == Some("postgres") {
        need("postgres", cfg!(feature = "postgres"));
    }
    let state_type = table
        .get("state")
        .and_then(|s| s.get("type"))
        .and_then(toml::Value::as_str);
    match state_type {
        Some("sqlite") => need("sqlite", cfg!(feature = "sqlite")),
        Some("postgres") => need("postgres", cfg!(feature = "postgres")),
        Some("redis") => need("redis", cfg!(feature = "redis")),
        _ => {}
    }
    needed
}

/// A fragment made a whole configuration (see the file's comment).
fn wrap(mut table: toml::Table) -> String {
    let modules = table
        .entry("modules")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("`modules` is a table");
    if modules.is_empty() {
        let mut local = toml::Table::new();
        local.insert("type".into(), "local".into());
        modules.insert("local".into(), local.into());
    }
    let mut ids = Vec::new();
    for (id, module) in modules.iter_mut() {
        let module = module.as_table_mut().expect("a module is a table");
        module.entry("type").or_insert_with(|| "header".into());
        ids.push(toml::Value::from(id.as_str()));
    }
    table.insert("chain".into(), toml::Value::Array(ids));
    toml::to_string(&table).expect("a TOML table serialises")
}

#[test]
fn every_toml_example_is_a_configuration_from_toml_accepts() {
    let (mut whole, mut wrapped, mut skipped) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for page in pages() {
        for block in toml_blocks(&page) {
            let at = format!("{} (block at line {})", block.page, block.line);
            let table: toml::Table = match toml::from_str(&block.text) {
                Ok(table) => table,
                Err(err) => {
                    failures.push(format!("{at}: not TOML: {err}\n{}", block.text));
                    continue;
                }
            };
            if CARGO_MANIFEST_KEYS.iter().any(|key| table.contains_key(*key)) {
                skipped.push(format!("{at}: a Cargo manifest"));
                continue;
            }
            let missing: Vec<_> = needed_features(&table)
                .into_iter()
                .filter(|(_, enabled)| !enabled)
                .map(|(feature, _)| feature)
                .collect();
            if !missing.is_empty() {
                skipped.push(format!("{at}: needs feature {}", missing.join(", ")));
                continue;
            }
            let text = if table.contains_key("chain") {
                whole += 1;
                block.text.clone()
            } else {
                wrapped += 1;
                wrap(table)
            };
            if let Err(err) = Config::from_toml(&text) {
                failures.push(format!("{at}: {err}\n--- checked text:\n{text}---"));
            }
        }
    }
    for skip in &skipped {
        println!("skipped {skip}");
    }
    println!("checked {whole} whole configurations and {wrapped} wrapped fragments");
    assert!(whole > 0, "no whole configuration found in the guide");
    assert!(failures.is_empty(), "refused:\n\n{}", failures.join("\n\n"));
}
