//! What every scheme family's parser produces, and the shared primitives:
//! header access under the limits, the MACs, constant-time comparison, id and
//! timestamp validation.

use hmac::Mac;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::limits::{Limits, MAX_ID_LEN};
use crate::error::{Error, Result};
use crate::headers::{Headers, single};

// Signature bytes of the widest scheme (Ed25519).
pub(crate) type SigBuf = [u8; 64];

/// What a scheme family's header parser found: the signed parts ahead of the
/// body, the signature candidates and the metadata.
pub(crate) struct Parsed<'h> {
    pub(crate) prefix: Prefix<'h>,
    /// A second spelling of the signed prefix that the provider's own
    /// validators also accept (Twilio: the URL with or without its default
    /// port); tried only if `prefix` does not match. A `Vec`, not a second
    /// [`Prefix`]: that would add its size to every `Parsed`, moved on every
    /// verification of every scheme.
    pub(crate) alt_prefix: Option<Vec<u8>>,
    pub(crate) sigs: SigList,
    pub(crate) sig_len: usize,
    pub(crate) timestamp: Option<u64>,
    pub(crate) id: Option<&'h [u8]>,
    /// Twilio with `bodySHA256`: the expected SHA-256 of the body.
    pub(crate) body_sha256: Option<[u8; 32]>,
    /// The message is `prefix` alone (Twilio form: the body was folded into it).
    pub(crate) body_in_prefix: bool,
    /// The replay id when it is not the signed event id nor the body hash
    /// (Twilio: a digest of what the signature covers).
    pub(crate) replay_digest: Option<[u8; 32]>,
}

impl<'h> Parsed<'h> {
    /// One signature over `prefix || body`, no id.
    pub(crate) fn simple(prefix: Prefix<'h>, sig: [u8; 32], timestamp: Option<u64>) -> Self {
        Self::list(prefix, SigList::one(widen(sig)), 32, timestamp)
    }

    /// Several candidate signatures of `sig_len` bytes over `prefix || body`.
    pub(crate) fn list(
        prefix: Prefix<'h>,
        sigs: SigList,
        sig_len: usize,
        timestamp: Option<u64>,
    ) -> Self {
        Parsed {
            prefix,
            alt_prefix: None,
            sigs,
            sig_len,
            timestamp,
            id: None,
            body_sha256: None,
            body_in_prefix: false,
            replay_digest: None,
        }
    }
}

/// The single value of header `name`, bounded by `limits.max_header`.
pub(crate) fn header<'h, H: Headers + ?Sized>(
    headers: &'h H,
    name: &'h str,
    limits: &Limits,
) -> Result<Option<&'h [u8]>> {
    bounded(single(headers, name), limits)
}

/// A header lookup's answer, bounded by `limits.max_header`.
pub(crate) fn bounded<'h>(
    v: Result<Option<&'h [u8]>>,
    limits: &Limits,
) -> Result<Option<&'h [u8]>> {
    let v = v?;
    if let Some(v) = v
        && v.len() > limits.max_header
    {
        return Err(Error::TooLarge);
    }
    Ok(v)
}

/// Like [`header`], `MissingHeader` when absent.
pub(crate) fn required<'h, H: Headers + ?Sized>(
    headers: &'h H,
    name: &'h str,
    limits: &Limits,
) -> Result<&'h [u8]> {
    header(headers, name, limits)?.ok_or(Error::MissingHeader)
}

const PARTS: usize = 4;
const SIGS_INLINE: usize = 4;

/// The signed bytes ahead of the body: up to four borrowed pieces (header
/// values and separators, fed to the MAC one after the other, so nothing is
/// copied or allocated), or one owned buffer (Twilio's signed string, or a
/// fifth piece, which no scheme has).
pub(crate) struct Prefix<'h> {
    parts: [&'h [u8]; PARTS],
    len: usize,
    owned: Option<Vec<u8>>,
}

impl<'h> Prefix<'h> {
    pub(crate) fn new() -> Self {
        Self {
            parts: [&[]; PARTS],
            len: 0,
            owned: None,
        }
    }

    pub(crate) fn one(s: &'h [u8]) -> Self {
        let mut p = Self::new();
        p.push(s);
        p
    }

