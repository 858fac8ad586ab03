//! JWT client authentication at the token endpoint (RFC 7523 §2.2, OpenID Connect
//! Core §9): `private_key_jwt` (an RS256 or ES256 assertion signed with the client's
//! private key) and `client_secret_jwt` (HS256 with the client secret), signed with
//! `ring`. Each assertion has `iss` = `sub` = the client id, `aud` = the token
//! endpoint, a random `jti` and a short `exp`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{ConfigError, SecretString};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Default lifetime of a client assertion.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
/// Longest accepted client assertion lifetime.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(600);
/// Largest accepted private key file (PEM), in bytes.
const MAX_KEY_PEM_BYTES: usize = 16 * 1024;
/// Shortest client secret `client_secret_jwt` accepts: HS256 wants a key at least as
/// long as its hash (RFC 7518 §3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The client's private key for `private_key_jwt`.
enum PrivateKey {
    /// RSA (2048 bits or more), signs RS256.
    Rsa(RsaKeyPair),
    /// ECDSA P-256, signs ES256.
    P256(EcdsaKeyPair),
}

/// A private key read from configuration, with its `kid` (the signer of
/// `private_key_jwt` assertions, and the source of the client's public JWKS).
#[derive(Clone)]
pub(crate) struct ClientKey {
    key: Arc<PrivateKey>,
    kid: String,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`: RSA or P-256) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`). `kid` defaults to the key's RFC 7638 thumbprint.
    /// Errors are keyed `client_private_key` (`client_key_id` for a bad kid).
    pub(crate) fn from_pem(pem: &SecretString, kid: Option<&str>) -> Result<ClientKey, ConfigError> {
        const KEY: &str = "client_private_key";
        let invalid = |message: &str| ConfigError::invalid(KEY, message);
        if pem.len() > MAX_KEY_PEM_BYTES {
            return Err(invalid("the key is larger than 16 KiB"));
        }
        let (label, der) = pem_block(pem.expose()).ok_or_else(|| {
            invalid("is not a PEM block (`-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)")
        })?;
        let der = zeroize::Zeroizing::new(der);
        let key = match label {
            "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(&der) {
                Ok(pair) => PrivateKey::Rsa(pair),
                Err(_) => EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &SystemRandom::new(),
                )
                .map(PrivateKey::P256)
                .map_err(|_| {
                    invalid("is neither an RSA key of 2048 bits or more nor a P-256 key (PKCS#8)")
                })?,
            },
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
                .map(PrivateKey::Rsa)
                .map_err(|_| invalid("is not an RSA key of 2048 bits or more (PKCS#1)"))?,
            _ => {
                return Err(invalid(
                    "must be a PKCS#8 `PRIVATE KEY` (RSA or P-256) or a PKCS#1 `RSA PRIVATE KEY` \
                     (convert an `EC PRIVATE KEY` with `openssl pkcs8 -topk8 -nocrypt`)",
                ));
            }
        };
        let mut key = ClientKey {
            key: Arc::new(key),
            kid: String::new(),
        };
        key.kid = match kid {
            Some(kid) if kid.is_empty() || kid.len() > 256 || kid.chars().any(char::is_control) => {
                return Err(ConfigError::invalid(
                    "client_key_id",
                    "must be 1 to 256 characters without control characters",
                ));
            }
            Some(kid) => kid.to_owned(),
            None => key.thumbprint(),
        };
        Ok(key)
    }

    /// The JWS algorithm this key signs with.
    pub(crate) fn alg(&self) -> &'static str {
        match *self.key {
            PrivateKey::Rsa(_) => "RS256",
            PrivateKey::P256(_) => "ES256",
        }
    }

    /// The public key as a JWK (with `kid`, `use` and `alg`).
    pub(crate) fn public_jwk(&self) -> Value {
        let mut jwk = self.jwk_members();
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg());
        jwk
    }

    /// The JWKS (`{"keys": [..]}`) of this key's public part, as JSON text.
    pub(crate) fn public_jwks(&self) -> String {
        json!({ "keys": [self.public_jwk()] }).to_string()
    }

    /// The required members of the public JWK (RFC 7638 §3.2), as a JSON object.
    fn jwk_members(&self) -> Value {
        match &*self.key {
            PrivateKey::Rsa(pair) => {
                let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({
                    "e": Base64UrlUnpadded::encode_string(&public.e),
                    "kty": "RSA",
                    "n": Base64UrlUnpadded::encode_string(&public.n),
                })
            }
            PrivateKey::P256(pair) => {
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(point.len().saturating_sub(1) / 2);
                json!({
                    "crv": "P-256",
                    "kty": "EC",
                    "x": Base64UrlUnpadded::encode_string(x),
                    "y": Base64UrlUnpadded::encode_string(y),
                })
            }
        }
    }

    /// RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order
    /// (serde_json's map keeps keys sorted), base64url.
    fn thumbprint(&self) -> String {
        let canonical = self.jwk_members().to_string();
        Base64UrlUnpadded::encode_string(&Sha256::digest(canonical.as_bytes()))
    }

    fn sign(&self, input: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match &*self.key {
            PrivateKey::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
                    .ok()?;
                Some(sig)
            }
            PrivateKey::P256(pair) => pair.sign(&rng, input).ok().map(|s| s.as_ref().to_vec()),
        }
    }
}

