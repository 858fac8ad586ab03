//! After a module verified somebody: find or link or create the local account,
//! check it, map roles, record the login. An existing account is written only once
//! every check has passed, in one store call (a just-created account is new, so
//! no check can refuse it).

use std::net::IpAddr;
use std::time::SystemTime;

use tracing::warn;

use super::{AUDIT_TARGET, AuthChain, Entry};
use crate::account::{Account, ExternalLink, LoginUpdate, NewAccount, Provisioning};
use crate::{AuthError, Identity, Principal};

pub(super) async fn principal(
    chain: &AuthChain,
    entry: &Entry,
    identity: Identity,
    client_ip: IpAddr,
    now: SystemTime,
) -> Result<Principal, AuthError> {
    let store = chain.store.as_ref();
    let (account, new_link) = match &identity.account {
        Some(id) => {
            let account = store
                .account(id)
                .await
                .map_err(AuthError::store)?
                .ok_or_else(|| {
                    AuthError::Misconfigured(format!(
                        "module `{}` answered an account that does not exist",
                        entry.id()
                    ))
                })?;
            (account, None)
        }
        None => find_or_provision(chain, entry, &identity).await?,
    };

    if account.disabled {
        return Err(AuthError::AccountDisabled);
    }
    if let Some(limit) = chain.expire_inactive_after {
        let last_seen = account.last_login.unwrap_or(account.created_at);
        if now.duration_since(last_seen).is_ok_and(|idle| idle > limit) {
            return Err(AuthError::AccountExpired);
        }
    }

    let mapping = &entry.settings.roles;
    let mapped_roles =
        (!mapping.is_empty()).then(|| (identity.provider.clone(), mapping.map(&identity.groups)));
    let mut update = LoginUpdate::new(account.id.clone(), now);
    update.link = new_link;
    update.mapped_roles = mapped_roles.clone();
    store.record_login(update).await.map_err(AuthError::store)?;

    let identity_return_to = identity.return_to.clone();
    let mut account = account;
    if let Some((provider, roles)) = mapped_roles {
        account.mapped_roles.insert(provider, roles);
    }
    Ok(Principal {
        roles: account.effective_roles(),
        account_id: account.id,
        login: account.login,
        email: account.email,
        display_name: account.display_name,
        identity,
        module: entry.id().to_owned(),
        client_ip,
        authenticated_at: now,
        return_to: identity_return_to,
    })
}

/// The linked account, or what the provisioning policy makes of an unknown subject.
/// Returns the link still to be written (for `link_by_login`).
async fn find_or_provision(
    chain: &AuthChain,
    entry: &Entry,
    identity: &Identity,
) -> Result<(Account, Option<ExternalLink>), AuthError> {
    let store = chain.store.as_ref();
    if let Some(account) = store
        .find_by_link(&identity.provider, &identity.subject)
        .await
        .map_err(AuthError::store)?
    {
        return Ok((account, None));
    }
    let link = ExternalLink {
        provider: identity.provider.clone(),
        subject: identity.subject.clone(),
    };
    let refuse = |reason: &str| {
        warn!(target: AUDIT_TARGET, module = entry.id(), subject = ?identity.subject, login = ?identity.login, reason, "external identity refused");
        AuthError::Forbidden {
            reason: reason.to_owned(),
        }
    };
    match entry.settings.provisioning {
        Provisioning::Existing => Err(refuse("no local account is linked to this external identity")),
        Provisioning::LinkByLogin => {
            // By login name only, never by email: an email address proves nothing
            // about who owns the local account.
            let found = match store
                .find_by_login(&identity.login, chain.names.case_insensitive)
                .await
            {
                Err(crate::StoreError::Ambiguous) => {
                    return Err(refuse("the login name matches several local accounts"));
                }
                other => other.map_err(AuthError::store)?,
            };
            match found {
                None => Err(refuse("no local account has this login name")),
                Some(account) if account.links.iter().any(|l| l.provider == link.provider) => Err(refuse(
                    "the local account with this login name is linked to another identity of this provider",
                )),
                Some(account) => Ok((account, Some(link))),
            }
        }
        Provisioning::Create => {
            if identity.login.trim().is_empty() {
                return Err(refuse("the provider gave no login name"));
            }
            let mut new = NewAccount::new(identity.login.clone());
            new.email = identity.email.clone();
            new.display_name = identity.display_name.clone();
            new.link = Some(link);
            match store.create_account(new).await {
                Ok(account) => {
                    tracing::info!(target: AUDIT_TARGET, module = entry.id(), account = %account.id, login = ?account.login, "account created on first login");
                    Ok((account, None))
                }
                Err(crate::StoreError::Conflict(_)) => {
                    // A concurrent first login of the same subject may have created
                    // the account just now: that one is ours.
                    match store
                        .find_by_link(&identity.provider, &identity.subject)
                        .await
                        .map_err(AuthError::store)?
                    {
                        Some(account) => Ok((account, None)),
                        // Never take over an existing account by name under `create`.
                        None => Err(refuse("the login name is taken by another account")),
                    }
                }
                Err(other) => Err(AuthError::store(other)),
            }
        }
    }
}
