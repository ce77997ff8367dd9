//! Legacy password hashes (bcrypt, scrypt, PBKDF2-SHA256), verified so that
//! accounts move to argon2id on their next login.
//!
//! Nothing here is accepted by default: a [`PasswordHasher`](super::PasswordHasher)
//! verifies a legacy hash only when it was given a [`LegacyPolicy`] that
//! enables the algorithm, with the cost the deployment's hashes hold. A legacy
//! hash that verifies always answers
//! [`Verification::ValidNeedsRehash`](super::Verification::ValidNeedsRehash):
//! store `hasher.hash(password)` on the same login.
//!
//! # Formats
//!
//! | Algorithm | Layout | Parameters |
//! | --- | --- | --- |
//! | bcrypt | `$2a$`, `$2b$`, `$2y$` + 2-digit cost + 22 + 31 characters (bcrypt base64) | cost in the string |
//! | scrypt | PHC `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` (standard base64 without padding; passlib's `.` for `+` accepted) | in the string |
//! | scrypt | `<salt>:<hash>`, both hex or both base64 (padding optional) | not in the string: [`SaltHashLayout`] says N, r, p and whether the salt is fed decoded or as written |
//! | PBKDF2-HMAC-SHA256 | PHC `$pbkdf2-sha256$i=<iterations>[,l=<len>]$<salt>$<hash>`, or passlib's `$pbkdf2-sha256$<iterations>$<salt>$<hash>` | in the string |
//!
//! `$2x$` (crypt_blowfish's sign-extension bug) and `$2$` are refused: their
//! hashes do not mean what `$2a$` means for 8-bit passwords.
//!
//! # Traps, and the rules chosen
//!
//! - **bcrypt reads at most 72 bytes and stops at a NUL byte.** A password
//!   longer than 72 bytes, or holding a NUL, never matches a bcrypt hash (also
//!   not a wrapped one): it would otherwise match the hash of its first 72 bytes
//!   (or of the bytes before the NUL). Those users must reset their password
//!   (their stored hash only ever protected a prefix of it). The refusal answers
//!   [`Verification::Invalid`](super::Verification::Invalid) after the same work as
//!   a real check, so it reveals neither the account's format nor its existence.
//! - **Planted hashes.** Costs in a stored string are the attacker's if the
//!   column can be written: every stored cost is checked against the policy's
//!   ceiling before any work, and the ceilings themselves are bounded
//!   ([`LegacyPolicy::MAX_BCRYPT_COST`], [`ScryptCost::MAX_MEMORY_BYTES`],
//!   [`ScryptCost::MAX_WORK_BYTES`], [`LegacyPolicy::MAX_PBKDF2_ITERATIONS`]).
//!   Strings longer than 512 bytes are refused unparsed.
//! - **Comparison** of the derived digest with the stored one is constant-time
//!   (`subtle`).
//! - **Timing.** With a legacy policy, every [`verify`](super::PasswordHasher::verify)
//!   and [`dummy_verify`](super::PasswordHasher::dummy_verify) runs the same set
//!   of work: one argon2id verification at the current parameters and one run of
//!   each enabled legacy algorithm at its ceiling. The account's own hash takes
//!   the place of the run of its kind (a legacy account's argon2id run is made
//!   against the dummy hash). Response time is therefore the same whatever the
//!   account holds, provided its stored cost is the ceiling: a hash stored with
//!   a lower cost is faster by the difference (set each ceiling to the cost your
//!   accounts hold). The price: while a legacy algorithm is enabled, every login
//!   pays for it; remove it from the policy once the migration is done.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod bcrypt;
mod pbkdf2;
mod scrypt;

pub use self::scrypt::{SaltHashLayout, SaltInput, ScryptCost};

/// Longest stored legacy (or wrapped) hash string parsed.
pub(crate) const MAX_STORED_LEN: usize = 512;
/// Salt lengths accepted (bytes) for scrypt and PBKDF2: legacy data is what it is
/// (RFC 7914's first scrypt vector has an empty salt); it is replaced on login.
const MAX_SALT_LEN: usize = 128;
/// Digest lengths accepted (bytes) for scrypt and PBKDF2.
const DIGEST_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// A legacy password-hashing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LegacyAlgorithm {
    /// bcrypt (`$2a$`, `$2b$`, `$2y$`).
    Bcrypt,
    /// scrypt (PHC or `salt:hash`).
    Scrypt,
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2Sha256,
}

