//! E-mail addresses, found from their `@` (or a percent-encoded `%40` inside a
//! URL or query string) outwards.
//!
//! The local part is the run of `[A-Za-z0-9._%+-]` and non-ASCII bytes before
//! the `@` (at most [`MAX_LOCAL`] bytes are looked at; `=`, `&`, `?`, `/` and
//! `:` end it, so `?email=a@b.com` and `mailto:a@b.com` find `a@b.com`). The
//! domain is two or more labels of `[A-Za-z0-9-]` (1-63 bytes, no leading or
//! trailing `-`) separated by `.` or a percent-encoded `%2E`, at most 255 bytes, ending in an alphabetic top-level label of
//! two or more letters or an `xn--` label. Not caught: IDN domains written in
//! Unicode, quoted local parts, IP-literal domains.

use crate::kind::Kind;

use super::Finding;

/// Bytes of local part examined before the `@`.
pub(crate) const MAX_LOCAL: usize = 256;
const MAX_DOMAIN: usize = 255;

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-') || c >= 0x80
}

/// An address whose `@` (or `%40`) is at `at` and whose domain starts at `dom`.
pub(crate) fn at(b: &[u8], at: usize, dom: usize) -> Option<Finding> {
    let mut s = at;
    let lim = at.saturating_sub(MAX_LOCAL);
    while s > lim && is_local(b[s - 1]) {
        s -= 1;
    }
    while s < at && b[s] == b'.' {
        s += 1;
    }
    if s == at {
        return None;
    }
    let end = domain(b, dom)?;
    Some(Finding {
        kind: Kind::Email,
        start: s,
        end,
    })
}

/// The end of a valid domain starting at `i`.
fn domain(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut labels = 0;
    let mut last: (usize, usize);
    loop {
        let ls = i;
        while i < b.len()
            && i - start < MAX_DOMAIN
            && (b[i].is_ascii_alphanumeric() || b[i] == b'-')
        {
            i += 1;
        }
        let label = &b[ls..i];
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        // `icon@2x.png`: an asset scale suffix, not a mail domain.
        if labels == 0
            && label.len() >= 2
            && label[label.len() - 1] == b'x'
            && label[..label.len() - 1].iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        labels += 1;
        last = (ls, i);
        // A dot, or a percent-encoded one (`%2E` in a URL path or query,
        // where a client may encode every dot of the address).
        let sep = match b.get(i) {
            Some(b'.') => 1,
            Some(b'%')
                if b.get(i + 1) == Some(&b'2') && matches!(b.get(i + 2), Some(b'E' | b'e')) =>
            {
                3
            }
            _ => 0,
        };
        if sep > 0
            && i + sep - start < MAX_DOMAIN
            && b.get(i + sep).is_some_and(u8::is_ascii_alphanumeric)
        {
            i += sep;
            continue;
        }
        break;
    }
    let tld = &b[last.0..last.1];
    let tld_ok = (tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
        || (tld.len() > 4 && tld[..4].eq_ignore_ascii_case(b"xn--"));
    (labels >= 2 && tld_ok && b.get(i).is_none_or(|&c| c < 0x80)).then_some(i)
}
