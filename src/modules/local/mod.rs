//! Local passwords: accounts in the host's [`UserStore`], argon2id hashes, legacy
//! hashes upgraded on the next successful login.

mod settings;

use std::sync::Arc;

use async_trait::async_trait;
use tracing::{error, info, warn};

use crate::account::{LoginNames, PasswordPolicy, UserStore, Verification};
use crate::audit::AUDIT_TARGET;
use crate::{
    AuthError, AuthRequest, Authenticator, Credentials, Identity, ModuleKind, Outcome, SecretString,
};

pub use settings::{DEFAULT_MAX_PASSWORD_BYTES, LocalSettings};

/// The local password module.
pub struct LocalModule {
    id: crate::ModuleId,
    store: Arc<dyn UserStore>,
    passwords: Arc<PasswordPolicy>,
    names: LoginNames,
    settings: LocalSettings,
}

/// Builds a [`LocalModule`].
pub struct LocalModuleBuilder {
    module: LocalModule,
}

impl LocalModuleBuilder {
    /// How passwords are hashed (default: argon2id, OWASP parameters).
    pub fn passwords(mut self, policy: Arc<PasswordPolicy>) -> Self {
        self.module.passwords = policy;
        self
    }

    /// Login-name rules; use the same as the chain's.
    pub fn login_names(mut self, names: LoginNames) -> Self {
        self.module.names = names;
        self
    }

    /// The module's settings (see [`LocalSettings`]).
    pub fn settings(mut self, settings: LocalSettings) -> Self {
        self.module.settings = settings;
        self
    }

    /// [`LocalSettings::local_account_fallback`].
    pub fn local_account_fallback(mut self, yes: bool) -> Self {
        self.module.settings.local_account_fallback = yes;
        self
    }

    /// [`LocalSettings::max_password_bytes`].
    pub fn max_password_bytes(mut self, max: std::num::NonZeroUsize) -> Self {
        self.module.settings.max_password_bytes = max;
        self
    }

    /// Builds the module. Computes the dummy hash now (one hash), so that the
    /// first unknown login name costs no more than later ones.
    pub fn build(self) -> LocalModule {
        self.module.passwords.verify_dummy(&SecretString::new(""));
        self.module
    }
}

impl LocalModule {
    /// A local module reading accounts from `store`.
    pub fn builder(id: impl Into<crate::ModuleId>, store: Arc<dyn UserStore>) -> LocalModuleBuilder {
        LocalModuleBuilder {
            module: LocalModule {
                id: id.into(),
                store,
                passwords: Arc::new(PasswordPolicy::default()),
                names: LoginNames::default(),
                settings: LocalSettings::default(),
            },
        }
    }

    /// Argon2 and friends take milliseconds of CPU: run them off the async threads.
    async fn verify(&self, password: &SecretString, hash: Option<String>) -> Verification {
        let policy = self.passwords.clone();
        let password = password.clone();
        let work = move || match hash {
            Some(hash) => {
                let verification = policy.verify(&password, &hash);
                // A hash refused unread costs what a wrong password costs (the
                // policy's own, bounded, parameters), never the hash's.
                if matches!(
                    verification,
                    Verification::UnreadableHash | Verification::OverCostLimit(_)
                ) {
                    policy.verify_dummy(&password);
                }
                verification
            }
            None => {
                policy.verify_dummy(&password);
                Verification::Invalid
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn_blocking(work).await {
                Ok(result) => result,
                Err(_) => Verification::Invalid,
            },
            Err(_) => work(),
        }
    }

    async fn upgrade_hash(&self, account: &crate::AccountId, password: &SecretString) {
        let policy = self.passwords.clone();
        let password = password.clone();
        let hashed = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || policy.hash(password.expose()))
                .await
                .ok(),
            Err(_) => Some(policy.hash(password.expose())),
        };
        match hashed {
            Some(Ok(hash)) => match self.store.set_password_hash(account, &hash).await {
                Ok(()) => {
                    info!(target: AUDIT_TARGET, module = %self.id, account = %account, "password hash upgraded to argon2id")
                }
                Err(err) => {
                    warn!(target: AUDIT_TARGET, module = %self.id, account = %account, error = %err, "could not store upgraded password hash")
                }
            },
            _ => {
                warn!(target: AUDIT_TARGET, module = %self.id, account = %account, "could not re-hash password")
            }
        }
    }
}

#[async_trait]
impl Authenticator for LocalModule {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Password
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let Credentials::Password { login, password } = &request.credentials else {
            return Ok(Outcome::Abstain);
        };
        if password.len() > self.settings.max_password_bytes.get() {
            return Err(AuthError::InvalidRequest(crate::RequestError::TooLong {
                field: "password",
                max: self.settings.max_password_bytes.get(),
            }));
        }
        if password.is_empty() || login.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        let account = match self.names.find(self.store.as_ref(), login).await {
            Ok(account) => account,
            Err(crate::StoreError::Ambiguous) => {
                warn!(target: AUDIT_TARGET, module = %self.id, login = %crate::audit::text(login), "login name matches several accounts");
                None
            }
            Err(err) => return Err(AuthError::store(err)),
        };
        let hash = account.as_ref().and_then(|a| a.password_hash.clone());
        let verification = self.verify(password, hash).await;
        // Not a local account: abstain (after the same hashing work as a wrong
        // password), so that the module owning the account decides — during its
        // outage the login is `Unavailable`, not a local rejection. A password login
        // no module recognises ends as `InvalidCredentials` all the same.
        let Some(account) = account else {
            return Ok(Outcome::Abstain);
        };
        // An account linked to a provider belongs to that provider unless
        // `local_account_fallback` is on: the local password, right or wrong, is not
        // this module's to judge.
        if account.is_linked() && !self.settings.local_account_fallback {
            warn!(target: AUDIT_TARGET, module = %self.id, account = %account.id,
                "local password not accepted: account is linked to an external provider and local_account_fallback is off");
            return Ok(Outcome::Abstain);
        }
        let needs_rehash = match verification {
            Verification::Valid { needs_rehash } => needs_rehash,
            Verification::Invalid => return Err(AuthError::InvalidCredentials),
            Verification::UnreadableHash => {
                warn!(target: AUDIT_TARGET, module = %self.id, account = %account.id, "stored password hash is in an unknown format");
                return Err(AuthError::InvalidCredentials);
            }
            Verification::OverCostLimit(exceeded) => {
                error!(target: AUDIT_TARGET, module = %self.id, account = %account.id, login = %account.login,
                    scheme = ?exceeded.scheme, parameter = exceeded.parameter, value = exceeded.value, max = exceeded.max,
                    "stored password hash refused unverified: its cost is above the configured limit (replace the hash)");
                return Err(AuthError::InvalidCredentials);
            }
        };
        if needs_rehash && !account.disabled {
            self.upgrade_hash(&account.id, password).await;
        }
        let mut identity = Identity::new(self.id.clone(), account.id.to_string(), account.login.clone())
            .with_account(account.id);
        identity.email = account.email;
        identity.display_name = account.display_name;
        Ok(Outcome::Authenticated(identity))
    }
}
