//! The `authchain` command line (feature `cli`).
//!
//! ```text
//! authchain sync --config FILE [--once]   mirror the [sync] directory into the configured store
//! authchain check-config --config FILE    build the configured chain and list its modules
//! authchain hash-password [--config FILE] read a password on stdin, print its argon2id hash
//! authchain key add --config FILE --login NAME --file KEY.pem [--label L]
//! authchain key list --config FILE --login NAME [--json]
//! authchain key revoke --config FILE --login NAME --key ID
//! ```
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use authchain::account::{KeyFamily, KeyId, NewPublicKey, PasswordPolicy, UserStore};
use authchain::config::{Config, StoreConfig};
use authchain::jose::{RingJwk, RingKeyType};
use authchain::sync::{SyncPhase, SyncStatus};

const USAGE: &str = "\
authchain — enterprise sign-in for Rust services

USAGE:
    authchain sync --config FILE [--once]
        Mirror the directory described by [sync] into the configured store.
        Prints progress during the initial refresh, then follows changes until
        interrupted (Ctrl-C), or stops once the store is up to date (--once).
    authchain check-config --config FILE
        Parse the configuration, build the chain, and list its modules.
    authchain hash-password [--config FILE]
        Read a password from standard input; print its argon2id hash (PHC string),
        with the [passwords] parameters and limits of FILE if given.
    authchain key add --config FILE --login NAME --file KEY.pem [--label LABEL]
        Register a public key (PEM SubjectPublicKeyInfo: RSA of at least 2048 bits,
        EC P-256 or Ed25519) to an account of the configured SQLite store, for
        key-based login. Prints the new key's id and fingerprint.
    authchain key list --config FILE --login NAME [--json]
        List the account's keys, revoked ones included.
    authchain key revoke --config FILE --login NAME --key ID
        Revoke one of the account's keys.
    authchain --help | --version
";

/// The largest key file `key add` reads.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

enum Command {
    Sync {
        config: PathBuf,
        once: bool,
    },
    CheckConfig {
        config: PathBuf,
    },
    HashPassword {
        config: Option<PathBuf>,
    },
    Key {
        config: PathBuf,
        login: String,
        action: KeyAction,
    },
    Help,
    Version,
}

enum KeyAction {
    Add { file: PathBuf, label: Option<String> },
    List { json: bool },
    Revoke { key: String },
}

