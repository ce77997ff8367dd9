//! IBANs (ISO 13616): country code, two check digits and the BBAN, compact or
//! grouped in fours by single spaces, in any case and any digit writing.
//!
//! The match stops at exactly the country's registered length, so a word that
//! follows (`SA03 8000 0000 6080 1016 7519 please`) is never swallowed, and an
//! IBAN glued to a following letter or digit is not one.

use crate::chars::{digit_at, word_at};
use crate::kind::Kind;
use crate::validate;

use super::Finding;

/// Longest IBAN in the registry (Saint Lucia, 32; Russia, 33).
const MAX_LEN: usize = 34;

/// An IBAN starting at `start` (an ASCII letter at a word boundary).
pub(crate) fn at(b: &[u8], start: usize) -> Option<Finding> {
    let c0 = b.get(start)?.to_ascii_uppercase();
    let c1 = b.get(start + 1)?.to_ascii_uppercase();
    let want = validate::iban_length([c0, c1])?;
    let mut compact = [0u8; MAX_LEN];
    compact[0] = c0;
    compact[1] = c1;
    let mut n = 2;
    let mut i = start + 2;
    while n < want {
        if n % 4 == 0 && b.get(i) == Some(&b' ') && word_at(b, i + 1) {
            i += 1;
        }
        if let Some((d, len)) = digit_at(b, i) {
            compact[n] = b'0' + d;
            i += len;
        } else if n >= 4 && b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            compact[n] = b[i].to_ascii_uppercase();
            i += 1;
        } else {
            return None;
        }
        n += 1;
    }
    if word_at(b, i) || !validate::iban(&compact[..n]) {
        return None;
    }
    Some(Finding {
        kind: Kind::Iban,
        start,
        end: i,
    })
}
