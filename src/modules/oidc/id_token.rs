//! ID-token validation (OIDC Core §3.1.3.7) with openidconnect's [`IdTokenVerifier`]
//! over the crate's ring-backed keys ([`RingJwk`]), plus the checks openidconnect
//! does not make (`azp`, `nbf`, `sub` sanity, the multi-tenant issuer template).
//! Every failure is one [`TokenError`] variant. Nothing here panics.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use openidconnect::core::CoreGenderClaim;
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdTokenVerifier, IssuerUrl, JsonWebKeyId,
    JsonWebKeySet, Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use base64ct::Encoding;

use crate::jose::{self, Algorithm, Jwks, NoJwe, RingJwk, RingJwsAlgorithm};

/// Longest accepted ID token, in bytes.
pub const MAX_ID_TOKEN_BYTES: usize = 64 * 1024;

/// The claims openidconnect does not model that the validation itself needs: `tid`
/// (the multi-tenant issuer) and `nbf`. Every other claim is skipped while the token
/// is verified (no JSON map built per token); claim mapping reads them from the signed
/// payload on demand ([`ValidatedIdToken::raw_claims`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExtraClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tid: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<Value>,
}
impl AdditionalClaims for ExtraClaims {}

/// The ID-token type: openidconnect's `IdToken` over our algorithm and (no) JWE types.
type RingIdToken = openidconnect::IdToken<ExtraClaims, CoreGenderClaim, NoJwe, RingJwsAlgorithm>;
/// The verified, typed claims.
pub(crate) type RingIdTokenClaims = openidconnect::IdTokenClaims<ExtraClaims, CoreGenderClaim>;
/// openidconnect's verifier over the ring key type.
type RingIdTokenVerifier<'a> = IdTokenVerifier<'a, RingJwk>;

/// Why an ID token was refused. Messages name the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS, bad base64 or JSON, too long, or encrypted.
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not on the allow-list (`none`, `HS256`, ...).
    #[error("ID token algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    /// No key of the provider matches the token's `kid` and `alg`.
    #[error("no provider key matches the ID token (kid {0:?})")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("ID token signature does not verify")]
    BadSignature,
    /// `iss` is not the provider's issuer.
    #[error("ID token issuer does not match")]
    WrongIssuer,
    /// `aud` does not hold the client id, or `azp` is wrong or missing.
    #[error("ID token audience does not match this client")]
    WrongAudience,
    /// `exp` has passed (beyond the clock skew).
    #[error("ID token has expired")]
    Expired,
    /// `iat` (or `nbf`) lies in the future beyond the clock skew.
    #[error("ID token is issued in the future")]
    NotYetValid,
    /// `nonce` is missing or is not this login's.
    #[error("ID token nonce does not match this login")]
    NonceMismatch,
    /// A required claim is missing or has the wrong type.
    #[error("ID token claim `{0}` is missing or invalid")]
    MissingClaim(&'static str),
    /// The ID token's `at_hash` does not match the access token that came with it
    /// (OIDC Core §3.1.3.8; §3.2.2.9): a substituted access token.
    #[error("ID token `at_hash` does not match the access token")]
    AtHashMismatch,
    /// A back-channel logout token carries `nonce` (Back-Channel Logout §2.4 forbids
    /// it, so an ID token is never taken for a logout token).
    #[error("logout token carries a `nonce`")]
    UnexpectedNonce,
}

/// OIDC Core §3.1.3.8: when a verified ID token carries `at_hash`, it must be the
/// base64url left half of the hash of `access_token` named by the token's (verified)
/// `alg`: SHA-256 for RS256 / PS256 / ES256, SHA-384 and SHA-512 likewise, SHA-512 for
/// EdDSA over Ed25519. No `at_hash`: nothing to check.
pub(crate) fn check_at_hash(
    id_token: &str,
    claims: &Map<String, Value>,
    access_token: Option<&str>,
) -> Result<(), TokenError> {
    use ring::digest;
    let Some(at_hash) = claims.get("at_hash") else {
        return Ok(());
    };
    let at_hash = at_hash.as_str().ok_or(TokenError::MissingClaim("at_hash"))?;
    let access_token = access_token.ok_or(TokenError::AtHashMismatch)?;
    let algorithm = match header_alg(id_token).as_deref().and_then(Algorithm::from_name) {
        Some(Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256) => &digest::SHA256,
        Some(Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384) => &digest::SHA384,
        Some(Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA) => &digest::SHA512,
        // `alg: none` (the insecure option) or anything else: nothing to hash with.
        _ => return Err(TokenError::AtHashMismatch),
    };
    let hash = digest::digest(algorithm, access_token.as_bytes());
    let half = &hash.as_ref()[..hash.as_ref().len() / 2];
    let expected = base64ct::Base64UrlUnpadded::encode_string(half);
    if constant_time_eq(expected.as_bytes(), at_hash.as_bytes()) {
        Ok(())
    } else {
        Err(TokenError::AtHashMismatch)
    }
}

