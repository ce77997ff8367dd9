//! Password hashing with argon2id, and a password policy.
//!
//! - Defaults are OWASP's minimum for argon2id: m = 19456 KiB, t = 2, p = 1.
//! - Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//! - [`PasswordHasher::verify`] says when a stored hash is below the current
//!   parameters, so the caller can rehash on a successful login.
//!   "Below" means less memory, less total work (memory x passes), a salt under
//!   16 bytes or an output under 32; a hash above the policy is never reported
//!   (rehashing would lower it).
//! - Passwords longer than [`MAX_PASSWORD_BYTES`] are refused (verification
//!   refuses them after the same work as an accepted one). Stored PHC strings
//!   whose memory, passes or memory x passes exceed [`MAX_STORED_COST_FACTOR`]
//!   (4) times the policy's are refused before hashing, so a planted hash costs
//!   at most four normal verifications.
//! - Each hash holds `m` KiB of memory and a CPU: by default at most one hash per
//!   available CPU runs at once ([`PasswordHasher::with_max_concurrency`] changes
//!   it); further calls wait. The call blocks: from async code run it in
//!   `spawn_blocking`.
//! - [`PasswordHasher::dummy_verify`] takes exactly the path of
//!   [`PasswordHasher::verify`] for every input (an over-long password
//!   included), so neither response time nor the error reveals which accounts
//!   exist.
//! - Legacy hashes (bcrypt, scrypt, PBKDF2-SHA256) verify when a
//!   [`LegacyPolicy`] enables them ([`PasswordHasher::with_legacy`]), always
//!   answering [`Verification::ValidNeedsRehash`]; with one, every
//!   verification does the same set of work whatever the account holds (see
//!   [`legacy`]). [`PasswordHasher::wrap_legacy`] wraps a legacy hash in
//!   argon2id for an offline migration (see the trade-offs in
//!   [`PasswordHasher::wrap_legacy`]). Anything else is
//!   [`Error::PasswordHashUnknownFormat`].

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

pub mod legacy;
mod policy;
#[cfg(test)]
mod timing_tests;
mod wrapped;
pub use legacy::{
    LegacyAlgorithm, LegacyHash, LegacyPolicy, SaltHashLayout, SaltInput, ScryptCost,
};
pub use policy::{BreachedList, BreachedPasswords, PasswordPolicy, PolicyViolation};

