//! PBKDF2-HMAC-SHA256: PHC strings (`$pbkdf2-sha256$i=<n>[,l=<len>]$salt$hash`)
//! and passlib's (`$pbkdf2-sha256$<n>$salt$hash`, adapted base64).

use zeroize::Zeroizing;

use super::{Kdf, Settings, check_lengths, decimal, phc_b64, phc_b64_encode};
use crate::error::{Error, Result};

fn rejected(why: &'static str) -> Error {
    Error::PasswordHashRejected(why)
}

/// `i=<n>[,l=<len>]` or passlib's bare `<n>`.
fn parse_params(s: &str) -> Result<(u32, Option<u32>)> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((decimal(s)?, None));
    }
    let (mut i, mut l) = (None, None);
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or(rejected("malformed PBKDF2 params"))?;
        let slot = match k {
            "i" => &mut i,
            "l" => &mut l,
            _ => return Err(rejected("unknown PBKDF2 param")),
        };
        if slot.replace(decimal(v)?).is_some() {
            return Err(rejected("repeated PBKDF2 param"));
        }
    }
    let i = i.ok_or(rejected("missing PBKDF2 iterations"))?;
    Ok((i, l))
}

fn iterations(i: u32) -> Result<u32> {
    if i == 0 {
        return Err(rejected("PBKDF2 iterations out of range"));
    }
    Ok(i)
}

/// A full PHC (or passlib) string.
pub(super) fn parse_phc(s: &str) -> Result<(Settings, Vec<u8>)> {
    let mut parts = s.split('$');
    let (Some(""), Some("pbkdf2-sha256"), Some(params), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(rejected("malformed PBKDF2 PHC string"));
    };
    let (i, l) = parse_params(params)?;
    let salt = phc_b64(salt)?;
    let digest = phc_b64(hash)?;
    if l.is_some_and(|l| usize::try_from(l).ok() != Some(digest.len())) {
        return Err(rejected("PBKDF2 length param disagrees with the hash"));
    }
    check_lengths(&salt, digest.len())?;
    let out_len = digest.len();
    Ok((
        Settings {
            kdf: Kdf::Pbkdf2 {
                iterations: iterations(i)?,
            },
            salt,
            out_len,
        },
        digest,
    ))
}

/// A wrapped hash's inner settings: `$pbkdf2-sha256$i=<n>,l=<len>$<salt>`.
pub(super) fn parse_settings(s: &str) -> Result<Settings> {
    let mut parts = s.split('$');
    let (Some(""), Some("pbkdf2-sha256"), Some(params), Some(salt), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(rejected("malformed PBKDF2 settings"));
    };
    let (i, l) = parse_params(params)?;
    let out_len = l
        .and_then(|l| usize::try_from(l).ok())
        .ok_or(rejected("PBKDF2 settings need l="))?;
    let salt = phc_b64(salt)?;
    check_lengths(&salt, out_len)?;
    Ok(Settings {
        kdf: Kdf::Pbkdf2 {
            iterations: iterations(i)?,
        },
        salt,
        out_len,
    })
}

/// Normalised settings text (no leading `$`).
pub(super) fn settings_text(iterations: u32, salt: &[u8], out_len: usize) -> String {
    format!(
        "pbkdf2-sha256$i={iterations},l={out_len}${}",
        phc_b64_encode(salt)
    )
}

/// PBKDF2-HMAC-SHA256 of `password` (`iterations` >= 1, checked when parsed).
pub(super) fn derive(
    iterations: u32,
    salt: &[u8],
    password: &[u8],
    out_len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; out_len]);
    ::pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations.max(1), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_forms() {
        assert_eq!(parse_params("29000").unwrap(), (29000, None));
        assert_eq!(parse_params("i=600000,l=32").unwrap(), (600_000, Some(32)));
        assert_eq!(parse_params("l=32,i=1").unwrap(), (1, Some(32)));
        for bad in ["", "i=", "i=1,i=2", "x=1", "l=32", "i=1,", "i=0x10"] {
            assert!(parse_params(bad).is_err(), "{bad:?}");
        }
        assert!(parse_phc("$pbkdf2-sha256$0$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA").is_err());
    }
}
