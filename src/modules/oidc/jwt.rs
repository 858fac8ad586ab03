//! JSON Web Keys and ID-token validation (RFC 7515, 7517, 7518; OIDC Core §3.1.3.7),
//! verified with `ring`. Every input is untrusted: nothing here panics.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

/// Longest accepted ID token, in bytes.
pub const MAX_ID_TOKEN_BYTES: usize = 64 * 1024;
/// Most keys taken from one JWKS.
const MAX_KEYS: usize = 64;

/// A JWS signature algorithm accepted for ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (the default, and what every provider supports).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm name.
    pub const NAMES: &'static [&'static str] = &[
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ];

    /// The algorithm with this JWS name (`RS256`). `none` and the HMAC algorithms
    /// are not algorithms an ID token may be verified with here.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        })
    }

    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// One verification key from a JWKS.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    material: Material,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Jwk {
    fn accepts(&self, alg: Algorithm) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        matches!(
            (&self.material, alg),
            (
                Material::Rsa { .. },
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (Material::P256(_), Algorithm::ES256)
                | (Material::P384(_), Algorithm::ES384)
                | (Material::Ed25519(_), Algorithm::EdDSA)
        )
    }

    fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        let rsa = |params: &'static signature::RsaParameters| match &self.material {
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok(),
            _ => false,
        };
        match alg {
            Algorithm::RS256 => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => rsa(&signature::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => rsa(&signature::RSA_PSS_2048_8192_SHA384),
            Algorithm::PS512 => rsa(&signature::RSA_PSS_2048_8192_SHA512),
            Algorithm::ES256 => match &self.material {
                Material::P256(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok(),
                _ => false,
            },
            Algorithm::ES384 => match &self.material {
                Material::P384(point) => UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok(),
                _ => false,
            },
            Algorithm::EdDSA => match &self.material {
                Material::Ed25519(key) => UnparsedPublicKey::new(&signature::ED25519, key)
                    .verify(message, sig)
                    .is_ok(),
                _ => false,
            },
        }
    }

    /// One JWK; `None` for keys that cannot verify signatures here (encryption
    /// keys, symmetric keys, unknown types), which are skipped.
    fn parse(value: &Value) -> Option<Jwk> {
        let obj = value.as_object()?;
        let field = |name: &str| obj.get(name).and_then(Value::as_str);
        if field("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let bytes = |name: &str| {
            field(name).and_then(|v| Base64UrlUnpadded::decode_vec(v.trim_end_matches('=')).ok())
        };
        let material = match field("kty")? {
            "RSA" => {
                let strip = |mut v: Vec<u8>| {
                    let zeros = v.iter().take_while(|b| **b == 0).count();
                    v.drain(..zeros);
                    v
                };
                let n = strip(bytes("n")?);
                let e = strip(bytes("e")?);
                if n.is_empty() || e.is_empty() || n.len() > 1024 || e.len() > 8 {
                    return None;
                }
                Material::Rsa { n, e }
            }
            "EC" => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                let len = match field("crv")? {
                    "P-256" => 32,
                    "P-384" => 48,
                    _ => return None,
                };
                if x.len() != len || y.len() != len {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if len == 32 {
                    Material::P256(point)
                } else {
                    Material::P384(point)
                }
            }
            "OKP" if field("crv") == Some("Ed25519") => {
                let x = bytes("x")?;
                if x.len() != 32 {
                    return None;
                }
                Material::Ed25519(x)
            }
            _ => return None,
        };
        Some(Jwk {
            kid: field("kid").map(str::to_owned),
            alg: field("alg").map(str::to_owned),
            material,
        })
    }
}

/// The verification keys of a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub(crate) fn parse(doc: &Value) -> Result<KeySet, String> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no `keys` array")?;
        let keys: Vec<Jwk> = keys.iter().take(MAX_KEYS).filter_map(Jwk::parse).collect();
        Ok(KeySet { keys })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether a key for this `kid` (or, without a kid, any key for `alg`) exists.
    pub(crate) fn has_candidate(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        self.candidates(kid, alg).next().is_some()
    }

    fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: Algorithm) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.accepts(alg) && (kid.is_none() || k.kid.as_deref() == kid))
    }
}

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
}

