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
    /// The stored hash asks for more work than the policy's [`HashLimits`] allow:
    /// refused without any hashing (the login answers like a wrong password).
    OverCostLimit(CostLimitExceeded),
}

/// The longest stored hash read at all (the longest legitimate one, argon2 with a
/// key id, associated data and a 64-byte output, is under 250 characters).
pub const MAX_HASH_LEN: usize = 512;

/// The most work a stored hash may ask for, per scheme: checked on the hash's own
/// parameters *before* any hashing or allocation, when verifying
/// ([`PasswordPolicy::verify`]) and when a store writes a hash
/// ([`UserStore::create_account`](crate::account::UserStore::create_account),
/// [`UserStore::set_password_hash`](crate::account::UserStore::set_password_hash)).
///
/// The defaults sit a little above what each scheme's recommended settings use, so
/// that every hash a sane system wrote verifies, while no hash costs more than
/// roughly a second and 256 MiB:
///
/// | scheme | default limit | reference setting |
/// |---|---|---|
/// | argon2 `m` | 262,144 KiB (256 MiB) | OWASP 19 MiB / 46 MiB; RFC 9106's first choice 2 GiB is for KDFs, not logins |
/// | argon2 `t` | 10 | OWASP 1–5 |
/// | argon2 `p` | 16 | OWASP 1; RFC 9106 4 |
/// | scrypt `ln` | 17 (128 MiB with r = 8) | the scrypt crate's default 17; passlib 16; OWASP 17 |
/// | scrypt `r` | 16 | 8 everywhere |
/// | scrypt `p` | 4 | 1 everywhere |
/// | bcrypt cost | 14 | 10–12 (OWASP ≥ 10); 14 is about 1 s |
/// | PBKDF2 iterations | 2,000,000 | OWASP 600,000 (SHA-256), 210,000 (SHA-512) |
/// | SHA-crypt rounds | 1,000,000 | 5,000 default; distributions use up to 656,000 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashLimits {
    /// Largest argon2 memory cost `m`, in KiB.
    pub argon2_m_kib: u32,
    /// Largest argon2 iteration count `t`.
    pub argon2_t: u32,
    /// Largest argon2 parallelism `p`.
    pub argon2_p: u32,
    /// Largest scrypt `ln` (log2 of N).
    pub scrypt_ln: u32,
    /// Largest scrypt block size `r`.
    pub scrypt_r: u32,
    /// Largest scrypt parallelism `p`.
    pub scrypt_p: u32,
    /// Largest bcrypt cost (log2 of the rounds).
    pub bcrypt_cost: u32,
    /// Largest PBKDF2 iteration count `i`.
    pub pbkdf2_iterations: u32,
    /// Largest SHA-crypt `rounds=`.
    pub sha_crypt_rounds: u32,
}

impl Default for HashLimits {
    fn default() -> Self {
        HashLimits {
            argon2_m_kib: 262_144,
            argon2_t: 10,
            argon2_p: 16,
            scrypt_ln: 17,
            scrypt_r: 16,
            scrypt_p: 4,
            bcrypt_cost: 14,
            pbkdf2_iterations: 2_000_000,
            sha_crypt_rounds: 1_000_000,
        }
    }
}

/// A stored hash whose parameter is above its [`HashLimits`] limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{scheme:?} hash asks for {parameter} = {value}, above the limit {max}")]
#[non_exhaustive]
pub struct CostLimitExceeded {
    /// The hash's scheme.
    pub scheme: HashScheme,
    /// The parameter's name as the hash spells it (`m`, `ln`, `i`, `rounds`, `cost`).
    pub parameter: &'static str,
    /// The hash's value (`u64::MAX` for a number too large to read).
    pub value: u64,
    /// The limit.
    pub max: u64,
}

/// Why [`HashLimits::check`] refuses a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashCheckError {
    /// Not a format this crate reads, a cost parameter that is not a plain decimal
    /// number, or longer than [`MAX_HASH_LEN`].
    #[error("unreadable password hash")]
    Unreadable,
    /// A cost parameter is above its limit.
    #[error(transparent)]
    OverLimit(#[from] CostLimitExceeded),
}

