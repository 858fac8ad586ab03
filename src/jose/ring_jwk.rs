//! A `ring`-backed JSON Web Key for openidconnect 4's generic verifiers.
//!
//! openidconnect's own [`CoreJsonWebKey`](openidconnect::core::CoreJsonWebKey) verifies
//! RSA with the RustCrypto `rsa` crate (~7x slower than ring). Everything it needs from a key
//! is behind the [`JsonWebKey`] trait, so this module supplies:
//!
//! * [`RingJwk`]: the key ([`JsonWebKey`]), parsed and size-checked once when the JWKS is
//!   deserialised, verifying with ring only;
//! * [`RingJwsAlgorithm`]: the signing algorithm ([`JwsSigningAlgorithm`]), with a catch-all
//!   `Other` variant so that unknown names (`ES256K`, `HS256`, ...) still deserialise — in
//!   token headers (then refused by the allow-list) and in provider metadata (then kept);
//! * [`RingKeyType`]: the key type ([`JsonWebKeyType`]), one variant per curve so that an ES384
//!   token never selects a P-256 key;
//! * [`NoJwe`]: the JWE content-encryption algorithm type that the generic types also demand
//!   (`JE::KeyType` must equal our key type). It has no values: JWE is not supported.
//!
//! Every input is untrusted: nothing here panics.

use std::fmt;
use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding};
use openidconnect::core::CoreJsonWebKeyUse;
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JsonWebKeyType, JweContentEncryptionAlgorithm,
    JwsSigningAlgorithm, SignatureVerificationError,
};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Smallest accepted RSA modulus, in bits (ring's verification range too).
pub const RSA_MIN_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits.
pub const RSA_MAX_BITS: usize = 8192;

// ---------------------------------------------------------------------------------------------
// Algorithm

/// A JWS `alg` value. The nine verifiable algorithms, or any other name (kept verbatim, at most
/// 64 bytes), which no key ever verifies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the JWS names, as in `Algorithm`
pub enum RingJwsAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    /// Anything else: `HS256`, `ES256K`, `ES512`, `RSA-OAEP`, ... Never verifiable here.
    Other(String),
}

impl RingJwsAlgorithm {
    /// The verifiable algorithms.
    pub const SUPPORTED: [RingJwsAlgorithm; 9] = [
        RingJwsAlgorithm::RS256,
        RingJwsAlgorithm::RS384,
        RingJwsAlgorithm::RS512,
        RingJwsAlgorithm::PS256,
        RingJwsAlgorithm::PS384,
        RingJwsAlgorithm::PS512,
        RingJwsAlgorithm::ES256,
        RingJwsAlgorithm::ES384,
        RingJwsAlgorithm::EdDSA,
    ];

    /// The algorithm with this JWS name; any other name becomes [`Other`](Self::Other).
    pub fn from_name(name: &str) -> RingJwsAlgorithm {
        match name {
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            other => Self::Other(truncate(other, 64).to_owned()),
        }
    }

    /// The JWS name.
    pub fn name(&self) -> &str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::Other(name) => name,
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for RingJwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for RingJwsAlgorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RingJwsAlgorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RingJwsAlgorithm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWS algorithm name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                // `none` is handled by openidconnect before it asks us (JsonWebTokenAlgorithm::None);
                // in metadata lists it simply becomes Other("none").
                Ok(RingJwsAlgorithm::from_name(v))
            }
        }
        d.deserialize_str(V)
    }
}

impl JwsSigningAlgorithm for RingJwsAlgorithm {
    type KeyType = RingKeyType;

    fn key_type(&self) -> Option<RingKeyType> {
        Some(match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                RingKeyType::Rsa
            }
            Self::ES256 => RingKeyType::P256,
            Self::ES384 => RingKeyType::P384,
            Self::EdDSA => RingKeyType::Ed25519,
            Self::Other(_) => return None,
        })
    }

    /// HMAC names report a shared secret, so that openidconnect's verifier refuses them
    /// ("symmetric signatures are disallowed for public clients") even if one were ever put on
    /// the allow-list: we never build a confidential-client verifier, so no HMAC key exists.
    fn uses_shared_secret(&self) -> bool {
        matches!(self, Self::Other(name) if name.starts_with("HS"))
    }

    fn rsa_sha_256() -> Self {
        Self::RS256
    }
}

// ---------------------------------------------------------------------------------------------
// Key type, key use, JWE placeholder

