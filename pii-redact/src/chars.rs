//! Byte classes and digit decoding shared by every detector.
//!
//! The scanner works on bytes, not `char`s: every detector's grammar is ASCII
//! except digits, which may also be written as Arabic-Indic (`٠`-`٩`, U+0660 to
//! U+0669, UTF-8 `D9 A0`..`D9 A9`) or Eastern Arabic-Indic (`۰`-`۹`, U+06F0 to
//! U+06F9, UTF-8 `DB B0`..`DB B9`). `char::to_digit` knows neither, so
//! [`digit_at`] decodes all three writings in one place.

/// The value of the digit starting at `i` and its length in bytes (1 for ASCII,
/// 2 for the Arabic forms), or `None`.
#[inline]
pub(crate) fn digit_at(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = *b.get(i)?;
    if c.is_ascii_digit() {
        return Some((c - b'0', 1));
    }
    let next = *b.get(i + 1)?;
    match (c, next) {
        (0xD9, 0xA0..=0xA9) => Some((next - 0xA0, 2)),
        (0xDB, 0xB0..=0xB9) => Some((next - 0xB0, 2)),
        _ => None,
    }
}

/// Whether an Arabic-form digit starts at `i`.
#[inline]
pub(crate) fn arabic_digit_at(b: &[u8], i: usize) -> bool {
    matches!(
        (b.get(i), b.get(i + 1)),
        (Some(0xD9), Some(0xA0..=0xA9)) | (Some(0xDB), Some(0xB0..=0xB9))
    )
}

/// Word characters for boundary purposes: ASCII letters and digits and the
/// Arabic digit forms. Everything else (punctuation, whitespace, other
/// non-ASCII text, invalid UTF-8) is a boundary.
#[inline]
pub(crate) fn is_word_byte(c: u8) -> bool {
    WORD[usize::from(c)]
}

static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)] // i < 256
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric();
        i += 1;
    }
    t
};

/// Whether a word character ends just before `i` (an ASCII letter or digit,
/// or an Arabic-form digit).
#[inline]
pub(crate) fn word_before(b: &[u8], i: usize) -> bool {
    if i == 0 {
        return false;
    }
    if is_word_byte(b[i - 1]) {
        return true;
    }
    i >= 2 && arabic_digit_at(b, i - 2)
}

/// Whether a word character starts at `i`.
#[inline]
pub(crate) fn word_at(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(&c) if is_word_byte(c) => true,
        Some(_) => arabic_digit_at(b, i),
        None => false,
    }
}

/// The end of the word (ASCII letters and digits, Arabic digits) starting at `i`.
#[inline]
pub(crate) fn word_end(b: &[u8], mut i: usize) -> usize {
    loop {
        match b.get(i) {
            Some(&c) if is_word_byte(c) => i += 1,
            Some(0xD9 | 0xDB) if arabic_digit_at(b, i) => i += 2,
            _ => return i,
        }
    }
}

/// A fixed-capacity digit buffer: detectors collect at most this many digits
/// before giving up, which bounds their work per candidate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Digits {
    buf: [u8; 24],
    len: usize,
}

impl Digits {
    pub(crate) const CAP: usize = 24;

    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; 24],
            len: 0,
        }
    }

    /// Append a digit value (0-9); `false` when full.
    pub(crate) fn push(&mut self, d: u8) -> bool {
        if self.len == Self::CAP {
            return false;
        }
        self.buf[self.len] = d;
        self.len += 1;
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn truncated(&self, len: usize) -> &[u8] {
        &self.buf[..len.min(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_digit_writings_decode_to_the_same_values() {
        for (v, (ascii, indic, eastern)) in ('0'..='9')
            .zip('\u{660}'..='\u{669}')
            .zip('\u{6F0}'..='\u{6F9}')
            .map(|((a, b), c)| (a, b, c))
            .enumerate()
        {
            for c in [ascii, indic, eastern] {
                let s = c.to_string();
                let want = u8::try_from(v).unwrap();
                assert_eq!(digit_at(s.as_bytes(), 0), Some((want, s.len())), "{c}");
            }
        }
        // Neighbouring code points are not digits.
        for c in ['\u{65F}', '\u{66A}', '\u{6EF}', '\u{6FA}', '/', ':'] {
            assert_eq!(digit_at(c.to_string().as_bytes(), 0), None, "{c}");
        }
    }

    #[test]
    fn word_end_spans_mixed_digit_writings() {
        let s = "ab١٢۳4 x".as_bytes();
        assert_eq!(word_end(s, 0), s.len() - 2);
        assert!(word_before(s, s.len() - 2));
        assert!(!word_before(s, s.len() - 1));
    }
}