impl HashLimits {
    /// Reads the hash's scheme and cost parameters (without decoding anything
    /// else, hashing or allocating) and checks them against the limits.
    ///
    /// Stricter than the hashing crates' own parsers on purpose: a cost written
    /// other than as plain ASCII digits (`+12`, `0x10`, `1e6`) is
    /// [`Unreadable`](HashCheckError::Unreadable), and every `$`-field that could
    /// be read as a parameter list is checked, so no hash reaches a hasher with a
    /// cost this check did not see.
    pub fn check(&self, hash: &str) -> Result<HashScheme, HashCheckError> {
        if hash.len() > MAX_HASH_LEN {
            return Err(HashCheckError::Unreadable);
        }
        let scheme = HashScheme::detect(hash).ok_or(HashCheckError::Unreadable)?;
        let over = |parameter: &'static str, value: u64, max: u32| -> Result<(), HashCheckError> {
            if value > u64::from(max) {
                Err(HashCheckError::OverLimit(CostLimitExceeded {
                    scheme,
                    parameter,
                    value,
                    max: u64::from(max),
                }))
            } else {
                Ok(())
            }
        };
        match scheme {
            HashScheme::Argon2 | HashScheme::Scrypt | HashScheme::Pbkdf2 => {
                // `$id[$v=19][$k=v,k=v][$salt[$hash]]`: every field after the id
                // with an `=` is read as a parameter list (a PHC salt or hash,
                // unpadded base64, never holds one).
                for field in hash[1..].split('$').skip(1).filter(|f| f.contains('=')) {
                    for pair in field.split(',') {
                        let (key, value) = pair.split_once('=').ok_or(HashCheckError::Unreadable)?;
                        let limit = match (scheme, key) {
                            (HashScheme::Argon2, "m") => self.argon2_m_kib,
                            (HashScheme::Argon2, "t") => self.argon2_t,
                            (HashScheme::Argon2, "p") => self.argon2_p,
                            (HashScheme::Scrypt, "ln") => self.scrypt_ln,
                            (HashScheme::Scrypt, "r") => self.scrypt_r,
                            (HashScheme::Scrypt, "p") => self.scrypt_p,
                            (HashScheme::Pbkdf2, "i") => self.pbkdf2_iterations,
                            // Version, output length (bounded to 64 bytes by the
                            // PHC format), key id, data: no cost.
                            _ => continue,
                        };
                        let key = match key {
                            "m" => "m",
                            "t" => "t",
                            "p" => "p",
                            "ln" => "ln",
                            "r" => "r",
                            _ => "i",
                        };
                        over(key, decimal(value)?, limit)?;
                    }
                }
            }
            HashScheme::Bcrypt => {
                // `$2b$12$<53 characters>`; bcrypt's own parser skips empty fields.
                let cost = hash.split('$').filter(|f| !f.is_empty()).nth(1);
                let cost = cost.ok_or(HashCheckError::Unreadable)?;
                over("cost", decimal(cost)?, self.bcrypt_cost)?;
            }
            HashScheme::ShaCrypt => {
                // `$6$[rounds=N$]salt$hash`: every field spelled `rounds=` counts.
                for field in hash[1..].split('$').skip(1) {
                    if let Some(rounds) = field.strip_prefix("rounds=") {
                        over("rounds", decimal(rounds)?, self.sha_crypt_rounds)?;
                    }
                }
            }
        }
        Ok(scheme)
    }

    /// [`check`](HashLimits::check) for a store about to write `hash`: only a hash
    /// over the limits is refused (an unreadable one is the host's business and
    /// never verifies anyway).
    pub(crate) fn check_stored(&self, hash: &str) -> Result<(), crate::StoreError> {
        match self.check(hash) {
            Err(HashCheckError::OverLimit(exceeded)) => Err(crate::StoreError::HashCost(exceeded)),
            _ => Ok(()),
        }
    }
}

/// Plain ASCII digits; a number beyond `u64` reads as `u64::MAX` (over any limit).
fn decimal(text: &str) -> Result<u64, HashCheckError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashCheckError::Unreadable);
    }
    Ok(text.parse().unwrap_or(u64::MAX))
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
    limits: HashLimits,
    dummy_hash: OnceLock<String>,
}

impl std::fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .field("limits", &self.limits)
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
            limits: HashLimits::default(),
            dummy_hash: OnceLock::new(),
        }
    }

    /// argon2id with the given memory (KiB), iterations and parallelism, and the
    /// default [`HashLimits`] (their argon2 limits raised to these parameters if
    /// below; see [`with_limits`](PasswordPolicy::with_limits)).
    pub fn argon2id(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, PasswordError> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        // The default limits, raised where needed to admit the policy's own hashes.
        let defaults = HashLimits::default();
        let limits = HashLimits {
            argon2_m_kib: defaults.argon2_m_kib.max(params.m_cost()),
            argon2_t: defaults.argon2_t.max(params.t_cost()),
            argon2_p: defaults.argon2_p.max(params.p_cost()),
            ..defaults
        };
        Ok(PasswordPolicy {
            params,
            limits,
            dummy_hash: OnceLock::new(),
        })
    }

    /// The same policy with these limits on stored hashes' costs; refused
    /// ([`PasswordError::Params`]) when the policy's own argon2id parameters are
    /// above them, since the policy could then not verify its own hashes.
    pub fn with_limits(mut self, limits: HashLimits) -> Result<Self, PasswordError> {
        let (m, t, p) = (self.params.m_cost(), self.params.t_cost(), self.params.p_cost());
        if m > limits.argon2_m_kib || t > limits.argon2_t || p > limits.argon2_p {
            return Err(PasswordError::Params(format!(
                "argon2id m = {m}, t = {t}, p = {p} is above the hash limits \
                 (m ≤ {}, t ≤ {}, p ≤ {})",
                limits.argon2_m_kib, limits.argon2_t, limits.argon2_p
            )));
        }
        self.limits = limits;
        Ok(self)
    }

    /// The limits on stored hashes' costs.
    pub fn limits(&self) -> &HashLimits {
        &self.limits
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
        // The hash's own cost parameters, checked before any work or allocation.
        let scheme = match self.limits.check(hash) {
            Ok(scheme) => scheme,
            Err(HashCheckError::Unreadable) => return Verification::UnreadableHash,
            Err(HashCheckError::OverLimit(exceeded)) => return Verification::OverCostLimit(exceeded),
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
            "$2b$+9$xyz",
            "$2b$$xyz",
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
