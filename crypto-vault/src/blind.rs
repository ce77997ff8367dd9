//! Blind indexes: equality search on encrypted columns.
//!
//! `index = HMAC-SHA256(k, normalise(value))` truncated to the configured length,
//! where `k = HKDF-SHA256(salt = "hisn-vault/blind-index/v1", ikm = tenant index
//! root key, info = lp(tenant) || lp(table) || lp(column))`. The root key is a
//! per-tenant random key, separate from the data keys and wrapped like them, so
//! equal values in different tenants or columns give unrelated indexes, and
//! shredding the tenant makes its indexes unlinkable to any value.
//!
//! # Case-insensitive mode
//!
//! [`Normalization::CaseInsensitive`] indexes the Unicode *compatibility
//! caseless* form of the value (Unicode Standard §3.13, D146):
//! `NFKD(casefold(NFKD(casefold(NFD(x)))))`, with full case folding
//! (CaseFolding.txt, statuses C and F), after removing default-ignorable code
//! points (soft hyphen, zero-width characters, variation selectors, as
//! `NFKC_Casefold` does), then surrounding white space (the Unicode
//! `White_Space` property) trimmed. Dotted capital `İ` folds to `i` + U+0307
//! (not Turkic folding). So `ALICE@EXAMPLE.COM`,
//! `alice@example.com`, full-width `ａｌｉｃｅ@…`, `Straße`/`STRASSE` and a
//! precomposed or decomposed `é` each index the same. Input that is not valid
//! UTF-8 is refused ([`Error::InvalidInput`]) rather than replaced, so distinct
//! byte strings never collapse to one index. Confusables across scripts (Latin
//! `a` and Cyrillic `а`) are *not* merged: they are different characters.
//!
//! Traps: a blind index leaks equality (and frequency) of values within one column;
//! do not index low-entropy columns (booleans, small enums) whose distribution an
//! attacker can match. Truncation trades that leak against false positives: with
//! `n` bytes, two distinct values collide with probability 2^-8n, so always
//! confirm a match by decrypting.

use std::fmt;

use caseless::Caseless as _;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::{FieldContext, push_lp};
use crate::secret::SecretKey;

/// Shortest truncation accepted (8 bytes = 64 bits).
pub const MIN_INDEX_LEN: usize = 8;
/// Full HMAC-SHA256 output (the default).
pub const MAX_INDEX_LEN: usize = 32;

/// How values are normalised before indexing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Normalization {
    /// Bytes as given.
    #[default]
    Exact,
    /// Unicode compatibility caseless form (NFKD/NFKC and full case folding),
    /// surrounding white space trimmed; for emails and names. Only valid UTF-8
    /// is accepted. See the module docs.
    CaseInsensitive,
}

/// Computes blind indexes for one (tenant, table, column). Holds a derived key:
/// zeroized on drop, never printed.
pub struct BlindIndexer {
    // Pre-keyed HMAC state (ipad/opad already absorbed): each index costs two
    // SHA-256 compressions fewer than keying a fresh HMAC. Wiped on drop (the
    // `zeroize` features of `hmac`/`sha2`).
    mac: Hmac<Sha256>,
    len: usize,
    normalization: Normalization,
}

impl fmt::Debug for BlindIndexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndexer")
            .field("len", &self.len)
            .field("normalization", &self.normalization)
            .finish_non_exhaustive()
    }
}

/// A blind index value (not secret, but comparisons are constant-time anyway).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlindIndex(Vec<u8>);

impl BlindIndex {
    /// The bytes (store these in an indexed column).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.ct_eq(other).into()
    }
}

impl BlindIndexer {
    /// Derive the indexer from a tenant's index root key. Full 32-byte output and
    /// [`Normalization::Exact`] by default.
    ///
    /// # Errors
    /// [`Error::InvalidContext`] for a bad tenant, table or column.
    pub fn new(root: &SecretKey, tenant: &str, table: &str, column: &str) -> Result<Self> {
        FieldContext::new(tenant, table, column, "-")?;
        let mut info = Vec::with_capacity(12 + tenant.len() + table.len() + column.len());
        push_lp(&mut info, tenant.as_bytes());
        push_lp(&mut info, table.as_bytes());
        push_lp(&mut info, column.as_bytes());
        let hk = Hkdf::<Sha256>::new(Some(b"hisn-vault/blind-index/v1"), root.expose_secret());
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(&info, okm.as_mut())
            .map_err(|_| Error::InvalidConfig("HKDF output length"))?;
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(okm.as_ref())
            .map_err(|_| Error::InvalidConfig("HMAC key length"))?;
        Ok(Self {
            mac,
            len: MAX_INDEX_LEN,
            normalization: Normalization::Exact,
        })
    }

