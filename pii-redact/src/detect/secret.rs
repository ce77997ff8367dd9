//! Secrets: JWTs, API keys in well-known formats, the credential after
//! `Bearer` / `Basic`, and values after sensitive key names in text.

use crate::kind::Kind;

use super::Finding;

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn run_end(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && f(b[i]) {
        i += 1;
    }
    i
}

/// A JWT (JWS compact, or JWE with five segments): `eyJ` header of at least
/// ten characters, then dot-separated base64url segments (the last may be
/// empty for an unsecured token).
///
/// On failure, `floor` is raised to the end of the header run: every `eyJ`
/// inside that run shares its end and the segments after it, so it would fail
/// the same way. Without this, `eyJa-eyJa-eyJa-…` costs quadratic time.
pub(crate) fn jwt(b: &[u8], start: usize, floor: &mut usize) -> Option<Finding> {
    if start < *floor || !b[start..].starts_with(b"eyJ") {
        return None;
    }
    let mut i = run_end(b, start, is_b64url);
    *floor = i;
    if i - start < 10 || b.get(i) != Some(&b'.') {
        return None;
    }
    let p = i + 1;
    i = run_end(b, p, is_b64url);
    if i - p < 2 || b.get(i) != Some(&b'.') {
        return None;
    }
    i = run_end(b, i + 1, is_b64url);
    for _ in 0..2 {
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|&c| is_b64url(c)) {
            i = run_end(b, i + 1, is_b64url);
        }
    }
    Some(Finding {
        kind: Kind::Jwt,
        start,
        end: i,
    })
}

/// Known API-key formats: prefix, minimum body length, body alphabet.
/// Sources: each provider's documented token format (GitHub, Stripe, Slack,
/// AWS, Google, OpenAI/Anthropic, GitLab, npm, PyPI, Shopify, SendGrid) and
/// Hisn's own `hisn_<kind>_<id>_<secret>` keys.
type KeyFormat = (&'static [u8], usize, fn(u8) -> bool);

const KEYS: [KeyFormat; 27] = [
    // Grouped by first byte: `KEY_RANGE` indexes these runs.
    (b"AKIA", 16, upper_digit),
    (b"ASIA", 16, upper_digit),
    (b"AIza", 35, tok),
    (b"SG.", 40, sendgrid),
    (b"ghp_", 30, alnum),
    (b"gho_", 30, alnum),
    (b"ghu_", 30, alnum),
    (b"ghs_", 30, alnum),
    (b"ghr_", 30, alnum),
    (b"github_pat_", 22, tok),
    (b"glpat-", 20, tok),
    (b"hisn_", 20, tok),
    (b"npm_", 36, alnum),
    (b"pypi-", 50, tok),
    (b"rk_live_", 16, alnum),
    (b"rk_test_", 16, alnum),
    (b"sk_live_", 16, alnum),
    (b"sk_test_", 16, alnum),
    (b"sk-", 20, tok),
    (b"shpat_", 32, alnum),
    (b"shpss_", 32, alnum),
    (b"whsec_", 16, b64ish),
    (b"xoxb-", 10, tok),
    (b"xoxp-", 10, tok),
    (b"xoxa-", 10, tok),
    (b"xoxe-", 10, tok),
    (b"xapp-", 10, tok),
];

fn tok(c: u8) -> bool {
    is_b64url(c)
}
fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}
fn b64ish(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-')
}
fn upper_digit(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}
fn sendgrid(c: u8) -> bool {
    is_b64url(c) || c == b'.'
}

/// For each first byte, the run of `KEYS` entries starting with it (empty
/// for most bytes): most words are rejected by one lookup and the rest compare
/// only the prefixes that share their first byte.
// `From` is not usable in a const block; the casts widen u8 to usize and
// narrow indices below 27 to u8.
#[allow(clippy::cast_lossless, clippy::cast_possible_truncation)]
static KEY_RANGE: [(u8, u8); 256] = {
    let mut t = [(0u8, 0u8); 256];
    let mut i = 0;
    while i < KEYS.len() {
        let c = KEYS[i].0[0] as usize;
        if t[c].1 == 0 {
            t[c].0 = i as u8;
        }
        t[c].1 = (i + 1) as u8;
        i += 1;
    }
    t
};

/// An API key in a known format starting at `start`.
pub(crate) fn api_key(b: &[u8], start: usize) -> Option<Finding> {
    let (lo, hi) = KEY_RANGE[usize::from(b[start])];
    if lo == hi {
        return None;
    }
    let rest = &b[start..];
    for &(prefix, min, body) in &KEYS[usize::from(lo)..usize::from(hi)] {
        if !rest.starts_with(prefix) {
            continue;
        }
        let bs = start + prefix.len();
        let end = run_end(b, bs, body);
        // The key must end at a token boundary: a longer token of the same
        // shape is something else.
        if end - bs >= min && !b.get(end).is_some_and(|&c| is_b64url(c)) {
            return Some(Finding {
                kind: Kind::ApiKey,
                start,
                end,
            });
        }
    }
    None
}

