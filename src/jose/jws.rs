//! Generic compact-JWS verification (RFC 7515 §7.1) over [`RingJwk`] keys: the one
//! signature check behind signed proxy headers and key-login assertions (the OIDC
//! module's ID tokens go through openidconnect's verifier over the same keys).
//!
//! [`verify`] (or [`Jws::parse`] then [`Jws::verify`]):
//!
//! 1. size first: at most [`MAX_JWS_BYTES`] in all and [`MAX_HEADER_BYTES`] of header;
//! 2. three base64url parts (five is a JWE: [`JwsError::Encrypted`]);
//! 3. the header: `alg` (required), `kid`, `typ`; a duplicated member is malformed;
//!    `crit` is refused (no extension is understood), so is `enc`; every other member
//!    (`jku`, `x5u`, `jwk`, ...) is ignored — keys never come from the token;
//! 4. `alg`: `none` is [`JwsError::Unsigned`], `HS*` is [`JwsError::SymmetricAlgorithm`]
//!    (never verifiable: there are no shared-secret keys here), anything else must be on
//!    the caller's allow-list;
//! 5. candidate keys: those whose `kid` matches (a key or token without `kid` matches
//!    any), whose `use` allows signatures, and whose type fits the algorithm (RS*/PS*
//!    need RSA, ES256 P-256, ES384 P-384, EdDSA Ed25519; a key's own `alg` must equal
//!    the token's). None with the `kid`: [`JwsError::UnknownKey`]; some, but none of the
//!    algorithm's type: [`JwsError::AlgorithmNotForKey`];
//! 6. the signature, by ring, with at most [`MAX_CANDIDATES`] candidates;
//! 7. only then the payload, which must be a JSON object.
//!
//! Claims (`exp`, `aud`, ...) are the caller's to check. Nothing here panics.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use openidconnect::{JsonWebKey, JsonWebKeyUse};

use super::{Algorithm, RingJwk, base64url_decode};

/// Longest compact JWS accepted, in bytes.
pub const MAX_JWS_BYTES: usize = 16 * 1024;
/// Longest (base64url) header part accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 2048;
/// Most keys a signature is tried with (a JWKS holds at most [`MAX_KEYS`](super::MAX_KEYS)).
pub const MAX_CANDIDATES: usize = 8;
/// Longest `kid` accepted.
pub const MAX_KID_BYTES: usize = 256;

/// Why a compact JWS was refused. Messages name the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than [`MAX_JWS_BYTES`] (or a header longer than [`MAX_HEADER_BYTES`]).
    #[error("JWS longer than {MAX_JWS_BYTES} bytes")]
    TooLarge,
    /// Not three base64url parts, a header that is not a JSON object with a string `alg`,
    /// a duplicated header member, or a payload that is not a JSON object.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// A JWE (five parts, or an `enc` header): encrypted tokens are not supported.
    #[error("encrypted JWT (JWE) is not supported")]
    Encrypted,
    /// The header has `crit`: no extension is understood, so the token is refused.
    #[error("JWS has a critical header (`crit`)")]
    CriticalHeader,
    /// `alg: none`.
    #[error("unsigned JWS (`alg: none`)")]
    Unsigned,
    /// An HMAC algorithm (`HS256`, ...): never verifiable here (no shared-secret keys).
    #[error("symmetric JWS algorithm `{0}` is never accepted")]
    SymmetricAlgorithm(String),
    /// `alg` is not on the allow-list (or not an algorithm at all).
    #[error("JWS algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    /// No key has the token's `kid` (`None`: the token has no `kid`, and there is no key).
    #[error("no key matches the JWS (kid {0:?})")]
    UnknownKey(Option<String>),
    /// Keys with the token's `kid` exist, but none of the type the algorithm needs (an
    /// RS256 token and an EC key, say).
    #[error("no key of the type `{0}` needs")]
    AlgorithmNotForKey(Algorithm),
    /// The signature does not verify with any candidate key.
    #[error("JWS signature does not verify")]
    BadSignature,
}

/// The protected header members this crate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// The signature algorithm (on the caller's allow-list).
    pub alg: Algorithm,
    /// The key id, at most [`MAX_KID_BYTES`].
    pub kid: Option<String>,
    /// The media type (`JWT`, ...), at most 64 bytes; the caller decides what it needs.
    pub typ: Option<String>,
}

