//! Keyed subject pseudonyms.

use std::fmt;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::event::TenantId;

/// Turns subject identifiers into keyed pseudonyms (HMAC-SHA256 over tenant
/// and identifier, 128 bits, hex, prefixed `hp1:`), so the trail can be searched
/// by subject without holding the plain identifier.
///
/// Trade-off: whoever holds the key can test guesses ("is this trail about
/// alice@example.com?"), so the key is as sensitive as the identifiers; without
/// the key the pseudonyms link records of one subject but do not name them.
/// Destroying the key makes the pseudonyms unlinkable to people while the chain
/// still verifies.
pub struct Pseudonymizer {
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer { key: <redacted> }")
    }
}

impl Pseudonymizer {
    /// Shortest key accepted, in bytes.
    pub const MIN_KEY_LEN: usize = 32;

    /// A pseudonymizer under `key` (at least 32 bytes).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a short key.
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() < Self::MIN_KEY_LEN {
            return Err(Error::Malformed {
                what: "pseudonym key",
            });
        }
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// The pseudonym of `subject` in `tenant`.
    pub fn pseudonym(&self, tenant: &TenantId, subject: &str) -> String {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"hisn-audit-log:v1:subject\0");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(subject.as_bytes());
        let out = mac.finalize().into_bytes();
        format!("hp1:{}", hex::encode(&out[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_per_tenant_and_stable() {
        let p = Pseudonymizer::new(&[7; 32]).unwrap();
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        assert_eq!(p.pseudonym(&a, "alice"), p.pseudonym(&a, "alice"));
        assert_ne!(p.pseudonym(&a, "alice"), p.pseudonym(&b, "alice"));
        assert_ne!(
            p.pseudonym(&a, "alice"),
            Pseudonymizer::new(&[8; 32]).unwrap().pseudonym(&a, "alice")
        );
        assert!(p.pseudonym(&a, "alice").starts_with("hp1:"));
        assert!(Pseudonymizer::new(&[1; 16]).is_err());
        assert!(!format!("{p:?}").contains('7'));
    }
}
