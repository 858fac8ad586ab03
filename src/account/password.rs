//! Password hashing: argon2id for new hashes, legacy formats verified and upgraded.

use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, Version};
use password_hash::phc::PasswordHash;
use password_hash::{PasswordHasher, PasswordVerifier};

use crate::SecretString;

/// The hash formats [`PasswordPolicy::verify`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashScheme {
    /// `$argon2id$`, `$argon2i$`, `$argon2d$` (PHC).
    Argon2,
    /// `$2a$`, `$2b$`, `$2x$`, `$2y$`.
    Bcrypt,
    /// `$pbkdf2-sha256$`, `$pbkdf2-sha512$` (PHC).
    Pbkdf2,
    /// `$scrypt$` (PHC).
    Scrypt,
    /// `$5$` (SHA-256-crypt), `$6$` (SHA-512-crypt).
    ShaCrypt,
}

impl HashScheme {
    /// Recognises a hash by its prefix.
    pub fn detect(hash: &str) -> Option<HashScheme> {
        let id = hash.strip_prefix('$')?.split('$').next()?;
        match id {
            "argon2id" | "argon2i" | "argon2d" => Some(HashScheme::Argon2),
            "2a" | "2b" | "2x" | "2y" => Some(HashScheme::Bcrypt),
            "pbkdf2-sha256" | "pbkdf2-sha512" => Some(HashScheme::Pbkdf2),
            "scrypt" => Some(HashScheme::Scrypt),
            "5" | "6" => Some(HashScheme::ShaCrypt),
            _ => None,
        }
    }
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches; `needs_rehash` when the hash is not argon2id with the
    /// policy's parameters.
    Valid {
        /// Whether the hash should be replaced by a fresh one.
        needs_rehash: bool,
    },
    /// The password does not match.
    Invalid,
    /// The stored hash is in no format this crate reads, or is malformed.
    UnreadableHash,
}

/// A password that cannot be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed (for example the system random generator).
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// How passwords are hashed and verified.
///
/// New hashes are argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1) unless
/// configured otherwise. Verification accepts argon2, bcrypt, PBKDF2, scrypt and
/// SHA-crypt hashes; anything but argon2id with the current parameters is reported
/// as `needs_rehash`.
pub struct PasswordPolicy {
    params: Params,
    dummy_hash: OnceLock<String>,
}

impl std::fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy::owasp()
    }
}

impl PasswordPolicy {
    /// argon2id, m = 19,456 KiB, t = 2, p = 1.
    pub fn owasp() -> Self {
        PasswordPolicy {
            params: Params::DEFAULT,
            dummy_hash: OnceLock::new(),
        }
    }

    /// argon2id with the given memory (KiB), iterations and parallelism.
    pub fn argon2id(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, PasswordError> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(PasswordPolicy {
            params,
            dummy_hash: OnceLock::new(),
        })
    }

    /// **Insecure**: argon2id with tiny parameters so that test suites run fast.
    /// Never use it for real accounts.
    pub fn fast_insecure_for_tests() -> Self {
        PasswordPolicy::argon2id(Params::MIN_M_COST, 1, 1).unwrap_or_default()
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password with argon2id and a random salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let hash: PasswordHash = self
            .argon2()
            .hash_password(password.as_bytes())
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Checks `password` against `hash`, in constant time for a given hash.
    pub fn verify(&self, password: &SecretString, hash: &str) -> Verification {
        let password = password.expose().as_bytes();
        let Some(scheme) = HashScheme::detect(hash) else {
            return Verification::UnreadableHash;
        };
        let outcome = match scheme {
            HashScheme::Argon2 => PasswordHash::new(hash)
                .map_err(|_| ())
                .and_then(|parsed| check(Argon2::default().verify_password(password, &parsed))),
            HashScheme::Pbkdf2 => PasswordHash::new(hash)
                .map_err(|_| ())
                .and_then(|parsed| check(pbkdf2::Pbkdf2::SHA256.verify_password(password, &parsed))),
            HashScheme::Scrypt => PasswordHash::new(hash)
                .map_err(|_| ())
                .and_then(|parsed| check(scrypt::Scrypt::new().verify_password(password, &parsed))),
            HashScheme::ShaCrypt => check(sha_crypt::ShaCrypt::SHA512.verify_password(password, hash)),
            HashScheme::Bcrypt => bcrypt::verify(password, hash).map_err(|_| ()),
        };
        match outcome {
            Ok(true) => Verification::Valid {
                needs_rehash: self.needs_rehash(scheme, hash),
            },
            Ok(false) => Verification::Invalid,
            Err(()) => Verification::UnreadableHash,
        }
    }

    /// Spends the same work as verifying a real password, against a hash of a
    /// random password, so that an unknown login name takes as long as a wrong
    /// password.
    pub fn verify_dummy(&self, password: &SecretString) {
        let hash = self.dummy_hash.get_or_init(|| {
            let mut random = [0u8; 24];
            // Without randomness the dummy is still a valid hash of a fixed string;
            // it is never accepted because verify_dummy ignores the result.
            let _ = getrandom::fill(&mut random);
            let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
            self.hash(&text).unwrap_or_default()
        });
        let _ = self.verify(password, hash);
    }

    fn needs_rehash(&self, scheme: HashScheme, hash: &str) -> bool {
        if scheme != HashScheme::Argon2 {
            return true;
        }
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(params) => {
                params.m_cost() != self.params.m_cost()
                    || params.t_cost() != self.params.t_cost()
                    || params.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

/// `Ok(true)` match, `Ok(false)` mismatch, `Err` unreadable.
fn check(result: password_hash::Result<()>) -> Result<bool, ()> {
    match result {
        Ok(()) => Ok(true),
        Err(password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip_and_params_upgrade() {
        let policy = PasswordPolicy::fast_insecure_for_tests();
        let hash = policy.hash("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(
            policy.verify(&"s3cret".into(), &hash),
            Verification::Valid { needs_rehash: false }
        );
        assert_eq!(policy.verify(&"S3cret".into(), &hash), Verification::Invalid);
        let stronger = PasswordPolicy::argon2id(64, 2, 1).unwrap();
        assert_eq!(
            stronger.verify(&"s3cret".into(), &hash),
            Verification::Valid { needs_rehash: true }
        );
    }

    #[test]
    fn garbage_hashes_are_unreadable() {
        let policy = PasswordPolicy::fast_insecure_for_tests();
        for bad in [
            "",
            "plain",
            "$argon2id$garbage",
            "$6$",
            "$2b$99$xyz",
            "$unknown$x$y",
        ] {
            assert_eq!(
                policy.verify(&"x".into(), bad),
                Verification::UnreadableHash,
                "{bad}"
            );
        }
    }
}
