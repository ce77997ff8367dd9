//! The two-level, domain-separated SHA-256 chain.
//!
//! ```text
//! digest(record) = SHA-256("hisn-audit-log:v1:record\0" || record bytes)
//! link(n)        = SHA-256("hisn-audit-log:v1:link\0" || u8 len || tenant || u64be n
//!                          || link(n-1) || digest(record n))
//! link(-1)       = 32 zero bytes (genesis)
//! ```
//!
//! The link covers the digest, not the record, so a record whose payload was
//! pruned still verifies from its digest; it covers tenant and sequence number,
//! so a record moved to another tenant or position breaks the chain.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

const RECORD_DOMAIN: &[u8] = b"hisn-audit-log:v1:record\0";
const LINK_DOMAIN: &[u8] = b"hisn-audit-log:v1:link\0";

/// A 32-byte chain value: a record digest or a link (chain head).
/// Compared in constant time.
#[derive(Clone, Copy, Eq)]
pub struct Link(pub [u8; 32]);

impl Link {
    /// The link before the first record of every chain.
    pub const GENESIS: Link = Link([0; 32]);

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse 64 hex digits.
    ///
    /// # Errors
    /// [`Error::Malformed`](crate::Error::Malformed) otherwise.
    pub fn from_hex(s: &str) -> crate::Result<Self> {
        let mut a = [0u8; 32];
        hex::decode_to_slice(s, &mut a).map_err(|_| crate::error::malformed("link"))?;
        Ok(Link(a))
    }
}

impl Default for Link {
    fn default() -> Self {
        Link::GENESIS
    }
}

impl PartialEq for Link {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for Link {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Link({})", self.to_hex())
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The first level: the digest of one encoded record.
pub fn record_digest(record: &[u8]) -> Link {
    let mut h = Sha256::new();
    h.update(RECORD_DOMAIN);
    h.update(record);
    Link(h.finalize().into())
}

/// The second level: the link of record `seq` of `tenant`.
pub fn chain_link(tenant: &[u8], seq: u64, prev: &Link, digest: &Link) -> Link {
    let mut h = Sha256::new();
    h.update(LINK_DOMAIN);
    // Tenants are at most 64 bytes; a longer slice cannot come from a valid record.
    h.update([u8::try_from(tenant.len()).unwrap_or(u8::MAX)]);
    h.update(tenant);
    h.update(seq.to_be_bytes());
    h.update(prev.0);
    h.update(digest.0);
    Link(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_levels() {
        let d = record_digest(b"x");
        assert_ne!(d, record_digest(b"y"));
        let l = chain_link(b"t", 0, &Link::GENESIS, &d);
        assert_ne!(l, chain_link(b"u", 0, &Link::GENESIS, &d));
        assert_ne!(l, chain_link(b"t", 1, &Link::GENESIS, &d));
        assert_eq!(Link::from_hex(&l.to_hex()).unwrap(), l);
    }

    #[test]
    fn link_displays_as_lower_case_hex_and_debugs_as_named_hex() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x0f;
        let l = Link(bytes);
        let hex = format!("ab{}0f", "00".repeat(30));
        assert_eq!(l.to_hex(), hex);
        assert_eq!(l.to_string(), hex);
        assert_eq!(format!("{l:?}"), format!("Link({hex})"));
    }
}