use wrapped::Stored;

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
        Self::in_range(m_cost, t_cost, p_cost)?;
        Ok(Self {
            m_cost,
            t_cost,
            p_cost,
        })
    }

    /// The ranges [`PasswordParams::new`] checks (outside `new`, which
    /// cargo-mutants never mutates: see docs/MUTATION.md).
    fn in_range(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<()> {
        if !(1..=Self::MAX_P_COST).contains(&p_cost)
            || !(1..=Self::MAX_T_COST).contains(&t_cost)
            || !(Self::MIN_M_COST.max(8 * p_cost)..=Self::MAX_M_COST).contains(&m_cost)
        {
            return Err(Error::InvalidConfig("argon2 parameters out of range"));
        }
        Ok(())
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

/// How far above the policy a stored hash's cost may go: memory, passes and
/// their product (the time a verification takes) are each bounded by this
/// factor times the policy's. A planted hash can make one verification cost at
/// most this many normal ones.
pub const MAX_STORED_COST_FACTOR: u32 = 4;

/// Shortest salt (bytes) that does not ask for a rehash.
pub const POLICY_SALT_LEN: usize = 16;
/// Shortest hash output (bytes) that does not ask for a rehash.
pub const POLICY_OUTPUT_LEN: usize = 32;

/// Hashes and verifies passwords with argon2id. Cheap to clone (clones share
/// the concurrency limit).
#[derive(Clone)]
pub struct PasswordHasher {
    params: PasswordParams,
    limiter: Arc<Limiter>,
    max_concurrency: NonZeroUsize,
    dummy: Arc<OnceLock<String>>,
    legacy: LegacyPolicy,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("max_concurrency", &self.max_concurrency)
            .field("legacy", &self.legacy)
            .finish_non_exhaustive()
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new(PasswordParams::DEFAULT)
    }
}

/// Default concurrency limit: one hash per available CPU (each holds `m` KiB and
/// a CPU for its duration; more at once only queues inside the OS).
fn default_concurrency() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
thread_local! {
    /// argon2 runs on this thread (tests count the work a call does).
    static ARGON2_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl PasswordHasher {
    /// A hasher with `params`, allowing one hash per available CPU at a time
    /// (change it with [`PasswordHasher::with_max_concurrency`]).
    pub fn new(params: PasswordParams) -> Self {
        Self::limited(params, default_concurrency())
    }

    fn limited(params: PasswordParams, n: NonZeroUsize) -> Self {
        Self {
            params,
            limiter: Arc::new(Limiter {
                free: Mutex::new(n.get()),
                cv: Condvar::new(),
            }),
            max_concurrency: n,
            dummy: Arc::new(OnceLock::new()),
            legacy: LegacyPolicy::NONE,
        }
    }

    /// Allow at most `n` hashes at once (each holds `m_cost` KiB); further calls
    /// block until one finishes.
    pub fn with_max_concurrency(self, n: NonZeroUsize) -> Self {
        Self {
            legacy: self.legacy.clone(),
            ..Self::limited(self.params, n)
        }
    }

    /// Accept the legacy hashes `policy` enables (none by default). While any
    /// is enabled, every verification also runs each enabled legacy algorithm
    /// once at its ceiling (see [`legacy`] on timing).
    pub fn with_legacy(mut self, policy: LegacyPolicy) -> Self {
        self.legacy = policy;
        self
    }

    /// The legacy hashes accepted.
    pub fn legacy(&self) -> &LegacyPolicy {
        &self.legacy
    }

    /// The parameters new hashes use.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// How many hashes may run at once.
    pub fn max_concurrency(&self) -> NonZeroUsize {
        self.max_concurrency
    }

    /// Hash a password into a PHC string with a fresh 16-byte salt from the OS
    /// generator.
    ///
    /// # Errors
    /// [`Error::PasswordTooLong`]; [`Error::Rng`]; [`Error::PasswordHashing`].
    pub fn hash(&self, password: &str) -> Result<String> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::PasswordTooLong);
        }
        self.hash_bytes(password.as_bytes())
    }

    fn hash_bytes(&self, input: &[u8]) -> Result<String> {
        let mut salt = [0u8; POLICY_SALT_LEN];
        crate::rng::os_fill(&mut salt)?;
        let argon = self.params.argon2(None)?;
        let _p = self.limiter.acquire();
        #[cfg(test)]
        ARGON2_RUNS.with(|c| c.set(c.get() + 1));
        legacy::record_work(|| format!("{:?}", self.params));
        let h = argon
            .hash_password_with_salt(input, &salt)
            .map_err(|_| Error::PasswordHashing)?;
        Ok(h.to_string())
    }

    /// Verify `password` against a stored hash: an argon2id PHC string, or a
    /// legacy or wrapped hash the [`LegacyPolicy`] enables (which, when it
    /// matches, always answers [`Verification::ValidNeedsRehash`]).
    ///
    /// Every password costs one full argon2 run (against the stored hash, or
    /// the dummy hash for a legacy account) and one run of each enabled legacy
    /// algorithm (the account's own, or a stand-in at the ceiling), an
    /// over-long password included (it is refused after the same work), so
    /// that [`PasswordHasher::dummy_verify`], which takes this same path, is
    /// indistinguishable by the work it does for every input and format.
    ///
    /// # Errors
    /// [`Error::PasswordTooLong`] (after the same work as a real check);
    /// [`Error::PasswordHashUnknownFormat`] for no known format;
    /// [`Error::PasswordHashRejected`] if the hash is malformed, not argon2id
    /// v19, a legacy format the policy does not enable, or its cost exceeds
    /// [`MAX_STORED_COST_FACTOR`] times the policy's (argon2id) or the legacy
    /// ceiling (checked before any hashing).
    pub fn verify(&self, password: &str, stored: &str) -> Result<Verification> {
        let stored = wrapped::parse(stored, self.params, &self.legacy)?;
        // Over-long passwords are refused, but only after the same work, on a
        // fixed stand-in, as an accepted one.
        let too_long = password.len() > MAX_PASSWORD_BYTES;
        let input = if too_long { "" } else { password }.as_bytes();
        let outcome = match stored {
            Stored::Argon2id(hash, params) => {
                let outcome = self.argon2_verify(input, &hash);
                self.stand_ins(None);
                match outcome? {
                    true if self.below_policy(&hash, params) => Verification::ValidNeedsRehash,
                    true => Verification::Valid,
                    false => Verification::Invalid,
                }
            }
            Stored::Legacy(l) => {
                let matched = {
                    let _p = self.limiter.acquire();
                    l.verify(input)
                };
                let dummy = self.dummy_hash()?;
                let _ = self.argon2_verify(input, &dummy);
                self.stand_ins(Some(l.algorithm()));
                if matched {
                    Verification::ValidNeedsRehash
                } else {
                    Verification::Invalid
                }
            }
            Stored::Wrapped { inner, outer } => {
                let digest = {
                    let _p = self.limiter.acquire();
                    inner.derive(input)
                };
                // A password the legacy function refuses still pays the
                // argon2 run, on a stand-in input.
                let fed = digest.as_ref().map_or(&[0u8; 1][..], |d| d.as_slice());
                let outcome = self.argon2_verify(fed, &outer);
                self.stand_ins(Some(inner.kdf.algorithm()));
                if outcome? && digest.is_some() {
                    Verification::ValidNeedsRehash
                } else {
                    Verification::Invalid
                }
            }
        };
        if too_long {
            return Err(Error::PasswordTooLong);
        }
        Ok(outcome)
    }

    /// One argon2 verification of `input` against `hash` (whose parameters it
    /// takes), under the concurrency limit.
    fn argon2_verify(&self, input: &[u8], hash: &PasswordHash) -> Result<bool> {
        let _p = self.limiter.acquire();
        #[cfg(test)]
        ARGON2_RUNS.with(|c| c.set(c.get() + 1));
        legacy::record_work(|| {
            let g = |n: &str| hash.params.get_decimal(n).unwrap_or(0);
            format!(
                "{:?}",
                PasswordParams {
                    m_cost: g("m"),
                    t_cost: g("t"),
                    p_cost: g("p")
                }
            )
        });
        match Argon2::default().verify_password(input, hash) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(_) => Err(Error::PasswordHashing),
        }
    }

    /// One run of each enabled legacy algorithm at its ceiling, but for
    /// `except` (the account's own algorithm, already run).
    fn stand_ins(&self, except: Option<LegacyAlgorithm>) {
        for kdf in self.legacy.ceilings() {
            if Some(kdf.algorithm()) != except {
                let _p = self.limiter.acquire();
                kdf.dummy_run();
            }
        }
    }

    /// The argon2id hash of a random password at the current parameters (made
    /// once): what unknown accounts and legacy accounts verify against.
    fn dummy_hash(&self) -> Result<PasswordHash> {
        let dummy = match self.dummy.get() {
            Some(d) => d,
            None => {
                let mut r = [0u8; 24];
                crate::rng::os_fill(&mut r)?;
                let h = self.hash(&hex::encode(r))?;
                self.dummy.get_or_init(|| h)
            }
        };
        PasswordHash::new(dummy).map_err(|_| Error::PasswordHashing)
    }

    /// Wrap a stored legacy hash in argon2id at the current parameters, for a
    /// one-shot offline migration: `argon2id(legacy(pw))`, stored as
    /// `$hisn-wrap-v1$<legacy settings>$argon2id$...`. [`PasswordHasher::verify`]
    /// verifies it transparently and answers `ValidNeedsRehash`.
    ///
    /// The legacy settings are normalised: `2b$<cost>$<salt>`,
    /// `scrypt$ln=..,r=..,p=..,l=<len>$<salt>` or
    /// `pbkdf2-sha256$i=..,l=<len>$<salt>` (a `salt:hash` scrypt hash becomes
    /// the second, with the salt bytes it fed to scrypt); the argon2id input is
    /// the legacy digest.
    ///
    /// Trade-offs: the legacy digest leaves the database, so a dump yields only argon2id
    /// hashes; each wrapped login pays the legacy run plus argon2id; the legacy
    /// function's limits (bcrypt's 72 bytes) remain until the login that
    /// replaces it; the legacy algorithm must stay enabled in the policy while
    /// wrapped hashes remain; it cannot be undone (keep a backup until the
    /// wrapped hashes verify in production).
    ///
    /// # Errors
    /// As [`LegacyHash::parse`] with this hasher's policy; [`Error::Rng`];
    /// [`Error::PasswordHashing`].
    pub fn wrap_legacy(&self, legacy_hash: &str) -> Result<String> {
        let l = LegacyHash::parse(legacy_hash, &self.legacy)?;
        let phc = self.hash_bytes(l.digest())?;
        Ok(wrapped::compose(&l.settings, &phc))
    }

    /// Whether a stored hash is below the policy: less memory, less total work
    /// (memory x passes, so OWASP's equivalent "more memory, fewer passes"
    /// settings count as meeting it), a salt shorter than [`POLICY_SALT_LEN`]
    /// or an output shorter than [`POLICY_OUTPUT_LEN`]. A hash above the policy
    /// in every respect is never reported: rehashing would lower its cost.
    fn below_policy(&self, hash: &PasswordHash, stored: PasswordParams) -> bool {
        let cur = self.params;
        let work = |p: PasswordParams| u64::from(p.m_cost) * u64::from(p.t_cost);
        stored.m_cost < cur.m_cost
            || work(stored) < work(cur)
            || hash.salt.as_ref().is_none_or(|s| s.len() < POLICY_SALT_LEN)
            || hash
                .hash
                .as_ref()
                .is_none_or(|o| o.len() < POLICY_OUTPUT_LEN)
    }

    /// Verify `password` against a hash of a random password with the current
    /// parameters, through exactly the path of [`PasswordHasher::verify`]
    /// (with a [`LegacyPolicy`], one stand-in run of each enabled legacy
    /// algorithm at its ceiling included), and never report a match: call it when the user does not exist, so the
    /// response takes as long, and fails the same way, as for a known user.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`] for the same password
    /// ([`Error::PasswordTooLong`] for an over-long one, after the same work).
    pub fn dummy_verify(&self, password: &str) -> Result<Verification> {
        let _ = self.dummy_hash()?;
        let dummy = self.dummy.get().ok_or(Error::PasswordHashing)?;
        self.verify(password, dummy).map(|_| Verification::Invalid)
    }
}

