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

/// Every built-in finding in `b`, in order, non-overlapping, appended to `out`.
pub(crate) fn scan(b: &[u8], en: Enabled, out: &mut Vec<Finding>) {
    let n = b.len();
    let mut i = 0;
    let mut jwt_floor = 0;
    // The end of the last finding counts as a word boundary: its bytes will be
    // a placeholder ending in `]`, and a second pass must see the same
    // boundaries as the first (`Bearer eyJ...8::ffff:1.2.3.4`: the `::` after
    // the token starts an address only once the token is `[TOKEN]`).
    let mut last_end = usize::MAX;
    let boundary = |i: usize, last_end: usize| i == last_end || !word_before(b, i);
    while i < n {
        let c = b[i];
        if is_word_byte(c) || ((c == 0xD9 || c == 0xDB) && arabic_digit_at(b, i)) {
            let we = word_end(b, i);
            if boundary(i, last_end)
                && let Some(f) = word(b, i, we, en, &mut jwt_floor)
            {
                push(out, f);
                last_end = out.last().map_or(f.end, |l| l.end);
                i = f.end.max(i + 1);
                continue;
            }
            i = we;
            continue;
        }
        let found = match c {
            b'@' if en.email => email::at(b, i, i + 1),
            b'%' if en.email && b[i + 1..].starts_with(b"40") => email::at(b, i, i + 3),
            b'+' | b'(' if en.numbers() && boundary(i, last_end) => number::run(b, i, en),
            b':' if en.ip && b[i + 1..].starts_with(b":") && boundary(i, last_end) => ip::v6(b, i),
            _ => None,
        };
        if let Some(f) = found {
            push(out, f);
            last_end = out.last().map_or(f.end, |l| l.end);
            i = f.end.max(i + 1);
        } else {
            i += 1;
        }
    }
}
