//! OpenID Connect Back-Channel Logout 1.0: the provider POSTs a signed logout token
//! naming a session (`sid`) or a subject (`sub`) whose sessions end.
//!
//! A logout token is verified like an ID token where the two agree (signature with
//! the provider's JWKS and the module's algorithm allow-list, `iss`, `aud`, `iat`),
//! and refused where they differ (§2.6): it must carry the `events` member
//! `http://schemas.openid.net/event/backchannel-logout`, must not carry `nonce`, must
//! name `sid` or `sub`, and its `jti` is accepted once (the module's replay cache).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::warn;

use super::{OidcModule, TokenError, Validator};
use crate::AuthError;
use crate::audit::AUDIT_TARGET;
use crate::flow::replay::accept_once;
use crate::jose::cache::Check;
use crate::jose::jws::{self, JwsError};

/// The `events` member a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Longest `sid`, `sub` and `jti` accepted.
pub const MAX_SID_BYTES: usize = 255;
/// A logout token issued longer ago than this (plus the clock skew) is refused as
/// expired, so its `jti` need only be remembered that long.
pub const MAX_LOGOUT_TOKEN_AGE: Duration = Duration::from_secs(300);

/// A verified logout token: the provider's session (`sid`) and/or subject (`sub`)
/// whose sessions end. At least one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogoutToken {
    /// The subject (`sub`): without `sid`, every session of this subject ends.
    pub subject: Option<String>,
    /// The provider's session id (`sid`, the ID token's `sid` of the login).
    pub session_id: Option<String>,
}

fn jws_error(err: JwsError) -> TokenError {
    match err {
        JwsError::TooLarge => TokenError::Malformed("too long"),
        JwsError::Malformed(what) => TokenError::Malformed(what),
        JwsError::Encrypted => TokenError::Malformed("encrypted"),
        JwsError::CriticalHeader => TokenError::Malformed("critical header"),
        JwsError::Unsigned => TokenError::AlgorithmNotAllowed("none".into()),
        JwsError::SymmetricAlgorithm(alg) | JwsError::AlgorithmNotAllowed(alg) => {
            TokenError::AlgorithmNotAllowed(alg.chars().take(16).collect())
        }
        JwsError::UnknownKey(kid) => TokenError::UnknownKey(kid),
        JwsError::AlgorithmNotForKey(_) => TokenError::UnknownKey(None),
        JwsError::BadSignature => TokenError::BadSignature,
    }
}

/// A short string claim (`sid`, `sub`, `jti`): `Ok(None)` when absent.
fn short_text(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SID_BYTES && !s.chars().any(char::is_control) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(TokenError::MissingClaim(name)),
    }
}

impl OidcModule {
    /// Verifies a back-channel logout token (OpenID Connect Back-Channel Logout 1.0
    /// §2.6): signature with the provider's keys (fetching the JWKS when needed),
    /// `iss`, `aud` (this client), `iat` (not in the future, at most
    /// [`MAX_LOGOUT_TOKEN_AGE`] old), `exp` when present, the back-channel logout
    /// `events` member, no `nonce`, `sid` and/or `sub`, and `jti` never seen before
    /// (the replay cache remembers it). Refusals are [`AuthError::Rejected`] with a
    /// [`TokenError`] (or a replay) as the cause.
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutToken, AuthError> {
        let now = SystemTime::now();
        let unknown = Mutex::new(None::<String>);
        let claims = self
            .keys
            .verify(
                &self.keyless,
                |validator: &Validator| match jws::verify(token, &self.algorithms, validator.keys().keys()) {
                    Ok(verified) => Check::Done(Ok(verified.claims)),
                    Err(err) => match jws_error(err) {
                        TokenError::UnknownKey(kid) => {
                            if let Ok(mut slot) = unknown.lock() {
                                slot.clone_from(&kid);
                            }
                            Check::UnknownKey(AuthError::rejected(
                                self.id.clone(),
                                TokenError::UnknownKey(kid),
                            ))
                        }
                        other => Check::Done(Err(self.logout_token_error(other))),
                    },
                },
                || self.load_keys(),
                |retry_after| {
                    let kid = unknown.lock().ok().and_then(|k| k.clone());
                    self.refetch_limited(kid.as_deref(), retry_after)
                },
            )
            .await?;
        let (token, iss, jti, until) = self
            .logout_claims(&claims, now)
            .map_err(|err| self.logout_token_error(err))?;
        let replay_key = format!("oidc-logout\n{iss}\n{jti}");
        accept_once(self.replay.as_ref(), &self.id, &replay_key, until, "logout token").await?;
        Ok(token)
    }

    fn logout_token_error(&self, err: TokenError) -> AuthError {
        warn!(target: AUDIT_TARGET, module = %self.id, reason = %err, "logout token rejected");
        AuthError::rejected(self.id.clone(), err)
    }

    /// The claim checks of §2.6 after the signature: the token, its issuer, its
    /// `jti`, and until when the `jti` must be remembered.
    fn logout_claims(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<(LogoutToken, String, String, SystemTime), TokenError> {
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenError::MissingClaim("iss"))?;
        if !self.iss_parameter_matches(iss) {
            return Err(TokenError::WrongIssuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.client.id,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(self.client.id.as_str())),
            _ => return Err(TokenError::MissingClaim("aud")),
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        let seconds = |name: &'static str| -> Result<Option<u64>, TokenError> {
            match claims.get(name) {
                None => Ok(None),
                Some(value) => value
                    .as_u64()
                    .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or(TokenError::MissingClaim(name)),
            }
        };
        let now_s = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let skew = self.clock_skew.as_secs();
        let iat = seconds("iat")?.ok_or(TokenError::MissingClaim("iat"))?;
        if iat > now_s.saturating_add(skew) {
            return Err(TokenError::NotYetValid);
        }
        if now_s
            > iat
                .saturating_add(MAX_LOGOUT_TOKEN_AGE.as_secs())
                .saturating_add(skew)
        {
            return Err(TokenError::Expired);
        }
        if let Some(exp) = seconds("exp")?
            && now_s >= exp.saturating_add(skew)
        {
            return Err(TokenError::Expired);
        }
        let event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT));
        if !matches!(event, Some(Value::Object(_))) {
            return Err(TokenError::MissingClaim("events"));
        }
        if claims.contains_key("nonce") {
            return Err(TokenError::UnexpectedNonce);
        }
        let jti = short_text(claims, "jti")?.ok_or(TokenError::MissingClaim("jti"))?;
        let token = LogoutToken {
            subject: short_text(claims, "sub")?,
            session_id: short_text(claims, "sid")?,
        };
        if token.subject.is_none() && token.session_id.is_none() {
            return Err(TokenError::MissingClaim("sid"));
        }
        let until = UNIX_EPOCH
            + Duration::from_secs(iat)
            + MAX_LOGOUT_TOKEN_AGE
            + Duration::from_secs(skew.saturating_mul(2));
        Ok((token, iss.to_owned(), jti, until))
    }
}
