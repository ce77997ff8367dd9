//! Key values and the set of keys one request carries.
//!
//! Keys come from callers and attackers, so they are small fixed-size values:
//! short text is kept inline, longer text is replaced by its SHA-256 (domain
//! separated), and account names are always normalised then hashed so the
//! store never holds a login name.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use caseless::Caseless as _;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization as _;

use crate::error::{Error, Result};
use crate::policy::KeyKind;

const INLINE: usize = 32;
const TAG_IP4: u8 = 1;
const TAG_IP6: u8 = 2;
const TAG_TEXT: u8 = 3;
const TAG_HASH: u8 = 4;
const TAG_ACCOUNT: u8 = 5;

/// The Unicode compatibility caseless form of `s` (Unicode Standard §3.13, D146).
fn caseless_form(s: &str) -> String {
    s.chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkc()
        .collect()
}

/// One key value (an IP group, a hashed account, a session or tenant id...).
#[derive(Clone, Copy)]
pub struct KeyValue {
    tag: u8,
    len: u8,
    buf: [u8; INLINE],
}

impl KeyValue {
    #[inline]
    fn raw(tag: u8, bytes: &[u8]) -> Self {
        let mut buf = [0u8; INLINE];
        let len = bytes.len().min(INLINE);
        buf[..len].copy_from_slice(&bytes[..len]);
        KeyValue {
            tag,
            len: u8::try_from(len).unwrap_or(0),
            buf,
        }
    }

    /// A client IP: IPv4 as is, IPv6 grouped by its first `v6_prefix` bits
    /// (clamped to 32..=128; /64 is what one customer usually holds).
    /// IPv4-mapped IPv6 addresses count as IPv4.
    #[inline]
    pub fn ip(addr: IpAddr, v6_prefix: u8) -> Self {
        match addr {
            IpAddr::V4(v4) => Self::raw(TAG_IP4, &v4.octets()),
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Self::raw(TAG_IP4, &v4.octets());
                }
                let bits = u32::from(v6_prefix.clamp(32, 128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Self::raw(TAG_IP6, &(u128::from(v6) & mask).to_be_bytes())
            }
        }
    }

    /// An account name: reduced to its Unicode compatibility caseless form
    /// (D146: NFD, full case folding, NFKD, case folding again, then NFKC),
    /// trimmed of Unicode white space, and hashed with SHA-256. So
    /// `Alice@Example.com `, `ＡＬＩＣＥ@example.com` (full-width), `straße` /
    /// `STRASSE` and precomposed / combining accents share one budget, and the
    /// store never holds the name.
    ///
    /// Why so coarse: an account lookup that is case- or
    /// compatibility-insensitive (a case-insensitive collation, a caseless
    /// index) resolves every such spelling to one account, so a finer key
    /// would hand an attacker a fresh per-account budget per spelling. Merging
    /// more spellings than the lookup does is safe (they only share a
    /// budget). Not merged: cross-script confusables (Cyrillic `а` vs Latin
    /// `a`) and invisible characters (U+200B); if your lookup ignores those,
    /// pass the name in your lookup's canonical form.
    pub fn account(name: &str) -> Result<Self> {
        let norm = caseless_form(name);
        let norm = norm.trim();
        if norm.is_empty() {
            return Err(Error::InvalidKey("empty account name"));
        }
        let mut h = Sha256::new();
        h.update(b"hisn-rate-limit/account\0");
        h.update(norm.as_bytes());
        Ok(Self::raw(TAG_ACCOUNT, &h.finalize()))
    }

    /// An opaque identifier (session, tenant, webhook source, custom): kept
    /// inline up to 32 bytes, otherwise replaced by its SHA-256.
    #[inline]
    pub fn text(value: &str) -> Result<Self> {
        Self::bytes(value.as_bytes())
    }

    /// Like [`KeyValue::text`] for raw bytes.
    #[inline]
    pub fn bytes(value: &[u8]) -> Result<Self> {
        if value.is_empty() {
            return Err(Error::InvalidKey("empty key"));
        }
        if value.len() <= INLINE {
            Ok(Self::raw(TAG_TEXT, value))
        } else {
            let mut h = Sha256::new();
            h.update(b"hisn-rate-limit/long\0");
            h.update(value);
            Ok(Self::raw(TAG_HASH, &h.finalize()))
        }
    }