/// A legacy algorithm with its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kdf {
    Bcrypt { cost: u32 },
    Scrypt(ScryptCost),
    Pbkdf2 { iterations: u32 },
}

impl Kdf {
    pub(crate) fn algorithm(self) -> LegacyAlgorithm {
        match self {
            Self::Bcrypt { .. } => LegacyAlgorithm::Bcrypt,
            Self::Scrypt(_) => LegacyAlgorithm::Scrypt,
            Self::Pbkdf2 { .. } => LegacyAlgorithm::Pbkdf2Sha256,
        }
    }

    /// Run this KDF once on a fixed input: the stand-in for an algorithm the
    /// account does not use (see the module docs on timing).
    pub(crate) fn dummy_run(self) {
        let settings = Settings {
            kdf: self,
            salt: vec![0x5a; 16],
            out_len: 32,
        };
        let _ = settings.derive(b"hisn dummy password");
    }
}

/// Everything a legacy hash holds but its digest: what deriving it again needs.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) kdf: Kdf,
    pub(crate) salt: Vec<u8>,
    pub(crate) out_len: usize,
}

impl Settings {
    /// Derive the digest of `password`. `None` when the password can never
    /// match under this algorithm (bcrypt: over 72 bytes or holding a NUL);
    /// the same work is done on a stand-in in that case.
    pub(crate) fn derive(&self, password: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        record_work(|| format!("{:?}", self.kdf));
        match self.kdf {
            Kdf::Bcrypt { cost } => bcrypt::derive(cost, &self.salt, password),
            Kdf::Scrypt(c) => scrypt::derive(c, &self.salt, password, self.out_len),
            Kdf::Pbkdf2 { iterations } => Some(pbkdf2::derive(
                iterations,
                &self.salt,
                password,
                self.out_len,
            )),
        }
    }

    /// The settings in the normalised text a wrapped hash carries (no leading `$`).
    pub(crate) fn to_inner(&self) -> String {
        match self.kdf {
            Kdf::Bcrypt { cost } => bcrypt::settings_text(cost, &self.salt),
            Kdf::Scrypt(c) => scrypt::settings_text(c, &self.salt, self.out_len),
            Kdf::Pbkdf2 { iterations } => {
                pbkdf2::settings_text(iterations, &self.salt, self.out_len)
            }
        }
    }

    /// Parse [`Settings::to_inner`]'s text (with its leading `$`).
    pub(crate) fn parse_inner(s: &str) -> Result<Self> {
        if s.starts_with("$2b$") {
            bcrypt::parse_settings(s)
        } else if s.starts_with("$scrypt$") {
            scrypt::parse_settings(s)
        } else if s.starts_with("$pbkdf2-sha256$") {
            pbkdf2::parse_settings(s)
        } else {
            Err(Error::PasswordHashRejected(
                "wrapped hash: unknown inner format",
            ))
        }
    }
}

/// Which legacy hashes a [`PasswordHasher`](super::PasswordHasher) accepts, and
/// the ceiling of each one's cost.
///
/// Each ceiling is also the cost of the stand-in run every verification makes
/// for that algorithm (see the module docs on timing): set it to the cost your
/// stored hashes hold, not higher. A stored hash above a ceiling in any
/// parameter is refused before any work. [`LegacyPolicy::NONE`] (the default)
/// accepts no legacy hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyPolicy {
    bcrypt: Option<u32>,
    scrypt: Option<ScryptCost>,
    pbkdf2: Option<u32>,
    salt_hash: Option<SaltHashLayout>,
}

impl LegacyPolicy {
    /// No legacy hash accepted.
    pub const NONE: Self = Self {
        bcrypt: None,
        scrypt: None,
        pbkdf2: None,
        salt_hash: None,
    };
    /// Smallest bcrypt cost (OpenBSD's minimum).
    pub const MIN_BCRYPT_COST: u32 = 4;
    /// Largest bcrypt cost ceiling (2^14 rounds, about a second on a server core).
    pub const MAX_BCRYPT_COST: u32 = 14;
    /// Largest PBKDF2 iteration ceiling (a bit over three times OWASP's 600,000
    /// for PBKDF2-HMAC-SHA256).
    pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

    /// Accept bcrypt hashes with a cost up to `max_cost`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside `MIN_BCRYPT_COST..=MAX_BCRYPT_COST`.
    pub fn with_bcrypt(mut self, max_cost: u32) -> Result<Self> {
        if !(Self::MIN_BCRYPT_COST..=Self::MAX_BCRYPT_COST).contains(&max_cost) {
            return Err(Error::InvalidConfig("bcrypt cost out of range"));
        }
        self.bcrypt = Some(max_cost);
        Ok(self)
    }

