//! The context key and the tenant context token RLS verifies.
//!
//! The tenant context of a PostgreSQL transaction is a token
//! `v1.<tenant>.<expiry>.<mac>`: `<tenant>` the hyphenated lower-case UUID,
//! `<expiry>` Unix seconds, `<mac>` the hex HMAC-SHA256 under the
//! [`ContextKey`] of `hisn_tenant_guard.v1.<tenant>.<expiry>`. The pool sets
//! it as the transaction-local setting [`CONTEXT_SETTING`](super::CONTEXT_SETTING),
//! bound as a parameter (never SQL text). The policies call the `SECURITY
//! DEFINER` function [`CONTEXT_FUNCTION`](super::CONTEXT_FUNCTION), which
//! recomputes the MAC with the key held in a table the application role cannot
//! read and returns the tenant, or NULL for anything else (no setting, a
//! forged or altered token, an expired one). SQL the application runs can
//! still change the setting (`set_config`, `SET`, `RESET`), but without the
//! key it can only write a token that verifies to nothing, or replay a token
//! it was given: its own tenant's.
//!
//! The function keeps the key as the two padded HMAC keys (`K ⊕ ipad`,
//! `K ⊕ opad`), so it needs only the built-in `sha256()` (PostgreSQL 11+), no
//! extension, and computes `sha256(opad_key || sha256(ipad_key || message))`.
//! It compares `sha256(ipad_key || mac)` of both MACs rather than the MACs, so
//! the time a mismatch takes says nothing about the expected MAC.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;
#[cfg(feature = "postgres")]
use crate::TenantId;

/// Length of a context key in bytes.
pub const CONTEXT_KEY_LEN: usize = 32;
/// HMAC-SHA256 block size.
const BLOCK: usize = 64;
/// Version tag of the token format (only the PostgreSQL pool signs tokens).
#[cfg(feature = "postgres")]
const VERSION: &str = "v1";
/// Domain separation: the MAC covers this prefix, the tenant and the expiry.
#[cfg(feature = "postgres")]
const DOMAIN: &str = "hisn_tenant_guard.v1.";

/// The 256-bit secret that signs tenant context tokens.
///
/// The pool holds it (to sign) and the database holds it in
/// `hisn_tenant_guard_context_key` (to verify), written there by the SQL
/// [`generate_sql`](super::generate_sql) returns. Keep it out of the
/// application role's reach: whoever holds it can open any tenant.
/// Zeroized on drop, compared in constant time, never printed.
#[derive(Clone)]
pub struct ContextKey(Zeroizing<[u8; CONTEXT_KEY_LEN]>);

impl ContextKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; CONTEXT_KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A key from 64 hex digits (surrounding whitespace ignored), or from the
    /// base64 of 32 bytes that `hisn keys generate-master` prints.
    /// [`Error::Config`] for anything else; the input is never echoed.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0_u8; CONTEXT_KEY_LEN]);
        if text.len() == 2 * CONTEXT_KEY_LEN && hex::decode_to_slice(text, &mut *bytes).is_ok() {
            return Ok(Self(bytes));
        }
        if decode_base64_32(text, &mut bytes) {
            return Ok(Self(bytes));
        }
        Err(Error::Config(
            "context key must be 64 hex digits or the base64 of 32 bytes",
        ))
    }

    /// `K ⊕ pad` over one HMAC block (the key is shorter than a block, so it is
    /// zero-padded first, as HMAC does).
    fn padded(&self, pad: u8) -> Zeroizing<[u8; BLOCK]> {
        let mut out = Zeroizing::new([pad; BLOCK]);
        for (o, k) in out.iter_mut().zip(self.0.iter()) {
            *o ^= k;
        }
        out
    }

    /// The hex of `K ⊕ ipad` and `K ⊕ opad`, as the key table stores them.
    pub(crate) fn padded_hex(&self) -> (Zeroizing<String>, Zeroizing<String>) {
        (
            Zeroizing::new(hex::encode(*self.padded(0x36))),
            Zeroizing::new(hex::encode(*self.padded(0x5c))),
        )
    }

    /// The token for `tenant`, valid for transactions that start before
    /// `expiry` (Unix seconds, compared with the database's `now()`).
    #[cfg(feature = "postgres")]
    pub(crate) fn token(&self, tenant: TenantId, expiry: u64) -> Zeroizing<String> {
        let tenant = tenant.as_uuid().hyphenated().to_string();
        let expiry = expiry.to_string();
        // A 32-byte key is always a valid HMAC key; `new_from_slice` fails only for
        // key lengths HMAC cannot take.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&*self.0) {
            Ok(m) => m,
            Err(_) => return Zeroizing::new(String::new()),
        };
        mac.update(DOMAIN.as_bytes());
        mac.update(tenant.as_bytes());
        mac.update(b".");
        mac.update(expiry.as_bytes());
        let tag = mac.finalize().into_bytes();
        Zeroizing::new(format!(
            "{VERSION}.{tenant}.{expiry}.{}",
            hex::encode(tag.as_slice())
        ))
    }
}