fn parse_key(args: &[String]) -> Result<Command, String> {
    let Some((action, rest)) = args.split_first() else {
        return Err("`key` needs one of: add, list, revoke".into());
    };
    let (mut config, mut login, mut file, mut label, mut key, mut json) =
        (None, None, None, None, None, false);
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let mut value = |what: &str| rest.next().cloned().ok_or_else(|| format!("{arg} needs {what}"));
        match (action.as_str(), arg.as_str()) {
            (_, "--config") => config = Some(PathBuf::from(value("a file")?)),
            (_, "--login") => login = Some(value("a login name")?),
            ("add", "--file") => file = Some(PathBuf::from(value("a file")?)),
            ("add", "--label") => label = Some(value("a label")?),
            ("revoke", "--key") => key = Some(value("a key id")?),
            ("list", "--json") => json = true,
            (_, other) => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let action = match action.as_str() {
        "add" => KeyAction::Add {
            file: file.ok_or("`key add` needs --file KEY.pem")?,
            label,
        },
        "list" => KeyAction::List { json },
        "revoke" => KeyAction::Revoke {
            key: key.ok_or("`key revoke` needs --key ID")?,
        },
        other => return Err(format!("unknown key command `{other}` (add, list, revoke)")),
    };
    Ok(Command::Key {
        config: config.ok_or("`key` needs --config FILE")?,
        login: login.ok_or("`key` needs --login NAME")?,
        action,
    })
}

fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    if command == "key" {
        return parse_key(rest);
    }
    let mut config = None;
    let mut once = false;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(rest.next().ok_or("--config needs a file")?)),
            "--once" if command == "sync" => once = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    let config = || {
        config
            .clone()
            .ok_or_else(|| format!("`{command}` needs --config FILE"))
    };
    match command.as_str() {
        "sync" => Ok(Command::Sync {
            config: config()?,
            once,
        }),
        "check-config" => Ok(Command::CheckConfig { config: config()? }),
        "hash-password" => Ok(Command::HashPassword {
            config: config().ok(),
        }),
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        other => Err(format!("unknown command `{other}`")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(why) => {
            eprintln!("authchain: {why}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("authchain {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::HashPassword { config } => hash_password(config),
        Command::CheckConfig { config } => runtime().and_then(|rt| rt.block_on(check_config(config))),
        Command::Sync { config, once } => runtime().and_then(|rt| rt.block_on(sync(config, once))),
        Command::Key {
            config,
            login,
            action,
        } => runtime().and_then(|rt| rt.block_on(key(config, login, action))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("authchain: {why}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn hash_password(config: Option<PathBuf>) -> Result<(), String> {
    let policy = match config {
        Some(path) => Config::from_file(&path)
            .and_then(|config| config.password_policy())
            .map_err(|e| e.to_string())?,
        None => PasswordPolicy::owasp(),
    };
    if std::io::stdin().is_terminal() {
        eprint!("password (echoed): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("empty password".into());
    }
    let hash = policy.hash(password).map_err(|e| e.to_string())?;
    // The same limits as the store and the login: never print a hash they refuse.
    policy
        .limits()
        .check(&hash)
        .map_err(|e| format!("the hash is refused by the password limits: {e}"))?;
    println!("{hash}");
    Ok(())
}

async fn check_config(path: PathBuf) -> Result<(), String> {
    let config = Config::from_file(&path).map_err(|e| e.to_string())?;
    let stores = config.open_stores().await.map_err(|e| e.to_string())?;
    config.build(stores).map_err(|e| e.to_string())?;
    println!("{}: ok", path.display());
    for id in config.module_ids() {
        println!("  module {id}");
    }
    Ok(())
}

async fn sync(path: PathBuf, once: bool) -> Result<(), String> {
    let config = Config::from_file(&path).map_err(|e| e.to_string())?;
    let Some(store @ StoreConfig::Sqlite { .. }) = config.store() else {
        return Err(format!(
            "{}: directory sync writes into a `[store] type = \"sqlite\"` store",
            path.display()
        ));
    };
    let target = Arc::new(store.open_sqlite().await.map_err(|e| e.to_string())?);
    let synchronizer = config
        .synchronizer(target)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: no [sync] table", path.display()))?;
    let mut status = synchronizer.status();
    let progress = tokio::spawn(show_progress(synchronizer.status()));
    let shutdown = async move {
        if once {
            let _ = status
                .wait_for(|s| matches!(s.phase, SyncPhase::Live | SyncPhase::Waiting))
                .await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    let report = synchronizer.run(shutdown).await.map_err(|e| e.to_string())?;
    // The synchroniser is gone: its status channel closes and the progress task ends.
    let _ = progress.await;
    println!("sync stopped: {report}");
    Ok(())
}

/// A progress line during the refresh, a line when it is done, one per lost
/// connection, and one when the source starts polling.
async fn show_progress(mut status: tokio::sync::watch::Receiver<SyncStatus>) {
    let mut refreshing = true;
    let mut polling = None;
    loop {
        let current = status.borrow_and_update().clone();
        if current.poll_interval != polling {
            if let Some(every) = current.poll_interval {
                eprintln!("\rpolling the directory every {} s", every.as_secs_f64());
            }
            polling = current.poll_interval;
        }
        match current.phase {
            SyncPhase::Refreshing => {
                eprint!(
                    "\rrefresh: {} changes received, {}",
                    current.refresh_changes, current.report
                );
                refreshing = true;
            }
            _ if current.refreshed && refreshing => {
                eprintln!(
                    "\rrefresh done ({}): {}",
                    if current.resumed {
                        "resumed from the stored cookie"
                    } else {
                        "full"
                    },
                    current.report
                );
                refreshing = false;
            }
            SyncPhase::Connecting => {
                if let Some(error) = &current.last_error {
                    eprintln!("\rdirectory unavailable, retrying: {error}");
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// The account `login` names in the configured SQLite store (exact name first,
/// then case-insensitively).
async fn key_account(
    path: &std::path::Path,
    login: &str,
) -> Result<(authchain::account::SqliteStore, authchain::account::Account), String> {
    let config = Config::from_file(path).map_err(|e| e.to_string())?;
    let Some(store @ StoreConfig::Sqlite { .. }) = config.store() else {
        return Err(format!(
            "{}: keys are registered in a `[store] type = \"sqlite\"` store",
            path.display()
        ));
    };
    let store = store.open_sqlite().await.map_err(|e| e.to_string())?;
    let account = match store
        .find_by_login(login, false)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(account) => Some(account),
        None => store
            .find_by_login(login, true)
            .await
            .map_err(|e| e.to_string())?,
    };
    let account = account.ok_or_else(|| format!("no account {login:?}"))?;
    Ok((store, account))
}

/// A PEM public key file as DER, checked (size before reading, then parsed).
fn read_public_key(file: &std::path::Path) -> Result<(KeyFamily, Vec<u8>), String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let size = std::fs::metadata(file).map_err(cannot)?.len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_KEY_FILE_BYTES} bytes, not a public key",
            file.display()
        ));
    }
    let pem = std::fs::read_to_string(file).map_err(cannot)?;
    let key = RingJwk::from_public_key_pem(&pem, None).map_err(|e| format!("{}: {e}", file.display()))?;
    let family = match key.kind() {
        RingKeyType::Rsa => KeyFamily::Rsa,
        RingKeyType::P256 => KeyFamily::P256,
        RingKeyType::Ed25519 => KeyFamily::Ed25519,
        _ => {
            return Err(format!(
                "{}: key login accepts RSA, EC P-256 and Ed25519 keys",
                file.display()
            ));
        }
    };
    // Parsed above: the same block, as DER, is what the store keeps.
    let (_, der) = spki::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|_| format!("{}: not a PEM public key", file.display()))?;
    Ok((family, der))
}

fn time_text(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn key(path: PathBuf, login: String, action: KeyAction) -> Result<(), String> {
    let (store, account) = key_account(&path, &login).await?;
    match action {
        KeyAction::Add { file, label } => {
            let (family, der) = read_public_key(&file)?;
            let mut new = NewPublicKey::new(family, der);
            if let Some(label) = label {
                new = new.label(label);
            }
            let key = store
                .add_public_key(&account.id, new)
                .await
                .map_err(|e| e.to_string())?;
            println!("{} {} {}", key.id, key.family, key.fingerprint());
        }
        KeyAction::List { json } => {
            let keys = store.public_keys(&account.id).await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id.0,
                            "family": k.family.as_str(),
                            "fingerprint": k.fingerprint(),
                            "label": k.label,
                            "created_at": time_text(k.created_at),
                            "revoked_at": k.revoked_at.map(time_text),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for k in &keys {
                    let state = match k.revoked_at {
                        Some(at) => format!("revoked {}", time_text(at)),
                        None => "active".into(),
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{:?}",
                        k.id,
                        k.family,
                        k.fingerprint(),
                        state,
                        k.label.as_deref().unwrap_or("")
                    );
                }
            }
        }
        KeyAction::Revoke { key } => {
            let revoked = store
                .revoke_public_key(&account.id, &KeyId(key), std::time::SystemTime::now())
                .await
                .map_err(|e| e.to_string())?;
            println!("{} revoked", revoked.id);
        }
    }
    store.close().await;
    Ok(())
}
