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
    pub(crate) prefix: Prefix,
    /// A second spelling of the signed prefix that the provider's own
    /// validators also accept (Twilio: the URL with or without its default
    /// port); tried only if `prefix` does not match. A `Vec`, not a second
    /// inline [`Prefix`]: that would add 350 bytes to every `Parsed`, moved
    /// on every verification of every scheme (measured in the verify bench).
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

impl Parsed<'static> {
    /// One signature over `prefix || body`, no id.
    pub(crate) fn simple(prefix: Prefix, sig: [u8; 32], timestamp: Option<u64>) -> Self {
        Self::list(prefix, SigList::one(widen(sig)), 32, timestamp)
    }

    /// Several candidate signatures of `sig_len` bytes over `prefix || body`.
    pub(crate) fn list(
        prefix: Prefix,
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
    let v = single(headers, name)?;
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

const PREFIX_INLINE: usize = 320;
const SIGS_INLINE: usize = 4;

/// The signed bytes ahead of the body, inline up to 320 bytes (every scheme's
/// prefix within the default limits fits), else on the heap: verification of
/// a typical delivery allocates nothing here.
pub(crate) struct Prefix {
    inline: [u8; PREFIX_INLINE],
    len: usize,
    heap: Option<Vec<u8>>,
}

impl Prefix {
    pub(crate) fn new() -> Self {
        Self {
            inline: [0; PREFIX_INLINE],
            len: 0,
            heap: None,
        }
    }

    pub(crate) fn from_slice(s: &[u8]) -> Self {
        let mut p = Self::new();
        p.extend_from_slice(s);
        p
    }

    pub(crate) fn from_vec(v: Vec<u8>) -> Self {
        Self {
            inline: [0; PREFIX_INLINE],
            len: 0,
            heap: Some(v),
        }
    }

    pub(crate) fn extend_from_slice(&mut self, s: &[u8]) {
        if let Some(h) = &mut self.heap {
            h.extend_from_slice(s);
        } else if let Some(dst) = self.inline.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s);
            self.len += s.len();
        } else {
            let mut v = Vec::with_capacity(self.len + s.len());
            v.extend_from_slice(&self.inline[..self.len]);
            v.extend_from_slice(s);
            self.heap = Some(v);
        }
    }

    pub(crate) fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(h) => h,
            None => &self.inline[..self.len],
        }
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

/// HMAC of `prefix || body` from a pre-keyed state.
fn mac<M: Mac + Clone>(state: &M, prefix: &[u8], body: &[u8]) -> hmac::digest::Output<M> {
    #[cfg(test)]
    MAC_CALLS.with(|c| c.set(c.get() + 1));
    let mut m = state.clone();
    m.update(prefix);
    m.update(body);
    m.finalize().into_bytes()
}

pub(crate) fn mac_sha256(state: &hmac::Hmac<Sha256>, prefix: &[u8], body: &[u8]) -> [u8; 32] {
    mac(state, prefix, body).into()
}

pub(crate) fn mac_sha1(state: &hmac::Hmac<sha1::Sha1>, prefix: &[u8], body: &[u8]) -> [u8; 20] {
    mac(state, prefix, body).into()
}

/// Constant-time comparison of `mac` with every candidate (`subtle`, no
/// early exit across candidates).
pub(crate) fn any_ct_eq(sigs: &[SigBuf], len: usize, mac: &[u8]) -> bool {
    if mac.len() != len {
        return false;
    }
    let mut ok = subtle::Choice::from(0u8);
    for s in sigs {
        ok |= s[..len].ct_eq(mac);
    }
    bool::from(ok)
}

/// A message id: 1..=256 visible ASCII bytes without `.` (a `.` would let
/// `id.timestamp.body` split two ways, so one signature could serve another
/// id/body pair).
pub(crate) fn validate_id(id: &[u8]) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.iter().all(|&b| b.is_ascii_graphic() && b != b'.');
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
    fn inline_prefix_and_signature_lists_spill_to_the_heap() {
        let mut p = Prefix::from_slice(b"ab");
        p.push(b'.');
        assert_eq!(p.as_slice(), b"ab.");
        let long = vec![b'x'; PREFIX_INLINE];
        p.extend_from_slice(&long);
        assert_eq!(p.as_slice().len(), PREFIX_INLINE + 3);
        assert_eq!(&p.as_slice()[..3], b"ab.");
        p.push(b'!');
        assert_eq!(p.as_slice().last(), Some(&b'!'));
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

    #[test]
    fn comparison_finds_any_candidate_and_only_exact_matches() {
        let mac = [7u8; 32];
        let mut other = widen(mac);
        other[31] ^= 1;
        assert!(!any_ct_eq(&[other], 32, &mac));
        assert!(any_ct_eq(&[other, widen(mac)], 32, &mac));
        assert!(any_ct_eq(&[widen(mac), other], 32, &mac));
        // A MAC of another length never matches.
        assert!(!any_ct_eq(&[widen(mac)], 32, &mac[..20]));
        assert!(!any_ct_eq(&[], 32, &mac));
    }
}