/// The key type a signature algorithm needs, one variant per curve (openidconnect matches
/// `alg.key_type() == key.key_type()` when it selects keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RingKeyType {
    /// RSA (any modulus size in 2048..=8192 bits).
    #[serde(rename = "RSA")]
    Rsa,
    /// EC on P-256.
    #[serde(rename = "EC/P-256")]
    P256,
    /// EC on P-384.
    #[serde(rename = "EC/P-384")]
    P384,
    /// OKP on Ed25519.
    #[serde(rename = "OKP/Ed25519")]
    Ed25519,
    /// Only for [`JsonWebKey::new_symmetric`], which openidconnect calls for HMAC with a client
    /// secret — never, with a public-client verifier. Such a key verifies nothing.
    #[serde(rename = "oct")]
    Symmetric,
}
impl JsonWebKeyType for RingKeyType {}

/// No JWE content-encryption algorithm (encrypted ID tokens are not supported). Having no
/// values, it never deserialises, so every `alg` string reaches [`RingJwsAlgorithm`]; in
/// provider metadata the `*_enc_values_supported` lists (skip-on-error in openidconnect) come
/// out empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoJwe {}
impl JweContentEncryptionAlgorithm for NoJwe {
    type KeyType = RingKeyType;
    fn key_type(&self) -> Result<RingKeyType, String> {
        match *self {}
    }
}

// ---------------------------------------------------------------------------------------------
// The key

#[derive(Clone)]
enum Material {
    /// n and e big-endian, leading zeros stripped, size-checked: ready for ring.
    Rsa(RsaPublicKeyComponents<Box<[u8]>>),
    /// Uncompressed SEC1 point (0x04 || x || y).
    P256(UnparsedPublicKey<Box<[u8]>>),
    P384(UnparsedPublicKey<Box<[u8]>>),
    Ed25519(UnparsedPublicKey<Box<[u8]>>),
    Symmetric,
}

struct Inner {
    kid: Option<JsonWebKeyId>,
    key_use: Option<CoreJsonWebKeyUse>,
    alg: Option<RingJwsAlgorithm>,
    key_type: RingKeyType,
    material: Material,
}

/// One verification key from a JWKS, parsed once (cheap to clone: the key set is handed to
/// openidconnect's verifier by value).
#[derive(Clone)]
pub struct RingJwk(Arc<Inner>);

impl fmt::Debug for RingJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingJwk")
            .field("kid", &self.0.kid.as_ref().map(|k| k.as_str()))
            .field("kty", &self.0.key_type)
            .field("alg", &self.0.alg)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RingJwk {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.kid == other.0.kid
                && self.0.alg == other.0.alg
                && self.0.key_type == other.0.key_type
                && self.public_bytes() == other.public_bytes())
    }
}
impl Eq for RingJwk {}

/// Why a JWK was not taken. openidconnect's `JsonWebKeySet` skips such keys (VecSkipError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// `use` is not `sig`.
    #[error("not a signing key (`use` is not `sig`)")]
    NotForSigning,
    /// `oct`, P-521, X25519, or an unknown `kty`.
    #[error("unsupported key type or curve")]
    Unsupported,
    /// A member is missing, not base64url, or of the wrong length.
    #[error("missing or bad member `{0}`")]
    Bad(&'static str),
    /// The RSA modulus is outside 2048..=8192 bits.
    #[error("RSA modulus outside 2048..=8192 bits")]
    RsaSize,
    /// Not a PEM `PUBLIC KEY` block or DER SubjectPublicKeyInfo (or longer than
    /// [`MAX_PUBLIC_KEY_BYTES`]).
    #[error("not a PEM or DER SubjectPublicKeyInfo public key")]
    NotPublicKey,
}

/// Longest PEM or DER public key [`RingJwk::from_public_key_pem`] and
/// [`RingJwk::from_spki_der`] read (an 8192-bit RSA key is about 1.5 KB of PEM).
pub const MAX_PUBLIC_KEY_BYTES: usize = 8 * 1024;

const OID_RSA: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.101.112");

/// The JWK members looked at; anything else (x5c, key_ops, ...) is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use", default)]
    key_use: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn b64(field: &Option<String>, name: &'static str, max: usize) -> Result<Vec<u8>, JwkError> {
    let s = field.as_deref().ok_or(JwkError::Bad(name))?;
    // Some providers pad; accept that, nothing else.
    let s = s.trim_end_matches('=');
    if s.len() > max.div_ceil(3) * 4 {
        return Err(JwkError::Bad(name));
    }
    Base64UrlUnpadded::decode_vec(s).map_err(|_| JwkError::Bad(name))
}

