//! Public keys registered to accounts, for key-based login (the `key_login` module):
//! [`PublicKey`], [`NewPublicKey`], [`KeyFamily`] and the bounds every store keeps.
//!
//! A store keeps the key as given (DER `SubjectPublicKeyInfo`); it does not parse
//! it. Parsing (and the RSA size rule) belongs to whoever registers the key: the
//! CLI and the `key_login` module's `parse_public_key` parse before they store.

use std::fmt;
use std::time::SystemTime;

use base64ct::{Base64Unpadded, Encoding};
use sha2::{Digest, Sha256};

use crate::{AccountId, StoreError};

/// The most unrevoked keys an account may hold; one more is
/// [`StoreError::TooManyKeys`]. Equal to the JWS verifier's candidate bound
/// (`jose::jws::MAX_CANDIDATES`), so an assertion without `kid` is tried against
/// every key of the account.
pub const MAX_KEYS_PER_ACCOUNT: usize = 8;
/// The most revoked keys a store keeps per account (for `key list`): adding a key
/// drops the oldest revoked ones beyond this.
pub const MAX_REVOKED_KEYS_KEPT: usize = 10;
/// The longest DER `SubjectPublicKeyInfo` a store accepts, in bytes (an RSA 8192-bit
/// key is about 1,060).
pub const MAX_PUBLIC_KEY_BYTES: usize = 2048;
/// The longest key label, in bytes.
pub const MAX_KEY_LABEL_BYTES: usize = 128;

/// The id of a registered key, given by the store (unique within the store; a
/// login assertion may name it in its `kid` header).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for KeyId {
    fn from(value: &str) -> Self {
        KeyId(value.to_owned())
    }
}

/// What kind of key, and so which JWS algorithms it may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeyFamily {
    /// RSA, at least 2048 bits: `RS256` or `PS256`.
    Rsa,
    /// ECDSA on P-256: `ES256`.
    P256,
    /// Ed25519: `EdDSA`.
    Ed25519,
}

impl KeyFamily {
    /// Every family.
    pub const ALL: [KeyFamily; 3] = [KeyFamily::Rsa, KeyFamily::P256, KeyFamily::Ed25519];

    /// The stored name: `rsa`, `p256`, `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFamily::Rsa => "rsa",
            KeyFamily::P256 => "p256",
            KeyFamily::Ed25519 => "ed25519",
        }
    }

    /// The family with this stored name.
    pub fn from_name(name: &str) -> Option<KeyFamily> {
        KeyFamily::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// The JWS algorithms (`alg`) a key of this family verifies.
    pub fn algorithms(self) -> &'static [&'static str] {
        match self {
            KeyFamily::Rsa => &["RS256", "PS256"],
            KeyFamily::P256 => &["ES256"],
            KeyFamily::Ed25519 => &["EdDSA"],
        }
    }
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key to register.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewPublicKey {
    /// The key's family.
    pub family: KeyFamily,
    /// DER `SubjectPublicKeyInfo`, at most [`MAX_PUBLIC_KEY_BYTES`].
    pub spki: Vec<u8>,
    /// A label for people (`"alice's laptop"`), at most [`MAX_KEY_LABEL_BYTES`],
    /// no control characters.
    pub label: Option<String>,
}

impl NewPublicKey {
    /// A key of `family` with these DER bytes and no label.
    pub fn new(family: KeyFamily, spki: impl Into<Vec<u8>>) -> Self {
        NewPublicKey {
            family,
            spki: spki.into(),
            label: None,
        }
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The bounds every store checks before it writes: size of the key and the
    /// label, no control characters in the label.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.spki.is_empty() {
            return Err(StoreError::InvalidValue {
                field: "key",
                reason: "is empty",
            });
        }
        if self.spki.len() > MAX_PUBLIC_KEY_BYTES {
            return Err(StoreError::TooLong {
                field: "key",
                max: MAX_PUBLIC_KEY_BYTES,
            });
        }
        if let Some(label) = &self.label {
            if label.len() > MAX_KEY_LABEL_BYTES {
                return Err(StoreError::TooLong {
                    field: "label",
                    max: MAX_KEY_LABEL_BYTES,
                });
            }
            if label.chars().any(char::is_control) {
                return Err(StoreError::InvalidValue {
                    field: "label",
                    reason: "holds a control character",
                });
            }
        }
        Ok(())
    }
}

/// A key registered to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublicKey {
    /// The key's id.
    pub id: KeyId,
    /// The account it belongs to.
    pub account: AccountId,
    /// The key's family.
    pub family: KeyFamily,
    /// DER `SubjectPublicKeyInfo`.
    pub spki: Vec<u8>,
    /// The label given at registration.
    pub label: Option<String>,
    /// When it was registered.
    pub created_at: SystemTime,
    /// When it was revoked; a revoked key never verifies a login again.
    pub revoked_at: Option<SystemTime>,
}

impl PublicKey {
    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// `SHA256:` and the unpadded base64 SHA-256 of the DER key (the form
    /// `ssh-keygen -l` prints), for people comparing keys.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.spki)
    }
}

/// The fingerprint of DER key bytes (see [`PublicKey::fingerprint`]).
pub fn fingerprint(spki: &[u8]) -> String {
    format!("SHA256:{}", Base64Unpadded::encode_string(&Sha256::digest(spki)))
}
