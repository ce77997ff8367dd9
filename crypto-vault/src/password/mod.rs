//! Password hashing with argon2id, and a password policy.
//!
//! - Defaults are OWASP's minimum for argon2id: m = 19456 KiB, t = 2, p = 1.
//! - Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//! - [`PasswordHasher::verify`] says when a stored hash is below the current
//!   parameters, so the caller can rehash on a successful login.
//! - Inputs longer than [`MAX_PASSWORD_BYTES`] are refused before hashing; stored
//!   PHC strings with parameters beyond [`PasswordParams::MAX_M_COST`],
//!   [`PasswordParams::MAX_T_COST`] or [`PasswordParams::MAX_P_COST`] are refused
//!   before hashing, so a planted hash cannot make verification allocate gigabytes.
//! - Each hash holds `m` KiB of memory: bound concurrent hashes with
//!   [`PasswordHasher::with_max_concurrency`]. The call blocks: from async code run
//!   it in `spawn_blocking`.
//! - [`PasswordHasher::dummy_verify`] costs the same as a real verification, for
//!   unknown users, so response time does not reveal which accounts exist.

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id cost parameters, with checked constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
}

impl PasswordParams {
    /// OWASP's minimum for argon2id: 19456 KiB, 2 passes, 1 lane.
    pub const DEFAULT: Self = Self {
        m_cost: 19_456,
        t_cost: 2,
        p_cost: 1,
    };
    /// Smallest memory cost accepted (KiB). Below the OWASP minimum: for tests only.
    pub const MIN_M_COST: u32 = 64;
    /// Largest memory cost accepted (KiB, 256 MiB); larger stored hashes are refused.
    pub const MAX_M_COST: u32 = 262_144;
    /// Largest time cost accepted.
    pub const MAX_T_COST: u32 = 16;
    /// Largest parallelism accepted.
    pub const MAX_P_COST: u32 = 16;

    /// Checked parameters.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside the documented ranges.
    pub fn new(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        if !(1..=Self::MAX_P_COST).contains(&p_cost)
            || !(1..=Self::MAX_T_COST).contains(&t_cost)
            || !(Self::MIN_M_COST.max(8 * p_cost)..=Self::MAX_M_COST).contains(&m_cost)
        {
            return Err(Error::InvalidConfig("argon2 parameters out of range"));
        }
        Ok(Self {
            m_cost,
            t_cost,
            p_cost,
        })
    }

    /// Memory cost in KiB.
    pub fn m_cost(&self) -> u32 {
        self.m_cost
    }
    /// Time cost (passes).
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }
    /// Parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn argon2(&self, output_len: Option<usize>) -> Result<Argon2<'static>> {
        let p = Params::new(self.m_cost, self.t_cost, self.p_cost, output_len)
            .map_err(|_| Error::PasswordHashing)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Result of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verification {
    /// The password matches and the hash meets the current parameters.
    Valid,
    /// The password matches but the hash is below the current parameters: hash the
    /// password again and store the new hash.
    ValidNeedsRehash,
    /// The password does not match.
    Invalid,
}

impl Verification {
    /// Whether the password matched.
    pub fn is_valid(self) -> bool {
        !matches!(self, Self::Invalid)
    }
}

#[derive(Debug)]
struct Limiter {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Limiter);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.cv.notify_one();
    }
}

impl Limiter {
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.cv.wait(&mut free);
        }
        *free -= 1;
        Permit(self)
    }
}

/// Hashes and verifies passwords with argon2id. Cheap to clone (shares its
/// concurrency limit).
#[derive(Clone)]
pub struct PasswordHasher {
    params: PasswordParams,
    limiter: Option<Arc<Limiter>>,
    dummy: Arc<OnceLock<String>>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new(PasswordParams::DEFAULT)
    }
}