impl ContextKey {
    /// HMAC-SHA256 under the key over the concatenation of `parts` (the
    /// session scope token, `src/rls/scope.rs`, signs with it).
    // Only the PostgreSQL pool signs scope tokens.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0_u8; 32]);
        // A 32-byte key is always a valid HMAC key.
        if let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&*self.0) {
            for part in parts {
                mac.update(part);
            }
            out.copy_from_slice(mac.finalize().into_bytes().as_slice());
        }
        out
    }
}

impl PartialEq for ContextKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&*other.0).into()
    }
}

impl Eq for ContextKey {}

impl fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContextKey(..)")
    }
}

/// Standard base64 (with padding) of exactly 32 bytes into `out`.
fn decode_base64_32(text: &str, out: &mut [u8; CONTEXT_KEY_LEN]) -> bool {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    // 32 bytes = 10 full groups of 3 and 2 left over: 43 symbols and one `=`.
    let bytes = text.as_bytes();
    if bytes.len() != 44 || bytes.get(43) != Some(&b'=') {
        return false;
    }
    let mut acc: u32 = 0;
    let mut bits = 0_u32;
    let mut n = 0_usize;
    for &c in bytes.iter().take(43) {
        let Some(v) = sextet(c) else {
            acc.zeroize();
            return false;
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if let Some(slot) = out.get_mut(n) {
                // The low byte of the shifted accumulator is the next output byte.
                let [low, ..] = (acc >> bits).to_le_bytes();
                *slot = low;
            }
            n += 1;
        }
    }
    // The two bits left over must be zero (canonical encoding).
    let ok = n == CONTEXT_KEY_LEN && acc & ((1 << bits) - 1) == 0;
    acc.zeroize();
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    const TENANT: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

    #[test]
    #[cfg(feature = "postgres")]
    fn token_is_rfc2104_hmac_over_domain_tenant_and_expiry() {
        // The database recomputes the MAC from the padded keys with plain
        // SHA-256; this is that computation, checked against the HMAC crate.
        use sha2::Digest;
        let key = ContextKey::from_bytes([7; 32]);
        let t = key.token(TENANT.parse().unwrap(), 1_800_000_000);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts[..3], ["v1", TENANT, "1800000000"]);
        let msg = format!("{DOMAIN}{TENANT}.1800000000");
        let inner = Sha256::new()
            .chain_update(*key.padded(0x36))
            .chain_update(msg.as_bytes())
            .finalize();
        let outer = Sha256::new()
            .chain_update(*key.padded(0x5c))
            .chain_update(inner)
            .finalize();
        assert_eq!(parts[3], hex::encode(outer));
        // Another key, tenant or expiry gives another MAC.
        assert_ne!(
            ContextKey::from_bytes([8; 32]).token(TENANT.parse().unwrap(), 1_800_000_000),
            t
        );
        assert_ne!(key.token(TENANT.parse().unwrap(), 1_800_000_001), t);
    }

    #[test]
    fn key_text_is_hex_or_base64_and_never_printed() {
        let hex_key = "07".repeat(32);
        let k = ContextKey::from_text(&format!(" {hex_key}\n")).unwrap();
        assert_eq!(k, ContextKey::from_bytes([7; 32]));
        // base64 of 32 bytes of 0x07.
        let b64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        assert_eq!(ContextKey::from_text(b64).unwrap(), k);
        for bad in [
            "",
            "07",
            &"zz".repeat(32),
            &"07".repeat(31),
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd=",
        ] {
            assert!(ContextKey::from_text(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{k:?}"), "ContextKey(..)");
        assert_ne!(k, ContextKey::from_bytes([8; 32]));
    }
}