    /// Truncate indexes to `len` bytes ([`MIN_INDEX_LEN`]..=[`MAX_INDEX_LEN`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside that range.
    pub fn with_truncation(mut self, len: usize) -> Result<Self> {
        if !(MIN_INDEX_LEN..=MAX_INDEX_LEN).contains(&len) {
            return Err(Error::InvalidConfig(
                "blind index length must be 8..=32 bytes",
            ));
        }
        self.len = len;
        Ok(self)
    }

    /// Set the normalisation.
    pub fn with_normalization(mut self, n: Normalization) -> Self {
        self.normalization = n;
        self
    }

    /// The index of `value`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the normalisation is
    /// [`Normalization::CaseInsensitive`] and `value` is not valid UTF-8.
    pub fn index(&self, value: &[u8]) -> Result<BlindIndex> {
        let mut mac = self.mac.clone();
        match self.normalization {
            Normalization::Exact => mac.update(value),
            Normalization::CaseInsensitive => {
                let text = std::str::from_utf8(value)
                    .map_err(|_| Error::InvalidInput("blind index value is not valid UTF-8"))?;
                let norm = caseless_form(text);
                mac.update(norm.trim().as_bytes());
            }
        }
        let out = mac.finalize().into_bytes();
        Ok(BlindIndex(out[..self.len].to_vec()))
    }
}

/// Unicode compatibility caseless form (D146):
/// `NFKD(casefold(NFKD(casefold(NFD(x)))))`, with default-ignorable code
/// points removed first (as `NFKC_Casefold` does). Zeroized on drop.
fn caseless_form(text: &str) -> Zeroizing<String> {
    Zeroizing::new(
        text.chars()
            .filter(|c| !is_default_ignorable(*c))
            .nfd()
            .default_case_fold()
            .nfkd()
            .default_case_fold()
            .nfkd()
            .collect(),
    )
}

