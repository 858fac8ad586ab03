//! After a module verified somebody: find or link or create the local account,
//! check it, map roles, record the login. An existing account is written only once
//! every check has passed, in one store call (a just-created account is new, so
//! no check can refuse it).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::access::{AccessRule, LoginCandidate, PolicyDecision, SharedPolicy};
use super::{AUDIT_TARGET, AuthChain, Entry};
use crate::account::{Account, ExternalLink, LoginUpdate, NewAccount, Provisioning};
use crate::{AuthError, Identity, Principal, Roles};

pub(super) async fn principal(
    chain: &AuthChain,
    entry: &Entry,
    mut identity: Identity,
    client_ip: IpAddr,
    now: SystemTime,
) -> Result<Box<Principal>, AuthError> {
    let store = chain.store.as_ref();
    // Who may sign in here, decided before any account is looked up or created.
    for policy in [&entry.settings.policy, &chain.policy].into_iter().flatten() {
        run_policy(policy, entry, &mut identity).await?;
    }
    entry
        .access
        .check_identity(&identity)
        .map_err(|rule| denied(entry, &identity, rule))?;
    let mapping = &entry.settings.roles;
    // Role indices, not names: names are copied only into what the login keeps.
    let granted = (!mapping.is_empty()).then(|| mapping.granted(&identity.groups));
    let mapped = granted.as_ref().map(|granted| mapping.names(granted));
    let roles_by_mapping = entry.access.roles_pass(mapped.clone().into_iter().flatten());
    if !roles_by_mapping
        && identity.account.is_none()
        && entry.settings.provisioning == Provisioning::Create
        && store
            .find_by_link_shared(&identity.provider, &identity.subject)
            .await
            .map_err(AuthError::store)?
            .is_none()
    {
        // A new account would hold only the mapped roles: refused uncreated.
        return Err(denied(entry, &identity, AccessRule::RequiredRoles));
    }

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
            (Arc::new(account), None)
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

    // Roles the account holds (granted by hand, or mapped by other providers;
    // this provider's too when the module maps none).
    let held = account
        .mapped_roles
        .iter()
        .filter(|(provider, _)| mapped.is_none() || **provider != identity.provider)
        .flat_map(|(_, roles)| roles.iter())
        .chain(account.roles.iter())
        .map(String::as_str);
    if !roles_by_mapping && !entry.access.roles_pass(held.clone()) {
        return Err(denied(entry, &identity, AccessRule::RequiredRoles));
    }
    // Mapped roles are the mapping's shared names, already in order; only a held
    // role the mapping did not grant is copied.
    let mut roles = match &granted {
        Some(granted) => Roles::from_sorted_unique(mapping.shared_names(granted).cloned()),
        None => Roles::new(),
    };
    let unmapped: Vec<Arc<str>> = held.filter(|role| !roles.contains(role)).map(Arc::from).collect();
    if !unmapped.is_empty() {
        roles.extend(unmapped);
    }
    // A repeat login mapping the roles the account holds writes only its time.
    let mapped_roles = mapped
        .filter(|names| {
            account
                .mapped_roles
                .get(identity.provider.as_str())
                .is_none_or(|stored| !stored.iter().map(String::as_str).eq(names.clone()))
        })
        .map(|names| (identity.provider.to_string(), names.map(str::to_owned).collect()));
    let time_is_fresh = last_login_is_fresh(&account, now, chain.expire_inactive_after);
    let account_id = account.id.clone();
    let login = account.login.clone();
    let email = account.email.clone();
    let display_name = account.display_name.clone();
    // Released before the write, so the store need not copy a shared account.
    drop(account);
    let written = match (new_link, mapped_roles) {
        (None, None) if time_is_fresh => Ok(()),
        (None, None) => store.record_last_login(&account_id, now).await,
        (link, mapped_roles) => {
            let mut update = LoginUpdate::new(account_id.clone(), now);
            update.link = link;
            update.mapped_roles = mapped_roles;
            store.record_login(update).await
        }
    };
    written.map_err(AuthError::store)?;

    Ok(Box::new(Principal {
        roles,
        account_id,
        login,
        email,
        display_name,
        return_to: identity.return_to.clone(),
        identity,
        module: entry.id.clone(),
        client_ip,
        authenticated_at: now,
    }))
}

