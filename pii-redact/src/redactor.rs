//! The [`Redactor`]: configuration, the fast path, and rendering.

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::chars::digit_at;
use crate::custom::CustomDetector;
use crate::detect::{self, Enabled, Finding};
use crate::error::{Error, Result};
use crate::kind::{Kind, Mode};

/// Most passes over a line: the first, and re-scans of the output until it is
/// stable (see `redact_bytes_with`).
const MAX_PASSES: usize = 16;

/// Most custom detectors a redactor holds.
pub const MAX_CUSTOM: usize = 64;

/// Longest replacement a built-in finding is rendered as, in bytes
/// (`[NATIONAL_ID:` + 16 letters + `]`). Custom placeholders are at most 34.
pub const MAX_PLACEHOLDER_LEN: usize = 30;

/// Key for [`Mode::Pseudonym`]. Held in memory that is zeroized on drop;
/// `Debug` never prints it.
#[derive(Clone)]
pub struct PseudonymKey(Zeroizing<Vec<u8>>);

impl PseudonymKey {
    /// Shortest accepted key (bytes).
    pub const MIN_LEN: usize = 32;
    /// Longest accepted key (bytes): one HMAC-SHA256 block.
    pub const MAX_LEN: usize = 64;

    /// A key from raw bytes (32-64 bytes, e.g. from a secret store).
    ///
    /// # Errors
    /// [`Error::KeyTooShort`] below [`Self::MIN_LEN`] bytes (or above
    /// [`Self::MAX_LEN`]).
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(Error::KeyTooShort);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

/// Detects and redacts personal data and secrets in text.
///
/// Build one at start-up and share it (`Redactor` is `Send + Sync` and cheap to
/// call concurrently). [`Redactor::default()`] detects every built-in kind and
/// writes placeholders.
#[derive(Clone)]
pub struct Redactor {
    modes: [Mode; 10],
    enabled: Enabled,
    key: Option<PseudonymKey>,
    custom: Vec<CustomDetector>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("modes", &self.modes)
            .field("pseudonym_key", &self.key.as_ref().map(|_| ".."))
            .field("custom", &self.custom)
            .finish()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self {
            modes: [Mode::Placeholder; 10],
            enabled: Enabled::from_fn(|_| true),
            key: None,
            custom: Vec::new(),
        }
    }
}

/// Builder for a [`Redactor`].
#[derive(Debug, Clone, Default)]
pub struct RedactorBuilder {
    inner: Redactor,
}

impl RedactorBuilder {
    /// Set the mode of one built-in kind (custom kinds always use their
    /// placeholder).
    #[must_use]
    pub fn mode(mut self, kind: Kind, mode: Mode) -> Self {
        if !matches!(kind, Kind::Custom(_)) {
            self.inner.modes[kind.index()] = mode;
        }
        self
    }

    /// Set the mode of every built-in kind that is not [`Mode::Off`].
    #[must_use]
    pub fn all(mut self, mode: Mode) -> Self {
        for m in &mut self.inner.modes {
            if *m != Mode::Off {
                *m = mode;
            }
        }
        self
    }

    /// The key for [`Mode::Pseudonym`].
    #[must_use]
    pub fn pseudonym_key(mut self, key: PseudonymKey) -> Self {
        self.inner.key = Some(key);
        self
    }

    /// Add a custom detector (its kind is `Kind::Custom(n)`, `n` counting from 0).
    #[must_use]
    pub fn custom(mut self, detector: CustomDetector) -> Self {
        self.inner.custom.push(detector);
        self
    }

    /// Check the configuration and build.
    ///
    /// # Errors
    /// [`Error::MissingPseudonymKey`] if a kind uses [`Mode::Pseudonym`] without
    /// a key; [`Error::TooManyCustom`] above [`MAX_CUSTOM`] custom detectors.
    pub fn build(self) -> Result<Redactor> {
        let mut r = self.inner;
        if r.key.is_none() && r.modes.contains(&Mode::Pseudonym) {
            return Err(Error::MissingPseudonymKey);
        }
        if r.custom.len() > MAX_CUSTOM {
            return Err(Error::TooManyCustom);
        }
        let modes = r.modes;
        r.enabled = Enabled::from_fn(|k| modes[k.index()] != Mode::Off);
        Ok(r)
    }
}

