//! Digit runs: phone numbers, payment cards and Saudi national IDs.
//!
//! A run is a sequence of digit groups (any of the three digit writings)
//! joined by at most two separator characters (space, `-`, `.`, `(`, `)`),
//! optionally led by `+` or `(`. Runs are bounded ([`Digits::CAP`] digits,
//! [`MAX_GROUPS`] groups), so the work per candidate is constant. The longest
//! prefix of whole groups that validates wins, so two cards separated by a
//! space, or a card followed by a year, are still found one by one.

use crate::chars::{Digits, digit_at, word_at, word_before};
use crate::kind::Kind;
use crate::validate;

use super::{Enabled, Finding};

const SPACE: u8 = 1;
const DASH: u8 = 2;
const DOT: u8 = 4;
const PAREN: u8 = 8;
const MAX_GROUPS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Group {
    ndigits: usize,
    end: usize,
    seps: u8,
}

/// Try a digit run starting at `start` (a digit, `+` or `(` at a word boundary).
pub(crate) fn run(b: &[u8], start: usize, en: Enabled) -> Option<Finding> {
    let mut i = start;
    let mut plus = false;
    let mut lead_paren = false;
    if b.get(i) == Some(&b'+') {
        plus = true;
        i += 1;
    }
    if b.get(i) == Some(&b'(') {
        lead_paren = true;
        i += 1;
        if !plus && b.get(i) == Some(&b'+') {
            plus = true;
            i += 1;
        }
    }
    digit_at(b, i)?;
    let mut digits = Digits::new();
    let mut groups = [Group::default(); MAX_GROUPS];
    let mut ng = 0;
    let mut seps = if lead_paren { PAREN } else { 0 };
    'run: loop {
        let group_start = i;
        while let Some((d, len)) = digit_at(b, i) {
            if !digits.push(d) {
                break 'run;
            }
            i += len;
        }
        if i == group_start || word_at(b, i) {
            // A letter right after the digits: this group is part of a word.
            break;
        }
        groups[ng] = Group {
            ndigits: digits.len(),
            end: i,
            seps,
        };
        ng += 1;
        if ng == MAX_GROUPS {
            break;
        }
        let mut j = i;
        let mut s = 0;
        while j - i < 2 {
            s |= match b.get(j) {
                Some(b' ') => SPACE,
                Some(b'-') => DASH,
                Some(b'.') => DOT,
                Some(b'(' | b')') => PAREN,
                _ => break,
            };
            j += 1;
        }
        if j == i || digit_at(b, j).is_none() {
            break;
        }
        seps |= s;
        i = j;
    }
    for g in groups[..ng].iter().rev() {
        let ds = digits.truncated(g.ndigits);
        let Some(kind) = classify(ds, plus, lead_paren, g.seps, en) else {
            continue;
        };
        if dotted_before(b, start) || uuid_tail(b, start) {
            return None;
        }
        // `…6080 9.1.2.3`: a longer prefix ending in a decimal point may
        // give way to a shorter one (fuzz-found: giving up the whole run let
        // the next pass find the shorter one once `9.1.2.3` was `[IP]`).
        if dotted_after(b, g.end) {
            continue;
        }
        if kind == Kind::NationalId && after_time_key(b, start) {
            return None;
        }
        let mut end = g.end;
        // "(0501234567)": the closing parenthesis belongs to an opened one.
        if lead_paren && b.get(end) == Some(&b')') && !b[start..end].contains(&b')') {
            end += 1;
        }
        return Some(Finding { kind, start, end });
    }
    None
}

fn classify(ds: &[u8], plus: bool, lead_paren: bool, seps: u8, en: Enabled) -> Option<Kind> {
    if en.phone && phone(ds, plus, seps) {
        return Some(Kind::Phone);
    }
    if plus || lead_paren {
        return None;
    }
    if en.card && seps & !(SPACE | DASH) == 0 && validate::card(ds) {
        return Some(Kind::Card);
    }
    if en.national_id && seps == 0 && validate::saudi_national_id(ds) {
        return Some(Kind::NationalId);
    }
    None
}

