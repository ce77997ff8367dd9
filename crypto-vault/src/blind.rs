//! Blind indexes: equality search on encrypted columns.
//!
//! `index = HMAC-SHA256(k, normalise(value))` truncated to the configured length,
//! where `k = HKDF-SHA256(salt = "hisn-vault/blind-index/v1", ikm = tenant index
//! root key, info = lp(tenant) || lp(table) || lp(column))`. The root key is a
//! per-tenant random key, separate from the data keys and wrapped like them, so
//! equal values in different tenants or columns give unrelated indexes, and
//! shredding the tenant makes its indexes unlinkable to any value.
//!
//! Traps: a blind index leaks equality (and frequency) of values within one column;
//! do not index low-entropy columns (booleans, small enums) whose distribution an
//! attacker can match. Truncation trades that leak against false positives: with
//! `n` bytes, two distinct values collide with probability 2^-8n, so always
//! confirm a match by decrypting.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
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
    /// Trim surrounding whitespace and lowercase (Unicode), for emails and names.
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
    pub fn index(&self, value: &[u8]) -> BlindIndex {
        let mut mac = self.mac.clone();
        match self.normalization {
            Normalization::Exact => mac.update(value),
            Normalization::CaseInsensitive => {
                let norm = Zeroizing::new(String::from_utf8_lossy(value).trim().to_lowercase());
                mac.update(norm.as_bytes());
            }
        }
        let out = mac.finalize().into_bytes();
        BlindIndex(out[..self.len].to_vec())
    }
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
        assert_eq!(a.index(b"x"), a.index(b"x"));
        assert_ne!(a.index(b"x"), b.index(b"x"));
        assert_ne!(a.index(b"x"), c.index(b"x"));
        assert_ne!(a.index(b"x"), a.index(b"y"));
        let full = a.index(b"x");
        let short = BlindIndexer::new(&root, "t1", "users", "email")
            .unwrap()
            .with_truncation(8)
            .unwrap()
            .index(b"x");
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
            a.index(b" Alice@Example.COM "),
            a.index(b"alice@example.com")
        );
        let exact = BlindIndexer::new(&root, "t1", "users", "email").unwrap();
        assert_ne!(exact.index(b"Alice"), exact.index(b"alice"));
    }
}
