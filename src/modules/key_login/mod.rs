//! Key-based login (feature `key-login`): a client proves possession of a private
//! key registered to an account ([`UserStore::add_public_key`]) by sending a short
//! signed login assertion, [`Credentials::Assertion`]: a compact JWS (verified by
//! [`crate::jose::jws`]) whose claims are
//!
//! * `sub`: the login name; `aud`: this service's id (the `audience` setting);
//! * `iat`, `exp`: integer seconds, `exp - iat` at most `max_lifetime` (≤ 5 min);
//! * `jti`: unique, accepted once through the [`ReplayCache`].
//!
//! The algorithm must fit the key: `RS256` / `PS256` for RSA (≥ 2048 bits), `ES256`
//! for P-256, `EdDSA` for Ed25519. A `kid` header, when present, must name the
//! registered key's id. See `docs/modules/key_login.md`.
//!
//! What is checked, in order, and the answer when it fails:
//!
//! 1. the JWS itself (size, parts, header): [`AuthError::InvalidRequest`], or
//!    `Rejected` with [`KeyLoginError::Jws`] for a refused `alg` (`none`, `HS256`,
//!    `RS384`, ...);
//! 2. the signature, against the unrevoked keys of the account `sub` names whose
//!    type fits `alg`: an unknown login, an account without such a key, a revoked
//!    key, another account's key, a bad signature all answer
//!    [`AuthError::InvalidCredentials`], after one signature check against a dummy
//!    key when no registered key could be tried (so an unknown login costs what a
//!    wrong key does);
//! 3. only then the claims (`Rejected` with a [`KeyLoginError`]) and the `jti`
//!    (`Rejected` with [`ReplayError::Replayed`]).

mod settings;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use openidconnect::JsonWebKey;
use serde_json::{Map, Value};
use tracing::warn;

use crate::account::{KeyFamily, LoginNames, PublicKey, UserStore};
use crate::audit::AUDIT_TARGET;
use crate::flow::{MemoryReplayCache, ReplayCache, ReplayError};
use crate::jose::{Algorithm, Jws, JwsError, RingJwk, RingKeyType};
use crate::{
    AuthError, AuthRequest, Authenticator, ConfigError, Credentials, Identity, ModuleKind, Outcome,
    RequestError, StoreError,
};

pub use settings::{DEFAULT_CLOCK_SKEW, KeyLoginSettings, MAX_ASSERTION_LIFETIME, MAX_CLOCK_SKEW};

