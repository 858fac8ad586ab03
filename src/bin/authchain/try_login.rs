//! `try-login`: one login through the configured chain, as a browser or a login
//! form would send it, printing the principal or the typed error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use authchain::config::Config;
use authchain::{AuthChain, AuthRequest, Credentials, LoginResult, Principal, StartLogin};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::args::Options;
use crate::password;

/// The longest pasted callback (URL or form body: a SAML response is large).
const MAX_CALLBACK_BYTES: usize = 1024 * 1024;
/// The longest login name typed at the prompt.
const MAX_LOGIN_BYTES: usize = 1024;

pub fn try_login(path: &Path, options: &Options) -> Result<(), String> {
    let module = options.required("--module", "try-login")?;
    let config = Config::from_file_with_env(path).map_err(|e| e.to_string())?;
    let kind = config
        .module_type(module)
        .ok_or_else(|| format!("{}: no module `{module}` in `chain`", path.display()))?
        .to_owned();
    let peer: SocketAddr = options
        .value("--peer")
        .unwrap_or("127.0.0.1:0")
        .parse()
        .map_err(|_| "--peer needs an address like 10.0.0.1:4000".to_owned())?;
    let json = options.flag("--json");
    crate::runtime()?.block_on(async {
        let stores = config.open_stores().await.map_err(|e| e.to_string())?;
        let chain = config.build(stores).map_err(|e| e.to_string())?;
        let base = AuthRequest::new(peer)
            .with_headers(headers(options.all("--header"))?)
            .select(module);
        let result = match kind.as_str() {
            "local" | "ldap" => {
                let login = match options.value("--login") {
                    Some(login) => login.to_owned(),
                    None => {
                        eprint!("login: ");
                        password::read_line(MAX_LOGIN_BYTES)?.ok_or("no login name on standard input")?
                    }
                };
                let secret = password::read_secret(&format!("password for {login}: "))?;
                chain.login(&base.with_password(login, secret)).await
            }
            "key_login" => {
                let token = password::read_secret("signed assertion: ")?;
                chain.login(&base.with_assertion(token)).await
            }
            "oidc" | "oauth2" | "saml" | "cas" => redirect_login(&chain, base).await?,
            _ => chain.login(&base).await,
        };
        report(result, json)
    })
}

/// Starts the redirect login, prints where to go, and finishes it with the
/// callback the user pastes (the callback URL, or a posted form's body for SAML).
async fn redirect_login(
    chain: &AuthChain,
    base: AuthRequest,
) -> Result<Result<LoginResult, authchain::AuthError>, String> {
    let start = base
        .clone()
        .with_credentials(Credentials::Start(StartLogin::new()));
    let redirect = match chain.login(&start).await {
        Ok(LoginResult::Redirect(redirect)) => redirect,
        other => return Ok(other),
    };
    eprintln!("Open this URL in a browser, sign in, then paste the URL the browser lands on:");
    println!("{}", redirect.location);
    let pasted = password::read_line(MAX_CALLBACK_BYTES)?.ok_or("no callback on standard input")?;
    let mut callback = base.with_credentials(Credentials::Callback {
        params: callback_params(pasted.trim())?,
    });
    callback.flow_cookie = redirect.flow_cookie_value().map(str::to_owned);
    Ok(chain.login(&callback).await)
}

/// The parameters of a callback URL's query, or of a form body (`a=1&b=2`).
fn callback_params(pasted: &str) -> Result<BTreeMap<String, String>, String> {
    let query = if pasted.contains("://") {
        let url = url::Url::parse(pasted).map_err(|e| format!("not a URL: {e}"))?;
        url.query().unwrap_or_default().to_owned()
    } else {
        pasted.to_owned()
    };
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if params.is_empty() {
        return Err("the callback carries no parameters".into());
    }
    Ok(params)
}

/// `--header "Name: value"` options as request headers.
fn headers(given: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for text in given {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("--header {text:?}: expected `Name: value`"))?;
        let name = HeaderName::try_from(name.trim()).map_err(|_| format!("--header {text:?}: bad name"))?;
        let value =
            HeaderValue::try_from(value.trim()).map_err(|_| format!("--header {text:?}: bad value"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn report(result: Result<LoginResult, authchain::AuthError>, json: bool) -> Result<(), String> {
    match result {
        Ok(LoginResult::Authenticated(principal)) => {
            print_principal(&principal, json);
            Ok(())
        }
        Ok(LoginResult::Redirect(redirect)) => Err(format!(
            "the login asked for another redirect: {}",
            redirect.location
        )),
        Ok(_) => Err("the chain answered something this command does not know".into()),
        Err(error) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": error.kind(), "status": error.status_code().as_u16(), "message": error.to_string()})
                );
            }
            Err(format!("login refused ({}): {error}", error.kind()))
        }
    }
}

fn print_principal(principal: &Principal, json: bool) {
    let groups = &principal.identity.groups;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true,
                "login": principal.login,
                "account_id": principal.account_id.0,
                "module": principal.module,
                "email": principal.email,
                "display_name": principal.display_name,
                "subject": principal.identity.subject,
                "groups": groups,
                "roles": principal.roles,
            })
        );
        return;
    }
    println!("authenticated: {}", principal.login);
    println!("account:       {}", principal.account_id.0);
    println!("module:        {}", principal.module);
    println!("subject:       {}", principal.identity.subject);
    println!("email:         {}", principal.email.as_deref().unwrap_or("-"));
    println!("groups:        {}", groups.iter().collect::<Vec<_>>().join(","));
    println!(
        "roles:         {}",
        principal.roles.iter().collect::<Vec<_>>().join(",")
    );
}