fn strip_zeros(v: Vec<u8>) -> Box<[u8]> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v[zeros..].into()
}

/// RSA modulus and exponent (big-endian), size-checked for ring.
fn rsa_material(n: Vec<u8>, e: Vec<u8>) -> Result<(RingKeyType, Material), JwkError> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    let bits = match n.first() {
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        None => 0,
    };
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(JwkError::RsaSize);
    }
    // ring accepts odd exponents 3 ..= 2^33 - 1.
    let e_value = e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    if e.is_empty() || e.len() > 5 || e_value < 3 || e_value % 2 == 0 || e_value >= 1 << 33 {
        return Err(JwkError::Bad("e"));
    }
    Ok((RingKeyType::Rsa, Material::Rsa(RsaPublicKeyComponents { n, e })))
}

/// An EC point from its coordinates (`len` bytes each: 32 for P-256, 48 for P-384).
fn ec_material(len: usize, x: &[u8], y: &[u8]) -> Result<(RingKeyType, Material), JwkError> {
    if x.len() != len {
        return Err(JwkError::Bad("x"));
    }
    if y.len() != len {
        return Err(JwkError::Bad("y"));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    ec_point_material(point)
}

/// An uncompressed SEC1 point (0x04 || x || y) on P-256 or P-384.
fn ec_point_material(point: Vec<u8>) -> Result<(RingKeyType, Material), JwkError> {
    let point: Box<[u8]> = point.into();
    match (point.first(), point.len()) {
        (Some(4), 65) => Ok((
            RingKeyType::P256,
            Material::P256(UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)),
        )),
        (Some(4), 97) => Ok((
            RingKeyType::P384,
            Material::P384(UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)),
        )),
        _ => Err(JwkError::Bad("x")),
    }
}

fn ed25519_material(x: Vec<u8>) -> Result<(RingKeyType, Material), JwkError> {
    if x.len() != 32 {
        return Err(JwkError::Bad("x"));
    }
    Ok((
        RingKeyType::Ed25519,
        Material::Ed25519(UnparsedPublicKey::new(&signature::ED25519, x.into())),
    ))
}

impl RawJwk {
    fn into_key(self) -> Result<RingJwk, JwkError> {
        let key_use = match self.key_use.as_deref() {
            None => None,
            Some("sig") => Some(CoreJsonWebKeyUse::Signature),
            Some(_) => return Err(JwkError::NotForSigning),
        };
        let (key_type, material) = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => rsa_material(b64(&self.n, "n", RSA_MAX_BITS / 8 + 1)?, b64(&self.e, "e", 8)?)?,
            ("EC", Some("P-256")) => ec_material(32, &b64(&self.x, "x", 32)?, &b64(&self.y, "y", 32)?)?,
            ("EC", Some("P-384")) => ec_material(48, &b64(&self.x, "x", 48)?, &b64(&self.y, "y", 48)?)?,
            ("OKP", Some("Ed25519")) => ed25519_material(b64(&self.x, "x", 32)?)?,
            // Symmetric keys ("oct") are never taken from a JWKS: no HMAC with a public key.
            _ => return Err(JwkError::Unsupported),
        };
        let kid = match self.kid {
            Some(kid) if kid.len() > 256 => return Err(JwkError::Bad("kid")),
            kid => kid.map(JsonWebKeyId::new),
        };
        let alg = self.alg.map(|a| RingJwsAlgorithm::from_name(&a));
        Ok(RingJwk(Arc::new(Inner {
            kid,
            key_use,
            alg,
            key_type,
            material,
        })))
    }
}

impl RingJwk {
    /// Parses one JWK object.
    pub fn from_json(value: &serde_json::Value) -> Result<RingJwk, JwkError> {
        RawJwk::deserialize(value)
            .map_err(|_| JwkError::Bad("kty"))?
            .into_key()
    }