/// The algorithms an assertion may be signed with.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];
/// Longest `sub` (login name) read, in bytes.
pub const MAX_SUB_BYTES: usize = 256;
/// Longest `jti`, in bytes.
pub const MAX_JTI_BYTES: usize = 128;

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLoginError {
    /// The JWS is malformed or its algorithm is refused.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// A required claim is missing or of the wrong type (`sub`, `aud`, `iat`, `exp`,
    /// `jti`), or too long.
    #[error("claim `{0}` is missing or malformed")]
    BadClaim(&'static str),
    /// `aud` does not name this service.
    #[error("the assertion is for another audience")]
    WrongAudience,
    /// `exp` (plus the clock skew) has passed.
    #[error("the assertion has expired")]
    Expired,
    /// `iat` is in the future (beyond the clock skew).
    #[error("the assertion is issued in the future")]
    IssuedInFuture,
    /// `exp - iat` is longer than `max_lifetime`, or `exp` is not after `iat`.
    #[error("the assertion lives longer than allowed")]
    TooLongLived,
}

/// A dummy key per family: what an unknown login's assertion is checked against.
struct Dummies {
    rsa: RingJwk,
    p256: RingJwk,
    ed25519: RingJwk,
}

static DUMMIES: LazyLock<Option<Dummies>> = LazyLock::new(|| {
    Some(Dummies {
        rsa: RingJwk::from_public_key_pem(include_str!("dummy/rsa.pub.pem"), None).ok()?,
        p256: RingJwk::from_public_key_pem(include_str!("dummy/p256.pub.pem"), None).ok()?,
        ed25519: RingJwk::from_public_key_pem(include_str!("dummy/ed25519.pub.pem"), None).ok()?,
    })
});

/// The family of a parsed key, if it is one key login accepts.
pub fn family_of(key: &RingJwk) -> Option<KeyFamily> {
    match key.kind() {
        RingKeyType::Rsa => Some(KeyFamily::Rsa),
        RingKeyType::P256 => Some(KeyFamily::P256),
        RingKeyType::Ed25519 => Some(KeyFamily::Ed25519),
        _ => None,
    }
}

/// The key-login module.
pub struct KeyLoginModule {
    id: crate::ModuleId,
    store: Arc<dyn UserStore>,
    names: LoginNames,
    settings: KeyLoginSettings,
    replay: Arc<dyn ReplayCache>,
}

impl KeyLoginModule {
    /// A module verifying assertions against the keys `store` holds.
    pub fn new(
        id: impl Into<crate::ModuleId>,
        store: Arc<dyn UserStore>,
        settings: KeyLoginSettings,
    ) -> Result<KeyLoginModule, ConfigError> {
        settings.check()?;
        if DUMMIES.is_none() {
            return Err(ConfigError::invalid("", "the built-in dummy keys do not parse"));
        }
        let replay = settings
            .replay
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryReplayCache::default()));
        Ok(KeyLoginModule {
            id: id.into(),
            store,
            names: LoginNames::default(),
            settings,
            replay,
        })
    }

    /// Login-name rules; use the same as the chain's.
    pub fn login_names(mut self, names: LoginNames) -> Self {
        self.names = names;
        self
    }

    fn dummy(alg: Algorithm) -> Option<&'static RingJwk> {
        let dummies = DUMMIES.as_ref()?;
        Some(match alg {
            Algorithm::ES256 => &dummies.p256,
            Algorithm::EdDSA => &dummies.ed25519,
            _ => &dummies.rsa,
        })
    }

    fn malformed(&self, err: impl Into<KeyLoginError>) -> AuthError {
        AuthError::InvalidRequest(RequestError::module(self.id.clone(), err.into()))
    }

    fn rejected(&self, err: impl Into<KeyLoginError>) -> AuthError {
        AuthError::rejected(self.id.clone(), err.into())
    }

    /// The unrevoked keys of the account as verification keys (their `kid` is the
    /// key id); keys that no longer parse are skipped with a warning.
    fn verification_keys(&self, keys: &[PublicKey]) -> Vec<RingJwk> {
        keys.iter()
            .filter(|k| !k.is_revoked())
            .filter_map(|k| {
                let parsed = RingJwk::from_spki_der(&k.spki, Some(&k.id.0))
                    .ok()
                    .filter(|jwk| family_of(jwk) == Some(k.family));
                if parsed.is_none() {
                    warn!(target: AUDIT_TARGET, module = %self.id, key = %k.id, "registered key does not parse; skipped");
                }
                parsed
            })
            .collect()
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<SystemTime, KeyLoginError> {
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.settings.audience,
            Some(Value::Array(list)) if list.len() <= 16 => list
                .iter()
                .any(|a| a.as_str() == Some(self.settings.audience.as_str())),
            _ => return Err(KeyLoginError::BadClaim("aud")),
        };
        let time = |name: &'static str| {
            claims
                .get(name)
                .and_then(Value::as_u64)
                .filter(|s| *s < 1 << 40)
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                .ok_or(KeyLoginError::BadClaim(name))
        };
        let iat = time("iat")?;
        let exp = time("exp")?;
        match claims.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => {}
            _ => return Err(KeyLoginError::BadClaim("jti")),
        }
        if !audience_ok {
            return Err(KeyLoginError::WrongAudience);
        }
        let skew = self.settings.clock_skew.0;
        match exp.duration_since(iat) {
            Ok(life) if !life.is_zero() && life <= self.settings.max_lifetime.0 => {}
            _ => return Err(KeyLoginError::TooLongLived),
        }
        if exp + skew <= now {
            return Err(KeyLoginError::Expired);
        }
        if iat > now + skew {
            return Err(KeyLoginError::IssuedInFuture);
        }
        Ok(exp + skew)
    }
}

#[async_trait]
impl Authenticator for KeyLoginModule {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> ModuleKind {
        ModuleKind::Ambient
    }

