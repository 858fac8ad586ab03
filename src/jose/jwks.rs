//! Bounded JWKS parsing: at most [`MAX_KEYS`] keys from at most [`MAX_JWKS_BYTES`].

use std::fmt;

use openidconnect::{JsonWebKey, JsonWebKeyId, JsonWebKeySet, JsonWebKeyUse};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::{RingJwk, RingJwsAlgorithm};

/// Most keys taken from one JWKS; later entries are ignored (not even parsed).
pub const MAX_KEYS: usize = 64;
/// Longest JWKS document [`parse_jwks`] reads.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// A provider's verification keys, as openidconnect's verifiers take them.
pub type Jwks = JsonWebKeySet<RingJwk>;

/// Why a JWKS document was refused as a whole (single bad keys are skipped instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Longer than [`MAX_JWKS_BYTES`].
    #[error("JWKS document larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// Not JSON, or no `keys` array.
    #[error("JWKS is not a JSON object with a `keys` array")]
    NotAJwks,
}

/// Parses a JWKS document: at most [`MAX_KEYS`] entries are looked at (the rest are
/// skipped unparsed), and entries that are not usable signing keys are skipped, as
/// openidconnect's own `JsonWebKeySet` deserialiser does. (Deserialising
/// `JsonWebKeySet<RingJwk>` directly with serde also works, but does not bound the
/// number of keys.)
pub fn parse_jwks(doc: &[u8]) -> Result<Jwks, JwksError> {
    if doc.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    #[derive(Deserialize)]
    struct Doc {
        keys: BoundedKeys,
    }
    let doc: Doc = serde_json::from_slice(doc).map_err(|_| JwksError::NotAJwks)?;
    Ok(JsonWebKeySet::new(doc.keys.0))
}

struct BoundedKeys(Vec<RingJwk>);

impl<'de> Deserialize<'de> for BoundedKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BoundedKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of JWKs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BoundedKeys, A::Error> {
                let mut keys = Vec::new();
                let mut seen = 0;
                while seen < MAX_KEYS {
                    // Each entry as a JSON value first, so that a bad key is skipped, not fatal.
                    let Some(value) = seq.next_element::<serde_json::Value>()? else {
                        return Ok(BoundedKeys(keys));
                    };
                    seen += 1;
                    if let Ok(key) = RingJwk::from_json(&value) {
                        keys.push(key);
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(BoundedKeys(keys))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The keys of a set that could verify `alg` for this `kid` (any kid when the token
/// has none).
pub fn candidates<'a>(
    keys: &'a Jwks,
    kid: Option<&'a JsonWebKeyId>,
    alg: &'a RingJwsAlgorithm,
) -> impl Iterator<Item = &'a RingJwk> + 'a {
    keys.keys().iter().filter(move |k| {
        k.key_use().is_none_or(|u| u.allows_signature())
            && (kid.is_none() || k.key_id() == kid)
            && k.accepts(alg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Garbage of every shape is refused or skipped without a panic.
    #[test]
    fn garbage_keys_are_skipped() {
        for doc in [
            json!({"keys": [1, "x", {"kty": "RSA", "n": 5}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            json!({"keys": [{"kty": "RSA", "n": "", "e": ""}, {"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}),
            json!({"keys": [{"kty": "oct", "k": "AAAA"}, {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}),
        ] {
            let keys = parse_jwks(doc.to_string().as_bytes()).expect("a JWKS");
            assert!(keys.keys().is_empty(), "{doc}");
        }
        for doc in [json!(null), json!({"keys": 1}), json!([])] {
            assert_eq!(
                parse_jwks(doc.to_string().as_bytes()).unwrap_err(),
                JwksError::NotAJwks
            );
        }
        let huge = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(parse_jwks(&huge).unwrap_err(), JwksError::TooLarge);
    }

    #[test]
    fn at_most_64_keys_are_taken() {
        let key = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let doc = json!({"keys": vec![key; 100]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().len(), MAX_KEYS);
    }
}