/// Saudi national significant number: mobile `5XXXXXXXX` or landline
/// `1[1-7]XXXXXXX` (area codes 011-017).
fn saudi_nsn(ds: &[u8]) -> bool {
    ds.len() == 9 && (ds[0] == 5 || (ds[0] == 1 && (1..=7).contains(&ds[1])))
}

fn gcc(ds: &[u8]) -> bool {
    let cc = |c: [u8; 3]| ds.len() > 3 && ds[..3] == c;
    let rest = ds.get(3..).unwrap_or_default();
    if cc([9, 6, 6]) {
        return saudi_nsn(rest) || (rest.first() == Some(&0) && saudi_nsn(&rest[1..]));
    }
    if cc([9, 7, 1]) {
        return (8..=9).contains(&rest.len()) && rest[0] != 0;
    }
    (cc([9, 6, 5]) || cc([9, 7, 4]) || cc([9, 7, 3]) || cc([9, 6, 8]))
        && rest.len() == 8
        && rest[0] != 0
}

/// Phone-number structure: `+` then E.164 (8-15 digits, no leading zero);
/// `00` then a GCC number (or any E.164 number written with separators);
/// `966` then a Saudi number; national Saudi/UAE `05XXXXXXXX` or Saudi
/// landline `01[1-7]XXXXXXX`. A bare number of any length without one of
/// these shapes is not a phone.
fn phone(ds: &[u8], plus: bool, seps: u8) -> bool {
    let n = ds.len();
    if plus {
        return (8..=15).contains(&n) && ds[0] != 0;
    }
    if n >= 10 && ds[0] == 0 && ds[1] == 0 {
        let rest = &ds[2..];
        // Other countries after `00` only when grouped by spaces or dashes
        // (`0044 20 7946 0958`): dotted or bracketed `00...` runs are too
        // often something else.
        let grouped = seps != 0 && seps & !(SPACE | DASH) == 0;
        return gcc(rest) || (grouped && (8..=15).contains(&rest.len()) && rest[0] != 0);
    }
    if n == 10 && ds[0] == 0 {
        return saudi_nsn(&ds[1..]);
    }
    n == 12 && gcc(ds) && ds[..3] == [9, 6, 6]
}

/// `1.1234567897`: the run continues a dotted number to its left.
fn dotted_before(b: &[u8], start: usize) -> bool {
    start >= 2 && b[start - 1] == b'.' && word_before(b, start - 1)
}

/// `1234567897.5`: the candidate continues as a decimal to its right.
fn dotted_after(b: &[u8], end: usize) -> bool {
    b.get(end) == Some(&b'.') && digit_at(b, end + 1).is_some()
}

/// `123e4567-e89b-12d3-a456-426614174000`: the all-digit last group of a
/// UUID (12 digits can pass as a Maestro card).
fn uuid_tail(b: &[u8], start: usize) -> bool {
    const SHAPE: &[u8; 24] = b"hhhhhhhh-hhhh-hhhh-hhhh-";
    start >= 24
        && b[start - 24..start].iter().zip(SHAPE).all(|(&c, &s)| {
            if s == b'-' {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Whether a ten-digit value follows a time-like key (`ts=`, `"iat": `,
/// `created_at=`): Unix timestamps in seconds are ten digits starting with 1,
/// and one in ten passes the Luhn check, so they would otherwise be taken for
/// national IDs.
fn after_time_key(b: &[u8], start: usize) -> bool {
    let mut i = start;
    let mut saw_sep = false;
    while i > 0 && start - i < 4 {
        match b[i - 1] {
            b'=' | b':' => saw_sep = true,
            b' ' | b'"' | b'\'' => {}
            _ => break,
        }
        i -= 1;
    }
    if !saw_sep {
        return false;
    }
    let end = i;
    while i > 0 && end - i < 32 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        i -= 1;
    }
    let key = &b[i..end];
    const SUFFIXES: [&[u8]; 12] = [
        b"ts",
        b"time",
        b"timestamp",
        b"epoch",
        b"iat",
        b"exp",
        b"nbf",
        b"_at",
        b"date",
        b"since",
        b"until",
        b"expires",
    ];
    SUFFIXES
        .iter()
        .any(|s| key.len() >= s.len() && key[key.len() - s.len()..].eq_ignore_ascii_case(s))
}
