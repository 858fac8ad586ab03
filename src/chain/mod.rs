//! The authentication chain: ordered modules, their policy, and what happens after
//! a module verified somebody.

mod access;
mod builder;
mod policy;
mod resolve;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tracing::{error, info, warn};

pub use access::{AccessRule, LoginCandidate, LoginPolicy, PolicyDecision};
pub use builder::ChainBuilder;
pub use policy::{ModuleSettings, OnFailure};

use crate::account::{LoginNames, Throttle, UserStore};
pub use crate::audit::AUDIT_TARGET;
use crate::error::{ErrorClass, RequestError};
use crate::net::ProxyTrust;
use crate::{AuthError, AuthRequest, Authenticator, Credentials, ModuleKind, Outcome, Principal, Redirect};

/// The answer of [`AuthChain::login`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginResult {
    /// Signed in. Boxed: the answer passes through several layers of the chain,
    /// and moving a pointer is cheaper than moving the principal.
    Authenticated(Box<Principal>),
    /// Send the browser to an identity provider (and set the flow cookie).
    Redirect(Redirect),
}

/// A module as a login page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ModuleInfo {
    /// The id to select it with.
    pub id: String,
    /// Its button label.
    pub description: String,
    /// The interaction it expects.
    pub kind: ModuleKind,
}

pub(crate) struct Entry {
    /// The module's id, shared with every principal it answers.
    pub(crate) id: crate::ModuleId,
    pub(crate) module: Arc<dyn Authenticator>,
    pub(crate) settings: ModuleSettings,
    /// The settings' access rules, compiled when the chain is built.
    pub(crate) access: access::AccessRules,
}

impl Entry {
    fn id(&self) -> &str {
        &self.id
    }

    /// The module's answer: at once when it can give one, else by its future.
    async fn answer(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        match self.module.authenticate_now(request) {
            Some(answer) => answer,
            None => self.module.authenticate(request).await,
        }
    }
}

/// An ordered chain of authentication modules with one policy for fallback,
/// account linking, role mapping, account checks and throttling.
///
/// Build one with [`AuthChain::builder`] or from configuration
/// ([`crate::config::Config`]). It is `Send + Sync`; share it in an `Arc`.
pub struct AuthChain {
    id: String,
    entries: Vec<Entry>,
    store: Arc<dyn UserStore>,
    names: LoginNames,
    expire_inactive_after: Option<std::time::Duration>,
    throttle: Option<Throttle>,
    client_ip: ProxyTrust,
    policy: Option<access::SharedPolicy>,
}

/// How one pass over the modules ended.
struct ModulesAnswer {
    outcome: Result<Outcome, AuthError>,
    /// The entry that answered, when one did.
    entry: Option<usize>,
}

impl AuthChain {
    /// Starts a chain over the host's user store.
    pub fn builder(store: Arc<dyn UserStore>) -> ChainBuilder {
        ChainBuilder::new(store)
    }

    /// The modules a login page should show: enabled and not hidden, in order.
    pub fn visible_modules(&self) -> Vec<ModuleInfo> {
        self.entries
            .iter()
            .filter(|e| e.settings.enabled && !e.settings.hidden)
            .map(|e| ModuleInfo {
                id: e.id().to_owned(),
                description: e
                    .settings
                    .description
                    .clone()
                    .unwrap_or_else(|| e.id().to_owned()),
                kind: e.module.kind(),
            })
            .collect()
    }

    /// The module with this id, if it is of type `T` (nested chains are searched
    /// too): for example `chain.module::<SamlModule>("corp-saml")` to serve its SP
    /// metadata, or an `OidcModule` to prefetch discovery at start-up.
    pub fn module<T: Authenticator>(&self, id: &str) -> Option<&T> {
        self.entries.iter().find_map(|entry| {
            let module: &dyn std::any::Any = entry.module.as_ref();
            if entry.id() == id {
                return module.downcast_ref::<T>();
            }
            module.downcast_ref::<AuthChain>()?.module::<T>(id)
        })
    }

    /// The user store the chain reads and writes.
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// The client address of a request, after trusted proxies.
    pub fn client_ip(&self, request: &AuthRequest) -> Result<IpAddr, AuthError> {
        self.client_ip
            .client_ip(request.peer, &request.headers)
            .map_err(AuthError::invalid_request)
    }

    /// Runs the chain: throttle gate, modules in order, account resolution, role
    /// mapping, account checks, audit.
    pub async fn login(&self, request: &AuthRequest) -> Result<LoginResult, AuthError> {
        let started = std::time::Instant::now();
        // Read once: the answer, the audit and the metrics use the same address.
        let client_ip = self.client_ip(request);
        let known_ip = client_ip.as_ref().ok().copied();
        let result = self
            .login_or_abstain(request, client_ip)
            .await
            .and_then(|answer| {
                answer.ok_or_else(|| {
                    let err = nobody_recognised(request, "no module recognised the request".into());
                    audit_refusal(&self.id, request.login(), known_ip, &err);
                    err
                })
            });
        // One event and one set of metrics per login, with its duration.
        crate::audit::login_finished(&self.id, request, known_ip, &result, started.elapsed());
        result
    }