    /// Accept scrypt PHC hashes that take no more memory (128 · r · N) and no
    /// more work (memory · p) than `max`.
    pub fn with_scrypt(mut self, max: ScryptCost) -> Self {
        self.scrypt = Some(max);
        self
    }

    /// Accept `salt:hash` scrypt hashes of this layout (and raise the scrypt
    /// ceiling to the layout's cost if it was lower or unset).
    pub fn with_scrypt_salt_hash(mut self, layout: SaltHashLayout) -> Self {
        self.scrypt = Some(match self.scrypt {
            Some(c) => c.max(layout.cost()),
            None => layout.cost(),
        });
        self.salt_hash = Some(layout);
        self
    }

    /// Accept PBKDF2-HMAC-SHA256 hashes with at most `max_iterations`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for 0 or above [`LegacyPolicy::MAX_PBKDF2_ITERATIONS`].
    pub fn with_pbkdf2_sha256(mut self, max_iterations: u32) -> Result<Self> {
        if !(1..=Self::MAX_PBKDF2_ITERATIONS).contains(&max_iterations) {
            return Err(Error::InvalidConfig("PBKDF2 iterations out of range"));
        }
        self.pbkdf2 = Some(max_iterations);
        Ok(self)
    }

    /// The policy whose only ceiling is `hash`'s own cost: for tools that
    /// check one hash at a time (the `hisn password verify` command), where
    /// timing is not an oracle.
    pub fn matching(hash: &LegacyHash) -> Self {
        Self::NONE.with_kdf(hash.settings.kdf)
    }

    /// The policy that admits exactly `stored` (a legacy or wrapped hash) at
    /// its own cost, [`LegacyPolicy::NONE`] for anything else (an argon2id
    /// string, or garbage that [`PasswordHasher::verify`](super::PasswordHasher::verify)
    /// will then refuse). `layout` is the `salt:hash` layout to read such a
    /// string with. For tools checking one hash at a time (the
    /// `hisn password verify` command), where timing is not an oracle.
    ///
    /// # Errors
    /// As [`LegacyHash::parse`] under [`LegacyPolicy::maximum`]: a legacy or
    /// wrapped string that is malformed or above every ceiling.
    pub fn for_stored(stored: &str, layout: Option<SaltHashLayout>) -> Result<Self> {
        if let Some(rest) = stored.strip_prefix(super::wrapped::PREFIX) {
            let at = rest
                .find("$argon2id$")
                .ok_or(Error::PasswordHashRejected("malformed wrapped hash"))?;
            let inner = Settings::parse_inner(&format!("${}", &rest[..at]))?;
            let p = Self::maximum(None);
            p.admit(inner.kdf)?;
            return Ok(Self::NONE.with_kdf(inner.kdf));
        }
        if !looks_legacy(stored) {
            return Ok(Self::NONE);
        }
        let hash = LegacyHash::parse(stored, &Self::maximum(layout))?;
        let mut p = Self::matching(&hash);
        if matches!(hash.settings.kdf, Kdf::Scrypt(_)) {
            p.salt_hash = layout;
        }
        Ok(p)
    }

    fn with_kdf(mut self, kdf: Kdf) -> Self {
        match kdf {
            Kdf::Bcrypt { cost } => self.bcrypt = Some(cost),
            Kdf::Scrypt(c) => self.scrypt = Some(c),
            Kdf::Pbkdf2 { iterations } => self.pbkdf2 = Some(iterations),
        }
        self
    }

    /// Every legacy layout at its largest ceiling, the `salt:hash` one with
    /// `layout` if given: for recognising a hash before choosing a policy
    /// (see [`LegacyPolicy::matching`]). Do not verify logins with it: every
    /// verification would pay the largest cost of every algorithm.
    pub fn maximum(layout: Option<SaltHashLayout>) -> Self {
        Self {
            bcrypt: Some(Self::MAX_BCRYPT_COST),
            scrypt: Some(ScryptCost::MAXIMUM),
            pbkdf2: Some(Self::MAX_PBKDF2_ITERATIONS),
            salt_hash: layout,
        }
    }

    /// Whether no legacy hash is accepted.
    pub fn is_none(&self) -> bool {
        self.bcrypt.is_none() && self.scrypt.is_none() && self.pbkdf2.is_none()
    }