/// What an ID token must satisfy.
#[derive(Debug, Clone)]
pub(crate) struct Expectations<'a> {
    pub(crate) issuer: &'a Issuer,
    pub(crate) client_id: &'a str,
    pub(crate) clock_skew: Duration,
    pub(crate) nonce: Option<&'a str>,
    pub(crate) now: SystemTime,
}

/// The expected issuer: fixed, or a multi-tenant template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issuer {
    Fixed(String),
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`: `{tenantid}` is the
    /// token's `tid` claim, limited to `tenants` when not empty.
    Template {
        template: String,
        tenants: Vec<String>,
    },
}

impl Issuer {
    fn matches(&self, iss: &str, claims: &Map<String, Value>) -> bool {
        match self {
            Issuer::Fixed(expected) => iss == expected,
            Issuer::Template { template, tenants } => {
                let Some(tid) = claims.get("tid").and_then(Value::as_str) else {
                    return false;
                };
                let sane = !tid.is_empty()
                    && tid.len() <= 64
                    && tid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                sane && (tenants.is_empty() || tenants.iter().any(|t| t == tid))
                    && iss == template.replace("{tenantid}", tid)
            }
        }
    }
}

/// The JOSE header fields looked at; anything else is ignored.
#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The parsed, not yet verified parts of a token.
pub(crate) struct Parsed<'t> {
    pub(crate) alg: Option<Algorithm>,
    pub(crate) kid: Option<String>,
    signing_input: &'t str,
    signature: Vec<u8>,
    payload: &'t str,
}

/// Splits and decodes the header; checks the algorithm against the allow-list.
pub(crate) fn parse<'t>(
    token: &'t str,
    algorithms: &[Algorithm],
    allow_unsigned: bool,
) -> Result<Parsed<'t>, TokenError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "not a signed JWT (encrypted ID tokens are not supported)",
        ));
    };
    let header_json = decode(header_b64)?;
    let header: Header<'_> = serde_json::from_slice(&header_json)
        .map_err(|_| TokenError::Malformed("header is not a JOSE header"))?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed("unsupported critical header"));
    }
    let alg_name = header.alg.ok_or(TokenError::Malformed("header has no `alg`"))?;
    let alg = if alg_name == "none" {
        if !allow_unsigned || !sig.is_empty() {
            return Err(TokenError::AlgorithmNotAllowed("none".into()));
        }
        None
    } else {
        match Algorithm::from_name(&alg_name) {
            Some(alg) if algorithms.contains(&alg) => Some(alg),
            _ => {
                return Err(TokenError::AlgorithmNotAllowed(
                    alg_name.chars().take(16).collect(),
                ));
            }
        }
    };
    let kid = match header.kid {
        Some(kid) if kid.len() > 256 => return Err(TokenError::Malformed("bad `kid`")),
        kid => kid.map(Cow::into_owned),
    };
    let signature = decode(sig)?;
    Ok(Parsed {
        alg,
        kid,
        signing_input: &token[..header_b64.len() + 1 + payload.len()],
        signature,
        payload,
    })
}

fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    base64url_decode(part.as_bytes()).ok_or(TokenError::Malformed("bad base64url"))
}

/// `base64url` value of each byte; 0xFF for bytes outside the alphabet.
const BASE64URL: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Unpadded base64url (RFC 4648 §5), strict: no padding, no white space, zero
/// trailing bits. Token parts are public, so a table lookup (not constant time) is
/// fine here, and several times faster than a constant-time decoder.
fn base64url_decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut chunks = input.chunks_exact(4);
    for chunk in &mut chunks {
        let mut n = 0u32;
        for &c in chunk {
            let v = BASE64URL[c as usize];
            if v == 0xFF {
                return None;
            }
            n = n << 6 | u32::from(v);
        }
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut n = 0u32;
        for &c in rest {
            let v = BASE64URL[c as usize];
            if v == 0xFF {
                return None;
            }
            n = n << 6 | u32::from(v);
        }
        // 2 chars → 1 byte (4 spare bits), 3 chars → 2 bytes (2 spare bits).
        let (bytes, spare) = if rest.len() == 2 { (1, 4) } else { (2, 2) };
        if n & ((1 << spare) - 1) != 0 {
            return None;
        }
        let n = n >> spare;
        if bytes == 1 {
            out.push(n as u8);
        } else {
            out.extend_from_slice(&[(n >> 8) as u8, n as u8]);
        }
    }
    Some(out)
}

/// Verifies the signature of a parsed token with the provider's keys.
pub(crate) fn verify_signature(parsed: &Parsed<'_>, keys: &KeySet) -> Result<(), TokenError> {
    let Some(alg) = parsed.alg else {
        return Ok(()); // `none`, explicitly allowed by the insecure option
    };
    let mut tried = false;
    for key in keys.candidates(parsed.kid.as_deref(), alg) {
        tried = true;
        if key.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature) {
            return Ok(());
        }
    }
    if tried {
        Err(TokenError::BadSignature)
    } else {
        Err(TokenError::UnknownKey(parsed.kid.clone()))
    }
}

/// Checks the claims of a token whose signature verified.
pub(crate) fn check_claims(
    parsed: &Parsed<'_>,
    want: &Expectations<'_>,
) -> Result<Map<String, Value>, TokenError> {
    let payload = decode(parsed.payload)?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("payload is not a JSON object"))?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(TokenError::MissingClaim("iss"))?;
    if !want.issuer.matches(iss, &claims) {
        return Err(TokenError::WrongIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenError::MissingClaim("aud")),
    };
    if !audiences.contains(&want.client_id) {
        return Err(TokenError::WrongAudience);
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == want.client_id => {}
        Some(_) => return Err(TokenError::WrongAudience),
        None if audiences.len() > 1 => return Err(TokenError::WrongAudience),
        None => {}
    }
    let now = want
        .now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let skew = want.clock_skew.as_secs();
    let exp = number(&claims, "exp")?;
    if now >= exp.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    let iat = number(&claims, "iat")?;
    if iat > now.saturating_add(skew) {
        return Err(TokenError::NotYetValid);
    }
    if claims.contains_key("nbf") && number(&claims, "nbf")? > now.saturating_add(skew) {
        return Err(TokenError::NotYetValid);
    }
    if let Some(expected) = want.nonce {
        match claims.get("nonce").and_then(Value::as_str) {
            Some(nonce) if constant_time_eq(nonce.as_bytes(), expected.as_bytes()) => {}
            _ => return Err(TokenError::NonceMismatch),
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= 255 && !sub.chars().any(char::is_control) => {}
        _ => return Err(TokenError::MissingClaim("sub")),
    }
    Ok(claims)
}

fn number(claims: &Map<String, Value>, name: &'static str) -> Result<u64, TokenError> {
    match claims.get(name) {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .ok_or(TokenError::MissingClaim(name)),
        _ => Err(TokenError::MissingClaim(name)),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Garbage of every shape is refused without a panic.
    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let alphabet = b"ab.-_=+/{}\":,[]0123456789eyJhbGciOiJSUzI1NiJ9 ";
        for len in 0..400 {
            let token: String = (0..len % 97)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize] as char
                })
                .collect();
            let _ = parse(&token, &[Algorithm::RS256], len % 2 == 0);
        }
        for doc in [
            serde_json::json!(null),
            serde_json::json!({"keys": 1}),
            serde_json::json!({"keys": [1, "x", {"kty": "RSA", "n": 5}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            serde_json::json!({"keys": [{"kty": "RSA", "n": "", "e": ""}, {"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}),
        ] {
            if let Ok(keys) = KeySet::parse(&doc) {
                assert_eq!(keys.len(), 0, "{doc}");
            }
        }
        let header = Base64UrlUnpadded::encode_string(br#"{"alg":"RS256","kid":7}"#);
        assert!(parse(&format!("{header}.e30.AA"), &[Algorithm::RS256], false).is_err());
    }

    #[test]
    fn base64url_matches_base64ct() {
        let mut data = Vec::new();
        for len in 0..70u8 {
            data.push(len.wrapping_mul(37) ^ 0xA5);
            let encoded = Base64UrlUnpadded::encode_string(&data);
            assert_eq!(
                base64url_decode(encoded.as_bytes()).as_deref(),
                Some(&data[..]),
                "{len}"
            );
        }
        for bad in ["a", "ab=", "a+b/", "ab c", "AB", "ABC"] {
            // "AB" / "ABC" carry non-zero spare bits.
            let ours = base64url_decode(bad.as_bytes());
            let theirs = Base64UrlUnpadded::decode_vec(bad).ok();
            assert_eq!(ours, theirs, "{bad}");
        }
    }
}
