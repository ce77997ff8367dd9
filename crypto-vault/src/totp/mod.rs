//! Time-based one-time passwords (TOTP, RFC 6238) for a second factor.
//!
//! The flow a service wires:
//!
//! 1. **Enrolment starts**: [`PendingTotp::generate`] draws a secret from the
//!    operating system's generator (the hash's output length: 160 bits for
//!    SHA-1, 256 for SHA-256, 512 for SHA-512). Show
//!    [`PendingTotp::uri`] (an `otpauth://totp/` URI, as a QR code) and
//!    [`PendingTotp::secret_base32`] once; store [`PendingTotp::seal`] (field
//!    encryption bound to tenant, table, column and row).
//! 2. **Enrolment completes** only after one valid code:
//!    [`TotpVerifier::confirm`] opens nothing but the pending secret and returns
//!    the active [`Totp`] and the time step it accepted. Store
//!    [`Totp::seal`] and the step. A pending record never opens as an active
//!    one ([`Totp::open`] refuses it), whatever column it is copied to.
//! 3. **Verification**: [`TotpVerifier::verify`] takes the code, the active
//!    secret and the last accepted time step, and returns the new last step.
//!    A code at a step at or before the last accepted one is refused even
//!    inside the window, so a code seen on the wire cannot be replayed.
//!
//! # Traps
//!
//! - **Store the new step atomically.** Two requests carrying the same code
//!   at the same moment both pass `verify` if both read the same last step.
//!   Write it with a compare-and-set, and accept the login only if the write
//!   won, e.g. `UPDATE mfa SET last_step = $new WHERE user_id = $1 AND
//!   (last_step IS NULL OR last_step < $new)` and check one row changed.
//! - **Rate-limit every try, and cap failures** (see [`RECOMMENDED_TRIES_PER_STEP`]
//!   and [`RECOMMENDED_MAX_FAILURES`]). A 6-digit code is guessed with
//!   probability 10⁻⁶ per code, and the default window accepts 3 codes, so
//!   each try succeeds with probability 3 × 10⁻⁶. At
//!   [`RECOMMENDED_TRIES_PER_STEP`] = 5 tries per 30-second step per account,
//!   an unbounded attacker makes 14,400 tries a day: a 4.2% chance of success
//!   per day. That is why the step limit alone is not enough:
//!   [`RECOMMENDED_MAX_FAILURES`] = 100 consecutive failures per account
//!   (reset by a success; then lock the factor and require recovery) bounds
//!   the attacker's total chance at 100 × 3 × 10⁻⁶ = 0.03% (the NIST SP
//!   800-63B §5.2.2 limit). Malformed codes ([`Error::TotpMalformed`]) count
//!   as failures too.
//! - **Digits.** Codes are accepted in ASCII digits, Arabic-Indic digits
//!   (U+0660–U+0669) and Eastern Arabic-Indic digits (U+06F0–U+06F9), mixed
//!   freely, with ASCII spaces (U+0020) anywhere as separators (`123 456`).
//!   Nothing else: no other script's digits, no other spaces, no hyphens.
//! - **Clock.** The verifier reads the injected [`Clock`]; a server clock off
//!   by more than the window refuses every code. Keep it synchronised (NTP).
//!
//! [`Clock`]: crate::Clock
//! [`Error::TotpMalformed`]: crate::Error::TotpMalformed

use std::fmt;
use std::time::Duration;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod code;
mod enrol;
mod uri;
mod verify;

pub use code::{Totp, parse_code};
pub use enrol::PendingTotp;
pub use uri::{MAX_LABEL_LEN, MAX_URI_LEN, OtpAuthUri};
pub use verify::{
    DEFAULT_WINDOW, MAX_WINDOW, RECOMMENDED_MAX_FAILURES, RECOMMENDED_TRIES_PER_STEP, TotpVerifier,
};

/// Fewest secret bytes accepted from outside (RFC 4226 §4 R6: at least 128
/// bits). Secrets this crate generates are never shorter than
/// [`MIN_GENERATED_SECRET_LEN`].
pub const MIN_SECRET_LEN: usize = 16;
/// Fewest secret bytes this crate generates (160 bits, RFC 4226's
/// recommendation).
pub const MIN_GENERATED_SECRET_LEN: usize = 20;
/// Most secret bytes accepted (bounds the work an input can cause).
pub const MAX_SECRET_LEN: usize = 128;

/// The HMAC hash of a TOTP credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA-1: what authenticator apps use by default. SHA-1's collision
    /// weakness does not affect HMAC.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `SHA1`, `SHA256` or `SHA512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parse [`Algorithm::as_str`], ASCII case-insensitively (`sha-256` is
    /// accepted too).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("SHA1") || s.eq_ignore_ascii_case("SHA-1") {
            Some(Self::Sha1)
        } else if s.eq_ignore_ascii_case("SHA256") || s.eq_ignore_ascii_case("SHA-256") {
            Some(Self::Sha256)
        } else if s.eq_ignore_ascii_case("SHA512") || s.eq_ignore_ascii_case("SHA-512") {
            Some(Self::Sha512)
        } else {
            None
        }
    }

    /// Length of the hash output, which is the length of generated secrets.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Sha1 => 1,
            Self::Sha256 => 2,
            Self::Sha512 => 3,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Sha1),
            2 => Some(Self::Sha256),
            3 => Some(Self::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parameters of a TOTP credential: hash, number of digits, step length.
/// Invalid parameters cannot be built ([`TotpParams::new`] checks them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TotpParams {
    algorithm: Algorithm,
    digits: u8,
    period: u32,
}