/// What signs a client assertion.
pub(crate) enum Signer<'a> {
    /// `private_key_jwt`.
    Key(&'a ClientKey),
    /// `client_secret_jwt`: HS256 with the client secret.
    Secret(&'a SecretString),
}

/// A fresh client assertion for `client_id` at `token_endpoint`, valid for
/// `lifetime`. `None` only when the system random source or clock fails.
pub(crate) fn assertion(
    signer: Signer<'_>,
    client_id: &str,
    token_endpoint: &str,
    lifetime: Duration,
) -> Option<String> {
    let mut jti = [0u8; 16];
    SystemRandom::new().fill(&mut jti).ok()?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let header = match signer {
        Signer::Key(key) => json!({ "alg": key.alg(), "typ": "JWT", "kid": key.kid }),
        Signer::Secret(_) => json!({ "alg": "HS256", "typ": "JWT" }),
    };
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": Base64UrlUnpadded::encode_string(&jti),
        "iat": now,
        "exp": now + lifetime.as_secs(),
    });
    let input = format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
    );
    let sig = match signer {
        Signer::Key(key) => key.sign(input.as_bytes())?,
        Signer::Secret(secret) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
            ring::hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
        }
    };
    Some(format!("{input}.{}", Base64UrlUnpadded::encode_string(&sig)))
}

/// The label and DER bytes of the first PEM block of `text`.
fn pem_block(text: &str) -> Option<(&str, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(rest[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = Base64::decode_vec(&body).ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_read_strictly() {
        assert_eq!(
            pem_block("-----BEGIN X-----\nAAEC\n-----END X-----\n"),
            Some(("X", vec![0, 1, 2]))
        );
        for bad in [
            "",
            "AAEC",
            "-----BEGIN X-----\nAAEC\n-----END Y-----",
            "-----BEGIN X-----\n%%%\n-----END X-----",
        ] {
            assert_eq!(pem_block(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_keys_are_configuration_errors() {
        for bad in [
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----\nAAEC\n-----END EC PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nAAEC\n-----END RSA PRIVATE KEY-----",
        ] {
            let err = ClientKey::from_pem(&SecretString::new(bad), None).unwrap_err();
            assert_eq!(err.key(), Some("client_private_key"), "{bad}");
        }
        let huge = SecretString::new("A".repeat(MAX_KEY_PEM_BYTES + 1));
        assert!(ClientKey::from_pem(&huge, None).is_err());
    }

    #[test]
    fn hs256_assertions_carry_the_rfc_7523_claims() {
        let secret = SecretString::new("s".repeat(32));
        let jwt = assertion(
            Signer::Secret(&secret),
            "client-1",
            "https://op.test/token",
            DEFAULT_ASSERTION_LIFETIME,
        )
        .expect("assertion");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://op.test/token");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            60
        );
        let again = assertion(
            Signer::Secret(&secret),
            "client-1",
            "https://op.test/token",
            DEFAULT_ASSERTION_LIFETIME,
        )
        .expect("assertion");
        assert_ne!(jwt, again, "a fresh jti each time");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        ring::hmac::verify(
            &key,
            input.as_bytes(),
            &Base64UrlUnpadded::decode_vec(sig).unwrap(),
        )
        .expect("HS256");
    }
}
