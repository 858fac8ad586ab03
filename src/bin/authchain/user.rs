//! `user list|show|add|disable|enable|set-password|grant|revoke|unlink`: accounts
//! of the configured store, opened through `Config::open_stores` (any store kind
//! the library knows).

use std::time::SystemTime;

use authchain::account::{Account, MAX_LISTED_ACCOUNTS, NewAccount, UserStore};
use authchain::config::Config;

use crate::args::Options;
use crate::password;

/// The user commands and the options each takes.
pub fn run(action: &str, options: &Options) -> Result<(), String> {
    let command = format!("user {action}");
    let config_path = options.config(&command)?;
    let config = Config::from_file_with_env(&config_path).map_err(|e| e.to_string())?;
    crate::runtime()?.block_on(async {
        let stores = config.open_stores().await.map_err(|e| e.to_string())?;
        let store = stores.users().clone();
        let json = options.flag("--json");
        if action == "list" {
            return list(store.as_ref(), json).await;
        }
        let login = options.required("--login", &command)?;
        if action == "add" {
            return add(&config, store.as_ref(), login, options).await;
        }
        let account = find(store.as_ref(), login).await?;
        let id = &account.id;
        let done = match action {
            "show" => {
                print_account(&account, json);
                return Ok(());
            }
            "disable" | "enable" => {
                store
                    .set_disabled(id, action == "disable")
                    .await
                    .map_err(|e| e.to_string())?;
                format!("{} {action}d", account.login)
            }
            "set-password" => {
                let policy = config.password_policy().map_err(|e| e.to_string())?;
                let secret = password::read_secret(&format!("new password for {}: ", account.login))?;
                let hash = password::hash(&policy, &secret)?;
                store
                    .set_password_hash(id, &hash)
                    .await
                    .map_err(|e| e.to_string())?;
                format!("{}: password set", account.login)
            }
            "grant" | "revoke" => {
                let role = options.required("--role", &command)?;
                store
                    .set_local_role(id, role, action == "grant")
                    .await
                    .map_err(|e| e.to_string())?;
                let verb = if action == "grant" { "granted" } else { "revoked" };
                format!("{}: role {role} {verb}", account.login)
            }
            "unlink" => {
                let provider = options.required("--provider", &command)?;
                let removed = store.unlink(id, provider).await.map_err(|e| e.to_string())?;
                if removed == 0 {
                    return Err(format!("{} has no link to {provider}", account.login));
                }
                format!("{}: unlinked from {provider}", account.login)
            }
            other => return Err(format!("unknown user command `{other}`")),
        };
        println!("{done}");
        Ok(())
    })
}

/// The valued options and switches of `user ACTION`.
pub fn options(action: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match action {
        "list" => (&["--config"], &["--json"]),
        "show" => (&["--config", "--login"], &["--json"]),
        "add" => (
            &["--config", "--login", "--email", "--name", "--role"],
            &["--password", "--disabled"],
        ),
        "grant" | "revoke" => (&["--config", "--login", "--role"], &[]),
        "unlink" => (&["--config", "--login", "--provider"], &[]),
        _ => (&["--config", "--login"], &[]),
    }
}

/// The account `login` names: the exact name first, then case-insensitively.
pub async fn find(store: &dyn UserStore, login: &str) -> Result<Account, String> {
    if let Some(account) = store
        .find_by_login(login, false)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(account);
    }
    store
        .find_by_login(login, true)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no account {login:?}"))
}

async fn add(config: &Config, store: &dyn UserStore, login: &str, options: &Options) -> Result<(), String> {
    let mut new = NewAccount::new(login).disabled(options.flag("--disabled"));
    if let Some(email) = options.value("--email") {
        new = new.email(email);
    }
    if let Some(name) = options.value("--name") {
        new = new.display_name(name);
    }
    for role in options.all("--role") {
        new = new.role(role.clone());
    }
    if options.flag("--password") {
        let policy = config.password_policy().map_err(|e| e.to_string())?;
        let secret = password::read_secret(&format!("password for {login}: "))?;
        new = new.password_hash(password::hash(&policy, &secret)?);
    }
    let account = store.create_account(new).await.map_err(|e| e.to_string())?;
    println!("{} created ({})", account.login, account.id.0);
    Ok(())
}

async fn list(store: &dyn UserStore, json: bool) -> Result<(), String> {
    let mut after: Option<String> = None;
    let mut listed = Vec::new();
    loop {
        let page = store
            .list_accounts(after.as_deref(), MAX_LISTED_ACCOUNTS)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() == MAX_LISTED_ACCOUNTS;
        after = page.last().map(|a| a.login.clone());
        for account in page {
            if json {
                listed.push(account_json(&account));
            } else {
                let state = if account.disabled { "disabled" } else { "active" };
                let roles = account
                    .effective_roles()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(",");
                println!(
                    "{}\t{}\t{state}\t{roles}",
                    account.login,
                    account.email.as_deref().unwrap_or("-")
                );
            }
        }
        if !full {
            break;
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(listed));
    }
    Ok(())
}

fn print_account(account: &Account, json: bool) {
    if json {
        println!("{}", account_json(account));
        return;
    }
    let join = |set: &std::collections::BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
    println!("login:        {}", account.login);
    println!("id:           {}", account.id.0);
    println!("email:        {}", account.email.as_deref().unwrap_or("-"));
    println!("name:         {}", account.display_name.as_deref().unwrap_or("-"));
    println!("disabled:     {}", account.disabled);
    println!(
        "password:     {}",
        if account.password_hash.is_some() {
            "set"
        } else {
            "none"
        }
    );
    println!("local roles:  {}", join(&account.roles));
    for (provider, roles) in &account.mapped_roles {
        println!("roles from {provider}: {}", join(roles));
    }
    for link in &account.links {
        println!("linked:       {} {}", link.provider, link.subject);
    }
    println!("created:      {}", seconds(account.created_at));
    println!(
        "last login:   {}",
        account
            .last_login
            .map(seconds)
            .map_or("never".into(), |s| s.to_string())
    );
}

/// An account for scripts; the password hash is never shown, only whether one is set.
fn account_json(account: &Account) -> serde_json::Value {
    serde_json::json!({
        "id": account.id.0,
        "login": account.login,
        "email": account.email,
        "display_name": account.display_name,
        "disabled": account.disabled,
        "has_password": account.password_hash.is_some(),
        "roles": account.roles,
        "mapped_roles": account.mapped_roles,
        "effective_roles": account.effective_roles(),
        "links": account.links.iter().map(|l| serde_json::json!({"provider": l.provider, "subject": l.subject})).collect::<Vec<_>>(),
        "created_at": seconds(account.created_at),
        "last_login": account.last_login.map(seconds),
    })
}

/// Seconds since the Unix epoch.
pub fn seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