    /// `Ok(None)` when no module recognised the request.
    async fn login_or_abstain(
        &self,
        request: &AuthRequest,
        client_ip: Result<IpAddr, AuthError>,
    ) -> Result<Option<LoginResult>, AuthError> {
        let client_ip = client_ip.inspect_err(|e| audit_refusal(&self.id, None, None, e))?;
        let now = SystemTime::now();
        let throttle = match (&self.throttle, request.login()) {
            (Some(throttle), Some(login)) => {
                let login = self.names.normalize(login);
                let keys = Throttle::keys(&login, client_ip);
                Some((throttle, login, keys))
            }
            _ => None,
        };
        if let Some((throttle, login, keys)) = &throttle
            && let Err(err) = throttle.check(keys, now).await
        {
            warn!(target: AUDIT_TARGET, chain = %self.id, login = %crate::audit::text(login), client_ip = %client_ip,
                outcome = %err.kind(), "login refused before any module ran");
            return Err(err);
        }

        let result = self.login_unthrottled(request, client_ip, now).await;

        if let Some((throttle, _, keys)) = &throttle {
            // The gate above fails closed; bookkeeping after the answer does not
            // change the answer, it is only logged when the store fails.
            let bookkeeping = match &result {
                Ok(Some(LoginResult::Authenticated(_))) => throttle.success(keys).await,
                Ok(Some(LoginResult::Redirect(_))) => Ok(()),
                Ok(None) => throttle.failure(keys, now).await,
                Err(err) if counts_as_failure(err) => throttle.failure(keys, now).await,
                Err(_) => Ok(()),
            };
            if let Err(err) = bookkeeping {
                warn!(target: AUDIT_TARGET, chain = %self.id, error = %err, "could not update throttle counters");
            }
        }
        result
    }

    async fn login_unthrottled(
        &self,
        request: &AuthRequest,
        client_ip: IpAddr,
        now: SystemTime,
    ) -> Result<Option<LoginResult>, AuthError> {
        let answer = self.run_modules(request, client_ip).await;
        let outcome = answer
            .outcome
            .inspect_err(|e| audit_refusal(&self.id, request.login(), Some(client_ip), e))?;
        let entry = answer.entry.map(|i| &self.entries[i]);
        match (outcome, entry) {
            (Outcome::Redirect(redirect), Some(entry)) => {
                info!(target: AUDIT_TARGET, chain = %self.id, module = %entry.id(), outcome = %"redirect", "redirect login started");
                Ok(Some(LoginResult::Redirect(redirect)))
            }
            (Outcome::Authenticated(identity), Some(entry)) => {
                let principal = resolve::principal(self, entry, identity, client_ip, now)
                    .await
                    .inspect_err(|e| audit_refusal(&self.id, request.login(), Some(client_ip), e))?;
                info!(target: AUDIT_TARGET, chain = %self.id, module = %principal.module,
                    account = %principal.account_id, login = %crate::audit::text(&principal.login), client_ip = %client_ip,
                    roles = %crate::audit::list(&principal.roles), outcome = %"authenticated", "login succeeded");
                Ok(Some(LoginResult::Authenticated(principal)))
            }
            (Outcome::Abstain, _) => Ok(None),
            (_, None) => Err(AuthError::Misconfigured(
                "a module answered without an entry".into(),
            )),
        }
    }

    /// Runs the modules the request may reach and applies their policies.
    async fn run_modules(&self, request: &AuthRequest, client_ip: IpAddr) -> ModulesAnswer {
        if let Credentials::Start(start) = &request.credentials {
            let checked = match &request.module {
                None => Err(RequestError::StartNeedsModule),
                Some(_) => start.check().map_err(RequestError::from),
            };
            if let Err(err) = checked {
                return ModulesAnswer {
                    outcome: Err(AuthError::InvalidRequest(err)),
                    entry: None,
                };
            }
        }
        if let Some(selected) = &request.module {
            return self.run_selected(request, selected, client_ip).await;
        }
        let mut rejection: Option<AuthError> = None;
        let mut outage: Option<AuthError> = None;
        let mut misconfigured: Option<AuthError> = None;
        for (i, entry) in self.entries.iter().enumerate() {
            if !entry.settings.enabled || entry.settings.hidden {
                continue;
            }
            match entry.answer(request).await {
                Ok(Outcome::Abstain) => {
                    tracing::debug!(target: AUDIT_TARGET, chain = %self.id, module = %entry.id(), outcome = %"abstain");
                }
                Ok(outcome) => {
                    return ModulesAnswer {
                        outcome: Ok(outcome),
                        entry: Some(i),
                    };
                }
                Err(err) => {
                    let (policy, slot) = match err.class() {
                        ErrorClass::Final => {
                            return ModulesAnswer {
                                outcome: Err(err),
                                entry: Some(i),
                            };
                        }
                        ErrorClass::Rejected => (entry.settings.on_reject, &mut rejection),
                        ErrorClass::Unavailable => (entry.settings.on_unavailable, &mut outage),
                        ErrorClass::Misconfigured => (entry.settings.on_unavailable, &mut misconfigured),
                    };
                    if slot_is_misconfigured(&err) {
                        error!(target: AUDIT_TARGET, chain = %self.id, module = %entry.id(), outcome = %err.kind(),
                            reason = %err, policy = ?policy, "module is misconfigured");
                    } else {
                        warn!(target: AUDIT_TARGET, chain = %self.id, module = %entry.id(), outcome = %err.kind(),
                            reason = %err, policy = ?policy, "module did not authenticate");
                    }
                    if policy == OnFailure::Stop {
                        return ModulesAnswer {
                            outcome: Err(err),
                            entry: Some(i),
                        };
                    }
                    slot.get_or_insert(err);
                }
            }
        }
        // The most meaningful failure: a misconfiguration (never hidden behind
        // another module's answer), then a rejection, then an outage, then "nobody
        // applied" (an abstention of the whole chain).
        let outcome = match misconfigured.or(rejection).or(outage) {
            Some(err) => Err(err),
            None => Ok(Outcome::Abstain),
        };
        ModulesAnswer { outcome, entry: None }
    }