/// A verified JWS: its header, its claims, and the key that verified it.
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The protected header.
    pub header: JwsHeader,
    /// The payload (a JSON object).
    pub claims: Map<String, Value>,
    /// The key whose signature verified.
    pub key: RingJwk,
}

/// A parsed, not yet verified, compact JWS (header checked against the allow-list).
#[derive(Debug)]
pub struct Jws<'a> {
    header: JwsHeader,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Deserialised with serde's derive, which refuses duplicated members.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    enc: Option<IgnoredAny>,
}

impl<'a> Jws<'a> {
    /// Parses `token` and checks its header (steps 1–4 of the [module](self) list).
    pub fn parse(token: &'a str, allowed: &[Algorithm]) -> Result<Jws<'a>, JwsError> {
        if token.len() > MAX_JWS_BYTES {
            return Err(JwsError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed("not three dot-separated parts"));
        };
        match parts.count() {
            0 => {}
            2 => return Err(JwsError::Encrypted),
            _ => return Err(JwsError::Malformed("not three dot-separated parts")),
        }
        if header.len() > MAX_HEADER_BYTES {
            return Err(JwsError::TooLarge);
        }
        let header_json =
            base64url_decode(header.as_bytes()).ok_or(JwsError::Malformed("header is not base64url"))?;
        let raw: RawHeader = serde_json::from_slice(&header_json)
            .map_err(|_| JwsError::Malformed("header is not a JOSE header"))?;
        if raw.enc.is_some() {
            return Err(JwsError::Encrypted);
        }
        if raw.crit.is_some() {
            return Err(JwsError::CriticalHeader);
        }
        let short = |s: &str| s.chars().take(16).collect::<String>();
        let alg = match raw.alg.as_str() {
            "none" => return Err(JwsError::Unsigned),
            name if name.starts_with("HS") => return Err(JwsError::SymmetricAlgorithm(short(name))),
            name => match Algorithm::from_name(name) {
                Some(alg) if allowed.contains(&alg) => alg,
                _ => return Err(JwsError::AlgorithmNotAllowed(short(name))),
            },
        };
        if raw.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_BYTES) {
            return Err(JwsError::Malformed("`kid` too long"));
        }
        if raw.typ.as_ref().is_some_and(|t| t.len() > 64) {
            return Err(JwsError::Malformed("`typ` too long"));
        }
        let payload_part = payload;
        let payload =
            base64url_decode(payload.as_bytes()).ok_or(JwsError::Malformed("payload is not base64url"))?;
        let signature = base64url_decode(signature.as_bytes())
            .ok_or(JwsError::Malformed("signature is not base64url"))?;
        if signature.is_empty() {
            return Err(JwsError::BadSignature);
        }
        Ok(Jws {
            header: JwsHeader {
                alg,
                kid: raw.kid,
                typ: raw.typ,
            },
            signing_input: &token[..header.len() + 1 + payload_part.len()],
            payload,
            signature,
        })
    }