    /// Reads a PEM `-----BEGIN PUBLIC KEY-----` block (SubjectPublicKeyInfo, as
    /// `openssl pkey -pubout` writes it): RSA of 2048..=8192 bits, EC P-256 or P-384, or
    /// Ed25519. The key gets `kid` (if any), no `use` and no `alg` constraint: the
    /// algorithm is limited by the key type (RS*/PS* for RSA, ES256 for P-256, ...).
    pub fn from_public_key_pem(pem: &str, kid: Option<&str>) -> Result<RingJwk, JwkError> {
        if pem.len() > MAX_PUBLIC_KEY_BYTES {
            return Err(JwkError::NotPublicKey);
        }
        let (label, der) =
            spki::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| JwkError::NotPublicKey)?;
        if label != "PUBLIC KEY" {
            return Err(JwkError::NotPublicKey);
        }
        RingJwk::from_spki_der(&der, kid)
    }

    /// Reads a DER SubjectPublicKeyInfo; see [`from_public_key_pem`](Self::from_public_key_pem).
    pub fn from_spki_der(der: &[u8], kid: Option<&str>) -> Result<RingJwk, JwkError> {
        use spki::der::Decode;
        if der.len() > MAX_PUBLIC_KEY_BYTES {
            return Err(JwkError::NotPublicKey);
        }
        if kid.is_some_and(|k| k.len() > 256) {
            return Err(JwkError::Bad("kid"));
        }
        let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| JwkError::NotPublicKey)?;
        let key = info.subject_public_key.as_bytes().ok_or(JwkError::NotPublicKey)?;
        let params = info.algorithm.parameters;
        let (key_type, material) = match info.algorithm.oid {
            OID_RSA => {
                if params.is_some_and(|p| !p.is_null()) {
                    return Err(JwkError::NotPublicKey);
                }
                let rsa = pkcs1::RsaPublicKey::from_der(key).map_err(|_| JwkError::NotPublicKey)?;
                rsa_material(
                    rsa.modulus.as_bytes().to_vec(),
                    rsa.public_exponent.as_bytes().to_vec(),
                )?
            }
            OID_EC => {
                let curve = params
                    .and_then(|p| p.decode_as::<spki::ObjectIdentifier>().ok())
                    .ok_or(JwkError::NotPublicKey)?;
                let len = match curve {
                    OID_P256 => 65,
                    OID_P384 => 97,
                    _ => return Err(JwkError::Unsupported),
                };
                if key.len() != len {
                    // Compressed points are not supported.
                    return Err(JwkError::Bad("x"));
                }
                ec_point_material(key.to_vec())?
            }
            OID_ED25519 if params.is_none() => ed25519_material(key.to_vec())?,
            _ => return Err(JwkError::Unsupported),
        };
        Ok(RingJwk(Arc::new(Inner {
            kid: kid.map(|k| JsonWebKeyId::new(k.to_owned())),
            key_use: None,
            alg: None,
            key_type,
            material,
        })))
    }

    /// The key's RFC 7638 thumbprint: base64url SHA-256 of its canonical JWK members. A
    /// stable identifier for a registered key (the same for its PEM and JWK forms).
    pub fn thumbprint(&self) -> String {
        let enc = |b: &[u8]| Base64UrlUnpadded::encode_string(b);
        let canonical = match &self.0.material {
            Material::Rsa(c) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, enc(&c.e), enc(&c.n)),
            Material::P256(k) | Material::P384(k) => {
                let point = k.as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    enc(&point[1..1 + len]),
                    enc(&point[1 + len..])
                )
            }
            Material::Ed25519(k) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, enc(k.as_ref())),
            Material::Symmetric => String::new(),
        };
        enc(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// The key type (one per curve).
    pub fn kind(&self) -> RingKeyType {
        self.0.key_type
    }

    fn public_bytes(&self) -> (&[u8], &[u8]) {
        match &self.0.material {
            Material::Rsa(c) => (&c.n, &c.e),
            Material::P256(k) | Material::P384(k) | Material::Ed25519(k) => (k.as_ref(), &[]),
            Material::Symmetric => (&[], &[]),
        }
    }

    /// Whether this key can verify `alg` (kid not considered): `use`, key type and the key's
    /// own `alg` constraint — the same test openidconnect applies when it selects keys.
    pub fn accepts(&self, alg: &RingJwsAlgorithm) -> bool {
        alg.key_type() == Some(self.0.key_type) && self.0.alg.as_ref().is_none_or(|a| a == alg)
    }
}

impl<'de> Deserialize<'de> for RingJwk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawJwk::deserialize(d)?.into_key().map_err(de::Error::custom)
    }
}