/// Per-kind counts of findings, for `--stats`-style reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    built_in: [u64; 10],
    custom: Vec<u64>,
}

impl Stats {
    /// The count for `kind`.
    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Custom(i) => self.custom.get(usize::from(i)).copied().unwrap_or(0),
            k => self.built_in[k.index()],
        }
    }

    /// Total number of findings.
    pub fn total(&self) -> u64 {
        self.built_in.iter().chain(&self.custom).sum()
    }

    /// Non-zero counts by kind, built-ins first.
    pub fn iter(&self) -> impl Iterator<Item = (Kind, u64)> + '_ {
        Kind::BUILT_IN
            .iter()
            .map(|&k| (k, self.built_in[k.index()]))
            .chain(
                self.custom
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| (Kind::Custom(u16::try_from(i).unwrap_or(u16::MAX)), n)),
            )
            .filter(|&(_, n)| n > 0)
    }

    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Custom(i) => {
                let i = usize::from(i);
                if self.custom.len() <= i {
                    self.custom.resize(i + 1, 0);
                }
                self.custom[i] += 1;
            }
            k => self.built_in[k.index()] += 1,
        }
    }
}

impl Redactor {
    /// A builder, starting from every built-in kind in placeholder mode.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// The mode of a built-in kind.
    pub fn mode(&self, kind: Kind) -> Mode {
        match kind {
            Kind::Custom(_) => Mode::Placeholder,
            k => self.modes[k.index()],
        }
    }

    /// The label of a kind as written in placeholders (`EMAIL`, or a custom name).
    pub fn label(&self, kind: Kind) -> &str {
        match kind {
            Kind::Custom(i) => self
                .custom
                .get(usize::from(i))
                .map_or("CUSTOM", |c| c.name()),
            k => k.label(),
        }
    }

    /// Every finding in `input`, in order and non-overlapping (overlapping
    /// findings are merged into one span).
    pub fn find(&self, input: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        self.find_into(input, &mut out);
        out
    }

    fn find_into(&self, input: &[u8], out: &mut Vec<Finding>) {
        detect::scan(input, self.enabled, out);
        if self.custom.is_empty() {
            return;
        }
        for (i, c) in self.custom.iter().enumerate() {
            let kind = Kind::Custom(u16::try_from(i).unwrap_or(u16::MAX));
            c.find(input, |start, end| out.push(Finding { kind, start, end }));
        }
        out.sort_by_key(|f| (f.start, f.end));
        let all = std::mem::take(out);
        for f in all {
            detect::push(out, f);
        }
    }

    /// Redact a string. A string with nothing to redact is returned borrowed,
    /// without allocating. Never fails and never returns the input unredacted.
    pub fn redact<'a>(&self, input: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(input.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(input),
            // Spans start and end on ASCII bytes or whole digit characters and
            // every replacement is ASCII, so the output is UTF-8; the lossy
            // conversion is a fallback that cannot pass PII through.
            Cow::Owned(v) => Cow::Owned(
                String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// Redact bytes that may hold invalid UTF-8: detection works around
    /// invalid sequences, which are copied unchanged.
    pub fn redact_bytes<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        self.redact_bytes_with(input, None)
    }