/// Parse and bound a stored PHC string before any hashing: argon2id v19 only,
/// cost within [`MAX_STORED_COST_FACTOR`] of `policy`.
fn parse_phc(phc: &str, policy: PasswordParams) -> Result<(PasswordHash, PasswordParams)> {
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
    let f = u64::from(MAX_STORED_COST_FACTOR);
    let work = |p: PasswordParams| u64::from(p.m_cost) * u64::from(p.t_cost);
    if u64::from(stored.m_cost) > f * u64::from(policy.m_cost)
        || u64::from(stored.t_cost) > f * u64::from(policy.t_cost)
        || work(stored) > f * work(policy)
    {
        return Err(Error::PasswordHashRejected(
            "argon2 cost too far above the policy",
        ));
    }
    let out_len = hash.hash.as_ref().map_or(0, |o| o.len());
    if !(16..=64).contains(&out_len) {
        return Err(Error::PasswordHashRejected("hash length out of range"));
    }
    if hash.salt.as_ref().is_none_or(|s| s.len() < 8) {
        return Err(Error::PasswordHashRejected("salt missing or too short"));
    }
    Ok((hash, stored))
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
            Err(Error::PasswordHashUnknownFormat)
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
        assert_eq!(*h.limiter.free.lock(), 1);
    }

    fn runs() -> u64 {
        ARGON2_RUNS.with(std::cell::Cell::get)
    }

    /// Passwords: `dummy_verify` takes the same path as `verify` for every
    /// input (class: login timing reveals accounts).
    ///
    /// Root cause: `verify` refused an over-long password before hashing while
    /// `dummy_verify` hashed a truncated stand-in, so an over-long password
    /// answered at once for a known user and after a full hash for an unknown
    /// one. Now `dummy_verify` is `verify` against a dummy hash, and `verify`
    /// does the full argon2 run for every password before refusing one.
    #[test]
    fn dummy_verify_takes_the_verify_path_for_every_input() {
        let h = PasswordHasher::new(PasswordParams::new(1024, 2, 1).unwrap());
        let phc = h.hash("the real password").unwrap();
        let _ = h.dummy_verify("warm-up").unwrap();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let huge = "y".repeat(64 * 1024);
        for pw in [
            "",
            "the real password",
            "wrong",
            long.as_str(),
            huge.as_str(),
        ] {
            let before = runs();
            let known = h.verify(pw, &phc);
            assert_eq!(runs() - before, 1, "verify({} bytes) hashed once", pw.len());
            let before = runs();
            let unknown = h.dummy_verify(pw);
            assert_eq!(
                runs() - before,
                1,
                "dummy_verify({} bytes) hashed once",
                pw.len()
            );
            match (known, unknown) {
                (Err(Error::PasswordTooLong), Err(Error::PasswordTooLong)) => {
                    assert!(pw.len() > MAX_PASSWORD_BYTES);
                }
                (Ok(_), Ok(Verification::Invalid)) => assert!(pw.len() <= MAX_PASSWORD_BYTES),
                other => panic!("paths differ for {} bytes: {other:?}", pw.len()),
            }
        }
        // Equal work is asserted by count, not by wall time: a timing assertion
        // would be flaky on a shared machine, and one argon2 run per call at
        // the same parameters is what makes the times equal.
    }

    /// Passwords: a planted hash's cost is bounded near the policy (class:
    /// hash-DoS through stored parameters).
    ///
    /// Root cause: stored PHC strings were accepted up to fixed maxima (256 MiB,
    /// 16 passes), far above the policy, so one planted hash made a login take
    /// seconds. Now memory, passes and their product are each bounded by
    /// `MAX_STORED_COST_FACTOR` times the policy's.
    #[test]
    fn planted_hash_cost_is_bounded_near_the_policy() {
        let h = PasswordHasher::new(PasswordParams::new(256, 2, 1).unwrap());
        let at = |m: u32, t: u32| {
            PasswordHasher::new(PasswordParams::new(m, t, 1).unwrap())
                .hash("pw")
                .unwrap()
        };
        // 4x memory, or 4x passes: accepted (and verified).
        assert_eq!(h.verify("pw", &at(1024, 2)).unwrap(), Verification::Valid);
        assert_eq!(h.verify("pw", &at(256, 8)).unwrap(), Verification::Valid);
        // Each bound alone: memory over with total work within (1032, 1),
        // passes over with total work within (128, 9), work over alone (768, 4).
        for (m, t) in [
            (1032, 2),
            (256, 9),
            (768, 4),
            (4096, 2),
            (1032, 1),
            (128, 9),
        ] {
            let planted = at(m, t);
            let before = runs();
            assert!(
                matches!(
                    h.verify("pw", &planted),
                    Err(Error::PasswordHashRejected(_))
                ),
                "m={m} t={t} accepted"
            );
            assert_eq!(runs(), before, "refused before hashing");
        }
    }

    /// Passwords: a hash below policy asks for a rehash, one above never does
    /// (class: rehash decisions).
    ///
    /// Root cause: any parameter below the policy's asked for a rehash, so a
    /// stronger hash with more memory and fewer passes was "upgraded" down to
    /// the policy, and a salt shorter than the policy's was never upgraded.
    #[test]
    fn rehash_is_asked_below_policy_and_never_above() {
        let policy = PasswordParams::new(512, 2, 1).unwrap();
        let h = PasswordHasher::new(policy);
        let at = |m: u32, t: u32, p: u32| {
            PasswordHasher::new(PasswordParams::new(m, t, p).unwrap())
                .hash("pw")
                .unwrap()
        };
        for (m, t) in [(256, 2), (512, 1), (256, 3)] {
            assert_eq!(
                h.verify("pw", &at(m, t, 1)).unwrap(),
                Verification::ValidNeedsRehash,
                "m={m} t={t}"
            );
        }
        // A short (8-byte) salt at the policy's parameters.
        let short_salt = policy
            .argon2(None)
            .unwrap()
            .hash_password_with_salt(b"pw", &[7u8; 8])
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify("pw", &short_salt).unwrap(),
            Verification::ValidNeedsRehash
        );
        // At or above the policy (more memory with fewer passes included):
        // never asked to rehash down.
        for (m, t, p) in [
            (512, 2, 1),
            (1024, 1, 1),
            (1024, 2, 1),
            (512, 3, 1),
            (512, 2, 2),
        ] {
            assert_eq!(
                h.verify("pw", &at(m, t, p)).unwrap(),
                Verification::Valid,
                "m={m} t={t} p={p}"
            );
        }
    }

    /// Passwords: a concurrency limit is the default.
    #[test]
    fn concurrency_limit_is_the_default() {
        let cpus = std::thread::available_parallelism().unwrap();
        let h = PasswordHasher::default();
        assert_eq!(h.max_concurrency(), cpus);
        assert_eq!(*h.limiter.free.lock(), cpus.get());
        assert!(format!("{h:?}").contains("max_concurrency"));
    }

    /// Parameter bounds, inclusive at both ends: memory 64..=262144 KiB and
    /// at least 8 KiB per lane, 1..=16 passes, 1..=16 lanes; the accessors
    /// give back what was checked.
    #[test]
    fn params_bounds_are_inclusive_and_accessors_return_them() {
        let p = PasswordParams::new(300, 3, 2).unwrap();
        assert_eq!((p.m_cost(), p.t_cost(), p.p_cost()), (300, 3, 2));
        let d = PasswordParams::default();
        assert_eq!((d.m_cost(), d.t_cost(), d.p_cost()), (19_456, 2, 1));
        for (m, t, p) in [
            (64, 1, 1),
            (262_144, 1, 1),
            (64, 16, 1),
            (128, 1, 16),
            (64, 1, 8),
        ] {
            assert!(PasswordParams::new(m, t, p).is_ok(), "m={m} t={t} p={p}");
        }
        for (m, t, p) in [
            (63, 1, 1),
            (262_145, 1, 1),
            (64, 0, 1),
            (64, 17, 1),
            (64, 1, 0),
            (272, 1, 17),
            (127, 1, 16),
            (71, 1, 9),
        ] {
            assert!(
                matches!(PasswordParams::new(m, t, p), Err(Error::InvalidConfig(_))),
                "m={m} t={t} p={p}"
            );
        }
    }

    /// Only `Invalid` is a failed match.
    #[test]
    fn only_invalid_is_not_valid() {
        assert!(Verification::Valid.is_valid());
        assert!(Verification::ValidNeedsRehash.is_valid());
        assert!(!Verification::Invalid.is_valid());
    }

    /// A password of exactly `MAX_PASSWORD_BYTES` hashes and verifies; one
    /// byte more is refused by both.
    #[test]
    fn password_of_max_bytes_is_accepted_and_one_more_refused() {
        let h = cheap();
        let max = "p".repeat(MAX_PASSWORD_BYTES);
        let phc = h.hash(&max).unwrap();
        assert_eq!(h.verify(&max, &phc).unwrap(), Verification::Valid);
        let over = "p".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(h.hash(&over), Err(Error::PasswordTooLong)));
        assert!(matches!(h.verify(&over, &phc), Err(Error::PasswordTooLong)));
    }

    /// The rehash rule weighs memory x passes: more memory with less total
    /// work than the policy still asks for a rehash, as does an output under
    /// 32 bytes at the policy's parameters.
    #[test]
    fn rehash_weighs_total_work_and_output_length() {
        let policy = PasswordParams::new(512, 3, 1).unwrap();
        let h = PasswordHasher::new(policy);
        let more_memory_less_work = PasswordHasher::new(PasswordParams::new(1024, 1, 1).unwrap())
            .hash("pw")
            .unwrap();
        assert_eq!(
            h.verify("pw", &more_memory_less_work).unwrap(),
            Verification::ValidNeedsRehash
        );
        let salt = [7u8; 16];
        let short_output = policy
            .argon2(Some(16))
            .unwrap()
            .hash_password_with_salt(b"pw", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify("pw", &short_output).unwrap(),
            Verification::ValidNeedsRehash
        );
        let full_output = policy
            .argon2(Some(32))
            .unwrap()
            .hash_password_with_salt(b"pw", &salt)
            .unwrap()
            .to_string();
        assert_eq!(h.verify("pw", &full_output).unwrap(), Verification::Valid);
    }

    /// A stored hash is refused before hashing when it is not argon2id v19 or
    /// its output is under 16 bytes (over 64 does not parse).
    #[test]
    fn stored_version_and_output_length_are_checked() {
        let h = cheap();
        let at = |v: u32, out: usize| {
            let p = Params::new(256, 1, 1, Some(out)).unwrap();
            let version = if v == 16 {
                Version::V0x10
            } else {
                Version::V0x13
            };
            Argon2::new(Algorithm::Argon2id, version, p)
                .hash_password_with_salt(b"pw", &[7u8; 16])
                .unwrap()
                .to_string()
        };
        assert_eq!(
            h.verify("pw", &at(19, 16)).unwrap(),
            Verification::ValidNeedsRehash
        );
        assert_eq!(h.verify("pw", &at(19, 64)).unwrap(), Verification::Valid);
        let before = runs();
        for (v, out, why) in [
            (16, 32, "unsupported argon2 version"),
            (19, 15, "hash length out of range"),
        ] {
            assert!(
                matches!(h.verify("pw", &at(v, out)), Err(Error::PasswordHashRejected(w)) if w == why),
                "v={v} out={out}"
            );
        }
        assert_eq!(runs(), before, "refused before hashing");
    }

    /// Builder settings survive each other and show in the accessors.
    #[test]
    fn builder_settings_are_kept() {
        let legacy = LegacyPolicy::NONE.with_pbkdf2_sha256(1000).unwrap();
        let two = NonZeroUsize::new(2).unwrap();
        let h = cheap()
            .with_legacy(legacy.clone())
            .with_max_concurrency(two);
        assert_eq!(h.legacy(), &legacy);
        assert_eq!(h.max_concurrency(), two);
        assert_eq!(*h.limiter.free.lock(), 2);
        assert_eq!(h.params(), PasswordParams::new(256, 1, 1).unwrap());
        let d = format!("{h:?}");
        assert!(
            d.contains("m_cost: 256") && d.contains("pbkdf2: Some(1000)"),
            "{d}"
        );
    }

    /// `verify` parses stored strings of up to 512 bytes (this one is no known
    /// format) and refuses longer ones unparsed.
    #[test]
    fn stored_strings_over_512_bytes_are_refused_unparsed() {
        let h = cheap();
        assert!(matches!(
            h.verify("pw", &"x".repeat(512)),
            Err(Error::PasswordHashUnknownFormat)
        ));
        assert!(matches!(
            h.verify("pw", &"x".repeat(513)),
            Err(Error::PasswordHashRejected("stored hash too long"))
        ));
    }
}