    /// The stand-in runs: one per enabled algorithm, at its ceiling.
    pub(crate) fn ceilings(&self) -> impl Iterator<Item = Kdf> + '_ {
        let b = self.bcrypt.map(|cost| Kdf::Bcrypt { cost });
        let s = self.scrypt.map(Kdf::Scrypt);
        let p = self.pbkdf2.map(|iterations| Kdf::Pbkdf2 { iterations });
        [b, s, p].into_iter().flatten()
    }

    /// Refuse a stored cost this policy does not admit (before any work).
    pub(crate) fn admit(&self, kdf: Kdf) -> Result<()> {
        let admitted = match kdf {
            Kdf::Bcrypt { cost } => self.bcrypt.map(|max| cost <= max),
            Kdf::Scrypt(c) => self.scrypt.map(|max| c.within(max)),
            Kdf::Pbkdf2 { iterations } => self.pbkdf2.map(|max| iterations <= max),
        };
        match admitted {
            None => Err(Error::PasswordHashRejected(
                "legacy hash format not enabled by the policy",
            )),
            Some(false) => Err(Error::PasswordHashRejected(
                "legacy hash cost above the policy",
            )),
            Some(true) => Ok(()),
        }
    }
}

/// Whether `stored` looks like a legacy hash (by prefix or `salt:hash` shape),
/// so that the dispatcher can tell "legacy, refused" from "unknown".
pub(crate) fn looks_legacy(stored: &str) -> bool {
    [
        "$2a$",
        "$2b$",
        "$2y$",
        "$2x$",
        "$2$",
        "$scrypt$",
        "$pbkdf2-sha256$",
    ]
    .iter()
    .any(|p| stored.starts_with(p))
        || scrypt::looks_salt_hash(stored)
}

/// A parsed legacy hash whose cost a [`LegacyPolicy`] admits.
///
/// Low level: [`LegacyHash::verify`] runs the algorithm once, with no
/// concurrency limit and no timing equalisation. Logins go through
/// [`PasswordHasher::verify`](super::PasswordHasher::verify).
pub struct LegacyHash {
    pub(crate) settings: Settings,
    digest: Vec<u8>,
}

impl fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyHash")
            .field("kdf", &self.settings.kdf)
            .finish_non_exhaustive()
    }
}

impl LegacyHash {
    /// Parse `stored` and check its cost against `policy`, before any work.
    ///
    /// # Errors
    /// [`Error::PasswordHashUnknownFormat`] if it is no legacy layout;
    /// [`Error::PasswordHashRejected`] if malformed, not enabled by `policy`,
    /// or above its ceiling.
    pub fn parse(stored: &str, policy: &LegacyPolicy) -> Result<Self> {
        if stored.len() > MAX_STORED_LEN {
            return Err(Error::PasswordHashRejected("stored hash too long"));
        }
        let (settings, digest) = if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            bcrypt::parse(stored)?
        } else if stored.starts_with("$2x$") || stored.starts_with("$2$") {
            return Err(Error::PasswordHashRejected(
                "bcrypt $2x$/$2$ hashes are not supported",
            ));
        } else if stored.starts_with("$scrypt$") {
            scrypt::parse_phc(stored)?
        } else if stored.starts_with("$pbkdf2-sha256$") {
            pbkdf2::parse_phc(stored)?
        } else if scrypt::looks_salt_hash(stored) {
            let Some(layout) = policy.salt_hash else {
                return Err(Error::PasswordHashRejected(
                    "salt:hash layout not enabled by the policy",
                ));
            };
            scrypt::parse_salt_hash(stored, layout)?
        } else {
            return Err(Error::PasswordHashUnknownFormat);
        };
        policy.admit(settings.kdf)?;
        Ok(Self { settings, digest })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> LegacyAlgorithm {
        self.settings.kdf.algorithm()
    }

    /// Run the algorithm on `password` and compare in constant time. Takes
    /// bytes: legacy systems may have hashed non-UTF-8 passwords.
    pub fn verify(&self, password: &[u8]) -> bool {
        self.settings
            .derive(password)
            .is_some_and(|d| bool::from(d.as_slice().ct_eq(&self.digest)))
    }

    /// The stored digest (the input a wrapped hash feeds to argon2id).
    pub(crate) fn digest(&self) -> &[u8] {
        &self.digest
    }
}