/// `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt, Unicode 15):
/// invisible characters (soft hyphen, zero-width space and joiners, bidi
/// controls, variation selectors, tags) that render as nothing.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_differ_per_tenant_and_column_and_truncate() {
        let root = SecretKey::from_bytes([3; 32]);
        let a = BlindIndexer::new(&root, "t1", "users", "email").unwrap();
        let b = BlindIndexer::new(&root, "t2", "users", "email").unwrap();
        let c = BlindIndexer::new(&root, "t1", "users", "phone").unwrap();
        assert_eq!(a.index(b"x").unwrap(), a.index(b"x").unwrap());
        assert_ne!(a.index(b"x").unwrap(), b.index(b"x").unwrap());
        assert_ne!(a.index(b"x").unwrap(), c.index(b"x").unwrap());
        assert_ne!(a.index(b"x").unwrap(), a.index(b"y").unwrap());
        let full = a.index(b"x").unwrap();
        let short = BlindIndexer::new(&root, "t1", "users", "email")
            .unwrap()
            .with_truncation(8)
            .unwrap()
            .index(b"x")
            .unwrap();
        assert_eq!(short.as_bytes(), &full.as_bytes()[..8]);
        assert!(
            BlindIndexer::new(&root, "t1", "u", "e")
                .unwrap()
                .with_truncation(7)
                .is_err()
        );
        assert!(short.ct_eq(&full.as_bytes()[..8]));
    }

    #[test]
    fn case_insensitive_normalisation() {
        let root = SecretKey::from_bytes([3; 32]);
        let a = BlindIndexer::new(&root, "t1", "users", "email")
            .unwrap()
            .with_normalization(Normalization::CaseInsensitive);
        assert_eq!(
            a.index(b" Alice@Example.COM ").unwrap(),
            a.index(b"alice@example.com").unwrap()
        );
        let exact = BlindIndexer::new(&root, "t1", "users", "email").unwrap();
        assert_ne!(
            exact.index(b"Alice").unwrap(),
            exact.index(b"alice").unwrap()
        );
    }

    fn ci() -> BlindIndexer {
        BlindIndexer::new(&SecretKey::from_bytes([3; 32]), "t1", "users", "email")
            .unwrap()
            .with_normalization(Normalization::CaseInsensitive)
    }

    /// Blind indexes: case-insensitive mode is Unicode caseless (class:
    /// look-alike spellings index differently, invalid UTF-8 collapses).
    ///
    /// Root cause: the mode lowercased `String::from_utf8_lossy(value)`:
    /// lowercasing is not case folding (`ß`/`SS`, final sigma, Cherokee), no
    /// normalisation merged full-width or decomposed spellings, and every
    /// invalid byte became U+FFFD, so distinct non-UTF-8 values shared one
    /// index. Now the compatibility caseless form is indexed and non-UTF-8 is
    /// refused.
    #[test]
    fn case_insensitive_mode_is_unicode_caseless_and_refuses_non_utf8() {
        let a = ci();
        let same = |x: &str, y: &str| {
            assert_eq!(
                a.index(x.as_bytes()).unwrap(),
                a.index(y.as_bytes()).unwrap(),
                "{x:?} vs {y:?}"
            );
        };
        same("Alice@Example.COM", "alice@example.com");
        same("\u{FF41}lice@example.com", "alice@example.com"); // full-width a
        same("STRASSE@example.com", "stra\u{DF}e@example.com"); // sharp s
        same("jos\u{E9}@example.com", "jose\u{301}@example.com"); // composed / decomposed
        same("JOS\u{C9}@EXAMPLE.COM", "jose\u{301}@example.com");
        same("\u{3A3}\u{391}\u{3A3}", "\u{3C3}\u{3B1}\u{3C2}"); // sigma, final sigma
        same("\u{FB01}le@example.com", "FILE@example.com"); // fi ligature
        same("\u{212A}elvin", "kelvin"); // Kelvin sign
        same("\u{3000}bob@example.com\u{A0}", "bob@example.com"); // Unicode spaces
        // Different characters stay different (no confusable folding).
        assert_ne!(
            a.index("alice".as_bytes()).unwrap(),
            a.index("\u{430}lice".as_bytes()).unwrap()
        );
        // Invalid UTF-8 is refused, not collapsed to U+FFFD.
        for bad in [&b"\xff"[..], b"\xfe", b"alice\xc3"] {
            assert!(matches!(a.index(bad), Err(Error::InvalidInput(_))));
        }
        // Exact mode indexes any bytes, distinctly.
        let exact =
            BlindIndexer::new(&SecretKey::from_bytes([3; 32]), "t1", "users", "email").unwrap();
        assert_ne!(exact.index(b"\xff").unwrap(), exact.index(b"\xfe").unwrap());
    }

    /// Blind indexes: invisible characters do not make a look-alike spelling
    /// index differently (class: look-alike spellings index differently).
    ///
    /// Root cause: the compatibility caseless form keeps default-ignorable
    /// code points, so `alice\u{AD}@example.com` (soft hyphen),
    /// `al\u{200B}ice@…` (zero-width space), a BOM or a variation selector
    /// rendered exactly like `alice@example.com` but got its own index: a
    /// second account under a visually identical email. They are now removed
    /// first, as Unicode's `NFKC_Casefold` does; dotted capital `İ` follows
    /// full (non-Turkic) folding as documented, so it is `i` + U+0307, not `i`.
    #[test]
    fn case_insensitive_mode_ignores_invisible_characters() {
        let a = ci();
        let base = a.index(b"alice@example.com").unwrap();
        for v in [
            "alice\u{AD}@example.com",
            "al\u{200B}ice@example.com",
            "\u{FEFF}alice@example.com",
            "alice\u{200D}@example.com",
            "a\u{FE0F}lice@example.com",
            "alice@exa\u{2060}mple.com",
            "ALICE\u{200C}@EXAMPLE.COM",
            "alic\u{E0041}e@example.com",
            "\u{FF21}\u{AD}LICE@\u{FF45}xample.com",
        ] {
            assert_eq!(a.index(v.as_bytes()).unwrap(), base, "{v:?}");
        }
        // Only-invisible input is the empty value, like an empty string.
        assert_eq!(
            a.index("\u{200B}\u{AD}".as_bytes()).unwrap(),
            a.index(b"").unwrap()
        );
        // Documented rule for dotted/dotless i (full folding, not Turkic).
        assert_eq!(
            a.index("\u{130}".as_bytes()).unwrap(),
            a.index("i\u{307}".as_bytes()).unwrap()
        );
        assert_ne!(
            a.index("\u{130}".as_bytes()).unwrap(),
            a.index(b"i").unwrap()
        );
        assert_ne!(
            a.index("\u{131}".as_bytes()).unwrap(),
            a.index(b"i").unwrap()
        );
        // Visible characters are not dropped.
        assert_ne!(
            a.index(b"alice@example.com").unwrap(),
            a.index(b"alice@example.co").unwrap()
        );
    }
}
