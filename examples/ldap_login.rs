//! Log in against an LDAP directory from the command line.
//!
//! ```text
//! # a throwaway OpenLDAP (prints LDAP_URL=..., LDAP_CA_FILE=..., ...)
//! tests/peers/slapd.sh start /tmp/slapd-demo
//! LDAP_URL=ldap://127.0.0.1:PORT LDAP_CA_FILE=/tmp/slapd-demo/ca.crt \
//! LDAP_BIND_PASSWORD=service-password \
//!   cargo run --features ldap --example ldap_login -- alice alice-password
//! tests/peers/slapd.sh stop /tmp/slapd-demo
//! ```
//!
//! The module is built from the same TOML a host application would use, then put in
//! a chain with a role mapping and just-in-time provisioning.

use std::sync::Arc;

use authchain::account::{MemoryUserStore, Provisioning, RoleMapping};
use authchain::chain::ModuleSettings;
use authchain::modules::ldap::{LdapModule, LdapSettings};
use authchain::settings::ModuleSettingsType;
use authchain::{AuthChain, AuthRequest, LoginResult};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(login), Some(password)) = (args.next(), args.next()) else {
        eprintln!("usage: ldap_login LOGIN PASSWORD   (env: LDAP_URL, LDAP_CA_FILE, LDAP_BIND_PASSWORD)");
        std::process::exit(2);
    };
    let url = std::env::var("LDAP_URL").unwrap_or_else(|_| "ldap://127.0.0.1:389".into());
    let tls = match std::env::var("LDAP_CA_FILE") {
        Ok(ca) if url.starts_with("ldaps://") => format!("ca_file = {ca:?}"),
        Ok(ca) => format!("starttls = true\nca_file = {ca:?}"),
        Err(_) => String::new(),
    };
    let config = format!(
        r#"
        urls = [{url:?}]
        {tls}
        bind_dn = "cn=authchain,ou=service,dc=example,dc=org"
        bind_password = {{ env = "LDAP_BIND_PASSWORD" }}
        user_search_base = "ou=people,dc=example,dc=org"
        user_search_filter = "(uid=%s)"
        operation_timeout = "PT5S"
        "#
    );
    let settings = LdapSettings::from_table(config.parse()?)?;
    let module = LdapModule::new("corp-ldap", settings)?;

    let store = Arc::new(MemoryUserStore::new());
    let roles = RoleMapping::builder()
        .rule("admins", "admin")
        .rule("staff", "user")
        .build()?;
    let chain = AuthChain::builder(store)
        .module_with(
            module,
            ModuleSettings::new()
                .description("Corporate directory")
                .provisioning(Provisioning::Create)
                .roles(roles),
        )
        .build()?;

    let request = AuthRequest::new("127.0.0.1:50000".parse()?).with_password(login, password);
    match chain.login(&request).await {
        Ok(LoginResult::Authenticated(principal)) => {
            println!(
                "signed in as {} (subject {})",
                principal.login, principal.identity.subject
            );
            println!("  email:  {}", principal.identity.email.as_deref().unwrap_or("-"));
            println!(
                "  name:   {}",
                principal.identity.display_name.as_deref().unwrap_or("-")
            );
            println!("  groups: {:?}", principal.identity.groups);
            println!("  roles:  {:?}", principal.roles);
        }
        Ok(_) => println!("unexpected redirect"),
        Err(err) => {
            println!("refused: {err} (HTTP {})", err.status_code());
            std::process::exit(1);
        }
    }
    Ok(())
}