// Test builds log each KDF run (algorithm and cost) per thread, so tests can
// assert that two paths did the same work.
#[cfg(test)]
thread_local! {
    pub(crate) static WORK: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
pub(crate) fn record_work(what: impl FnOnce() -> String) {
    WORK.with(|w| w.borrow_mut().push(what()));
}

#[cfg(not(test))]
pub(crate) fn record_work(_what: impl FnOnce() -> String) {}

/// Decimal parameter: ASCII digits only, at most 10 of them.
pub(crate) fn decimal(s: &str) -> Result<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::PasswordHashRejected("malformed number"));
    }
    s.parse()
        .map_err(|_| Error::PasswordHashRejected("number out of range"))
}

/// PHC base64: standard alphabet, padding optional, passlib's `.` for `+`.
pub(crate) fn phc_b64(s: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let s = s.replace('.', "+");
    ENGINE
        .decode(s)
        .map_err(|_| Error::PasswordHashRejected("malformed base64"))
}

/// PHC base64 encoding (standard alphabet, no padding).
pub(crate) fn phc_b64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
}

fn check_lengths(salt: &[u8], digest_len: usize) -> Result<()> {
    if salt.len() > MAX_SALT_LEN {
        return Err(Error::PasswordHashRejected("salt too long"));
    }
    if !DIGEST_LEN.contains(&digest_len) {
        return Err(Error::PasswordHashRejected("hash length out of range"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_formats_are_a_typed_error() {
        for s in ["", "garbage", "$1$abc$def", "$6$salt$hash", "md5:", "::"] {
            assert!(
                matches!(
                    LegacyHash::parse(s, &LegacyPolicy::maximum(None)),
                    Err(Error::PasswordHashUnknownFormat)
                ),
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_policy_without_the_algorithm_refuses_it() {
        let h = "$2b$04$......................wgOoGfB6tmKgDAOR0gsuvIr/Ee3cEz6";
        assert!(matches!(
            LegacyHash::parse(h, &LegacyPolicy::NONE),
            Err(Error::PasswordHashRejected(_))
        ));
        assert!(LegacyPolicy::NONE.is_none());
        assert!(LegacyPolicy::default().is_none());
    }

    #[test]
    fn decimal_is_strict() {
        assert_eq!(decimal("600000").unwrap(), 600_000);
        for s in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "99999999999",
            "4294967296",
            "1e3",
        ] {
            assert!(decimal(s).is_err(), "{s:?}");
        }
    }

    const BCRYPT6: &str = "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.";

    /// `is_none` is true only when no algorithm is enabled: any one of the
    /// three makes it false.
    #[test]
    fn is_none_only_without_any_algorithm() {
        assert!(LegacyPolicy::NONE.is_none());
        let cost = ScryptCost::NODE_DEFAULT;
        for one in [
            LegacyPolicy::NONE.with_bcrypt(10).unwrap(),
            LegacyPolicy::NONE.with_scrypt(cost),
            LegacyPolicy::NONE.with_pbkdf2_sha256(1000).unwrap(),
        ] {
            assert!(!one.is_none(), "{one:?}");
        }
    }

    /// `maximum` enables every algorithm at its largest ceiling (and the
    /// `salt:hash` layout only when one is given).
    #[test]
    fn maximum_is_every_algorithm_at_its_largest_ceiling() {
        let all = LegacyPolicy::NONE
            .with_bcrypt(LegacyPolicy::MAX_BCRYPT_COST)
            .unwrap()
            .with_scrypt(ScryptCost::MAXIMUM)
            .with_pbkdf2_sha256(LegacyPolicy::MAX_PBKDF2_ITERATIONS)
            .unwrap();
        assert_eq!(LegacyPolicy::maximum(None), all);
        let layout = SaltHashLayout::NODE_DEFAULT;
        assert_eq!(
            LegacyPolicy::maximum(Some(layout)),
            all.with_scrypt_salt_hash(layout)
        );
    }

    /// The one-hash policies (`matching`, `for_stored`) admit exactly the
    /// stored hash's algorithm at its own cost; anything that is not a
    /// legacy or wrapped hash gets `NONE`.
    #[test]
    fn one_hash_policies_admit_exactly_the_stored_algorithm_and_cost() {
        let bcrypt6 = LegacyPolicy::NONE.with_bcrypt(6).unwrap();
        let h = LegacyHash::parse(BCRYPT6, &LegacyPolicy::maximum(None)).unwrap();
        assert_eq!(LegacyPolicy::matching(&h), bcrypt6);
        // `Debug` names the algorithm and cost, never the digest.
        assert_eq!(
            format!("{h:?}"),
            "LegacyHash { kdf: Bcrypt { cost: 6 }, .. }"
        );
        assert_eq!(LegacyPolicy::for_stored(BCRYPT6, None).unwrap(), bcrypt6);
        let wrapped = "$hisn-wrap-v1$2b$06$DCq7YPn5Rq63x1Lad4cll.$argon2id$v=19$rest";
        assert_eq!(LegacyPolicy::for_stored(wrapped, None).unwrap(), bcrypt6);
        let scrypt = "$scrypt$ln=10,r=8,p=1,l=16$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA";
        assert_eq!(
            LegacyPolicy::for_stored(scrypt, None).unwrap(),
            LegacyPolicy::NONE.with_scrypt(ScryptCost::new(10, 8, 1).unwrap())
        );
        let pbkdf2 = "$pbkdf2-sha256$i=1000,l=16$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA";
        assert_eq!(
            LegacyPolicy::for_stored(pbkdf2, None).unwrap(),
            LegacyPolicy::NONE.with_pbkdf2_sha256(1000).unwrap()
        );
        let layout = SaltHashLayout::NODE_DEFAULT;
        let salt_hash = "00ff:000102030405060708090a0b0c0d0e0f";
        assert_eq!(
            LegacyPolicy::for_stored(salt_hash, Some(layout)).unwrap(),
            LegacyPolicy::NONE.with_scrypt_salt_hash(layout)
        );
        let argon2 =
            "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        for other in [argon2, "garbage", ""] {
            assert_eq!(
                LegacyPolicy::for_stored(other, None).unwrap(),
                LegacyPolicy::NONE,
                "{other:?}"
            );
        }
        assert!(matches!(
            LegacyPolicy::for_stored(
                "$2a$15$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
                None
            ),
            Err(Error::PasswordHashRejected(_))
        ));
    }

    /// Stored strings of up to 512 bytes are parsed (this one is no legacy
    /// layout), one byte more is refused unparsed.
    #[test]
    fn stored_length_limit_is_512_bytes_inclusive() {
        let max = LegacyPolicy::maximum(None);
        assert!(matches!(
            LegacyHash::parse(&"x".repeat(MAX_STORED_LEN), &max),
            Err(Error::PasswordHashUnknownFormat)
        ));
        assert!(matches!(
            LegacyHash::parse(&"x".repeat(MAX_STORED_LEN + 1), &max),
            Err(Error::PasswordHashRejected("stored hash too long"))
        ));
    }

    /// `$2x$` and `$2$` bcrypt hashes are recognised and refused, each on its
    /// own (not reported as an unknown format).
    #[test]
    fn bcrypt_2x_and_2_are_refused_by_name() {
        for h in [
            "$2x$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$2$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
        ] {
            assert!(
                matches!(
                    LegacyHash::parse(h, &LegacyPolicy::maximum(None)),
                    Err(Error::PasswordHashRejected(
                        "bcrypt $2x$/$2$ hashes are not supported"
                    ))
                ),
                "{h}"
            );
        }
    }

    /// Each rule of `decimal` refuses on its own: empty or more than 10
    /// characters is malformed before parsing; 10 digits over `u32::MAX` is
    /// out of range.
    #[test]
    fn decimal_refuses_by_the_rule_that_failed() {
        assert_eq!(decimal("4294967295").unwrap(), u32::MAX);
        for (s, why) in [
            ("", "malformed number"),
            ("99999999999", "malformed number"),
            ("00000000001", "malformed number"),
            ("1a", "malformed number"),
            ("4294967296", "number out of range"),
        ] {
            assert!(
                matches!(decimal(s), Err(Error::PasswordHashRejected(w)) if w == why),
                "{s:?}"
            );
        }
    }

    /// Salts up to 128 bytes and digests of 16..=128 bytes are accepted.
    #[test]
    fn salt_and_digest_length_bounds_are_inclusive() {
        check_lengths(&[0; MAX_SALT_LEN], 16).unwrap();
        check_lengths(&[], 128).unwrap();
        assert!(matches!(
            check_lengths(&[0; MAX_SALT_LEN + 1], 16),
            Err(Error::PasswordHashRejected("salt too long"))
        ));
        for len in [15, 129] {
            assert!(matches!(
                check_lengths(&[0; 16], len),
                Err(Error::PasswordHashRejected("hash length out of range"))
            ));
        }
    }
}