    pub(crate) fn from_vec(v: Vec<u8>) -> Self {
        Self {
            parts: [&[]; PARTS],
            len: 0,
            owned: Some(v),
        }
    }

    /// Append a piece.
    pub(crate) fn push(&mut self, s: &'h [u8]) {
        if let Some(o) = &mut self.owned {
            o.extend_from_slice(s);
        } else if let Some(slot) = self.parts.get_mut(self.len) {
            *slot = s;
            self.len += 1;
        } else {
            let mut v = self.to_vec();
            v.extend_from_slice(s);
            self.owned = Some(v);
        }
    }

    /// Hand every piece to `f`, in order.
    pub(crate) fn feed(&self, mut f: impl FnMut(&[u8])) {
        match &self.owned {
            Some(v) => f(v),
            None => self.parts.iter().take(self.len).for_each(|p| f(p)),
        }
    }

    /// The pieces as one buffer (Ed25519 signs a contiguous message).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.feed(|p| v.extend_from_slice(p));
        v
    }
}

/// Signature candidates, inline up to four (rotation rarely sends more).
pub(crate) struct SigList {
    inline: [SigBuf; SIGS_INLINE],
    len: usize,
    heap: Vec<SigBuf>,
}

impl SigList {
    pub(crate) fn new() -> Self {
        Self {
            inline: [[0; 64]; SIGS_INLINE],
            len: 0,
            heap: Vec::new(),
        }
    }

    pub(crate) fn one(s: SigBuf) -> Self {
        let mut l = Self::new();
        l.push(s);
        l
    }

