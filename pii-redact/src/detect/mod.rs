//! The single pass over the input and the detectors it calls.
//!
//! [`scan`] walks the bytes once. Bytes that cannot start anything (most
//! punctuation and whitespace) cost one table lookup; a word (a run of ASCII
//! letters and digits or Arabic digits) is examined once at its start by the
//! detectors that can begin with its first byte, each of which rejects on its
//! first few bytes, and then skipped whole. `@`, `%40`, `+`, `(` and `::` are
//! the only non-word bytes that start a candidate. Validators (Luhn, mod-97,
//! country lengths, octet ranges) run only on these candidates, and every
//! detector looks ahead a bounded distance or consumes what it looks at, so
//! time is linear in the input.

pub(crate) mod email;
pub(crate) mod iban;
pub(crate) mod ip;
pub(crate) mod number;
pub(crate) mod secret;

use crate::chars::{arabic_digit_at, digit_at, is_word_byte, word_before, word_end};
use crate::kind::Kind;

/// One detected value: its kind and byte span in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// Which built-in detectors run.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::struct_excessive_bools)] // one switch per detector, read in the hot loop
pub(crate) struct Enabled {
    pub(crate) email: bool,
    pub(crate) phone: bool,
    pub(crate) iban: bool,
    pub(crate) card: bool,
    pub(crate) national_id: bool,
    pub(crate) ip: bool,
    pub(crate) jwt: bool,
    pub(crate) bearer: bool,
    pub(crate) api_key: bool,
    pub(crate) secret: bool,
}

impl Enabled {
    pub(crate) fn from_fn(f: impl Fn(Kind) -> bool) -> Self {
        Self {
            email: f(Kind::Email),
            phone: f(Kind::Phone),
            iban: f(Kind::Iban),
            card: f(Kind::Card),
            national_id: f(Kind::NationalId),
            ip: f(Kind::IpAddress),
            jwt: f(Kind::Jwt),
            bearer: f(Kind::BearerToken),
            api_key: f(Kind::ApiKey),
            secret: f(Kind::Secret),
        }
    }

    fn numbers(self) -> bool {
        self.phone || self.card || self.national_id
    }
}

/// Add a finding, merging it with earlier ones it overlaps (an address whose
/// local part was already taken for a number becomes one e-mail finding).
pub(crate) fn push(out: &mut Vec<Finding>, mut f: Finding) {
    while let Some(last) = out.last() {
        if last.end <= f.start {
            break;
        }
        f.start = f.start.min(last.start);
        f.end = f.end.max(last.end);
        out.pop();
    }
    out.push(f);
}

/// Detectors for a word starting at `i` (at a word boundary) and ending at `we`.
fn word(b: &[u8], i: usize, we: usize, en: Enabled, jwt_floor: &mut usize) -> Option<Finding> {
    let c = b[i];
    let next = b.get(we).copied();
    if c.is_ascii_digit() || c >= 0x80 {
        if en.ip {
            if next == Some(b'.')
                && we - i <= 6
                && let Some(f) = ip::v4(b, i)
            {
                return Some(f);
            }
            if next == Some(b':')
                && we - i <= 4
                && b[i..we].iter().all(u8::is_ascii_hexdigit)
                && let Some(f) = ip::v6(b, i)
            {
                return Some(f);
            }
        }
        if en.numbers() {
            return number::run(b, i, en);
        }
        return None;
    }
    // An ASCII letter.
    if en.secret
        && let Some(f) = secret::key_value(b, i, we)
    {
        return Some(f);
    }
    if en.iban
        && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic)
        && digit_at(b, i + 2).is_some()
        && let Some(f) = iban::at(b, i)
    {
        return Some(f);
    }
    if en.jwt
        && c == b'e'
        && let Some(f) = secret::jwt(b, i, jwt_floor)
    {
        return Some(f);
    }
    if en.api_key
        && let Some(f) = secret::api_key(b, i)
    {
        return Some(f);
    }
    if en.bearer
        && matches!(c, b'b' | b'B')
        && let Some(f) = secret::bearer(b, i, we)
    {
        return Some(f);
    }
    if en.ip && next == Some(b':') && we - i <= 4 && b[i..we].iter().all(u8::is_ascii_hexdigit) {
        return ip::v6(b, i);
    }
    None
}

/// An absolute finding made relative to `base` (its start may lie before
/// `base`; adding `base` back restores it).
fn rebase(f: Finding, base: usize) -> Finding {
    Finding {
        kind: f.kind,
        start: f.start.wrapping_sub(base),
        end: f.end - base,
    }
}

/// Every built-in finding in `b`, in order, non-overlapping, appended to `out`.
pub(crate) fn scan(b: &[u8], en: Enabled, out: &mut Vec<Finding>) {
    let n = b.len();
    let mut i = 0;
    let mut jwt_floor: usize = 0;
    // Detectors see the input from the end of the last finding on, as if it
    // started there. A second pass sees that finding as a placeholder ending in
    // `]`, a boundary that is no word, hex, colon, dot or local-part byte, so
    // both passes judge the following text by the same context (`Bearer
    // eyJ...8::ffff:1.2.3.4`: the `::` starts an address in both).
    let mut base: usize = 0;
    while i < n {
        let v = &b[base..];
        let at = i - base;
        let c = b[i];
        let found = if is_word_byte(c) || ((c == 0xD9 || c == 0xDB) && arabic_digit_at(b, i)) {
            let we = word_end(b, i);
            let mut floor = jwt_floor.saturating_sub(base);
            let f = if word_before(v, at) {
                None
            } else {
                word(v, at, we - base, en, &mut floor)
            };
            jwt_floor = floor + base;
            if f.is_none() {
                i = we;
                continue;
            }
            f
        } else {
            match c {
                // An address may reach back into the last finding: the two
                // merge into one `[EMAIL]`, which a second pass leaves alone.
                b'@' if en.email => email::at(b, i, i + 1).map(|f| rebase(f, base)),
                b'%' if en.email && b[i + 1..].starts_with(b"40") => {
                    email::at(b, i, i + 3).map(|f| rebase(f, base))
                }
                b'+' | b'(' if en.numbers() && !word_before(v, at) => number::run(v, at, en),
                b':' if en.ip && b[i + 1..].starts_with(b":") && !word_before(v, at) => {
                    ip::v6(v, at)
                }
                _ => None,
            }
        };
        if let Some(mut f) = found {
            f.start = f.start.wrapping_add(base);
            f.end += base;
            push(out, f);
            i = f.end.max(i + 1);
            base = out.last().map_or(f.end, |l| l.end).min(i);
        } else {
            i += 1;
        }
    }
}
