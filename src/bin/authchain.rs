//! The `authchain` command line (feature `cli`).
//!
//! ```text
//! authchain sync --config FILE [--once]   mirror the [sync] directory into the configured store
//! authchain check-config --config FILE    build the configured chain and list its modules
//! authchain hash-password [--config FILE] read a password on stdin, print its argon2id hash
//! ```
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use authchain::account::PasswordPolicy;
use authchain::config::{Config, StoreConfig};
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
    authchain --help | --version
";

enum Command {
    Sync { config: PathBuf, once: bool },
    CheckConfig { config: PathBuf },
    HashPassword { config: Option<PathBuf> },
    Help,
    Version,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
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
