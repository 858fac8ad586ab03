//! The `authchain` command line (feature `cli`); docs/cli.md is its guide.
//!
//! One file per command: `check` (check-config), `user`, `key`, `try_login`,
//! `sp_metadata`, `sync`, `password` (hash-password and secret prompts).
#![forbid(unsafe_code)]

mod args;
mod check;
mod key;
mod password;
mod sp_metadata;
mod sync;
mod try_login;
mod user;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use args::Options;
use key::KeyAction;

const USAGE: &str = "\
authchain — enterprise sign-in for Rust services

USAGE:
    authchain check-config --config FILE [--json]
        Parse the configuration and build its chain without opening the store
        (nothing is written). Lists every error with its line and key; exits
        non-zero on errors and on configurations that can never authenticate
        anybody (a header module trusting no proxy, every module disabled or hidden).
    authchain try-login --config FILE --module ID [--login NAME] [--header 'Name: value']... [--peer ADDR] [--json]
        One login through the configured chain. Password modules read the password
        from the terminal without echo (or a line of standard input); redirect
        modules print the URL to open and read the callback URL (or, for SAML, the
        posted form body) pasted back. Prints the principal, its groups and roles,
        or the typed error (exit 1).
    authchain sp-metadata --config FILE --module ID
        Print the SAML service provider metadata of a saml module.
    authchain user list --config FILE [--json]
    authchain user show --config FILE --login NAME [--json]
    authchain user add --config FILE --login NAME [--email E] [--name N] [--role R]... [--password] [--disabled]
    authchain user disable|enable|set-password --config FILE --login NAME
    authchain user grant|revoke --config FILE --login NAME --role ROLE
    authchain user unlink --config FILE --login NAME --provider MODULE
        Accounts of the configured store. Passwords are read without echo and
        hashed by the [passwords] policy.
    authchain hash-password [--config FILE]
        Read a password (no echo on a terminal, else a line of standard input);
        print its argon2id hash (PHC string) by the [passwords] policy of FILE.
    authchain key add --config FILE --login NAME --file KEY.pem [--label LABEL]
        Register a public key (PEM SubjectPublicKeyInfo: RSA of at least 2048 bits,
        EC P-256 or Ed25519) to an account, for key-based login.
    authchain key list --config FILE --login NAME [--json]
    authchain key revoke --config FILE --login NAME --key ID
    authchain sync --config FILE [--once] [--progress-every SECONDS]
        Mirror the directory described by [sync] into the configured store: a
        progress bar on a terminal, a line every SECONDS (default 10) otherwise,
        a summary at the end. Follows changes until interrupted (Ctrl-C); SIGHUP
        re-reads the configuration; --once stops when the store is up to date.
    authchain --help | --version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(why)) => {
            eprintln!("authchain: {why}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(why)) => {
            eprintln!("authchain: {why}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    /// Bad arguments: exit 2 with the usage.
    Usage(String),
    /// The command ran and failed: exit 1.
    Failed(String),
}

fn run(args: &[String]) -> Result<(), Failure> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let usage = Failure::Usage;
    let failed = Failure::Failed;
    let parse = |valued, flags| Options::parse(rest, valued, flags).map_err(usage);
    match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        "-V" | "--version" => {
            println!("authchain {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "check-config" => {
            let options = parse(&["--config"], &["--json"])?;
            let config = options.config(command).map_err(usage)?;
            check::check_config(&config, options.flag("--json")).map_err(failed)
        }
        "hash-password" => {
            let options = parse(&["--config"], &[])?;
            password::hash_password(options.value("--config").map(std::path::Path::new)).map_err(failed)
        }
        "try-login" => {
            let options = parse(
                &["--config", "--module", "--login", "--header", "--peer"],
                &["--json"],
            )?;
            let config = options.config(command).map_err(usage)?;
            options.required("--module", command).map_err(usage)?;
            try_login::try_login(&config, &options).map_err(failed)
        }
        "sp-metadata" => {
            let options = parse(&["--config", "--module"], &[])?;
            let config = options.config(command).map_err(usage)?;
            let module = options.required("--module", command).map_err(usage)?;
            sp_metadata::sp_metadata(&config, module).map_err(failed)
        }
        "user" => {
            let Some((action, rest)) = rest.split_first() else {
                return Err(usage(
                    "`user` needs one of: list, show, add, disable, enable, set-password, grant, revoke, unlink".into(),
                ));
            };
            const ACTIONS: [&str; 9] = [
                "list",
                "show",
                "add",
                "disable",
                "enable",
                "set-password",
                "grant",
                "revoke",
                "unlink",
            ];
            if !ACTIONS.contains(&action.as_str()) {
                return Err(usage(format!("unknown user command `{action}`")));
            }
            let (valued, flags) = user::options(action);
            let options = Options::parse(rest, valued, flags).map_err(usage)?;
            options.config(&format!("user {action}")).map_err(usage)?;
            let needed: &[&str] = match action.as_str() {
                "list" => &[],
                "grant" | "revoke" => &["--login", "--role"],
                "unlink" => &["--login", "--provider"],
                _ => &["--login"],
            };
            for name in needed {
                options.required(name, &format!("user {action}")).map_err(usage)?;
            }
            user::run(action, &options).map_err(failed)
        }
        "key" => {
            let (config, login, action) = parse_key(rest).map_err(usage)?;
            runtime()
                .and_then(|rt| rt.block_on(key::key(config, login, action)))
                .map_err(failed)
        }
        "sync" => {
            let options = parse(&["--config", "--progress-every"], &["--once"])?;
            let config = options.config(command).map_err(usage)?;
            let every = match options.value("--progress-every") {
                Some(text) => {
                    Some(Duration::from_secs(text.parse().map_err(|_| {
                        usage("--progress-every needs a whole number of seconds".into())
                    })?))
                }
                None => None,
            };
            runtime()
                .and_then(|rt| rt.block_on(sync::sync(config, options.flag("--once"), every)))
                .map_err(failed)
        }
        other => Err(usage(format!("unknown command `{other}`"))),
    }
}

fn parse_key(args: &[String]) -> Result<(PathBuf, String, KeyAction), String> {
    let Some((action, rest)) = args.split_first() else {
        return Err("`key` needs one of: add, list, revoke".into());
    };
    let options = match action.as_str() {
        "add" => Options::parse(rest, &["--config", "--login", "--file", "--label"], &[])?,
        "list" => Options::parse(rest, &["--config", "--login"], &["--json"])?,
        "revoke" => Options::parse(rest, &["--config", "--login", "--key"], &[])?,
        other => return Err(format!("unknown key command `{other}` (add, list, revoke)")),
    };
    let command = format!("key {action}");
    let action = match action.as_str() {
        "add" => KeyAction::Add {
            file: PathBuf::from(options.required("--file", &command)?),
            label: options.value("--label").map(str::to_owned),
        },
        "list" => KeyAction::List {
            json: options.flag("--json"),
        },
        _ => KeyAction::Revoke {
            key: options.required("--key", &command)?.to_owned(),
        },
    };
    Ok((
        options.config(&command)?,
        options.required("--login", &command)?.to_owned(),
        action,
    ))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}
