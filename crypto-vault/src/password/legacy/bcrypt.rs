//! bcrypt (`$2a$`, `$2b$`, `$2y$`): parsing and the raw EksBlowfish run.
//!
//! Layout: `$2b$` + two-digit cost + `$` + 22 characters of salt (16 bytes) +
//! 31 characters of hash (23 bytes), in bcrypt's base64 alphabet
//! (`./A-Za-z0-9`). `$2a$`, `$2b$` and `$2y$` compute the same function for
//! passwords of at most 72 bytes (OpenBSD's `$2a$` length wrap-around only
//! bites at 256 bytes or more, which are refused here anyway).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::{Zeroize as _, Zeroizing};

use super::{Kdf, LegacyPolicy, Settings};
use crate::error::{Error, Result};

/// bcrypt's base64. Trailing bits of the last character are ignored, as
/// OpenBSD's and crypt_blowfish's decoders do.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// The most password bytes bcrypt reads.
pub(super) const MAX_BCRYPT_PASSWORD: usize = 72;

fn rejected(why: &'static str) -> Error {
    Error::PasswordHashRejected(why)
}

/// `$2?$NN$<22 salt>` (29 characters) into settings.
fn settings_prefix(s: &str) -> Result<Settings> {
    let b = s.as_bytes();
    if b.len() != 29 || b[0] != b'$' || b[1] != b'2' || b[3] != b'$' || b[6] != b'$' {
        return Err(rejected("malformed bcrypt hash"));
    }
    if !matches!(b[2], b'a' | b'b' | b'y') {
        return Err(rejected("unsupported bcrypt variant"));
    }
    let cost = super::decimal(s.get(4..6).ok_or(rejected("malformed bcrypt hash"))?)?;
    if !(LegacyPolicy::MIN_BCRYPT_COST..=31).contains(&cost) {
        return Err(rejected("bcrypt cost out of range"));
    }
    let salt = B64
        .decode(s.get(7..29).ok_or(rejected("malformed bcrypt hash"))?)
        .map_err(|_| rejected("malformed bcrypt salt"))?;
    if salt.len() != 16 {
        return Err(rejected("malformed bcrypt salt"));
    }
    Ok(Settings {
        kdf: Kdf::Bcrypt { cost },
        salt,
        out_len: 23,
    })
}

/// A full 60-character bcrypt hash.
pub(super) fn parse(s: &str) -> Result<(Settings, Vec<u8>)> {
    if s.len() != 60 || !s.is_ascii() {
        return Err(rejected("malformed bcrypt hash"));
    }
    let settings = settings_prefix(&s[..29])?;
    let digest = B64
        .decode(&s[29..])
        .map_err(|_| rejected("malformed bcrypt hash"))?;
    if digest.len() != 23 {
        return Err(rejected("malformed bcrypt hash"));
    }
    Ok((settings, digest))
}

/// A wrapped hash's inner settings: `$2b$NN$<salt>`.
pub(super) fn parse_settings(s: &str) -> Result<Settings> {
    if !s.is_ascii() {
        return Err(rejected("malformed bcrypt settings"));
    }
    settings_prefix(s)
}

/// Normalised settings text (no leading `$`): `2b$NN$<salt>`.
pub(super) fn settings_text(cost: u32, salt: &[u8]) -> String {
    format!("2b${cost:02}${}", B64.encode(salt))
}

/// bcrypt's 23-byte digest of `password`, or `None` (after the same work on a
/// stand-in) when the password is over 72 bytes or holds a NUL: bcrypt would
/// read only a prefix of it, so it must never match.
pub(super) fn derive(cost: u32, salt: &[u8], password: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let usable = password.len() <= MAX_BCRYPT_PASSWORD && !password.contains(&0);
    // The key is the password and its terminating NUL, cut at 72 bytes (so a
    // 72-byte password is read whole, without its NUL), as OpenBSD does.
    let mut key = Zeroizing::new(Vec::with_capacity(MAX_BCRYPT_PASSWORD + 1));
    key.extend_from_slice(if usable { password } else { b"" });
    key.push(0);
    key.truncate(MAX_BCRYPT_PASSWORD);
    let mut salt16 = [0u8; 16];
    if salt.len() == 16 {
        salt16.copy_from_slice(salt);
    }
    // `cost` is 4..=31 (checked when parsed or configured) and the key holds
    // 1..=72 bytes: the crate's preconditions.
    let mut out = ::bcrypt::bcrypt(cost.min(31), salt16, &key);
    let digest = Zeroizing::new(out[..23].to_vec());
    out.zeroize();
    usable.then_some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    // OpenBSD regress (bcrypt.c) / jBCrypt vector: "" at cost 6.
    const EMPTY: &str = "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.";

    #[test]
    fn parses_and_round_trips_settings() {
        let (s, d) = parse(EMPTY).unwrap();
        assert_eq!(s.kdf, Kdf::Bcrypt { cost: 6 });
        assert_eq!(d.len(), 23);
        assert_eq!(settings_text(6, &s.salt), format!("2b{}", &EMPTY[3..29]));
        let back = parse_settings(&format!("${}", settings_text(6, &s.salt))).unwrap();
        assert_eq!(back.salt, s.salt);
        assert_eq!(derive(6, &s.salt, b"").unwrap().as_slice(), d.as_slice());
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            &EMPTY[..59],
            "$2a$03$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$2a$32$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$2a$+6$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$2c$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$2a$06$DCq7YPn5Rq63x1Lad4cll!TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1é",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_or_nul_passwords_never_derive() {
        let salt = [7u8; 16];
        let p72 = [b'a'; 72];
        let p73 = [b'a'; 73];
        assert!(derive(4, &salt, &p72).is_some());
        assert!(derive(4, &salt, &p73).is_none());
        assert!(derive(4, &salt, b"ab\0cd").is_none());
        // Without the rule, 73 bytes would be the 72-byte prefix's digest.
        let mut key = p72.to_vec();
        key.truncate(72);
        assert_eq!(
            ::bcrypt::bcrypt(4, salt, &key)[..23],
            derive(4, &salt, &p72).unwrap()[..]
        );
    }

    /// Each fixed byte of the 29-character settings (`$`, `2`, `$`, `$`) and
    /// the lengths (29 and 60) are checked on their own; a non-ASCII
    /// character is refused before any slicing.
    #[test]
    fn every_fixed_byte_and_length_is_checked() {
        let good = &EMPTY[..29];
        assert!(settings_prefix(good).is_ok());
        for (at, byte) in [(0, 'x'), (1, '3'), (3, '#'), (6, '#')] {
            let mut bad: Vec<char> = good.chars().collect();
            bad[at] = byte;
            let bad: String = bad.into_iter().collect();
            assert!(
                matches!(settings_prefix(&bad), Err(Error::PasswordHashRejected(_))),
                "{bad}"
            );
        }
        assert!(settings_prefix(&good[..28]).is_err());
        assert!(settings_prefix(&format!("{good}.")).is_err());
        // 60 bytes with a two-byte character across byte 29.
        let straddle = format!("{}é{}", &EMPTY[..28], &EMPTY[30..]);
        assert_eq!(straddle.len(), 60);
        assert!(matches!(
            parse(&straddle),
            Err(Error::PasswordHashRejected("malformed bcrypt hash"))
        ));
    }
}