    async fn run_selected(&self, request: &AuthRequest, selected: &str, client_ip: IpAddr) -> ModulesAnswer {
        let direct = self
            .entries
            .iter()
            .position(|e| e.settings.enabled && e.id() == selected);
        let (index, inner_request) = match direct {
            Some(i) => {
                // The selection is consumed here; the module sees a plain request,
                // and a login it starts is the client's (for per-client bounds).
                let mut inner = request.clone();
                inner.module = None;
                if let Credentials::Start(start) = &mut inner.credentials {
                    start.client = Some(client_ip);
                }
                (i, Some(inner))
            }
            None => match self
                .entries
                .iter()
                .position(|e| e.settings.enabled && e.module.contains_module(selected))
            {
                Some(i) => (i, None),
                None => {
                    return ModulesAnswer {
                        outcome: Err(AuthError::InvalidRequest(RequestError::NoSuchModule(
                            crate::net::truncate(selected, 64).to_owned(),
                        ))),
                        entry: None,
                    };
                }
            },
        };
        let entry = &self.entries[index];
        let outcome = match entry.answer(inner_request.as_ref().unwrap_or(request)).await {
            Ok(Outcome::Abstain) => Err(nobody_recognised(
                request,
                format!("module `{}` did not recognise the request", entry.id()),
            )),
            Err(err) if slot_is_misconfigured(&err) => {
                error!(target: AUDIT_TARGET, chain = %self.id, module = %entry.id(), outcome = %err.kind(),
                    reason = %err, "module is misconfigured");
                Err(err)
            }
            other => other,
        };
        ModulesAnswer {
            outcome,
            entry: Some(index),
        }
    }
}

/// What a login that no module recognised answers: a password no module could
/// verify is `InvalidCredentials` (a module that does not own an account abstains,
/// so this must read exactly like a wrong password); anything else is
/// `Unauthenticated`.
fn nobody_recognised(request: &AuthRequest, reason: String) -> AuthError {
    match request.credentials {
        Credentials::Password { .. } => AuthError::InvalidCredentials,
        _ => AuthError::Unauthenticated { reason },
    }
}

fn slot_is_misconfigured(err: &AuthError) -> bool {
    err.class() == ErrorClass::Misconfigured
}

/// Failures that count against the throttle: everything a guesser could cause.
/// A directory's account restriction (disabled, locked out, ...) is not a wrong
/// password: the directory enforces it, and counting it would lock the name out
/// here once it is restored there.
fn counts_as_failure(err: &AuthError) -> bool {
    !matches!(
        err,
        AuthError::Unavailable { .. }
            | AuthError::Misconfigured(_)
            | AuthError::Throttled { .. }
            | AuthError::AccountRestricted { .. }
    )
}

fn audit_refusal(chain: &str, login: Option<&str>, client_ip: Option<IpAddr>, err: &AuthError) {
    warn!(target: AUDIT_TARGET, chain = %chain, login = login.map(crate::audit::text), client_ip = client_ip.map(tracing::field::display),
        outcome = %err.kind(), reason = %err, "login refused");
}

#[async_trait]
impl Authenticator for AuthChain {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Chain
    }

    /// Runs the whole chain; the identity it answers is tied to the account this
    /// chain resolved, so an outer chain uses that account as it is.
    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        match self.login_or_abstain(request, self.client_ip(request)).await? {
            Some(LoginResult::Authenticated(principal)) => {
                let account = principal.account_id.clone();
                Ok(Outcome::Authenticated(principal.identity.with_account(account)))
            }
            Some(LoginResult::Redirect(redirect)) => Ok(Outcome::Redirect(redirect)),
            None => Ok(Outcome::Abstain),
        }
    }

    fn contains_module(&self, id: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.settings.enabled && (e.id() == id || e.module.contains_module(id)))
    }
}