    pub(crate) fn push(&mut self, s: SigBuf) {
        if self.len < SIGS_INLINE {
            self.inline[self.len] = s;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.inline);
            }
            self.heap.push(s);
        }
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[SigBuf] {
        if self.len <= SIGS_INLINE {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

pub(crate) fn widen(s: [u8; 32]) -> SigBuf {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&s);
    b
}

#[cfg(test)]
thread_local! {
    pub(crate) static MAC_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// HMAC of `prefix || body` from a pre-keyed state (the key schedule was
/// run once, when the key was added).
fn mac<M: Mac + Clone>(state: &M, prefix: &Prefix<'_>, body: &[u8]) -> hmac::digest::Output<M> {
    #[cfg(test)]
    MAC_CALLS.with(|c| c.set(c.get() + 1));
    let mut m = state.clone();
    prefix.feed(|p| m.update(p));
    m.update(body);
    m.finalize().into_bytes()
}

pub(crate) fn mac_sha256(state: &hmac::Hmac<Sha256>, prefix: &[u8], body: &[u8]) -> [u8; 32] {
    mac(state, &Prefix::one(prefix), body).into()
}

pub(crate) fn mac_sha1(state: &hmac::Hmac<sha1::Sha1>, prefix: &[u8], body: &[u8]) -> [u8; 20] {
    mac(state, &Prefix::one(prefix), body).into()
}

/// [`mac_sha256`] over a parsed prefix.
pub(crate) fn prefixed_sha256(
    state: &hmac::Hmac<Sha256>,
    prefix: &Prefix<'_>,
    body: &[u8],
) -> [u8; 32] {
    mac(state, prefix, body).into()
}

/// [`mac_sha1`] over a parsed prefix.
pub(crate) fn prefixed_sha1(
    state: &hmac::Hmac<sha1::Sha1>,
    prefix: &Prefix<'_>,
    body: &[u8],
) -> [u8; 20] {
    mac(state, prefix, body).into()
}

/// Constant-time comparison of `mac` with every candidate (`subtle`, no
/// early exit within a candidate or across candidates).
///
/// Compared as little-endian 64-bit words, the last few bytes one by one:
/// `subtle`'s slice comparison goes byte by byte with an optimisation barrier
/// per byte, eight times the work for the same guarantee.
pub(crate) fn any_ct_eq(sigs: &[SigBuf], len: usize, mac: &[u8]) -> bool {
    if mac.len() != len {
        return false;
    }
    let mut ok = subtle::Choice::from(0u8);
    for s in sigs {
        ok |= ct_eq_words(&s[..len], mac);
    }
    bool::from(ok)
}

/// `a == b` in constant time, for slices of one length.
fn ct_eq_words(a: &[u8], b: &[u8]) -> subtle::Choice {
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut eq = a_words.remainder().ct_eq(b_words.remainder());
    for (x, y) in a_words.zip(b_words) {
        let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or_default());
        eq &= word(x).ct_eq(&word(y));
    }
    eq
}

/// A message id: 1..=256 visible ASCII bytes without `.` (a `.` would let
/// `id.timestamp.body` split two ways, so one signature could serve another
/// id/body pair).
pub(crate) fn validate_id(id: &[u8]) -> Result<()> {
    // A fold without early exit: the compiler checks 16 or 32 bytes at once.
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .iter()
            .fold(true, |ok, &b| ok & b.is_ascii_graphic() & (b != b'.'));
    if ok { Ok(()) } else { Err(Error::Malformed) }
}

/// Unix seconds: 1..=12 ASCII digits, no sign, no leading zero.
pub(crate) fn parse_ts(raw: &[u8]) -> Result<u64> {
    if raw.is_empty() || raw.len() > 12 || (raw.len() > 1 && raw[0] == b'0') {
        return Err(Error::Malformed);
    }
    let mut v: u64 = 0;
    for &c in raw {
        if !c.is_ascii_digit() {
            return Err(Error::Malformed);
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_strict_decimal() {
        for bad in ["", "+1", "01", "1e9", " 1", "1234567890123"] {
            assert_eq!(parse_ts(bad.as_bytes()), Err(Error::Malformed), "{bad:?}");
        }
        assert_eq!(parse_ts(b"0"), Ok(0));
        // The 12-digit bound is inclusive.
        assert_eq!(parse_ts(b"999999999999"), Ok(999_999_999_999));
    }

    #[test]
    fn prefix_pieces_and_signature_lists_spill_to_the_heap() {
        let mut p = Prefix::one(b"ab");
        p.push(b".");
        assert_eq!(p.to_vec(), b"ab.");
        p.push(b"cd");
        p.push(b":");
        // A fifth piece spills into one owned buffer, in order.
        p.push(b"!");
        assert!(p.owned.is_some());
        assert_eq!(p.to_vec(), b"ab.cd:!");
        p.push(b"?");
        assert_eq!(p.to_vec(), b"ab.cd:!?");
        let mut pieces = 0;
        p.feed(|_| pieces += 1);
        assert_eq!(pieces, 1);
        assert_eq!(Prefix::new().to_vec(), b"");
        let mut l = SigList::new();
        for i in 0..20u8 {
            l.push([i; 64]);
        }
        assert_eq!(l.as_slice().len(), 20);
        assert!(
            l.as_slice()
                .iter()
                .enumerate()
                .all(|(i, s)| usize::from(s[0]) == i)
        );
    }

    fn widen20(s: [u8; 20]) -> SigBuf {
        let mut b = [0u8; 64];
        b[..20].copy_from_slice(&s);
        b
    }

    #[test]
    fn comparison_finds_any_candidate_and_only_exact_matches() {
        let mac = [7u8; 32];
        let mut other = widen(mac);
        other[31] ^= 1;
        assert!(!any_ct_eq(&[other], 32, &mac));
        assert!(any_ct_eq(&[other, widen(mac)], 32, &mac));
        assert!(any_ct_eq(&[widen(mac), other], 32, &mac));
        // Every byte counts, a SHA-1 length (two words and a tail) too.
        for i in 0..32 {
            let mut near = widen(mac);
            near[i] ^= 0x80;
            assert!(!any_ct_eq(&[near], 32, &mac), "{i}");
        }
        let sha1 = [9u8; 20];
        assert!(any_ct_eq(&[widen20(sha1)], 20, &sha1));
        for i in 0..20 {
            let mut near = widen20(sha1);
            near[i] ^= 1;
            assert!(!any_ct_eq(&[near], 20, &sha1), "{i}");
        }
        // A MAC of another length never matches.
        assert!(!any_ct_eq(&[widen(mac)], 32, &mac[..20]));
        assert!(!any_ct_eq(&[], 32, &mac));
    }
}
