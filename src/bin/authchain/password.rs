//! Reading secrets: from the terminal without echo, or one line of standard input
//! when it is not a terminal (scripts, tests). Never printed.

use std::io::{BufRead, IsTerminal, Read};
use std::path::Path;

use authchain::account::PasswordPolicy;
use authchain::config::Config;

/// The longest secret read (a line beyond it is refused, not truncated).
const MAX_SECRET_BYTES: usize = 4096;

/// Reads one secret: a prompt on the terminal (no echo), else a line of stdin.
pub fn read_secret(prompt: &str) -> Result<String, String> {
    let secret = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))?
    } else {
        read_line(MAX_SECRET_BYTES)?.ok_or("no password on standard input")?
    };
    if secret.is_empty() {
        return Err("empty password".into());
    }
    if secret.len() > MAX_SECRET_BYTES {
        return Err(format!("the password is longer than {MAX_SECRET_BYTES} bytes"));
    }
    Ok(secret)
}

/// One line of standard input without its line ending (`None` at end of input);
/// a line longer than `max_bytes` is refused, and never read whole.
pub fn read_line(max_bytes: usize) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(max_bytes as u64 + 2)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if read == 0 {
        return Ok(None);
    }
    let text = String::from_utf8(line).map_err(|_| "standard input is not UTF-8".to_owned())?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.len() > max_bytes {
        return Err(format!("the input line is longer than {max_bytes} bytes"));
    }
    Ok(Some(text.to_owned()))
}

/// The hash of `password` by `policy`, checked against the policy's own limits
/// (the store and the login would refuse a hash over them).
pub fn hash(policy: &PasswordPolicy, password: &str) -> Result<String, String> {
    let hash = policy.hash(password).map_err(|e| e.to_string())?;
    policy
        .limits()
        .check(&hash)
        .map_err(|e| format!("the hash is refused by the password limits: {e}"))?;
    Ok(hash)
}

/// `hash-password [--config FILE]`: the `[passwords]` policy of FILE, else OWASP's.
pub fn hash_password(config: Option<&Path>) -> Result<(), String> {
    let policy = match config {
        Some(path) => Config::from_file_with_env(path)
            .and_then(|config| config.password_policy())
            .map_err(|e| e.to_string())?,
        None => PasswordPolicy::owasp(),
    };
    let password = read_secret("password: ")?;
    println!("{}", hash(&policy, &password)?);
    Ok(())
}