/// How old a recorded last login may be before a login that changes nothing else
/// rewrites it: a service that signs every request in (a proxy's header login)
/// writes its time once a minute, not once a request.
const LAST_LOGIN_RESOLUTION: Duration = Duration::from_secs(60);

/// Whether the account's recorded last login is recent enough to stand for this
/// one. With `expire_inactive_after`, the resolution is at most a hundredth of it,
/// so the recorded time never lags the real one by more than 1 % of the limit.
fn last_login_is_fresh(account: &Account, now: SystemTime, expire_inactive_after: Option<Duration>) -> bool {
    let resolution = expire_inactive_after.map_or(LAST_LOGIN_RESOLUTION, |limit| {
        LAST_LOGIN_RESOLUTION.min(limit / 100)
    });
    // A recorded time in the future (a clock set back) is rewritten.
    account
        .last_login
        .and_then(|at| now.duration_since(at).ok())
        .is_some_and(|age| age < resolution)
}

/// Runs one login policy; its decision is audited.
async fn run_policy(policy: &SharedPolicy, entry: &Entry, identity: &mut Identity) -> Result<(), AuthError> {
    let mut candidate = LoginCandidate::new(identity);
    let decision = policy.decide(&mut candidate).await;
    let changed = candidate.changed();
    match decision {
        PolicyDecision::Refuse(reason) => Err(denied(entry, identity, AccessRule::Policy(reason))),
        _ => {
            info!(target: AUDIT_TARGET, module = %entry.id(), subject = %identity.subject, login = %identity.login,
                changed, outcome = %"allowed", "login policy decided");
            Ok(())
        }
    }
}

/// An identity the access rules or a policy refused: audited, never provisioned.
fn denied(entry: &Entry, identity: &Identity, rule: AccessRule) -> AuthError {
    warn!(target: AUDIT_TARGET, module = %entry.id(), subject = %identity.subject, login = %identity.login,
        rule = %rule, outcome = %"access_denied", "external identity refused by an access rule");
    AuthError::AccessDenied {
        module: entry.id().to_owned(),
        rule,
    }
}

/// The linked account, or what the provisioning policy makes of an unknown subject.
/// Returns the link still to be written (for `link_by_login`).
async fn find_or_provision(
    chain: &AuthChain,
    entry: &Entry,
    identity: &Identity,
) -> Result<(Arc<Account>, Option<ExternalLink>), AuthError> {
    let store = chain.store.as_ref();
    if let Some(account) = store
        .find_by_link_shared(&identity.provider, &identity.subject)
        .await
        .map_err(AuthError::store)?
    {
        return Ok((account, None));
    }
    let link = ExternalLink {
        provider: identity.provider.to_string(),
        subject: identity.subject.clone(),
    };
    let refuse = |reason: &str| {
        warn!(target: AUDIT_TARGET, module = %entry.id(), subject = %crate::audit::text(&identity.subject), login = %crate::audit::text(&identity.login), reason, "external identity refused");
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
                Some(account) => Ok((Arc::new(account), Some(link))),
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
                    tracing::info!(target: AUDIT_TARGET, module = %entry.id(), account = %account.id, login = %crate::audit::text(&account.login), "account created on first login");
                    Ok((Arc::new(account), None))
                }
                Err(crate::StoreError::Conflict(_)) => {
                    // A concurrent first login of the same subject may have created
                    // the account just now: that one is ours.
                    match store
                        .find_by_link_shared(&identity.provider, &identity.subject)
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
