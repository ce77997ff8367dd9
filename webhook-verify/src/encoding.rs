//! Strict decoders: only the canonical encoding of a value is accepted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Decode lowercase hex of exactly `N` bytes. Uppercase, odd length, or any
/// other character is refused (providers emit lowercase only, so a second
/// spelling of the same signature is never accepted); the `hex` crate, which
/// takes either case, decodes after the lowercase check.
pub(crate) fn hex_lower_exact<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decode canonical, padded standard base64 of exactly `N` bytes. Non-zero
/// trailing bits, missing padding and whitespace are refused.
pub(crate) fn b64_exact<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    // Reject early on length, so a huge value never allocates.
    if s.len() != N.div_ceil(3) * 4 {
        return None;
    }
    let mut out = [0u8; N];
    match STANDARD.decode_slice(s, &mut out) {
        Ok(n) if n == N => Some(out),
        _ => None,
    }
}

/// Decode canonical padded standard base64 of any length (bounded by the caller).
pub(crate) fn b64_any(s: &[u8]) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

/// Standard padded base64 of `bytes`.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_strict_lowercase() {
        assert_eq!(hex_lower_exact::<2>(b"0aff"), Some([0x0a, 0xff]));
        assert_eq!(hex_lower_exact::<2>(b"0AFF"), None);
        assert_eq!(hex_lower_exact::<2>(b"0af"), None);
        assert_eq!(hex_lower_exact::<2>(b"0afg"), None);
        assert_eq!(hex_lower(&[0x0a, 0xff]), "0aff");
    }

    #[test]
    fn base64_is_canonical() {
        assert_eq!(b64_exact::<2>(b"AAE="), Some([0, 1]));
        // Non-zero trailing bits: same bytes, different spelling.
        assert_eq!(b64_exact::<2>(b"AAF="), None);
        assert_eq!(b64_exact::<2>(b"AAE"), None);
        assert_eq!(b64_exact::<2>(b"AA E"), None);
        assert_eq!(b64_any(b"AAE="), Some(vec![0, 1]));
        assert_eq!(b64_any(b"AAE"), None);
        assert_eq!(b64(&[0, 1]), "AAE=");
    }

    /// The right number of characters is not enough: a padded value that
    /// decodes to fewer bytes than expected (one byte in four characters,
    /// 31 bytes in the 44 characters of a 32-byte MAC) is refused, never
    /// zero-filled into a signature.
    #[test]
    fn base64_of_the_right_length_but_fewer_bytes_is_refused() {
        assert_eq!(b64_exact::<2>(b"AA=="), None);
        assert_eq!(b64_exact::<1>(b"AA=="), Some([0]));
        let short = b64(&[7u8; 31]);
        assert_eq!(short.len(), 44);
        assert_eq!(b64_exact::<32>(short.as_bytes()), None);
        let full = b64(&[7u8; 32]);
        assert_eq!(full.len(), 44);
        assert_eq!(b64_exact::<32>(full.as_bytes()), Some([7u8; 32]));
        // Hex of a 32-byte MAC is exactly 64 lowercase digits.
        let hex = hex_lower(&[0xab; 32]);
        assert_eq!(hex_lower_exact::<32>(hex.as_bytes()), Some([0xab; 32]));
        assert_eq!(hex_lower_exact::<32>(&hex.as_bytes()[..62]), None);
        assert_eq!(hex_lower_exact::<32>(format!("{hex}ab").as_bytes()), None);
    }
}