    /// [`Redactor::redact_bytes`], adding the findings to `stats`.
    pub fn redact_bytes_counted<'a>(&self, input: &'a [u8], stats: &mut Stats) -> Cow<'a, [u8]> {
        self.redact_bytes_with(input, Some(stats))
    }

    fn redact_bytes_with<'a>(
        &self,
        input: &'a [u8],
        mut stats: Option<&mut Stats>,
    ) -> Cow<'a, [u8]> {
        let mut found = Vec::new();
        self.find_into(input, &mut found);
        if found.is_empty() {
            return Cow::Borrowed(input);
        }
        let mut out = self.render_all(input, &found, stats.as_deref_mut());
        // Redaction must be idempotent, and a placeholder changes the context
        // of what follows it (a word character becomes `]`): text next to a
        // finding can become detectable only once the finding is replaced
        // (`fe80::000:fi@example.sa` leaves `fe80::000:` before `[EMAIL]`).
        // So redact the output again until nothing more is found. Placeholders
        // are never detected, so each pass only consumes original bytes and
        // this ends; the cap and the length bound are belts and braces.
        if !needs_rescan(input, &found) {
            return Cow::Owned(out);
        }
        let bound = self.max_output_len(input.len());
        for _ in 1..MAX_PASSES {
            found.clear();
            self.find_into(&out, &mut found);
            if found.is_empty() {
                break;
            }
            let next = self.render_all(&out, &found, stats.as_deref_mut());
            if next.len() > bound {
                break;
            }
            out = next;
        }
        Cow::Owned(out)
    }

    fn render_all(
        &self,
        input: &[u8],
        found: &[Finding],
        mut stats: Option<&mut Stats>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + found.len() * 16);
        let mut last = 0;
        for f in found {
            out.extend_from_slice(&input[last..f.start]);
            self.render(f.kind, &input[f.start..f.end], &mut out);
            last = f.end;
            if let Some(s) = stats.as_deref_mut() {
                s.add(f.kind);
            }
        }
        out.extend_from_slice(&input[last..]);
        out
    }

    /// An upper bound of the output length for an input of `len` bytes.
    pub fn max_output_len(&self, len: usize) -> usize {
        // Every finding is at least one byte and renders to at most
        // MAX_PLACEHOLDER_LEN bytes (custom placeholders at most 34).
        len.saturating_mul(MAX_PLACEHOLDER_LEN.max(34))
    }

    fn render(&self, kind: Kind, value: &[u8], out: &mut Vec<u8>) {
        let label = self.label(kind);
        match self.mode(kind) {
            Mode::Partial if kind.supports_partial() => {
                let norm = normalize(kind, value);
                let tail = &norm[norm.len().saturating_sub(4)..];
                out.push(b'[');
                out.extend_from_slice(label.as_bytes());
                out.extend_from_slice(b" ****");
                out.extend_from_slice(tail);
                out.push(b']');
            }
            Mode::Pseudonym => {
                out.push(b'[');
                out.extend_from_slice(label.as_bytes());
                out.push(b':');
                match &self.key {
                    Some(key) => {
                        out.extend_from_slice(&pseudonym(key, label, &normalize(kind, value)))
                    }
                    // build() refuses this configuration; stay closed anyway.
                    None => out.extend_from_slice(b"nokey"),
                }
                out.push(b']');
            }
            _ => {
                out.push(b'[');
                out.extend_from_slice(label.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// Whether replacing `found` can change how the text around them is read.
/// Every context rule looks at the bytes next to a candidate (boundaries,
/// `.`/`:` runs, `@`, product tokens); when each finding sits between
/// delimiters that no rule looks through (whitespace, quotes, `,;&|`,
/// brackets), the output reads the same and a second pass can find nothing.
/// `=` is not such a delimiter: `Bearer password=h` is no token until `h` is
/// `[SECRET]` (fuzz-found).
fn needs_rescan(input: &[u8], found: &[Finding]) -> bool {
    let safe_before = |c: u8| {
        c.is_ascii_whitespace()
            || matches!(
                c,
                b'"' | b'\'' | b',' | b';' | b'&' | b'|' | b'(' | b'[' | b'{' | b'<'
            )
    };
    let safe_after = |c: u8| {
        c.is_ascii_whitespace()
            || matches!(
                c,
                b'"' | b'\'' | b',' | b';' | b'&' | b'|' | b')' | b']' | b'}' | b'>'
            )
    };
    found.iter().any(|f| {
        let before = f.start == 0 || safe_before(input[f.start - 1]);
        let after = input.get(f.end).is_none_or(|&c| safe_after(c));
        !(before && after)
    })
}

/// The canonical form a pseudonym and the partial mode are computed from, so
/// that different writings of one value agree: digits in ASCII without
/// separators, phone numbers as international digits (`0501234567`,
/// `+966 50 123 4567` and `00966501234567` all give `966501234567`), IBANs in
/// upper case, e-mail addresses in lower case with `%40`, `%2E`, `%2D`, `%5F`
/// and `%2B` decoded.
fn normalize(kind: Kind, v: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Card | Kind::NationalId | Kind::Phone => {
            let mut d = compact(v, false);
            if kind == Kind::Phone {
                if let Some(rest) = d.strip_prefix(b"00") {
                    d = rest.to_vec();
                } else if d.starts_with(b"0") && !v.starts_with(b"+") {
                    d = [&b"966"[..], &d[1..]].concat();
                }
                if d.starts_with(b"9660") {
                    d.remove(3);
                }
            }
            d
        }
        Kind::Iban => compact(v, true),
        Kind::Email => {
            // Percent-encoded `@`, `.`, `-`, `_` and `+` decoded, so every
            // writing of one address in a URL gives the same pseudonym.
            let s = v.to_ascii_lowercase();
            let mut out = Vec::with_capacity(s.len());
            let mut i = 0;
            while i < s.len() {
                let c = match s.get(i..i + 3) {
                    Some(b"%40") => Some(b'@'),
                    Some(b"%2e") => Some(b'.'),
                    Some(b"%2d") => Some(b'-'),
                    Some(b"%5f") => Some(b'_'),
                    Some(b"%2b") => Some(b'+'),
                    _ => None,
                };
                match c {
                    Some(c) => {
                        out.push(c);
                        i += 3;
                    }
                    None => {
                        out.push(s[i]);
                        i += 1;
                    }
                }
            }
            out
        }
        _ => v.to_vec(),
    }
}

/// The digits of `v` in ASCII (any writing), and its letters in upper case when
/// `letters`; separators dropped.
fn compact(v: &[u8], letters: bool) -> Vec<u8> {
    let mut d = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if let Some((x, len)) = digit_at(v, i) {
            d.push(b'0' + x);
            i += len;
        } else {
            if letters && v[i].is_ascii_alphabetic() {
                d.push(v[i].to_ascii_uppercase());
            }
            i += 1;
        }
    }
    d
}

/// HMAC-SHA256 under the key of a domain-separated value, truncated to 64
/// bits and written with the letters `a`-`p` (never digits, so a pseudonym can
/// never be re-detected as a number: redaction stays idempotent).
fn pseudonym(key: &PseudonymKey, label: &str, norm: &[u8]) -> [u8; 16] {
    let mut out = [b'a'; 16];
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0) else {
        return out;
    };
    mac.update(b"hisn-pii-redact/pseudonym/v1\0");
    mac.update(label.as_bytes());
    mac.update(b"\0");
    mac.update(norm);
    let tag = mac.finalize().into_bytes();
    for (i, byte) in tag.iter().take(8).enumerate() {
        out[2 * i] = b'a' + (byte >> 4);
        out[2 * i + 1] = b'a' + (byte & 0x0f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        Redactor::default().redact(s).into_owned()
    }

    #[test]
    fn smoke() {
        for (i, o) in [
            ("mail john.doe@example.com now", "mail [EMAIL] now"),
            ("call +966 50 123 4567 ok", "call [PHONE] ok"),
            ("call 0501234567", "call [PHONE]"),
            (
                "iban SA03 8000 0000 6080 1016 7519 please",
                "iban [IBAN] please",
            ),
            ("card 4111 1111 1111 1111 x", "card [CARD] x"),
            (
                "ip 10.0.0.1 ua Chrome/120.0.0.0",
                "ip [IP] ua Chrome/120.0.0.0",
            ),
            (
                "Authorization: Bearer abc.DEF-123_xyz",
                "Authorization: [SECRET]",
            ),
            ("password=hunter2 user=x", "password=[SECRET] user=x"),
        ] {
            assert_eq!(r(i), o, "{i}");
        }
    }
}