impl PasswordHasher {
    /// A hasher with `params` and no concurrency limit.
    pub fn new(params: PasswordParams) -> Self {
        Self {
            params,
            limiter: None,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// Allow at most `n` hashes at once (each holds `m_cost` KiB); further calls
    /// block until one finishes.
    pub fn with_max_concurrency(mut self, n: NonZeroUsize) -> Self {
        self.limiter = Some(Arc::new(Limiter {
            free: Mutex::new(n.get()),
            cv: Condvar::new(),
        }));
        self
    }

    /// The parameters new hashes use.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    fn permit(&self) -> Option<Permit<'_>> {
        self.limiter.as_deref().map(Limiter::acquire)
    }

    /// Hash a password into a PHC string with a fresh 16-byte salt.
    ///
    /// # Errors
    /// [`Error::PasswordTooLong`]; [`Error::Rng`]; [`Error::PasswordHashing`].
    pub fn hash(&self, password: &str) -> Result<String> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::PasswordTooLong);
        }
        let mut salt = [0u8; 16];
        crate::rng::os_fill(&mut salt)?;
        let argon = self.params.argon2(None)?;
        let _p = self.permit();
        let h = argon
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map_err(|_| Error::PasswordHashing)?;
        Ok(h.to_string())
    }

    /// Verify `password` against a stored PHC string.
    ///
    /// # Errors
    /// [`Error::PasswordTooLong`]; [`Error::PasswordHashRejected`] if `phc` is
    /// malformed, not argon2id v19, or its parameters exceed the maxima (checked
    /// before any hashing).
    pub fn verify(&self, password: &str, phc: &str) -> Result<Verification> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::PasswordTooLong);
        }
        let (hash, stored) = parse_phc(phc)?;
        let _p = self.permit();
        match Argon2::default().verify_password(password.as_bytes(), &hash) {
            Ok(()) => {
                let cur = self.params;
                let weaker = stored.m_cost < cur.m_cost
                    || stored.t_cost < cur.t_cost
                    || stored.p_cost < cur.p_cost;
                let short = hash.hash.as_ref().is_none_or(|o| o.len() < 32);
                Ok(if weaker || short {
                    Verification::ValidNeedsRehash
                } else {
                    Verification::Valid
                })
            }
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verification::Invalid),
            Err(_) => Err(Error::PasswordHashing),
        }
    }

    /// Verify `password` against a hash of a random password with the current
    /// parameters and return [`Verification::Invalid`]: call it when the user does
    /// not exist so the response takes as long as a real check.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`].
    pub fn dummy_verify(&self, password: &str) -> Result<Verification> {
        let dummy = match self.dummy.get() {
            Some(d) => d,
            None => {
                let mut r = [0u8; 24];
                crate::rng::os_fill(&mut r)?;
                let h = self.hash(&hex::encode(r))?;
                self.dummy.get_or_init(|| h)
            }
        };
        let password = if password.len() > MAX_PASSWORD_BYTES {
            &password[..0]
        } else {
            password
        };
        let _ = self.verify(password, dummy)?;
        Ok(Verification::Invalid)
    }
}

/// Parse and bound a stored PHC string before any hashing.
fn parse_phc(phc: &str) -> Result<(PasswordHash, PasswordParams)> {
    if phc.len() > 512 {
        return Err(Error::PasswordHashRejected("PHC string too long"));
    }
    let hash =
        PasswordHash::new(phc).map_err(|_| Error::PasswordHashRejected("malformed PHC string"))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(Error::PasswordHashRejected("not argon2id"));
    }
    if hash.version.is_some_and(|v| v != 0x13) {
        return Err(Error::PasswordHashRejected("unsupported argon2 version"));
    }
    let get = |name: &str| hash.params.get_decimal(name);
    let (Some(m), Some(t), Some(p)) = (get("m"), get("t"), get("p")) else {
        return Err(Error::PasswordHashRejected("missing argon2 parameters"));
    };
    let stored = PasswordParams::new(m, t, p)
        .map_err(|_| Error::PasswordHashRejected("argon2 parameters out of range"))?;
    let out_len = hash.hash.as_ref().map_or(0, |o| o.len());
    if !(16..=64).contains(&out_len) {
        return Err(Error::PasswordHashRejected("hash length out of range"));
    }
    if hash.salt.as_ref().is_none_or(|s| s.len() < 8) {
        return Err(Error::PasswordHashRejected("salt missing or too short"));
    }
    Ok((hash, stored))
}