fn is_token68(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// The credential after a `Bearer` or `Basic` scheme word (any case) at
/// `start..word_end`: RFC 7235 token68, at least 8 characters, and not a plain
/// lower-case word (`basic authentication` is prose).
pub(crate) fn bearer(b: &[u8], start: usize, word_end: usize) -> Option<Finding> {
    let w = &b[start..word_end];
    if !(w.eq_ignore_ascii_case(b"bearer") || w.eq_ignore_ascii_case(b"basic")) {
        return None;
    }
    let mut i = word_end;
    while i < b.len() && i - word_end < 4 && b[i] == b' ' {
        i += 1;
    }
    if i == word_end {
        return None;
    }
    let ts = i;
    let mut end = run_end(b, ts, is_token68);
    end = run_end(b, end, |c| c == b'=');
    let t = &b[ts..end];
    let prose = t.iter().all(u8::is_ascii_lowercase);
    if t.len() < 8 || prose || b.get(end).is_some_and(|&c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(Finding {
        kind: Kind::BearerToken,
        start: ts,
        end,
    })
}

/// Key names whose value is a secret wherever it appears in `key=value`,
/// `key: value` or `"key": "value"` text (compared case-insensitively with
/// the last word of the key, so `access_token`, `X-Api-Key` and
/// `client_secret` match). `key` alone counts only after `api`, `private`,
/// `secret` or `access`.
const SECRET_KEYS: [&[u8]; 11] = [
    b"password",
    b"passwd",
    b"passphrase",
    b"secret",
    b"token",
    b"apikey",
    b"authorization",
    b"cookie",
    b"sessionid",
    b"credentials",
    b"credential",
];

/// Keys whose unquoted value runs to the end of the line: the value has
/// spaces or `;` inside (`Authorization: Bearer x`, `Cookie: a=1; b=2`).
const WHOLE_LINE_KEYS: [&[u8]; 2] = [b"authorization", b"cookie"];

fn sensitive_key(b: &[u8], start: usize, word_end: usize) -> Option<bool> {
    let w = &b[start..word_end];
    if SECRET_KEYS.iter().any(|k| w.eq_ignore_ascii_case(k)) {
        return Some(WHOLE_LINE_KEYS.iter().any(|k| w.eq_ignore_ascii_case(k)));
    }
    if w.eq_ignore_ascii_case(b"key") && start >= 2 && matches!(b[start - 1], b'_' | b'-') {
        let ps = start - 1;
        let mut p = ps;
        while p > 0 && b[p - 1].is_ascii_alphabetic() && ps - p < 8 {
            p -= 1;
        }
        let prev = &b[p..ps];
        if [&b"api"[..], b"private", b"secret", b"access"]
            .iter()
            .any(|k| prev.eq_ignore_ascii_case(k))
        {
            return Some(false);
        }
    }
    None
}

/// Whether `v` is one of this crate's own placeholders (`[SECRET]`,
/// `[CARD ****1111]`, `[EMAIL:abcdabcdabcdabcd]`): already redacted.
pub(crate) fn is_placeholder(v: &[u8]) -> bool {
    let Some(inner) = v.strip_prefix(b"[").and_then(|v| v.strip_suffix(b"]")) else {
        return false;
    };
    let label = run_end(inner, 0, |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_'
    });
    label > 0
        && (label == inner.len()
            || (matches!(inner[label], b' ' | b':')
                && inner[label + 1..]
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'*')))
}

/// Whether the word at `start` is the label of one of our own placeholders
/// (`TOKEN` in `[TOKEN:abcdabcdabcdabcd]`, `KEY` in `[API_KEY:...]`): labels
/// are upper-case key names followed by `:`, so without this check a second
/// pass would take the pseudonym for a secret value.
fn inside_placeholder(b: &[u8], start: usize) -> bool {
    let mut p = start;
    while p > 0 && (b[p - 1].is_ascii_uppercase() || b[p - 1].is_ascii_digit() || b[p - 1] == b'_')
    {
        p -= 1;
    }
    if p == 0 || b[p - 1] != b'[' {
        return false;
    }
    let open = p - 1;
    b[open..]
        .iter()
        .take(80)
        .position(|&c| c == b']')
        .is_some_and(|c| is_placeholder(&b[open..=open + c]))
}

/// A value after a sensitive key name at `start..word_end`.
pub(crate) fn key_value(b: &[u8], start: usize, word_end: usize) -> Option<Finding> {
    // Cheap rejection first: a key is followed by `=`, `:` or a quote.
    if !matches!(b.get(word_end), Some(b'=' | b':' | b'"' | b'\'')) {
        return None;
    }
    let whole_line = sensitive_key(b, start, word_end)?;
    if inside_placeholder(b, start) {
        return None;
    }
    let mut i = word_end;
    if matches!(b.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if !matches!(b.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    while b.get(i) == Some(&b' ') && i - word_end < 8 {
        i += 1;
    }
    let (vs, ve) = match b.get(i) {
        Some(&q @ (b'"' | b'\'')) => {
            let vs = i + 1;
            let mut j = vs;
            while j < b.len() && b[j] != q {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (vs, j.min(b.len()))
        }
        Some(_) if whole_line => {
            let ve = run_end(b, i, |c| c != b'\n' && c != b'\r');
            (i, ve)
        }
        Some(_) => (
            i,
            run_end(b, i, |c| {
                !matches!(
                    c,
                    b' ' | b'\t'
                        | b','
                        | b';'
                        | b'&'
                        | b'"'
                        | b'\''
                        | b'}'
                        | b')'
                        | b']'
                        | b'\n'
                        | b'\r'
                )
            }),
        ),
        None => return None,
    };
    let v = &b[vs..ve];
    // Trailing spaces of a whole-line value are not part of it.
    let ve = vs + v.len() - v.iter().rev().take_while(|&&c| c == b' ').count();
    let v = &b[vs..ve];
    let structural =
        matches!(v.first(), Some(b'{' | b'[')) || [&b"null"[..], b"true", b"false"].contains(&v);
    if v.is_empty() || structural || is_placeholder(v) {
        return None;
    }
    Some(Finding {
        kind: Kind::Secret,
        start: vs,
        end: ve,
    })
}