    async fn authenticate(&self, request: &AuthRequest) -> Result<Outcome, AuthError> {
        let Credentials::Assertion { token } = &request.credentials else {
            return Ok(Outcome::Abstain);
        };
        self.verify_assertion(token.expose(), SystemTime::now())
            .await
            .map(Outcome::Authenticated)
    }
}

impl KeyLoginModule {
    /// Verifies a login assertion as a login at `now` would (what
    /// [`Authenticator::authenticate`] does with [`Credentials::Assertion`] and the
    /// current time): the JWS, the signature against the account's registered keys,
    /// the claims at `now`, then the `jti` in the replay cache (an accepted
    /// assertion is remembered). The errors are those of a login.
    pub async fn verify_assertion(&self, token: &str, now: SystemTime) -> Result<Identity, AuthError> {
        let jws = match Jws::parse(token, &ALGORITHMS) {
            Ok(jws) => jws,
            Err(
                err @ (JwsError::Unsigned
                | JwsError::SymmetricAlgorithm(_)
                | JwsError::AlgorithmNotAllowed(_)
                | JwsError::CriticalHeader),
            ) => return Err(self.rejected(err)),
            Err(err) => return Err(self.malformed(err)),
        };
        let claims = jws.unverified_claims().map_err(|e| self.malformed(e))?;
        let login = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() && sub.len() <= MAX_SUB_BYTES => sub.clone(),
            _ => return Err(self.malformed(KeyLoginError::BadClaim("sub"))),
        };
        let alg = jws.header().alg;
        let account = match self.names.find(self.store.as_ref(), &login).await {
            Ok(account) => account,
            Err(StoreError::Ambiguous) => {
                warn!(target: AUDIT_TARGET, module = %self.id, login = %crate::audit::text(&login), "login name matches several accounts");
                None
            }
            Err(err) => return Err(AuthError::store(err)),
        };
        let keys = match &account {
            Some(account) => match self.store.public_keys(&account.id).await {
                Ok(keys) => self.verification_keys(&keys),
                Err(StoreError::NotFound) => Vec::new(),
                Err(StoreError::Unsupported(what)) => {
                    return Err(AuthError::Misconfigured(format!(
                        "module `{}`: the user store does not support {what}",
                        self.id
                    )));
                }
                Err(err) => return Err(AuthError::store(err)),
            },
            None => Vec::new(),
        };
        let dummy = Self::dummy(alg).ok_or_else(|| AuthError::Misconfigured("no dummy key".into()))?;
        // Exactly the registered candidates, or else one dummy check: no login
        // answers without a signature check.
        let real = jws.select(keys.iter()).is_ok();
        let verified = if real {
            jws.verify(keys.iter())
        } else {
            jws.verify(std::iter::once(dummy))
                .and(Err(JwsError::BadSignature))
        };
        let (Some(account), Ok(verified)) = (account, verified) else {
            return Err(AuthError::InvalidCredentials);
        };
        let remember_until = self
            .check_claims(&verified.claims, now)
            .map_err(|e| self.rejected(e))?;
        let jti = verified
            .claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let replay_key = format!("key_login\n{}\n{}\n{jti}", self.id, account.id);
        match self.replay.check_and_remember(&replay_key, remember_until).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(target: AUDIT_TARGET, module = %self.id, account = %account.id, "key-login assertion replayed");
                crate::metrics::replay_refused(&self.id);
                return Err(AuthError::rejected(self.id.clone(), ReplayError::Replayed));
            }
            Err(err @ ReplayError::Replayed) => return Err(AuthError::rejected(self.id.clone(), err)),
            Err(err) => return Err(AuthError::unavailable(self.id.clone(), err)),
        }
        let key = verified
            .key
            .key_id()
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default();
        tracing::info!(target: AUDIT_TARGET, module = %self.id, account = %account.id, key = %key, "key-login assertion accepted");
        let mut identity = Identity::new(self.id.clone(), account.id.to_string(), account.login.clone())
            .with_account(account.id);
        identity.email = account.email;
        identity.display_name = account.display_name;
        Ok(identity)
    }
}
