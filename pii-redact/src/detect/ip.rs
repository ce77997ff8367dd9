//! IPv4 and IPv6 addresses.
//!
//! IPv4: four decimal octets (0-255, at most three digits each, any digit
//! writing) joined by dots, not part of a longer dotted number
//! (`1.2.3.4.5`, `v1.2.3.4`) and not the version of a product token: a quad
//! right after `Product/` is a version (`Chrome/120.0.0.0`, `Version/17.1.0.2`,
//! the RFC 9110 `product/version` form of User-Agent headers), so it is kept.
//! A product token starts with a letter at the start of a field (after
//! whitespace, `(`, `;`, `,`, a quote, `=` or `[`). A URL host
//! (`http://10.0.0.1/`) or a path segment (`/hosts/10.0.0.1`) is redacted.
//!
//! IPv6: RFC 4291 text form (eight groups, or fewer with one `::`, an embedded
//! IPv4 tail allowed). A compressed form with fewer than three groups and no
//! decimal digit (`a::b`, `cafe::babe`) is taken for a code path, not an
//! address; `::` alone is not an address. Times (`10:30:00`) and MAC addresses
//! (six groups) do not parse.

use crate::chars::{digit_at, word_at, word_before};
use crate::kind::Kind;

use super::Finding;

/// The end of an IPv4 dotted quad starting at `i`, without context checks.
fn quad(b: &[u8], mut i: usize) -> Option<usize> {
    for k in 0..4 {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let mut v = 0u32;
        let mut n = 0;
        while let Some((d, len)) = digit_at(b, i) {
            n += 1;
            if n > 3 {
                return None;
            }
            v = v * 10 + u32::from(d);
            i += len;
        }
        if n == 0 || v > 255 {
            return None;
        }
    }
    Some(i)
}

/// An IPv4 address starting at `start` (a digit at a word boundary).
pub(crate) fn v4(b: &[u8], start: usize) -> Option<Finding> {
    let end = quad(b, start)?;
    if word_at(b, end)
        || (b.get(end) == Some(&b'.') && digit_at(b, end + 1).is_some())
        || after_colon_run(b, start)
    {
        return None;
    }
    if start >= 1 {
        let p = b[start - 1];
        if (p == b'.' && word_before(b, start - 1)) || (p == b'/' && product_before(b, start - 1)) {
            return None;
        }
    }
    Some(Finding {
        kind: Kind::IpAddress,
        start,
        end,
    })
}

/// Whether a product token (`Chrome` in `Chrome/120.0.0.0`) ends at `slash`:
/// letters first, then `[A-Za-z0-9._-]`, itself at the start of a field
/// (start of input, whitespace, `(`, `;`, `,`, `"`, `'`, `=`, `[`). A path
/// segment (`/hosts/10.0.0.1`) is preceded by `/` and is not a product.
fn product_before(b: &[u8], slash: usize) -> bool {
    let mut t = slash;
    while t > 0
        && slash - t < 64
        && (b[t - 1].is_ascii_alphanumeric() || matches!(b[t - 1], b'.' | b'_' | b'-'))
    {
        t -= 1;
    }
    t < slash
        && b[t].is_ascii_alphabetic()
        && (t == 0
            || matches!(
                b[t - 1],
                b' ' | b'\t' | b'(' | b';' | b',' | b'"' | b'\'' | b'=' | b'['
            ))
}

/// Whether `start` follows `:` that itself follows a hex digit or `:`: the
/// tail of a longer colon run (`fe80::1::`, `80::ffff:1.2.3.4` that failed as
/// a whole). Matching the tail alone would leave an address-shaped prefix
/// before the placeholder, detected on the next pass: not idempotent.
fn after_colon_run(b: &[u8], start: usize) -> bool {
    start >= 2 && b[start - 1] == b':' && (b[start - 2] == b':' || b[start - 2].is_ascii_hexdigit())
}

/// An IPv6 address starting at `start` (a hex digit at a word boundary, or `::`).
pub(crate) fn v6(b: &[u8], start: usize) -> Option<Finding> {
    // Part of a dotted number (`1234567897.1::`), like IPv4 and digit runs.
    let dotted_before = start >= 2 && b[start - 1] == b'.' && word_before(b, start - 1);
    if after_colon_run(b, start) || dotted_before {
        return None;
    }
    let mut i = start;
    let mut groups = 0;
    let mut compressed = false;
    let mut decimal = false;
    if b[i..].starts_with(b"::") {
        compressed = true;
        i += 2;
    }
    loop {
        let gs = i;
        while i < b.len() && i - gs < 5 && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let gl = i - gs;
        if gl == 0 {
            // Only valid right after `::` (a trailing `fe80::`).
            if !compressed || !b[..i].ends_with(b"::") {
                return None;
            }
            break;
        }
        if gl > 4 {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i = quad(b, gs)?;
            groups += 2;
            decimal = true;
            break;
        }
        decimal |= b[gs..i].iter().any(u8::is_ascii_digit);
        groups += 1;
        if groups > 8 {
            return None;
        }
        if b[i..].starts_with(b"::") {
            if compressed {
                return None;
            }
            compressed = true;
            i += 2;
            continue;
        }
        if b.get(i) == Some(&b':') && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) {
            i += 1;
            continue;
        }
        break;
    }
    let shape = if compressed { groups <= 7 } else { groups == 8 };
    let plausible = groups >= 3 || (compressed && decimal && groups >= 1);
    // Nor the head of one (`11::` in `11:::::11`), for the same reason.
    let run_follows = b.get(i) == Some(&b':')
        && b.get(i + 1)
            .is_some_and(|&c| c == b':' || c.is_ascii_hexdigit());
    if !shape || !plausible || run_follows || word_at(b, i) {
        return None;
    }
    Some(Finding {
        kind: Kind::IpAddress,
        start,
        end: i,
    })
}