    /// The checked header.
    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The claims BEFORE the signature is checked, for choosing the keys (the `sub`
    /// whose registered keys to try). Trust nothing in them until [`verify`](Self::verify).
    pub fn unverified_claims(&self) -> Result<Map<String, Value>, JwsError> {
        serde_json::from_slice(&self.payload).map_err(|_| JwsError::Malformed("payload is not a JSON object"))
    }

    /// Whether any of `keys` could verify this token (steps 5 of the [module](self)
    /// list), without verifying: `Err(UnknownKey)` tells a caller with a key cache to
    /// refetch.
    pub fn select<'k, I>(&self, keys: I) -> Result<Vec<&'k RingJwk>, JwsError>
    where
        I: IntoIterator<Item = &'k RingJwk>,
    {
        let kid = self.header.kid.as_deref();
        let alg = self.header.alg.jws();
        let mut with_kid = false;
        let mut candidates = Vec::new();
        for key in keys {
            let kid_matches = match (kid, key.key_id()) {
                (Some(want), Some(have)) => want == have.as_str(),
                _ => true,
            };
            if !kid_matches || !key.key_use().is_none_or(|u| u.allows_signature()) {
                continue;
            }
            with_kid = true;
            if key.accepts(&alg) {
                candidates.push(key);
                if candidates.len() == MAX_CANDIDATES {
                    break;
                }
            }
        }
        match (with_kid, candidates.is_empty()) {
            (false, _) => Err(JwsError::UnknownKey(kid.map(str::to_owned))),
            (true, true) => Err(JwsError::AlgorithmNotForKey(self.header.alg)),
            (true, false) => Ok(candidates),
        }
    }

    /// Verifies the signature with the candidates among `keys` (steps 5–7).
    pub fn verify<'k, I>(self, keys: I) -> Result<VerifiedJws, JwsError>
    where
        I: IntoIterator<Item = &'k RingJwk>,
    {
        let alg = self.header.alg.jws();
        let key = self
            .select(keys)?
            .into_iter()
            .find(|key| {
                key.verify_signature(&alg, self.signing_input.as_bytes(), &self.signature)
                    .is_ok()
            })
            .ok_or(JwsError::BadSignature)?
            .clone();
        let claims = self.unverified_claims()?;
        Ok(VerifiedJws {
            header: self.header,
            claims,
            key,
        })
    }
}

/// Parses and verifies a compact JWS: see the [module](self) list.
pub fn verify<'k, I>(token: &str, allowed: &[Algorithm], keys: I) -> Result<VerifiedJws, JwsError>
where
    I: IntoIterator<Item = &'k RingJwk>,
{
    Jws::parse(token, allowed)?.verify(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64UrlUnpadded, Encoding};
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::json;

    const RSA_PRIVATE: &str = include_str!("testdata/rsa2048.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa2048.pub.pem");

    fn b64(bytes: &[u8]) -> String {
        Base64UrlUnpadded::encode_string(bytes)
    }

    fn pkcs8_from_pem(pem: &str) -> Vec<u8> {
        spki::der::pem::decode_vec(pem.as_bytes()).unwrap().1
    }

    enum Signer {
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
        Rsa(RsaKeyPair),
    }

    impl Signer {
        fn ec() -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Signer::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap(),
            )
        }
        fn ed() -> Signer {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }
        fn rsa() -> Signer {
            Signer::Rsa(RsaKeyPair::from_pkcs8(&pkcs8_from_pem(RSA_PRIVATE)).unwrap())
        }
        /// The public key as a JWK.
        fn jwk(&self, kid: &str) -> RingJwk {
            let value = match self {
                Signer::Ec(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&p[1..33]), "y": b64(&p[33..])})
                }
                Signer::Ed(k) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(k.public_key().as_ref())})
                }
                Signer::Rsa(_) => {
                    return RingJwk::from_public_key_pem(RSA_PUBLIC, Some(kid)).unwrap();
                }
            };
            RingJwk::from_json(&value).unwrap()
        }
        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let rng = SystemRandom::new();
            let sig = match self {
                Signer::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
                Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
                Signer::Rsa(k) => {
                    let mut sig = vec![0; k.public().modulus_len()];
                    k.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                        .unwrap();
                    sig
                }
            };
            format!("{input}.{}", b64(&sig))
        }
    }

    const ALL: &[Algorithm] = &[Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

    #[test]
    fn each_key_type_verifies() {
        for (signer, alg) in [
            (Signer::ec(), "ES256"),
            (Signer::ed(), "EdDSA"),
            (Signer::rsa(), "RS256"),
        ] {
            let key = signer.jwk("k1");
            let token = signer.sign(
                &json!({"alg": alg, "kid": "k1", "typ": "JWT"}),
                &json!({"sub": "alice"}),
            );
            let verified = verify(&token, ALL, [&key]).expect(alg);
            assert_eq!(verified.claims["sub"], "alice");
            assert_eq!(verified.header.kid.as_deref(), Some("k1"));
            assert_eq!(verified.header.typ.as_deref(), Some("JWT"));
            assert_eq!(verified.header.alg.name(), alg);
            // Tampered payload.
            let mut parts: Vec<&str> = token.split('.').collect();
            let other = b64(br#"{"sub":"admin"}"#);
            parts[1] = &other;
            assert_eq!(
                verify(&parts.join("."), ALL, [&key]).unwrap_err(),
                JwsError::BadSignature
            );
        }
    }

    #[test]
    fn header_refusals() {
        let signer = Signer::ec();
        let key = signer.jwk("k1");
        let claims = json!({"sub": "alice"});
        let cases = [
            (json!({"alg": "none"}), JwsError::Unsigned),
            (
                json!({"alg": "HS256"}),
                JwsError::SymmetricAlgorithm("HS256".into()),
            ),
            (
                json!({"alg": "ES256K"}),
                JwsError::AlgorithmNotAllowed("ES256K".into()),
            ),
            (
                json!({"alg": "PS256"}),
                JwsError::AlgorithmNotAllowed("PS256".into()),
            ),
            (
                json!({"alg": "ES256", "crit": ["exp"], "exp": 1}),
                JwsError::CriticalHeader,
            ),
            (json!({"alg": "ES256", "enc": "A128GCM"}), JwsError::Encrypted),
            (
                json!({"alg": 5}),
                JwsError::Malformed("header is not a JOSE header"),
            ),
            (
                json!({"kid": "k1"}),
                JwsError::Malformed("header is not a JOSE header"),
            ),
            (
                json!({"alg": "ES256", "kid": "other"}),
                JwsError::UnknownKey(Some("other".into())),
            ),
            (
                json!({"alg": "RS256", "kid": "k1"}),
                JwsError::AlgorithmNotForKey(Algorithm::RS256),
            ),
            (
                json!({"alg": "EdDSA"}),
                JwsError::AlgorithmNotForKey(Algorithm::EdDSA),
            ),
        ];
        for (header, want) in cases {
            let token = signer.sign(&header, &claims);
            assert_eq!(verify(&token, ALL, [&key]).unwrap_err(), want, "{header}");
        }
        // Duplicated `alg` (serde_json's Value would keep the last one).
        let dup = format!(
            "{}.{}.AAAA",
            b64(br#"{"alg":"ES256","alg":"none"}"#),
            b64(claims.to_string().as_bytes())
        );
        assert_eq!(
            verify(&dup, ALL, [&key]).unwrap_err(),
            JwsError::Malformed("header is not a JOSE header")
        );
        // An unsigned token with an empty signature part.
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(verify(&none, ALL, [&key]).unwrap_err(), JwsError::Unsigned);
        let empty_sig = format!("{}.{}.", b64(br#"{"alg":"ES256"}"#), b64(b"{}"));
        assert_eq!(
            verify(&empty_sig, ALL, [&key]).unwrap_err(),
            JwsError::BadSignature
        );
        // No keys at all.
        let token = signer.sign(&json!({"alg": "ES256"}), &claims);
        assert_eq!(verify(&token, ALL, []).unwrap_err(), JwsError::UnknownKey(None));
    }

    #[test]
    fn shape_and_size_refusals() {
        let key = Signer::ec().jwk("k1");
        for (token, want) in [
            ("a.b", JwsError::Malformed("not three dot-separated parts")),
            ("a.b.c.d", JwsError::Malformed("not three dot-separated parts")),
            ("a.b.c.d.e", JwsError::Encrypted),
            ("!!.b.c", JwsError::Malformed("header is not base64url")),
        ] {
            assert_eq!(verify(token, ALL, [&key]).unwrap_err(), want, "{token}");
        }
        let long = "a".repeat(MAX_JWS_BYTES + 1);
        assert_eq!(verify(&long, ALL, [&key]).unwrap_err(), JwsError::TooLarge);
        let long_header = format!("{}.e30.AAAA", "a".repeat(MAX_HEADER_BYTES + 4));
        assert_eq!(verify(&long_header, ALL, [&key]).unwrap_err(), JwsError::TooLarge);
        // A verified payload that is not an object.
        let signer = Signer::ed();
        let token = signer.sign(&json!({"alg": "EdDSA"}), &json!([1, 2]));
        assert_eq!(
            verify(&token, ALL, [&signer.jwk("k")]).unwrap_err(),
            JwsError::Malformed("payload is not a JSON object")
        );
    }

    #[test]
    fn candidates_without_kid_and_key_alg_constraint() {
        let (a, b) = (Signer::ec(), Signer::ec());
        let (ka, kb) = (a.jwk("a"), b.jwk("b"));
        // No kid in the token: every key of the type is tried.
        let token = b.sign(&json!({"alg": "ES256"}), &json!({"sub": "x"}));
        let verified = verify(&token, ALL, [&ka, &kb]).unwrap();
        assert_eq!(verified.key, kb);
        // A key without kid matches a token's kid.
        let bare = RingJwk::from_public_key_pem(RSA_PUBLIC, None).unwrap();
        let token = Signer::rsa().sign(&json!({"alg": "RS256", "kid": "whatever"}), &json!({}));
        assert!(verify(&token, ALL, [&bare]).is_ok());
        // A key whose own `alg` is RS384 does not verify RS256.
        let mut value = serde_json::to_value(&bare).unwrap();
        value["alg"] = json!("RS384");
        let constrained = RingJwk::from_json(&value).unwrap();
        assert_eq!(
            verify(&token, ALL, [&constrained]).unwrap_err(),
            JwsError::AlgorithmNotForKey(Algorithm::RS256)
        );
    }

    #[test]
    fn public_keys_from_pem() {
        let rsa = RingJwk::from_public_key_pem(RSA_PUBLIC, Some("r")).unwrap();
        assert_eq!(rsa.kind(), super::super::RingKeyType::Rsa);
        // The thumbprint of the same key as a JWK is equal.
        let value = serde_json::to_value(&rsa).unwrap();
        assert_eq!(RingJwk::from_json(&value).unwrap().thumbprint(), rsa.thumbprint());
        // RFC 7638 §3.1's example key.
        let rfc = RingJwk::from_json(&json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
        }))
        .unwrap();
        assert_eq!(rfc.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        // EC and Ed25519 in SPKI form (ring's PKCS#8 carries the same public key).
        let ec = Signer::ec();
        let Signer::Ec(pair) = &ec else { unreachable!() };
        let spki = ec_spki(pair.public_key().as_ref());
        let from_der = RingJwk::from_spki_der(&spki, None).unwrap();
        assert_eq!(from_der.thumbprint(), ec.jwk("x").thumbprint());
        let ed = Signer::ed();
        let Signer::Ed(pair) = &ed else { unreachable!() };
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let token = ed.sign(&json!({"alg": "EdDSA"}), &json!({"sub": "e"}));
        assert!(verify(&token, ALL, [&RingJwk::from_spki_der(&spki, None).unwrap()]).is_ok());
        // Refusals: RSA below 2048 bits, an unsupported curve; P-384 is taken.
        let small = include_str!("testdata/rsa1024.pub.pem");
        assert_eq!(
            RingJwk::from_public_key_pem(small, None).unwrap_err(),
            JwkError::RsaSize
        );
        let k256 = include_str!("testdata/k256.pub.pem");
        assert_eq!(
            RingJwk::from_public_key_pem(k256, None).unwrap_err(),
            JwkError::Unsupported
        );
        let p384 = RingJwk::from_public_key_pem(include_str!("testdata/p384.pub.pem"), None).unwrap();
        assert_eq!(p384.kind(), super::super::RingKeyType::P384);
        assert_eq!(
            RingJwk::from_public_key_pem("garbage", None).unwrap_err(),
            JwkError::NotPublicKey
        );
        assert_eq!(
            RingJwk::from_public_key_pem(RSA_PRIVATE, None).unwrap_err(),
            JwkError::NotPublicKey
        );
        assert_eq!(
            RingJwk::from_spki_der(&[0x30, 0x00], None).unwrap_err(),
            JwkError::NotPublicKey
        );
        let huge = "A".repeat(super::super::MAX_PUBLIC_KEY_BYTES + 1);
        assert_eq!(
            RingJwk::from_public_key_pem(&huge, None).unwrap_err(),
            JwkError::NotPublicKey
        );
    }

    use super::super::JwkError;

    /// SubjectPublicKeyInfo of a P-256 point.
    fn ec_spki(point: &[u8]) -> Vec<u8> {
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(point);
        der
    }
}