impl Serialize for RingJwk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let enc = |b: &[u8]| Base64UrlUnpadded::encode_string(b);
        let mut map = s.serialize_map(None)?;
        let kty = match self.0.key_type {
            RingKeyType::Rsa => "RSA",
            RingKeyType::P256 | RingKeyType::P384 => "EC",
            RingKeyType::Ed25519 => "OKP",
            RingKeyType::Symmetric => "oct",
        };
        map.serialize_entry("kty", kty)?;
        if let Some(kid) = &self.0.kid {
            map.serialize_entry("kid", kid.as_str())?;
        }
        if self.0.key_use.is_some() {
            map.serialize_entry("use", "sig")?;
        }
        if let Some(alg) = &self.0.alg {
            map.serialize_entry("alg", alg.name())?;
        }
        match &self.0.material {
            Material::Rsa(c) => {
                map.serialize_entry("n", &enc(&c.n))?;
                map.serialize_entry("e", &enc(&c.e))?;
            }
            Material::P256(k) | Material::P384(k) => {
                let point = k.as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                map.serialize_entry("crv", crv)?;
                map.serialize_entry("x", &enc(&point[1..1 + len]))?;
                map.serialize_entry("y", &enc(&point[1 + len..]))?;
            }
            Material::Ed25519(k) => {
                map.serialize_entry("crv", "Ed25519")?;
                map.serialize_entry("x", &enc(k.as_ref()))?;
            }
            Material::Symmetric => {}
        }
        map.end()
    }
}

fn crypto_err() -> SignatureVerificationError {
    SignatureVerificationError::CryptoError("bad signature".to_owned())
}

impl JsonWebKey for RingJwk {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = RingJwsAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.0.kid.as_ref()
    }

    fn key_type(&self) -> &RingKeyType {
        &self.0.key_type
    }

    fn key_use(&self) -> Option<&CoreJsonWebKeyUse> {
        self.0.key_use.as_ref()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&RingJwsAlgorithm> {
        match &self.0.alg {
            None => JsonWebKeyAlgorithm::Unspecified,
            Some(RingJwsAlgorithm::Other(_)) => JsonWebKeyAlgorithm::Unsupported,
            Some(alg) => JsonWebKeyAlgorithm::Algorithm(alg),
        }
    }

    /// Only reachable for HMAC with a client secret (a confidential-client verifier), which
    /// this crate never builds. The key verifies nothing: no HMAC here, ever.
    fn new_symmetric(_key: Vec<u8>) -> Self {
        RingJwk(Arc::new(Inner {
            kid: None,
            key_use: None,
            alg: None,
            key_type: RingKeyType::Symmetric,
            material: Material::Symmetric,
        }))
    }

    fn verify_signature(
        &self,
        alg: &RingJwsAlgorithm,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        use RingJwsAlgorithm as A;
        let rsa = |params: &'static signature::RsaParameters| match &self.0.material {
            Material::Rsa(c) => c.verify(params, message, sig).map_err(|_| crypto_err()),
            _ => Err(SignatureVerificationError::InvalidKey(
                "not an RSA key".to_owned(),
            )),
        };
        match (alg, &self.0.material) {
            (A::RS256, _) => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            (A::RS384, _) => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            (A::RS512, _) => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            (A::PS256, _) => rsa(&signature::RSA_PSS_2048_8192_SHA256),
            (A::PS384, _) => rsa(&signature::RSA_PSS_2048_8192_SHA384),
            (A::PS512, _) => rsa(&signature::RSA_PSS_2048_8192_SHA512),
            (A::ES256, Material::P256(k))
            | (A::ES384, Material::P384(k))
            | (A::EdDSA, Material::Ed25519(k)) => k.verify(message, sig).map_err(|_| crypto_err()),
            (A::Other(name), _) => Err(SignatureVerificationError::UnsupportedAlg(name.clone())),
            _ => Err(SignatureVerificationError::InvalidKey(
                "key type does not match the algorithm".to_owned(),
            )),
        }
    }

    /// For `at_hash` / `c_hash` (OIDC Core §3.1.3.6): the algorithm's hash; SHA-512 for
    /// EdDSA over Ed25519.
    fn hash_bytes(&self, bytes: &[u8], alg: &RingJwsAlgorithm) -> Result<Vec<u8>, String> {
        use RingJwsAlgorithm as A;
        use ring::digest;
        let algorithm = match alg {
            A::RS256 | A::PS256 | A::ES256 => &digest::SHA256,
            A::RS384 | A::PS384 | A::ES384 => &digest::SHA384,
            A::RS512 | A::PS512 => &digest::SHA512,
            A::EdDSA if self.0.key_type == RingKeyType::Ed25519 => &digest::SHA512,
            A::EdDSA => return Err("EdDSA needs an Ed25519 key".to_owned()),
            A::Other(name) => return Err(format!("unsupported algorithm `{}`", truncate(name, 16))),
        };
        Ok(digest::digest(algorithm, bytes).as_ref().to_vec())
    }
}