/// A source of known-breached passwords (a local list, a k-anonymity API client).
pub trait BreachedPasswords: Send + Sync {
    /// Whether `password` is known to be breached.
    fn is_breached(&self, password: &str) -> bool;
}

/// A breached-password list held in memory, compared case-insensitively.
#[derive(Clone, Default)]
pub struct BreachedList(HashSet<String>);

impl fmt::Debug for BreachedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BreachedList({} entries)", self.0.len())
    }
}

impl BreachedList {
    /// A list from entries.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(entries: I) -> Self {
        Self(
            entries
                .into_iter()
                .map(|s| s.as_ref().to_lowercase())
                .collect(),
        )
    }
}

impl BreachedPasswords for BreachedList {
    fn is_breached(&self, password: &str) -> bool {
        self.0.contains(&password.to_lowercase())
    }
}

/// Why a password was refused by [`PasswordPolicy::check`]. Messages are meant for
/// the user and never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer characters than the minimum.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More characters than the maximum.
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// Not enough character classes (lowercase, uppercase, digit, other).
    #[error("password must mix at least {required} of: lowercase, uppercase, digits, symbols")]
    TooFewClasses {
        /// Classes required.
        required: usize,
    },
    /// Found in the breached-password list.
    #[error("password appears in a list of breached passwords; choose another")]
    Breached,
    /// Contains a context word (user name, email, service name).
    #[error("password must not contain your user name, email or the service name")]
    ContainsContext,
}

/// A password policy. Defaults follow NIST SP 800-63B: at least 12 characters, at
/// most 128, no composition rules, breached-list check when a list is set.
#[derive(Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
    max_chars: usize,
    min_classes: usize,
    breached: Option<Arc<dyn BreachedPasswords>>,
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_chars", &self.min_chars)
            .field("max_chars", &self.max_chars)
            .field("min_classes", &self.min_classes)
            .field("breached_list", &self.breached.is_some())
            .finish()
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
            min_classes: 0,
            breached: None,
        }
    }
}