impl TotpParams {
    /// Fewest digits in a code.
    pub const MIN_DIGITS: u8 = 6;
    /// Most digits in a code.
    pub const MAX_DIGITS: u8 = 8;
    /// Shortest time step, seconds.
    pub const MIN_PERIOD: u32 = 15;
    /// Longest time step, seconds (a long step keeps a code valid, and
    /// guessable, for longer).
    pub const MAX_PERIOD: u32 = 300;
    /// What every authenticator app supports: HMAC-SHA-1, 6 digits, 30 s.
    pub const DEFAULT: Self = Self {
        algorithm: Algorithm::Sha1,
        digits: 6,
        period: 30,
    };

    /// Parameters with `digits` in `MIN_DIGITS..=MAX_DIGITS` and a `period`
    /// (seconds) in `MIN_PERIOD..=MAX_PERIOD`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside those ranges.
    pub fn new(algorithm: Algorithm, digits: u8, period: u32) -> Result<Self> {
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits) {
            return Err(Error::InvalidConfig("TOTP digits must be 6..=8"));
        }
        if !(Self::MIN_PERIOD..=Self::MAX_PERIOD).contains(&period) {
            return Err(Error::InvalidConfig("TOTP period must be 15..=300 seconds"));
        }
        Ok(Self {
            algorithm,
            digits,
            period,
        })
    }

    /// The hash.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Digits per code.
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Step length in seconds.
    pub fn period(&self) -> u32 {
        self.period
    }

    /// Step length.
    pub fn period_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.period))
    }
}

impl Default for TotpParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A TOTP shared secret. Zeroized on drop, compared in constant time, never
/// printed by `Debug`.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A fresh secret of `algorithm`'s output length (at least
    /// [`MIN_GENERATED_SECRET_LEN`] bytes) from the operating system's
    /// generator (fork-safe: no user-space state).
    ///
    /// # Errors
    /// [`Error::Rng`] if the generator fails.
    pub fn generate(algorithm: Algorithm) -> Result<Self> {
        let len = algorithm.output_len().max(MIN_GENERATED_SECRET_LEN);
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        crate::rng::os_fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// A secret from raw bytes, [`MIN_SECRET_LEN`]`..=`[`MAX_SECRET_LEN`] long.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for another length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(Error::InvalidKey("TOTP secret must be 16..=128 bytes"));
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret from RFC 4648 base32 as authenticator apps show it: case
    /// ignored, spaces and trailing `=` ignored.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for text that is not base32 or decodes to a bad
    /// length.
    pub fn from_base32(text: &str) -> Result<Self> {
        let bytes =
            uri::base32_decode(text).ok_or(Error::InvalidKey("TOTP secret is not base32"))?;
        Self::from_bytes(&bytes)
    }

    /// The secret as unpadded upper-case base32 (what apps accept for manual
    /// entry), in a string that zeroizes on drop.
    pub fn to_base32(&self) -> Zeroizing<String> {
        uri::base32_encode(&self.0)
    }

    /// The raw bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a secret has at least [`MIN_SECRET_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for TotpSecret {
    /// Constant-time comparison (the length is not secret).
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for TotpSecret {}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TotpSecret([REDACTED; {} bytes])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_bounded() {
        assert!(TotpParams::new(Algorithm::Sha1, 5, 30).is_err());
        assert!(TotpParams::new(Algorithm::Sha1, 9, 30).is_err());
        assert!(TotpParams::new(Algorithm::Sha1, 6, 14).is_err());
        assert!(TotpParams::new(Algorithm::Sha1, 6, 301).is_err());
        let p = TotpParams::new(Algorithm::Sha512, 8, 60).unwrap();
        assert_eq!((p.digits(), p.period()), (8, 60));
        assert_eq!(TotpParams::default(), TotpParams::DEFAULT);
    }

    #[test]
    fn generated_secrets_are_long_random_and_redacted() {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            let a = TotpSecret::generate(alg).unwrap();
            let b = TotpSecret::generate(alg).unwrap();
            assert!(a.len() >= MIN_GENERATED_SECRET_LEN);
            assert_eq!(a.len(), alg.output_len());
            assert_ne!(a, b);
            let dbg = format!("{a:?}");
            assert!(!dbg.contains(a.to_base32().as_str()));
            assert!(dbg.contains("REDACTED"));
        }
    }

    #[test]
    fn secret_length_is_checked() {
        assert!(TotpSecret::from_bytes(&[1; 15]).is_err());
        assert!(TotpSecret::from_bytes(&[1; 129]).is_err());
        assert!(TotpSecret::from_bytes(&[1; 16]).is_ok());
        // 80-bit secrets (16 base32 characters) are below RFC 4226's minimum.
        assert!(TotpSecret::from_base32("JBSWY3DPEHPK3PXP").is_err());
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(Algorithm::from_byte(alg.to_byte()), Some(alg));
        }
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("MD5"), None);
    }
}
