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
const TAG_ACCOUNT_OVERLONG: u8 = 6;

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
///
/// One array, `[tag, len, value, zero padding]`: the in-process store hashes
/// the used prefix with one `write`, and equality is two fixed-size compares.
#[derive(Clone, Copy)]
pub struct KeyValue {
    raw: [u8; 2 + INLINE],
}

impl KeyValue {
    /// Longest account name, in bytes of UTF-8, that [`KeyValue::account`]
    /// normalises (an email address is at most 254). Longer names all share
    /// one key: see [`KeyValue::account`].
    pub const MAX_ACCOUNT_LEN: usize = 256;

    #[inline]
    fn raw(tag: u8, bytes: &[u8]) -> Self {
        let mut raw = [0u8; 2 + INLINE];
        let len = bytes.len().min(INLINE);
        raw[0] = tag;
        raw[1] = u8::try_from(len).unwrap_or(0);
        raw[2..2 + len].copy_from_slice(&bytes[..len]);
        KeyValue { raw }
    }

    #[inline]
    fn tag(&self) -> u8 {
        self.raw[0]
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.raw[1])
    }

    /// Tag, length and value: the bytes that identify the key.
    #[inline]
    fn tagged(&self) -> &[u8] {
        &self.raw[..2 + self.len()]
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
    ///
    /// **Length cap.** Normalisation costs time in proportion to the name,
    /// and the name is the attacker's choice. A name longer than
    /// [`KeyValue::MAX_ACCOUNT_LEN`] bytes is not normalised: every such name
    /// gets one shared key (a key kind of its own, never equal to a
    /// normalised name's), so over-long names cost O(1) and still share a
    /// per-account budget (fail closed: an over-long name never escapes the
    /// account tier, and never gets a fresh budget per spelling). The price,
    /// documented: over-long names can exhaust each other's budget, so cap
    /// account names in your application at or below this length. Existing
    /// and unknown accounts are treated alike (the key never depends on
    /// whether the account exists).
    pub fn account(name: &str) -> Result<Self> {
        if name.len() > Self::MAX_ACCOUNT_LEN {
            return Ok(Self::raw(TAG_ACCOUNT_OVERLONG, &[]));
        }
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
            Ok(Self::long(value))
        }
    }

    /// A value longer than [`INLINE`]: its SHA-256 (out of line, so the
    /// short path inlines).
    #[cold]
    #[inline(never)]
    fn long(value: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"hisn-rate-limit/long\0");
        h.update(value);
        Self::raw(TAG_HASH, &h.finalize())
    }

    #[inline]
    fn slice(&self) -> &[u8] {
        &self.tagged()[2..]
    }

    /// Lower-case hex of the tagged value: the form used in Redis key names.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(2 + 2 * self.len());
        for b in std::iter::once(self.tag()).chain(self.slice().iter().copied()) {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

impl PartialEq for KeyValue {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Unused bytes are always zero, so comparing the whole arrays is the
        // same as comparing tag, length and value. Two power-of-two chunks
        // compile to inline vector compares (34 bytes at once is a call).
        self.raw.first_chunk::<32>() == other.raw.first_chunk::<32>()
            && self.raw.last_chunk::<2>() == other.raw.last_chunk::<2>()
    }
}
impl Eq for KeyValue {}

impl Hash for KeyValue {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One write of tag, length and value (the length is part of it, so
        // distinct values never feed the hasher the same bytes).
        state.write(self.tagged());
    }
}

impl std::fmt::Debug for KeyValue {
    // Keys may be session ids: print only a length, never the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyValue(tag {}, {} bytes)", self.tag(), self.len())
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
    fn over_long_account_names_share_one_key_without_normalisation() {
        let max = KeyValue::MAX_ACCOUNT_LEN;
        // At the cap: normalised as usual.
        assert_eq!(
            KeyValue::account(&"A".repeat(max)).ok(),
            KeyValue::account(&"a".repeat(max)).ok()
        );
        assert_ne!(
            KeyValue::account(&"a".repeat(max)).ok(),
            KeyValue::account(&"b".repeat(max)).ok()
        );
        // Above it: one shared key, whatever the name (a 4 MiB name is not
        // normalised: this returns at once even in a debug build), never
        // equal to a normalised name's key.
        let over = KeyValue::account(&"a".repeat(max + 1)).ok();
        assert!(over.is_some());
        assert_eq!(over, KeyValue::account(&"b".repeat(max + 1)).ok());
        assert_eq!(over, KeyValue::account(&"ß".repeat(2 << 20)).ok());
        assert_ne!(over, KeyValue::account(&"a".repeat(max)).ok());
        assert_ne!(over, KeyValue::account("a").ok());
        // Multi-byte names are measured in bytes: 128 two-byte letters fit.
        assert_eq!(
            KeyValue::account(&"É".repeat(max / 2)).ok(),
            KeyValue::account(&"é".repeat(max / 2)).ok()
        );
    }

    #[test]
    fn long_text_is_hashed_and_tags_keep_kinds_apart() {
        let long = "s".repeat(200);
        let k = KeyValue::text(&long).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.len(), 32);
        assert_ne!(
            KeyValue::text("1.2.3.4").ok(),
            Some(KeyValue::ip(IpAddr::from([1, 2, 3, 4]), 64))
        );
        assert!(KeyValue::text("").is_err());
    }
}
