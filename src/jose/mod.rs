//! JOSE (RFC 7515, 7517, 7518) for every part of the crate that verifies signed JSON:
//! the signature algorithms allowed, a `ring`-backed JSON Web Key for the
//! [`openidconnect`] crate's generic verifiers, and bounded JWKS parsing.
//!
//! * [`Algorithm`]: the allow-list enum a configuration names (`RS256`, `ES256`, ...).
//!   `none` and the HMAC algorithms are not algorithms here.
//! * [`RingJwk`]: one verification key, parsed and size-checked once when the JWKS is
//!   read, verifying with `ring` only (openidconnect's own `CoreJsonWebKey` verifies RSA
//!   with the much slower RustCrypto `rsa` crate, which is never called here).
//! * [`RingJwsAlgorithm`], [`RingKeyType`], [`NoJwe`]: the algorithm, key type and (no)
//!   JWE types openidconnect's generic types are instantiated with.
//! * [`parse_jwks`]: a JWKS document, at most [`MAX_KEYS`] keys and [`MAX_JWKS_BYTES`].
//! * [`RingJwk::from_public_key_pem`] / [`RingJwk::from_spki_der`]: a key from a PEM or
//!   DER SubjectPublicKeyInfo (RSA 2048..=8192 bits, P-256, P-384, Ed25519).
//! * [`jws`]: the generic compact-JWS verifier ([`jws::verify`]) over these keys, for
//!   signed proxy headers and key-login assertions.
//!
//! The OIDC module verifies ID tokens with openidconnect's `IdTokenVerifier` over these
//! types; everything else verifies with [`jws`], the same keys and the same ring calls.
//! Every input is untrusted: nothing here panics.

mod jwks;
pub mod jws;
mod ring_jwk;

use std::fmt;

pub use jwks::{Jwks, JwksError, MAX_JWKS_BYTES, MAX_KEYS, candidates, parse_jwks};
pub use jws::{Jws, JwsError, JwsHeader, VerifiedJws};
pub use ring_jwk::{
    JwkError, MAX_PUBLIC_KEY_BYTES, NoJwe, RSA_MAX_BITS, RSA_MIN_BITS, RingJwk, RingJwsAlgorithm, RingKeyType,
};

/// A JWS signature algorithm a signed token may be verified with (an allow-list entry).
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
    /// are not algorithms a token may be verified with here.
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

    /// The openidconnect-side value.
    pub fn jws(self) -> RingJwsAlgorithm {
        match self {
            Algorithm::RS256 => RingJwsAlgorithm::RS256,
            Algorithm::RS384 => RingJwsAlgorithm::RS384,
            Algorithm::RS512 => RingJwsAlgorithm::RS512,
            Algorithm::PS256 => RingJwsAlgorithm::PS256,
            Algorithm::PS384 => RingJwsAlgorithm::PS384,
            Algorithm::PS512 => RingJwsAlgorithm::PS512,
            Algorithm::ES256 => RingJwsAlgorithm::ES256,
            Algorithm::ES384 => RingJwsAlgorithm::ES384,
            Algorithm::EdDSA => RingJwsAlgorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
pub(crate) fn base64url_decode(input: &[u8]) -> Option<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64UrlUnpadded, Encoding};

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

    #[test]
    fn algorithm_names_round_trip() {
        for name in Algorithm::NAMES {
            let alg = Algorithm::from_name(name).expect(name);
            assert_eq!(alg.name(), *name);
            assert_eq!(alg.jws().name(), *name);
        }
        for refused in ["none", "HS256", "ES256K", "ES512", "rs256", ""] {
            assert_eq!(Algorithm::from_name(refused), None, "{refused}");
        }
    }
}