    #[inline]
    fn slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Lower-case hex of the tagged value: the form used in Redis key names.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(2 + 2 * usize::from(self.len));
        for b in std::iter::once(self.tag).chain(self.slice().iter().copied()) {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

impl PartialEq for KeyValue {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Unused bytes of `buf` are always zero, so the fixed-size compare
        // (no call, vectorised) is the same as comparing the slices.
        self.tag == other.tag && self.len == other.len && self.buf == other.buf
    }
}
impl Eq for KeyValue {}

impl Hash for KeyValue {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.tag);
        state.write(self.slice());
    }
}

impl std::fmt::Debug for KeyValue {
    // Keys may be session ids: print only a length, never the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyValue(tag {}, {} bytes)", self.tag, self.len)
    }
}

/// The keys one request carries; a tier applies when its key kind is present.
#[derive(Debug, Clone, Default)]
pub struct RequestKeys {
    ip: Option<KeyValue>,
    account: Option<KeyValue>,
    session: Option<KeyValue>,
    tenant: Option<KeyValue>,
    webhook_source: Option<KeyValue>,
    custom: Vec<(&'static str, KeyValue)>,
}

impl RequestKeys {
    /// No keys.
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the key of `kind`.
    #[inline]
    pub fn with(mut self, kind: KeyKind, value: KeyValue) -> Self {
        self.set(kind, value);
        self
    }

    /// Set the key of `kind` in place.
    #[inline]
    pub fn set(&mut self, kind: KeyKind, value: KeyValue) {
        let slot = match kind {
            KeyKind::Ip => &mut self.ip,
            KeyKind::Account => &mut self.account,
            KeyKind::Session => &mut self.session,
            KeyKind::Tenant => &mut self.tenant,
            KeyKind::WebhookSource => &mut self.webhook_source,
            KeyKind::Custom(name) => {
                if let Some(e) = self.custom.iter_mut().find(|(n, _)| *n == name) {
                    e.1 = value;
                } else {
                    self.custom.push((name, value));
                }
                return;
            }
        };
        *slot = Some(value);
    }

    /// The key of `kind`, if the request carries one.
    #[inline]
    pub fn get(&self, kind: KeyKind) -> Option<&KeyValue> {
        match kind {
            KeyKind::Ip => self.ip.as_ref(),
            KeyKind::Account => self.account.as_ref(),
            KeyKind::Session => self.session.as_ref(),
            KeyKind::Tenant => self.tenant.as_ref(),
            KeyKind::WebhookSource => self.webhook_source.as_ref(),
            KeyKind::Custom(name) => self.custom.iter().find(|(n, _)| *n == name).map(|e| &e.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_grouped_by_prefix_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 4]));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or(IpAddr::from([0u8; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0u8; 4]));
        assert_eq!(KeyValue::ip(a, 64), KeyValue::ip(b, 64));
        assert_ne!(KeyValue::ip(a, 64), KeyValue::ip(c, 64));
        assert_ne!(KeyValue::ip(a, 128), KeyValue::ip(b, 128));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0u8; 4]));
        assert_eq!(
            KeyValue::ip(m, 64),
            KeyValue::ip(IpAddr::from([10, 0, 0, 1]), 64)
        );
    }

    #[test]
    fn account_names_are_normalised_then_hashed() {
        let a = KeyValue::account(" Alice@Example.COM ").ok();
        assert_eq!(a, KeyValue::account("alice@example.com").ok());
        assert_ne!(a, KeyValue::account("bob@example.com").ok());
        assert!(KeyValue::account("  ").is_err());
        let hex = a.map(|k| k.hex()).unwrap_or_default();
        assert!(
            !hex.contains(
                &"alice"
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        );
    }

    #[test]
    fn long_text_is_hashed_and_tags_keep_kinds_apart() {
        let long = "s".repeat(200);
        let k = KeyValue::text(&long).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.len, 32);
        assert_ne!(
            KeyValue::text("1.2.3.4").ok(),
            Some(KeyValue::ip(IpAddr::from([1, 2, 3, 4]), 64))
        );
        assert!(KeyValue::text("").is_err());
    }
}