impl PasswordPolicy {
    /// Set the length bounds in characters (1 <= min <= max, max*4 <= [`MAX_PASSWORD_BYTES`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn with_length(mut self, min: usize, max: usize) -> Result<Self> {
        if min == 0 || min > max || max.saturating_mul(4) > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidConfig("password length bounds"));
        }
        self.min_chars = min;
        self.max_chars = max;
        Ok(self)
    }

    /// Require at least `n` (0..=4) character classes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `n > 4`.
    pub fn with_min_classes(mut self, n: usize) -> Result<Self> {
        if n > 4 {
            return Err(Error::InvalidConfig("at most 4 character classes"));
        }
        self.min_classes = n;
        Ok(self)
    }

    /// Check passwords against a breached list.
    pub fn with_breached(mut self, list: Arc<dyn BreachedPasswords>) -> Self {
        self.breached = Some(list);
        self
    }

    /// Check `password`; `context` holds words it must not contain (user name,
    /// email, service name; case-insensitive, words shorter than 4 characters are
    /// ignored). Returns every violation.
    ///
    /// # Errors
    /// The list of violations.
    pub fn check(&self, password: &str, context: &[&str]) -> Result<(), Vec<PolicyViolation>> {
        let mut v = Vec::new();
        let n = password.chars().count();
        if n < self.min_chars {
            v.push(PolicyViolation::TooShort {
                min: self.min_chars,
            });
        }
        if n > self.max_chars {
            v.push(PolicyViolation::TooLong {
                max: self.max_chars,
            });
        }
        let classes = [
            password.chars().any(char::is_lowercase),
            password.chars().any(char::is_uppercase),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if classes < self.min_classes {
            v.push(PolicyViolation::TooFewClasses {
                required: self.min_classes,
            });
        }
        let lower = password.to_lowercase();
        if context
            .iter()
            .any(|w| w.chars().count() >= 4 && lower.contains(&w.to_lowercase()))
        {
            v.push(PolicyViolation::ContainsContext);
        }
        if self
            .breached
            .as_ref()
            .is_some_and(|b| b.is_breached(password))
        {
            v.push(PolicyViolation::Breached);
        }
        if v.is_empty() { Ok(()) } else { Err(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordParams::new(256, 1, 1).unwrap())
    }

    #[test]
    fn default_hash_uses_owasp_parameters_and_verifies() {
        let h = PasswordHasher::default();
        let phc = h.hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            h.verify("correct horse battery staple", &phc).unwrap(),
            Verification::Valid
        );
        assert_eq!(h.verify("wrong", &phc).unwrap(), Verification::Invalid);
    }

    #[test]
    fn weaker_hash_needs_rehash() {
        let old = cheap().hash("pw").unwrap();
        let stronger = PasswordHasher::new(PasswordParams::new(512, 1, 1).unwrap());
        assert_eq!(
            stronger.verify("pw", &old).unwrap(),
            Verification::ValidNeedsRehash
        );
        assert_eq!(cheap().verify("pw", &old).unwrap(), Verification::Valid);
        assert_eq!(
            stronger.verify("nope", &old).unwrap(),
            Verification::Invalid
        );
    }

    #[test]
    fn long_passwords_and_absurd_phc_are_refused_before_hashing() {
        let h = cheap();
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(h.hash(&long), Err(Error::PasswordTooLong)));
        let absurd = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(matches!(
            h.verify("x", absurd),
            Err(Error::PasswordHashRejected(
                "argon2 parameters out of range"
            ))
        ));
        let many_passes = "$argon2id$v=19$m=256,t=100000,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(matches!(
            h.verify("x", many_passes),
            Err(Error::PasswordHashRejected(
                "argon2 parameters out of range"
            ))
        ));
        let argon2i =
            "$argon2i$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(matches!(
            h.verify("x", argon2i),
            Err(Error::PasswordHashRejected(_))
        ));
        assert!(matches!(
            h.verify("x", "garbage"),
            Err(Error::PasswordHashRejected(_))
        ));
    }

    #[test]
    fn dummy_verify_is_always_invalid() {
        let h = cheap();
        assert_eq!(h.dummy_verify("anything").unwrap(), Verification::Invalid);
        assert_eq!(h.dummy_verify("anything").unwrap(), Verification::Invalid);
    }

    #[test]
    fn concurrency_limit_still_completes_all_work() {
        let h = cheap().with_max_concurrency(NonZeroUsize::new(1).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let h = h.clone();
                std::thread::spawn(move || h.hash(&format!("pw{i}")).unwrap())
            })
            .collect();
        for (i, t) in handles.into_iter().enumerate() {
            let phc = t.join().unwrap();
            assert!(h.verify(&format!("pw{i}"), &phc).unwrap().is_valid());
        }
        assert_eq!(*h.limiter.as_ref().unwrap().free.lock(), 1);
    }

    #[test]
    fn policy_reports_clear_violations() {
        let p = PasswordPolicy::default()
            .with_min_classes(3)
            .unwrap()
            .with_breached(Arc::new(BreachedList::new(["Password123!"])));
        assert_eq!(
            p.check("short", &[]).unwrap_err()[0],
            PolicyViolation::TooShort { min: 12 }
        );
        assert!(
            p.check("password123!", &[])
                .unwrap_err()
                .contains(&PolicyViolation::Breached)
        );
        assert!(
            p.check("alllowercaseletters", &[])
                .unwrap_err()
                .contains(&PolicyViolation::TooFewClasses { required: 3 })
        );
        assert!(
            p.check("Xy9!aliceSmith-long", &["alice"])
                .unwrap_err()
                .contains(&PolicyViolation::ContainsContext)
        );
        assert!(p.check("Tr0ub4dour&3-horse", &["alice"]).is_ok());
        assert_eq!(
            PolicyViolation::TooShort { min: 12 }.to_string(),
            "password must be at least 12 characters long"
        );
    }
}