/// The expected issuer: fixed, or a multi-tenant template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issuer {
    Fixed(String),
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`: `{tenantid}` is the token's
    /// `tid` claim, limited to `tenants` when not empty.
    Template {
        template: String,
        tenants: Vec<String>,
    },
}

impl Issuer {
    fn matches_template(template: &str, tenants: &[String], iss: &str, tid: Option<&str>) -> bool {
        let Some(tid) = tid else { return false };
        let sane = !tid.is_empty()
            && tid.len() <= 64
            && tid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        sane && (tenants.is_empty() || tenants.iter().any(|t| t == tid))
            && iss == template.replace("{tenantid}", tid)
    }
}

/// What an ID token must satisfy.
#[derive(Debug, Clone)]
struct Expectations<'a> {
    algorithms: &'a [Algorithm],
    issuer: &'a Issuer,
    client_id: &'a str,
    clock_skew: Duration,
    nonce: Option<&'a str>,
    now: SystemTime,
}

/// A verified ID token.
#[derive(Debug, Clone)]
pub(crate) struct ValidatedIdToken {
    /// openidconnect's typed view (`subject()`, `additional_claims()`, ...).
    pub(crate) typed: RingIdTokenClaims,
    /// The signed payload segment (base64url), for [`raw_claims`](Self::raw_claims).
    payload: Box<str>,
}

impl ValidatedIdToken {
    /// Every claim exactly as signed, standard ones included (for claim-path mapping
    /// such as `realm_access.roles` or `email`). Decodes the payload once more (~2 µs),
    /// so it is done on demand, not during validation.
    pub(crate) fn raw_claims(&self) -> Option<Map<String, Value>> {
        jose::base64url_decode(self.payload.as_bytes()).and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }
}

/// Marker the `iat` callback returns, so that "issued in the future" is told apart
/// from "expired" (openidconnect reports both as `ClaimsVerificationError::Expired`).
const IAT_IN_FUTURE: &str = "iat in the future";

/// openidconnect's verifier, built once per (key set, configuration): the module
/// caches one beside each fetched JWKS. `now` is still per call: the verifier's time
/// callbacks read it from a thread-local that [`Validator::validate`] sets just before
/// the (synchronous) verification on the same thread.
pub(crate) struct Validator {
    keys: Jwks,
    verifier: RingIdTokenVerifier<'static>,
    /// With `insecure_allow_unsigned_id_tokens` only: the same checks with signature
    /// checks disabled, for tokens whose header says `alg: none` (and nothing else).
    unsigned: Option<RingIdTokenVerifier<'static>>,
    algorithms: Vec<Algorithm>,
    issuer: Issuer,
    client_id: String,
    clock_skew: Duration,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("keys", &self.keys.keys().len())
            .field("algorithms", &self.algorithms)
            .field("unsigned", &self.unsigned.is_some())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static NOW: std::cell::Cell<DateTime<Utc>> = const { std::cell::Cell::new(DateTime::<Utc>::MIN_UTC) };
}

/// The verifier's time checks, reading `now` from [`NOW`].
fn timed(verifier: RingIdTokenVerifier<'static>, clock_skew: Duration) -> RingIdTokenVerifier<'static> {
    let skew = chrono_skew(clock_skew);
    verifier
        // openidconnect tests `now >= exp` with no skew: hand it `now - skew`.
        .set_time_fn(move || shift(NOW.with(|n| n.get()), -skew))
        .set_issue_time_verifier_fn(move |iat| {
            if iat > shift(NOW.with(|n| n.get()), skew) {
                Err(IAT_IN_FUTURE.to_owned())
            } else {
                Ok(())
            }
        })
}

impl Validator {
    pub(crate) fn new(
        keys: Jwks,
        algorithms: &[Algorithm],
        issuer: Issuer,
        client_id: &str,
        clock_skew: Duration,
        allow_unsigned: bool,
    ) -> Validator {
        let verifier = timed(
            base_verifier(keys.clone(), algorithms, &issuer, client_id),
            clock_skew,
        );
        let unsigned = allow_unsigned.then(|| {
            timed(
                base_verifier(JsonWebKeySet::new(Vec::new()), algorithms, &issuer, client_id)
                    .insecure_disable_signature_check(),
                clock_skew,
            )
        });
        Validator {
            keys,
            verifier,
            unsigned,
            algorithms: algorithms.to_vec(),
            issuer,
            client_id: client_id.to_owned(),
            clock_skew,
        }
    }

    /// The keys this validator verifies with.
    pub(crate) fn keys(&self) -> &Jwks {
        &self.keys
    }

    pub(crate) fn validate(
        &self,
        token: &str,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<ValidatedIdToken, TokenError> {
        let want = Expectations {
            algorithms: &self.algorithms,
            issuer: &self.issuer,
            client_id: &self.client_id,
            clock_skew: self.clock_skew,
            nonce,
            now,
        };
        NOW.with(|n| n.set(now.into()));
        self.run(token, &want)
    }

    fn run(&self, token: &str, want: &Expectations<'_>) -> Result<ValidatedIdToken, TokenError> {
        if token.len() > MAX_ID_TOKEN_BYTES {
            return Err(TokenError::Malformed("too long"));
        }
        let id_token: RingIdToken = token.parse().map_err(|_| diagnose_unparsable(token))?;

        // The header's `alg` first (before openidconnect's iss/aud checks, as before):
        // anything not on the allow-list (HS256, ES256K, ...) is refused here, and so is
        // `none`, unless the insecure option is on and the signature part is empty.
        let verifier = match id_token.signing_alg() {
            Ok(alg) if want.algorithms.iter().any(|a| a.name() == alg.name()) => &self.verifier,
            Ok(alg) => {
                return Err(TokenError::AlgorithmNotAllowed(
                    alg.name().chars().take(16).collect(),
                ));
            }
            Err(SignatureVerificationError::NoSignature) => match &self.unsigned {
                Some(unsigned) if token.ends_with('.') => unsigned,
                _ => return Err(TokenError::AlgorithmNotAllowed("none".into())),
            },
            Err(_) => return Err(TokenError::Malformed("not a JWS")),
        };

        // `into_claims` (owned) spares a copy of the claims; the rare ambiguous-key path
        // below parses the token again.
        let typed: RingIdTokenClaims = match id_token.into_claims(verifier, nonce_check(want.nonce)) {
            Ok(claims) => claims,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::AmbiguousKeyId(_),
            )) => self.each_candidate(token, want)?,
            Err(err) => return Err(map_error(err, token)),
        };

        // What openidconnect does not check.
        let extra = typed.additional_claims();
        // azp (OIDC Core 3.1.3.7 (4)(5)); openidconnect has this check commented out.
        match typed.authorized_party() {
            Some(azp) if azp.as_str() == want.client_id => {}
            Some(_) => return Err(TokenError::WrongAudience),
            None if typed.audiences().len() > 1 => return Err(TokenError::WrongAudience),
            None => {}
        }
        if let Issuer::Template { template, tenants } = want.issuer {
            let tid = extra.tid.as_ref().and_then(Value::as_str);
            if !Issuer::matches_template(template, tenants, typed.issuer().as_str(), tid) {
                return Err(TokenError::WrongIssuer);
            }
        }
        if let Some(nbf) = &extra.nbf {
            let nbf = seconds(nbf).ok_or(TokenError::MissingClaim("nbf"))?;
            let latest = unix(want.now).saturating_add(want.clock_skew.as_secs());
            if nbf > latest {
                return Err(TokenError::NotYetValid);
            }
        }
        let sub = typed.subject().as_str();
        if sub.is_empty() || sub.len() > 255 || sub.chars().any(char::is_control) {
            return Err(TokenError::MissingClaim("sub"));
        }

        // Kept for `raw_claims()` (exact JSON, including the standard claims that
        // openidconnect keeps only in typed form).
        let payload = token.split('.').nth(1).unwrap_or_default().into();
        Ok(ValidatedIdToken { typed, payload })
    }

    /// openidconnect wants exactly one eligible key; with no `kid` (or a duplicated
    /// one) and several keys, each candidate is tried alone. Rare: parses again.
    fn each_candidate(&self, token: &str, want: &Expectations<'_>) -> Result<RingIdTokenClaims, TokenError> {
        let id_token: RingIdToken = token.parse().map_err(|_| diagnose_unparsable(token))?;
        let kid = header_kid(token);
        let alg = id_token
            .signing_alg()
            .map_err(|_| TokenError::Malformed("not a JWS"))?;
        for key in jose::candidates(&self.keys, kid.as_ref(), alg) {
            let single = JsonWebKeySet::new(vec![key.clone()]);
            let verifier = timed(
                base_verifier(single, want.algorithms, want.issuer, want.client_id),
                want.clock_skew,
            );
            match id_token.claims(&verifier, nonce_check(want.nonce)) {
                Ok(claims) => return Ok(claims.clone()),
                Err(err) => match map_error(err, token) {
                    TokenError::BadSignature => {}
                    other => return Err(other),
                },
            }
        }
        Err(TokenError::BadSignature)
    }
}

fn chrono_skew(skew: Duration) -> chrono::Duration {
    chrono::Duration::from_std(skew).unwrap_or(chrono::Duration::MAX)
}

fn shift(t: DateTime<Utc>, by: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(by)
        .unwrap_or(if by < chrono::Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// Everything but the time checks.
fn base_verifier(
    keys: Jwks,
    algorithms: &[Algorithm],
    issuer: &Issuer,
    client_id: &str,
) -> RingIdTokenVerifier<'static> {
    let (issuer, check_issuer) = match issuer {
        Issuer::Fixed(iss) => match IssuerUrl::new(iss.clone()) {
            Ok(url) => (url, true),
            // Not a URL: no token's `iss` (always a parsed URL) can equal it.
            Err(_) => (placeholder_issuer(), true),
        },
        // Checked by us after verification, with the token's `tid`.
        Issuer::Template { .. } => (placeholder_issuer(), false),
    };
    IdTokenVerifier::new_public_client(ClientId::new(client_id.to_owned()), issuer, keys)
        .require_issuer_match(check_issuer)
        .set_allowed_algs(algorithms.iter().map(|a| a.jws()))
        // Extra audiences are allowed when `azp` is this client (checked afterwards).
        .set_other_audience_verifier_fn(|_| true)
}

fn placeholder_issuer() -> IssuerUrl {
    IssuerUrl::from_url("https://issuer.invalid".parse().expect("constant URL"))
}

fn nonce_check(expected: Option<&str>) -> impl FnOnce(Option<&Nonce>) -> Result<(), String> + '_ {
    move |nonce: Option<&Nonce>| match (expected, nonce) {
        (None, _) => Ok(()),
        (Some(expected), Some(nonce)) if constant_time_eq(nonce.secret().as_bytes(), expected.as_bytes()) => {
            Ok(())
        }
        _ => Err("nonce mismatch".to_owned()),
    }
}

fn map_error(err: ClaimsVerificationError, token: &str) -> TokenError {
    use ClaimsVerificationError as C;
    use SignatureVerificationError as S;
    match err {
        C::Expired(msg) if msg == IAT_IN_FUTURE => TokenError::NotYetValid,
        C::Expired(_) => TokenError::Expired,
        C::InvalidIssuer(_) => TokenError::WrongIssuer,
        C::InvalidAudience(_) => {
            // openidconnect defaults a missing `aud` to an empty list.
            match payload_json(token).as_ref().and_then(|c| c.get("aud")) {
                None => TokenError::MissingClaim("aud"),
                Some(_) => TokenError::WrongAudience,
            }
        }
        C::InvalidNonce(_) => TokenError::NonceMismatch,
        C::InvalidSubject(_) => TokenError::MissingClaim("sub"),
        C::InvalidAuthContext(_) => TokenError::MissingClaim("acr"),
        C::InvalidAuthTime(_) => TokenError::MissingClaim("auth_time"),
        C::Unsupported(_) => TokenError::Malformed("unsupported JOSE header (typ, cty or crit)"),
        C::SignatureVerification(S::NoMatchingKey) => {
            TokenError::UnknownKey(header_kid(token).map(|k| k.as_str().to_owned()))
        }
        C::SignatureVerification(S::NoSignature) => TokenError::AlgorithmNotAllowed("none".into()),
        C::SignatureVerification(S::DisallowedAlg(_) | S::UnsupportedAlg(_)) => {
            TokenError::AlgorithmNotAllowed(header_alg(token).unwrap_or_default())
        }
        C::SignatureVerification(_) => TokenError::BadSignature,
        _ => TokenError::Malformed("ID token refused"),
    }
}

// ---------------------------------------------------------------------------------------------
// Error-path helpers: decode the token ourselves only to name the failure precisely.

fn segment(token: &str, index: usize) -> Option<Vec<u8>> {
    let part = token.split('.').nth(index)?;
    jose::base64url_decode(part.as_bytes())
}

fn payload_json(token: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&segment(token, 1)?).ok()
}

fn header_json(token: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&segment(token, 0)?).ok()
}

fn header_kid(token: &str) -> Option<JsonWebKeyId> {
    let kid = header_json(token)?
        .get("kid")?
        .as_str()?
        .chars()
        .take(256)
        .collect();
    Some(JsonWebKeyId::new(kid))
}

fn header_alg(token: &str) -> Option<String> {
    Some(
        header_json(token)?
            .get("alg")?
            .as_str()?
            .chars()
            .take(16)
            .collect(),
    )
}

/// Why openidconnect could not even parse the token.
fn diagnose_unparsable(token: &str) -> TokenError {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return TokenError::Malformed("not a signed JWT (encrypted ID tokens are not supported)");
    }
    let Some(header) = header_json(token) else {
        return TokenError::Malformed("header is not a JOSE header");
    };
    if !header.get("alg").is_some_and(Value::is_string) {
        return TokenError::Malformed("header has no `alg`");
    }
    if header.contains_key("crit") {
        return TokenError::Malformed("unsupported critical header");
    }
    if header.get("kid").is_some_and(|k| !k.is_string()) {
        return TokenError::Malformed("bad `kid`");
    }
    let Some(claims) = payload_json(token) else {
        return TokenError::Malformed("payload is not a JSON object");
    };
    if jose::base64url_decode(parts[2].as_bytes()).is_none() {
        return TokenError::Malformed("bad base64url");
    }
    match claims.get("iss") {
        Some(Value::String(_)) => {}
        _ => return TokenError::MissingClaim("iss"),
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {}
        _ => return TokenError::MissingClaim("aud"),
    }
    for name in ["exp", "iat"] {
        if claims.get(name).and_then(seconds).is_none() {
            return TokenError::MissingClaim(name);
        }
    }
    if !claims.get("sub").is_some_and(Value::is_string) {
        return TokenError::MissingClaim("sub");
    }
    if claims.get("nonce").is_some_and(|n| !n.is_string()) {
        return TokenError::NonceMismatch;
    }
    if claims.get("azp").is_some_and(|n| !n.is_string()) {
        return TokenError::WrongAudience;
    }
    // `iss` that is not a URL: openidconnect's IssuerUrl refuses it while parsing.
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    if IssuerUrl::new(iss.to_owned()).is_err() {
        return TokenError::WrongIssuer;
    }
    // A standard claim of the wrong type (e.g. `email_verified: 5`, `address: "x"`).
    TokenError::Malformed("a standard claim has the wrong type")
}

fn seconds(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token_with_alg(alg: &str) -> String {
        let header = base64ct::Base64UrlUnpadded::encode_string(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        format!("{header}.e30.AAAA")
    }

    /// The expected value is computed independently here (ring's SHA-256, left half);
    /// tests/oidc.rs checks a real provider's at_hash.
    #[test]
    fn at_hash_checks() {
        let access = "ya29.a0-token";
        let digest = ring::digest::digest(&ring::digest::SHA256, access.as_bytes());
        let good = base64ct::Base64UrlUnpadded::encode_string(&digest.as_ref()[..16]);
        let claims = json!({"at_hash": good}).as_object().cloned().unwrap();
        let token = token_with_alg("RS256");
        assert_eq!(check_at_hash(&token, &claims, Some(access)), Ok(()));
        assert_eq!(
            check_at_hash(&token, &claims, Some("other")),
            Err(TokenError::AtHashMismatch)
        );
        assert_eq!(
            check_at_hash(&token, &claims, None),
            Err(TokenError::AtHashMismatch)
        );
        // The hash follows the ID token's alg: SHA-384 for ES384 differs.
        assert_eq!(
            check_at_hash(&token_with_alg("ES384"), &claims, Some(access)),
            Err(TokenError::AtHashMismatch)
        );
        let bad_type = json!({"at_hash": 5}).as_object().cloned().unwrap();
        assert_eq!(
            check_at_hash(&token, &bad_type, Some(access)),
            Err(TokenError::MissingClaim("at_hash"))
        );
        // No at_hash: nothing to check.
        assert_eq!(check_at_hash(&token, &Map::new(), None), Ok(()));
    }
}
