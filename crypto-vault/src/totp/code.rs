//! Code computation (RFC 4226 HOTP over RFC 6238 time steps) and code parsing.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use super::{Algorithm, TotpParams, TotpSecret};
use crate::error::{Error, Result};

/// Longest code input accepted by [`parse_code`], in bytes (8 two-byte
/// Arabic-Indic digits with spaces between them fit easily).
const MAX_CODE_INPUT: usize = 64;

fn mac_bytes<M: Mac + KeyInit>(key: &[u8], msg: &[u8], out: &mut [u8; 64]) -> usize {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return 0;
    };
    mac.update(msg);
    let tag = mac.finalize().into_bytes();
    let n = tag.len().min(out.len());
    out[..n].copy_from_slice(&tag[..n]);
    n
}

/// RFC 4226 HOTP value of `counter` under `secret`, reduced to `digits` digits.
pub(crate) fn hotp(secret: &[u8], algorithm: Algorithm, counter: u64, digits: u8) -> u32 {
    let mut buf = Zeroizing::new([0u8; 64]);
    let msg = counter.to_be_bytes();
    let n = match algorithm {
        Algorithm::Sha1 => mac_bytes::<Hmac<Sha1>>(secret, &msg, &mut buf),
        Algorithm::Sha256 => mac_bytes::<Hmac<Sha256>>(secret, &msg, &mut buf),
        Algorithm::Sha512 => mac_bytes::<Hmac<Sha512>>(secret, &msg, &mut buf),
    };
    // Dynamic truncation (RFC 4226 §5.3): the low nibble of the last byte
    // picks four bytes; n >= 20, so offset + 3 <= 18 < n.
    let last = buf[n.saturating_sub(1)];
    let off = usize::from(last & 0x0f);
    let bin = (u32::from(buf[off] & 0x7f) << 24)
        | (u32::from(buf[off + 1]) << 16)
        | (u32::from(buf[off + 2]) << 8)
        | u32::from(buf[off + 3]);
    bin % 10u32.pow(u32::from(digits))
}

/// Parse a code as a user typed it into its numeric value: exactly `digits`
/// digits, each an ASCII digit, an Arabic-Indic digit (U+0660–U+0669) or an
/// Eastern Arabic-Indic digit (U+06F0–U+06F9), with ASCII spaces anywhere
/// ignored. Nothing else is accepted.
///
/// # Errors
/// [`Error::TotpMalformed`] for anything else, including inputs longer than 64
/// bytes and a `digits` outside 6..=8.
pub fn parse_code(input: &str, digits: u8) -> Result<u32> {
    if input.len() > MAX_CODE_INPUT
        || !(TotpParams::MIN_DIGITS..=TotpParams::MAX_DIGITS).contains(&digits)
    {
        return Err(Error::TotpMalformed);
    }
    let mut value: u32 = 0;
    let mut count: u8 = 0;
    for c in input.chars() {
        let d = match c {
            ' ' => continue,
            '0'..='9' => u32::from(c) - u32::from('0'),
            '\u{0660}'..='\u{0669}' => u32::from(c) - 0x0660,
            '\u{06F0}'..='\u{06F9}' => u32::from(c) - 0x06F0,
            _ => return Err(Error::TotpMalformed),
        };
        count += 1;
        if count > digits {
            return Err(Error::TotpMalformed);
        }
        value = value * 10 + d;
    }
    if count != digits {
        return Err(Error::TotpMalformed);
    }
    Ok(value)
}

/// An active TOTP credential: the secret and its parameters. Obtain one from
/// [`crate::totp::TotpVerifier::confirm`] (enrolment), [`Totp::open`] (stored)
/// or [`Totp::new`] (import).
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    secret: TotpSecret,
    params: TotpParams,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &self.secret)
            .field("params", &self.params)
            .finish()
    }
}

impl Totp {
    /// A credential from a secret and its parameters.
    pub fn new(secret: TotpSecret, params: TotpParams) -> Self {
        Self { secret, params }
    }

    /// The secret.
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// The parameters.
    pub fn params(&self) -> TotpParams {
        self.params
    }

    /// The time step at `at`: whole periods since the Unix epoch.
    ///
    /// # Errors
    /// [`Error::TotpRejected`] for a time before 1970.
    pub fn step_at(&self, at: SystemTime) -> Result<u64> {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::TotpRejected)?
            .as_secs();
        Ok(secs / u64::from(self.params.period()))
    }

    /// The code for time step `step`, zero-padded to the configured digits.
    pub fn code_at_step(&self, step: u64) -> Zeroizing<String> {
        let v = self.value_at_step(step);
        Zeroizing::new(format!(
            "{v:0width$}",
            width = usize::from(self.params.digits())
        ))
    }

    /// The code valid at `at` (what an authenticator app shows).
    ///
    /// # Errors
    /// [`Error::TotpRejected`] for a time before 1970.
    pub fn code_at(&self, at: SystemTime) -> Result<Zeroizing<String>> {
        Ok(self.code_at_step(self.step_at(at)?))
    }

    pub(crate) fn value_at_step(&self, step: u64) -> u32 {
        hotp(
            self.secret.expose_secret(),
            self.params.algorithm(),
            step,
            self.params.digits(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(
                    b"12345678901234567890",
                    Algorithm::Sha1,
                    u64::try_from(i).unwrap(),
                    6
                ),
                *want
            );
        }
    }

    #[test]
    fn codes_in_every_accepted_digit_script() {
        assert_eq!(parse_code("012345", 6).unwrap(), 12345);
        assert_eq!(parse_code("٠١٢٣٤٥", 6).unwrap(), 12345);
        assert_eq!(parse_code("۰۱۲۳۴۵", 6).unwrap(), 12345);
        assert_eq!(parse_code("۰1٢ 345", 6).unwrap(), 12345);
        assert_eq!(parse_code(" 123 456 ", 6).unwrap(), 123456);
        assert_eq!(parse_code("12345678", 8).unwrap(), 12345678);
    }

    #[test]
    fn malformed_codes() {
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "123-456",
            "１２３４５６",
            "१२३४५६",
            "123\t456",
            "+12345",
            "12345\u{00A0}6",
        ] {
            assert!(
                matches!(parse_code(bad, 6), Err(Error::TotpMalformed)),
                "{bad:?}"
            );
        }
        assert!(parse_code(&" ".repeat(70), 6).is_err());
        assert!(parse_code("12345", 5).is_err());
        assert!(parse_code("123456789", 9).is_err());
    }

    #[test]
    fn codes_are_zero_padded() {
        let t = Totp::new(
            TotpSecret::from_bytes(b"12345678901234567890").unwrap(),
            TotpParams::new(Algorithm::Sha1, 8, 30).unwrap(),
        );
        // RFC 6238 Appendix B: T = 1111111109 gives 07081804.
        assert_eq!(
            t.code_at(UNIX_EPOCH + std::time::Duration::from_secs(1_111_111_109))
                .unwrap()
                .as_str(),
            "07081804"
        );
        assert!(!format!("{t:?}").contains("1234"));
    }
}
